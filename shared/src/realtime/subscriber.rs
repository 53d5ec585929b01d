//! One SSE subscriber: registers with the hub, catches up from the room's log after its
//! resume point, then forwards live frames, skipping any event it already sent. Never
//! waited on: a subscriber that cannot keep up is cut off and reconnects with
//! `Last-Event-ID`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::Frame;
use rand::Rng;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout};

use super::sse;
use super::window::{Next, Read};
use super::{Delivery, Hub, PAGE, render};
use crate::db;
use crate::db::rooms::RoomRow;
use crate::domain::User;
use crate::views::sign_messages;

/// What `EventSource` waits before reconnecting, in ms.
pub const RETRY_MS: u64 = 1000;
/// Frames queued for one client before its writes count as stalled.
const CLIENT_BUFFER: usize = 256;
/// How long a stalled client is given before it is cut off.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames taken from a room's window at a time (under the hub's lock).
const WINDOW_CHUNK: usize = 128;

pub type FrameResult = Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>;

/// Where a new stream starts, in event ids of the room's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// No resume point: only changes after the room's current `last_event`.
    Tail(i64),
    /// Every change after this event.
    Resume(i64),
    /// Too far behind (or ahead): send `reset` with this event id, then continue from it.
    Reset(i64),
}

impl Start {
    pub fn choose(resume: Option<i64>, last_event: i64, max_backlog: i64) -> Self {
        match resume {
            None => Self::Tail(last_event),
            Some(id) if id > last_event || last_event - id > max_backlog => Self::Reset(last_event),
            Some(id) => Self::Resume(id),
        }
    }
}

/// Why a stream was refused before any work was done for it.
#[derive(Debug, thiserror::Error)]
pub enum StreamRefused {
    /// `STREAM_MAX_PER_INSTANCE` reached, or the instance is shutting down.
    #[error("This instance has no room for another stream. Retry shortly.")]
    InstanceFull,
    /// `STREAM_MAX_PER_USER` reached.
    #[error("At most {0} streams may be open at once per user.")]
    UserLimit(usize),
}

/// A place for one stream, counted in total and for its user until the stream ends,
/// however it ends. Taken before any database work, so a refused stream costs none.
pub struct OpenStream {
    hub: Hub,
    user: String,
    /// The room it subscribed to, once it has.
    room: Option<String>,
}

impl OpenStream {
    /// Counts the stream, or refuses it past the instance's or the user's cap.
    fn open(hub: &Hub, user: &str) -> Result<Self, StreamRefused> {
        let inner = hub.inner();
        let total = inner.stats.open_streams.fetch_add(1, Ordering::Relaxed);
        let mine = {
            let mut per_user = inner.per_user.lock().unwrap_or_else(|e| e.into_inner());
            let mine = per_user.entry(user.to_owned()).or_insert(0);
            *mine += 1;
            *mine
        };
        // From here on, dropping the guard undoes both counts.
        let guard = Self {
            hub: hub.clone(),
            user: user.to_owned(),
            room: None,
        };
        if total >= inner.config.max_per_instance || *hub.shutdown_signal().borrow() {
            return Err(StreamRefused::InstanceFull);
        }
        if mine > inner.max_per_user {
            return Err(StreamRefused::UserLimit(inner.max_per_user));
        }
        Ok(guard)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        if let Some(room) = &self.room {
            self.hub.leave(room, &self.user);
        }
        let inner = self.hub.inner();
        inner.stats.open_streams.fetch_sub(1, Ordering::Relaxed);
        let mut per_user = inner.per_user.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = per_user.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                per_user.remove(&self.user);
            }
        }
    }
}

impl Hub {
    /// Takes a place for `user`'s next stream: refused past `STREAM_MAX_PER_INSTANCE` or
    /// while shutting down, and past `STREAM_MAX_PER_USER`. In-process only: no query.
    pub fn reserve(&self, user: &User) -> Result<OpenStream, StreamRefused> {
        OpenStream::open(self, &user.email)
    }

