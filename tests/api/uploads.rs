use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{ALICE, BOB, TestApp, assert_error};

fn upload_request(size: i64) -> Value {
    json!({"room_id": "general", "file_name": "notes.txt", "content_type": "text/plain", "size": size})
}

#[tokio::test]
async fn a_file_goes_from_presign_through_put_and_attach_to_a_downloadable_url() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let bytes = b"hello, file".to_vec();
    let upload = app
        .presigned(ALICE, &upload_request(bytes.len() as i64))
        .await;
    assert_eq!(upload["method"], "PUT");
    assert_eq!(upload["headers"]["content-type"], "text/plain");
    assert_eq!(upload["headers"]["content-length"], bytes.len().to_string());
    assert!(chrono::DateTime::parse_from_rfc3339(upload["expires_at"].as_str().unwrap()).is_ok());
    let put_response = app.put_upload(&upload, &bytes).await;
    assert!(
        put_response.status().is_success(),
        "PUT: {}",
        put_response.status()
    );

    let message = app
        .post_message(
            "general",
            &json!({"content": "see attached", "file_ids": [upload["id"]]}),
        )
        .await;
    assert_eq!(message.status(), StatusCode::CREATED);
    let message: Value = message.json().await.unwrap();
    let file = &message["files"][0];
    assert_eq!(file["id"], upload["id"]);
    assert_eq!(file["file_name"], "notes.txt");
    assert_eq!(file["content_type"], "text/plain");
    assert_eq!(file["size"], bytes.len());

    let listed: Value = app.list_messages("general", "").await.json().await.unwrap();
    let listed_file = &listed["messages"][0]["files"][0];
    assert_eq!(listed_file["id"], upload["id"]);
    let downloaded = app
        .client
        .get(listed_file["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(downloaded.status(), StatusCode::OK);
    assert_eq!(downloaded.bytes().await.unwrap().to_vec(), bytes);
}

#[tokio::test]
async fn the_object_key_holds_no_user_controlled_segment() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let upload = app.presigned(ALICE,
        &json!({"room_id": "general", "file_name": "../../etc/pass\nwd", "content_type": "text/plain", "size": 1}),
    )
    .await;
    let url = upload["url"].as_str().unwrap();
    let id = upload["id"].as_str().unwrap();
    // The key is ours alone: the room, the upload id and an extension from the type.
    assert!(url.contains(&format!("/rooms/general/{id}.txt?")), "{url}");
    assert!(!url.contains("passwd") && !url.contains("etc"), "{url}");
}

#[tokio::test]
async fn exactly_50_mib_is_allowed_and_one_byte_more_is_413() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let limit = 50 * 1024 * 1024;
    assert_eq!(
        app.presign(ALICE, &upload_request(limit)).await.status(),
        StatusCode::CREATED
    );
    let response = app.presign(ALICE, &upload_request(limit + 1)).await;
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "upload_too_large").await;
}

#[tokio::test]
async fn storage_refuses_a_put_of_another_length() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let upload = app.presigned(ALICE, &upload_request(5)).await;
    let mut request = app
        .client
        .put(upload["url"].as_str().unwrap())
        .body(b"123456".to_vec());
    request = request.header("content-type", "text/plain");
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // Nor may the type change.
    let response = app
        .client
        .put(upload["url"].as_str().unwrap())
        .header("content-type", "text/html")
        .body(b"12345".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn presigned_urls_carry_no_checksum_parameters() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let upload = app.presigned(ALICE, &upload_request(3)).await;
    let url = upload["url"].as_str().unwrap().to_ascii_lowercase();
    assert!(!url.contains("x-amz-checksum"), "{url}");
    assert!(!url.contains("x-amz-sdk-checksum"), "{url}");
    let headers = upload["headers"].as_object().unwrap();
    assert!(
        headers.keys().all(|k| !k.contains("checksum")),
        "{headers:?}"
    );
    let signed = url
        .split("x-amz-signedheaders=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    assert!(
        signed.contains("content-length") && signed.contains("content-type"),
        "{signed}"
    );
}

