//! Raw SSE subscribers over reqwest byte streams: cheap enough to hold thousands open from
//! one process. Each records every `message` and `message.updated` event's id and the
//! instant it was parsed, and reconnects with `Last-Event-ID` when the server ends its stream, as `EventSource`
//! does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::client::{Api, HttpError, http_error};

/// Printed when a server refuses a stream for its per-process cap.
pub const TOO_MANY_STREAMS_HINT: &str = "the server answered 503 too_many_streams: it caps open streams per process at \
     STREAM_MAX_PER_INSTANCE (default 800). For runs with more subscribers, start it with e.g. \
     STREAM_MAX_PER_INSTANCE=6000 (and `ulimit -n` above twice that).";

/// Reconnect attempts after which a subscriber gives up.
const MAX_RECONNECT_FAILURES: usize = 20;

/// What one subscriber saw.
#[derive(Debug, Default)]
pub struct Feed {
    /// Every `message` and `message.updated` event: its event id and when it was parsed.
    pub events: Vec<(i64, Instant)>,
    /// Streams the server ended (lifetime, shutdown) or that broke, each followed by a
    /// reconnect with `Last-Event-ID`.
    pub reconnects: u32,
    /// `reset` events (the server skipped history: never expected here).
    pub resets: u32,
    /// Events whose `data` does not carry the event id their `id` names.
    pub mismatched: u32,
    /// Failed reconnects and broken streams, as text.
    pub errors: Vec<String>,
}

/// Why a stream could not be opened.
#[derive(Debug)]
pub enum OpenError {
    TooManyStreams,
    Http(HttpError),
    Transport(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooManyStreams => f.write_str(TOO_MANY_STREAMS_HINT),
            Self::Http(err) => write!(f, "opening a stream: {err}"),
            Self::Transport(err) => write!(f, "opening a stream: {err}"),
        }
    }
}

impl std::error::Error for OpenError {}

/// `GET /api/rooms/{room}/stream?access_token=`: a 200 means the server's hub has
/// registered the subscriber.
pub async fn open(
    api: &Api,
    room: &str,
    token: &str,
    last_event_id: Option<i64>,
) -> Result<reqwest::Response, OpenError> {
    // Tokens are base64url and dots: safe in a query as they are.
    let mut request = api
        .http
        .get(api.url(&format!("/api/rooms/{room}/stream?access_token={token}")))
        .header("accept", "text/event-stream");
    if let Some(seq) = last_event_id {
        request = request.header("last-event-id", seq.to_string());
    }
    let response = request
        .send()
        .await
        .map_err(|e| OpenError::Transport(format!("{e:#}")))?;
    match response.status() {
        StatusCode::OK => Ok(response),
        StatusCode::SERVICE_UNAVAILABLE => {
            let err = http_error(response).await;
            if err.body.contains("too_many_streams") {
                Err(OpenError::TooManyStreams)
            } else {
                Err(OpenError::Http(err))
            }
        }
        _ => Err(OpenError::Http(http_error(response).await)),
    }
}

/// Open subscribers on one room.
pub struct Subscribers {
    tasks: Vec<JoinHandle<Feed>>,
    stop: watch::Sender<bool>,
    /// `message` events received by all of them together.
    pub received: Arc<AtomicU64>,
    /// How long opening all of them took.
    pub connect_time: Duration,
}

