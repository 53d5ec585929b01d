//! The archive cron's work: retention (`RETENTION_DAYS`), then the move of old history to
//! segments (`ARCHIVE_AFTER_DAYS`, `ARCHIVE_KEEP_PER_ROOM`), in batches within a time
//! budget.
//!
//! Crash safety of a move, step by step (each step is a [`Step`] a test can stop at):
//! 1. read the room's oldest hot messages whole (no lock);
//! 2. write their segment to the bucket under a key fixed by its seq range, newest event
//!    and count (`super::segment_key`): a rerun writes the same bytes to the same key;
//!    a message changed since is a newer event, hence another key;
//! 3. ONE transaction: lock the rows (seq order, before the room's row, as every write
//!    does), check each still has the event id the segment holds (else roll back: the
//!    next run moves them as they are now), record the segment (`ON CONFLICT DO
//!    NOTHING`), delete the rows (files and reactions cascade; their thumbnails are not
//!    trashed, the segment keeps them), raise the room's `archived_seq` and
//!    `history_floor`; commit.
//!
//! Stopped before 3 commits, nothing changed but an object no row names (the rerun
//! overwrites or, if the rows changed, leaves it unnamed); after, the move is whole. Rows
//! are never deleted without their segment recorded in the same commit, and a segment is
//! never recorded for rows that stay.
//!
//! Retention deletes whole messages: hot rows in one statement per batch
//! (`db::archive::PURGE_HOT`), segments whole or rewritten without the expired messages
//! (the same write-then-swap as a move). Every object it forgets (files, thumbnails, old
//! segments) is queued in `chat_object_trash` in the same transaction, deleted right after
//! the commit, and retried by the cleanup cron if storage failed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{ArchivedMessage, Segment, segment_key};
use crate::App;
use crate::db;
use crate::db::archive::SegmentRow;

/// Rooms looked up at a time.
const ROOMS_PER_QUERY: i64 = 100;
/// Segments retention looks at per query.
const EXPIRED_SEGMENTS_PER_QUERY: i64 = 20;

/// A point of a move or rewrite where a test stops it, as a crash would: the work after it
/// never happens, an open transaction is rolled back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The segment object is written; the transaction has not begun.
    Uploaded,
    /// The segment row is inserted in the open transaction; no row is deleted yet.
    Recorded,
    /// The transaction committed; the objects it forgot are not deleted yet.
    Committed,
}

/// A fault armed by a test: the first run to reach `Step` stops there. Never set from the
/// environment.
#[derive(Clone, Default)]
pub struct Fault(Arc<Mutex<Option<Step>>>);

impl Fault {
    pub fn at(step: Step) -> Self {
        Self(Arc::new(Mutex::new(Some(step))))
    }

    fn check(&self, step: Step) -> anyhow::Result<()> {
        let mut armed = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if *armed == Some(step) {
            *armed = None;
            anyhow::bail!("stopped after {step:?} (a test's fault point)");
        }
        Ok(())
    }
}

impl std::fmt::Debug for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let armed = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        write!(f, "Fault({armed:?})")
    }
}

/// What one run did: messages moved to segments, messages deleted by retention, and
/// whether work is left for the next run.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub archived: usize,
    pub deleted: usize,
    pub more: bool,
}

/// Retention, then the move, until done, `budget` spent or `ARCHIVE_BATCHES_PER_RUN`
/// batches (moves and deletions) run.
pub async fn run(app: &App, budget: Duration) -> anyhow::Result<Report> {
    let config = &app.config.archive;
    let mut work = Work {
        app,
        started: Instant::now(),
        budget,
        batches_left: config.batches_per_run,
        report: Report::default(),
    };
    if let Some(window) = config.retention {
        let cutoff = Utc::now() - chrono::Duration::from_std(window)?;
        work.purge_segments(cutoff).await?;
        work.purge_hot(cutoff).await?;
    }
    if config.keep_per_room.is_some() || config.after.is_some() {
        let cutoff = match config.after {
            Some(after) => Some(Utc::now() - chrono::Duration::from_std(after)?),
            None => None,
        };
        work.archive(config.keep_per_room, cutoff).await?;
    }
    Ok(work.report)
}

