use chrono::Utc;
use reqwest::StatusCode;
use serde_json::Value;
use shared::db::{archive, files, members, messages, reads, rooms, stats, uploads};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgPool, Postgres, Row};
use uuid::Uuid;

use crate::helpers::{ALICE, BOB, TestApp, assert_error};

fn seqs(page: &Value) -> Vec<i64> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect()
}

async fn page(app: &TestApp, query: &str) -> Value {
    let response = app.list_messages("general", query).await;
    assert_eq!(response.status(), StatusCode::OK, "{query}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_default_page_is_the_newest_100_in_ascending_order() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    app.seed_messages("general", 250).await;
    let body = page(&app, "").await;
    assert_eq!(seqs(&body), (151..=250).collect::<Vec<_>>());
    assert_eq!(body["has_more"], true);
}

#[tokio::test]
async fn before_pages_back_through_history() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    app.seed_messages("general", 250).await;
    let body = page(&app, "?before=151&limit=100").await;
    assert_eq!(seqs(&body), (51..=150).collect::<Vec<_>>());
    assert_eq!(body["has_more"], true);
    let body = page(&app, "?before=51&limit=100").await;
    assert_eq!(seqs(&body), (1..=50).collect::<Vec<_>>());
    assert_eq!(body["has_more"], false);
}

#[tokio::test]
async fn after_pages_forward_and_says_when_more_is_newer() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    app.seed_messages("general", 25).await;
    let body = page(&app, "?after=5&limit=10").await;
    assert_eq!(seqs(&body), (6..=15).collect::<Vec<_>>());
    assert_eq!(body["has_more"], true);
    let body = page(&app, "?after=15&limit=10").await;
    assert_eq!(seqs(&body), (16..=25).collect::<Vec<_>>());
    assert_eq!(body["has_more"], false);
    let body = page(&app, "?after=25").await;
    assert!(seqs(&body).is_empty());
    assert_eq!(body["has_more"], false);
}

#[tokio::test]
async fn an_empty_room_lists_no_messages() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let body = page(&app, "").await;
    assert!(seqs(&body).is_empty());
    assert_eq!(body["has_more"], false);
}

#[tokio::test]
async fn limit_bounds_and_cursor_rules_are_400() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    for query in [
        "?limit=0",
        "?limit=201",
        "?limit=abc",
        "?limit=-5",
        "?before=1&after=2",
        "?before=-1",
        "?after=1.5",
        "?after=x",
    ] {
        let response = app.list_messages("general", query).await;
        let message = assert_error(response, StatusCode::BAD_REQUEST, "invalid_query").await;
        assert!(message.contains('`'), "{query}: {message}");
    }
    assert_eq!(
        app.list_messages("general", "?limit=200").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.list_messages("general", "?limit=1").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn listing_an_unknown_room_is_404() {
    let app = TestApp::spawn().await;
    assert_error(
        app.list_messages("nope", "").await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    )
    .await;
}

/// The binds of one statement in [`every_query_the_api_runs_uses_an_index`].
type Binds = for<'q> fn(Query<'q, Postgres, PgArguments>) -> Query<'q, Postgres, PgArguments>;
const ROOM: &str = "room-3";
const ID: Uuid = Uuid::from_u128(0x0190a0b0_0000_7000_8000_000000000000);

