//! `GET /api/admin/stats`: the operator's numbers, for `ADMIN_EMAILS` only.

use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::config::Admins;

use std::time::Duration;

use crate::helpers::{ALICE, BOB, TestApp, assert_error};
use crate::sse_client::RawStream;

const OPS: &str = "ops@example.com";

async fn admin_app() -> TestApp {
    // Listed in another case, with a space: matched case-insensitively.
    TestApp::spawn_with(|c| c.admins = Admins::parse(" Ops@Example.com, root@example.com")).await
}

async fn stats(app: &TestApp) -> Value {
    let response = app.get_as(OPS, "/api/admin/stats").await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Presigns, PUTs and attaches a file of `size` bytes to a new message in `room`.
async fn send_file(app: &TestApp, room: &str, size: usize) -> Value {
    let bytes = vec![b'x'; size];
    let upload = app
        .presigned(
            ALICE,
            &json!({"room_id": room, "file_name": "data.txt", "content_type": "text/plain",
                    "size": size}),
        )
        .await;
    assert!(app.put_upload(&upload, &bytes).await.status().is_success());
    let sent = app
        .post_message(room, &json!({"content": "", "file_ids": [upload["id"]]}))
        .await;
    assert_eq!(sent.status(), StatusCode::CREATED);
    sent.json().await.unwrap()
}

async fn delete(app: &TestApp, room: &str, message: &Value) {
    let response = app
        .client
        .delete(app.url(&format!(
            "/api/rooms/{room}/messages/{}",
            message["id"].as_str().unwrap()
        )))
        .bearer_auth(app.token(ALICE))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

fn room_ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn only_the_admins_named_in_admin_emails_may_read_the_stats() {
    let app = admin_app().await;
    for user in [ALICE, BOB, "ops@example.org"] {
        assert_error(
            app.get_as(user, "/api/admin/stats").await,
            StatusCode::FORBIDDEN,
            "not_admin",
        )
        .await;
    }
    let response = app
        .client
        .get(app.url("/api/admin/stats"))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    for admin in [OPS, "ROOT@example.com"] {
        let response = app.get_as(admin, "/api/admin/stats").await;
        assert_eq!(response.status(), StatusCode::OK, "{admin}");
    }
    // Unset: nobody.
    let app = TestApp::spawn().await;
    assert_error(
        app.get_as(OPS, "/api/admin/stats").await,
        StatusCode::FORBIDDEN,
        "not_admin",
    )
    .await;
}

#[tokio::test]
async fn the_figures_follow_posts_files_uploads_and_deletes() {
    let app = admin_app().await;
    let empty = stats(&app).await;
    let db = &empty["database"];
    assert_eq!(
        (
            db["rooms"].as_i64(),
            db["messages"].as_i64(),
            db["storage_bytes"].as_i64()
        ),
        (Some(0), Some(0), Some(0))
    );
    assert_eq!(db["pending_uploads"], 0);
    assert_eq!(db["archived_segments"], 0);

    app.room("general").await;
    app.room("other").await;
    let first = app.send("general", "one").await;
    app.send("general", "two").await;
    app.send("other", "three").await;
    let with_file = send_file(&app, "general", 1234).await;
    send_file(&app, "other", 100).await;
    // Pending: presigned, never attached.
    let pending = app
        .presigned(
            ALICE,
            &json!({"room_id": "general", "file_name": "later.txt",
                    "content_type": "text/plain", "size": 77}),
        )
        .await;
    assert!(pending["id"].is_string());

    let now = stats(&app).await;
    let db = &now["database"];
    assert_eq!(db["rooms"], 2);
    assert_eq!(db["messages"], 5);
    assert_eq!(db["storage_bytes"], 1334);
    assert_eq!(db["pending_uploads"], 1);
    assert_eq!(db["pending_upload_bytes"], 77);
    let general = &db["top_rooms_by_messages"][0];
    assert_eq!(
        (
            general["id"].as_str(),
            general["messages"].as_i64(),
            general["storage_bytes"].as_i64()
        ),
        (Some("general"), Some(3), Some(1234))
    );

    // A delete takes the message out, and its file's bytes with it; deleting it again
    // changes nothing.
    delete(&app, "general", &with_file).await;
    delete(&app, "general", &with_file).await;
    delete(&app, "general", &first).await;
    let after = stats(&app).await;
    let db = &after["database"];
    assert_eq!(db["messages"], 3);
    assert_eq!(db["storage_bytes"], 100);
    assert_eq!(room_ids(&db["top_rooms_by_messages"]), ["other", "general"]);
    assert_eq!(room_ids(&db["top_rooms_by_storage"]), ["other", "general"]);
    assert_eq!(db["top_rooms_by_storage"][1]["storage_bytes"], 0);

    // The counters agree with a count of the rows.
    let (messages, bytes): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM chat_messages WHERE deleted_at IS NULL),
                (SELECT COALESCE(sum(size), 0)::int8 FROM chat_message_files)",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        (db["messages"].as_i64(), db["storage_bytes"].as_i64()),
        (Some(messages), Some(bytes))
    );
}

