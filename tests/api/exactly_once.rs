//! Issue 11's exactly-once proof: 16 writers mix posts (some of them replies), edits,
//! reactions added and removed, and deletes, while subscribers reconnect with
//! `Last-Event-ID` every few hundred milliseconds. Each subscriber must see no event id
//! twice, ids strictly increasing, and end with exactly the state the list route shows of
//! every message (each event's data upserted by message id).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use reqwest_eventsource::{Event, EventSource};
use serde_json::{Value, json};
use shared::db::limits::RateLimit;
use tokio::time::Instant;

use crate::helpers::{ALICE, BOB, TestApp};
use crate::sse_client::RawStream;

const CAROL: &str = "carol@example.com";
const DAVE: &str = "dave@example.com";
/// A subscriber that never writes.
const EVE: &str = "eve@example.com";
pub(crate) const ROOM: &str = "general";
const WRITERS: usize = 16;
const AUTHORS: [&str; 4] = [ALICE, BOB, CAROL, DAVE];
const WRITE_FOR: Duration = Duration::from_secs(4);
/// How long the subscribers get, after the writers stop, to reach the room's last event.
const CATCH_UP_WITHIN: Duration = Duration::from_secs(120);
const EMOJI: [&str; 4] = ["👍", "🎉", "\u{2764}\u{fe0f}", "😀"];

/// xorshift64*: reproducible choices without a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) % n
    }
}

