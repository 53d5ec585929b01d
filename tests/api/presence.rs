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
    c.stream.wakeup_poll_interval = Duration::from_millis(50);
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

/// Past `PRESENCE_EVENTS_MAX_ONLINE` users present, streams get one `presence.crowded`
/// instead of a frame per join (a cost that grows with the square of the room), and per-user
/// events resume, with the list, once the room is down to 90 % of it.
#[tokio::test]
async fn a_crowded_room_tells_its_streams_once_instead_of_per_join_then_lists_everyone_again() {
    const DAVE: &str = "dave@example.com";
    const ERIN: &str = "erin@example.com";
    let app = TestApp::spawn_with(|c| {
        fast_presence(c);
        c.stream.presence_events_max_online = 3;
    })
    .await;
    app.room("general").await;
    let mut bob = RawStream::open_as(&app, BOB, "general", "", None).await;
    bob.next(WAIT).await.unwrap(); // retry:
    let mut others = Vec::new();
    for user in [ALICE, CAROL] {
        others.push(RawStream::open_as(&app, user, "general", "", None).await);
        let joined = next_named(&mut bob, "presence").await;
        assert_eq!(
            joined.json(),
            json!({"user_email": user, "status": "online"})
        );
    }
    // The fourth user takes the room past the limit: one frame, and none per user after it.
    let mut dave = RawStream::open_as(&app, DAVE, "general", "", None).await;
    let crowded = next_named(&mut bob, "presence.crowded").await;
    assert_eq!(crowded.id, None);
    assert_eq!(
        crowded.json(),
        json!({"crowded": true, "online_count": 4, "limit": 3})
    );
    // A stream opening on the crowded room gets that instead of its opening list.
    assert!(dave.next(WAIT).await.unwrap().retry.is_some());
    let opening = next_named(&mut dave, "presence.crowded").await;
    assert_eq!(opening.json()["crowded"], json!(true));
    let erin = RawStream::open_as(&app, ERIN, "general", "", None).await;
    app.send("general", "busy room").await;
    next_named(&mut bob, "message").await;
    // `GET …/presence` still lists everyone.
    online_becomes(&app, "general", &[ALICE, BOB, CAROL, DAVE, ERIN], WAIT).await;
    // Down to 3 (> 90 % of 3): still crowded, and nothing said.
    drop(erin);
    drop(dave);
    tokio::time::sleep(Duration::from_secs(4)).await;
    app.send("general", "still crowded").await;
    next_named(&mut bob, "message").await;
    // Down to 2: crowded no more, then everyone present.
    others.pop(); // Carol
    let calm = next_named(&mut bob, "presence.crowded").await;
    assert_eq!(
        calm.json(),
        json!({"crowded": false, "online_count": 2, "limit": 3})
    );
    for user in [ALICE, BOB] {
        let listed = next_named(&mut bob, "presence").await;
        assert_eq!(
            listed.json(),
            json!({"user_email": user, "status": "online"})
        );
    }
    // Per-user events again.
    let _carol = RawStream::open_as(&app, CAROL, "general", "", None).await;
    let back = next_named(&mut bob, "presence").await;
    assert_eq!(
        back.json(),
        json!({"user_email": CAROL, "status": "online"})
    );
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
    // Bob's stream hears Alice come online on the other instance (the notification).
    let joined = next_named(&mut bob, "presence").await;
    assert_eq!(joined.id, None);
    assert_eq!(
        joined.json(),
        json!({"user_email": ALICE, "status": "online"})
    );
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
    // A second tab of Alice's on the second instance: nobody is told anything.
    let mut tab = RawStream::open_as(&two, ALICE, "general", "", None).await;
    tab.next(WAIT).await.unwrap();
    one.send("general", "second tab").await;
    next_named(&mut bob, "message").await;
    // Her first instance's stream closes: she is still online through the second.
    drop(alice);
    tokio::time::sleep(Duration::from_secs(5)).await;
    one.send("general", "still online").await;
    next_named(&mut bob, "message").await;
    online_becomes(&one, "general", &[ALICE, BOB], WAIT).await;
    // Her last stream closes: offline, once, after the debounce.
    drop(tab);
    let left = next_named(&mut bob, "presence").await;
    assert_eq!(
        left.json(),
        json!({"user_email": ALICE, "status": "offline"})
    );
    online_becomes(&one, "general", &[BOB], Duration::from_secs(10)).await;
}

#[tokio::test]
async fn presence_events_cross_instances_through_the_heartbeat_with_polling_only() {
    let database_url = fresh_database().await;
    let polling = || async {
        let s3 = EmbeddedS3::start("chat-test", None).expect("start S3");
        let mut config = base_config(&database_url, &s3);
        fast_presence(&mut config);
        TestApp::serve(config, database_url.clone(), s3).await
    };
    let one = polling().await;
    let two = polling().await;
    assert!(!one.app.hub.wakeup_on());
    one.room("general").await;
    let mut bob = RawStream::open_as(&two, BOB, "general", "", None).await;
    bob.next(WAIT).await.unwrap();
    // Bob's instance has read the others once (silently) before Alice arrives.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let alice = RawStream::open_as(&one, ALICE, "general", "", None).await;
    // Within two heartbeats: hers writes, Bob's reads.
    let joined = next_named(&mut bob, "presence").await;
    assert_eq!(
        joined.json(),
        json!({"user_email": ALICE, "status": "online"})
    );
    // The 3 s debounce, her instance's next write, then Bob's instance's next read.
    drop(alice);
    let left = bob
        .next_signal(Duration::from_secs(10))
        .await
        .expect("stream open");
    assert_eq!(left.event.as_deref(), Some("presence"), "{left:?}");
    assert_eq!(
        left.json(),
        json!({"user_email": ALICE, "status": "offline"})
    );
}

