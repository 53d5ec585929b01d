//! Response shapes: what the API shows of rooms, messages and files. Views are plain data,
//! built from rows and already-signed file URLs; [`sign_messages`] signs, then builds.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::db::messages::{FileRow, MessageRow};
use crate::db::rooms::{RoomListRow, RoomRow};
use crate::storage::Storage;

/// RFC 3339 UTC with millisecond precision, e.g. `2026-11-27T20:42:46.123Z`.
fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn rfc3339_opt<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Serialize)]
pub struct RoomView {
    pub id: String,
    pub name: String,
    pub visibility: String,
    pub owner: String,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    pub last_seq: i64,
    /// The caller's read mark: the newest seq they have read (0 before any).
    pub last_read_seq: i64,
    /// Messages by others after the mark, tombstones left out.
    pub unread: i64,
}

impl RoomView {
    fn new(row: RoomRow, last_read_seq: i64, unread: i64) -> Self {
        Self {
            id: row.id,
            name: row.name,
            visibility: row.visibility,
            owner: row.created_by,
            created_at: row.created_at,
            last_seq: row.last_seq,
            last_read_seq,
            unread,
        }
    }
}

/// A room just created: nothing in it to read.
impl From<RoomRow> for RoomView {
    fn from(row: RoomRow) -> Self {
        Self::new(row, 0, 0)
    }
}

impl From<RoomListRow> for RoomView {
    fn from(row: RoomListRow) -> Self {
        Self::new(row.room, row.last_read_seq, row.unread)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    pub id: Uuid,
    pub room_id: String,
    pub seq: i64,
    pub user_email: String,
    pub content: String,
    pub client_id: Option<Uuid>,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339_opt")]
    pub edited_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "rfc3339_opt")]
    pub deleted_at: Option<DateTime<Utc>>,
    pub files: Vec<FileView>,
    pub reactions: Vec<ReactionView>,
    pub reply_to: Option<ReplyToView>,
    pub reply_count: i32,
    /// The log event that last changed it (its stream `id:`): of two states of a message,
    /// the one with the higher `event_id` is newer.
    pub event_id: i64,
    /// The event that created it. Not part of the JSON.
    #[serde(skip)]
    pub created_event: i64,
}

/// One emoji's reactions on a message.
#[derive(Debug, Clone, Serialize)]
pub struct ReactionView {
    pub emoji: String,
    pub count: i64,
    /// Whether the viewer is among them.
    pub me: bool,
}

/// The message a reply answers, as it was when the reply was sent (`excerpt` empty once it
/// is deleted).
#[derive(Debug, Clone, Serialize)]
pub struct ReplyToView {
    pub id: Uuid,
    pub seq: i64,
    pub user_email: String,
    pub excerpt: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileView {
    pub id: Uuid,
    pub file_name: String,
    pub content_type: String,
    /// The upload's size, whatever is served.
    pub size: i64,
    pub url: String,
    /// Of the image `url` serves (orientation applied); `null` until processed, and for
    /// anything not processed.
    pub width: Option<i32>,
    pub height: Option<i32>,
    /// A WebP of at most `THUMBNAIL_MAX_PX` on the long side.
    pub thumbnail_url: Option<String>,
    /// A `data:` URI of a tiny WebP, to show (blurred) in the thumbnail's box until it loads.
    pub placeholder: Option<String>,
    /// `true` while an image waits for processing; the message comes again (as
    /// `message.updated`) when it is done.
    pub processing: bool,
    /// Which bytes `url` serves: `original` (as uploaded), `stripped` (re-encoded without
    /// metadata, orientation applied) or `resized` (the same, scaled to `IMAGE_MAX_PX`).
    pub served: &'static str,
    /// The size of what `url` serves.
    pub served_size: i64,
}

/// A file's signed URLs: its bytes, and its thumbnail if it has one.
#[derive(Debug)]
pub struct FileUrls {
    pub url: String,
    pub thumbnail_url: Option<String>,
}

impl FileView {
    pub fn new(file: FileRow, urls: FileUrls) -> Self {
        let processing = file.served.is_none() && crate::media::processable(&file.content_type);
        let served = match file.served.as_deref() {
            Some("stripped") => "stripped",
            Some("resized") => "resized",
            _ => "original",
        };
        Self {
            url: urls.url,
            thumbnail_url: urls.thumbnail_url,
            id: file.id,
            file_name: file.file_name,
            content_type: file.content_type,
            size: file.size,
            width: file.width,
            height: file.height,
            placeholder: file.placeholder,
            processing,
            served,
            served_size: file.served_size.unwrap_or(file.size),
        }
    }
}

impl MessageView {
    /// `urls` are the download URLs of `row.files`, in order.
    pub fn new(row: MessageRow, urls: Vec<FileUrls>) -> Self {
        let files = row
            .files
            .0
            .into_iter()
            .zip(urls)
            .map(|(file, url)| FileView::new(file, url))
            .collect();
        let mine = row.mine;
        let reactions = row
            .reactions
            .0
            .into_iter()
            .map(|r| ReactionView {
                me: mine.contains(&r.emoji),
                emoji: r.emoji,
                count: r.count,
            })
            .collect();
        let reply_to = match (row.reply_to, row.reply_to_seq, row.reply_to_user) {
            (Some(id), Some(seq), Some(user_email)) => Some(ReplyToView {
                id,
                seq,
                user_email,
                excerpt: row.reply_excerpt.unwrap_or_default(),
            }),
            _ => None,
        };
        Self {
            id: row.id,
            room_id: row.room_id,
            seq: row.seq,
            user_email: row.user_email,
            content: row.content,
            client_id: row.client_id,
            created_at: row.created_at,
            edited_at: row.edited_at,
            deleted_at: row.deleted_at,
            files,
            reactions,
            reply_to,
            reply_count: row.reply_count,
            event_id: row.event_id,
            created_event: row.created_event,
        }
    }

    /// The same message as `viewer` sees it, whose own reactions are `mine`.
    pub fn for_viewer(&self, mine: &[&str]) -> Self {
        let mut view = self.clone();
        for reaction in &mut view.reactions {
            reaction.me = mine.contains(&reaction.emoji.as_str());
        }
        view
    }
}

/// Signs each message's file URLs, then builds its view. One after another: a URL is
/// signed locally (no I/O) or comes from the cache, so joining futures would only add
/// allocations and polls to every page.
pub async fn sign_messages(
    storage: &Storage,
    rows: Vec<MessageRow>,
) -> anyhow::Result<Vec<MessageView>> {
    let mut views = Vec::with_capacity(rows.len());
    for row in rows {
        views.push(sign_message(storage, row).await?);
    }
    Ok(views)
}

/// [`sign_messages`] for one message.
pub async fn sign_message(storage: &Storage, row: MessageRow) -> anyhow::Result<MessageView> {
    let mut urls = Vec::with_capacity(row.files.0.len());
    for file in &row.files.0 {
        let url = storage
            .file_url(&file.object_key, &file.file_name, &file.content_type)
            .await?;
        let thumbnail_url = match &file.thumbnail_key {
            Some(key) => Some(storage.file_url(key, &file.file_name, "image/webp").await?),
            None => None,
        };
        urls.push(FileUrls { url, thumbnail_url });
    }
    Ok(MessageView::new(row, urls))
}
