//! SSE clients for tests: `RawStream` reads the wire (comments, `retry:`, the end), and
//! `follow` uses a real reconnecting `EventSource` client that resends `Last-Event-ID`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest_eventsource::{Event, EventSource};
use serde_json::Value;

use crate::helpers::TestApp;

/// One parsed block of an SSE stream.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Block {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Option<String>,
    pub retry: Option<u64>,
    pub comment: bool,
}

impl Block {
    pub fn json(&self) -> Value {
        serde_json::from_str(self.data.as_deref().expect("data")).expect("data is JSON")
    }
}

pub struct RawStream {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    /// Bytes, not text: a chunk may end inside a multi-byte character (an emoji).
    buffer: Vec<u8>,
    pub headers: reqwest::header::HeaderMap,
}

impl RawStream {
    pub async fn open(app: &TestApp, room: &str, query: &str, last_event_id: Option<&str>) -> Self {
        Self::open_as(app, crate::helpers::ALICE, room, query, last_event_id).await
    }

    /// Like [`RawStream::open`], as `email` (streams per user are capped).
    pub async fn open_as(
        app: &TestApp,
        email: &str,
        room: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> Self {
        let mut request = app
            .client
            .get(app.url(&format!("/api/rooms/{room}/stream{query}")))
            .bearer_auth(app.token(email))
            .timeout(Duration::from_secs(3600));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        Self::from_response(request.send().await.unwrap())
    }

    /// Reads a stream some other way opened (through the Lambda emulator, say); it must be a 200.
    pub fn from_response(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        let headers = response.headers().clone();
        Self {
            body: response.bytes_stream().boxed(),
            buffer: Vec::new(),
            headers,
        }
    }

    /// The next block, `None` when the server ended the stream; panics after `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Block> {
        tokio::time::timeout(wait, self.next_block())
            .await
            .expect("timed out waiting for an SSE block")
    }

    async fn next_block(&mut self) -> Option<Block> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let raw: Vec<u8> = self.buffer.drain(..end + 2).collect();
                return Some(parse(
                    std::str::from_utf8(&raw).expect("an SSE block is UTF-8"),
                ));
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(err)) => panic!("stream error: {err}"),
                None => return None,
            }
        }
    }

    /// The next event of the room's log (or `reset`): heartbeats and `read`, `presence`
    /// and `typing` events (which have no id and are not part of the log) are skipped.
    pub async fn next_event(&mut self, wait: Duration) -> Option<Block> {
        loop {
            match self.next(wait).await {
                Some(block)
                    if block.comment
                        || matches!(
                            block.event.as_deref(),
                            Some("read" | "presence" | "typing")
                        ) =>
                {
                    continue;
                }
                other => return other,
            }
        }
    }

    /// The next event, `read` marks included; `presence` and `typing` (other users' streams
    /// and keystrokes, told to everyone in the room) are skipped.
    pub async fn next_any_event(&mut self, wait: Duration) -> Option<Block> {
        loop {
            match self.next(wait).await {
                Some(block)
                    if block.comment
                        || matches!(block.event.as_deref(), Some("presence" | "typing")) =>
                {
                    continue;
                }
                other => return other,
            }
        }
    }

    /// The next event of any kind, `presence` and `typing` included.
    pub async fn next_signal(&mut self, wait: Duration) -> Option<Block> {
        loop {
            match self.next(wait).await {
                Some(block) if block.comment => continue,
                other => return other,
            }
        }
    }
}

fn parse(raw: &str) -> Block {
    let mut block = Block::default();
    for line in raw.lines().filter(|l| !l.is_empty()) {
        if line.starts_with(':') {
            block.comment = true;
            continue;
        }
        let (field, value) = line.split_once(": ").unwrap_or((line, ""));
        match field {
            "id" => block.id = Some(value.to_owned()),
            "event" => block.event = Some(value.to_owned()),
            "data" => block.data = Some(value.to_owned()),
            "retry" => block.retry = Some(value.parse().unwrap()),
            other => panic!("unexpected SSE field {other:?} in {raw:?}"),
        }
    }
    block
}

