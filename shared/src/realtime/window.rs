//! A watched room's catch-up window: its most recent log entries as the hub rendered them,
//! so a stream resuming inside it catches up from memory, with no query.
//!
//! The window holds, for every message whose newest event the hub knows is in
//! `(start, cursor]`, that event's frame, and nothing else: an entry for a message supersedes
//! its earlier one, as a read of the log (`event_id > start`) returns each message once, at
//! its newest event. So replaying the window after any point inside it is what a catch-up
//! read of the log would have sent then. Entries join at the newest end as the hub
//! broadcasts them, and at the oldest end when streams resuming before `start` share one
//! backward read ([`Window::prepend`]); the oldest leave first past
//! `CATCHUP_WINDOW_EVENTS` or `CATCHUP_WINDOW_BYTES`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

/// Frames carry presigned file urls (valid 6 h): a window older than this starts afresh.
const MAX_AGE: Duration = Duration::from_secs(3600);
/// What an entry costs besides its frames (keys, maps), for the byte bound.
const ENTRY_OVERHEAD: usize = 96;

/// One change of the log, rendered.
pub(crate) struct Entry {
    message: Uuid,
    /// The event that created the message (for `message` vs `message.updated`).
    created: i64,
    /// The frame for everyone without reactions of their own on it.
    frame: Bytes,
    /// The frames of the users among `covered` with reactions of their own on it.
    personal: Vec<(String, Bytes)>,
    /// Whose own reactions the read that rendered it looked up.
    covered: Arc<HashSet<String>>,
    /// Whether it has reactions at all: a user outside `covered` cannot be told which are
    /// theirs from here.
    reacted: bool,
    size: usize,
}

impl Entry {
    pub(crate) fn new(
        message: Uuid,
        created: i64,
        frame: Bytes,
        personal: Vec<(String, Bytes)>,
        covered: Arc<HashSet<String>>,
        reacted: bool,
    ) -> Self {
        let size = ENTRY_OVERHEAD
            + frame.len()
            + personal
                .iter()
                .map(|(u, f)| u.len() + f.len())
                .sum::<usize>();
        Self {
            message,
            created,
            frame,
            personal,
            covered,
            reacted,
            size,
        }
    }
}

/// What the window can send a stream after its resume point.
pub(crate) enum Read {
    /// Its resume point is before the window: fill the window, or read Postgres.
    Behind,
    /// These frames (`id`, `created`, frame), in id order, then what comes next.
    Frames(Vec<(i64, i64, Bytes)>, Next),
}

pub(crate) enum Next {
    /// Nothing newer in the window: the rest comes live.
    Live,
    /// More in the window: ask again.
    More,
    /// The next entry has reactions the window cannot attribute to this user: read that
    /// part of the log from Postgres.
    Postgres,
}

pub(crate) struct Window {
    /// Every entry with an id above this (up to the room's cursor) is here.
    start: i64,
    entries: BTreeMap<i64, Entry>,
    /// The event each message is held at.
    by_message: HashMap<Uuid, i64>,
    bytes: usize,
    max_events: usize,
    max_bytes: usize,
    /// When the oldest frame still possibly here was rendered.
    rendered: Option<Instant>,
    /// The oldest resume point a stream waiting for a fill asked for.
    pub(crate) want: i64,
    /// Whether a fill is running for this room.
    pub(crate) filling: bool,
    /// Bumped after each page a fill adds (and when it ends).
    pub(crate) filled: watch::Sender<u64>,
}

impl Window {
    /// An empty window at the room's `cursor`.
    pub(crate) fn new(cursor: i64, max_events: usize, max_bytes: usize) -> Self {
        Self {
            start: cursor,
            entries: BTreeMap::new(),
            by_message: HashMap::new(),
            bytes: 0,
            max_events,
            max_bytes,
            rendered: None,
            want: i64::MAX,
            filling: false,
            filled: watch::channel(0).0,
        }
    }

    pub(crate) fn start(&self) -> i64 {
        self.start
    }

    /// Whether an entry more would exceed a bound.
    pub(crate) fn full(&self) -> bool {
        self.entries.len() >= self.max_events || self.bytes >= self.max_bytes
    }

    /// The change `id` the hub just broadcast (newer than everything here).
    pub(crate) fn push(&mut self, id: i64, entry: Entry) {
        if self.max_events == 0 || self.max_bytes == 0 {
            self.start = id;
            return;
        }
        self.rendered.get_or_insert_with(Instant::now);
        if let Some(older) = self.by_message.insert(entry.message, id)
            && let Some(old) = self.entries.remove(&older)
        {
            self.bytes -= old.size;
        }
        self.bytes += entry.size;
        self.entries.insert(id, entry);
        while self.entries.len() > self.max_events || self.bytes > self.max_bytes {
            let Some((oldest, gone)) = self.entries.pop_first() else {
                break;
            };
            self.bytes -= gone.size;
            if self.by_message.get(&gone.message) == Some(&oldest) {
                self.by_message.remove(&gone.message);
            }
            self.start = oldest;
        }
    }