#[tokio::test]
async fn attaching_an_upload_that_is_not_usable_is_400() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    app.room("other").await;
    // Presigned but never PUT.
    let pending = app.presigned(ALICE, &upload_request(3)).await;
    let response = app
        .post_message(
            "general",
            &json!({"content": "x", "file_ids": [pending["id"]]}),
        )
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "upload_incomplete").await;
    // Unknown id.
    let response = app
        .post_message(
            "general",
            &json!({"content": "x", "file_ids": [Uuid::new_v4()]}),
        )
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_upload").await;
    // Bob's upload, even though it is complete.
    let bobs = app.presigned(BOB, &upload_request(3)).await;
    assert!(app.put_upload(&bobs, b"abc").await.status().is_success());
    let response = app
        .post_message(
            "general",
            &json!({"content": "x", "file_ids": [bobs["id"]]}),
        )
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_upload").await;
    // For another room.
    let elsewhere = app.presigned(ALICE,
        &json!({"room_id": "other", "file_name": "a.txt", "content_type": "text/plain", "size": 3}),
    )
    .await;
    assert!(
        app.put_upload(&elsewhere, b"abc")
            .await
            .status()
            .is_success()
    );
    let response = app
        .post_message(
            "general",
            &json!({"content": "x", "file_ids": [elsewhere["id"]]}),
        )
        .await;
    assert_error(response, StatusCode::BAD_REQUEST, "invalid_upload").await;
    // Nothing was stored and no seq was used.
    let listed: Value = app.list_messages("general", "").await.json().await.unwrap();
    assert_eq!(listed["messages"], json!([]));
}

#[tokio::test]
async fn an_upload_attaches_once_and_a_retry_with_the_client_id_returns_the_message() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let upload = app.presigned(ALICE, &upload_request(3)).await;
    assert!(app.put_upload(&upload, b"abc").await.status().is_success());
    let client_id = Uuid::new_v4();
    let body = json!({"content": "", "file_ids": [upload["id"]], "client_id": client_id});
    let first = app.post_message("general", &body).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["content"], "");
    let retry = app.post_message("general", &body).await;
    assert_eq!(retry.status(), StatusCode::OK);
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["id"], first["id"]);
    assert_eq!(retry["files"][0]["id"], upload["id"]);
    // Without the client id, the same upload cannot be attached again.
    let again = app
        .post_message(
            "general",
            &json!({"content": "again", "file_ids": [upload["id"]]}),
        )
        .await;
    assert_error(again, StatusCode::BAD_REQUEST, "invalid_upload").await;
}

#[tokio::test]
async fn presign_rejects_bad_fields_and_unknown_rooms() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let cases = [
        (
            json!({"room_id": "general", "file_name": "a.txt", "content_type": "nonsense", "size": 1}),
            "invalid_field",
        ),
        (
            json!({"room_id": "general", "file_name": "", "content_type": "text/plain", "size": 1}),
            "invalid_field",
        ),
        (
            json!({"room_id": "general", "file_name": "a.txt", "content_type": "text/plain", "size": -1}),
            "invalid_field",
        ),
        (
            json!({"room_id": "bad id", "file_name": "a.txt", "content_type": "text/plain", "size": 1}),
            "invalid_field",
        ),
        (
            json!({"room_id": "general", "file_name": "a.txt", "size": 1}),
            "invalid_field",
        ),
    ];
    for (body, code) in cases {
        assert_error(
            app.presign(ALICE, &body).await,
            StatusCode::BAD_REQUEST,
            code,
        )
        .await;
    }
    let unknown =
        json!({"room_id": "nope", "file_name": "a.txt", "content_type": "text/plain", "size": 1});
    assert_error(
        app.presign(ALICE, &unknown).await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    )
    .await;
}
