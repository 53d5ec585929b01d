//! Issue 11 ("Conversations"): edit, delete, reactions, replies, read marks and unread
//! counts, their errors and rate limits, and their events on the stream, against real
//! Postgres and the S3 server that checks signatures.

use std::time::Duration;

use chat_dev::EmbeddedS3;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::db::limits::RateLimit;
use shared::storage::ObjectState;
use tokio::time::Instant;

use crate::helpers::{ALICE, BOB, TestApp, assert_error, base_config, empty_database};
use crate::sse_client::{Block, RawStream};

const CAROL: &str = "carol@example.com";
const WAIT: Duration = Duration::from_secs(10);
const THUMBS: &str = "👍";
const HEART: &str = "\u{2764}\u{fe0f}";

/// Every byte but ASCII letters and digits as `%XX`.
fn enc(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn call(
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

/// Asserts `status` and returns the JSON body.
async fn json_of(response: reqwest::Response, status: StatusCode) -> Value {
    let got = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(got, status, "body: {body}");
    serde_json::from_str(&body).expect("JSON body")
}

/// Posts `content` as `email`, asserting 201.
async fn post(app: &TestApp, email: &str, room: &str, content: &str) -> Value {
    post_body(app, email, room, json!({ "content": content })).await
}

async fn post_body(app: &TestApp, email: &str, room: &str, body: Value) -> Value {
    json_of(
        app.post_message_as(email, room, &body).await,
        StatusCode::CREATED,
    )
    .await
}

fn message_path(room: &str, id: &str) -> String {
    format!("/api/rooms/{room}/messages/{id}")
}

fn reaction_path(room: &str, id: &str, emoji: &str) -> String {
    format!("/api/rooms/{room}/messages/{id}/reactions/{}", enc(emoji))
}

fn id(message: &Value) -> &str {
    message["id"].as_str().expect("id")
}

async fn edit(
    app: &TestApp,
    email: &str,
    room: &str,
    id: &str,
    content: &str,
) -> reqwest::Response {
    call(
        app,
        email,
        Method::PATCH,
        &message_path(room, id),
        Some(json!({ "content": content })),
    )
    .await
}

async fn delete(app: &TestApp, email: &str, room: &str, id: &str) -> reqwest::Response {
    call(app, email, Method::DELETE, &message_path(room, id), None).await
}

/// PUT (`add`) or DELETE `emoji` (percent-encoded here) on a message.
async fn react(
    app: &TestApp,
    email: &str,
    room: &str,
    id: &str,
    emoji: &str,
    add: bool,
) -> reqwest::Response {
    let method = if add { Method::PUT } else { Method::DELETE };
    call(app, email, method, &reaction_path(room, id, emoji), None).await
}

async fn reacted(
    app: &TestApp,
    email: &str,
    room: &str,
    id: &str,
    emoji: &str,
    add: bool,
) -> Value {
    json_of(
        react(app, email, room, id, emoji, add).await,
        StatusCode::OK,
    )
    .await
}

async fn mark_read(app: &TestApp, email: &str, room: &str, body: Value) -> reqwest::Response {
    call(
        app,
        email,
        Method::PUT,
        &format!("/api/rooms/{room}/read"),
        Some(body),
    )
    .await
}

/// The room's messages as `email` lists them (at most 100), oldest first.
async fn listed(app: &TestApp, email: &str, room: &str) -> Vec<Value> {
    let page = json_of(
        app.get_as(email, &format!("/api/rooms/{room}/messages?limit=100"))
            .await,
        StatusCode::OK,
    )
    .await;
    page["messages"].as_array().unwrap().clone()
}

async fn listed_one(app: &TestApp, email: &str, room: &str, id: &str) -> Value {
    listed(app, email, room)
        .await
        .into_iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("message {id} is listed"))
}

/// `email`'s view of `room` in `GET /api/rooms`.
async fn room_view(app: &TestApp, email: &str, room: &str) -> Value {
    let rooms = json_of(app.get_as(email, "/api/rooms").await, StatusCode::OK).await;
    rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == room)
        .unwrap_or_else(|| panic!("room {room} is listed: {rooms}"))
        .clone()
}

/// Presigns and PUTs a file for `room` as `email`; returns the upload id.
async fn uploaded(app: &TestApp, email: &str, room: &str, bytes: &[u8]) -> Value {
    let upload = app
        .presigned(
            email,
            &json!({"room_id": room, "file_name": "notes.txt", "content_type": "text/plain",
                    "size": bytes.len()}),
        )
        .await;
    assert!(app.put_upload(&upload, bytes).await.status().is_success());
    upload["id"].clone()
}

