//! Reads that may be served by a read replica (`DATABASE_URL_READ`): pages, replies, the
//! stream's catch-up, and whatever else reads through [`Reader::read`].
//!
//! A read runs on the replica first and keeps its answer only when the answer itself shows
//! the replica has replayed what the read names (the caller's `fresh` check on the rows,
//! read in the same statement, so in the same snapshot): otherwise it runs again on the
//! primary. A replica that errs, or does not answer within `DB_READ_TIMEOUT_MS`, is skipped
//! for [`RETRY_AFTER`] and its reads go to the primary; each fallback is counted (in
//! `GET /api/health`) and logged, at most once per [`WARN_EVERY`] and reason.
//!
//! Why a snapshot of the replica is a safe answer at all: within a room, event ids and seqs
//! are taken under the room's row lock and committed before it is released, so commit
//! order is id order, and a replica (which replays commits in order) holds, for each room,
//! exactly the changes up to some event: what the primary answered a moment earlier.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use tokio::time::Instant;

use crate::config::DatabaseConfig;

/// How long a replica that failed is left alone before a read tries it again.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);
/// At most one warning per reason in this time (the rest are counted in it).
pub const WARN_EVERY: Duration = Duration::from_secs(60);

/// The most rooms [`Reader::wrote`] remembers; past it, it starts afresh.
const WRITTEN_ROOMS: usize = 10_000;

/// The primary pool, and the replica's when `DATABASE_URL_READ` is set. Cheap to clone.
#[derive(Clone)]
pub struct Reader(Arc<Inner>);

struct Inner {
    primary: PgPool,
    replica: Option<Replica>,
    replica_reads: AtomicU64,
    primary_reads: AtomicU64,
    behind: AtomicU64,
    unavailable: AtomicU64,
    /// The newest event this process wrote, per room (with a replica only).
    written: Mutex<HashMap<String, i64>>,
}

struct Replica {
    pool: PgPool,
    /// `DB_READ_TIMEOUT_MS`: a connection and a statement, together.
    timeout: Duration,
    /// A failed replica is skipped until then.
    skip_until: Mutex<Option<Instant>>,
    /// Per reason: when it was last logged, and the fallbacks since.
    warned: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

/// What `GET /api/health` shows of the reads.
#[derive(Debug, Clone, Serialize)]
pub struct ReaderStats {
    /// `off` (no `DATABASE_URL_READ`), `on`, or `unavailable` (failed lately: skipped).
    pub replica: &'static str,
    /// Reads the replica answered.
    pub replica_reads: u64,
    /// Reads the primary answered (all of them without a replica).
    pub primary_reads: u64,
    /// Reads sent to the primary because the replica had not replayed what they name.
    pub behind: u64,
    /// Reads sent to the primary because the replica failed, timed out, or was skipped.
    pub unavailable: u64,
}

impl Reader {
    /// The primary pool, and a lazy pool on `DATABASE_URL_READ` when set (no connection
    /// until a read needs one; its acquires give up after `DB_READ_TIMEOUT_MS`).
    pub fn new(primary: PgPool, config: &DatabaseConfig) -> anyhow::Result<Self> {
        let replica = match &config.url_read {
            Some(url) => Some(Replica {
                pool: super::lazy_pool_at(url, "DATABASE_URL_READ", config, config.read_timeout)?,
                timeout: config.read_timeout,
                skip_until: Mutex::new(None),
                warned: Mutex::new(HashMap::new()),
            }),
            None => None,
        };
        Ok(Self(Arc::new(Inner {
            primary,
            replica,
            replica_reads: AtomicU64::new(0),
            primary_reads: AtomicU64::new(0),
            behind: AtomicU64::new(0),
            unavailable: AtomicU64::new(0),
            written: Mutex::new(HashMap::new()),
        })))
    }

    /// This process just wrote event `event` of `room` (a post, an edit, a reaction, a
    /// delete): its pages of the room are read from the replica only once the replica has
    /// replayed it, so whoever wrote it through this instance and then lists sees it.
    pub fn wrote(&self, room: &str, event: i64) {
        if self.0.replica.is_none() {
            return;
        }
        let mut written = self.0.written.lock().unwrap_or_else(|e| e.into_inner());
        if written.len() >= WRITTEN_ROOMS && !written.contains_key(room) {
            written.clear();
        }
        let newest = written.entry(room.to_owned()).or_insert(event);
        *newest = (*newest).max(event);
    }

