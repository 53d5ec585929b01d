//! The dev server serves the demo page: `public/` at `/` and the client module at
//! `/chat-client.js`, GET and HEAD only, and nothing outside those two directories.

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::TestApp;

#[tokio::test]
async fn the_page_and_the_client_module_are_served_with_their_types() {
    let app = TestApp::spawn().await;
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(html.contains("./app.js"), "the page loads its script");
    let script = app.client.get(app.url("/app.js")).send().await.unwrap();
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let script = script.text().await.unwrap();
    assert!(
        script.contains(r#"from "./chat-client.js""#),
        "the page imports the client"
    );

    let client = app
        .client
        .get(app.url("/chat-client.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(client.status(), StatusCode::OK);
    assert_eq!(
        client.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let source = client.text().await.unwrap();
    let on_disk = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("client/chat-client.js"),
    )
    .unwrap();
    assert_eq!(source, on_disk, "one source of truth");

    let head = app
        .client
        .head(app.url("/index.html"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert!(head.bytes().await.unwrap().is_empty());

    let missing = app.client.get(app.url("/nope.js")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let post = app.client.post(app.url("/")).send().await.unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
}

/// Sends a raw request line, so no client normalises the path first.
async fn raw_status(app: &TestApp, target: &str) -> String {
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn no_path_leaves_the_static_directories() {
    let app = TestApp::spawn().await;
    assert_eq!(raw_status(&app, "/index.html").await, "HTTP/1.1 200 OK");
    for target in [
        "/../Cargo.toml",
        "/../../etc/passwd",
        "/%2e%2e/Cargo.toml",
        "/..%2fCargo.toml",
        "/public/../Cargo.toml",
        "/.gitignore",
        "/..",
    ] {
        assert_eq!(
            raw_status(&app, target).await,
            "HTTP/1.1 404 Not Found",
            "{target}"
        );
    }
}
