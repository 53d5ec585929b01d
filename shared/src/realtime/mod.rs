//! Real-time delivery: one hub per process watches every room that has subscribers with
//! one query per tick (or a NOTIFY wake-up), reads each room's log once, renders each
//! change once (and once more per subscriber with reactions of their own), and fans the
//! frames out to that room's subscribers in process.
//!
//! A room's log is its messages in the order of their newest event (`event_id`): a post,
//! an edit, a reaction change and a delete each give the message the room's next event id.
//! Reading `event_id > cursor` yields every change since the cursor, a message changed
//! several times in between once, in its newest state. Live delivery (the hub) and catch-up
//! (a subscriber that resumes or fell behind) read the log the same way.

mod catchup;
mod listener;
mod lookup;
pub mod sse;
mod stats;
pub mod subscriber;
mod window;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use futures_util::future::join_all;
use sqlx::PgPool;
use tokio::sync::{Notify, broadcast, watch};
use tokio::time::Instant;

pub use lookup::LookupFailed;
pub use stats::{Stats, StatsView};
pub use subscriber::{OpenStream, StreamRefused};

use crate::config::{DatabaseConfig, StreamConfig};
use crate::db;
use crate::db::replica::Reader;
use crate::storage::Storage;
use crate::views::{MessageView, sign_messages};
use window::{Entry, Window};

/// The live frames a room's subscribers share. A subscriber that falls this far behind is
/// cut off (it reconnects and catches up from Postgres) rather than waited on.
const ROOM_BUFFER: usize = 1024;
/// Rows per catch-up query.
pub(crate) const PAGE: i64 = 500;
/// How far back each tick re-reads moved read marks: a mark committed late (its
/// `updated_at` is its transaction's start) or stamped by a clock a little behind is still
/// seen. Marks already told are skipped. A post leaves a mark stamped in the last 2 s with
/// its stamp (`chat_post`, `POST_BATCH`: the update stays HOT), so its move is re-read for
/// at least 8 s of this window.
const MARK_WINDOW: chrono::TimeDelta = chrono::TimeDelta::seconds(10);
/// A user sends at most one typing event per room in this time; more are dropped, by the
/// instance that takes the request and again by each instance that delivers it.
pub const TYPING_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a typing event counts: its `expires_at` is this far ahead.
pub const TYPING_TTL: chrono::TimeDelta = chrono::TimeDelta::seconds(5);
/// How long a user's last stream on a room may be gone before they are told offline: a
/// stream's own bounded-lifetime reconnect (`retry: 1000`) comes back well within it.
pub const PRESENCE_DEBOUNCE: std::time::Duration = std::time::Duration::from_secs(3);
/// At most one `presence:` notification statement per this, per process: a storm of joins
/// (every browser reconnecting after a deploy) is a few statements, not one per join. A
/// join after a quiet spell still goes at once.
const ANNOUNCE_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// What a room's feed carries.
#[derive(Debug)]
pub enum Delivery {
    /// One change of the log, event `id`, rendered once as an SSE frame for every
    /// subscriber, and once for each subscriber with reactions of their own (`personal`).
    /// The read that found it began after event `after`: a subscriber that has sent less
    /// catches up to `after` from the log first.
    Change {
        id: i64,
        after: i64,
        /// The event that created the message: a subscriber that has sent it already shows
        /// a `message` frame as `message.updated`.
        created: i64,
        frame: Bytes,
        personal: Vec<(String, Bytes)>,
        /// Whose own reactions the read looked up (the room's subscribers when it began),
        /// and whether the message has any: a stream of anyone else learns which are its
        /// user's from the log.
        covered: Arc<HashSet<String>>,
        reacted: bool,
    },
    /// The private room's membership changed: who may still read it. Everyone else's
    /// stream ends.
    Readers(HashSet<String>),
    /// `user`'s read mark moved in some room: an `event: read` frame (no id) for their
    /// streams only.
    Read { user: String, frame: Bytes },
    /// An ephemeral event with no id for every subscriber of the room (`typing`,
    /// `presence`): never in the log, never replayed.
    Ephemeral(Bytes),
}