    /// Opens `user`'s stream on `room`, as they just read it, in the place `guard` holds.
    pub fn subscribe(
        &self,
        mut guard: OpenStream,
        user: &User,
        room: &RoomRow,
        resume: Option<i64>,
    ) -> mpsc::Receiver<FrameResult> {
        let (live, presence) =
            self.register(&room.id, &user.email, room.last_event, room.members_version);
        guard.room = Some(room.id.clone());
        // A resume point before the room's `history_floor` may have missed a change of a
        // message no longer in the hot log (archived, or deleted by retention): reset.
        let start = match resume {
            Some(id) if id < room.history_floor => Start::Reset(room.last_event),
            _ => Start::choose(resume, room.last_event, self.inner().config.max_backlog),
        };
        let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
        let subscriber = Subscriber {
            hub: self.clone(),
            room: room.id.clone(),
            user: user.email.clone(),
            last_seq: room.last_seq,
            opened: room.last_event,
            tx,
            sent: 0,
            presence,
        };
        tokio::spawn(subscriber.run(start, live, guard));
        rx
    }
}

struct Subscriber {
    hub: Hub,
    room: String,
    user: String,
    /// The room's `last_seq` when the stream opened (for `reset`).
    last_seq: i64,
    /// The room's `last_event` when the stream opened (as Postgres or the hub knew it).
    opened: i64,
    tx: mpsc::Sender<FrameResult>,
    /// The newest event sent to this client.
    sent: i64,
    /// The room's presence when this stream registered, sent right after `retry:`: an
    /// `event: presence` `online` for each other user there, or one `presence.crowded`.
    presence: Vec<Bytes>,
}

/// Why a stream ended early.
enum End {
    ClientGone,
    Failed(anyhow::Error),
}

