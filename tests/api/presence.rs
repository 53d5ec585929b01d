//! Typing and presence: ephemeral events with no id, never in the log; presence written by
//! each instance in one statement per heartbeat, entries expiring on their own.

use std::time::Duration;

use chat_dev::EmbeddedS3;
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::config::Config;

use crate::helpers::{ALICE, BOB, TestApp, assert_error, base_config, fresh_database};
use crate::sse_client::{Block, RawStream};

const WAIT: Duration = Duration::from_secs(5);
const CAROL: &str = "carol@example.com";

fn fast_presence(c: &mut Config) {
    c.stream.poll_interval = Duration::from_millis(50);
    c.stream.presence_heartbeat = Duration::from_secs(1);
    c.stream.presence_ttl = Duration::from_secs(3);
}

async fn typing(app: &TestApp, email: &str, room: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/rooms/{room}/typing")))
        .bearer_auth(app.token(email))
        .send()
        .await
        .unwrap()
}

async fn presence(app: &TestApp, email: &str, room: &str) -> reqwest::Response {
    app.get_as(email, &format!("/api/rooms/{room}/presence"))
        .await
}

/// The users `GET /presence` lists, in order.
async fn online(app: &TestApp, room: &str) -> Vec<String> {
    let response = presence(app, BOB, room).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["online"]
        .as_array()
        .expect("online is a list")
        .iter()
        .map(|entry| {
            assert!(entry["since"].is_string(), "{entry}");
            entry["user_email"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Polls `GET /presence` until it lists exactly `expected`.
async fn online_becomes(app: &TestApp, room: &str, expected: &[&str], within: Duration) {
    let until = tokio::time::Instant::now() + within;
    loop {
        let now = online(app, room).await;
        if now == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "presence is {now:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The next event that is not a heartbeat, of the named kind; panics on anything else.
async fn next_named(stream: &mut RawStream, name: &str) -> Block {
    let block = stream.next_signal(WAIT).await.expect("stream open");
    assert_eq!(block.event.as_deref(), Some(name), "{block:?}");
    block
}

async fn typing_reaches_another_subscriber_once_a_second(app: &TestApp) {
    app.room("general").await;
    let mut bob = RawStream::open_as(app, BOB, "general", "", None).await;
    bob.next(WAIT).await.unwrap(); // retry:
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..5 {
        assert_eq!(
            typing(app, ALICE, "general").await.status(),
            StatusCode::NO_CONTENT
        );
    }
    let event = next_named(&mut bob, "typing").await;
    assert_eq!(event.id, None, "typing is not part of the log");
    let data = event.json();
    assert_eq!(data["user_email"], ALICE);
    let expires: chrono::DateTime<chrono::Utc> =
        data["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(expires > chrono::Utc::now(), "{data}");
    // The four others were dropped: the next event is the message sent after them.
    app.send("general", "after typing").await;
    let next = next_named(&mut bob, "message").await;
    assert!(next.id.is_some());
    // A second later, typing goes out again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        typing(app, ALICE, "general").await.status(),
        StatusCode::NO_CONTENT
    );
    let again = next_named(&mut bob, "typing").await;
    assert_eq!(again.json()["user_email"], ALICE);
    // Nothing of it is in the log.
    let log: Value = app.list_messages("general", "").await.json().await.unwrap();
    assert_eq!(log["messages"].as_array().unwrap().len(), 1, "{log}");
}

#[tokio::test]
async fn typing_reaches_a_subscriber_without_an_id_once_a_second_with_polling_only() {
    let app = TestApp::spawn_with(fast_presence).await;
    assert!(!app.app.hub.wakeup_on());
    typing_reaches_another_subscriber_once_a_second(&app).await;
}

#[tokio::test]
async fn typing_reaches_a_subscriber_without_an_id_once_a_second_through_notify() {
    let database_url = fresh_database().await;
    let s3 = EmbeddedS3::start("chat-test", None).expect("start S3");
    let mut config = base_config(&database_url, &s3);
    config.database.url_unpooled = Some(database_url.clone());
    fast_presence(&mut config);
    let app = TestApp::serve(config, database_url, s3).await;
    assert!(app.app.hub.wakeup_on());
    typing_reaches_another_subscriber_once_a_second(&app).await;
}

#[tokio::test]
async fn presence_lists_a_streaming_user_once_and_drops_them_after_the_stream_closes() {
    let app = TestApp::spawn_with(fast_presence).await;
    app.room("general").await;
    assert_eq!(online(&app, "general").await, Vec::<String>::new());
    let mut bob = RawStream::open_as(&app, BOB, "general", "", None).await;
    bob.next(WAIT).await.unwrap(); // retry:
    // Two tabs.
    let mut tab1 = RawStream::open_as(&app, ALICE, "general", "", None).await;
    let mut tab2 = RawStream::open_as(&app, ALICE, "general", "", None).await;
    tab1.next(WAIT).await.unwrap();
    tab2.next(WAIT).await.unwrap();
    // Bob hears Alice come online once, with no id.
    let joined = next_named(&mut bob, "presence").await;
    assert_eq!(joined.id, None);
    assert_eq!(
        joined.json(),
        json!({"user_email": ALICE, "status": "online"})
    );
    online_becomes(&app, "general", &[ALICE, BOB], WAIT).await;
    // One tab closes: still online, and no event.
    drop(tab1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(online(&app, "general").await, [ALICE, BOB]);
    // The last closes: offline after the debounce, and gone from the list.
    drop(tab2);
    let left = next_named(&mut bob, "presence").await;
    assert_eq!(left.id, None);
    assert_eq!(
        left.json(),
        json!({"user_email": ALICE, "status": "offline"})
    );
    online_becomes(&app, "general", &[BOB], WAIT).await;
}

#[tokio::test]
async fn a_reconnect_within_the_debounce_does_not_flap_presence() {
    let app = TestApp::spawn_with(fast_presence).await;
    app.room("general").await;
    let mut bob = RawStream::open_as(&app, BOB, "general", "", None).await;
    bob.next(WAIT).await.unwrap();
    let alice = RawStream::open_as(&app, ALICE, "general", "", None).await;
    next_named(&mut bob, "presence").await;
    drop(alice);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut alice = RawStream::open_as(&app, ALICE, "general", "", None).await;
    alice.next(WAIT).await.unwrap();
    // Past the debounce, then a message: Bob heard neither offline nor online.
    tokio::time::sleep(Duration::from_secs(4)).await;
    app.send("general", "still here").await;
    next_named(&mut bob, "message").await;
    assert_eq!(online(&app, "general").await, [ALICE, BOB]);
}

#[tokio::test]
async fn an_entry_expires_on_its_own_when_its_instance_is_gone() {
    let app = TestApp::spawn_with(fast_presence).await;
    app.room("general").await;
    // What a SIGKILLed instance leaves behind: rows nobody refreshes.
    sqlx::query(
        "INSERT INTO chat_presence (room_id, user_email, instance_id, since, expires_at)
         VALUES ('general', $1, 'dead', now(), now() + interval '2 seconds')",
    )
    .bind(CAROL)
    .execute(&app.db)
    .await
    .unwrap();
    assert_eq!(online(&app, "general").await, [CAROL]);
    online_becomes(&app, "general", &[], WAIT).await;
    // A live instance's heartbeat sweeps the dead row.
    let _bob = RawStream::open_as(&app, BOB, "general", "", None).await;
    online_becomes(&app, "general", &[BOB], WAIT).await;
    let dead: i64 =
        sqlx::query_scalar("SELECT count(*) FROM chat_presence WHERE instance_id = 'dead'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(dead, 0);
}

#[tokio::test]
async fn an_outsider_gets_404_for_a_private_rooms_presence_and_typing() {
    let app = TestApp::spawn_with(fast_presence).await;
    let response = app
        .post_as(
            ALICE,
            "/api/rooms",
            &json!({"id": "secret", "visibility": "private"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        presence(&app, ALICE, "secret").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        typing(&app, ALICE, "secret").await.status(),
        StatusCode::NO_CONTENT
    );
    for _ in 0..2 {
        assert_error(
            presence(&app, BOB, "secret").await,
            StatusCode::NOT_FOUND,
            "room_not_found",
        )
        .await;
        assert_error(
            typing(&app, BOB, "secret").await,
            StatusCode::NOT_FOUND,
            "room_not_found",
        )
        .await;
    }
    assert_error(
        presence(&app, ALICE, "nowhere").await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    )
    .await;
}

#[tokio::test]
async fn presence_adds_at_most_one_statement_per_heartbeat_whatever_the_streams() {
    const POLL: Duration = Duration::from_millis(100);
    const WINDOW: Duration = Duration::from_secs(5);
    async fn idle(subscribers: usize) -> u64 {
        let app = TestApp::spawn_with(|c| {
            c.stream.poll_interval = POLL;
            c.stream.presence_heartbeat = Duration::from_secs(1);
        })
        .await;
        app.room("general").await;
        let mut streams = Vec::new();
        for i in 0..subscribers {
            let email = format!("user{i}@example.com");
            streams.push(RawStream::open_as(&app, &email, "general", "", None).await);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = app.app.hub.stats().statements_total;
        tokio::time::sleep(WINDOW).await;
        let after = app.app.hub.stats();
        assert_eq!(after.open_streams, subscribers);
        drop(streams);
        after.statements_total - before
    }
    let ticks = (WINDOW.as_millis() / POLL.as_millis()) as u64;
    let heartbeats = WINDOW.as_secs();
    for subscribers in [1, 50] {
        let count = idle(subscribers).await;
        eprintln!("{subscribers} subscribers: {count} statements over {WINDOW:?}");
        assert!(
            count <= ticks + 1 + heartbeats + 1,
            "{subscribers} subscribers: {count} statements over {ticks} ticks and {heartbeats} heartbeats"
        );
    }
}

/// Two server processes' worth of app on one database, with the wake-up on.
async fn instance(database_url: &str) -> TestApp {
    let s3 = EmbeddedS3::start("chat-test", None).expect("start S3");
    let mut config = base_config(database_url, &s3);
    config.database.url_unpooled = Some(database_url.to_owned());
    fast_presence(&mut config);
    TestApp::serve(config, database_url.to_owned(), s3).await
}

#[tokio::test]
async fn typing_and_presence_cross_instances_on_one_database() {
    let database_url = fresh_database().await;
    let one = instance(&database_url).await;
    let two = instance(&database_url).await;
    one.room("general").await;
    // Bob streams from the second instance; Alice from the first.
    let mut bob = RawStream::open_as(&two, BOB, "general", "", None).await;
    bob.next(WAIT).await.unwrap();
    let mut alice = RawStream::open_as(&one, ALICE, "general", "", None).await;
    alice.next(WAIT).await.unwrap();
    online_becomes(&two, "general", &[ALICE, BOB], WAIT).await;
    online_becomes(&one, "general", &[ALICE, BOB], WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Typing sent to the first reaches the second's subscriber, once.
    for _ in 0..3 {
        assert_eq!(
            typing(&one, ALICE, "general").await.status(),
            StatusCode::NO_CONTENT
        );
    }
    let event = next_named(&mut bob, "typing").await;
    assert_eq!(event.id, None);
    assert_eq!(event.json()["user_email"], ALICE);
    // Sent to the second instance within the second: dropped where it is delivered.
    assert_eq!(
        typing(&two, ALICE, "general").await.status(),
        StatusCode::NO_CONTENT
    );
    one.send("general", "after typing").await;
    next_named(&mut bob, "message").await;
    // Alice's instance goes away: her entry is gone from the other's list.
    drop(alice);
    online_becomes(&two, "general", &[BOB], Duration::from_secs(10)).await;
}