impl Subscribers {
    /// Opens `n` streams on `room`, `concurrency` opens in flight, each as its own user
    /// (`{who}-{i}`). Fails (closing those opened) if any open fails.
    pub async fn connect(
        api: &Api,
        room: &str,
        who: &str,
        n: usize,
        concurrency: usize,
    ) -> anyhow::Result<Self> {
        let started = Instant::now();
        let (stop, stop_rx) = watch::channel(false);
        let received = Arc::new(AtomicU64::new(0));
        let mut subscribers = Self {
            tasks: Vec::with_capacity(n),
            stop,
            received: received.clone(),
            connect_time: Duration::ZERO,
        };
        let mut tokens = Vec::with_capacity(n);
        for i in 0..n {
            tokens.push(api.tokens.for_user(&format!("{who}-{i}"))?);
        }
        let mut opens = futures_util::stream::iter(tokens.into_iter().map(|token| async move {
            let response = open(api, room, &token, None).await;
            (token, response)
        }))
        .buffer_unordered(concurrency);
        let mut failure = None;
        while let Some((token, response)) = opens.next().await {
            match response {
                Ok(response) => {
                    let reader = Reader {
                        api: api.clone(),
                        room: room.to_owned(),
                        token,
                        stop: stop_rx.clone(),
                        received: received.clone(),
                    };
                    subscribers.tasks.push(tokio::spawn(reader.run(response)));
                }
                Err(err) => {
                    failure.get_or_insert(err);
                }
            }
        }
        drop(opens);
        if let Some(err) = failure {
            let opened = subscribers.tasks.len();
            subscribers.close().await;
            return Err(anyhow::Error::new(err)
                .context(format!("{opened} of {n} streams opened on {}", api.base)));
        }
        subscribers.connect_time = started.elapsed();
        Ok(subscribers)
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Waits until `total` events arrived in all, or `timeout`; whether they did.
    pub async fn wait_for(&self, total: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.received.load(Ordering::Relaxed) < total {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }

    /// Closes every stream and returns what each saw.
    pub async fn close(self) -> Vec<Feed> {
        self.stop.send_replace(true);
        let mut feeds = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            feeds.push(task.await.unwrap_or_else(|err| Feed {
                errors: vec![format!("subscriber task failed: {err}")],
                ..Feed::default()
            }));
        }
        feeds
    }
}

struct Reader {
    api: Api,
    room: String,
    token: String,
    stop: watch::Receiver<bool>,
    received: Arc<AtomicU64>,
}

impl Reader {
    async fn run(mut self, first: reqwest::Response) -> Feed {
        let mut feed = Feed::default();
        let mut parser = Parser::default();
        let mut response = first;
        loop {
            let mut body = response.bytes_stream();
            let broken = loop {
                tokio::select! {
                    biased;
                    _ = self.stop.changed() => return feed,
                    chunk = body.next() => match chunk {
                        Some(Ok(bytes)) => parser.feed(&bytes, |event| {
                            match event {
                                Event::Message { id, id_in_data } => {
                                    feed.events.push((id, Instant::now()));
                                    if !id_in_data {
                                        feed.mismatched += 1;
                                    }
                                    self.received.fetch_add(1, Ordering::Relaxed);
                                }
                                Event::Reset => feed.resets += 1,
                            }
                        }),
                        Some(Err(err)) => break Some(format!("stream broke: {err:#}")),
                        None => break None,
                    },
                }
            };
            drop(body);
            if *self.stop.borrow() {
                return feed;
            }
            feed.errors.extend(broken);
            feed.reconnects += 1;
            parser.reset();
            let resume = feed.events.last().map(|(seq, _)| *seq).or(parser.last_id);
            match self.reopen(resume, &mut feed).await {
                Some(next) => response = next,
                None => return feed,
            }
        }
    }

    /// Reopens after `resume`, retrying with a pause; `None` once stopped or given up.
    async fn reopen(&mut self, resume: Option<i64>, feed: &mut Feed) -> Option<reqwest::Response> {
        for _ in 0..MAX_RECONNECT_FAILURES {
            if *self.stop.borrow() {
                return None;
            }
            match open(&self.api, &self.room, &self.token, resume).await {
                Ok(response) => return Some(response),
                Err(err) => feed.errors.push(format!("reconnect failed: {err}")),
            }
            tokio::select! {
                _ = self.stop.changed() => return None,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        None
    }
}

/// An event the benchmark cares about.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    Message { id: i64, id_in_data: bool },
    Reset,
}

/// An incremental `text/event-stream` parser for the fields the API sends.
#[derive(Default)]
pub struct Parser {
    buf: Vec<u8>,
    id: Option<i64>,
    event: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    /// The last `id:` seen, kept across events (the `Last-Event-ID` to resume from).
    pub last_id: Option<i64>,
}

impl Parser {
    /// Consumes a chunk; calls `on_event` for each complete event.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(Event)) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(end) = buf[start..].iter().position(|&b| b == b'\n') {
            let line_end = start + end;
            let line = &buf[start..line_end];
            self.line(line.strip_suffix(b"\r").unwrap_or(line), &mut on_event);
            start = line_end + 1;
        }
        buf.drain(..start);
        self.buf = buf;
    }

