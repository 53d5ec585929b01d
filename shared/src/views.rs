//! Response shapes: what the API shows of rooms, messages and files. Views are plain data,
//! built from rows and already-signed file URLs; [`sign_messages`] signs, then builds.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::db::messages::{FileRow, MessageRow};
use crate::db::rooms::RoomRow;
use crate::storage::Storage;

/// RFC 3339 UTC with millisecond precision, e.g. `2026-11-27T20:42:46.123Z`.
fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
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
}

impl From<RoomRow> for RoomView {
    fn from(row: RoomRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            visibility: row.visibility,
            owner: row.created_by,
            created_at: row.created_at,
            last_seq: row.last_seq,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct MessageView {
    pub id: Uuid,
    pub room_id: String,
    pub seq: i64,
    pub user_email: String,
    pub content: String,
    pub client_id: Option<Uuid>,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    pub files: Vec<FileView>,
}

#[derive(Debug, Serialize)]
pub struct FileView {
    pub id: Uuid,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    pub url: String,
}

impl FileView {
    /// `url` is the file's signed (or public) download URL.
    pub fn new(file: FileRow, url: String) -> Self {
        Self {
            url,
            id: file.id,
            file_name: file.file_name,
            content_type: file.content_type,
            size: file.size,
        }
    }
}

impl MessageView {
    /// `urls` are the download URLs of `row.files`, in order.
    pub fn new(row: MessageRow, urls: Vec<String>) -> Self {
        let files = row
            .files
            .0
            .into_iter()
            .zip(urls)
            .map(|(file, url)| FileView::new(file, url))
            .collect();
        Self {
            id: row.id,
            room_id: row.room_id,
            seq: row.seq,
            user_email: row.user_email,
            content: row.content,
            client_id: row.client_id,
            created_at: row.created_at,
            files,
        }
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
        urls.push(
            storage
                .file_url(&file.object_key, &file.file_name, &file.content_type)
                .await?,
        );
    }
    Ok(MessageView::new(row, urls))
}
