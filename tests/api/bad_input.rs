use reqwest::{Method, StatusCode};

use crate::helpers::{ALICE, TestApp, assert_error};

#[tokio::test]
async fn malformed_bodies_get_a_clear_400() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let token = app.token(ALICE);
    let cases: [(&str, Vec<u8>, &str, &str); 9] = [
        ("/api/rooms", b"{".to_vec(), "invalid_json", "truncated JSON"),
        ("/api/rooms", b"not json".to_vec(), "invalid_json", "not JSON"),
        ("/api/rooms", b"".to_vec(), "invalid_json", "empty body"),
        ("/api/rooms", b"[]".to_vec(), "invalid_field", "an array"),
        ("/api/rooms", br#"{"id": ["x"]}"#.to_vec(), "invalid_field", "wrong type"),
        ("/api/rooms/general/messages", br#"{"content": 5}"#.to_vec(), "invalid_field", "number content"),
        ("/api/rooms/general/messages", br#"{"content": "x", "client_id": "nope"}"#.to_vec(), "invalid_field", "bad uuid"),
        ("/api/rooms/general/messages", b"{\"content\": \"\xff\xfe\"}".to_vec(), "invalid_utf8", "non-UTF-8"),
        ("/api/uploads", br#"{"room_id": "general", "file_name": "a", "content_type": "text/plain", "size": "big"}"#.to_vec(), "invalid_field", "string size"),
    ];
    for (path, body, code, case) in cases {
        let response = app
            .client
            .post(app.url(path))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
        assert_error(response, StatusCode::BAD_REQUEST, code).await;
    }
}

#[tokio::test]
async fn a_body_over_1_mib_is_413() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let body = format!(r#"{{"content": "{}"}}"#, "a".repeat(1024 * 1024));
    let response = app
        .client
        .post(app.url("/api/rooms/general/messages"))
        .bearer_auth(app.token(ALICE))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large").await;
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405_with_allow() {
    let app = TestApp::spawn().await;
    for path in ["/api/nope", "/api/rooms/general/nope", "/nope", "/api"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_error(response, StatusCode::NOT_FOUND, "route_not_found").await;
    }
    // A room id that cannot exist is an unknown room.
    let response = app.get_as(ALICE, "/api/rooms/a.b/messages").await;
    assert_error(response, StatusCode::NOT_FOUND, "room_not_found").await;
    let cases = [
        (Method::DELETE, "/api/rooms", "GET, POST"),
        (Method::PUT, "/api/rooms/general/messages", "GET, POST"),
        (Method::POST, "/api/rooms/general/stream", "GET"),
        (Method::GET, "/api/uploads", "POST"),
        (Method::POST, "/api/health", "GET"),
    ];
    for (method, path, allow) in cases {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        assert_error(
            response,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        )
        .await;
    }
}

#[tokio::test]
async fn every_response_says_nosniff() {
    let app = TestApp::spawn().await;
    for path in ["/api/health", "/api/nope", "/api/rooms"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(
            response.headers()["x-content-type-options"],
            "nosniff",
            "{path}"
        );
    }
}
