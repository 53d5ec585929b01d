//! Real-time delivery: one hub per process watches every room that has subscribers with
//! one query per tick (or a NOTIFY wake-up), reads new messages once, renders each once,
//! and fans the frames out to that room's subscribers in process.

mod listener;
pub mod sse;
mod stats;
pub mod subscriber;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use futures_util::future::join_all;
use sqlx::PgPool;
use tokio::sync::{Notify, broadcast, watch};

pub use stats::{Stats, StatsView};
pub use subscriber::{OpenStream, StreamRefused};

use crate::config::{DatabaseConfig, StreamConfig};
use crate::db;
use crate::storage::Storage;
use crate::views::{MessageView, sign_messages};

/// The live frames a room's subscribers share. A subscriber that falls this far behind is
/// cut off (it reconnects and catches up from Postgres) rather than waited on.
const ROOM_BUFFER: usize = 1024;
/// Rows per catch-up query.
pub(crate) const PAGE: i64 = 500;

/// What a room's feed carries.
#[derive(Debug)]
pub enum Delivery {
    /// One message, rendered once as an SSE frame for every subscriber.
    Message { seq: i64, frame: Bytes },
    /// The private room's membership changed: who may still read it. Everyone else's
    /// stream ends.
    Readers(HashSet<String>),
}

struct RoomFeed {
    sender: broadcast::Sender<Arc<Delivery>>,
    /// The newest seq broadcast (or known to be delivered otherwise) for this room.
    cursor: i64,
    /// The room's `members_version` as last seen.
    members_version: i64,
}

/// The per-process hub. Cheap to clone.
#[derive(Clone)]
pub struct Hub(Arc<HubInner>);

pub(crate) struct HubInner {
    pub(crate) db: PgPool,
    pub(crate) storage: Storage,
    pub(crate) config: StreamConfig,
    unpooled_url: Option<String>,
    rooms: Mutex<HashMap<String, RoomFeed>>,
    /// Rooms a NOTIFY said advanced, with the seq it named.
    woken: Mutex<HashMap<String, i64>>,
    wake: Notify,
    started: OnceLock<()>,
    pub(crate) stats: Stats,
    /// Open streams per user on this process.
    pub(crate) per_user: Mutex<HashMap<String, usize>>,
    /// Concurrent streams one user may hold here.
    pub(crate) max_per_user: usize,
    /// How long one tick's query, or one room's read, may take (`DatabaseConfig::deadline`).
    deadline: std::time::Duration,
    shutdown: watch::Sender<bool>,
}

impl Hub {
    pub fn new(
        db: PgPool,
        storage: Storage,
        config: StreamConfig,
        database: &DatabaseConfig,
        max_per_user: usize,
    ) -> Self {
        Self(Arc::new(HubInner {
            db,
            storage,
            config,
            unpooled_url: database.url_unpooled.clone(),
            rooms: Mutex::new(HashMap::new()),
            woken: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            started: OnceLock::new(),
            stats: Stats::default(),
            per_user: Mutex::new(HashMap::new()),
            max_per_user,
            deadline: database.deadline(),
            shutdown: watch::channel(false).0,
        }))
    }

    pub(crate) fn inner(&self) -> &HubInner {
        &self.0
    }

    /// Registers interest in `room` and returns its live feed. `known_last_seq` and
    /// `members_version` are what the caller read of the room before registering: a room
    /// new to the hub starts its cursor there, so every later message is broadcast and every
    /// earlier one is in the caller's own catch-up read, and every later membership change
    /// is announced.
    pub fn register(
        &self,
        room: &str,
        known_last_seq: i64,
        members_version: i64,
    ) -> broadcast::Receiver<Arc<Delivery>> {
        self.start();
        let mut rooms = self.0.rooms.lock().unwrap_or_else(|e| e.into_inner());
        rooms
            .entry(room.to_owned())
            .or_insert_with(|| RoomFeed {
                sender: broadcast::channel(ROOM_BUFFER).0,
                cursor: known_last_seq,
                members_version,
            })
            .sender
            .subscribe()
    }

    /// Ends every open stream (SIGTERM): clients reconnect with `Last-Event-ID`.
    pub fn shutdown(&self) {
        self.0.shutdown.send_replace(true);
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.0.shutdown.subscribe()
    }