struct RoomFeed {
    sender: broadcast::Sender<Arc<Delivery>>,
    /// The newest event broadcast (or known to be delivered otherwise) for this room.
    cursor: i64,
    /// The room's `members_version` as last seen.
    members_version: i64,
    /// Who holds a stream on this room here, and how many each.
    users: HashMap<String, usize>,
    /// Who counts as present here, since when: the users above, and those whose last
    /// stream closed less than [`PRESENCE_DEBOUNCE`] ago.
    since: HashMap<String, chrono::DateTime<chrono::Utc>>,
    /// Users whose last stream closed, with the token of the offline announcement pending.
    leaving: HashMap<String, u64>,
    /// Who is present through other instances, and through which: from the last
    /// heartbeat's read of `chat_presence`, and the `presence:` notifications since.
    remote: HashMap<String, HashMap<String, Remote>>,
    /// (user, instance) pairs another instance said went offline, whose rows its next
    /// heartbeat deletes: a read in between does not bring them back.
    gone: HashMap<(String, String), Instant>,
    /// The users present in the room (here or elsewhere) as its subscribers know it: told
    /// one by one, or, while the room is crowded, as of the `presence.crowded` they got.
    told: HashSet<String>,
    /// `PRESENCE_EVENTS_MAX_ONLINE`.
    presence_max: usize,
    /// More users are present than `presence_max` (until down to 90 % of it): streams are
    /// not told of each one.
    crowded: bool,
    /// Whether a heartbeat has read the room's other instances yet: until then a leave
    /// announced from elsewhere is told even of a user these streams were not told of.
    synced: bool,
    /// The newest log entries, rendered, for streams that resume ([`window`]).
    window: Window,
    /// The highest message seq the hub has read (for a stream opened from its state).
    last_seq: i64,
    /// The users above as one shared set, built when first needed after they changed:
    /// every read and every window entry until the next join or leave shares it (a set per
    /// read was one copy of every subscriber's email per change kept in the window).
    snapshot: Option<Arc<HashSet<String>>>,
}

/// A (room, user) pair present here, since when: one entry of this instance's heartbeat.
type Held = (String, String, chrono::DateTime<chrono::Utc>);

/// A user's presence through another instance.
struct Remote {
    /// Seen in a heartbeat's read (not only announced by a notification).
    confirmed: bool,
    /// When it was last seen or announced.
    heard: Instant,
}

impl RoomFeed {
    /// Who holds a stream on the room here, as one set shared until the next join or leave.
    fn subscribers(&mut self) -> Arc<HashSet<String>> {
        self.snapshot
            .get_or_insert_with(|| Arc::new(self.users.keys().cloned().collect()))
            .clone()
    }

    fn present(&self, user: &str) -> bool {
        self.since.contains_key(user) || self.remote.contains_key(user)
    }

    /// Tells the room's subscribers `user` came online or went offline, if that differs
    /// from what they were last told. Past `presence_max` users present, it tells them once
    /// that the room is crowded instead; back at 90 % of it, that it is not, and who is there.
    fn settle(&mut self, user: &str) {
        let present = self.present(user);
        let changed = if present {
            self.told.insert(user.to_owned())
        } else {
            self.told.remove(user)
        };
        if !changed {
            return;
        }
        let online = self.told.len();
        if self.crowded {
            if online <= self.presence_max * 9 / 10 {
                self.crowded = false;
                for frame in self.opening(None) {
                    let _ = self.sender.send(Arc::new(Delivery::Ephemeral(frame)));
                }
            }
        } else if online > self.presence_max {
            self.crowded = true;
            let _ = self.sender.send(Arc::new(Delivery::Ephemeral(crowded_frame(
                true,
                online,
                self.presence_max,
            ))));
        } else {
            let _ = self.sender.send(presence_event(
                user,
                if present { "online" } else { "offline" },
            ));
        }
    }

    /// The room's presence as a stream is told it in full: one `presence.crowded` while it
    /// is crowded; otherwise an `online` for each user present but `except` (after a
    /// `presence.crowded` saying it is not, when `except` is `None`: the room just left
    /// the crowded state, and every stream hears everyone).
    fn opening(&self, except: Option<&str>) -> Vec<Bytes> {
        let online = self.told.len();
        if self.crowded {
            return vec![crowded_frame(true, online, self.presence_max)];
        }
        let mut users: Vec<&String> = self
            .told
            .iter()
            .filter(|u| except != Some(u.as_str()))
            .collect();
        users.sort();
        let mut frames = Vec::with_capacity(users.len() + 1);
        if except.is_none() {
            frames.push(crowded_frame(false, online, self.presence_max));
        }
        frames.extend(users.into_iter().map(|u| presence_frame(u, "online")));
        frames
    }
}

