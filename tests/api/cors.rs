//! CORS: preflights on every route, and headers only for the configured origins.

use reqwest::{Method, StatusCode};

use crate::helpers::{ALICE, TestApp};

const APP_ORIGIN: &str = "https://app.example.com";

#[tokio::test]
async fn every_route_answers_a_preflight_from_an_allowed_origin() {
    let app =
        TestApp::spawn_with(|c| c.cors = shared::http::cors::AllowedOrigins::parse(APP_ORIGIN))
            .await;
    let routes = [
        ("/api/rooms", "GET, POST"),
        ("/api/rooms/general/messages", "GET, POST"),
        ("/api/rooms/general/stream", "GET"),
        ("/api/rooms/general/members", "GET, POST"),
        ("/api/rooms/general/members/bob%40example.com", "DELETE"),
        ("/api/uploads", "POST"),
        ("/api/health", "GET"),
    ];
    for (path, allow) in routes {
        let response = app
            .client
            .request(Method::OPTIONS, app.url(path))
            .header("origin", APP_ORIGIN)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{path}");
        let h = response.headers();
        assert_eq!(h["access-control-allow-origin"], APP_ORIGIN, "{path}");
        assert_eq!(h["access-control-allow-methods"], allow, "{path}");
        let allowed_headers = h["access-control-allow-headers"].to_str().unwrap();
        assert!(
            allowed_headers.contains("authorization") && allowed_headers.contains("content-type")
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
}

#[tokio::test]
async fn responses_carry_cors_headers_only_for_allowed_origins() {
    let app =
        TestApp::spawn_with(|c| c.cors = shared::http::cors::AllowedOrigins::parse(APP_ORIGIN))
            .await;
    let allowed = app
        .client
        .get(app.url("/api/rooms"))
        .bearer_auth(app.token(ALICE))
        .header("origin", APP_ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], APP_ORIGIN);
    assert!(
        allowed.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("Retry-After")
    );
    let foreign = app
        .client
        .get(app.url("/api/rooms"))
        .bearer_auth(app.token(ALICE))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let preflight = app
        .client
        .request(Method::OPTIONS, app.url("/api/rooms"))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn no_origin_is_allowed_by_default() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/api/health"))
        .header("origin", APP_ORIGIN)
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}
