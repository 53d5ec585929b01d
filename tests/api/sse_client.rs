//! SSE clients for tests: `RawStream` reads the wire (comments, `retry:`, the end), and
//! `follow` uses a real reconnecting `EventSource` client that resends `Last-Event-ID`.

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
    buffer: String,
    pub headers: reqwest::header::HeaderMap,
}

impl RawStream {
    pub async fn open(app: &TestApp, room: &str, query: &str, last_event_id: Option<&str>) -> Self {
        let mut request = app
            .client
            .get(app.url(&format!("/api/rooms/{room}/stream{query}")))
            .bearer_auth(app.token(crate::helpers::ALICE))
            .timeout(Duration::from_secs(3600));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        let headers = response.headers().clone();
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
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
            if let Some(end) = self.buffer.find("\n\n") {
                let raw: String = self.buffer.drain(..end + 2).collect();
                return Some(parse(&raw));
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.push_str(std::str::from_utf8(&chunk).unwrap()),
                Some(Err(err)) => panic!("stream error: {err}"),
                None => return None,
            }
        }
    }

    /// The next block that is not a heartbeat comment.
    pub async fn next_event(&mut self, wait: Duration) -> Option<Block> {
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
    pub opens: usize,
}

/// Follows `room` with a reconnecting EventSource until it has seen `until_seq` or `limit`
/// passes. Every `message` event's seq is recorded in arrival order.
pub async fn follow(
    app: &TestApp,
    room: &str,
    email: &str,
    until_seq: i64,
    limit: Duration,
) -> Followed {
    let url = app.url(&format!(
        "/api/rooms/{room}/stream?after=0&access_token={}",
        app.token(email)
    ));
    let mut source = EventSource::get(url);
    let mut followed = Followed::default();
    let deadline = tokio::time::Instant::now() + limit;
    while followed.seqs.last().copied().unwrap_or(0) < until_seq {
        let next = tokio::time::timeout_at(deadline, source.next()).await;
        match next {
            Err(_) => break,
            Ok(None) => break,
            Ok(Some(Ok(Event::Open))) => followed.opens += 1,
            Ok(Some(Ok(Event::Message(message)))) => {
                assert_eq!(message.event, "message");
                let data: Value = serde_json::from_str(&message.data).unwrap();
                let seq = data["seq"].as_i64().unwrap();
                assert_eq!(message.id, seq.to_string());
                followed.seqs.push(seq);
            }
            // The server ended the stream (its lifetime): the client reconnects itself.
            Ok(Some(Err(reqwest_eventsource::Error::StreamEnded))) => {}
            Ok(Some(Err(err))) => panic!("stream error: {err}"),
        }
    }
    source.close();
    followed
}