#[tokio::test]
async fn the_top_lists_are_the_20_largest_rooms_largest_first() {
    let app = admin_app().await;
    // Room r{i} gets i messages; every third also i * 10 bytes of files.
    for i in 1..=25 {
        let room = format!("r{i:02}");
        app.room(&room).await;
        app.seed_messages(&room, i).await;
        if i % 3 == 0 {
            sqlx::query(
                "INSERT INTO chat_message_files (id, message_id, object_key, file_name, content_type, size)
                 SELECT gen_random_uuid(), m.id, 'k/' || m.id, 'f.txt', 'text/plain', 10
                 FROM chat_messages m WHERE m.room_id = $1",
            )
            .bind(&room)
            .execute(&app.db)
            .await
            .unwrap();
        }
    }
    // A tie on messages is broken by id.
    app.room("a-tie").await;
    app.seed_messages("a-tie", 25).await;

    let figures = stats(&app).await;
    let db = &figures["database"];
    assert_eq!(db["rooms"], 26);
    assert_eq!(db["messages"], (1..=25).sum::<i64>() + 25);
    let by_messages = room_ids(&db["top_rooms_by_messages"]);
    let mut expected = vec!["a-tie".to_owned()];
    expected.extend((6..=25).rev().map(|i| format!("r{i:02}")));
    expected.truncate(20);
    assert_eq!(by_messages, expected);
    let counts: Vec<i64> = db["top_rooms_by_messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["messages"].as_i64().unwrap())
        .collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");

    // By storage: the rooms with files, most bytes first, then the rest by id.
    let by_storage = room_ids(&db["top_rooms_by_storage"]);
    let with_files: Vec<String> = (1..=25)
        .rev()
        .filter(|i| i % 3 == 0)
        .map(|i| format!("r{i:02}"))
        .collect();
    assert_eq!(by_storage[..with_files.len()], with_files);
    assert_eq!(by_storage.len(), 20);
    assert_eq!(by_storage[with_files.len()], "a-tie");
    assert_eq!(
        db["storage_bytes"],
        (1..=25).filter(|i| i % 3 == 0).map(|i| i * 10).sum::<i64>()
    );
}

#[tokio::test]
async fn the_instance_figures_count_each_route_and_its_latency() {
    let app = admin_app().await;
    app.room("general").await;
    for _ in 0..3 {
        assert_eq!(
            app.list_messages("general", "").await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(app.list_rooms().await.status(), StatusCode::OK);
    let first = stats(&app).await;
    let routes = &first["instance"]["routes"];
    let route = |figures: &Value, name: &str| -> Value {
        figures["instance"]["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["route"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let list = route(&first, "GET /api/rooms/{room}/messages");
    assert_eq!(list["count"], 3, "{routes}");
    assert!(list["p50_ms"].as_f64().unwrap() > 0.0);
    assert!(list["p99_ms"].as_f64().unwrap() >= list["p50_ms"].as_f64().unwrap());
    assert_eq!(route(&first, "GET /api/rooms")["count"], 1);
    assert_eq!(route(&first, "POST /api/rooms")["count"], 1);
    // This very request is counted once it has answered.
    assert!(route(&first, "GET /api/admin/stats").is_null());

    app.list_messages("general", "").await;
    let second = stats(&app).await;
    assert_eq!(route(&second, "GET /api/rooms/{room}/messages")["count"], 4);
    assert_eq!(route(&second, "GET /api/admin/stats")["count"], 1);
    let instance = &second["instance"];
    assert_eq!(instance["open_streams"], 0);
    assert_eq!(instance["watched_rooms"], 0);
    assert_eq!(instance["db_statements_total"], 0);
    assert!(instance["uptime_seconds"].as_f64().unwrap() > 0.0);

    // A stream open: the hub watches its room and polls it.
    let mut stream = RawStream::open(&app, "general", "", None).await;
    assert!(stream.next(Duration::from_secs(5)).await.is_some());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let third = stats(&app).await;
    let instance = &third["instance"];
    assert_eq!(instance["open_streams"], 1);
    assert_eq!(instance["watched_rooms"], 1);
    assert!(instance["db_statements_total"].as_u64().unwrap() > 0);
    assert!(instance["db_statements_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(route(&third, "GET /api/rooms/{room}/stream")["count"], 1);
}