impl Subscriber {
    async fn run(
        mut self,
        start: Start,
        mut live: broadcast::Receiver<Arc<Delivery>>,
        _guard: OpenStream,
    ) {
        let config = &self.hub.inner().config;
        let deadline = Instant::now() + jittered(config.max_lifetime);
        let mut heartbeat =
            tokio::time::interval_at(Instant::now() + config.heartbeat, config.heartbeat);
        // After a burst of frames, one heartbeat, not one per missed tick.
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stopped = stopped(self.hub.shutdown_signal());
        tokio::pin!(stopped);

        let opened = async {
            // The stream's position goes out before anything else, with `retry:`: an
            // EventSource starts each connection with an empty last-event-id buffer, and an
            // event without an id (presence, typing, read) dispatched before the first id
            // would set its resume point to "" (HTML's SSE rules), so a reconnect after
            // such a connection would resume from `?after=` instead. A reset goes first.
            self.sent = match start {
                Start::Tail(seq) | Start::Resume(seq) => {
                    self.send(sse::retry_at(RETRY_MS, seq)).await?;
                    seq
                }
                Start::Reset(id) => {
                    self.send(sse::retry(RETRY_MS)).await?;
                    let data = format!("{{\"last_seq\":{},\"last_event_id\":{id}}}", self.last_seq);
                    self.send(sse::event(id, "reset", &data)).await?;
                    id
                }
            };
            for frame in std::mem::take(&mut self.presence) {
                self.send(frame).await?;
            }
            // Boxed: the catch-up (a sqlx query in flight) is most of this future's size,
            // and a stream spends nearly all its life without one; inline, every open
            // stream would reserve room for it.
            Box::pin(self.catch_up(i64::MAX, true)).await
        };
        if let Err(end) = opened.await {
            return self.log_end(end);
        }

        // Built once, not per frame: each of these registers a waker (a timer entry, a
        // channel waiter) that a per-iteration future would add and remove on every frame.
        let lifetime = sleep_until(deadline);
        tokio::pin!(lifetime);
        let tx = self.tx.clone();
        let gone = tx.closed();
        tokio::pin!(gone);
        let result: Result<(), End> = async {
            loop {
                // Frames first: a wake-up for a frame then polls nothing else. The others
                // still get their turn whenever no frame is ready (and tokio's cooperative
                // budget makes `recv` yield during a long burst).
                tokio::select! {
                    biased;
                    received = live.recv() => match received.as_deref() {
                        Ok(Delivery::Change { id, .. }) if *id <= self.sent => {}
                        Ok(Delivery::Change { id, after, created, frame, personal, covered, reacted }) => {
                            // The hub's read began after a change this stream has not sent:
                            // frames were broadcast before it could see them; read them from
                            // the log rather than skip them.
                            if *after > self.sent {
                                Box::pin(self.catch_up(*after, true)).await?;
                            }
                            // The hub's read began before this stream registered: which of
                            // the message's reactions are this user's is not in it.
                            if *id > self.sent
                                && *reacted
                                && !covered.contains(&self.user)
                                && !personal.iter().any(|(user, _)| *user == self.user)
                            {
                                Box::pin(self.catch_up(*id, false)).await?;
                            }
                            // The catch-up reads the log as it is now, so it may have sent
                            // this change (or a newer state of it) already.
                            if *id > self.sent {
                                let frame = personal
                                    .iter()
                                    .find(|(user, _)| *user == self.user)
                                    .map_or(frame, |(_, mine)| mine);
                                // The hub names a change `message` against its own cursor;
                                // this stream may be ahead of it (its catch-up read the log
                                // later) and have shown the message already.
                                let frame = if *created <= self.sent {
                                    sse::renamed(frame, "message", "message.updated")
                                } else {
                                    frame.clone()
                                };
                                self.send(frame).await?;
                                self.sent = *id;
                            }
                        }
                        Ok(Delivery::Read { user, frame }) if *user == self.user => {
                            self.send(frame.clone()).await?;
                        }
                        Ok(Delivery::Read { .. }) => {}
                        Ok(Delivery::Ephemeral(frame)) => self.send(frame.clone()).await?,
                        Ok(Delivery::Readers(readers)) if !readers.contains(&self.user) => {
                            return Err(End::Failed(anyhow::anyhow!("no longer a member")));
                        }
                        Ok(Delivery::Readers(_)) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            return Err(End::Failed(anyhow::anyhow!("slow subscriber cut off")));
                        }
                        Err(broadcast::error::RecvError::Closed) => return Ok(()),
                    },
                    _ = &mut stopped => return Ok(()),
                    _ = &mut lifetime => return Ok(()),
                    _ = &mut gone => return Err(End::ClientGone),
                    _ = heartbeat.tick() => self.send(sse::heartbeat()).await?,
                }
            }
        }
        .await;
        if let Err(end) = result {
            self.log_end(end);
        }
    }

    /// Sends every change after `self.sent` of the room's log, as this stream's user sees
    /// it; stops after event `up_to` is passed (changes beyond it come live, or were already
    /// in a later page: a message is read at its newest event only). From the room's
    /// window when the resume point is inside it, after a fill shared with the room's other
    /// resuming streams when it is a little before it, and from Postgres, paged, otherwise
    /// (or always, without `from_window`).
    async fn catch_up(&mut self, up_to: i64, from_window: bool) -> Result<(), End> {
        let inner = self.hub.0.clone();
        // The client has seen every message created up to here.
        let seen = self.sent;
        // How far the log must be read for nothing to be missed: to `up_to`, or (reading
        // to the end) to where the stream opened and to the hub's cursor, whose changes
        // were broadcast before this stream could receive them. A read replica's answer
        // counts only once it reaches this.
        let target = if up_to == i64::MAX {
            self.opened.max(inner.feed_cursor(&self.room).unwrap_or(0))
        } else {
            up_to
        };
        let mut waits = 0;
        let mut counted = false;
        while self.sent < up_to {
            let read = if from_window {
                inner.window_read(&self.room, &self.user, self.sent, WINDOW_CHUNK)
            } else {
                None
            };
            match read {
                Some(Read::Frames(frames, next)) => {
                    if !counted && !frames.is_empty() {
                        counted = true;
                        inner.stats.window_catch_ups.fetch_add(1, Ordering::Relaxed);
                    }
                    // One write for the lot: a storm is thousands of streams each sent a
                    // backlog, and a frame per write would cost a syscall per frame.
                    let mut batch = BytesMut::new();
                    for (id, created, frame) in frames {
                        batch.extend_from_slice(&sse::relabel(&frame, created, seen));
                        self.sent = id;
                    }
                    if !batch.is_empty() {
                        self.send(batch.freeze()).await?;
                    }
                    match next {
                        Next::Live => return Ok(()),
                        Next::More => continue,
                        Next::Postgres => {}
                    }
                }
                Some(Read::Behind) => {
                    let filled = inner.fill_window(&self.room, self.sent, waits).await;
                    waits += 1;
                    if filled {
                        continue;
                    }
                }
                None => {}
            }
            // One page of the log from Postgres, then the window again.
            inner
                .stats
                .own_catch_up_reads
                .fetch_add(1, Ordering::Relaxed);
            // From the read replica when its answer shows it has replayed the room past
            // `target`: a full page (the next page is checked in turn), or one reaching it.
            // A shorter one (a lagging replica) is read from the primary.
            let (room, user, after) = (self.room.as_str(), self.user.as_str(), self.sent);
            let rows =
                inner
                    .reader
                    .read(
                        move |db| async move {
                            db::messages::list_log(&db, room, after, PAGE, user).await
                        },
                        |rows| {
                            rows.len() as i64 == PAGE
                                || rows.last().is_some_and(|r| r.event_id >= target)
                        },
                    )
                    .await
                    .map_err(|e| End::Failed(e.into()))?;
            let fetched = rows.len() as i64;
            for view in sign_messages(&inner.storage, rows)
                .await
                .map_err(End::Failed)?
            {
                self.send(render(&view, seen)).await?;
                self.sent = view.event_id;
            }
            if fetched < PAGE {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn send(&self, bytes: Bytes) -> Result<(), End> {
        // The usual case, a client with room in its queue, needs no timer.
        let frame = match self.tx.try_send(Ok(Frame::data(bytes))) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(End::ClientGone),
            Err(mpsc::error::TrySendError::Full(frame)) => frame,
        };
        match timeout(SEND_TIMEOUT, self.tx.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::ClientGone),
            Err(_) => Err(End::Failed(anyhow::anyhow!("client stalled; cut off"))),
        }
    }

    fn log_end(&self, end: End) {
        if let End::Failed(err) = end {
            tracing::info!(
                room = self.room,
                sent = self.sent,
                reason = format!("{err:#}"),
                "stream ended early"
            );
        }
    }
}