/// What a reconnecting `EventSource` client saw.
#[derive(Debug, Default)]
pub struct Followed {
    pub seqs: Vec<i64>,
    /// Streams opened (200 responses): one plus the reconnects.
    pub opens: usize,
    /// Stream requests refused with 503 (each with `Retry-After`), then retried.
    pub unavailable: usize,
    /// Requests that failed below HTTP (the `EventSource` retries these itself).
    pub transport_errors: usize,
}

/// Follows `room` with a reconnecting EventSource until it has seen `until_seq` or `limit`
/// passes. Every `message` event's seq is recorded in arrival order.
///
/// A stream the server ends is resumed by the `EventSource` itself, with `Last-Event-ID`.
/// A 503 is fatal to an `EventSource`; like the web client, this then waits `Retry-After`
/// and opens a new one after the last seq it saw.
pub async fn follow(
    app: &TestApp,
    room: &str,
    email: &str,
    until_seq: i64,
    limit: Duration,
) -> Followed {
    follow_to(app, room, email, &AtomicI64::new(until_seq), limit).await
}

/// Like [`follow`], up to a seq the caller may set once it is known (before it is posted).
pub async fn follow_to(
    app: &TestApp,
    room: &str,
    email: &str,
    until_seq: &AtomicI64,
    limit: Duration,
) -> Followed {
    let until = || until_seq.load(Ordering::SeqCst);
    // No overall timeout (streams are long), one connection per stream.
    let client = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client");
    let token = app.token(email);
    let mut followed = Followed::default();
    let deadline = tokio::time::Instant::now() + limit;
    'sources: while followed.seqs.last().copied().unwrap_or(0) < until() {
        let after = followed.seqs.last().copied().unwrap_or(0);
        let url = app.url(&format!(
            "/api/rooms/{room}/stream?after={after}&access_token={token}"
        ));
        let mut source = EventSource::new(client.get(url)).expect("event source");
        while followed.seqs.last().copied().unwrap_or(0) < until() {
            let next = tokio::time::timeout_at(deadline, source.next()).await;
            match next {
                Err(_) => break 'sources,
                Ok(None) => panic!("the EventSource gave up"),
                Ok(Some(Ok(Event::Open))) => followed.opens += 1,
                // Read marks (the follower's own posts move its mark), presence and typing
                // are not in the log.
                Ok(Some(Ok(Event::Message(message))))
                    if matches!(message.event.as_str(), "read" | "presence" | "typing") => {}
                Ok(Some(Ok(Event::Message(message)))) => {
                    assert_eq!(message.event, "message", "{message:?}");
                    let data: Value = serde_json::from_str(&message.data).unwrap();
                    let seq = data["seq"].as_i64().unwrap();
                    assert_eq!(message.id, seq.to_string());
                    followed.seqs.push(seq);
                }
                // The server ended the stream (its lifetime): the client reconnects itself.
                Ok(Some(Err(reqwest_eventsource::Error::StreamEnded))) => {}
                Ok(Some(Err(reqwest_eventsource::Error::Transport(_)))) => {
                    followed.transport_errors += 1;
                }
                Ok(Some(Err(reqwest_eventsource::Error::InvalidStatusCode(status, response))))
                    if status == reqwest::StatusCode::SERVICE_UNAVAILABLE =>
                {
                    followed.unavailable += 1;
                    let retry_after: u64 = response
                        .headers()
                        .get("retry-after")
                        .expect("a 503 has Retry-After")
                        .to_str()
                        .unwrap()
                        .parse()
                        .expect("Retry-After in seconds");
                    source.close();
                    let resume = tokio::time::Instant::now() + Duration::from_secs(retry_after);
                    if resume >= deadline {
                        break 'sources;
                    }
                    tokio::time::sleep_until(resume).await;
                    continue 'sources;
                }
                Ok(Some(Err(err))) => panic!("stream error: {err}"),
            }
        }
    }
    followed
}