    pub fn stats(&self) -> StatsView {
        let s = &self.0.stats;
        StatsView {
            open_streams: s.open_streams.load(Ordering::Relaxed),
            watched_rooms: self.0.rooms.lock().unwrap_or_else(|e| e.into_inner()).len(),
            polls_last_minute: s.polls.total(),
            notifications_last_minute: s.notifications.total(),
            statements_total: s.statements.load(Ordering::Relaxed),
            listener: match (
                &self.0.unpooled_url,
                s.listener_connected.load(Ordering::Relaxed),
            ) {
                (None, _) => "off",
                (Some(_), true) => "connected",
                (Some(_), false) => "disconnected",
            },
            listener_connects: s.listener_connects.load(Ordering::Relaxed),
        }
    }

    /// Starts the poller (and the listener, with an unpooled URL) on first use, on the
    /// runtime that serves requests.
    fn start(&self) {
        self.0.started.get_or_init(|| {
            tokio::spawn(poll_loop(self.0.clone()));
            if let Some(url) = self.0.unpooled_url.clone() {
                tokio::spawn(listener::listen(self.0.clone(), url));
            }
        });
    }
}

impl HubInner {
    /// Called by the listener for each `room:seq` notification.
    pub(crate) fn notified(&self, room: &str, seq: i64) {
        self.stats.notifications.add(1);
        let watched = self
            .rooms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(room)
            .is_some_and(|feed| seq > feed.cursor);
        if watched {
            let mut woken = self.woken.lock().unwrap_or_else(|e| e.into_inner());
            let entry = woken.entry(room.to_owned()).or_insert(seq);
            *entry = (*entry).max(seq);
            drop(woken);
            self.wake.notify_one();
        }
    }

    /// Asks for a full poll now (the listener reconnected: notifications may be lost).
    pub(crate) fn wake_all(&self) {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let mut woken = self.woken.lock().unwrap_or_else(|e| e.into_inner());
        for (room, feed) in rooms.iter() {
            woken.entry(room.clone()).or_insert(feed.cursor);
        }
        drop((rooms, woken));
        self.wake.notify_one();
    }

