use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{ALICE, BOB, TestApp, assert_error};

#[tokio::test]
async fn posting_returns_201_with_the_stored_message() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let response = app
        .post_message("general", &json!({"content": "hello"}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["room_id"], "general");
    assert_eq!(message["seq"], 1);
    assert_eq!(message["content"], "hello");
    assert_eq!(message["user_email"], ALICE);
    assert_eq!(message["client_id"], Value::Null);
    assert_eq!(message["files"], json!([]));
    let id = Uuid::parse_str(message["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7, "message ids are UUIDv7");
    assert!(chrono::DateTime::parse_from_rfc3339(message["created_at"].as_str().unwrap()).is_ok());
}

#[tokio::test]
async fn seqs_count_up_per_room() {
    let app = TestApp::spawn().await;
    app.room("a").await;
    app.room("b").await;
    assert_eq!(app.send("a", "1").await["seq"], 1);
    assert_eq!(app.send("a", "2").await["seq"], 2);
    assert_eq!(app.send("b", "1").await["seq"], 1);
    assert_eq!(app.send("a", "3").await["seq"], 3);
}

#[tokio::test]
async fn content_must_be_1_to_4000_characters() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let ok = app
        .post_message("general", &json!({"content": "é".repeat(4000)}))
        .await;
    assert_eq!(ok.status(), StatusCode::CREATED);
    for (content, case) in [
        ("a".repeat(4001), "4001 chars"),
        (String::new(), "empty"),
        ("  \n\t ".into(), "blank"),
    ] {
        let response = app
            .post_message("general", &json!({"content": content}))
            .await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_field").await;
        let _ = case;
    }
    let missing = app.post_message("general", &json!({})).await;
    assert_error(missing, StatusCode::BAD_REQUEST, "invalid_field").await;
}

#[tokio::test]
async fn the_author_comes_from_the_token_even_when_the_body_names_someone_else() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let body =
        json!({"content": "hi", "user_email": "ceo@example.com", "email": "ceo@example.com"});
    let message: Value = app
        .post_message_as(BOB, "general", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(message["user_email"], BOB);
    let listed: Value = app.list_messages("general", "").await.json().await.unwrap();
    assert_eq!(listed["messages"][0]["user_email"], BOB);
}

#[tokio::test]
async fn a_repeated_client_id_returns_the_stored_message_with_200_and_stores_nothing() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let client_id = Uuid::new_v4();
    let body = json!({"content": "once", "client_id": client_id});
    let first = app.post_message("general", &body).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["client_id"], client_id.to_string());

    let again = app
        .post_message(
            "general",
            &json!({"content": "changed", "client_id": client_id}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["content"], "once");

    // The failed duplicate did not burn a seq: the next message is 2.
    assert_eq!(app.send("general", "next").await["seq"], 2);
    let listed: Value = app.list_messages("general", "").await.json().await.unwrap();
    assert_eq!(listed["messages"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn concurrent_retries_with_one_client_id_store_one_message() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let body = json!({"content": "once", "client_id": Uuid::new_v4()});
    let responses =
        futures_util::future::join_all((0..8).map(|_| app.post_message("general", &body))).await;
    let statuses: Vec<StatusCode> = responses.iter().map(|r| r.status()).collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::OK),
        "{statuses:?}"
    );
    let (last_seq,): (i64,) =
        sqlx::query_as("SELECT last_seq FROM chat_rooms WHERE id = 'general'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(last_seq, 1);
}

#[tokio::test]
async fn unusual_content_round_trips_byte_for_byte() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let contents = [
        "'; DROP TABLE chat_messages; --",
        "Robert'); DELETE FROM chat_rooms WHERE ('1'='1",
        "<script>alert(1)</script>",
        "emoji 👩‍👩‍👧‍👦🔥 and flags 🇳🇿",
        "עברית ومعها العربية",
        "line one\nline two\r\nline three\n",
        "  padded  ",
        "nul-free \\u0000 text with \u{7f} and tabs\t",
        "%s %n {{}} ${x} $1",
    ];
    for content in contents {
        let stored = app.send("general", content).await;
        assert_eq!(stored["content"], content);
    }
    let listed: Value = app.list_messages("general", "").await.json().await.unwrap();
    let listed: Vec<&str> = listed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(listed, contents);
}

#[tokio::test]
async fn posting_to_an_unknown_room_is_404() {
    let app = TestApp::spawn().await;
    let response = app.post_message("nope", &json!({"content": "hi"})).await;
    assert_error(response, StatusCode::NOT_FOUND, "room_not_found").await;
}

#[tokio::test]
async fn more_than_ten_file_ids_is_400() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let ids: Vec<Uuid> = (0..11).map(|_| Uuid::new_v4()).collect();
    let response = app
        .post_message("general", &json!({"content": "x", "file_ids": ids}))
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_field").await;
}

#[tokio::test]
async fn sixteen_concurrent_writers_get_gapless_distinct_seqs() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let writers = (0..16).map(|w| {
        let app = &app;
        async move {
            let mut seqs = Vec::new();
            for i in 0..20 {
                seqs.push(
                    app.send("general", &format!("w{w} m{i}")).await["seq"]
                        .as_i64()
                        .unwrap(),
                );
            }
            seqs
        }
    });
    let mut all: Vec<i64> = futures_util::future::join_all(writers)
        .await
        .into_iter()
        .flatten()
        .collect();
    all.sort_unstable();
    assert_eq!(all, (1..=320).collect::<Vec<_>>());
}

/// Every post updates its room's row (the next seq and event id) under the row's lock. That
/// update must be HOT, a new version on the same page with no new index entry: an index on a
/// column a post changes would make each post write an entry in every room index, and each
/// lookup of a busy room walk its dead versions
/// (`migrations/20261204000001_hot_room_rows.sql`). So must the author's read mark be,
/// when they post again within 2 s.
#[tokio::test]
async fn posts_update_their_rooms_row_and_read_mark_without_new_index_entries() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    for i in 0..20 {
        app.send("general", &format!("m{i}")).await;
    }
    // The server's backends report their counts to Postgres's statistics within about a
    // second of going idle.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (updated, hot, marks, hot_marks): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT r.n_tup_upd, r.n_tup_hot_upd, k.n_tup_upd, k.n_tup_hot_upd
             FROM pg_stat_user_tables r, pg_stat_user_tables k
             WHERE r.relname = 'chat_rooms' AND k.relname = 'chat_read_marks'",
        )
        .fetch_one(&app.db)
        .await
        .unwrap();
        if updated >= 20 && marks >= 19 {
            assert_eq!(hot, updated, "room row updates that were not HOT");
            // The first post made the mark; one posted more than 2 s after it stamps it again.
            assert!(
                hot_marks + 2 >= marks,
                "{hot_marks} of {marks} mark updates HOT"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Postgres counted only {updated} room row updates"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
