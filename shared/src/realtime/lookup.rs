//! The room lookup of a stream opening (visibility, last seq and event), answered from the
//! hub's state of a watched public room while its tick confirms it, and otherwise by one
//! query shared by the streams opening on that room at the same time.
//!
//! A private room is never answered from memory: whether a user may read it is a query
//! started after their request arrived, as it was before the hub knew the room, so a
//! member removed a moment ago is refused at once rather than at the hub's next tick.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use tokio::time::Instant;

use super::Hub;
use crate::db;
use crate::db::rooms::RoomRow;
use crate::domain::RoomId;

/// A lookup in flight: whose it is, and what it found.
pub(crate) type Flight =
    Shared<BoxFuture<'static, (String, Result<Option<RoomRow>, Arc<sqlx::Error>>)>>;

/// A shared lookup failed: every stream waiting on it is told so (a database outage stays
/// a 503 through [`std::error::Error::source`]), none tries again on its own.
#[derive(Debug)]
pub struct LookupFailed(Arc<sqlx::Error>);

impl std::fmt::Display for LookupFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("look up the room")
    }
}

impl std::error::Error for LookupFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// What the hub knows of a watched room besides its feed.
pub(crate) struct KnownRoom {
    pub(crate) row: RoomRow,
    /// When Postgres last confirmed the room (a lookup, or a tick's heads).
    pub(crate) checked: Instant,
}

impl Hub {
    /// Room `id` as `user` may see it, for a stream resuming after `resume`: `None` when
    /// it does not exist or is not visible to them.
    pub async fn find_room(
        &self,
        id: &RoomId,
        user: &str,
        resume: Option<i64>,
    ) -> Result<Option<RoomRow>, LookupFailed> {
        if let Some(row) = self.known_public(id.as_str(), resume) {
            self.saved();
            return Ok(Some(row));
        }
        let flight = {
            let mut lookups = self
                .inner()
                .lookups
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            lookups
                .entry(id.as_str().to_owned())
                .or_insert_with(|| self.lookup(id.clone(), user.to_owned()))
                .clone()
        };
        let (asker, found) = flight.await;
        match found.map_err(LookupFailed)? {
            // Another stream's lookup of a public room: what it says holds for everyone,
            // unless this stream has seen a newer event than it read.
            Some(row)
                if asker == user
                    || (row.visibility == "public"
                        && resume.is_none_or(|r| r <= row.last_event)) =>
            {
                if asker != user {
                    self.saved();
                }
                Ok(Some(row))
            }
            None if asker == user => Ok(None),
            // A private room, a room not visible to the asker, or a failed lookup: its own.
            _ => {
                let row = db::rooms::find_visible(&self.inner().db, id, user)
                    .await
                    .map_err(|e| LookupFailed(Arc::new(e)))?;
                if let Some(row) = &row {
                    self.remember(row);
                }
                Ok(row)
            }
        }
    }

    /// One shared lookup of `id` as `user` sees it.
    fn lookup(&self, id: RoomId, user: String) -> Flight {
        let hub = self.clone();
        async move {
            let found = db::rooms::find_visible(&hub.inner().db, &id, &user).await;
            hub.inner()
                .lookups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id.as_str());
            if let Ok(Some(row)) = &found {
                hub.remember(row);
            }
            (user, found.map_err(Arc::new))
        }
        .boxed()
        .shared()
    }

    fn saved(&self) {
        let stats = &self.inner().stats;
        stats
            .lookups_saved
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// A row Postgres just returned.
    fn remember(&self, row: &RoomRow) {
        let mut known = self.inner().known.lock().unwrap_or_else(|e| e.into_inner());
        known.insert(
            row.id.clone(),
            KnownRoom {
                row: row.clone(),
                checked: Instant::now(),
            },
        );
    }

    /// Public room `id` from the hub's state: while the hub watches it, Postgres confirmed
    /// it within two ticks, and `resume` is no newer than the hub's cursor (else the
    /// stream would be told `reset`).
    fn known_public(&self, id: &str, resume: Option<i64>) -> Option<RoomRow> {
        let inner = self.inner();
        let fresh = 2 * inner.tick_every() + Duration::from_secs(1);
        let rooms = inner.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let feed = rooms.get(id)?;
        let known = inner.known.lock().unwrap_or_else(|e| e.into_inner());
        let room = known.get(id)?;
        if room.row.visibility != "public" || room.checked.elapsed() > fresh {
            return None;
        }
        if resume.is_some_and(|r| r > feed.cursor) {
            return None;
        }
        Some(RoomRow {
            last_seq: feed.last_seq.max(room.row.last_seq),
            last_event: feed.cursor,
            members_version: feed.members_version,
            ..room.row.clone()
        })
    }
}

/// Keeps what the hub knows only of rooms it still watches.
pub(super) fn forget_unwatched(
    known: &mut std::collections::HashMap<String, KnownRoom>,
    watched: &std::collections::HashMap<String, super::RoomFeed>,
) {
    known.retain(|id, _| watched.contains_key(id));
}

pub(crate) type Known = std::sync::Mutex<std::collections::HashMap<String, KnownRoom>>;
pub(crate) type Lookups = std::sync::Mutex<std::collections::HashMap<String, Flight>>;