    /// Entry `id`, older than everything here (a fill's row, newest first); `false` when
    /// the window is full (then the window starts at `id`: the caller sets it).
    pub(crate) fn prepend(&mut self, id: i64, entry: Entry) -> bool {
        debug_assert!(id <= self.start);
        if self.full() {
            return false;
        }
        // The hub has sent a newer state of this message: the log no longer holds this one.
        if self.by_message.contains_key(&entry.message) {
            return true;
        }
        self.rendered = Some(Instant::now().min(self.rendered.unwrap_or_else(Instant::now)));
        self.by_message.insert(entry.message, id);
        self.bytes += entry.size;
        self.entries.insert(id, entry);
        true
    }

    /// A fill covered the log down to `start` (exclusive).
    pub(crate) fn extend_to(&mut self, start: i64) {
        self.start = self.start.min(start);
    }

    /// Starts afresh at `cursor` if the oldest frame is too old to serve (its file urls
    /// may have expired).
    pub(crate) fn expire(&mut self, cursor: i64) {
        if self.rendered.is_some_and(|at| at.elapsed() > MAX_AGE) {
            self.entries.clear();
            self.by_message.clear();
            self.bytes = 0;
            self.rendered = None;
            self.start = cursor;
        }
    }

    /// Up to `limit` frames after event `after` for `user`.
    pub(crate) fn read(&self, user: &str, after: i64, limit: usize) -> Read {
        if after < self.start {
            return Read::Behind;
        }
        let mut frames = Vec::new();
        for (&id, entry) in self.entries.range(after + 1..) {
            if frames.len() == limit {
                return Read::Frames(frames, Next::More);
            }
            let frame = match entry.personal.iter().find(|(u, _)| u == user) {
                Some((_, mine)) => mine,
                None if entry.reacted && !entry.covered.contains(user) => {
                    return Read::Frames(frames, Next::Postgres);
                }
                None => &entry.frame,
            };
            frames.push((id, entry.created, frame.clone()));
        }
        Read::Frames(frames, Next::Live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(message: u128, created: i64, reacted: bool) -> Entry {
        Entry::new(
            Uuid::from_u128(message),
            created,
            Bytes::from(format!("frame {message}@{created}")),
            Vec::new(),
            Arc::new(HashSet::from(["ana".to_owned()])),
            reacted,
        )
    }

    fn ids(read: Read) -> Vec<i64> {
        match read {
            Read::Frames(frames, _) => frames.into_iter().map(|(id, _, _)| id).collect(),
            Read::Behind => panic!("behind"),
        }
    }

    #[test]
    fn a_newer_entry_for_a_message_supersedes_its_older_one() {
        let mut w = Window::new(10, 100, 1 << 20);
        w.push(11, entry(1, 11, false));
        w.push(12, entry(2, 12, false));
        w.push(13, entry(1, 11, false));
        assert_eq!(ids(w.read("ana", 10, 10)), vec![12, 13]);
        assert!(matches!(w.read("ana", 9, 10), Read::Behind));
    }

    #[test]
    fn the_oldest_entries_leave_past_the_bound_and_the_start_follows() {
        let mut w = Window::new(0, 2, 1 << 20);
        for id in 1..=3 {
            w.push(id, entry(id as u128, id, false));
        }
        assert!(matches!(w.read("ana", 0, 10), Read::Behind));
        assert_eq!(ids(w.read("ana", 1, 10)), vec![2, 3]);
    }

    #[test]
    fn a_fill_skips_messages_already_held_at_a_newer_event() {
        let mut w = Window::new(5, 100, 1 << 20);
        w.push(6, entry(1, 2, false));
        assert!(w.prepend(5, entry(2, 5, false)));
        assert!(w.prepend(4, entry(1, 2, false)));
        w.extend_to(3);
        assert_eq!(ids(w.read("ana", 3, 10)), vec![5, 6]);
    }

    #[test]
    fn reactions_of_a_user_the_read_did_not_cover_send_them_to_postgres() {
        let mut w = Window::new(0, 100, 1 << 20);
        w.push(1, entry(1, 1, false));
        w.push(2, entry(2, 2, true));
        assert!(matches!(w.read("ana", 0, 10), Read::Frames(f, Next::Live) if f.len() == 2));
        assert!(matches!(w.read("bo", 0, 10), Read::Frames(f, Next::Postgres) if f.len() == 1));
    }

    #[test]
    fn a_window_of_zero_events_holds_nothing() {
        let mut w = Window::new(0, 0, 1 << 20);
        w.push(1, entry(1, 1, false));
        assert!(matches!(w.read("ana", 0, 10), Read::Behind));
        assert_eq!(ids(w.read("ana", 1, 10)), Vec::<i64>::new());
    }
}