/// The per-process hub. Cheap to clone.
#[derive(Clone)]
pub struct Hub(Arc<HubInner>);

pub(crate) struct HubInner {
    pub(crate) db: PgPool,
    /// Catch-up reads (a window's fill, a stream's own pages) go through it, to the read
    /// replica when it has replayed what they need; live reads stay on `db`.
    pub(crate) reader: Reader,
    pub(crate) storage: Storage,
    pub(crate) config: StreamConfig,
    unpooled_url: Option<String>,
    rooms: Mutex<HashMap<String, RoomFeed>>,
    /// What Postgres last said of each watched room ([`lookup`]); locked after `rooms`.
    known: lookup::Known,
    /// Stream-open room lookups in flight, per room.
    lookups: lookup::Lookups,
    /// Rooms a NOTIFY said advanced, with the seq it named.
    woken: Mutex<HashMap<String, i64>>,
    wake: Notify,
    started: OnceLock<()>,
    pub(crate) stats: Stats,
    /// Open streams per user on this process.
    pub(crate) per_user: Mutex<HashMap<String, usize>>,
    /// Concurrent streams one user may hold here.
    pub(crate) max_per_user: usize,
    /// The read marks last announced, per (room, user), so a mark is told once.
    marks: Mutex<HashMap<(String, String), i64>>,
    /// How long one tick's query, or one room's read, may take (`DatabaseConfig::deadline`).
    deadline: std::time::Duration,
    /// This process's id in `chat_presence`.
    instance: String,
    /// When this process last sent a typing event, per (room, user).
    typing_sent: Mutex<HashMap<(String, String), Instant>>,
    /// When this process last delivered a typing event, per (room, user).
    typing_heard: Mutex<HashMap<(String, String), Instant>>,
    /// A (room, user) pair became present here: the presence writer may be waiting.
    presence_changed: Notify,
    /// `presence:` notifications waiting for [`announce_loop`]: (room, JSON).
    announcements: Mutex<Vec<(String, String)>>,
    announce_wake: Notify,
    leave_tokens: AtomicU64,
    shutdown: watch::Sender<bool>,
}

impl Hub {
    pub fn new(
        db: PgPool,
        reader: Reader,
        storage: Storage,
        config: StreamConfig,
        database: &DatabaseConfig,
        max_per_user: usize,
    ) -> Self {
        Self(Arc::new(HubInner {
            db,
            reader,
            storage,
            config,
            unpooled_url: database.url_unpooled.clone(),
            rooms: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
            lookups: Mutex::new(HashMap::new()),
            woken: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            started: OnceLock::new(),
            stats: Stats::default(),
            per_user: Mutex::new(HashMap::new()),
            max_per_user,
            marks: Mutex::new(HashMap::new()),
            deadline: database.deadline(),
            instance: uuid::Uuid::new_v4().to_string(),
            typing_sent: Mutex::new(HashMap::new()),
            typing_heard: Mutex::new(HashMap::new()),
            presence_changed: Notify::new(),
            announcements: Mutex::new(Vec::new()),
            announce_wake: Notify::new(),
            leave_tokens: AtomicU64::new(0),
            shutdown: watch::channel(false).0,
        }))
    }

    pub(crate) fn inner(&self) -> &HubInner {
        &self.0
    }

    /// Registers `user`'s interest in `room` and returns its live feed. `known_last_event`
    /// and `members_version` are what the caller read of the room before registering: a
    /// room new to the hub starts its cursor there, so every later change is broadcast and
    /// every earlier one is in the caller's own catch-up read, and every later membership
    /// change is announced. [`Hub::leave`] undoes it.
    ///
    /// Also returns the room's presence as this process knows it (its own streams at once;
    /// other instances' from its last heartbeat read and the notifications since), taken
    /// under the same lock as the feed, as the frames the stream opens with: an `online`
    /// for each other user there, or one `presence.crowded`; every later change comes on
    /// the feed.
    pub fn register(
        &self,
        room: &str,
        user: &str,
        known_last_event: i64,
        members_version: i64,
    ) -> (broadcast::Receiver<Arc<Delivery>>, Vec<Bytes>) {
        self.start();
        let config = &self.0.config;
        let mut rooms = self.0.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let feed = rooms.entry(room.to_owned()).or_insert_with(|| RoomFeed {
            sender: broadcast::channel(ROOM_BUFFER).0,
            cursor: known_last_event,
            members_version,
            users: HashMap::new(),
            since: HashMap::new(),
            leaving: HashMap::new(),
            remote: HashMap::new(),
            gone: HashMap::new(),
            told: HashSet::new(),
            presence_max: config.presence_events_max_online,
            crowded: false,
            synced: false,
            window: Window::new(known_last_event, config.window_events, config.window_bytes),
            last_seq: 0,
            snapshot: None,
        });
        let count = feed.users.entry(user.to_owned()).or_insert(0);
        *count += 1;
        if *count == 1 {
            feed.snapshot = None;
            // Back within the debounce (a reconnect): no announcement either way.
            if feed.leaving.remove(user).is_none() {
                feed.since.insert(user.to_owned(), chrono::Utc::now());
                feed.settle(user);
                self.0.announce(room, user, "online");
                self.0.presence_changed.notify_one();
            }
        }
        let opening = feed.opening(Some(user));
        (feed.sender.subscribe(), opening)
    }

