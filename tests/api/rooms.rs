use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ALICE, TestApp, assert_error};

#[tokio::test]
async fn creating_a_room_returns_201_with_the_room() {
    let app = TestApp::spawn().await;
    let response = app
        .post_as(
            ALICE,
            "/api/rooms",
            &json!({"id": "general", "name": "General"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let room: Value = response.json().await.unwrap();
    assert_eq!(room["id"], "general");
    assert_eq!(room["name"], "General");
    assert_eq!(room["last_seq"], 0);
    let created = room["created_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok() && created.ends_with('Z'),
        "{created}"
    );
}

#[tokio::test]
async fn a_room_name_defaults_to_its_id() {
    let app = TestApp::spawn().await;
    let room: Value = app.create_room("random").await.json().await.unwrap();
    assert_eq!(room["name"], "random");
}

#[tokio::test]
async fn listing_rooms_shows_each_with_its_last_seq() {
    let app = TestApp::spawn().await;
    app.room("b-room").await;
    app.room("a-room").await;
    app.send("b-room", "hi").await;
    let body: Value = app.list_rooms().await.json().await.unwrap();
    let rooms = body["rooms"].as_array().unwrap();
    let ids: Vec<&str> = rooms.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a-room", "b-room"]);
    assert_eq!(rooms[1]["last_seq"], 1);
    assert_eq!(rooms[0]["last_seq"], 0);
    for key in ["id", "name", "created_at", "last_seq"] {
        assert!(rooms[0].get(key).is_some(), "{key}");
    }
}

#[tokio::test]
async fn creating_a_room_with_a_taken_id_is_409() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    assert_error(
        app.create_room("general").await,
        StatusCode::CONFLICT,
        "room_exists",
    )
    .await;
}

#[tokio::test]
async fn creating_a_room_with_a_bad_id_or_name_is_400() {
    let app = TestApp::spawn().await;
    let cases = [
        (json!({"id": "has space"}), "space in id"),
        (json!({"id": ""}), "empty id"),
        (json!({"id": "x".repeat(65)}), "id over 64"),
        (json!({"id": "a/b"}), "slash in id"),
        (json!({"id": "ok", "name": ""}), "empty name"),
        (
            json!({"id": "ok", "name": "n".repeat(101)}),
            "name over 100",
        ),
        (json!({"id": 5}), "id not a string"),
    ];
    for (body, case) in cases {
        let response = app.post_as(ALICE, "/api/rooms", &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{case}: {body}");
    }
}