/// A `dev-server` process on `database_url` (every route, the wake-up on, presence fast),
/// killed on drop. The binary is `DEV_SERVER_BIN`, else the one beside this test's
/// (`target/debug/dev-server`), built once with Cargo when missing.
struct ServerProcess {
    child: std::process::Child,
    base: String,
    client: reqwest::Client,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dev_server_bin() -> std::path::PathBuf {
    static BIN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("DEV_SERVER_BIN").filter(|b| !b.is_empty()) {
            return bin.into();
        }
        // target/debug/deps/api-… → target/debug/dev-server
        let exe = std::env::current_exe().expect("test binary path");
        let bin = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("target dir")
            .join("dev-server");
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "chat-dev", "--bin", "dev-server"])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p chat-dev --bin dev-server");
        assert!(bin.is_file(), "no {}", bin.display());
        bin
    })
    .clone()
}

impl ServerProcess {
    async fn start(database_url: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = std::process::Command::new(dev_server_bin())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            .env("DATABASE_URL", database_url)
            .env("DATABASE_URL_UNPOOLED", database_url)
            .env("AUTH_JWT_SECRET", "test-secret")
            .env("STREAM_POLL_MS", "100")
            .env("STREAM_WAKEUP_POLL_MS", "100")
            .env("PRESENCE_HEARTBEAT_SECS", "1")
            .env("PRESENCE_TTL_SECS", "3")
            .env("RATE_LIMIT_POSTS", "off")
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn dev-server");
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        let until = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let health = server.client.get(server.url("/api/health")).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return server;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "dev-server did not come up"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn token(&self, email: &str) -> String {
        let response = self
            .client
            .post(self.url("/api/dev/token"))
            .json(&json!({ "email": email }))
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    async fn stream(&self, email: &str, room: &str) -> RawStream {
        let response = self
            .client
            .get(self.url(&format!("/api/rooms/{room}/stream")))
            .bearer_auth(self.token(email).await)
            .send()
            .await
            .unwrap();
        let mut stream = RawStream::from_response(response);
        stream.next(WAIT).await.unwrap(); // retry:
        stream
    }

    async fn online(&self, room: &str) -> Vec<String> {
        let response = self
            .client
            .get(self.url(&format!("/api/rooms/{room}/presence")))
            .bearer_auth(self.token(BOB).await)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["online"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["user_email"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn online_becomes(&self, room: &str, expected: &[&str], within: Duration) {
        let until = tokio::time::Instant::now() + within;
        loop {
            let now = self.online(room).await;
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
}

#[tokio::test]
async fn two_server_processes_share_presence_and_typing_and_a_killed_ones_users_go_offline() {
    let database_url = fresh_database().await;
    let (one, two) = tokio::join!(
        ServerProcess::start(&database_url),
        ServerProcess::start(&database_url)
    );
    let created = one
        .client
        .post(one.url("/api/rooms"))
        .bearer_auth(one.token(ALICE).await)
        .json(&json!({"id": "general"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let mut bob = two.stream(BOB, "general").await;
    // Alice streams through the first process: the second lists her and tells Bob.
    let _alice = one.stream(ALICE, "general").await;
    let joined = next_named(&mut bob, "presence").await;
    assert_eq!(
        joined.json(),
        json!({"user_email": ALICE, "status": "online"})
    );
    two.online_becomes("general", &[ALICE, BOB], WAIT).await;
    // Typing sent to the first reaches Bob on the second.
    let typed = one
        .client
        .post(one.url("/api/rooms/general/typing"))
        .bearer_auth(one.token(ALICE).await)
        .send()
        .await
        .unwrap();
    assert_eq!(typed.status(), StatusCode::NO_CONTENT);
    let event = next_named(&mut bob, "typing").await;
    assert_eq!(event.id, None);
    assert_eq!(event.json()["user_email"], ALICE);
    // SIGKILL the first: nothing says goodbye; Alice's entry lapses after PRESENCE_TTL_SECS
    // (3 s), and the second's next heartbeat (1 s) reads her gone.
    let mut one = one;
    one.child.kill().expect("SIGKILL");
    let killed = tokio::time::Instant::now();
    let left = bob
        .next_signal(Duration::from_secs(10))
        .await
        .expect("stream open");
    assert_eq!(left.event.as_deref(), Some("presence"), "{left:?}");
    assert_eq!(
        left.json(),
        json!({"user_email": ALICE, "status": "offline"})
    );
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_secs(3 + 2 + 1),
        "offline after {took:?}"
    );
    two.online_becomes("general", &[BOB], Duration::from_secs(1))
        .await;
    eprintln!("offline {took:?} after SIGKILL");
}