    /// `user`'s stream on `room` ended. Their last one: unless they are back within
    /// [`PRESENCE_DEBOUNCE`], the room hears `offline` then.
    pub(crate) fn leave(&self, room: &str, user: &str) {
        let mut rooms = self.0.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(feed) = rooms.get_mut(room)
            && let Some(count) = feed.users.get_mut(user)
        {
            *count -= 1;
            if *count == 0 {
                feed.users.remove(user);
                feed.snapshot = None;
                // A stream can end outside a runtime only in a runtime's teardown: then
                // there is nobody left to tell.
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    feed.since.remove(user);
                    return;
                };
                let token = self.0.leave_tokens.fetch_add(1, Ordering::Relaxed);
                feed.leaving.insert(user.to_owned(), token);
                let hub = self.0.clone();
                let (room, user) = (room.to_owned(), user.to_owned());
                runtime.spawn(async move {
                    tokio::time::sleep(PRESENCE_DEBOUNCE).await;
                    hub.went_offline(&room, &user, token);
                });
            }
        }
    }

    /// Whether `user` sent a typing event on `room` from here less than [`TYPING_EVERY`]
    /// ago. In-process only.
    pub fn typing_recent(&self, room: &str, user: &str) -> bool {
        let last = self.0.typing_sent.lock().unwrap_or_else(|e| e.into_inner());
        last.get(&(room.to_owned(), user.to_owned()))
            .is_some_and(|at| at.elapsed() < TYPING_EVERY)
    }

    /// `user` sent a typing event on `room` from here just now.
    pub fn typing_sent(&self, room: &str, user: &str) {
        throttled(&self.0.typing_sent, room, user);
    }

    /// Whether typing events reach other instances (through the NOTIFY wake-up).
    pub fn wakeup_on(&self) -> bool {
        self.0.unpooled_url.is_some()
    }

    /// Delivers a typing event (`data`, its JSON) to this process's subscribers of `room`
    /// (the listener's path, and the path with polling only).
    pub fn deliver_typing(&self, room: &str, data: &str) {
        self.0.typed(room, data);
    }

    /// Ends every open stream (SIGTERM): clients reconnect with `Last-Event-ID`.
    pub fn shutdown(&self) {
        self.0.shutdown.send_replace(true);
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.0.shutdown.subscribe()
    }

    /// Statements the hub sent in the last minute.
    pub fn statements_last_minute(&self) -> u64 {
        self.0.stats.statements_last_minute.total()
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
            lookups_saved: s.lookups_saved.load(Ordering::Relaxed),
            window_catch_ups: s.window_catch_ups.load(Ordering::Relaxed),
            own_catch_up_reads: s.own_catch_up_reads.load(Ordering::Relaxed),
        }
    }

    /// Starts the poller (and the listener, with an unpooled URL) on first use, on the
    /// runtime that serves requests.
    fn start(&self) {
        self.0.started.get_or_init(|| {
            tokio::spawn(poll_loop(self.0.clone()));
            tokio::spawn(presence_loop(self.0.clone()));
            if let Some(url) = self.0.unpooled_url.clone() {
                tokio::spawn(listener::listen(self.0.clone(), url));
                tokio::spawn(announce_loop(self.0.clone()));
            }
        });
    }
}

