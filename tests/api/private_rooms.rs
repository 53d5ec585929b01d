use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ALICE, BOB, TestApp, assert_error};

const CAROL: &str = "carol@example.com";

async fn private_room(app: &TestApp, id: &str) {
    let response = app
        .post_as(
            ALICE,
            "/api/rooms",
            &json!({"id": id, "visibility": "private"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let room: Value = response.json().await.unwrap();
    assert_eq!(room["visibility"], "private");
    assert_eq!(room["owner"], ALICE);
}

async fn send(
    app: &TestApp,
    email: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(method, app.url(path))
        .bearer_auth(app.token(email));
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// Every route that names a room, as (method, path, body).
fn room_routes(room: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, format!("/api/rooms/{room}/messages"), None),
        (
            Method::POST,
            format!("/api/rooms/{room}/messages"),
            Some(json!({"content": "hi"})),
        ),
        (Method::GET, format!("/api/rooms/{room}/stream"), None),
        (
            Method::GET,
            format!("/api/rooms/{room}/search?q=members"),
            None,
        ),
        (
            Method::POST,
            "/api/uploads".to_owned(),
            Some(
                json!({"room_id": room, "file_name": "a.txt", "content_type": "text/plain", "size": 1}),
            ),
        ),
        (Method::GET, format!("/api/rooms/{room}/members"), None),
        (
            Method::POST,
            format!("/api/rooms/{room}/members"),
            Some(json!({"email": CAROL})),
        ),
        (
            Method::DELETE,
            format!("/api/rooms/{room}/members/{ALICE}"),
            None,
        ),
    ]
}

#[tokio::test]
async fn a_private_room_does_not_exist_for_a_non_member() {
    let app = TestApp::spawn().await;
    private_room(&app, "secret").await;
    app.send("secret", "for members only").await;
    for (method, path, body) in room_routes("secret") {
        let hidden = send(&app, BOB, method.clone(), &path, body.clone()).await;
        let hidden_status = hidden.status();
        let hidden_body: Value = hidden.json().await.unwrap();
        // Exactly what a room that does not exist answers.
        let missing_path = path.replace("secret", "missing");
        let missing_body = body
            .map(|b| serde_json::from_str(&b.to_string().replace("secret", "missing")).unwrap());
        let missing = send(&app, BOB, method.clone(), &missing_path, missing_body).await;
        assert_eq!(hidden_status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(
            missing.status(),
            StatusCode::NOT_FOUND,
            "{method} {missing_path}"
        );
        assert_eq!(
            hidden_body,
            missing.json::<Value>().await.unwrap(),
            "{method} {path}"
        );
    }
    let rooms: Value = app.get_as(BOB, "/api/rooms").await.json().await.unwrap();
    assert_eq!(rooms["rooms"], json!([]));
    let rooms: Value = app.get_as(ALICE, "/api/rooms").await.json().await.unwrap();
    assert_eq!(rooms["rooms"][0]["id"], "secret");
    // Nothing Bob tried was stored.
    let listed: Value = app.list_messages("secret", "").await.json().await.unwrap();
    assert_eq!(listed["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_member_can_read_post_and_stream_but_not_manage_members() {
    let app = TestApp::spawn().await;
    private_room(&app, "secret").await;
    let added = app
        .post_as(
            ALICE,
            "/api/rooms/secret/members",
            &json!({"email": " Bob@Example.com "}),
        )
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let added: Value = added.json().await.unwrap();
    assert_eq!(added["email"], BOB);
    let again = app
        .post_as(ALICE, "/api/rooms/secret/members", &json!({"email": BOB}))
        .await;
    assert_eq!(again.status(), StatusCode::OK);

    assert_eq!(
        app.post_message_as(BOB, "secret", &json!({"content": "hi"}))
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.get_as(BOB, "/api/rooms/secret/messages").await.status(),
        StatusCode::OK
    );
    let rooms: Value = app.get_as(BOB, "/api/rooms").await.json().await.unwrap();
    assert_eq!(rooms["rooms"][0]["id"], "secret");

    for (method, path, body) in [
        (Method::GET, "/api/rooms/secret/members".to_owned(), None),
        (
            Method::POST,
            "/api/rooms/secret/members".to_owned(),
            Some(json!({"email": CAROL})),
        ),
        (
            Method::DELETE,
            format!("/api/rooms/secret/members/{BOB}"),
            None,
        ),
    ] {
        let response = send(&app, BOB, method, &path, body).await;
        assert_error(response, StatusCode::FORBIDDEN, "not_room_owner").await;
    }
    let members: Value = app
        .get_as(ALICE, "/api/rooms/secret/members")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(members["owner"], ALICE);
    assert_eq!(members["members"].as_array().unwrap().len(), 1);
    assert_eq!(members["members"][0]["email"], BOB);
}

#[tokio::test]
async fn a_removed_member_loses_access() {
    let app = TestApp::spawn().await;
    private_room(&app, "secret").await;
    app.post_as(ALICE, "/api/rooms/secret/members", &json!({"email": BOB}))
        .await;
    assert_eq!(
        app.get_as(BOB, "/api/rooms/secret/messages").await.status(),
        StatusCode::OK
    );
    let removed = send(
        &app,
        ALICE,
        Method::DELETE,
        &format!("/api/rooms/secret/members/{BOB}"),
        None,
    )
    .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert_error(
        app.get_as(BOB, "/api/rooms/secret/messages").await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    )
    .await;
    let again = send(
        &app,
        ALICE,
        Method::DELETE,
        &format!("/api/rooms/secret/members/{BOB}"),
        None,
    )
    .await;
    assert_error(again, StatusCode::NOT_FOUND, "member_not_found").await;
}

#[tokio::test]
async fn public_rooms_are_open_to_every_signed_in_user() {
    let app = TestApp::spawn().await;
    app.room("lobby").await;
    assert_eq!(
        app.post_message_as(CAROL, "lobby", &json!({"content": "hi"}))
            .await
            .status(),
        StatusCode::CREATED
    );
    let rooms: Value = app.get_as(CAROL, "/api/rooms").await.json().await.unwrap();
    assert_eq!(rooms["rooms"][0]["visibility"], "public");
    let bad = app
        .post_as(
            ALICE,
            "/api/rooms",
            &json!({"id": "x", "visibility": "secret"}),
        )
        .await;
    assert_error(bad, StatusCode::BAD_REQUEST, "invalid_field").await;
}

#[tokio::test]
async fn a_removed_members_open_stream_ends_within_one_poll_interval() {
    let app =
        TestApp::spawn_with(|c| c.stream.poll_interval = std::time::Duration::from_millis(200))
            .await;
    private_room(&app, "secret").await;
    app.post_as(ALICE, "/api/rooms/secret/members", &json!({"email": BOB}))
        .await;
    let stream_as = |email: &str| {
        app.client
            .get(app.url("/api/rooms/secret/stream"))
            .bearer_auth(app.token(email))
            .send()
    };
    let bobs = stream_as(BOB).await.unwrap();
    let alices = stream_as(ALICE).await.unwrap();
    assert_eq!(bobs.status(), StatusCode::OK);
    // Let both streams register before the change.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let removed_at = std::time::Instant::now();
    let removed = send(
        &app,
        ALICE,
        Method::DELETE,
        &format!("/api/rooms/secret/members/{BOB}"),
        None,
    )
    .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    // Bob's body ends (the server closes it) within a poll interval, plus slack for a loaded machine.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(3), bobs.bytes()).await;
    assert!(ended.is_ok(), "Bob's stream is still open");
    let took = removed_at.elapsed();
    assert!(
        took < std::time::Duration::from_millis(1500),
        "took {took:?}"
    );
    // Alice's stream carries on.
    let message = app.send("secret", "still here").await;
    let mut alices = alices;
    let chunk = tokio::time::timeout(std::time::Duration::from_secs(3), async {
        let mut seen = String::new();
        while let Some(chunk) = alices.chunk().await.unwrap() {
            seen.push_str(std::str::from_utf8(&chunk).unwrap());
            if seen.contains("still here") {
                return seen;
            }
        }
        seen
    })
    .await
    .unwrap();
    assert!(
        chunk.contains(&format!("id: {}", message["seq"])),
        "{chunk}"
    );
}