    /// Rooms still subscribed to, with their cursors; drops rooms nobody watches.
    fn watched(&self) -> Vec<(String, i64)> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        rooms.retain(|_, feed| feed.sender.receiver_count() > 0);
        rooms
            .iter()
            .map(|(id, feed)| (id.clone(), feed.cursor))
            .collect()
    }

    /// One tick: which watched rooms advanced, in one query.
    async fn poll(&self) -> anyhow::Result<()> {
        let watched = self.watched();
        if watched.is_empty() {
            return Ok(());
        }
        self.stats.polls.add(1);
        self.stats.statements.fetch_add(1, Ordering::Relaxed);
        let ids: Vec<String> = watched.iter().map(|(id, _)| id.clone()).collect();
        let heads = db::rooms::heads(&self.db, &ids).await?;
        self.announce_membership_changes(&heads).await?;
        let advanced = watched.into_iter().filter_map(|(id, cursor)| {
            let head = heads.iter().find(|h| h.id == id)?.last_seq;
            (head > cursor).then_some((id, cursor, head))
        });
        self.fan_out(advanced.collect()).await;
        Ok(())
    }

    /// For each watched room whose membership changed since the last tick, tells its
    /// subscribers who may still read it, so a removed member's stream ends within one
    /// poll interval. Costs a query only when a membership actually changed.
    async fn announce_membership_changes(
        &self,
        heads: &[db::rooms::RoomHead],
    ) -> anyhow::Result<()> {
        let changed: Vec<&db::rooms::RoomHead> = {
            let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
            heads
                .iter()
                .filter(|h| {
                    rooms
                        .get(&h.id)
                        .is_some_and(|feed| feed.members_version != h.members_version)
                })
                .collect()
        };
        for head in changed {
            self.stats.statements.fetch_add(1, Ordering::Relaxed);
            let readers = db::rooms::private_readers(&self.db, &head.id).await?;
            let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(feed) = rooms.get_mut(&head.id) {
                feed.members_version = head.members_version;
                if let Some(readers) = readers {
                    let _ = feed
                        .sender
                        .send(Arc::new(Delivery::Readers(readers.into_iter().collect())));
                }
            }
        }
        Ok(())
    }

    /// A wake-up: the rooms a NOTIFY named, with no extra query to learn their heads.
    async fn poll_woken(&self) {
        let woken: Vec<(String, i64)> = self
            .woken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        let watched = self.watched();
        let advanced = woken.into_iter().filter_map(|(id, seq)| {
            let cursor = watched.iter().find(|(room, _)| *room == id)?.1;
            // `seq == cursor` comes from wake_all: read whatever is there.
            (seq >= cursor).then_some((id, cursor, if seq == cursor { i64::MAX } else { seq }))
        });
        self.fan_out(advanced.collect()).await;
    }

    /// Reads each advanced room's new messages once and broadcasts them, rooms in parallel.
    async fn fan_out(&self, advanced: Vec<(String, i64, i64)>) {
        join_all(advanced.into_iter().map(|(room, cursor, head)| async move {
            // Bounded, so one stuck read cannot hold back the other rooms' next tick.
            let read = tokio::time::timeout(self.deadline, self.deliver(&room, cursor, head));
            let result = match read.await {
                Ok(result) => result,
                Err(_) => Err(anyhow::anyhow!("no answer within {:?}", self.deadline)),
            };
            if let Err(err) = result {
                tracing::warn!(
                    room,
                    error = format!("{err:#}"),
                    "hub read failed; the next tick retries"
                );
            }
        }))
        .await;
    }

    async fn deliver(&self, room: &str, mut cursor: i64, head: i64) -> anyhow::Result<()> {
        loop {
            self.stats.statements.fetch_add(1, Ordering::Relaxed);
            let rows = db::messages::hub_range(&self.db, room, cursor, head, PAGE).await?;
            let fetched = rows.len() as i64;
            // A membership change committed before these messages: tell the subscribers who
            // may still read the room first, on the same channel, so a removed member's
            // stream ends before any of them (the wake-up path has no heads query).
            if let Some(version) = rows.first().map(|r| r.members_version) {
                let head = db::rooms::RoomHead {
                    id: room.to_owned(),
                    last_seq: head,
                    members_version: version,
                };
                self.announce_membership_changes(std::slice::from_ref(&head))
                    .await?;
            }
            let rows = rows.into_iter().map(|r| r.message).collect();
            let views = sign_messages(&self.storage, rows).await?;
            let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
            let Some(feed) = rooms.get_mut(room) else {
                return Ok(());
            };
            for view in views {
                // Another read (a tick and a wake-up at once) may have sent these already.
                if view.seq <= feed.cursor {
                    continue;
                }
                let frame = render(&view);
                feed.cursor = view.seq;
                // No receivers is fine: the room is dropped on the next tick.
                let _ = feed.sender.send(Arc::new(Delivery::Message {
                    seq: view.seq,
                    frame,
                }));
            }
            cursor = feed.cursor;
            drop(rooms);
            if fetched < PAGE || cursor >= head {
                return Ok(());
            }
        }
    }
}

/// The SSE frame of one message.
pub(crate) fn render(view: &MessageView) -> Bytes {
    let data = serde_json::to_string(view).unwrap_or_else(|_| "{}".into());
    sse::event(view.seq, "message", &data)
}

/// Polls every `STREAM_POLL_MS`, or at once on a wake-up, for the life of the process.
async fn poll_loop(hub: Arc<HubInner>) {
    let mut ticker = tokio::time::interval(hub.config.poll_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut report = tokio::time::interval(std::time::Duration::from_secs(60));
    report.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let polled = match tokio::time::timeout(hub.deadline, hub.poll()).await {
                    Ok(result) => result,
                    Err(_) => Err(anyhow::anyhow!("no answer within {:?}", hub.deadline)),
                };
                if let Err(err) = polled {
                    tracing::warn!(error = format!("{err:#}"), "hub poll failed; retrying next tick");
                }
            }
            _ = hub.wake.notified() => hub.poll_woken().await,
            _ = report.tick() => {
                let stats = Hub(hub.clone()).stats();
                tracing::info!(
                    open_streams = stats.open_streams,
                    watched_rooms = stats.watched_rooms,
                    polls_last_minute = stats.polls_last_minute,
                    notifications_last_minute = stats.notifications_last_minute,
                    listener = stats.listener,
                    "stream hub"
                );
            }
        }
    }
}