    /// The newest event of `room` this process wrote (0: none it remembers).
    pub fn written(&self, room: &str) -> i64 {
        let written = self.0.written.lock().unwrap_or_else(|e| e.into_inner());
        written.get(room).copied().unwrap_or(0)
    }

    /// The primary pool (writes, and reads that must see the latest commit).
    pub fn primary(&self) -> &PgPool {
        &self.0.primary
    }

    /// The replica's pool, when one is configured (for reads that manage their own
    /// fallback; most should use [`Reader::read`]).
    pub fn replica(&self) -> Option<&PgPool> {
        self.0.replica.as_ref().map(|r| &r.pool)
    }

    /// Runs `read` on the replica, when there is one and it has not failed lately, and
    /// returns its answer if `fresh` accepts it; otherwise runs `read` on the primary.
    /// `fresh` sees the replica's answer only, and says whether it holds everything the
    /// read names (a cursor, a resume point): an answer that may miss it is never returned.
    pub async fn read<T, F, Fut>(&self, read: F, fresh: impl FnOnce(&T) -> bool) -> sqlx::Result<T>
    where
        F: Fn(PgPool) -> Fut,
        Fut: Future<Output = sqlx::Result<T>>,
    {
        let inner = &self.0;
        if let Some(replica) = &inner.replica {
            if replica.skipped() {
                inner.unavailable.fetch_add(1, Ordering::Relaxed);
                replica.warn(
                    "unavailable",
                    "read replica skipped after a failure; reading from the primary",
                    None,
                );
            } else {
                match tokio::time::timeout(replica.timeout, read(replica.pool.clone())).await {
                    Ok(Ok(answer)) if fresh(&answer) => {
                        inner.replica_reads.fetch_add(1, Ordering::Relaxed);
                        return Ok(answer);
                    }
                    Ok(Ok(_)) => {
                        inner.behind.fetch_add(1, Ordering::Relaxed);
                        replica.warn(
                            "behind",
                            "read replica has not replayed what a read names; reading from the primary",
                            None,
                        );
                    }
                    Ok(Err(err)) => {
                        inner.unavailable.fetch_add(1, Ordering::Relaxed);
                        // A statement the replica refused (a recovery conflict, say) says
                        // nothing of the next one; a connection that failed does.
                        if !matches!(err, sqlx::Error::Database(_)) {
                            replica.skip();
                        }
                        replica.warn(
                            "unavailable",
                            "read replica failed; reading from the primary",
                            Some(format!("{err:#}")),
                        );
                    }
                    Err(_) => {
                        inner.unavailable.fetch_add(1, Ordering::Relaxed);
                        replica.skip();
                        replica.warn(
                            "unavailable",
                            "read replica did not answer within DB_READ_TIMEOUT_MS; reading from the primary",
                            None,
                        );
                    }
                }
            }
        }
        inner.primary_reads.fetch_add(1, Ordering::Relaxed);
        read(inner.primary.clone()).await
    }

    pub fn stats(&self) -> ReaderStats {
        let inner = &self.0;
        ReaderStats {
            replica: match &inner.replica {
                None => "off",
                Some(replica) if replica.skipped() => "unavailable",
                Some(_) => "on",
            },
            replica_reads: inner.replica_reads.load(Ordering::Relaxed),
            primary_reads: inner.primary_reads.load(Ordering::Relaxed),
            behind: inner.behind.load(Ordering::Relaxed),
            unavailable: inner.unavailable.load(Ordering::Relaxed),
        }
    }
}

impl Replica {
    fn skipped(&self) -> bool {
        let until = *self.skip_until.lock().unwrap_or_else(|e| e.into_inner());
        until.is_some_and(|until| Instant::now() < until)
    }

    fn skip(&self) {
        *self.skip_until.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Instant::now() + RETRY_AFTER);
    }

    /// Logs a fallback for `reason`, unless one was logged less than [`WARN_EVERY`] ago
    /// (then it is counted into the next). Never the URL: sqlx's errors do not carry it.
    fn warn(&self, reason: &'static str, message: &str, error: Option<String>) {
        let now = Instant::now();
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        let suppressed = match warned.get_mut(reason) {
            Some((at, count)) if now.duration_since(*at) < WARN_EVERY => {
                *count += 1;
                return;
            }
            Some((at, count)) => {
                *at = now;
                std::mem::take(count)
            }
            None => {
                warned.insert(reason, (now, 0));
                0
            }
        };
        drop(warned);
        tracing::warn!(
            reason,
            error = error.as_deref().unwrap_or(""),
            unlogged_since_last = suppressed,
            "{message}"
        );
    }
}