async fn private_room(app: &TestApp, id: &str) {
    let response = app
        .post_as(
            ALICE,
            "/api/rooms",
            &json!({"id": id, "visibility": "private"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

fn limited(raw: &str, action: &'static str) -> RateLimit {
    RateLimit::parse(action, raw).unwrap()
}

fn reactions(message: &Value) -> Vec<(String, i64, bool)> {
    message["reactions"]
        .as_array()
        .expect("reactions")
        .iter()
        .map(|r| {
            (
                r["emoji"].as_str().unwrap().to_owned(),
                r["count"].as_i64().unwrap(),
                r["me"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn r(emoji: &str, count: i64, me: bool) -> (String, i64, bool) {
    (emoji.to_owned(), count, me)
}

fn time(value: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().expect("a timestamp")).unwrap()
}

// ---------------------------------------------------------------------------------------
// Edit
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_author_edits_and_the_message_keeps_its_seq_and_files_with_edited_at_set() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let bytes = b"the attachment";
    let file = uploaded(&app, ALICE, "general", bytes).await;
    let sent = post_body(
        &app,
        ALICE,
        "general",
        json!({"content": "first draft", "file_ids": [file]}),
    )
    .await;
    assert_eq!(sent["edited_at"], Value::Null);
    post(&app, BOB, "general", "after it").await;

    let edited = json_of(
        edit(&app, ALICE, "general", id(&sent), "second draft").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(edited["content"], "second draft");
    assert_eq!(edited["id"], sent["id"]);
    assert_eq!(edited["seq"], sent["seq"]);
    assert_eq!(edited["created_at"], sent["created_at"]);
    assert_eq!(edited["deleted_at"], Value::Null);
    assert!(time(&edited["edited_at"]) >= time(&sent["created_at"]));
    assert_eq!(edited["files"].as_array().unwrap().len(), 1);
    assert_eq!(edited["files"][0]["id"], file);

    // The list shows the edit, in its place, and the file still downloads.
    let messages = listed(&app, ALICE, "general").await;
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["id"], sent["id"]);
    assert_eq!(messages[0]["content"], "second draft");
    assert_eq!(messages[0]["edited_at"], edited["edited_at"]);
    let url = messages[0]["files"][0]["url"].as_str().unwrap();
    let downloaded = app.client.get(url).send().await.unwrap();
    assert_eq!(downloaded.status(), StatusCode::OK);
    assert_eq!(downloaded.bytes().await.unwrap().as_ref(), bytes);

    // A second edit moves edited_at on.
    let again = json_of(
        edit(&app, ALICE, "general", id(&sent), "third draft").await,
        StatusCode::OK,
    )
    .await;
    assert!(time(&again["edited_at"]) >= time(&edited["edited_at"]));
    assert_eq!(again["files"][0]["id"], file);
}

#[tokio::test]
async fn an_edit_follows_the_content_rules_of_a_post() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let plain = post(&app, ALICE, "general", "plain").await;
    let file = uploaded(&app, ALICE, "general", b"x").await;
    let with_file = post_body(
        &app,
        ALICE,
        "general",
        json!({"content": "has a file", "file_ids": [file]}),
    )
    .await;

    // Blank without files: refused, as on a post.
    for blank in [
        "",
        "   ",
        "\n\t ",
        "\u{b}",
        "\u{3000}",
        "\u{a0}",
        " \u{2028}\u{85}",
    ] {
        let refused_post = app
            .post_message("general", &json!({ "content": blank }))
            .await;
        assert_error(refused_post, StatusCode::BAD_REQUEST, "invalid_field").await;
        let refused = edit(&app, ALICE, "general", id(&plain), blank).await;
        assert_eq!(
            refused.status(),
            StatusCode::BAD_REQUEST,
            "edit to {blank:?}"
        );
        assert_error(refused, StatusCode::BAD_REQUEST, "invalid_field").await;
    }
    // Too long, NUL, missing or not a string.
    let long = "é".repeat(4001);
    assert_error(
        edit(&app, ALICE, "general", id(&plain), &long).await,
        StatusCode::BAD_REQUEST,
        "invalid_field",
    )
    .await;
    assert_error(
        edit(&app, ALICE, "general", id(&plain), "a\0b").await,
        StatusCode::BAD_REQUEST,
        "invalid_field",
    )
    .await;
    for body in [json!({}), json!({"content": 5}), json!({"content": null})] {
        let response = call(
            &app,
            ALICE,
            Method::PATCH,
            &message_path("general", id(&plain)),
            Some(body),
        )
        .await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_field").await;
    }
    // Nothing changed.
    let still = listed_one(&app, ALICE, "general", id(&plain)).await;
    assert_eq!(still["content"], "plain");
    assert_eq!(still["edited_at"], Value::Null);

    // Exactly 4000 characters is fine.
    let longest = "é".repeat(4000);
    let edited = json_of(
        edit(&app, ALICE, "general", id(&plain), &longest).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(edited["content"], longest.as_str());

    // Blank with files is allowed, and the files stay.
    let blanked = json_of(
        edit(&app, ALICE, "general", id(&with_file), "  ").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(blanked["content"], "  ");
    assert_eq!(blanked["files"][0]["id"], file);
    assert!(blanked["edited_at"].is_string());
}

#[tokio::test]
async fn only_the_author_may_edit_not_even_the_rooms_owner() {
    let app = TestApp::spawn().await;
    app.room("general").await; // Alice owns it.
    let alices = post(&app, ALICE, "general", "alice's").await;
    let bobs = post(&app, BOB, "general", "bob's").await;
    assert_error(
        edit(&app, BOB, "general", id(&alices), "bob was here").await,
        StatusCode::FORBIDDEN,
        "not_message_author",
    )
    .await;
    assert_error(
        edit(&app, ALICE, "general", id(&bobs), "the owner was here").await,
        StatusCode::FORBIDDEN,
        "not_message_author",
    )
    .await;
    let messages = listed(&app, ALICE, "general").await;
    assert_eq!(messages[0]["content"], "alice's");
    assert_eq!(messages[1]["content"], "bob's");
    assert!(messages.iter().all(|m| m["edited_at"].is_null()));
}

#[tokio::test]
async fn editing_a_deleted_message_is_409() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let sent = post(&app, ALICE, "general", "soon gone").await;
    json_of(
        delete(&app, ALICE, "general", id(&sent)).await,
        StatusCode::OK,
    )
    .await;
    assert_error(
        edit(&app, ALICE, "general", id(&sent), "back").await,
        StatusCode::CONFLICT,
        "message_deleted",
    )
    .await;
    let tombstone = listed_one(&app, ALICE, "general", id(&sent)).await;
    assert_eq!(tombstone["content"], "");
    assert_eq!(tombstone["edited_at"], Value::Null);
}

// ---------------------------------------------------------------------------------------
// Delete
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_delete_leaves_a_tombstone_in_its_place_and_removes_the_file_from_storage() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let first = post(&app, ALICE, "general", "first").await;
    let bytes = b"secret plans";
    let file = uploaded(&app, BOB, "general", bytes).await;
    let doomed = post_body(
        &app,
        BOB,
        "general",
        json!({"content": "with a file", "file_ids": [file]}),
    )
    .await;
    let last = post(&app, ALICE, "general", "last").await;
    reacted(&app, ALICE, "general", id(&doomed), THUMBS, true).await;
    reacted(&app, BOB, "general", id(&doomed), "🎉", true).await;

    let key: String =
        sqlx::query_scalar("SELECT object_key FROM chat_message_files WHERE message_id = $1::uuid")
            .bind(id(&doomed))
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(matches!(
        app.app.storage.head(&key).await.unwrap(),
        ObjectState::Present { .. }
    ));
    let old_url = listed_one(&app, BOB, "general", id(&doomed)).await["files"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.client.get(&old_url).send().await.unwrap().status(),
        StatusCode::OK
    );

    let tombstone = json_of(
        delete(&app, BOB, "general", id(&doomed)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(tombstone["id"], doomed["id"]);
    assert_eq!(tombstone["seq"], doomed["seq"]);
    assert_eq!(tombstone["user_email"], BOB);
    assert_eq!(tombstone["created_at"], doomed["created_at"]);
    assert_eq!(tombstone["content"], "");
    assert_eq!(tombstone["files"], json!([]));
    assert_eq!(tombstone["reactions"], json!([]));
    assert!(time(&tombstone["deleted_at"]) >= time(&doomed["created_at"]));

    // The object is gone from the S3 server and its old URL stops serving.
    assert_eq!(
        app.app.storage.head(&key).await.unwrap(),
        ObjectState::Missing
    );
    assert_eq!(
        app.client.get(&old_url).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    // Nor is the upload's staging object left (the send deletes it once attached).
    if let Some(staging) = key.strip_prefix(shared::storage::ATTACHED_PREFIX) {
        let deadline = Instant::now() + WAIT;
        while app.app.storage.head(staging).await.unwrap() != ObjectState::Missing {
            assert!(
                Instant::now() < deadline,
                "staging object {staging} still stored"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let trash: i64 = sqlx::query_scalar("SELECT count(*) FROM chat_object_trash")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(
        trash, 0,
        "the trash is emptied once storage deleted the object"
    );
    let reaction_rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM chat_message_reactions WHERE message_id = $1::uuid",
    )
    .bind(id(&doomed))
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(reaction_rows, 0);

    // The tombstone keeps its seq and its place in pages, for everyone.
    for viewer in [ALICE, BOB, CAROL] {
        let messages = listed(&app, viewer, "general").await;
        let ids: Vec<&Value> = messages.iter().map(|m| &m["id"]).collect();
        assert_eq!(ids, [&first["id"], &doomed["id"], &last["id"]]);
        assert_eq!(messages[1]["content"], "");
        assert_eq!(messages[1]["files"], json!([]));
        assert_eq!(messages[1]["reactions"], json!([]));
        assert_eq!(messages[1]["deleted_at"], tombstone["deleted_at"]);
    }
    let seq = doomed["seq"].as_i64().unwrap();
    let page = json_of(
        app.get_as(
            ALICE,
            &format!("/api/rooms/general/messages?after={}&limit=1", seq - 1),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["messages"][0]["id"], doomed["id"]);
    assert_eq!(page["has_more"], true);
    let page = json_of(
        app.get_as(
            ALICE,
            &format!("/api/rooms/general/messages?before={}&limit=1", seq + 1),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["messages"][0]["id"], doomed["id"]);
    assert_eq!(page["has_more"], true);
    // Seqs stay gapless: the next post takes the next one.
    let next = post(&app, ALICE, "general", "next").await;
    assert_eq!(next["seq"], last["seq"].as_i64().unwrap() + 1);
}

#[tokio::test]
async fn the_author_or_the_rooms_owner_may_delete_and_nobody_else() {
    let app = TestApp::spawn().await;
    app.room("general").await; // Alice owns it.
    let bobs = post(&app, BOB, "general", "bob's").await;
    let alices = post(&app, ALICE, "general", "alice's").await;
    let carols = post(&app, CAROL, "general", "carol's").await;
    assert_error(
        delete(&app, CAROL, "general", id(&bobs)).await,
        StatusCode::FORBIDDEN,
        "not_message_author",
    )
    .await;
    assert_error(
        delete(&app, BOB, "general", id(&alices)).await,
        StatusCode::FORBIDDEN,
        "not_message_author",
    )
    .await;
    assert!(
        listed(&app, ALICE, "general")
            .await
            .iter()
            .all(|m| m["deleted_at"].is_null())
    );
    // The author.
    let gone = json_of(
        delete(&app, CAROL, "general", id(&carols)).await,
        StatusCode::OK,
    )
    .await;
    assert!(gone["deleted_at"].is_string());
    // The owner, someone else's.
    let gone = json_of(
        delete(&app, ALICE, "general", id(&bobs)).await,
        StatusCode::OK,
    )
    .await;
    assert!(gone["deleted_at"].is_string());
    assert_eq!(gone["user_email"], BOB);
    let messages = listed(&app, BOB, "general").await;
    assert!(messages[0]["deleted_at"].is_string());
    assert!(messages[1]["deleted_at"].is_null());
    assert!(messages[2]["deleted_at"].is_string());
}

#[tokio::test]
async fn deleting_twice_answers_the_same_tombstone_and_writes_nothing() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let sent = post(&app, ALICE, "general", "once").await;
    let first = json_of(
        delete(&app, ALICE, "general", id(&sent)).await,
        StatusCode::OK,
    )
    .await;
    let last_event = |app: &TestApp| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT last_event FROM chat_rooms WHERE id = 'general'")
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    let before = last_event(&app).await;
    let second = json_of(
        delete(&app, ALICE, "general", id(&sent)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(first, second);
    assert_eq!(last_event(&app).await, before, "no event for a no-op");
    // The owner deleting it again, too.
    post(&app, BOB, "general", "bob's").await;
    let bobs = listed(&app, BOB, "general").await[1].clone();
    json_of(
        delete(&app, BOB, "general", id(&bobs)).await,
        StatusCode::OK,
    )
    .await;
    json_of(
        delete(&app, ALICE, "general", id(&bobs)).await,
        StatusCode::OK,
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Reactions
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn reactions_are_idempotent_with_one_per_user_per_emoji() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let sent = post(&app, CAROL, "general", "react to me").await;
    let m = id(&sent);
    assert_eq!(sent["reactions"], json!([]));

    let once = reacted(&app, ALICE, "general", m, THUMBS, true).await;
    assert_eq!(reactions(&once), [r(THUMBS, 1, true)]);
    let twice = reacted(&app, ALICE, "general", m, THUMBS, true).await;
    assert_eq!(twice, once, "adding it again changes nothing");
    let bobs = reacted(&app, BOB, "general", m, THUMBS, true).await;
    assert_eq!(reactions(&bobs), [r(THUMBS, 2, true)]);
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM chat_message_reactions WHERE message_id = $1::uuid",
    )
    .bind(m)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(rows, 2);

    let removed = reacted(&app, ALICE, "general", m, THUMBS, false).await;
    assert_eq!(reactions(&removed), [r(THUMBS, 1, false)]);
    let removed_again = reacted(&app, ALICE, "general", m, THUMBS, false).await;
    assert_eq!(removed_again, removed, "removing it again changes nothing");
    // Removing one never added.
    let never = reacted(&app, CAROL, "general", m, THUMBS, false).await;
    assert_eq!(reactions(&never), [r(THUMBS, 1, false)]);
    let last = reacted(&app, BOB, "general", m, THUMBS, false).await;
    assert_eq!(last["reactions"], json!([]));
    assert_eq!(
        listed_one(&app, BOB, "general", m).await["reactions"],
        json!([])
    );
}

#[tokio::test]
async fn a_shortcode_is_the_same_reaction_as_its_emoji() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let sent = post(&app, CAROL, "general", "shortcodes").await;
    let m = id(&sent);
    // `:+1:` with `+` percent-encoded as %2B (enc encodes every non-alphanumeric byte).
    let path = format!("/api/rooms/general/messages/{m}/reactions/%3A%2B1%3A");
    assert_eq!(path, reaction_path("general", m, ":+1:"));
    let by_name = json_of(
        call(&app, ALICE, Method::PUT, &path, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(reactions(&by_name), [r(THUMBS, 1, true)]);
    let by_emoji = reacted(&app, ALICE, "general", m, THUMBS, true).await;
    assert_eq!(by_emoji, by_name, "one reaction, however it is named");
    let tada = reacted(&app, BOB, "general", m, ":tada:", true).await;
    assert_eq!(
        reactions(&tada),
        [r(THUMBS, 1, false), r("🎉", 1, true)],
        "first reacted first"
    );
    // With and without the presentation selector: one emoji.
    reacted(&app, BOB, "general", m, "❤", true).await;
    let heart = reacted(&app, BOB, "general", m, "❤\u{fe0f}", true).await;
    assert_eq!(heart["reactions"].as_array().unwrap().len(), 3);
    assert_eq!(heart["reactions"][2]["count"], 1);
    // Removed by its shortcode.
    let removed = reacted(&app, ALICE, "general", m, ":+1:", false).await;
    assert_eq!(removed["reactions"][0]["emoji"], "🎉");
}

#[tokio::test]
async fn a_bad_emoji_is_400_and_stores_nothing() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let sent = post(&app, ALICE, "general", "hi").await;
    for bad in [
        "a",
        "ab",
        "👍👍",
        "👍 ",
        " ",
        ":nope-not-a-code:",
        "::",
        "<b>",
        "1",
    ] {
        for add in [true, false] {
            assert_error(
                react(&app, ALICE, "general", id(&sent), bad, add).await,
                StatusCode::BAD_REQUEST,
                "invalid_field",
            )
            .await;
        }
    }
    assert_eq!(
        listed_one(&app, ALICE, "general", id(&sent)).await["reactions"],
        json!([])
    );
}

#[tokio::test]
async fn a_message_carries_at_most_50_different_emoji() {
    let app = TestApp::spawn_with(|c| c.limits.reactions = limited("off", "react")).await;
    app.room("general").await;
    let sent = post(&app, ALICE, "general", "so many").await;
    // U+1F600…: the emoticons block, one emoji each.
    let emoji: Vec<String> = (0..51)
        .map(|i| char::from_u32(0x1F600 + i).unwrap().to_string())
        .collect();
    for e in &emoji[..50] {
        reacted(&app, ALICE, "general", id(&sent), e, true).await;
    }
    assert_error(
        react(&app, BOB, "general", id(&sent), &emoji[50], true).await,
        StatusCode::BAD_REQUEST,
        "invalid_field",
    )
    .await;
    // One already there still takes more reactions.
    let more = reacted(&app, BOB, "general", id(&sent), &emoji[0], true).await;
    assert_eq!(more["reactions"].as_array().unwrap().len(), 50);
    assert_eq!(more["reactions"][0]["count"], 2);
}

#[tokio::test]
async fn reacting_to_a_tombstone_is_409_and_removing_from_it_changes_nothing() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let sent = post(&app, ALICE, "general", "soon gone").await;
    reacted(&app, BOB, "general", id(&sent), THUMBS, true).await;
    json_of(
        delete(&app, ALICE, "general", id(&sent)).await,
        StatusCode::OK,
    )
    .await;
    for who in [ALICE, BOB] {
        assert_error(
            react(&app, who, "general", id(&sent), "🎉", true).await,
            StatusCode::CONFLICT,
            "message_deleted",
        )
        .await;
    }
    let removed = reacted(&app, BOB, "general", id(&sent), THUMBS, false).await;
    assert!(removed["deleted_at"].is_string());
    assert_eq!(removed["reactions"], json!([]));
}

#[tokio::test]
async fn the_list_route_shows_each_viewer_the_counts_and_their_own_reactions() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let a = post(&app, ALICE, "general", "a").await;
    let b = post(&app, BOB, "general", "b").await;
    let c = post(&app, BOB, "general", "c").await;
    reacted(&app, ALICE, "general", id(&a), THUMBS, true).await;
    reacted(&app, BOB, "general", id(&a), THUMBS, true).await;
    reacted(&app, BOB, "general", id(&a), "🎉", true).await;
    reacted(&app, CAROL, "general", id(&a), "🎉", true).await;
    reacted(&app, CAROL, "general", id(&a), HEART, true).await;
    reacted(&app, CAROL, "general", id(&b), "🎉", true).await;

    let expect = [
        (
            ALICE,
            vec![r(THUMBS, 2, true), r("🎉", 2, false), r(HEART, 1, false)],
            vec![r("🎉", 1, false)],
        ),
        (
            BOB,
            vec![r(THUMBS, 2, true), r("🎉", 2, true), r(HEART, 1, false)],
            vec![r("🎉", 1, false)],
        ),
        (
            CAROL,
            vec![r(THUMBS, 2, false), r("🎉", 2, true), r(HEART, 1, true)],
            vec![r("🎉", 1, true)],
        ),
        (
            "dave@example.com",
            vec![r(THUMBS, 2, false), r("🎉", 2, false), r(HEART, 1, false)],
            vec![r("🎉", 1, false)],
        ),
    ];
    for (viewer, on_a, on_b) in expect {
        let messages = listed(&app, viewer, "general").await;
        assert_eq!(reactions(&messages[0]), on_a, "{viewer} on a");
        assert_eq!(reactions(&messages[1]), on_b, "{viewer} on b");
        assert_eq!(messages[2]["id"], c["id"]);
        assert_eq!(messages[2]["reactions"], json!([]), "{viewer} on c");
    }
}

// ---------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_reply_quotes_its_original_and_the_original_counts_its_replies() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    // 150 characters, many of them two bytes: the excerpt is 100 characters, not bytes.
    let long: String = (0..150)
        .map(|i| if i % 2 == 0 { 'é' } else { 'x' })
        .collect();
    let original = post(&app, ALICE, "general", &long).await;
    assert_eq!(original["reply_to"], Value::Null);
    assert_eq!(original["reply_count"], 0);

    let reply = post_body(
        &app,
        BOB,
        "general",
        json!({"content": "a reply", "reply_to": original["id"]}),
    )
    .await;
    let excerpt: String = long.chars().take(100).collect();
    assert_eq!(
        reply["reply_to"],
        json!({"id": original["id"], "seq": original["seq"], "user_email": ALICE,
               "excerpt": excerpt})
    );
    assert_eq!(reply["reply_count"], 0);
    let short = post(&app, CAROL, "general", "short").await;
    let to_short = post_body(
        &app,
        ALICE,
        "general",
        json!({"content": "to short", "reply_to": short["id"]}),
    )
    .await;
    assert_eq!(to_short["reply_to"]["excerpt"], "short");
    post_body(
        &app,
        CAROL,
        "general",
        json!({"content": "another", "reply_to": original["id"]}),
    )
    .await;
    assert_eq!(
        listed_one(&app, BOB, "general", id(&original)).await["reply_count"],
        2
    );
    assert_eq!(
        listed_one(&app, BOB, "general", id(&short)).await["reply_count"],
        1
    );

    // An edit of the original does not change the quote.
    json_of(
        edit(&app, ALICE, "general", id(&original), "rewritten").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        listed_one(&app, BOB, "general", id(&reply)).await["reply_to"]["excerpt"],
        excerpt.as_str()
    );

    // Once the original is deleted, the quote is empty; its count stays.
    json_of(
        delete(&app, ALICE, "general", id(&original)).await,
        StatusCode::OK,
    )
    .await;
    let quoted = listed_one(&app, BOB, "general", id(&reply)).await;
    assert_eq!(
        quoted["reply_to"],
        json!({"id": original["id"], "seq": original["seq"], "user_email": ALICE, "excerpt": ""})
    );
    let replies = json_of(
        app.get_as(
            CAROL,
            &format!("/api/rooms/general/messages/{}/replies", id(&original)),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(
        replies["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["reply_to"]["excerpt"] == "")
    );
    assert_eq!(
        listed_one(&app, BOB, "general", id(&original)).await["reply_count"],
        2
    );
    // The other reply's quote is untouched.
    assert_eq!(
        listed_one(&app, BOB, "general", id(&to_short)).await["reply_to"]["excerpt"],
        "short"
    );
}

#[tokio::test]
async fn reply_to_must_name_a_live_message_of_the_same_room() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    app.room("other").await;
    let elsewhere = post(&app, ALICE, "other", "in another room").await;
    let here = post(&app, ALICE, "general", "here").await;
    for reply_to in [elsewhere["id"].clone(), json!(uuid::Uuid::new_v4())] {
        let response = app
            .post_message_as(
                BOB,
                "general",
                &json!({"content": "re", "reply_to": reply_to}),
            )
            .await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_field").await;
    }
    for reply_to in [json!("not-a-uuid"), json!(5)] {
        let response = app
            .post_message_as(
                BOB,
                "general",
                &json!({"content": "re", "reply_to": reply_to}),
            )
            .await;
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_field").await;
    }
    json_of(
        delete(&app, ALICE, "general", id(&here)).await,
        StatusCode::OK,
    )
    .await;
    let response = app
        .post_message_as(
            BOB,
            "general",
            &json!({"content": "re", "reply_to": here["id"]}),
        )
        .await;
    assert_error(response, StatusCode::CONFLICT, "message_deleted").await;
    // Nothing was stored, nor counted.
    assert_eq!(listed(&app, BOB, "general").await.len(), 1);
    assert_eq!(listed(&app, BOB, "other").await[0]["reply_count"], 0);
    // `reply_to: null` is a plain post.
    let plain = post_body(
        &app,
        BOB,
        "general",
        json!({"content": "plain", "reply_to": null}),
    )
    .await;
    assert_eq!(plain["reply_to"], Value::Null);
}

#[tokio::test]
async fn replies_are_listed_oldest_first_with_limit_after_and_has_more() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let original = post(&app, ALICE, "general", "original").await;
    let unrelated = post(&app, ALICE, "general", "no replies").await;
    let mut replies = Vec::new();
    for i in 0..5 {
        post(&app, CAROL, "general", &format!("noise {i}")).await;
        replies.push(
            post_body(
                &app,
                BOB,
                "general",
                json!({"content": format!("reply {i}"), "reply_to": original["id"]}),
            )
            .await,
        );
    }
    let path = |query: &str| {
        format!(
            "/api/rooms/general/messages/{}/replies{query}",
            id(&original)
        )
    };
    let all = json_of(app.get_as(ALICE, &path("")).await, StatusCode::OK).await;
    assert_eq!(
        all.as_object().unwrap().len(),
        2,
        "{{messages, has_more}}: {all}"
    );
    assert_eq!(all["has_more"], false);
    assert_eq!(
        all["messages"],
        json!(replies),
        "oldest first, each in full"
    );

    let mut seen = Vec::new();
    let mut after = 0;
    for (expected, more) in [(2, true), (2, true), (1, false)] {
        let page = json_of(
            app.get_as(ALICE, &path(&format!("?limit=2&after={after}")))
                .await,
            StatusCode::OK,
        )
        .await;
        let messages = page["messages"].as_array().unwrap();
        assert_eq!(messages.len(), expected);
        assert_eq!(page["has_more"], more);
        after = messages.last().unwrap()["seq"].as_i64().unwrap();
        seen.extend(messages.iter().cloned());
    }
    assert_eq!(seen, replies);
    let past = json_of(
        app.get_as(ALICE, &path(&format!("?after={after}"))).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(past, json!({"messages": [], "has_more": false}));

    // A message with no replies: an empty page.
    let none = json_of(
        app.get_as(
            ALICE,
            &format!("/api/rooms/general/messages/{}/replies", id(&unrelated)),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(none, json!({"messages": [], "has_more": false}));
    // Bad paging.
    for query in ["?limit=0", "?limit=abc", "?after=-1", "?after=x"] {
        assert_error(
            app.get_as(ALICE, &path(query)).await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        )
        .await;
    }
}

// ---------------------------------------------------------------------------------------
// Read marks and unread counts
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_read_mark_only_moves_forward_and_never_past_the_last_message() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    for i in 0..5 {
        post(&app, BOB, "general", &format!("bob {i}")).await;
    }
    let view = room_view(&app, ALICE, "general").await;
    assert_eq!(
        (&view["last_read_seq"], &view["unread"]),
        (&json!(0), &json!(5))
    );

    let marked = json_of(
        mark_read(&app, ALICE, "general", json!({"seq": 3})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(marked, json!({"last_read_seq": 3, "unread": 2}));
    let lower = json_of(
        mark_read(&app, ALICE, "general", json!({"seq": 1})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        lower,
        json!({"last_read_seq": 3, "unread": 2}),
        "a lower seq is ignored"
    );
    let zero = json_of(
        mark_read(&app, ALICE, "general", json!({"seq": 0})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(zero, json!({"last_read_seq": 3, "unread": 2}));
    let view = room_view(&app, ALICE, "general").await;
    assert_eq!(
        (&view["last_read_seq"], &view["unread"]),
        (&json!(3), &json!(2))
    );

    let clamped = json_of(
        mark_read(&app, ALICE, "general", json!({"seq": 99})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        clamped,
        json!({"last_read_seq": 5, "unread": 0}),
        "clamped to last_seq"
    );
    // New messages after the clamped mark are unread.
    post(&app, BOB, "general", "bob 5").await;
    let view = room_view(&app, ALICE, "general").await;
    assert_eq!(
        (&view["last_read_seq"], &view["unread"]),
        (&json!(5), &json!(1))
    );

    for body in [
        json!({}),
        json!({"seq": -1}),
        json!({"seq": "3"}),
        json!({"seq": 1.5}),
        json!({"seq": null}),
    ] {
        assert_error(
            mark_read(&app, ALICE, "general", body).await,
            StatusCode::BAD_REQUEST,
            "invalid_field",
        )
        .await;
    }
    assert_error(
        mark_read(&app, ALICE, "nope", json!({"seq": 1})).await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    )
    .await;
}

#[tokio::test]
async fn posting_moves_the_authors_mark_and_unread_counts_only_others_live_messages() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    app.room("quiet").await;
    let b1 = post(&app, BOB, "general", "b1").await;
    post(&app, BOB, "general", "b2").await;
    post(&app, BOB, "general", "b3").await;
    let alice = room_view(&app, ALICE, "general").await;
    assert_eq!(
        (&alice["last_read_seq"], &alice["unread"]),
        (&json!(0), &json!(3))
    );
    let bob = room_view(&app, BOB, "general").await;
    assert_eq!(
        (&bob["last_read_seq"], &bob["unread"]),
        (&json!(3), &json!(0))
    );

    // Alice's post moves her mark to it: all read.
    let a4 = post(&app, ALICE, "general", "a4").await;
    let alice = room_view(&app, ALICE, "general").await;
    assert_eq!(
        (&alice["last_read_seq"], &alice["unread"]),
        (&json!(4), &json!(0))
    );
    // For Bob, Alice's message is unread; his own are not.
    let bob = room_view(&app, BOB, "general").await;
    assert_eq!(
        (&bob["last_read_seq"], &bob["unread"]),
        (&json!(3), &json!(1))
    );

    let b5 = post(&app, BOB, "general", "b5").await;
    let b6 = post(&app, BOB, "general", "b6").await;
    post(&app, CAROL, "general", "c7").await;
    let alice = room_view(&app, ALICE, "general").await;
    assert_eq!(alice["unread"], 3);
    // A deleted message after the mark is not unread; one before it changes nothing.
    json_of(delete(&app, BOB, "general", id(&b5)).await, StatusCode::OK).await;
    json_of(delete(&app, BOB, "general", id(&b1)).await, StatusCode::OK).await;
    let alice = room_view(&app, ALICE, "general").await;
    assert_eq!(
        (&alice["last_read_seq"], &alice["unread"]),
        (&json!(4), &json!(2))
    );
    let marked = json_of(
        mark_read(&app, ALICE, "general", json!({"seq": 5})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(marked, json!({"last_read_seq": 5, "unread": 2}));
    // Alice deleting her own message (before her mark) changes nothing for her; for
    // Carol, who has read nothing, it is one fewer.
    let carol_before = room_view(&app, CAROL, "general").await;
    assert_eq!(
        (&carol_before["last_read_seq"], &carol_before["unread"]),
        (&json!(7), &json!(0))
    );
    let dave = "dave@example.com";
    assert_eq!(room_view(&app, dave, "general").await["unread"], 5);
    json_of(
        delete(&app, ALICE, "general", id(&a4)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(room_view(&app, dave, "general").await["unread"], 4);
    assert_eq!(room_view(&app, ALICE, "general").await["unread"], 2);
    // Edits and reactions are not unread messages.
    json_of(
        edit(&app, BOB, "general", id(&b6), "b6 edited").await,
        StatusCode::OK,
    )
    .await;
    reacted(&app, BOB, "general", id(&b6), THUMBS, true).await;
    assert_eq!(room_view(&app, ALICE, "general").await["unread"], 2);

    // Each room has its own mark.
    let quiet = room_view(&app, ALICE, "quiet").await;
    assert_eq!(
        (&quiet["last_read_seq"], &quiet["unread"]),
        (&json!(0), &json!(0))
    );
    post(&app, BOB, "quiet", "q1").await;
    assert_eq!(room_view(&app, ALICE, "quiet").await["unread"], 1);
    assert_eq!(room_view(&app, ALICE, "general").await["unread"], 2);
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Every route issue 11 adds that names a message, as (method, path, body).
fn message_routes(room: &str, message: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (
            Method::PATCH,
            message_path(room, message),
            Some(json!({"content": "edited"})),
        ),
        (Method::DELETE, message_path(room, message), None),
        (Method::PUT, reaction_path(room, message, THUMBS), None),
        (Method::DELETE, reaction_path(room, message, THUMBS), None),
        (
            Method::GET,
            format!("/api/rooms/{room}/messages/{message}/replies"),
            None,
        ),
    ]
}

#[tokio::test]
async fn an_unknown_malformed_or_other_rooms_message_is_404_message_not_found() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    app.room("other").await;
    post(&app, ALICE, "general", "here").await;
    let elsewhere = post(&app, ALICE, "other", "elsewhere").await;
    let unknown = uuid::Uuid::new_v4().to_string();
    for message in [unknown.as_str(), "not-a-uuid", "12345", id(&elsewhere)] {
        for (method, path, body) in message_routes("general", message) {
            let response = call(&app, ALICE, method.clone(), &path, body).await;
            let text = format!("{method} {path}");
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{text}");
            assert_error(response, StatusCode::NOT_FOUND, "message_not_found").await;
        }
    }
    // The other room's message is untouched.
    let there = listed(&app, ALICE, "other").await;
    assert_eq!(there[0]["content"], "elsewhere");
    assert_eq!(there[0]["reactions"], json!([]));
    assert!(there[0]["deleted_at"].is_null());
}

#[tokio::test]
async fn a_private_room_answers_404_room_not_found_to_outsiders_on_every_new_route() {
    let app = TestApp::spawn().await;
    private_room(&app, "secret").await;
    let secret = post(&app, ALICE, "secret", "for members").await;
    let m = id(&secret).to_owned();
    let mut routes = message_routes("secret", &m);
    routes.push((
        Method::PUT,
        "/api/rooms/secret/read".to_owned(),
        Some(json!({"seq": 1})),
    ));
    routes.push((
        Method::POST,
        "/api/rooms/secret/messages".to_owned(),
        Some(json!({"content": "re", "reply_to": m})),
    ));
    for (method, path, body) in &routes {
        let hidden = call(&app, BOB, method.clone(), path, body.clone()).await;
        let missing = call(
            &app,
            BOB,
            method.clone(),
            &path.replace("secret", "missing"),
            body.clone(),
        )
        .await;
        let missing: Value = json_of(missing, StatusCode::NOT_FOUND).await;
        let hidden: Value = json_of(hidden, StatusCode::NOT_FOUND).await;
        assert_eq!(hidden["error"]["code"], "room_not_found", "{method} {path}");
        assert_eq!(hidden, missing, "{method} {path}: as if it did not exist");
    }
    // Nothing Bob tried changed anything.
    let messages = listed(&app, ALICE, "secret").await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0], listed_one(&app, ALICE, "secret", &m).await);
    assert_eq!(messages[0]["content"], "for members");
    assert_eq!(messages[0]["reactions"], json!([]));
    assert_eq!(messages[0]["reply_count"], 0);
    assert!(messages[0]["deleted_at"].is_null());
    let marks: i64 =
        sqlx::query_scalar("SELECT count(*) FROM chat_read_marks WHERE user_email = $1")
            .bind(BOB)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(marks, 0);

    // Once a member, Bob may use them (except editing or deleting Alice's message).
    let added = app
        .post_as(ALICE, "/api/rooms/secret/members", &json!({"email": BOB}))
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    reacted(&app, BOB, "secret", &m, THUMBS, true).await;
    let reply = post_body(&app, BOB, "secret", json!({"content": "re", "reply_to": m})).await;
    assert_eq!(reply["reply_to"]["id"], m.as_str());
    json_of(
        app.get_as(BOB, &format!("/api/rooms/secret/messages/{m}/replies"))
            .await,
        StatusCode::OK,
    )
    .await;
    json_of(
        mark_read(&app, BOB, "secret", json!({"seq": 1})).await,
        StatusCode::OK,
    )
    .await;
    assert_error(
        edit(&app, BOB, "secret", &m, "mine now").await,
        StatusCode::FORBIDDEN,
        "not_message_author",
    )
    .await;
    // And once removed, they are hidden again.
    let removed = call(
        &app,
        ALICE,
        Method::DELETE,
        &format!("/api/rooms/secret/members/{BOB}"),
        None,
    )
    .await;
    assert!(removed.status().is_success());
    let bobs_reply = id(&reply).to_owned();
    for (method, path, body) in message_routes("secret", &bobs_reply) {
        let response = call(&app, BOB, method.clone(), &path, body).await;
        assert_error(response, StatusCode::NOT_FOUND, "room_not_found").await;
    }
}

// ---------------------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------------------

async fn assert_limited(response: reqwest::Response) {
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .expect("a 429 has Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry_after), "Retry-After {retry_after}");
    assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn edits_and_deletes_share_the_edits_rate_limit() {
    let app = TestApp::spawn_with(|c| c.limits.edits = limited("3/10s", "edit")).await;
    app.room("general").await;
    let a = post(&app, ALICE, "general", "a").await;
    let b = post(&app, ALICE, "general", "b").await;
    for i in 0..2 {
        let response = edit(&app, ALICE, "general", id(&a), &format!("edit {i}")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["ratelimit-limit"], "3");
    }
    json_of(delete(&app, ALICE, "general", id(&b)).await, StatusCode::OK).await;
    assert_limited(edit(&app, ALICE, "general", id(&a), "one too many").await).await;
    let c = post(&app, ALICE, "general", "c").await; // posts have their own bucket
    assert_limited(delete(&app, ALICE, "general", id(&c)).await).await;
    // Refused writes changed nothing.
    let messages = listed(&app, ALICE, "general").await;
    assert_eq!(messages[0]["content"], "edit 1");
    assert!(messages[2]["deleted_at"].is_null());
    // Deleting a tombstone again costs nothing, even with the bucket empty.
    json_of(delete(&app, ALICE, "general", id(&b)).await, StatusCode::OK).await;
    // Reactions and other users have buckets of their own.
    reacted(&app, ALICE, "general", id(&a), THUMBS, true).await;
    let bobs = post(&app, BOB, "general", "bob's").await;
    json_of(
        edit(&app, BOB, "general", id(&bobs), "bob's, edited").await,
        StatusCode::OK,
    )
    .await;
    // Tokens come back: 3 per 10 s, one every 3.4 s or so.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    json_of(
        edit(&app, ALICE, "general", id(&a), "later").await,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn reactions_have_their_own_rate_limit_and_a_no_op_costs_nothing() {
    let app = TestApp::spawn_with(|c| c.limits.reactions = limited("3/10s", "react")).await;
    app.room("general").await;
    let m = post(&app, BOB, "general", "react").await;
    reacted(&app, ALICE, "general", id(&m), THUMBS, true).await;
    reacted(&app, ALICE, "general", id(&m), "🎉", true).await;
    reacted(&app, ALICE, "general", id(&m), THUMBS, false).await;
    assert_limited(react(&app, ALICE, "general", id(&m), HEART, true).await).await;
    assert_limited(react(&app, ALICE, "general", id(&m), "🎉", false).await).await;
    // Adding one already there, or removing one that is not: 200, no token needed.
    let same = reacted(&app, ALICE, "general", id(&m), "🎉", true).await;
    assert_eq!(reactions(&same), [r("🎉", 1, true)]);
    reacted(&app, ALICE, "general", id(&m), THUMBS, false).await;
    // Edits are a separate bucket; Bob has his own.
    json_of(
        edit(&app, BOB, "general", id(&m), "edited").await,
        StatusCode::OK,
    )
    .await;
    reacted(&app, BOB, "general", id(&m), HEART, true).await;
    assert_eq!(
        reactions(&listed_one(&app, ALICE, "general", id(&m)).await),
        [r("🎉", 1, true), r(HEART, 1, false)]
    );
}

// ---------------------------------------------------------------------------------------
// The stream
// ---------------------------------------------------------------------------------------

/// Opens `email`'s stream on `room` and reads its `retry:` line.
async fn open(
    app: &TestApp,
    email: &str,
    room: &str,
    query: &str,
    last: Option<&str>,
) -> RawStream {
    let mut stream = RawStream::open_as(app, email, room, query, last).await;
    assert_eq!(stream.next(WAIT).await.unwrap().retry, Some(1000));
    stream
}

/// The next log event: its id, its name and its data.
async fn next_change(stream: &mut RawStream) -> (i64, String, Value) {
    let block = stream.next_event(WAIT).await.expect("an event");
    change(&block)
}

fn change(block: &Block) -> (i64, String, Value) {
    let id: i64 = block.id.as_deref().expect("an id").parse().unwrap();
    let data = block.json();
    assert_eq!(data["event_id"], id, "the data carries its event id");
    (id, block.event.clone().expect("a name"), data)
}

#[tokio::test]
async fn edits_reactions_and_deletes_are_events_on_the_stream_with_increasing_ids() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let mut stream = open(&app, ALICE, "general", "", None).await;

    let sent = post(&app, ALICE, "general", "hello").await;
    let (first, name, data) = next_change(&mut stream).await;
    assert_eq!((name.as_str(), &data), ("message", &sent));

    let edited = json_of(
        edit(&app, ALICE, "general", id(&sent), "hello, edited").await,
        StatusCode::OK,
    )
    .await;
    let (second, name, data) = next_change(&mut stream).await;
    assert_eq!((name.as_str(), &data), ("message.updated", &edited));
    assert!(second > first);

    let liked = reacted(&app, ALICE, "general", id(&sent), THUMBS, true).await;
    let (third, name, data) = next_change(&mut stream).await;
    assert_eq!((name.as_str(), &data), ("message.updated", &liked));
    assert_eq!(reactions(&data), [r(THUMBS, 1, true)]);
    assert!(third > second);

    let unliked = reacted(&app, ALICE, "general", id(&sent), THUMBS, false).await;
    let (fourth, name, data) = next_change(&mut stream).await;
    assert_eq!((name.as_str(), &data), ("message.updated", &unliked));
    assert!(fourth > third);

    let tombstone = json_of(
        delete(&app, ALICE, "general", id(&sent)).await,
        StatusCode::OK,
    )
    .await;
    let (fifth, name, data) = next_change(&mut stream).await;
    assert_eq!((name.as_str(), &data), ("message.deleted", &tombstone));
    assert_eq!(data["content"], "");
    assert!(fifth > fourth);

    // No-ops are not events: the next one is the next post.
    delete(&app, ALICE, "general", id(&sent)).await;
    react(&app, ALICE, "general", id(&sent), THUMBS, false).await;
    let next = post(&app, BOB, "general", "next").await;
    let (sixth, name, data) = next_change(&mut stream).await;
    assert_eq!(
        (name.as_str(), data["id"].clone()),
        ("message", next["id"].clone())
    );
    assert_eq!(sixth, fifth + 1);
}

#[tokio::test]
async fn replies_and_deletes_of_their_originals_update_the_others_on_the_stream() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let original = post(&app, ALICE, "general", "original").await;
    let mut stream = open(&app, CAROL, "general", "", None).await;
    let reply = post_body(
        &app,
        BOB,
        "general",
        json!({"content": "re", "reply_to": original["id"]}),
    )
    .await;
    // The original's reply_count, then the reply.
    let (counted, name, data) = next_change(&mut stream).await;
    assert_eq!(name, "message.updated");
    assert_eq!(data["id"], original["id"]);
    assert_eq!(data["reply_count"], 1);
    let (replied, name, data) = next_change(&mut stream).await;
    assert_eq!((name.as_str(), &data), ("message", &reply));
    assert!(replied > counted);
    // A delete of the original: its tombstone, then the reply with an empty quote.
    json_of(
        delete(&app, ALICE, "general", id(&original)).await,
        StatusCode::OK,
    )
    .await;
    let (gone, name, data) = next_change(&mut stream).await;
    assert_eq!(
        (name.as_str(), &data["id"]),
        ("message.deleted", &original["id"])
    );
    assert_eq!(data["reply_count"], 1);
    let (requoted, name, data) = next_change(&mut stream).await;
    assert_eq!(
        (name.as_str(), &data["id"]),
        ("message.updated", &reply["id"])
    );
    assert_eq!(data["reply_to"]["excerpt"], "");
    assert!(requoted > gone && gone > replied);
}

#[tokio::test]
async fn a_reaction_shows_me_true_only_on_the_reacting_users_own_stream() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    let sent = post(&app, CAROL, "general", "react").await;
    let mut streams = Vec::new();
    for who in [ALICE, BOB, CAROL] {
        streams.push((who, open(&app, who, "general", "", None).await));
    }
    reacted(&app, BOB, "general", id(&sent), THUMBS, true).await;
    for (who, stream) in &mut streams {
        let (_, name, data) = next_change(stream).await;
        assert_eq!(name, "message.updated");
        assert_eq!(
            reactions(&data),
            [r(THUMBS, 1, *who == BOB)],
            "{who}'s stream"
        );
    }
    reacted(&app, ALICE, "general", id(&sent), THUMBS, true).await;
    for (who, stream) in &mut streams {
        let (_, _, data) = next_change(stream).await;
        assert_eq!(
            reactions(&data),
            [r(THUMBS, 2, *who != CAROL)],
            "{who}'s stream"
        );
    }
    // A catch-up from the log shows each their own, too.
    for who in [ALICE, BOB, CAROL] {
        let mut resumed = open(&app, who, "general", "?after=0", None).await;
        let (_, _, data) = next_change(&mut resumed).await;
        assert_eq!(
            reactions(&data),
            [r(THUMBS, 2, who != CAROL)],
            "{who}'s catch-up"
        );
    }
}

#[tokio::test]
async fn any_event_id_or_old_seq_resumes_exactly_after_it() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    // Seeded as before the log (event id = seq), as the migration leaves old rooms.
    app.seed_messages("general", 3).await;
    let messages = listed(&app, ALICE, "general").await;
    let m: Vec<String> = messages.iter().map(|m| id(m).to_owned()).collect();
    let seed = "seed@example.com";
    json_of(
        edit(&app, seed, "general", &m[0], "one, edited").await,
        StatusCode::OK,
    )
    .await;
    reacted(&app, ALICE, "general", &m[1], THUMBS, true).await;
    let fourth = post(&app, BOB, "general", "four").await;
    json_of(delete(&app, seed, "general", &m[2]).await, StatusCode::OK).await;
    assert_eq!(fourth["seq"], 4, "seqs stay gapless among messages");
    let page = json_of(
        app.get_as(ALICE, "/api/rooms/general/messages").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["last_event_id"], 7);

    // The log as it is now, in event order: (event, the event that created it, message).
    let log = [
        (4, 1, m[0].clone()),
        (5, 2, m[1].clone()),
        (6, 6, id(&fourth).to_owned()),
        (7, 3, m[2].clone()),
    ];
    let mut streams = Vec::new();
    for resume in 0..=8_i64 {
        for by_header in [true, false] {
            let mut stream = if by_header {
                open(
                    &app,
                    ALICE,
                    "general",
                    "?after=0",
                    Some(&resume.to_string()),
                )
                .await
            } else {
                open(&app, ALICE, "general", &format!("?after={resume}"), None).await
            };
            if resume == 8 {
                // Ahead of the room: a reset to where it is.
                let reset = stream.next_event(WAIT).await.unwrap();
                assert_eq!(reset.event.as_deref(), Some("reset"));
                assert_eq!(reset.id.as_deref(), Some("7"));
                assert_eq!(reset.json(), json!({"last_seq": 4, "last_event_id": 7}));
                streams.push((resume, stream));
                continue;
            }
            for (event, created, message) in log.iter().filter(|(event, _, _)| *event > resume) {
                let (got, name, data) = next_change(&mut stream).await;
                let how = if by_header { "Last-Event-ID" } else { "?after" };
                assert_eq!(
                    (got, data["id"].as_str().unwrap()),
                    (*event, message.as_str()),
                    "resumed after {resume} by {how}"
                );
                let expected = if data["deleted_at"].is_string() {
                    "message.deleted"
                } else if *created > resume {
                    "message"
                } else {
                    "message.updated"
                };
                assert_eq!(name, expected, "event {event} after {resume}");
                assert_eq!(data, listed_one(&app, ALICE, "general", message).await);
            }
            streams.push((resume, stream));
        }
    }
    // Then nothing but the next change, live, on every one of them.
    let live = post(&app, CAROL, "general", "live").await;
    for (resume, stream) in &mut streams {
        let (event, name, data) = next_change(stream).await;
        assert_eq!((event, name.as_str()), (8, "message"), "after {resume}");
        assert_eq!(data, live);
    }
}

#[tokio::test]
async fn a_moved_read_mark_reaches_the_users_other_streams_with_no_id() {
    let app = TestApp::spawn().await;
    app.room("general").await;
    app.room("other").await;
    // Seeded: no read mark moved lately.
    app.seed_messages("general", 4).await;
    let mut on_general = open(&app, ALICE, "general", "", None).await;
    let mut on_other = open(&app, ALICE, "other", "", None).await;
    let mut bobs = open(&app, BOB, "general", "", None).await;

    let started = Instant::now();
    json_of(
        mark_read(&app, ALICE, "general", json!({"seq": 3})).await,
        StatusCode::OK,
    )
    .await;
    for stream in [&mut on_general, &mut on_other] {
        let block = stream.next_any_event(WAIT).await.unwrap();
        assert_eq!(block.event.as_deref(), Some("read"), "{block:?}");
        assert_eq!(block.id, None, "a read mark has no id");
        assert_eq!(
            block.json(),
            json!({"room_id": "general", "last_read_seq": 3})
        );
    }
    // About one poll interval (500 ms), with room for a loaded machine.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");

    // A lower mark moves nothing and tells nothing; Alice's own post moves it and tells.
    mark_read(&app, ALICE, "general", json!({"seq": 1})).await;
    let sent = post(&app, ALICE, "general", "alice").await;
    let mut saw = Vec::new();
    while saw.len() < 2 {
        let block = on_general.next_any_event(WAIT).await.unwrap();
        saw.push((
            block.event.clone().unwrap(),
            block.id.clone(),
            block.data.clone(),
        ));
    }
    saw.sort();
    assert_eq!(saw[0].0, "message");
    assert_eq!(saw[0].1.as_deref(), Some("5"));
    assert_eq!(saw[1].0, "read");
    assert_eq!(saw[1].1, None);
    assert_eq!(
        serde_json::from_str::<Value>(saw[1].2.as_deref().unwrap()).unwrap(),
        json!({"room_id": "general", "last_read_seq": sent["seq"]})
    );
    let block = on_other.next_any_event(WAIT).await.unwrap();
    assert_eq!(block.event.as_deref(), Some("read"));
    assert_eq!(
        block.json(),
        json!({"room_id": "general", "last_read_seq": 5})
    );

    // Bob's stream heard none of Alice's marks: only her message.
    let block = bobs.next_any_event(WAIT).await.unwrap();
    assert_eq!(block.event.as_deref(), Some("message"));
    let quiet = tokio::time::timeout(Duration::from_millis(1500), bobs.next_any_event(WAIT)).await;
    assert!(quiet.is_err(), "Bob's stream got {quiet:?}");
    // His own mark moving does reach him.
    mark_read(&app, BOB, "general", json!({"seq": 5})).await;
    let block = bobs.next_any_event(WAIT).await.unwrap();
    assert_eq!(block.event.as_deref(), Some("read"));
    assert_eq!(block.id, None);
    assert_eq!(
        block.json(),
        json!({"room_id": "general", "last_read_seq": 5})
    );
}

/// A room with messages from before this migrations: the seqs its streams handed
/// out as ids stay valid resume points, and everyone who posted has read up to their post.
#[tokio::test]
async fn ids_handed_out_before_the_log_migration_resume_exactly_after_them() {
    let url = empty_database().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let before_log = sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(
            shared::db::MIGRATOR
                .iter()
                .filter(|m| m.version < 20261201000000)
                .cloned()
                .collect(),
        ),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    };
    assert_eq!(before_log.iter().count(), 2);
    before_log.run(&pool).await.unwrap();
    // Written as the deployed system wrote them: ids are seqs.
    sqlx::raw_sql(
        "INSERT INTO chat_rooms (id, name, created_by, last_seq) VALUES ('old', 'old', 'alice@example.com', 3);
         INSERT INTO chat_messages (id, room_id, seq, user_email, content) VALUES
           (gen_random_uuid(), 'old', 1, 'bob@example.com', 'one'),
           (gen_random_uuid(), 'old', 2, 'alice@example.com', 'two'),
           (gen_random_uuid(), 'old', 3, 'bob@example.com', 'three');",
    )
    .execute(&pool)
    .await
    .unwrap();
    shared::db::MIGRATOR.run(&pool).await.unwrap();
    pool.close().await;
    let s3 = EmbeddedS3::start("chat-test", None).expect("start S3");
    let app = TestApp::serve(base_config(&url, &s3), url, s3).await;

    let old = listed(&app, CAROL, "old").await;
    let ids: Vec<String> = old.iter().map(|m| id(m).to_owned()).collect();
    assert_eq!(
        old.iter()
            .map(|m| m["event_id"].clone())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // The marks: Bob read up to 3, Alice up to 2; Carol never posted.
    for (who, mark, unread) in [(BOB, 3, 0), (ALICE, 2, 1), (CAROL, 0, 3)] {
        let view = room_view(&app, who, "old").await;
        assert_eq!(
            (&view["last_read_seq"], &view["unread"]),
            (&json!(mark), &json!(unread)),
            "{who}"
        );
    }
    // A client that saw seq 2 before the migration resumes after it.
    let mut stream = open(&app, CAROL, "old", "", Some("2")).await;
    let (event, name, data) = next_change(&mut stream).await;
    assert_eq!(
        (event, name.as_str(), data["id"].as_str()),
        (3, "message", Some(ids[2].as_str()))
    );
    // New changes continue the ids past the old seqs.
    json_of(
        edit(&app, BOB, "old", &ids[0], "one, edited").await,
        StatusCode::OK,
    )
    .await;
    let four = post(&app, ALICE, "old", "four").await;
    assert_eq!((&four["seq"], &four["event_id"]), (&json!(4), &json!(5)));
    let (event, name, data) = next_change(&mut stream).await;
    assert_eq!(
        (event, name.as_str(), data["content"].as_str()),
        (4, "message.updated", Some("one, edited"))
    );
    let (event, name, _) = next_change(&mut stream).await;
    assert_eq!((event, name.as_str()), (5, "message"));
    // Resuming after old seq 1 now: seqs 2 and 3 as they were, then the changes since.
    let mut resumed = open(&app, CAROL, "old", "?after=1", None).await;
    let mut got = Vec::new();
    for _ in 0..4 {
        let (event, name, data) = next_change(&mut resumed).await;
        got.push((event, name, data["seq"].as_i64().unwrap()));
    }
    assert_eq!(
        got,
        [
            (2, "message".to_owned(), 2),
            (3, "message".to_owned(), 3),
            (4, "message.updated".to_owned(), 1),
            (5, "message".to_owned(), 4),
        ]
    );
}
