//! Issue 13: history tiered to object storage (`/api/cron/archive`), reads through the
//! boundary, crash safety of the move, and retention; against real Postgres and the S3
//! server that checks signatures.

use std::time::Duration;

use chat_dev::EmbeddedS3;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::archive::mover::{Fault, Step};
use shared::config::Config;
use shared::storage::ObjectState;

use crate::helpers::{ALICE, BOB, TestApp, assert_error, base_config, fresh_database};
use crate::sse_client::RawStream;

const SECRET: &str = "cron-secret-for-archive-tests";
const WAIT: Duration = Duration::from_secs(10);
const DAY: Duration = Duration::from_secs(86_400);

fn with_cron(c: &mut Config) {
    c.storage.cron_secret = Some(SECRET.into());
    // The newest `STREAM_MAX_BACKLOG` events stay hot: none here, so that a late edit does
    // not hold these small rooms back (the tests that resume streams set their own).
    c.stream.max_backlog = 0;
}

async fn cron(app: &TestApp) -> (StatusCode, Value) {
    let response = app
        .client
        .get(app.url("/api/cron/archive"))
        .bearer_auth(SECRET)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// Runs the cron until it says no more is left; answers the reports.
async fn cron_until_done(app: &TestApp) -> Vec<Value> {
    let mut reports = Vec::new();
    for _ in 0..50 {
        let (status, report) = cron(app).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        let more = report["more"].as_bool().unwrap();
        reports.push(report);
        if !more {
            return reports;
        }
    }
    panic!("the cron never finished: {reports:?}");
}

async fn call(
    app: &TestApp,
    email: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(method, app.url(path))
        .bearer_auth(app.token(email));
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn json_of(response: reqwest::Response, status: StatusCode) -> Value {
    let got = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(got, status, "body: {body}");
    serde_json::from_str(&body).expect("JSON body")
}

async fn post(app: &TestApp, email: &str, body: Value) -> Value {
    json_of(
        app.post_message_as(email, "general", &body).await,
        StatusCode::CREATED,
    )
    .await
}

/// A text file attached to a new message of `email`'s.
async fn post_with_file(app: &TestApp, email: &str, content: &str) -> Value {
    let upload = app
        .presigned(
            email,
            &json!({"room_id": "general", "file_name": "notes.txt", "content_type": "text/plain", "size": 3}),
        )
        .await;
    assert!(app.put_upload(&upload, b"abc").await.status().is_success());
    post(
        app,
        email,
        json!({"content": content, "file_ids": [upload["id"]]}),
    )
    .await
}

/// A conversation of `n` messages in `general`: replies, reactions, an edit, a delete, files.
async fn conversation(app: &TestApp, n: usize) -> Vec<Value> {
    let mut sent: Vec<Value> = Vec::new();
    for i in 0..n {
        let author = if i % 3 == 0 { BOB } else { ALICE };
        let message = match i {
            2 => post_with_file(app, author, "with a file").await,
            4 => {
                post(
                    app,
                    author,
                    json!({"content": "a reply", "reply_to": sent[1]["id"]}),
                )
                .await
            }
            _ => post(app, author, json!({"content": format!("message {i}")})).await,
        };
        sent.push(message);
    }
    let path = |m: &Value| format!("/api/rooms/general/messages/{}", m["id"].as_str().unwrap());
    for (who, emoji) in [
        (ALICE, "%F0%9F%91%8D"),
        (BOB, "%F0%9F%91%8D"),
        (BOB, "%F0%9F%8E%89"),
    ] {
        let reaction = format!("{}/reactions/{emoji}", path(&sent[1]));
        json_of(
            call(app, who, Method::PUT, &reaction, None).await,
            StatusCode::OK,
        )
        .await;
    }
    json_of(
        call(
            app,
            ALICE,
            Method::PATCH,
            &path(&sent[5]),
            Some(json!({"content": "edited"})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    json_of(
        call(app, ALICE, Method::DELETE, &path(&sent[7]), None).await,
        StatusCode::OK,
    )
    .await;
    sent
}

async fn list(app: &TestApp, email: &str, query: &str) -> Value {
    json_of(
        app.get_as(email, &format!("/api/rooms/general/messages{query}"))
            .await,
        StatusCode::OK,
    )
    .await
}

/// Every page of the room as `email` sees it: newest first walking `before=`, and oldest
/// first walking `after=`, `limit` at a time; and the replies to message `parent`.
async fn every_page(app: &TestApp, email: &str, limit: usize, parent: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut page = list(app, email, &format!("?limit={limit}")).await;
    loop {
        let more = page["has_more"].as_bool().unwrap();
        let oldest = page["messages"][0]["seq"].clone();
        pages.push(page);
        if !more {
            break;
        }
        page = list(app, email, &format!("?limit={limit}&before={oldest}")).await;
    }
    let mut after = 0;
    loop {
        let page = list(app, email, &format!("?limit={limit}&after={after}")).await;
        let more = page["has_more"].as_bool().unwrap();
        if let Some(last) = page["messages"].as_array().unwrap().last() {
            after = last["seq"].as_i64().unwrap();
        }
        pages.push(page);
        if !more {
            break;
        }
    }
    let replies = format!("/api/rooms/general/messages/{parent}/replies");
    pages.push(json_of(app.get_as(email, &replies).await, StatusCode::OK).await);
    pages
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.db).await.unwrap()
}

/// `general`'s message and storage counters, as the stats read them.
async fn room_counters(app: &TestApp) -> (i64, i64) {
    sqlx::query_as(
        "SELECT last_seq - deleted_count, storage_bytes FROM chat_rooms WHERE id = 'general'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap()
}

async fn hot(app: &TestApp) -> i64 {
    count(app, "SELECT count(*) FROM chat_messages").await
}

async fn segments(app: &TestApp) -> Vec<(String, i64, i64, i32)> {
    sqlx::query_as(
        "SELECT object_key, first_seq, last_seq, messages FROM chat_archive_segments ORDER BY first_seq",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
}

/// Makes the messages up to seq `up_to` (these tests' one room) two days old, older than `DAY`.
async fn two_days_old(app: &TestApp, up_to: i64) {
    sqlx::query("UPDATE chat_messages SET created_at = now() - interval '2 days' WHERE seq <= $1")
        .bind(up_to)
        .execute(&app.db)
        .await
        .unwrap();
}

fn seqs(page: &Value) -> Vec<i64> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn moving_by_count_in_batches_leaves_every_page_exactly_as_it_was() {
    let app = TestApp::spawn_with(|c| {
        with_cron(c);
        c.archive.keep_per_room = Some(5);
        c.archive.batch = 4;
        c.archive.batches_per_run = 3;
    })
    .await;
    app.room("general").await;
    let sent = conversation(&app, 30).await;
    let parent = sent[1]["id"].as_str().unwrap();
    let before_alice = every_page(&app, ALICE, 7, parent).await;
    let before_bob = every_page(&app, BOB, 4, parent).await;
    let last_event = before_alice[0]["last_event_id"].clone();

    let reports = cron_until_done(&app).await;
    // 25 messages in batches of 4, at most 3 batches a call: 12, 12, 1.
    let archived: Vec<i64> = reports
        .iter()
        .map(|r| r["archived"].as_i64().unwrap())
        .collect();
    assert_eq!(archived, [12, 12, 1]);
    assert!(reports[0]["more"].as_bool().unwrap() && reports[1]["more"].as_bool().unwrap());
    assert!(reports.iter().all(|r| r["deleted"] == 0));
    assert_eq!(hot(&app).await, 5);
    assert_eq!(
        count(&app, "SELECT count(*) FROM chat_message_files").await,
        0
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM chat_message_reactions").await,
        0
    );
    // The thumbnails and files of archived messages are not queued for deletion.
    assert_eq!(
        count(&app, "SELECT count(*) FROM chat_object_trash").await,
        0
    );
    let stored = segments(&app).await;
    assert_eq!(stored.len(), 7, "{stored:?}");
    assert_eq!((stored[0].1, stored.last().unwrap().2), (1, 25));
    for (key, ..) in &stored {
        assert!(
            matches!(
                app.app.storage.head(key).await.unwrap(),
                ObjectState::Present { .. }
            ),
            "{key}"
        );
    }

    let after_alice = every_page(&app, ALICE, 7, parent).await;
    assert_eq!(after_alice, before_alice);
    assert_eq!(every_page(&app, BOB, 4, parent).await, before_bob);
    assert_eq!(after_alice[0]["last_event_id"], last_event);
    // Pages of other sizes and cursors agree with the hot pages too.
    assert_eq!(
        seqs(&list(&app, ALICE, "?limit=10&before=8").await),
        (1..=7).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(&list(&app, ALICE, "?limit=3&after=24").await),
        [25, 26, 27]
    );
    assert_eq!(
        seqs(&list(&app, ALICE, "?limit=200").await),
        (1..=30).collect::<Vec<_>>()
    );
    // The archived file still serves.
    let file = &after_alice
        .iter()
        .flat_map(|p| p["messages"].as_array().unwrap().clone())
        .find(|m| m["seq"] == 3)
        .unwrap()["files"][0];
    let served = app
        .client
        .get(file["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(served.bytes().await.unwrap().as_ref(), b"abc");

    // A rerun finds nothing to do.
    assert_eq!(
        cron(&app).await,
        (
            StatusCode::OK,
            json!({"archived": 0, "deleted": 0, "more": false})
        )
    );
    assert_eq!(segments(&app).await, stored);
}

#[tokio::test]
async fn moving_by_age_takes_only_the_old_prefix_and_nothing_when_unset() {
    let app = TestApp::spawn_with(|c| {
        with_cron(c);
        c.archive.after = Some(DAY);
    })
    .await;
    app.room("general").await;
    for i in 0..6 {
        app.send("general", &format!("m{i}")).await;
    }
    two_days_old(&app, 4).await;
    let before = list(&app, ALICE, "?limit=3&before=6").await;
    assert_eq!(
        cron(&app).await,
        (
            StatusCode::OK,
            json!({"archived": 4, "deleted": 0, "more": false})
        )
    );
    assert_eq!(hot(&app).await, 2);
    assert_eq!(segments(&app).await.len(), 1);
    assert_eq!(list(&app, ALICE, "?limit=3&before=6").await, before);

    // With neither rule set, the cron moves nothing.
    let idle = TestApp::spawn_with(with_cron).await;
    idle.room("general").await;
    idle.seed_messages("general", 20).await;
    sqlx::query("UPDATE chat_messages SET created_at = now() - interval '400 days'")
        .execute(&idle.db)
        .await
        .unwrap();
    assert_eq!(
        cron(&idle).await,
        (
            StatusCode::OK,
            json!({"archived": 0, "deleted": 0, "more": false})
        )
    );
    assert_eq!(hot(&idle).await, 20);
}

#[tokio::test]
async fn the_cron_is_for_the_scheduler_only() {
    let app = TestApp::spawn_with(with_cron).await;
    let response = app
        .client
        .get(app.url("/api/cron/archive"))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let response = app
        .client
        .post(app.url("/api/cron/archive"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let response = app
        .client
        .post(app.url("/api/cron/archive"))
        .bearer_auth(SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_move_stopped_at_any_step_loses_nothing_and_duplicates_nothing() {
    for step in [Step::Uploaded, Step::Recorded, Step::Committed] {
        let app = TestApp::spawn_with(|c| {
            with_cron(c);
            c.archive.keep_per_room = Some(2);
            c.archive.fault = Some(Fault::at(step));
        })
        .await;
        app.room("general").await;
        let sent = conversation(&app, 8).await;
        let parent = sent[1]["id"].as_str().unwrap();
        let before = every_page(&app, ALICE, 3, parent).await;

        let (status, body) = cron(&app).await;
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{step:?}: {body}"
        );
        let key = "archive/general/1-6.";
        let objects_named: Vec<String> = segments(&app).await.into_iter().map(|s| s.0).collect();
        match step {
            // The object is written; no row changed.
            Step::Uploaded | Step::Recorded => {
                assert_eq!(hot(&app).await, 8, "{step:?}");
                assert!(objects_named.is_empty(), "{step:?}");
            }
            Step::Committed => {
                assert_eq!(hot(&app).await, 2);
                assert_eq!(objects_named.len(), 1);
                assert!(objects_named[0].starts_with(key), "{objects_named:?}");
            }
        }
        assert_eq!(
            every_page(&app, ALICE, 3, parent).await,
            before,
            "{step:?} before the rerun"
        );

        let (status, report) = cron(&app).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        let moved = if step == Step::Committed { 0 } else { 6 };
        assert_eq!(
            report,
            json!({"archived": moved, "deleted": 0, "more": false}),
            "{step:?}"
        );
        assert_eq!(hot(&app).await, 2);
        let stored = segments(&app).await;
        assert_eq!(stored.len(), 1, "{step:?}: {stored:?}");
        assert!(
            stored[0].0.starts_with(key) && stored[0].3 == 6,
            "{stored:?}"
        );
        assert_eq!(
            every_page(&app, ALICE, 3, parent).await,
            before,
            "{step:?} after the rerun"
        );
        let all = seqs(&list(&app, ALICE, "?limit=200").await);
        assert_eq!(all, (1..=8).collect::<Vec<_>>(), "{step:?}");
    }
}

/// The newest `STREAM_MAX_BACKLOG` events stay hot whatever the rules, so a stream that may
/// resume (at most that far behind) never needs what left the hot log.
#[tokio::test]
async fn the_newest_backlog_stays_hot_so_every_resume_a_stream_serves_catches_up_through_the_boundary()
 {
    let app = TestApp::spawn_with(|c| {
        with_cron(c);
        c.archive.keep_per_room = Some(1);
        c.stream.max_backlog = 3;
    })
    .await;
    app.room("general").await;
    for i in 0..8 {
        app.send("general", &format!("m{i}")).await;
    }
    cron_until_done(&app).await;
    // Keeping 1 would move 7; the backlog keeps events 6..8 hot.
    assert_eq!(hot(&app).await, 3);
    let floor = count(
        &app,
        "SELECT history_floor FROM chat_rooms WHERE id = 'general'",
    )
    .await;
    assert_eq!(floor, 5);
    // 3 behind, the most a stream resumes: every message after it, in order, no reset.
    let mut stream = RawStream::open(&app, "general", "", Some("5")).await;
    assert_eq!(stream.next(WAIT).await.unwrap().retry, Some(1000));
    for id in ["6", "7", "8"] {
        let next = stream.next_event(WAIT).await.unwrap();
        assert_eq!(
            (next.event.as_deref(), next.id.as_deref()),
            (Some("message"), Some(id))
        );
    }
    // Further back is a reset, as it always was.
    let mut stream = RawStream::open(&app, "general", "", Some("4")).await;
    assert_eq!(stream.next(WAIT).await.unwrap().retry, Some(1000));
    let reset = stream.next_event(WAIT).await.unwrap();
    assert_eq!(reset.event.as_deref(), Some("reset"));
    assert_eq!(reset.json(), json!({"last_seq": 8, "last_event_id": 8}));
    // The list still reads through the boundary.
    assert_eq!(
        seqs(&list(&app, ALICE, "?limit=200").await),
        (1..=8).collect::<Vec<_>>()
    );
}

/// Two apps on one database and one bucket: the first archives by count, the second keeps
/// `RETENTION_DAYS` (the ages are set in SQL before the move, so the segment holds them).
#[tokio::test]
async fn retention_deletes_old_messages_hot_and_archived_with_their_files() {
    let database_url = fresh_database().await;
    let root = tempfile_dir();
    let archiving = {
        let s3 = EmbeddedS3::start("chat-test", Some(root.clone())).unwrap();
        let mut config = base_config(&database_url, &s3);
        with_cron(&mut config);
        config.archive.keep_per_room = Some(2);
        TestApp::serve(config, database_url.clone(), s3).await
    };
    archiving.room("general").await;
    let m1 = post_with_file(&archiving, ALICE, "old, with a file").await;
    let m2 = post(
        &archiving,
        BOB,
        json!({"content": "old reply", "reply_to": m1["id"]}),
    )
    .await;
    post(&archiving, ALICE, json!({"content": "old 3"})).await;
    let m4 = post(&archiving, ALICE, json!({"content": "recent, archived"})).await;
    let m5 = post_with_file(&archiving, BOB, "old, hot, with a file").await;
    let m6 = post(
        &archiving,
        ALICE,
        json!({"content": "recent, hot", "reply_to": m5["id"]}),
    )
    .await;
    sqlx::query(
        "UPDATE chat_messages SET created_at = now() - interval '5 days' WHERE seq IN (1, 2, 3, 5)",
    )
    .execute(&archiving.db)
    .await
    .unwrap();
    let old_file =
        list(&archiving, ALICE, "?limit=1&after=0").await["messages"][0]["files"][0].clone();
    let old_key: String =
        sqlx::query_scalar("SELECT object_key FROM chat_message_files WHERE id = $1::text::uuid")
            .bind(old_file["id"].as_str().unwrap())
            .fetch_one(&archiving.db)
            .await
            .unwrap();
    let hot_key: String = sqlx::query_scalar(
        "SELECT object_key FROM chat_message_files WHERE message_id = $1::text::uuid",
    )
    .bind(m5["id"].as_str().unwrap())
    .fetch_one(&archiving.db)
    .await
    .unwrap();
    assert_eq!(
        cron(&archiving).await.1,
        json!({"archived": 4, "deleted": 0, "more": false})
    );
    // The operator's counters (`GET /api/admin/stats`) hold across the move: six messages,
    // two 3-byte files, wherever their rows are.
    assert_eq!(room_counters(&archiving).await, (6, 6));
    let old_segment = segments(&archiving).await[0].0.clone();
    assert!(
        client_get(&archiving, old_file["url"].as_str().unwrap())
            .await
            .is_success()
    );

    let keeping = {
        let s3 = EmbeddedS3::start("chat-test", Some(root.clone())).unwrap();
        let mut config = base_config(&database_url, &s3);
        with_cron(&mut config);
        config.stream.max_backlog = 1000;
        config.archive.retention = Some(3 * DAY);
        TestApp::serve(config, database_url.clone(), s3).await
    };
    assert_eq!(
        cron(&keeping).await,
        (
            StatusCode::OK,
            json!({"archived": 0, "deleted": 4, "more": false})
        )
    );
    let page = list(&keeping, ALICE, "?limit=50").await;
    assert_eq!(seqs(&page), [4, 6]);
    // Both files went with their messages, the archived one and the hot one.
    assert_eq!(room_counters(&keeping).await, (2, 0));
    assert_eq!(page["messages"][0]["id"], m4["id"]);
    // The reply's quote of the deleted message is gone with it.
    assert_eq!(page["messages"][1]["reply_to"]["excerpt"], "");
    assert_eq!(
        seqs(&list(&keeping, ALICE, "?limit=50&after=0").await),
        [4, 6]
    );
    assert_eq!(
        seqs(&list(&keeping, ALICE, "?limit=1&before=4").await),
        Vec::<i64>::new()
    );
    // The archived message's file and the hot one's no longer serve; the old segment is gone.
    for key in [&old_key, &hot_key, &old_segment] {
        assert_eq!(
            keeping.app.storage.head(key).await.unwrap(),
            ObjectState::Missing,
            "{key}"
        );
    }
    assert!(
        !client_get(&keeping, old_file["url"].as_str().unwrap())
            .await
            .is_success()
    );
    let stored = segments(&keeping).await;
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].1, stored[0].2, stored[0].3), (4, 4, 1));
    assert_eq!(
        count(&keeping, "SELECT count(*) FROM chat_object_trash").await,
        0
    );
    // The replies of a deleted message are listed no more than it is.
    let replies = format!(
        "/api/rooms/general/messages/{}/replies",
        m1["id"].as_str().unwrap()
    );
    assert_error(
        keeping.get_as(ALICE, &replies).await,
        StatusCode::NOT_FOUND,
        "message_not_found",
    )
    .await;
    let _ = m2;
    let _ = m6;

    // A stream resuming from before the window is reset.
    let mut stream = RawStream::open(&keeping, "general", "", Some("4")).await;
    assert_eq!(stream.next(WAIT).await.unwrap().retry, Some(1000));
    let reset = stream.next_event(WAIT).await.unwrap();
    assert_eq!(reset.event.as_deref(), Some("reset"));
    // A rerun has nothing left to delete.
    assert_eq!(
        cron(&keeping).await.1,
        json!({"archived": 0, "deleted": 0, "more": false})
    );
}

async fn client_get(app: &TestApp, url: &str) -> StatusCode {
    app.client.get(url).send().await.unwrap().status()
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("chat-archive-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn edits_reactions_replies_and_deletes_bring_an_archived_message_back() {
    let app = TestApp::spawn_with(|c| {
        with_cron(c);
        c.archive.keep_per_room = Some(2);
    })
    .await;
    app.room("general").await;
    let mut sent = Vec::new();
    for i in 0..6 {
        sent.push(match i {
            // One with a file: bringing it back must not count its bytes twice.
            1 => post_with_file(&app, ALICE, "m1").await,
            _ => post(&app, ALICE, json!({"content": format!("m{i}")})).await,
        });
    }
    assert_eq!(cron(&app).await.1["archived"], 4);
    assert_eq!(room_counters(&app).await, (6, 3));
    let path = |m: &Value| format!("/api/rooms/general/messages/{}", m["id"].as_str().unwrap());
    let mut stream = RawStream::open(&app, "general", "", None).await;
    assert_eq!(stream.next(WAIT).await.unwrap().retry, Some(1000));

    // An edit of an archived message: it is hot again, changed, and on the stream.
    let edited = json_of(
        call(
            &app,
            ALICE,
            Method::PATCH,
            &path(&sent[1]),
            Some(json!({"content": "changed"})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (edited["seq"].as_i64(), edited["content"].as_str()),
        (Some(2), Some("changed"))
    );
    let event = stream.next_event(WAIT).await.unwrap();
    assert_eq!(event.event.as_deref(), Some("message.updated"));
    assert_eq!(event.json()["content"], "changed");
    assert_eq!(edited["files"].as_array().map(Vec::len), Some(1));
    assert_eq!(room_counters(&app).await, (6, 3));
    // A reaction, by someone else, on another archived one.
    let reaction = format!("{}/reactions/%F0%9F%91%8D", path(&sent[0]));
    let reacted = json_of(
        call(&app, BOB, Method::PUT, &reaction, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        reacted["reactions"],
        json!([{"emoji": "👍", "count": 1, "me": true}])
    );
    // A reply to a third: its original counts it.
    let reply = post(
        &app,
        BOB,
        json!({"content": "late reply", "reply_to": sent[2]["id"]}),
    )
    .await;
    assert_eq!(reply["reply_to"]["seq"], 3);
    // A delete of a fourth.
    let gone = json_of(
        call(&app, ALICE, Method::DELETE, &path(&sent[3]), None).await,
        StatusCode::OK,
    )
    .await;
    assert!(gone["deleted_at"].is_string());
    assert_eq!(hot(&app).await, 2 + 4 + 1);

    let expected = |page: &Value| {
        let m = page["messages"].as_array().unwrap();
        assert_eq!(m.len(), 7);
        assert_eq!(m[1]["content"], "changed");
        assert_eq!(m[0]["reactions"][0]["count"], 1);
        assert_eq!(m[2]["reply_count"], 1);
        assert!(m[3]["deleted_at"].is_string());
    };
    let page = list(&app, BOB, "?limit=50").await;
    expected(&page);
    // Archived again, the newest state is what pages show (the older segment's copy is stale).
    let again = cron(&app).await.1;
    assert_eq!(again["archived"], 5, "{again}");
    assert_eq!(list(&app, BOB, "?limit=50").await, page);
    assert_eq!(
        list(&app, BOB, "?limit=3&before=5").await["messages"],
        json!(page["messages"].as_array().unwrap()[1..4])
    );
    // Editing a message that does not exist anywhere is still 404.
    let nowhere = format!("/api/rooms/general/messages/{}", uuid::Uuid::now_v7());
    assert_error(
        call(
            &app,
            ALICE,
            Method::PATCH,
            &nowhere,
            Some(json!({"content": "x"})),
        )
        .await,
        StatusCode::NOT_FOUND,
        "message_not_found",
    )
    .await;
}

/// Retention raises the room's `history_floor` inside the backlog: a room the hub already
/// watches (its answer for the room from memory) resets resume points before it too.
#[tokio::test]
async fn a_room_the_hub_already_watches_resets_resume_points_before_a_new_floor() {
    let app = TestApp::spawn_with(|c| {
        with_cron(c);
        c.stream.max_backlog = 1000;
        c.archive.retention = Some(DAY);
    })
    .await;
    app.room("general").await;
    for i in 0..8 {
        app.send("general", &format!("m{i}")).await;
    }
    two_days_old(&app, 5).await;
    // The hub watches the room, and knows it as it was before retention ran.
    let mut watching = RawStream::open_as(&app, BOB, "general", "", None).await;
    assert_eq!(watching.next(WAIT).await.unwrap().retry, Some(1000));
    cron_until_done(&app).await;
    assert_eq!(hot(&app).await, 3);
    // A few ticks: the hub's answer for the room is fresh, from memory.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut stream = RawStream::open(&app, "general", "", Some("2")).await;
    assert_eq!(stream.next(WAIT).await.unwrap().retry, Some(1000));
    let reset = stream.next_event(WAIT).await.unwrap();
    assert_eq!(reset.event.as_deref(), Some("reset"), "{reset:?}");
    // After the floor: the hot log has every change since.
    let mut stream = RawStream::open(&app, "general", "", Some("6")).await;
    assert_eq!(stream.next(WAIT).await.unwrap().retry, Some(1000));
    let next = stream.next_event(WAIT).await.unwrap();
    assert_eq!(
        (next.event.as_deref(), next.id.as_deref()),
        (Some("message"), Some("7"))
    );
}