impl HubInner {
    /// How often the tick asks Postgres: `STREAM_POLL_MS`, or while the wake-up is
    /// connected the slower `STREAM_WAKEUP_POLL_MS` (new changes come by notification then;
    /// the tick covers read marks, membership changes and a missed notification).
    pub(crate) fn tick_every(&self) -> std::time::Duration {
        let poll = self.config.poll_interval;
        if self.unpooled_url.is_some() && self.stats.listener_connected.load(Ordering::Relaxed) {
            poll.max(self.config.wakeup_poll_interval)
        } else {
            poll
        }
    }

    /// The debounce of `user`'s last stream on `room` ran out: unless they came back (or
    /// left again since, with a newer `token`), they are offline here.
    fn went_offline(&self, room: &str, user: &str, token: u64) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(feed) = rooms.get_mut(room)
            && feed.leaving.get(user) == Some(&token)
        {
            feed.leaving.remove(user);
            feed.since.remove(user);
            feed.settle(user);
            drop(rooms);
            self.announce(room, user, "offline");
        }
    }

    /// With the wake-up on, queues a `presence:` notification telling the other instances
    /// that `user` came online or went offline (debounced) here; sent in batches by
    /// [`announce_loop`], one statement per batch, so they hear it in milliseconds rather
    /// than at their next heartbeat.
    fn announce(&self, room: &str, user: &str, status: &str) {
        if self.unpooled_url.is_none() {
            return;
        }
        let data = serde_json::json!({
            "user_email": user,
            "status": status,
            "instance": self.instance,
        });
        self.announcements
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((room.to_owned(), data.to_string()));
        self.announce_wake.notify_one();
    }

    /// A `presence:` notification from another instance (the listener's path).
    pub(crate) fn heard_presence(&self, room: &str, data: &str) {
        #[derive(serde::Deserialize)]
        struct Change {
            user_email: String,
            status: String,
            instance: String,
        }
        let Ok(change) = serde_json::from_str::<Change>(data) else {
            return;
        };
        if change.instance == self.instance {
            return;
        }
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let Some(feed) = rooms.get_mut(room) else {
            return;
        };
        let key = (change.user_email.clone(), change.instance.clone());
        match change.status.as_str() {
            "online" => {
                feed.gone.remove(&key);
                feed.remote.entry(key.0).or_default().insert(
                    key.1,
                    Remote {
                        confirmed: false,
                        heard: Instant::now(),
                    },
                );
            }
            "offline" => {
                if let Some(instances) = feed.remote.get_mut(&key.0) {
                    instances.remove(&key.1);
                    if instances.is_empty() {
                        feed.remote.remove(&key.0);
                    }
                }
                feed.gone.insert(key, Instant::now());
                // Before the first read the streams' opening lists lacked this user (the
                // client may have them from `GET …/presence`): tell them they left.
                if !feed.synced && !feed.present(&change.user_email) {
                    feed.told.insert(change.user_email.clone());
                }
            }
            _ => return,
        }
        feed.settle(&change.user_email);
    }

    /// A heartbeat's read of the other instances' live entries on `watched` (the rooms
    /// watched when it was sent): who is present elsewhere now. Tells each room's
    /// subscribers of the differences (on the room's first read here: everyone elsewhere,
    /// whom the streams' opening lists could not include yet).
    fn heard_heartbeat(&self, watched: &[String], entries: Vec<db::rooms::PresenceEntry>) {
        let ttl = self.config.presence_ttl;
        let mut read: HashMap<String, HashMap<String, HashSet<String>>> = HashMap::new();
        for (room, user, instance) in entries {
            read.entry(room)
                .or_default()
                .entry(user)
                .or_default()
                .insert(instance);
        }
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        for room in watched {
            let Some(feed) = rooms.get_mut(room) else {
                continue;
            };
            let fresh = read.remove(room).unwrap_or_default();
            let listed = |user: &str, instance: &str| {
                fresh.get(user).is_some_and(|set| set.contains(instance))
            };
            // A tombstone lasts until its row is gone (or it is older than any row lives).
            feed.gone
                .retain(|(user, instance), at| listed(user, instance) && at.elapsed() < ttl);
            let mut affected: HashSet<String> = feed.remote.keys().cloned().collect();
            for (user, instances) in feed.remote.iter_mut() {
                // An announced join not yet read may predate the joiner's first write; it
                // stands until it is read, or for as long as a row would live.
                instances.retain(|instance, remote| {
                    listed(user, instance) || (!remote.confirmed && remote.heard.elapsed() < ttl)
                });
            }
            let now = Instant::now();
            for (user, instances) in &fresh {
                for instance in instances {
                    if feed.gone.contains_key(&(user.clone(), instance.clone())) {
                        continue;
                    }
                    feed.remote.entry(user.clone()).or_default().insert(
                        instance.clone(),
                        Remote {
                            confirmed: true,
                            heard: now,
                        },
                    );
                }
                affected.insert(user.clone());
            }
            feed.remote.retain(|_, instances| !instances.is_empty());
            feed.synced = true;
            for user in affected {
                feed.settle(&user);
            }
        }
    }

    /// Every (room, user) present here, with since when; and the rooms watched.
    fn present(&self) -> (Vec<Held>, Vec<String>) {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let present = rooms
            .iter()
            .flat_map(|(room, feed)| {
                feed.since
                    .iter()
                    .map(move |(user, since)| (room.clone(), user.clone(), *since))
            })
            .collect();
        (present, rooms.keys().cloned().collect())
    }

    /// A typing event for `room` (from the listener, or in-process): to the room's
    /// subscribers here, at most one per user and room per [`TYPING_EVERY`].
    pub(crate) fn typed(&self, room: &str, data: &str) {
        #[derive(serde::Deserialize)]
        struct Typing {
            user_email: String,
        }
        let Ok(typing) = serde_json::from_str::<Typing>(data) else {
            return;
        };
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let Some(feed) = rooms.get(room) else {
            return;
        };
        if throttled(&self.typing_heard, room, &typing.user_email) {
            return;
        }
        let frame = sse::event_without_id("typing", data);
        let _ = feed.sender.send(Arc::new(Delivery::Ephemeral(frame)));
    }

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
        // A room whose last subscriber just left stays until their offline is told.
        rooms.retain(|_, feed| feed.sender.receiver_count() > 0 || !feed.leaving.is_empty());
        lookup::forget_unwatched(
            &mut self.known.lock().unwrap_or_else(|e| e.into_inner()),
            &rooms,
        );
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
        self.stats.count_statement();
        let ids: Vec<String> = watched.iter().map(|(id, _)| id.clone()).collect();
        let users: Vec<String> = self
            .per_user
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        let since = chrono::Utc::now() - MARK_WINDOW;
        let asked = Instant::now();
        let (heads, marks) = db::rooms::tick(&self.db, &ids, &users, since).await?;
        {
            // The rooms still there, as of when the tick asked.
            let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            for head in &heads {
                if let Some(room) = known.get_mut(&head.id) {
                    room.checked = room.checked.max(asked);
                    room.row.history_floor = room.row.history_floor.max(head.history_floor);
                }
            }
        }
        self.announce_membership_changes(&heads).await?;
        let advanced = watched.into_iter().filter_map(|(id, cursor)| {
            let head = heads.iter().find(|h| h.id == id)?.last_event;
            (head > cursor).then_some((id, cursor, head))
        });
        self.fan_out(advanced.collect()).await;
        self.announce_marks(&users, marks);
        Ok(())
    }

    /// Tells each user with a stream here of their read marks that moved lately (in any
    /// room), once per mark; read by the tick's one statement, whatever the number of
    /// streams. Marks are re-read for [`MARK_WINDOW`] so a slow commit is not missed; the
    /// ones already told are skipped.
    fn announce_marks(&self, users: &[String], moved: Vec<db::rooms::MovedMark>) {
        let mut fresh = Vec::new();
        {
            let mut told = self.marks.lock().unwrap_or_else(|e| e.into_inner());
            told.retain(|(_, user), _| users.contains(user));
            for mark in moved {
                let key = (mark.room_id, mark.user_email);
                if told.get(&key).is_some_and(|&seq| seq >= mark.last_read_seq) {
                    continue;
                }
                told.insert(key.clone(), mark.last_read_seq);
                fresh.push((key.0, key.1, mark.last_read_seq));
            }
        }
        if fresh.is_empty() {
            return;
        }
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        for (room, user, last_read_seq) in fresh {
            let data = serde_json::json!({ "room_id": room, "last_read_seq": last_read_seq });
            let frame = sse::event_without_id("read", &data.to_string());
            let delivery = Arc::new(Delivery::Read {
                user: user.clone(),
                frame,
            });
            for feed in rooms.values().filter(|f| f.users.contains_key(&user)) {
                let _ = feed.sender.send(delivery.clone());
            }
        }
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
            self.stats.count_statement();
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
            let subscribers: Arc<HashSet<String>> = {
                let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
                match rooms.get_mut(room) {
                    Some(feed) => feed.subscribers(),
                    None => return Ok(()),
                }
            };
            let users: Vec<&str> = subscribers.iter().map(String::as_str).collect();
            self.stats.count_statement();
            let rows = db::messages::hub_range(&self.db, room, cursor, head, PAGE, &users).await?;
            let fetched = rows.len() as i64;
            // A membership change committed before these changes: tell the subscribers who
            // may still read the room first, on the same channel, so a removed member's
            // stream ends before any of them (the wake-up path has no heads query).
            if let Some(version) = rows.first().map(|r| r.members_version) {
                let head = db::rooms::RoomHead {
                    id: room.to_owned(),
                    last_event: head,
                    members_version: version,
                    history_floor: 0,
                };
                self.announce_membership_changes(std::slice::from_ref(&head))
                    .await?;
            }
            let mut reactors = Vec::with_capacity(rows.len());
            let mut messages = Vec::with_capacity(rows.len());
            for row in rows {
                reactors.push(row.reactors.0);
                messages.push(row.message);
            }
            let views = sign_messages(&self.storage, messages).await?;
            let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
            let Some(feed) = rooms.get_mut(room) else {
                return Ok(());
            };
            // What the subscribers in step with this feed have seen: the kind of each change
            // (new or updated) is told against it.
            let seen = feed.cursor;
            for (view, reactors) in views.into_iter().zip(reactors) {
                // Another read (a tick and a wake-up at once) may have sent these already.
                if view.event_id <= feed.cursor {
                    continue;
                }
                let frame = render(&view, seen);
                let personal = personal_frames(&view, &reactors, seen);
                let after = feed.cursor;
                feed.cursor = view.event_id;
                feed.last_seq = feed.last_seq.max(view.seq);
                // Kept for streams that resume (their own catch-up), as sent live.
                feed.window.push(
                    view.event_id,
                    Entry::new(
                        view.id,
                        view.created_event,
                        frame.clone(),
                        personal.clone(),
                        subscribers.clone(),
                        !view.reactions.is_empty(),
                    ),
                );
                // No receivers is fine: the room is dropped on the next tick.
                let _ = feed.sender.send(Arc::new(Delivery::Change {
                    id: view.event_id,
                    after,
                    created: view.created_event,
                    frame,
                    personal,
                    covered: subscribers.clone(),
                    reacted: !view.reactions.is_empty(),
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

/// The frames of `view` for each subscriber with reactions of their own on it.
fn personal_frames(
    view: &MessageView,
    reactors: &[(String, String)],
    seen: i64,
) -> Vec<(String, Bytes)> {
    let mut by_user: Vec<(&str, Vec<&str>)> = Vec::new();
    for (user, emoji) in reactors {
        match by_user.iter_mut().find(|(u, _)| u == user) {
            Some((_, emoji_of)) => emoji_of.push(emoji),
            None => by_user.push((user, vec![emoji])),
        }
    }
    by_user
        .into_iter()
        .map(|(user, mine)| (user.to_owned(), render(&view.for_viewer(&mine), seen)))
        .collect()
}

/// The SSE frame of one change to a message: `id:` its event id; `message.deleted` for a
/// tombstone, `message` for a message created after event `seen` (the reader's resume
/// point), `message.updated` otherwise. The data is the message's full current view.
pub(crate) fn render(view: &MessageView, seen: i64) -> Bytes {
    let name = if view.deleted_at.is_some() {
        "message.deleted"
    } else if view.created_event > seen {
        "message"
    } else {
        "message.updated"
    };
    let data = serde_json::to_string(view).unwrap_or_else(|_| "{}".into());
    sse::event(view.event_id, name, &data)
}

/// `event: presence` `{"user_email", "status"}`, no id.
fn presence_event(user: &str, status: &str) -> Arc<Delivery> {
    Arc::new(Delivery::Ephemeral(presence_frame(user, status)))
}

fn presence_frame(user: &str, status: &str) -> Bytes {
    let data = serde_json::json!({ "user_email": user, "status": status });
    sse::event_without_id("presence", &data.to_string())
}

/// `event: presence.crowded` `{"crowded", "online_count", "limit"}`, no id: whether the
/// room has more users present than `PRESENCE_EVENTS_MAX_ONLINE`, so that its streams are no
/// longer told of each one (`GET …/presence` still lists them).
fn crowded_frame(crowded: bool, online: usize, limit: usize) -> Bytes {
    let data = serde_json::json!({ "crowded": crowded, "online_count": online, "limit": limit });
    sse::event_without_id("presence.crowded", &data.to_string())
}

/// Whether (room, user) is in `last` from less than [`TYPING_EVERY`] ago; if not, records
/// now. Entries older than that are swept as the map grows.
fn throttled(last: &Mutex<HashMap<(String, String), Instant>>, room: &str, user: &str) -> bool {
    let now = Instant::now();
    let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
    let key = (room.to_owned(), user.to_owned());
    if last
        .get(&key)
        .is_some_and(|at| now.duration_since(*at) < TYPING_EVERY)
    {
        return true;
    }
    if last.len() >= 1024 {
        last.retain(|_, at| now.duration_since(*at) < TYPING_EVERY);
    }
    last.insert(key, now);
    false
}

/// Writes this process's presence, one statement for all its streams, every
/// `PRESENCE_HEARTBEAT_SECS` while it has any (and once more after the last is gone, to
/// delete its rows); none while it has none. A first stream after a quiet spell is written
/// at once when the last write is a heartbeat ago.
async fn presence_loop(hub: Arc<HubInner>) {
    let interval = hub
        .config
        .presence_heartbeat
        .max(std::time::Duration::from_secs(1));
    let mut last: Option<Instant> = None;
    // Whether the table may hold rows of ours.
    let mut written = false;
    loop {
        if hub.present().0.is_empty() && !written {
            hub.presence_changed.notified().await;
            continue;
        }
        if let Some(last) = last {
            tokio::time::sleep_until(last + interval).await;
        }
        let (present, watched) = hub.present();
        last = Some(Instant::now());
        hub.stats.count_statement();
        let write = db::rooms::presence_heartbeat(
            &hub.db,
            &hub.instance,
            &present,
            hub.config.presence_ttl,
            &watched,
        );
        match tokio::time::timeout(hub.deadline, write).await {
            Ok(Ok(entries)) => {
                written = !present.is_empty();
                hub.heard_heartbeat(&watched, entries);
            }
            Ok(Err(err)) => {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "presence write failed; retrying next heartbeat"
                );
            }
            Err(_) => tracing::warn!("presence write got no answer; retrying next heartbeat"),
        }
    }
}

/// Sends the queued `presence:` notifications, all that are waiting in one statement, at
/// most one per [`ANNOUNCE_EVERY`]; only with the wake-up on, and only when a user came or
/// went here.
async fn announce_loop(hub: Arc<HubInner>) {
    let mut sent_at: Option<Instant> = None;
    loop {
        hub.announce_wake.notified().await;
        // Those that come in the meantime go with these.
        if let Some(at) = sent_at {
            tokio::time::sleep_until(at + ANNOUNCE_EVERY).await;
        }
        sent_at = Some(Instant::now());
        let batch =
            std::mem::take(&mut *hub.announcements.lock().unwrap_or_else(|e| e.into_inner()));
        if batch.is_empty() {
            continue;
        }
        hub.stats.count_statement();
        let sent = db::rooms::notify_presence(&hub.db, &batch);
        match tokio::time::timeout(hub.deadline, sent).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(
                error = format!("{err:#}"),
                "presence notification failed; the other instances' next heartbeat reads it"
            ),
            Err(_) => tracing::warn!(
                "presence notification got no answer; the other instances' next heartbeat reads it"
            ),
        }
    }
}

/// Polls every `STREAM_POLL_MS`, or at once on a wake-up, for the life of the process.
async fn poll_loop(hub: Arc<HubInner>) {
    // Re-armed after each tick: its period depends on whether the wake-up is connected.
    let ticker = tokio::time::sleep(hub.tick_every());
    tokio::pin!(ticker);
    let mut report = tokio::time::interval(std::time::Duration::from_secs(60));
    report.tick().await;
    loop {
        tokio::select! {
            () = &mut ticker => {
                // On a fixed schedule, like `Interval` with `MissedTickBehavior::Delay`:
                // a late tick does not push the ones after it back.
                let every = hub.tick_every();
                let now = tokio::time::Instant::now();
                let next = ticker.deadline() + every;
                ticker.as_mut().reset(if next > now { next } else { now + every });
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