/// Resolves once the hub shuts down.
async fn stopped(mut signal: watch::Receiver<bool>) {
    loop {
        let stop = *signal.borrow_and_update();
        if stop || signal.changed().await.is_err() {
            return;
        }
    }
}

/// 80 to 100 % of `lifetime`, so clients opened together do not all reconnect in the same
/// second. Never more: `STREAM_MAX_SECONDS` must fit the host's limit (Vercel's
/// `maxDuration` of 300 s for the stream function).
fn jittered(lifetime: Duration) -> Duration {
    lifetime.mul_f64(rand::rng().random_range(0.8..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_depends_on_the_resume_point_and_the_gap() {
        assert_eq!(Start::choose(None, 10, 1000), Start::Tail(10));
        assert_eq!(Start::choose(Some(0), 10, 1000), Start::Resume(0));
        assert_eq!(Start::choose(Some(4), 10, 1000), Start::Resume(4));
        assert_eq!(Start::choose(Some(10), 10, 1000), Start::Resume(10));
        assert_eq!(Start::choose(Some(5), 2000, 1000), Start::Reset(2000));
        assert_eq!(Start::choose(Some(1000), 2000, 1000), Start::Resume(1000));
        assert_eq!(Start::choose(Some(11), 10, 1000), Start::Reset(10));
    }

    #[test]
    fn lifetimes_vary_downwards_by_at_most_twenty_percent() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(100));
            assert!(d >= Duration::from_secs(80) && d <= Duration::from_secs(100));
        }
    }
}
