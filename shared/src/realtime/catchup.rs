//! Shared catch-up: a resuming stream is served from its room's window
//! ([`super::window`]); streams resuming before the window wait on one backward read of
//! the log that extends it, rendered once for all of them.

use std::sync::Arc;

use super::window::{Entry, Read};
use super::{HubInner, PAGE, personal_frames, render};
use crate::db;
use crate::views::sign_messages;

/// How many times one stream waits for fills before it reads Postgres itself.
const FILL_WAITS: usize = 8;

impl HubInner {
    /// Up to `limit` frames of `room`'s window after event `after`, for `user`; `None`
    /// when the hub does not watch the room.
    pub(crate) fn window_read(
        &self,
        room: &str,
        user: &str,
        after: i64,
        limit: usize,
    ) -> Option<Read> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let feed = rooms.get_mut(room)?;
        feed.window.expire(feed.cursor);
        Some(feed.window.read(user, after, limit))
    }

    /// The newest event the hub has broadcast for `room`, while it watches it.
    pub(crate) fn feed_cursor(&self, room: &str) -> Option<i64> {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        rooms.get(room).map(|feed| feed.cursor)
    }

    /// Extends `room`'s window back to event `from` (a stream's resume point), joining the
    /// fill already running for the room or starting one; returns once it has added a
    /// page or ended. `false` when no fill can help (the window is full, the room is not
    /// watched): read Postgres.
    pub(crate) async fn fill_window(self: &Arc<Self>, room: &str, from: i64, waits: usize) -> bool {
        if waits >= FILL_WAITS {
            return false;
        }
        let mut filled = {
            let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
            let Some(feed) = rooms.get_mut(room) else {
                return false;
            };
            let window = &mut feed.window;
            if from >= window.start() {
                return true;
            }
            if window.full() {
                return false;
            }
            window.want = window.want.min(from);
            let filled = window.filled.subscribe();
            if !window.filling {
                window.filling = true;
                tokio::spawn(fill(self.clone(), room.to_owned()));
            }
            filled
        };
        matches!(
            tokio::time::timeout(self.deadline, filled.changed()).await,
            Ok(Ok(()))
        )
    }
}

/// Reads `room`'s log backwards from its window's start, a page at a time, until every
/// waiting stream's resume point is inside the window (or the window is full), telling the
/// waiters after each page. One task per room at a time, so its streams share each read.
async fn fill(hub: Arc<HubInner>, room: String) {
    let end = |hub: &HubInner| {
        let mut rooms = hub.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(feed) = rooms.get_mut(&room) {
            feed.window.filling = false;
            feed.window.want = i64::MAX;
            feed.window.filled.send_modify(|n| *n += 1);
        }
    };
    loop {
        let (after, up_to, users) = {
            let mut rooms = hub.rooms.lock().unwrap_or_else(|e| e.into_inner());
            let Some(feed) = rooms.get_mut(&room) else {
                return;
            };
            let window = &feed.window;
            if window.want >= window.start() || window.full() {
                drop(rooms);
                return end(&hub);
            }
            let (want, start) = (window.want, window.start());
            (want, start, feed.subscribers())
        };
        hub.stats.count_statement();
        let read = async {
            // From the read replica when it has replayed the room up to the window's start
            // (the answer says so, in the same snapshot); from the primary otherwise.
            let names: Vec<&str> = users.iter().map(String::as_str).collect();
            let (room, names) = (room.as_str(), names.as_slice());
            let rows = hub
                .reader
                .read(
                    move |db| async move {
                        db::messages::hub_range_back(&db, room, after, up_to, PAGE, names).await
                    },
                    |rows| rows.first().is_some_and(|r| r.room_last_event >= up_to),
                )
                .await?;
            let fetched = rows.len() as i64;
            let mut reactors = Vec::with_capacity(rows.len());
            let mut messages = Vec::with_capacity(rows.len());
            for row in rows {
                reactors.push(row.reactors.0);
                messages.push(row.message);
            }
            let views = sign_messages(&hub.storage, messages).await?;
            anyhow::Ok((fetched, views, reactors))
        };
        let (fetched, views, reactors) = match tokio::time::timeout(hub.deadline, read).await {
            Ok(Ok(read)) => read,
            Ok(Err(err)) => {
                tracing::warn!(room, error = format!("{err:#}"), "catch-up fill failed");
                return end(&hub);
            }
            Err(_) => {
                tracing::warn!(room, "catch-up fill got no answer");
                return end(&hub);
            }
        };
        let covered = users;
        let mut rooms = hub.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let Some(feed) = rooms.get_mut(&room) else {
            return;
        };
        let window = &mut feed.window;
        // The oldest entries left meanwhile: this page no longer joins the window.
        if window.start() != up_to {
            continue;
        }
        // Read to `after` unless the page was full: then down to its oldest row.
        let mut reached = match views.last() {
            Some(oldest) if fetched == PAGE => oldest.event_id - 1,
            _ => after,
        };
        for (view, reactors) in views.iter().zip(&reactors) {
            let entry = Entry::new(
                view.id,
                view.created_event,
                render(view, i64::MIN),
                personal_frames(view, reactors, i64::MIN),
                covered.clone(),
                !view.reactions.is_empty(),
            );
            if !window.prepend(view.event_id, entry) {
                reached = view.event_id;
                break;
            }
        }
        window.extend_to(reached);
        window.filled.send_modify(|n| *n += 1);
    }
}