#[tokio::test]
async fn every_query_the_api_runs_uses_an_index() {
    let app = TestApp::spawn().await;
    for i in 0..30 {
        app.room(&format!("room-{i}")).await;
        app.seed_messages(&format!("room-{i}"), 2000).await;
    }
    // Many rooms: on a handful, a sequential scan is rightly cheaper than any index.
    sqlx::query("INSERT INTO chat_rooms (id, name, created_by) SELECT 'bulk-' || g, 'bulk', 'a@x.com' FROM generate_series(1, 20000) g")
        .execute(&app.db)
        .await
        .unwrap();
    // A file on every tenth message and a pile of pending uploads, as in a live system.
    sqlx::query(
        "INSERT INTO chat_message_files (id, message_id, object_key, file_name, content_type, size)
         SELECT gen_random_uuid(), id, 'k/' || id, 'f.png', 'image/png', 1 FROM chat_messages WHERE seq % 10 = 0",
    )
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO chat_uploads (id, room_id, user_email, object_key, file_name, content_type, size)
         SELECT gen_random_uuid(), 'room-1', 'a@x.com', 'k/' || g, 'f.png', 'image/png', 1 FROM generate_series(1, 5000) g",
    )
    .execute(&app.db)
    .await
    .unwrap();
    // Members in every bulk room, and the buckets of many users.
    sqlx::query(
        "INSERT INTO chat_room_members (room_id, user_email, added_by)
         SELECT 'bulk-' || g, 'm' || (g % 500) || '@x.com', 'a@x.com' FROM generate_series(1, 20000) g",
    )
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO chat_rate_limits (user_email, action, tokens, updated_at)
         SELECT 'u' || g || '@x.com', a, 1, now() FROM generate_series(1, 5000) g, unnest(ARRAY['post', 'upload', 'room']) a",
    )
    .execute(&app.db)
    .await
    .unwrap();
    // Reactions on every fifth message, read marks of many users, replies, tombstones and
    // a trash of objects left by deletes.
    for sql in [
        "INSERT INTO chat_message_reactions (message_id, user_email, emoji)
         SELECT id, 'u' || (seq % 7) || '@x.com', '👍' FROM chat_messages WHERE seq % 5 = 0",
        "UPDATE chat_messages SET reactions = '[{\"emoji\": \"👍\", \"count\": 1}]' WHERE seq % 5 = 0",
        "INSERT INTO chat_read_marks (room_id, user_email, last_read_seq)
         SELECT 'bulk-' || g, 'm' || (g % 500) || '@x.com', 0 FROM generate_series(1, 20000) g",
        "UPDATE chat_messages SET deleted_at = now() WHERE seq % 97 = 0",
        "UPDATE chat_messages c SET reply_to = p.id, reply_to_seq = p.seq, reply_to_user = p.user_email,
                reply_excerpt = ''
         FROM chat_messages p WHERE c.seq % 50 = 0 AND p.room_id = c.room_id AND p.seq = c.seq - 1",
        "INSERT INTO chat_object_trash (object_key) SELECT 'k/' || g FROM generate_series(1, 5000) g",
        // Archive segments of many rooms.
        "INSERT INTO chat_archive_segments (object_key, room_id, first_seq, last_seq, max_event,
                                            messages, bytes, min_id, max_id, oldest_at, newest_at)
         SELECT 'archive/' || g, 'bulk-' || (g % 2000 + 1), g * 10, g * 10 + 9, g * 10 + 9, 10, 100,
                gen_random_uuid(), gen_random_uuid(), now() - g * interval '1 minute', now()
         FROM generate_series(1, 20000) g",
        // Presence of many users on many rooms, from a few instances, some expired.
        "INSERT INTO chat_presence (room_id, user_email, instance_id, since, expires_at)
         SELECT 'bulk-' || (g % 2000), 'p' || g || '@x.com', 'i' || (g % 4), now(),
                now() + (g % 3 - 1) * interval '30 seconds'
         FROM generate_series(1, 20000) g",
    ] {
        sqlx::query(sql).execute(&app.db).await.unwrap();
    }
    sqlx::query("ANALYZE").execute(&app.db).await.unwrap();
    // The very statements `db` runs, bound to representative values of the types it binds.
    // EXPLAIN plans the writes without running them.
    let statements: [(&str, &str, Binds); 45] = [
        ("LIST_PAGE_LATEST", messages::LIST_PAGE_LATEST, |q| {
            q.bind(ROOM).bind(0_i64).bind(101_i64).bind(ALICE)
        }),
        ("LIST_PAGE_BEFORE", messages::LIST_PAGE_BEFORE, |q| {
            q.bind(ROOM).bind(900_i64).bind(101_i64).bind(ALICE)
        }),
        ("LIST_PAGE_AFTER", messages::LIST_PAGE_AFTER, |q| {
            q.bind(ROOM).bind(900_i64).bind(101_i64).bind(ALICE)
        }),
        ("LIST_LOG", messages::LIST_LOG, |q| {
            q.bind(ROOM).bind(10_i64).bind(500_i64).bind(ALICE)
        }),
        ("HUB_RANGE", messages::HUB_RANGE, |q| {
            q.bind(ROOM)
                .bind(10_i64)
                .bind(20_i64)
                .bind(500_i64)
                .bind(vec![ALICE.to_owned()])
        }),
        ("POST_BATCH", messages::POST_BATCH, |q| {
            q.bind(vec![ROOM.to_owned(), "room-2".to_owned()])
                .bind(vec![ID, Uuid::now_v7()])
                .bind(vec![ALICE.to_owned(), BOB.to_owned()])
                .bind(vec!["a".to_owned(), "b".to_owned()])
                .bind(vec![None, Some(ID)])
                .bind("post")
                .bind(30.0_f64)
                .bind(3.0_f64)
        }),
        ("EDIT_BATCH", messages::EDIT_BATCH, |q| {
            q.bind(vec![ROOM.to_owned(), "room-2".to_owned()])
                .bind(vec![ID, Uuid::now_v7()])
                .bind(vec![ALICE.to_owned(), BOB.to_owned()])
                .bind(vec!["a".to_owned(), "b".to_owned()])
                .bind("edit")
                .bind(30.0_f64)
                .bind(3.0_f64)
        }),
        ("REACT_BATCH", messages::REACT_BATCH, |q| {
            q.bind(vec![ROOM.to_owned(), "room-2".to_owned()])
                .bind(vec![ID, Uuid::now_v7()])
                .bind(vec![ALICE.to_owned(), BOB.to_owned()])
                .bind(vec!["👍".to_owned(), "🎉".to_owned()])
                .bind(vec![true, false])
                .bind(messages::MAX_EMOJI_PER_MESSAGE)
                .bind("react")
                .bind(60.0_f64)
                .bind(6.0_f64)
        }),
        ("DELETE_BATCH", messages::DELETE_BATCH, |q| {
            q.bind(vec![ROOM.to_owned(), "room-2".to_owned()])
                .bind(vec![ID, Uuid::now_v7()])
                .bind(vec![ALICE.to_owned(), BOB.to_owned()])
                .bind("edit")
                .bind(30.0_f64)
                .bind(3.0_f64)
        }),
        ("HUB_RANGE_BACK", messages::HUB_RANGE_BACK, |q| {
            q.bind(ROOM)
                .bind(10_i64)
                .bind(20_i64)
                .bind(500_i64)
                .bind(vec![ALICE.to_owned()])
        }),
        ("SEARCH", messages::SEARCH, |q| {
            q.bind(ROOM)
                .bind(i64::MAX)
                .bind(101_i64)
                .bind(ALICE)
                .bind("1500")
                .bind("simple")
                .bind(messages::SEARCH_WINDOW)
        }),
        ("TOP_BY_STORAGE", stats::TOP_BY_STORAGE, |q| q.bind(20_i64)),
        ("FIND_BY_CLIENT_ID", messages::FIND_BY_CLIENT_ID, |q| {
            q.bind(ROOM).bind(ID).bind(ALICE)
        }),
        ("LIST_REPLIES", messages::LIST_REPLIES, |q| {
            q.bind(ROOM).bind(ID).bind(0_i64).bind(101_i64).bind(ALICE)
        }),
        ("FIND_MESSAGE", messages::FIND_MESSAGE, |q| {
            q.bind(ROOM).bind(ID).bind(ALICE)
        }),
        ("EMPTY_TRASH", messages::EMPTY_TRASH, |q| {
            q.bind(vec!["k".to_owned()])
        }),
        ("TRASHED", messages::TRASHED, |q| q.bind(1000_i64)),
        ("UNPROCESSED", files::UNPROCESSED, |q| {
            q.bind(Utc::now()).bind(20_i64)
        }),
        ("MARK_READ", reads::MARK_READ, |q| {
            q.bind(ROOM).bind(ALICE).bind(5_i64)
        }),
        ("LIST_ROOMS", rooms::LIST_ROOMS, |q| {
            q.bind(ALICE).bind(rooms::LIST_LIMIT)
        }),
        ("FIND_VISIBLE", rooms::FIND_VISIBLE, |q| {
            q.bind(ROOM).bind(ALICE)
        }),
        ("INSERT_ROOM", rooms::INSERT_ROOM, |q| {
            q.bind("new-room")
                .bind("New")
                .bind("public")
                .bind(ALICE)
                .bind("room")
                .bind(10.0_f64)
                .bind(10.0_f64 / 3600.0)
        }),
        ("TICK", rooms::TICK, |q| {
            q.bind(["room-1", "room-2"].map(String::from).to_vec())
                .bind(vec![ALICE.to_owned(), "m1@x.com".to_owned()])
                .bind(Utc::now())
        }),
        ("PRIVATE_READERS", rooms::PRIVATE_READERS, |q| q.bind(ROOM)),
        ("PRESENCE_ONLINE", rooms::PRESENCE_ONLINE, |q| q.bind(ROOM)),
        ("PRESENCE_HEARTBEAT", rooms::PRESENCE_HEARTBEAT, |q| {
            q.bind("instance")
                .bind(vec![ROOM.to_owned()])
                .bind(vec![ALICE.to_owned()])
                .bind(vec![Utc::now()])
                .bind(45.0_f64)
                .bind(vec![ROOM.to_owned(), "bulk-7".to_owned()])
        }),
        ("NOTIFY_TYPING", rooms::NOTIFY_TYPING, |q| {
            q.bind(ROOM).bind(ALICE).bind("{}")
        }),
        ("LIST_MEMBERS", members::LIST_MEMBERS, |q| q.bind(ROOM)),
        ("ADD_MEMBER", members::ADD_MEMBER, |q| {
            q.bind(ROOM).bind(BOB).bind(ALICE)
        }),
        ("REMOVE_MEMBER", members::REMOVE_MEMBER, |q| {
            q.bind(ROOM).bind(BOB)
        }),
        ("INSERT_UPLOAD", uploads::INSERT_UPLOAD, |q| {
            q.bind(ID)
                .bind(ROOM)
                .bind(ALICE)
                .bind("k")
                .bind("f.png")
                .bind("image/png")
                .bind(1_i64)
                .bind("upload")
                .bind(20.0_f64)
                .bind(20.0_f64 / 60.0)
        }),
        ("FIND_UPLOADS", uploads::FIND_UPLOADS, |q| q.bind(&[ID][..])),
        ("LOCK_PENDING", uploads::LOCK_PENDING, |q| {
            q.bind(&[ID][..]).bind(ROOM).bind(ALICE)
        }),
        ("CLAIM_ORPHANS", uploads::CLAIM_ORPHANS, |q| {
            q.bind(Utc::now()).bind(100_i64)
        }),
        ("DELETE_UPLOADS", uploads::DELETE_UPLOADS, |q| {
            q.bind(&[ID][..])
        }),
        ("ROOMS_TO_ARCHIVE", archive::ROOMS_TO_ARCHIVE, |q| {
            q.bind(Some(1000_i64))
                .bind(Some(Utc::now()))
                .bind("")
                .bind(100_i64)
        }),
        ("OLDEST_HOT", archive::OLDEST_HOT, |q| {
            q.bind(ROOM).bind(1000_i64)
        }),
        ("LOCK_MESSAGES", archive::LOCK_MESSAGES, |q| {
            q.bind(vec![ID])
        }),
        ("DELETE_MOVED", archive::DELETE_MOVED, |q| q.bind(vec![ID])),
        ("UNTRASH", archive::UNTRASH, |q| {
            q.bind(vec!["k".to_owned()])
        }),
        ("SEGMENTS_BELOW", archive::SEGMENTS_BELOW, |q| {
            q.bind(ROOM).bind(900_i64).bind(32_i64)
        }),
        ("SEGMENTS_WITH_ID", archive::SEGMENTS_WITH_ID, |q| {
            q.bind(ROOM).bind(ID)
        }),
        ("SEGMENTS_EXPIRED", archive::SEGMENTS_EXPIRED, |q| {
            q.bind(Utc::now()).bind(20_i64)
        }),
        ("ROOMS_EXPIRED", archive::ROOMS_EXPIRED, |q| {
            q.bind(Utc::now()).bind("").bind(100_i64)
        }),
        ("PURGE_HOT", archive::PURGE_HOT, |q| {
            q.bind(ROOM).bind(Utc::now()).bind(1000_i64)
        }),
    ];
    for (name, statement, binds) in statements {
        let explain = format!("EXPLAIN {statement}");
        let plan = plan_of(&app.db, binds(sqlx::query(&explain))).await;
        assert!(
            plan.contains("Index"),
            "no index in the plan of {name}:\n{plan}"
        );
        assert!(
            !plan.contains("Seq Scan on chat_messages"),
            "{name}:\n{plan}"
        );
        // A batch of writes finds its rooms' rows by key, however many rooms there are.
        assert!(
            !name.ends_with("_BATCH") || !plan.contains("Seq Scan on chat_rooms"),
            "{name}:\n{plan}"
        );
    }

    // The plan the write queue's connections make once for every batch
    // (`db::lazy_write_pool`: generic, for arrays of any length) finds its rows by key too.
    let mut writer = app.app.posts.db().acquire().await.unwrap();
    for (name, statement, types, args) in [
        (
            "POST_BATCH",
            messages::POST_BATCH,
            "text[], uuid[], text[], text[], uuid[], text, float8, float8",
            "ARRAY['r'], ARRAY[gen_random_uuid()], ARRAY['a@b.c'], ARRAY['x'], ARRAY[NULL::uuid], 'post', 30, 3",
        ),
        (
            "EDIT_BATCH",
            messages::EDIT_BATCH,
            "text[], uuid[], text[], text[], text, float8, float8",
            "ARRAY['r'], ARRAY[gen_random_uuid()], ARRAY['a@b.c'], ARRAY['x'], 'edit', 30, 3",
        ),
        (
            "REACT_BATCH",
            messages::REACT_BATCH,
            "text[], uuid[], text[], text[], bool[], int, text, float8, float8",
            "ARRAY['r'], ARRAY[gen_random_uuid()], ARRAY['a@b.c'], ARRAY['x'], ARRAY[true], 50, 'react', 60, 6",
        ),
        (
            "DELETE_BATCH",
            messages::DELETE_BATCH,
            "text[], uuid[], text[], text, float8, float8",
            "ARRAY['r'], ARRAY[gen_random_uuid()], ARRAY['a@b.c'], 'edit', 30, 3",
        ),
    ] {
        sqlx::query(&format!("PREPARE generic({types}) AS {statement}"))
            .execute(&mut *writer)
            .await
            .unwrap();
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN EXECUTE generic({args})"))
            .fetch_all(&mut *writer)
            .await
            .unwrap();
        let plan = plan.join("\n");
        sqlx::query("DEALLOCATE generic")
            .execute(&mut *writer)
            .await
            .unwrap();
        // The generic plan reads the bucket's capacity from its parameter.
        assert!(
            plan.contains("LEAST($"),
            "{name}: not the generic plan:\n{plan}"
        );
        for table in ["chat_messages", "chat_rooms"] {
            assert!(
                !plan.contains(&format!("Seq Scan on {table}")),
                "{name}, generic:\n{plan}"
            );
        }
    }
    drop(writer);

    // The admin totals are sums over the rooms (one row each), never over the messages.
    let plan = plan_of(&app.db, sqlx::query(&format!("EXPLAIN {}", stats::TOTALS))).await;
    assert!(!plan.contains("chat_messages"), "TOTALS:\n{plan}");
    // The top list by storage reads the front of its index, not every room.
    let explain = format!("EXPLAIN {}", stats::TOP_BY_STORAGE);
    let plan = plan_of(&app.db, sqlx::query(&explain).bind(20_i64)).await;
    assert!(
        plan.contains("chat_rooms_by_storage") && !plan.contains("Sort"),
        "TOP_BY_STORAGE:\n{plan}"
    );
    // The top list by messages is a top-N sort over the rooms, as the totals read them: an
    // index on the count would make every post's room update non-HOT (posting.rs).
    let explain = format!("EXPLAIN {}", stats::TOP_BY_MESSAGES);
    let plan = plan_of(&app.db, sqlx::query(&explain).bind(20_i64)).await;
    assert!(
        plan.contains("Limit") && plan.contains("chat_rooms") && !plan.contains("chat_messages"),
        "TOP_BY_MESSAGES:\n{plan}"
    );

    // The log's writes are functions: EXPLAIN cannot see into them, so run each once, in a
    // transaction rolled back afterwards, and ask Postgres which tables it scanned whole.
    let mut tx = app.db.begin().await.unwrap();
    let target: Uuid =
        sqlx::query_scalar("SELECT id FROM chat_messages WHERE room_id = $1 AND seq = 1000")
            .bind(ROOM)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    let seeded = "seed@example.com";
    // The counters of this backend not yet flushed include its earlier statements (Postgres
    // 15 flushes them now and then), so compare before and after.
    let before = whole_scans(&mut tx).await;
    for (name, call) in [
        (
            "chat_post",
            "SELECT outcome FROM chat_post($1, gen_random_uuid(), $3, 'hi', gen_random_uuid(), '{}', $2, 'post', 30, 3)",
        ),
        (
            "chat_edit",
            "SELECT outcome FROM chat_edit($1, $2, $3, 'edited', 'edit', 30, 3)",
        ),
        (
            "chat_react",
            "SELECT outcome FROM chat_react($1, $2, $3, '🎉', true, 50, 'react', 60, 6)",
        ),
        (
            "chat_delete",
            "SELECT outcome FROM chat_delete($1, $2, $3, 'edit', 30, 3)",
        ),
    ] {
        let outcome: String = sqlx::query_scalar(call)
            .bind(ROOM)
            .bind(target)
            .bind(seeded)
            .fetch_one(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(outcome, "ok", "{name}");
    }
    let after = whole_scans(&mut tx).await;
    let scanned: Vec<&(String, i64)> = after
        .iter()
        .filter(|(table, n)| before.iter().find(|(t, _)| t == table).map_or(0, |b| b.1) < *n)
        .collect();
    assert!(
        scanned.is_empty(),
        "the log's writes scanned whole tables: {scanned:?}"
    );
    tx.rollback().await.unwrap();
}

/// Sequential scans this backend started, per table of more than a few rows (ANALYZE ran):
/// a whole scan of one is a missing index, not a planner's fair choice.
async fn whole_scans(tx: &mut sqlx::PgConnection) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT x.relname::text, x.seq_scan FROM pg_stat_xact_user_tables x
         JOIN pg_class c ON c.oid = x.relid
         WHERE c.reltuples > 1000",
    )
    .fetch_all(tx)
    .await
    .unwrap()
}

/// The plan Postgres picks for `query`, one line per node.
async fn plan_of(db: &PgPool, query: Query<'_, Postgres, PgArguments>) -> String {
    query
        .fetch_all(db)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>(0))
        .collect::<Vec<_>>()
        .join("\n")
}