struct Work<'a> {
    app: &'a App,
    started: Instant,
    budget: Duration,
    batches_left: usize,
    report: Report,
}

impl Work<'_> {
    /// Whether another batch may start; if not, the report says more is left.
    fn may_continue(&mut self) -> bool {
        if self.batches_left == 0 || self.started.elapsed() > self.budget {
            self.report.more = true;
            return false;
        }
        self.batches_left -= 1;
        true
    }

    fn fault(&self, step: Step) -> anyhow::Result<()> {
        match &self.app.config.archive.fault {
            Some(fault) => fault.check(step),
            None => Ok(()),
        }
    }

    async fn archive(
        &mut self,
        keep: Option<i64>,
        cutoff: Option<DateTime<Utc>>,
    ) -> anyhow::Result<()> {
        let mut after_room = String::new();
        loop {
            let rooms = db::archive::rooms_to_archive(
                &self.app.db,
                keep,
                cutoff,
                &after_room,
                ROOMS_PER_QUERY,
            )
            .await
            .context("rooms to archive")?;
            let Some(last) = rooms.last() else {
                return Ok(());
            };
            after_room = last.clone();
            for room in &rooms {
                loop {
                    if !self.may_continue() {
                        return Ok(());
                    }
                    match self.move_batch(room, keep, cutoff).await? {
                        Moved::Some(n) => self.report.archived += n,
                        // Changed under the move: the next run takes it as it is then.
                        Moved::Changed => break,
                        Moved::Done => break,
                    }
                }
            }
            if (rooms.len() as i64) < ROOMS_PER_QUERY {
                return Ok(());
            }
        }
    }

    /// Moves one batch of `room`'s oldest due messages into a segment.
    async fn move_batch(
        &self,
        room: &str,
        keep: Option<i64>,
        cutoff: Option<DateTime<Utc>>,
    ) -> anyhow::Result<Moved> {
        let batch = self.app.config.archive.batch;
        let rows = db::archive::oldest_hot::<ArchivedMessage>(&self.app.db, room, batch)
            .await
            .context("read the oldest messages")?;
        let Some(&(_, last_seq, last_event)) = rows.first() else {
            return Ok(Moved::Done);
        };
        // The newest `STREAM_MAX_BACKLOG` events stay hot: every resume point a stream
        // serves (at most that far behind; further back is a `reset`) is then at or after
        // the room's `history_floor`, and catches up from the hot log with nothing missed.
        let backlog = self.app.config.stream.max_backlog;
        // A prefix by seq: the archive only ever holds a room's oldest messages.
        let due: Vec<ArchivedMessage> = rows
            .into_iter()
            .map(|(m, ..)| m.0)
            .take_while(|m| {
                m.event_id <= last_event - backlog
                    && (keep.is_some_and(|k| m.seq <= last_seq - k)
                        || cutoff.is_some_and(|c| m.created_at < c))
            })
            .collect();
        if due.is_empty() {
            return Ok(Moved::Done);
        }
        // Their files stay in storage, in the segment: the room's storage count keeps them.
        let file_bytes: i64 = due.iter().flat_map(|m| &m.files).map(|f| f.size).sum();
        let built = build(room, due).await?;
        let row = built.row;
        self.app
            .storage
            .put_bytes(&row.object_key, "application/gzip", built.bytes)
            .await?;
        self.fault(Step::Uploaded)?;

        let ids: Vec<Uuid> = built.expected.iter().map(|(id, _)| *id).collect();
        let mut tx = self.app.db.begin().await?;
        let mut locked = db::archive::lock_messages(&mut tx, &ids).await?;
        locked.sort();
        if locked != built.expected {
            tx.rollback().await?;
            self.drop_unnamed(&row.object_key).await;
            tracing::info!(
                room,
                key = row.object_key,
                "messages changed under the move; left for the next run"
            );
            return Ok(Moved::Changed);
        }
        db::archive::insert_segment(&mut tx, &row).await?;
        self.fault(Step::Recorded)?;
        let gone = db::archive::delete_moved(&mut tx, &ids).await?;
        anyhow::ensure!(
            gone as usize == ids.len(),
            "the move deleted {gone} of {} rows",
            ids.len()
        );
        db::archive::raise_marks(&mut tx, room, row.last_seq, row.max_event).await?;
        db::archive::adjust_counters(&mut tx, room, 0, file_bytes).await?;
        tx.commit().await?;
        self.fault(Step::Committed)?;
        tracing::info!(
            room,
            key = row.object_key,
            messages = ids.len(),
            bytes = row.bytes,
            "archived"
        );
        Ok(Moved::Some(ids.len()))
    }

    /// Deletes an object this run wrote that no segment row names (a move or rewrite that
    /// found its rows changed). One a row names is someone's segment: it stays.
    async fn drop_unnamed(&self, key: &str) {
        match db::archive::segment_exists(&self.app.db, key).await {
            Ok(false) => {
                if let Err(err) = self.app.storage.delete(key).await {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        key,
                        "unnamed segment left in storage"
                    );
                }
            }
            Ok(true) => {}
            Err(err) => tracing::warn!(
                error = format!("{err:#}"),
                key,
                "unnamed segment left in storage"
            ),
        }
    }

    /// Retention over the archive: segments holding expired messages are deleted whole, or
    /// rewritten without them.
    async fn purge_segments(&mut self, cutoff: DateTime<Utc>) -> anyhow::Result<()> {
        loop {
            let expired =
                db::archive::segments_expired(&self.app.db, cutoff, EXPIRED_SEGMENTS_PER_QUERY)
                    .await
                    .context("expired segments")?;
            if expired.is_empty() {
                return Ok(());
            }
            let mut progressed = false;
            for segment in &expired {
                if !self.may_continue() {
                    return Ok(());
                }
                if let Some(n) = self.purge_segment(segment, cutoff).await? {
                    self.report.deleted += n;
                    progressed = true;
                }
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    /// Deletes `segment`'s messages created before `cutoff`; `None` when another run got
    /// there first.
    async fn purge_segment(
        &self,
        segment: &SegmentRow,
        cutoff: DateTime<Utc>,
    ) -> anyhow::Result<Option<usize>> {
        let content = self
            .app
            .segments
            .load(&self.app.storage, &segment.object_key)
            .await?;
        let (doomed, kept): (Vec<&ArchivedMessage>, Vec<&ArchivedMessage>) =
            content.messages.iter().partition(|m| m.created_at < cutoff);
        let mut trashed: Vec<String> = doomed.iter().flat_map(|m| m.object_keys()).collect();
        trashed.push(segment.object_key.clone());
        let floor = doomed.iter().map(|m| m.event_id).max().unwrap_or(0);
        // No row tells the counters' triggers: the room's messages (tombstones were counted
        // when deleted) and storage lose these here.
        let gone_messages = doomed.iter().filter(|m| m.deleted_at.is_none()).count() as i64;
        let gone_bytes: i64 = doomed.iter().flat_map(|m| &m.files).map(|f| f.size).sum();
        let replacement = if kept.is_empty() {
            None
        } else {
            let built = build(&segment.room_id, kept.into_iter().cloned().collect()).await?;
            self.app
                .storage
                .put_bytes(&built.row.object_key, "application/gzip", built.bytes)
                .await?;
            self.fault(Step::Uploaded)?;
            Some(built.row)
        };
        let mut tx = self.app.db.begin().await?;
        if !db::archive::delete_segment(&mut tx, &segment.object_key).await? {
            tx.rollback().await?;
            if let Some(row) = &replacement {
                self.drop_unnamed(&row.object_key).await;
            }
            return Ok(None);
        }
        if let Some(row) = &replacement {
            db::archive::insert_segment(&mut tx, row).await?;
            // Never trash the object just recorded (a rewrite to the same key).
            trashed.retain(|k| *k != row.object_key);
        }
        self.fault(Step::Recorded)?;
        db::archive::trash(&mut tx, &trashed).await?;
        db::archive::raise_floor(&mut tx, &segment.room_id, floor).await?;
        db::archive::adjust_counters(&mut tx, &segment.room_id, gone_messages, -gone_bytes).await?;
        tx.commit().await?;
        self.app.segments.forget(&segment.object_key);
        self.fault(Step::Committed)?;
        self.delete_trashed(&trashed).await;
        Ok(Some(doomed.len()))
    }

    /// Retention over the hot tables, room by room, oldest first.
    async fn purge_hot(&mut self, cutoff: DateTime<Utc>) -> anyhow::Result<()> {
        let batch = self.app.config.archive.batch;
        let mut after_room = String::new();
        loop {
            let rooms =
                db::archive::rooms_expired(&self.app.db, cutoff, &after_room, ROOMS_PER_QUERY)
                    .await
                    .context("rooms with expired messages")?;
            let Some(last) = rooms.last() else {
                return Ok(());
            };
            after_room = last.clone();
            for room in &rooms {
                loop {
                    if !self.may_continue() {
                        return Ok(());
                    }
                    let mut tx = self.app.db.begin().await?;
                    let (gone, keys) = db::archive::purge_hot(&mut tx, room, cutoff, batch).await?;
                    tx.commit().await?;
                    self.fault(Step::Committed)?;
                    self.delete_trashed(&keys).await;
                    self.report.deleted += gone as usize;
                    if gone < batch {
                        break;
                    }
                }
            }
            if (rooms.len() as i64) < ROOMS_PER_QUERY {
                return Ok(());
            }
        }
    }

    /// Deletes objects queued in `chat_object_trash`, then their queue entries; what
    /// storage refuses stays queued for the cleanup cron.
    async fn delete_trashed(&self, keys: &[String]) {
        if keys.is_empty() {
            return;
        }
        let result = async {
            self.app.storage.delete_objects(keys).await?;
            db::messages::empty_trash(&self.app.db, keys).await?;
            anyhow::Ok(())
        }
        .await;
        if let Err(err) = result {
            tracing::warn!(
                error = format!("{err:#}"),
                objects = keys.len(),
                "objects of expired messages left for the cleanup cron"
            );
        }
    }
}

enum Moved {
    Some(usize),
    Changed,
    Done,
}

/// A segment ready to write: its bytes, its row, and the `(id, event_id)` of its messages
/// in id order (what the move checks under lock).
struct Built {
    bytes: Vec<u8>,
    row: SegmentRow,
    expected: Vec<(Uuid, i64)>,
}

/// Encodes `messages` (in seq order, not empty) as a segment of `room`.
async fn build(room: &str, mut messages: Vec<ArchivedMessage>) -> anyhow::Result<Built> {
    messages.sort_by_key(|m| m.seq);
    let first = messages.first().context("an empty segment")?;
    let last = messages.last().context("an empty segment")?;
    let max_event = messages.iter().map(|m| m.event_id).max().unwrap_or(0);
    let mut reply_parents: Vec<Uuid> = messages.iter().filter_map(|m| m.reply_to).collect();
    reply_parents.sort();
    reply_parents.dedup();
    let mut expected: Vec<(Uuid, i64)> = messages.iter().map(|m| (m.id, m.event_id)).collect();
    expected.sort();
    let mut row = SegmentRow {
        object_key: segment_key(room, first.seq, last.seq, max_event, messages.len()),
        room_id: room.to_owned(),
        first_seq: first.seq,
        last_seq: last.seq,
        max_event,
        messages: messages.len() as i32,
        bytes: 0,
        min_id: messages
            .iter()
            .map(|m| m.id)
            .min()
            .context("an empty segment")?,
        max_id: messages
            .iter()
            .map(|m| m.id)
            .max()
            .context("an empty segment")?,
        oldest_at: messages
            .iter()
            .map(|m| m.created_at)
            .min()
            .context("an empty segment")?,
        newest_at: messages
            .iter()
            .map(|m| m.created_at)
            .max()
            .context("an empty segment")?,
        reply_parents,
    };
    let segment = Segment {
        version: 1,
        room_id: room.to_owned(),
        first_seq: row.first_seq,
        last_seq: row.last_seq,
        messages,
    };
    let bytes = tokio::task::spawn_blocking(move || segment.encode())
        .await
        .context("encode a segment")??;
    row.bytes = bytes.len() as i64;
    Ok(Built {
        bytes,
        row,
        expected,
    })
}
