use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, assert_error};

/// Every authenticated route, with a body that would otherwise be valid.
fn routes() -> Vec<(Method, &'static str, serde_json::Value)> {
    vec![
        (Method::GET, "/api/rooms", json!(null)),
        (Method::POST, "/api/rooms", json!({"id": "x"})),
        (Method::GET, "/api/rooms/general/messages", json!(null)),
        (
            Method::POST,
            "/api/rooms/general/messages",
            json!({"content": "hi"}),
        ),
        (
            Method::POST,
            "/api/uploads",
            json!({"room_id": "general", "file_name": "a.txt", "content_type": "text/plain", "size": 1}),
        ),
        (Method::GET, "/api/rooms/general/stream", json!(null)),
    ]
}

#[tokio::test]
async fn missing_forged_and_expired_tokens_are_401_on_every_route() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let forged = {
        let mut auth = app.app.config.auth.clone();
        auth.jwt_secret = Some("not-the-secret".into());
        chat_dev::token::mint_token(&auth, "alice@example.com", 3600).unwrap()
    };
    let expired =
        chat_dev::token::mint_token(&app.app.config.auth, "alice@example.com", -3600).unwrap();
    let tokens: [(&str, Option<String>); 5] = [
        ("missing", None),
        ("forged", Some(forged)),
        ("expired", Some(expired)),
        ("garbage", Some("not.a.jwt".into())),
        (
            "none alg",
            Some("eyJhbGciOiJub25lIn0.eyJlbWFpbCI6ImFAeC5jb20iLCJleHAiOjk5OTk5OTk5OTl9.".into()),
        ),
    ];
    for (method, path, body) in routes() {
        for (case, token) in &tokens {
            let mut request = app.client.request(method.clone(), app.url(path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if !body.is_null() {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} with a {case} token"
            );
            assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
        }
    }
}

#[tokio::test]
async fn the_stream_accepts_the_token_as_a_query_parameter() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let token = app.token("alice@example.com");
    let response = app
        .client
        .get(app.url(&format!("/api/rooms/general/stream?access_token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Only the stream takes it: other routes ignore the parameter.
    let response = app
        .client
        .get(app.url(&format!("/api/rooms?access_token={token}")))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn health_needs_no_token() {
    let app = TestApp::spawn().await;
    let response = app.client.get(app.url("/api/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
}
