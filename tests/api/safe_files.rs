//! Files that could be used for phishing or XSS are refused or forced to download.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ALICE, TestApp, assert_error};

fn upload_request(file_name: &str, content_type: &str, size: usize) -> Value {
    json!({"room_id": "general", "file_name": file_name, "content_type": content_type, "size": size})
}

/// Presigns, PUTs and attaches a file; returns the file as listed.
async fn share(app: &TestApp, file_name: &str, content_type: &str, bytes: &[u8]) -> Value {
    let upload = app
        .presigned(ALICE, &upload_request(file_name, content_type, bytes.len()))
        .await;
    assert!(app.put_upload(&upload, bytes).await.status().is_success());
    let sent = app
        .post_message(
            "general",
            &json!({"content": "", "file_ids": [upload["id"]]}),
        )
        .await;
    assert_eq!(sent.status(), StatusCode::CREATED);
    let listed: Value = app.list_messages("general", "").await.json().await.unwrap();
    listed["messages"].as_array().unwrap().last().unwrap()["files"][0].clone()
}

/// GETs a listed file's URL.
async fn download(app: &TestApp, file: &Value) -> reqwest::Response {
    app.client
        .get(file["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
}

fn disposition(response: &reqwest::Response) -> &str {
    response.headers()["content-disposition"].to_str().unwrap()
}

#[tokio::test]
async fn html_svg_and_executables_are_refused_by_default() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    for content_type in [
        "text/html",
        "image/svg+xml",
        "application/x-msdownload",
        "application/x-sh",
        "application/javascript",
        "application/xhtml+xml",
    ] {
        let response = app
            .presign(ALICE, &upload_request("x", content_type, 10))
            .await;
        assert_error(
            response,
            StatusCode::BAD_REQUEST,
            "content_type_not_allowed",
        )
        .await;
    }
    for content_type in [
        "image/png",
        "application/pdf",
        "text/plain",
        "application/zip",
        "audio/webm",
        "audio/ogg",
        "audio/mp4",
        "audio/mpeg",
        "video/mp4",
        "video/webm",
        "application/octet-stream",
    ] {
        let response = app
            .presign(ALICE, &upload_request("x", content_type, 10))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "{content_type}");
    }
    // What a browser reports for a file it does not know is allowed, but not when the
    // name says it is a page, an SVG or a program.
    for name in ["setup.exe", "index.html", "logo.svg", "run.sh", "tool.msi"] {
        let response = app
            .presign(ALICE, &upload_request(name, "application/octet-stream", 10))
            .await;
        assert_error(
            response,
            StatusCode::BAD_REQUEST,
            "content_type_not_allowed",
        )
        .await;
    }
    let apk = app
        .presign(
            ALICE,
            &upload_request("app.apk", "application/octet-stream", 10),
        )
        .await;
    assert_eq!(apk.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn audio_and_video_play_inline_and_unknown_files_download() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    for (name, content_type, inline) in [
        ("voice.weba", "audio/webm", true),
        ("song.mp3", "audio/mpeg", true),
        ("clip.mp4", "video/mp4", true),
        ("clip.webm", "video/webm", true),
        ("app.apk", "application/octet-stream", false),
    ] {
        let file = share(&app, name, content_type, b"\x1aE\xdf\xa3 not really").await;
        assert_eq!(file["processing"], false, "{name}");
        assert_eq!(file["served"], "original", "{name}");
        let response = download(&app, &file).await;
        assert_eq!(response.status(), StatusCode::OK);
        let expected = if inline { "inline;" } else { "attachment;" };
        assert!(disposition(&response).starts_with(expected), "{name}");
        assert_eq!(response.headers()["content-type"], content_type, "{name}");
    }
}

#[tokio::test]
async fn the_allow_list_is_configurable() {
    let app = TestApp::spawn_with(|c| {
        c.storage.allowed_types = shared::domain::AllowedTypes::parse("image/*")
    })
    .await;
    app.room("general").await;
    assert_eq!(
        app.presign(ALICE, &upload_request("a.tiff", "image/tiff", 1))
            .await
            .status(),
        StatusCode::CREATED
    );
    let pdf = app
        .presign(ALICE, &upload_request("a.pdf", "application/pdf", 1))
        .await;
    assert_error(pdf, StatusCode::BAD_REQUEST, "content_type_not_allowed").await;
}

#[tokio::test]
async fn documents_download_as_attachments_and_images_display_inline() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let pdf = share(
        &app,
        "report «final».pdf",
        "application/pdf",
        b"%PDF-1.4 fake",
    )
    .await;
    let response = download(&app, &pdf).await;
    assert_eq!(response.status(), StatusCode::OK);
    let attachment = disposition(&response);
    assert!(attachment.starts_with("attachment;"), "{attachment}");
    assert!(
        attachment.contains("filename*=UTF-8''report%20%C2%ABfinal%C2%BB%2Epdf"),
        "{attachment}"
    );
    assert_eq!(response.headers()["content-type"], "application/pdf");

    let text = share(
        &app,
        "notes.txt",
        "text/plain",
        b"<script>alert(1)</script>",
    )
    .await;
    let response = download(&app, &text).await;
    assert!(disposition(&response).starts_with("attachment;"));

    let png = share(&app, "cat.png", "image/png", b"\x89PNG\r\n\x1a\nfake").await;
    let response = download(&app, &png).await;
    assert!(disposition(&response).starts_with("inline;"));
    assert_eq!(response.headers()["content-type"], "image/png");
}