    /// Forgets a partial event (the stream it came from ended).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.id = None;
        self.event.clear();
        self.data.clear();
        self.has_data = false;
    }

    fn line(&mut self, line: &[u8], on_event: &mut impl FnMut(Event)) {
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"id" => {
                self.id = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
                self.last_id = self.id.or(self.last_id);
            }
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(Event)) {
        if self.has_data {
            match (&self.event[..], self.id) {
                // A new message, or a change to one (an edit): by its event id, which the
                // data must carry as its `event_id`.
                (b"message" | b"message.updated" | b"", Some(id)) => {
                    // A server from before change events has no `event_id`; its ids
                    // are seqs.
                    let id_in_data = contains_field(&self.data, "event_id", id)
                        || (!has_field(&self.data, "event_id")
                            && contains_field(&self.data, "seq", id));
                    on_event(Event::Message { id, id_in_data });
                }
                (b"reset", _) => on_event(Event::Reset),
                _ => {}
            }
        }
        self.id = None;
        self.event.clear();
        self.data.clear();
        self.has_data = false;
    }
}

/// Whether the JSON `data` names `"<field>"` at all.
fn has_field(data: &[u8], field: &str) -> bool {
    let needle = format!("\"{field}\":");
    data.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Whether the JSON `data` has `"<field>":<value>` as a whole number.
fn contains_field(data: &[u8], field: &str, value: i64) -> bool {
    let needle = format!("\"{field}\":{value}");
    let needle = needle.as_bytes();
    data.windows(needle.len()).enumerate().any(|(i, window)| {
        window == needle && !data.get(i + needle.len()).is_some_and(u8::is_ascii_digit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&str]) -> Vec<Event> {
        let mut parser = Parser::default();
        let mut events = Vec::new();
        for chunk in chunks {
            parser.feed(chunk.as_bytes(), |e| events.push(e));
        }
        events
    }

    #[test]
    fn events_split_across_chunks_are_parsed_once_complete() {
        let events = parse(&[
            "retry: 1000\n\n: keep-alive\n\nid: 4",
            "2\nevent: message\ndata: {\"seq\":42,\"event_id\":42,\"x\":1}\n",
            "\nevent: read\ndata: {\"room_id\":\"r\",\"last_read_seq\":42}\n\n",
            "id: 43\r\nevent: message.updated\r\ndata: {\"seq\":7,\"event_id\":43}\r\n\r\n",
        ]);
        assert_eq!(
            events,
            vec![
                Event::Message {
                    id: 42,
                    id_in_data: true
                },
                Event::Message {
                    id: 43,
                    id_in_data: true
                }
            ]
        );
    }

    #[test]
    fn a_data_event_id_that_differs_from_the_id_is_flagged() {
        let events = parse(&["id: 4\nevent: message\ndata: {\"seq\":4,\"event_id\":42}\n\n"]);
        assert_eq!(
            events,
            vec![Event::Message {
                id: 4,
                id_in_data: false
            }]
        );
    }

    #[test]
    fn a_server_without_event_ids_is_checked_by_seq() {
        let events = parse(&[
            "id: 4\nevent: message\ndata: {\"seq\":4}\n\n",
            "id: 5\nevent: message\ndata: {\"seq\":6}\n\n",
        ]);
        assert_eq!(
            events,
            vec![
                Event::Message {
                    id: 4,
                    id_in_data: true
                },
                Event::Message {
                    id: 5,
                    id_in_data: false
                }
            ]
        );
    }

    #[test]
    fn resets_are_reported() {
        let events = parse(&["id: 9\nevent: reset\ndata: {\"last_seq\":9}\n\n"]);
        assert_eq!(events, vec![Event::Reset]);
    }
}
