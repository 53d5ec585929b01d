//! The orphan-upload cleanup cron.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ALICE, TestApp, assert_error};

const SECRET: &str = "cron-secret-for-tests";

async fn app() -> TestApp {
    let app = TestApp::spawn_with(|c| c.storage.cron_secret = Some(SECRET.into())).await;
    app.room("general").await;
    app
}

/// Presigns and PUTs `n` uploads; returns their presign bodies.
async fn uploads(app: &TestApp, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for i in 0..n {
        let upload = app
            .presigned(ALICE, &json!({"room_id": "general", "file_name": format!("f{i}.txt"), "content_type": "text/plain", "size": 3}))
            .await;
        assert!(app.put_upload(&upload, b"abc").await.status().is_success());
        out.push(upload);
    }
    out
}

async fn age_uploads(app: &TestApp, hours: i64) {
    sqlx::query("UPDATE chat_uploads SET created_at = now() - make_interval(hours => $1)")
        .bind(hours as i32)
        .execute(&app.db)
        .await
        .unwrap();
}

async fn run(app: &TestApp) -> reqwest::Response {
    app.client
        .get(app.url("/api/cron/cleanup-uploads"))
        .bearer_auth(SECRET)
        .send()
        .await
        .unwrap()
}

async fn pending(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM chat_uploads")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn old_unattached_uploads_lose_their_objects_and_rows() {
    let app = app().await;
    let old = uploads(&app, 3).await;
    let attached = uploads(&app, 1).await;
    let sent = app
        .post_message(
            "general",
            &json!({"content": "kept", "file_ids": [attached[0]["id"]]}),
        )
        .await;
    assert_eq!(sent.status(), StatusCode::CREATED);
    age_uploads(&app, 25).await;
    let young = uploads(&app, 2).await;

    let response = run(&app).await;
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["deleted"], 3);
    assert_eq!(report["more"], false);
    assert_eq!(pending(&app).await, 2, "the young uploads stay");

    // The old objects are gone from storage; the young and attached ones are not.
    for upload in &old {
        let id = upload["id"].as_str().unwrap();
        let attach = app
            .post_message("general", &json!({"content": "x", "file_ids": [id]}))
            .await;
        assert_error(attach, StatusCode::BAD_REQUEST, "invalid_upload").await;
    }
    let listed: Value = app.list_messages("general", "").await.json().await.unwrap();
    let url = listed["messages"][0]["files"][0]["url"].as_str().unwrap();
    assert_eq!(
        app.client.get(url).send().await.unwrap().status(),
        StatusCode::OK
    );
    let attach = app
        .post_message(
            "general",
            &json!({"content": "x", "file_ids": [young[0]["id"]]}),
        )
        .await;
    assert_eq!(attach.status(), StatusCode::CREATED);

    let again: Value = run(&app).await.json().await.unwrap();
    assert_eq!(again["deleted"], 0);
}

#[tokio::test]
async fn two_runs_at_once_split_the_work_without_failing() {
    let app = app().await;
    uploads(&app, 250).await;
    age_uploads(&app, 48).await;
    let (a, b) = tokio::join!(run(&app), run(&app));
    assert_eq!(a.status(), StatusCode::OK);
    assert_eq!(b.status(), StatusCode::OK);
    let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
    assert_eq!(
        a["deleted"].as_u64().unwrap() + b["deleted"].as_u64().unwrap(),
        250
    );
    assert_eq!(pending(&app).await, 0);
}

#[tokio::test]
async fn only_the_scheduler_may_run_it() {
    let app = app().await;
    let no_token = app
        .client
        .get(app.url("/api/cron/cleanup-uploads"))
        .send()
        .await
        .unwrap();
    assert_error(no_token, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let user_token = app
        .client
        .get(app.url("/api/cron/cleanup-uploads"))
        .bearer_auth(app.token(ALICE))
        .send()
        .await
        .unwrap();
    assert_error(user_token, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // Without CRON_SECRET configured, nobody may.
    let open = TestApp::spawn().await;
    let response = open
        .client
        .get(open.url("/api/cron/cleanup-uploads"))
        .bearer_auth("")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

/// A send that copied its file to the attached key and then failed (here: its post bucket
/// was empty) leaves the copy; the upload is still pending, so the cron removes both.
#[tokio::test]
async fn the_copy_a_failed_send_left_is_removed_with_its_upload() {
    use shared::storage::{ObjectState, attached_key};
    let app = TestApp::spawn_with(|c| {
        c.storage.cron_secret = Some(SECRET.into());
        c.limits.posts = shared::db::limits::RateLimit::parse("post", "1/1h").unwrap();
    })
    .await;
    app.room("general").await;
    app.send("general", "takes the only token").await;
    let upload = &uploads(&app, 1).await[0];
    let refused = app
        .post_message(
            "general",
            &json!({"content": "x", "file_ids": [upload["id"]]}),
        )
        .await;
    assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let staging = format!("rooms/general/{}.txt", upload["id"].as_str().unwrap());
    let copy = attached_key(&staging);
    let storage = &app.app.storage;
    assert!(matches!(
        storage.head(&copy).await.unwrap(),
        ObjectState::Present { .. }
    ));
    age_uploads(&app, 25).await;
    let report: Value = run(&app).await.json().await.unwrap();
    assert_eq!(report["deleted"], 1);
    assert_eq!(storage.head(&staging).await.unwrap(), ObjectState::Missing);
    assert_eq!(storage.head(&copy).await.unwrap(), ObjectState::Missing);
}

/// An image whose processing never finished (as when an AWS Lambda sandbox is frozen after
/// the send answered) is processed by the cron once it is 10 minutes old, one event.
#[tokio::test]
async fn an_image_left_processing_is_processed_by_the_cron() {
    use crate::media::{encode, photo, processed_file, send_file};
    let app = app().await;
    let png = encode(&photo(400, 300), image::ImageFormat::Png);
    let sent = send_file(&app, "late.png", "image/png", &png).await;
    processed_file(&app, &sent).await;
    // Its result undone, as if processing had never run, first for a recent file.
    let undo = "UPDATE chat_message_files SET served = NULL, width = NULL, height = NULL,
                thumbnail_key = NULL, placeholder = NULL, served_size = NULL,
                created_at = now() - make_interval(mins => $1)";
    sqlx::query(undo).bind(2).execute(&app.db).await.unwrap();
    let body: Value = run(&app).await.json().await.unwrap();
    assert_eq!(
        body["reprocessed"], 0,
        "a send's own processing may still be running"
    );

    sqlx::query(undo).bind(11).execute(&app.db).await.unwrap();
    let listed: Value = app.list_messages("general", "").await.json().await.unwrap();
    let before = listed["messages"][0]["event_id"].as_i64().unwrap();
    assert_eq!(listed["messages"][0]["files"][0]["processing"], true);
    let response = run(&app).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["reprocessed"], 1);
    let listed: Value = app.list_messages("general", "").await.json().await.unwrap();
    let message = &listed["messages"][0];
    assert_eq!(message["event_id"].as_i64().unwrap(), before + 1);
    let file = &message["files"][0];
    assert_eq!(file["processing"], false);
    assert_eq!(
        (file["width"].clone(), file["height"].clone()),
        (json!(400), json!(300))
    );
    assert!(file["thumbnail_url"].is_string());
    let body: Value = run(&app).await.json().await.unwrap();
    assert_eq!(body["reprocessed"], 0);
}
