use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, assert_error};

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
    sqlx::query("ANALYZE").execute(&app.db).await.unwrap();
    let id = "'0190a0b0-0000-7000-8000-000000000000'::uuid";
    // The API's statements, with representative parameters.
    let queries: [&str; 10] = [
        "SELECT id, name, created_at, last_seq FROM chat_rooms ORDER BY id LIMIT 1000",
        "SELECT m.id FROM chat_messages m WHERE m.room_id = 'room-3' AND m.seq > 0 ORDER BY m.seq DESC LIMIT 101",
        "SELECT m.id FROM chat_messages m WHERE m.room_id = 'room-3' AND m.seq < 900 ORDER BY m.seq DESC LIMIT 101",
        "SELECT m.id FROM chat_messages m WHERE m.room_id = 'room-3' AND m.seq > 900 ORDER BY m.seq ASC LIMIT 101",
        "SELECT m.id FROM chat_messages m WHERE m.room_id = 'room-3' AND m.seq > 10 AND m.seq <= 20 ORDER BY m.seq ASC LIMIT 500",
        &format!(
            "SELECT m.id FROM chat_messages m WHERE m.room_id = 'room-3' AND m.client_id = {id}"
        ),
        &format!("SELECT f.id FROM chat_message_files f WHERE f.message_id = {id}"),
        "SELECT last_seq FROM chat_rooms WHERE id = 'room-3'",
        "SELECT id, last_seq FROM chat_rooms WHERE id = ANY(ARRAY['room-1', 'room-2'])",
        &format!("SELECT id FROM chat_uploads WHERE id = ANY(ARRAY[{id}])"),
    ];
    for sql in queries {
        let plan: Vec<(String,)> = sqlx::query_as(&format!("EXPLAIN {sql}"))
            .fetch_all(&app.db)
            .await
            .unwrap();
        let plan: String = plan
            .into_iter()
            .map(|(line,)| line)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            plan.contains("Index"),
            "no index in the plan of {sql}:\n{plan}"
        );
        assert!(
            !plan.contains("Seq Scan on chat_messages"),
            "{sql}:\n{plan}"
        );
    }
}
