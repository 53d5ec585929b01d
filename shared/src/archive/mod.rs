//! History tiered to object storage, and retention.
//!
//! A room's oldest messages (by seq) move out of the hot tables into immutable segments in
//! the bucket, one object per room per seq range (`segment_key`): gzip'd JSON holding each
//! message whole (its row, its files' rows, who reacted with what), so every view of it can
//! be built from the object alone. `chat_archive_segments` records each segment
//! (`migrations/20261203000003_archive.sql`).
//!
//! - [`mover`]: the cron's move (`ARCHIVE_AFTER_DAYS`, `ARCHIVE_KEEP_PER_ROOM`) and
//!   retention (`RETENTION_DAYS`), crash-safe at every step.
//! - [`read`]: pages, replies and single messages read through the boundary, merged with
//!   the hot rows; a message brought back to the hot tables for a write (`restore`).

pub mod mover;
pub mod read;

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::messages::{FileRow, MessageRow};
use crate::storage::Storage;

/// The largest segment object read (compressed), and its largest decompressed size.
const MAX_SEGMENT_BYTES: u64 = 64 << 20;
const MAX_SEGMENT_JSON: u64 = 512 << 20;
/// Decoded segments kept per process (immutable, so a cached one is never stale).
const CACHED_SEGMENTS: usize = 32;

/// The object key of the segment of `room` holding `count` messages with seqs
/// `first..=last`, whose newest event is `max_event`. Deterministic: a rerun of a move that
/// crashed writes the same key with the same bytes; a message changed since has a newer
/// event, and a segment rewritten by retention fewer messages, hence another key.
pub fn segment_key(room: &str, first: i64, last: i64, max_event: i64, count: usize) -> String {
    format!("archive/{room}/{first}-{last}.{max_event}.{count}.json.gz")
}

/// One archived message, whole: the columns of its `chat_messages` row, its files' rows
/// and its reactions by user (`db::archive::OLDEST_HOT` builds it from the row).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchivedMessage {
    pub id: Uuid,
    pub room_id: String,
    pub seq: i64,
    pub event_id: i64,
    pub created_event: i64,
    pub user_email: String,
    pub content: String,
    pub client_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// `[{"emoji", "count"}]` in first-reacted order, as on the row.
    pub reactions: serde_json::Value,
    pub reply_to: Option<Uuid>,
    pub reply_to_seq: Option<i64>,
    pub reply_to_user: Option<String>,
    pub reply_excerpt: Option<String>,
    pub reply_count: i32,
    pub files: Vec<ArchivedFile>,
    /// Oldest first.
    pub reactors: Vec<Reactor>,
}

/// A `chat_message_files` row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchivedFile {
    pub id: Uuid,
    pub message_id: Uuid,
    pub object_key: String,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    pub created_at: DateTime<Utc>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub thumbnail_key: Option<String>,
    pub placeholder: Option<String>,
    pub served: Option<String>,
    pub served_size: Option<i64>,
}

/// A `chat_message_reactions` row of the message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reactor {
    pub user_email: String,
    pub emoji: String,
    pub created_at: DateTime<Utc>,
}

impl ArchivedMessage {
    /// The message as `viewer` sees it: the row a hot page would have read.
    pub fn to_row(&self, viewer: &str) -> MessageRow {
        let reactions = serde_json::from_value(self.reactions.clone()).unwrap_or_default();
        let mine = self
            .reactors
            .iter()
            .filter(|r| r.user_email == viewer)
            .map(|r| r.emoji.clone())
            .collect();
        MessageRow {
            id: self.id,
            room_id: self.room_id.clone(),
            seq: self.seq,
            event_id: self.event_id,
            created_event: self.created_event,
            user_email: self.user_email.clone(),
            content: self.content.clone(),
            client_id: self.client_id,
            created_at: self.created_at,
            edited_at: self.edited_at,
            deleted_at: self.deleted_at,
            reactions: Json(reactions),
            mine,
            reply_to: self.reply_to,
            reply_to_seq: self.reply_to_seq,
            reply_to_user: self.reply_to_user.clone(),
            reply_excerpt: self.reply_excerpt.clone(),
            reply_count: self.reply_count,
            files: Json(
                self.files
                    .iter()
                    .map(|f| FileRow {
                        id: f.id,
                        object_key: f.object_key.clone(),
                        file_name: f.file_name.clone(),
                        content_type: f.content_type.clone(),
                        size: f.size,
                        width: f.width,
                        height: f.height,
                        thumbnail_key: f.thumbnail_key.clone(),
                        placeholder: f.placeholder.clone(),
                        served: f.served.clone(),
                        served_size: f.served_size,
                    })
                    .collect(),
            ),
        }
    }