fn enc(raw: &str) -> String {
    raw.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// What the writers did that the server accepted.
#[derive(Debug, Default)]
pub(crate) struct Done {
    pub(crate) posts: usize,
    pub(crate) replies: usize,
    pub(crate) edits: usize,
    pub(crate) reactions_added: usize,
    pub(crate) reactions_removed: usize,
    pub(crate) deletes: usize,
    /// 409 `message_deleted`: an edit, reaction or reply that lost a race with a delete.
    pub(crate) lost_to_a_delete: usize,
}

impl Done {
    pub(crate) fn add(&mut self, other: &Done) {
        self.posts += other.posts;
        self.replies += other.replies;
        self.edits += other.edits;
        self.reactions_added += other.reactions_added;
        self.reactions_removed += other.reactions_removed;
        self.deletes += other.deletes;
        self.lost_to_a_delete += other.lost_to_a_delete;
    }
}

/// The messages posted so far: (id, author).
pub(crate) type Known = Mutex<Vec<(String, &'static str)>>;

async fn request(
    app: &TestApp,
    email: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    // Generous: a loaded 2-core machine runs the writers, the subscribers and Postgres.
    let mut request = app
        .client
        .request(method.clone(), app.url(path))
        .bearer_auth(app.token(email))
        .timeout(Duration::from_secs(60));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status();
    let body: Value = response.json().await.expect("JSON body");
    (status, body)
}

/// Asserts a write answered 200/201, or 409 `message_deleted` when `may_lose` (it raced a
/// delete); returns whether it was accepted.
fn accepted(what: &str, (status, body): &(StatusCode, Value), may_lose: bool) -> bool {
    if status.is_success() {
        return true;
    }
    assert!(
        may_lose && *status == StatusCode::CONFLICT && body["error"]["code"] == "message_deleted",
        "{what}: {status} {body}"
    );
    false
}

pub(crate) async fn writer(app: &TestApp, w: usize, known: &Known, until: Instant) -> Done {
    let me = AUTHORS[w % AUTHORS.len()];
    let mut rng = Rng::new(w as u64 + 1);
    let mut done = Done::default();
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let (any, mine) = {
            let known = known.lock().unwrap();
            let any = (!known.is_empty())
                .then(|| known[rng.below(known.len() as u64) as usize].0.clone());
            let own: Vec<&String> = known
                .iter()
                .filter(|(_, author)| *author == me)
                .map(|(id, _)| id)
                .collect();
            let mine = (!own.is_empty()).then(|| own[rng.below(own.len() as u64) as usize].clone());
            (any, mine)
        };
        let roll = rng.below(100);
        match (roll, any, mine) {
            // A post, a quarter of them replies.
            (0..30, any, _) | (_, any @ None, _) => {
                let reply_to = any.filter(|_| rng.below(4) == 0);
                let is_reply = reply_to.is_some();
                let body = json!({"content": format!("{me} #{w}.{n}"), "reply_to": reply_to});
                let answer = request(
                    app,
                    me,
                    Method::POST,
                    &format!("/api/rooms/{ROOM}/messages"),
                    Some(body),
                )
                .await;
                if accepted("post", &answer, is_reply) {
                    assert_eq!(answer.0, StatusCode::CREATED);
                    done.posts += 1;
                    done.replies += usize::from(is_reply);
                    let id = answer.1["id"].as_str().unwrap().to_owned();
                    known.lock().unwrap().push((id, me));
                } else {
                    done.lost_to_a_delete += 1;
                }
            }
            // An edit of one of mine.
            (30..48, _, Some(mine)) => {
                let answer = request(
                    app,
                    me,
                    Method::PATCH,
                    &format!("/api/rooms/{ROOM}/messages/{mine}"),
                    Some(json!({"content": format!("{me} edited #{w}.{n}")})),
                )
                .await;
                if accepted("edit", &answer, true) {
                    done.edits += 1;
                } else {
                    done.lost_to_a_delete += 1;
                }
            }
            // A reaction added or removed, on anyone's.
            (30..90, Some(any), _) => {
                let emoji = EMOJI[rng.below(EMOJI.len() as u64) as usize];
                let add = rng.below(3) != 0;
                let method = if add { Method::PUT } else { Method::DELETE };
                let answer = request(
                    app,
                    me,
                    method,
                    &format!("/api/rooms/{ROOM}/messages/{any}/reactions/{}", enc(emoji)),
                    None,
                )
                .await;
                if accepted("reaction", &answer, add) {
                    if add {
                        done.reactions_added += 1;
                    } else {
                        done.reactions_removed += 1;
                    }
                } else {
                    done.lost_to_a_delete += 1;
                }
            }
            // A delete: one of mine, or, for the room's owner, anyone's.
            (_, any, mine) => {
                let target = if me == ALICE { any } else { mine };
                if let Some(target) = target {
                    let answer = request(
                        app,
                        me,
                        Method::DELETE,
                        &format!("/api/rooms/{ROOM}/messages/{target}"),
                        None,
                    )
                    .await;
                    assert!(accepted("delete", &answer, false));
                    done.deletes += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.below(15))).await;
    }
    done
}

/// What one subscriber saw.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub(crate) who: String,
    /// Every event id, in arrival order.
    pub(crate) ids: Vec<i64>,
    /// Each message's newest state: every event's data upserted by message id.
    pub(crate) state: HashMap<String, Value>,
    /// Streams opened.
    pub(crate) opens: usize,
    /// `read` events (no id).
    pub(crate) reads: usize,
    pub(crate) problems: Vec<String>,
}

impl Seen {
    pub(crate) fn new(who: &str) -> Self {
        Self {
            who: who.to_owned(),
            ..Self::default()
        }
    }

    pub(crate) fn last(&self) -> i64 {
        self.ids.last().copied().unwrap_or(0)
    }

    fn problem(&mut self, what: String) {
        if self.problems.len() < 20 {
            self.problems.push(what);
        }
    }

    /// One event of the log.
    pub(crate) fn event(&mut self, id: Option<&str>, name: &str, data: &str) {
        if name == "read" {
            self.reads += 1;
            if let Some(id) = id {
                self.problem(format!("a read event with id {id:?}"));
            }
            return;
        }
        let Some(id) = id.and_then(|id| id.parse::<i64>().ok()) else {
            return self.problem(format!("{name} without a numeric id"));
        };
        if !["message", "message.updated", "message.deleted"].contains(&name) {
            self.problem(format!("event {id}: unexpected {name:?}: {data}"));
        }
        if self.ids.contains(&id) {
            self.problem(format!("event {id} repeated (after {})", self.last()));
        } else if id <= self.last() {
            self.problem(format!("event {id} after {}: out of order", self.last()));
        }
        self.ids.push(id);
        let data: Value = serde_json::from_str(data).expect("event data is JSON");
        if data["event_id"] != id {
            self.problem(format!("event {id} carries event_id {}", data["event_id"]));
        }
        let deleted = data["deleted_at"].is_string();
        if (name == "message.deleted") != deleted {
            self.problem(format!(
                "event {id} is {name} with deleted_at {}",
                data["deleted_at"]
            ));
        }
        if deleted && (data["content"] != "" || data["reactions"] != json!([])) {
            self.problem(format!("event {id}: a tombstone with content: {data}"));
        }
        let message = data["id"].as_str().expect("message id").to_owned();
        if let Some(before) = self.state.get(&message) {
            let was_at = before["event_id"].as_i64();
            // A tombstone changes only when the message it replied to is deleted too: its
            // quote is emptied (another `message.deleted`).
            let mut requoted = before.clone();
            requoted["event_id"] = data["event_id"].clone();
            requoted["reply_to"]["excerpt"] = json!("");
            if before["deleted_at"].is_string()
                && (before["reply_to"].is_null() || requoted != data)
            {
                let before = before.to_string();
                self.problem(format!(
                    "event {id}: a tombstone changed: {before} to {data}"
                ));
            }
            if was_at >= data["event_id"].as_i64() {
                self.problem(format!("event {id}: an older state of {message}"));
            }
        }
        self.state.insert(message, data);
    }
}

/// A subscriber that drops its stream every 200–500 ms and opens a new one with
/// `Last-Event-ID` set to the last id it received, until it has seen event `target` (0:
/// not known yet).
async fn reconnecting(app: &TestApp, who: &str, seed: u64, target: &AtomicI64) -> Seen {
    let mut rng = Rng::new(seed);
    let mut seen = Seen::new(who);
    let mut deadline = None;
    loop {
        let goal = target.load(Ordering::SeqCst);
        if goal > 0 {
            if seen.last() >= goal {
                return seen;
            }
            let deadline = *deadline.get_or_insert(Instant::now() + CATCH_UP_WITHIN);
            if Instant::now() > deadline {
                seen.problem(format!("stuck at {} short of {goal}", seen.last()));
                return seen;
            }
        }
        let last = seen.last().to_string();
        let mut stream = if seen.ids.is_empty() {
            RawStream::open_as(app, who, ROOM, "?after=0", None).await
        } else {
            RawStream::open_as(app, who, ROOM, "", Some(&last)).await
        };
        seen.opens += 1;
        let hold = Instant::now() + Duration::from_millis(200 + rng.below(300));
        while let Ok(block) =
            tokio::time::timeout_at(hold, stream.next(Duration::from_secs(3600))).await
        {
            // `None`: the server ended the stream (its lifetime); reconnect.
            let Some(block) = block else { break };
            // Presence (subscribers coming and going) is not in the log.
            if block.comment || block.retry.is_some() || block.event.as_deref() == Some("presence")
            {
                continue;
            }
            seen.event(
                block.id.as_deref(),
                block.event.as_deref().unwrap_or("message"),
                block.data.as_deref().unwrap_or("null"),
            );
        }
    }
}

/// A real `EventSource` client: it reconnects by itself whenever the server ends the
/// stream (`STREAM_MAX_LIFETIME`), resending `Last-Event-ID`; its URL always says
/// `?after=0`, which the header overrides.
async fn event_source(app: &TestApp, who: &str, target: &AtomicI64) -> Seen {
    let client = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client");
    let url = app.url(&format!(
        "/api/rooms/{ROOM}/stream?after=0&access_token={}",
        app.token(who)
    ));
    let mut source = EventSource::new(client.get(url)).expect("event source");
    let mut seen = Seen::new(who);
    let mut deadline = None;
    loop {
        let goal = target.load(Ordering::SeqCst);
        if goal > 0 {
            if seen.last() >= goal {
                return seen;
            }
            let deadline = *deadline.get_or_insert(Instant::now() + CATCH_UP_WITHIN);
            if Instant::now() > deadline {
                seen.problem(format!("stuck at {} short of {goal}", seen.last()));
                return seen;
            }
        }
        let Ok(next) = tokio::time::timeout(Duration::from_millis(200), source.next()).await else {
            continue;
        };
        match next {
            None => panic!("the EventSource gave up"),
            Some(Ok(Event::Open)) => seen.opens += 1,
            // A read mark has no id: the EventSource reports its last id with it.
            Some(Ok(Event::Message(m))) if m.event == "read" => seen.event(None, "read", &m.data),
            // Other subscribers coming and going: not in the log.
            Some(Ok(Event::Message(m))) if m.event == "presence" => {}
            Some(Ok(Event::Message(m))) => seen.event(Some(&m.id), &m.event, &m.data),
            Some(Err(reqwest_eventsource::Error::StreamEnded)) => {}
            Some(Err(reqwest_eventsource::Error::Transport(_))) => {}
            Some(Err(err)) => panic!("stream error: {err}"),
        }
    }
}

/// Every message of the room as `who` lists them, by id, and the room's last event.
pub(crate) async fn listed(app: &TestApp, who: &str) -> (HashMap<String, Value>, i64) {
    let mut messages = HashMap::new();
    let mut after = 0;
    let mut last_event_id = None;
    loop {
        let (status, page) = request(
            app,
            who,
            Method::GET,
            &format!("/api/rooms/{ROOM}/messages?limit=100&after={after}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        last_event_id.get_or_insert(page["last_event_id"].as_i64().unwrap());
        for message in page["messages"].as_array().unwrap() {
            after = message["seq"].as_i64().unwrap();
            messages.insert(message["id"].as_str().unwrap().to_owned(), message.clone());
        }
        if page["has_more"] != true {
            return (messages, last_event_id.unwrap());
        }
    }
}

pub(crate) fn off(action: &'static str) -> RateLimit {
    RateLimit::parse(action, "off").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_writers_mixing_every_change_while_subscribers_reconnect_deliver_each_once() {
    let app = TestApp::spawn_with(|c| {
        c.limits.edits = off("edit");
        c.limits.reactions = off("react");
        // The EventSource subscriber is cut off every 1.35–1.65 s and reconnects itself.
        c.stream.max_lifetime = Duration::from_millis(1500);
        // Nobody falls far enough behind for a reset.
        c.stream.max_backlog = 1_000_000;
    })
    .await;
    app.room(ROOM).await; // Alice owns it.
    let target = AtomicI64::new(0);
    let known: Known = Mutex::new(Vec::new());

    let writing = async {
        let until = Instant::now() + WRITE_FOR;
        let done = join_all((0..WRITERS).map(|w| writer(&app, w, &known, until))).await;
        let mut total = Done::default();
        for d in &done {
            total.add(d);
        }
        // Everything is written: the subscribers now run until they reach the last event.
        let (_, last_event_id) = listed(&app, ALICE).await;
        target.store(last_event_id, Ordering::SeqCst);
        (total, last_event_id)
    };
    let subscribing = join_all([
        Box::pin(reconnecting(&app, ALICE, 11, &target))
            as std::pin::Pin<Box<dyn std::future::Future<Output = Seen> + Send>>,
        Box::pin(reconnecting(&app, BOB, 12, &target)),
        Box::pin(reconnecting(&app, EVE, 13, &target)),
        Box::pin(event_source(&app, CAROL, &target)),
    ]);
    let ((done, last_event_id), subscribers) = tokio::join!(writing, subscribing);

    // The writers really mixed every kind of change.
    println!("writers: {done:?}; last event {last_event_id}");
    assert!(done.posts >= 40, "{done:?}");
    assert!(done.replies >= 5, "{done:?}");
    assert!(done.edits >= 20, "{done:?}");
    assert!(done.reactions_added >= 40, "{done:?}");
    assert!(done.reactions_removed >= 10, "{done:?}");
    assert!(done.deletes >= 10, "{done:?}");

    let mut failures = Vec::new();
    for seen in &subscribers {
        let (expected, _) = listed(&app, &seen.who).await;
        println!(
            "{}: {} events, {} read marks, {} streams opened, {} messages",
            seen.who,
            seen.ids.len(),
            seen.reads,
            seen.opens,
            seen.state.len()
        );
        let mut problems = seen.problems.clone();
        if seen.last() != last_event_id {
            problems.push(format!("ended at {} not {last_event_id}", seen.last()));
        }
        // The EventSource reconnects every 2.5 s or so (lifetime, then `retry: 1000`).
        let least = if seen.who == CAROL { 2 } else { 4 };
        if seen.opens < least {
            problems.push(format!("only {} streams opened", seen.opens));
        }
        let mut differ = 0;
        for (id, message) in &expected {
            match seen.state.get(id) {
                None => problems.push(format!("message {id} (seq {}) never seen", message["seq"])),
                Some(got) if got != message => {
                    differ += 1;
                    if differ <= 5 {
                        problems.push(format!(
                            "message {id}:\n  listed {message}\n  streamed {got}"
                        ));
                    }
                }
                Some(_) => {}
            }
        }
        if differ > 0 {
            problems.push(format!("{differ} messages differ from the list route"));
        }
        for id in seen.state.keys().filter(|id| !expected.contains_key(*id)) {
            problems.push(format!("message {id} streamed but not listed"));
        }
        if !problems.is_empty() {
            failures.push(format!("{}:\n{}", seen.who, problems.join("\n")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
