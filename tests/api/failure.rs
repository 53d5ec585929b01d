use std::time::{Duration, Instant};

use chat_dev::EmbeddedS3;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{ALICE, TestApp, assert_error, base_config};

/// An address nothing listens on.
async fn dead_database_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("postgres://postgres@127.0.0.1:{port}/chat")
}

#[tokio::test]
async fn an_unreachable_database_gives_503_with_retry_after_in_under_6_seconds() {
    let url = dead_database_url().await;
    let s3 = EmbeddedS3::start("chat-test", None).unwrap();
    let config = base_config(&url, &s3);
    let app = TestApp::serve(config, url, s3).await;
    let requests = [
        app.client.get(app.url("/api/health")),
        app.client
            .get(app.url("/api/rooms"))
            .bearer_auth(app.token(ALICE)),
        app.client
            .post(app.url("/api/rooms/general/messages"))
            .bearer_auth(app.token(ALICE))
            .json(&json!({"content": "hi"})),
        app.client
            .get(app.url("/api/rooms/general/stream"))
            .bearer_auth(app.token(ALICE)),
    ];
    let started = Instant::now();
    let responses = futures_util::future::join_all(requests.map(|r| r.send())).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(6), "took {took:?}");
    for response in responses {
        let response = response.unwrap();
        assert_eq!(response.headers()["retry-after"], "2");
        let message = assert_error(
            response,
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
        )
        .await;
        assert!(
            !message.contains("127.0.0.1") && !message.contains("postgres"),
            "{message}"
        );
    }
}