    /// Every object of its files (each file's bytes and thumbnail).
    pub fn object_keys(&self) -> impl Iterator<Item = String> + '_ {
        self.files
            .iter()
            .flat_map(|f| std::iter::once(f.object_key.clone()).chain(f.thumbnail_key.clone()))
    }
}

/// A segment object's content.
#[derive(Debug, Serialize, Deserialize)]
pub struct Segment {
    pub version: u32,
    pub room_id: String,
    pub first_seq: i64,
    pub last_seq: i64,
    /// In seq order.
    pub messages: Vec<ArchivedMessage>,
}

impl Segment {
    pub fn encode(&self) -> anyhow::Result<Vec<u8>> {
        let json = serde_json::to_vec(self).context("encode a segment")?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&json).context("compress a segment")?;
        gz.finish().context("compress a segment")
    }

    pub fn decode(bytes: &[u8]) -> anyhow::Result<Self> {
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(MAX_SEGMENT_JSON)
            .read_to_end(&mut json)
            .context("decompress a segment")?;
        serde_json::from_slice(&json).context("decode a segment")
    }
}

/// Decoded segments by key, and the keys oldest-read first.
type Cached = (HashMap<String, Arc<Segment>>, VecDeque<String>);

/// Decoded segments by key: the last `CACHED_SEGMENTS` loaded are kept.
#[derive(Default)]
pub struct SegmentCache {
    inner: Mutex<Cached>,
}

impl SegmentCache {
    /// Segment `key`, from the cache or from storage.
    pub async fn load(&self, storage: &Storage, key: &str) -> anyhow::Result<Arc<Segment>> {
        if let Some(found) = self.get(key) {
            return Ok(found);
        }
        let bytes = storage.get_bytes(key, MAX_SEGMENT_BYTES).await?;
        let segment = Arc::new(
            tokio::task::spawn_blocking(move || Segment::decode(&bytes))
                .await
                .context("decode a segment")??,
        );
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *inner;
        if map.insert(key.to_owned(), segment.clone()).is_none() {
            order.push_back(key.to_owned());
        }
        while order.len() > CACHED_SEGMENTS {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
        Ok(segment)
    }

    fn get(&self, key: &str) -> Option<Arc<Segment>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.0.get(key).cloned()
    }

    /// Forgets `key` (a segment retention deleted or rewrote).
    pub fn forget(&self, key: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *inner;
        map.remove(key);
        order.retain(|k| k != key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_survives_its_encoding() {
        let at: DateTime<Utc> = "2026-12-01T10:00:00.123456Z".parse().unwrap();
        let segment = Segment {
            version: 1,
            room_id: "general".into(),
            first_seq: 1,
            last_seq: 1,
            messages: vec![ArchivedMessage {
                id: Uuid::now_v7(),
                room_id: "general".into(),
                seq: 1,
                event_id: 3,
                created_event: 1,
                user_email: "a@b.c".into(),
                content: "hello".repeat(100),
                client_id: None,
                created_at: at,
                edited_at: None,
                deleted_at: None,
                reactions: serde_json::json!([{"emoji": "👍", "count": 1}]),
                reply_to: None,
                reply_to_seq: None,
                reply_to_user: None,
                reply_excerpt: None,
                reply_count: 0,
                files: vec![],
                reactors: vec![Reactor {
                    user_email: "a@b.c".into(),
                    emoji: "👍".into(),
                    created_at: at,
                }],
            }],
        };
        let bytes = segment.encode().unwrap();
        assert!(bytes.len() < 500, "compressed to {} bytes", bytes.len());
        let back = Segment::decode(&bytes).unwrap();
        let row = back.messages[0].to_row("a@b.c");
        assert_eq!(row.mine, vec!["👍".to_owned()]);
        assert_eq!(row.created_at, at);
        assert_eq!(row.reactions.0[0].count, 1);
        assert!(back.messages[0].to_row("x@y.z").mine.is_empty());
    }

    #[test]
    fn a_segment_key_names_its_range_and_state() {
        assert_eq!(
            segment_key("general", 1, 100, 140, 100),
            "archive/general/1-100.140.100.json.gz"
        );
    }
}
