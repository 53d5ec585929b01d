//! Response shapes: what the API shows of rooms, messages and files.

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
    pub async fn build(storage: &Storage, file: FileRow) -> anyhow::Result<Self> {
        Ok(Self {
            url: storage
                .file_url(&file.object_key, &file.file_name, &file.content_type)
                .await?,
            id: file.id,
            file_name: file.file_name,
            content_type: file.content_type,
            size: file.size,
        })
    }
}

impl MessageView {
    pub async fn build(storage: &Storage, row: MessageRow) -> anyhow::Result<Self> {
        let mut files = Vec::with_capacity(row.files.0.len());
        for file in row.files.0 {
            files.push(FileView::build(storage, file).await?);
        }
        Ok(Self {
            id: row.id,
            room_id: row.room_id,
            seq: row.seq,
            user_email: row.user_email,
            content: row.content,
            client_id: row.client_id,
            created_at: row.created_at,
            files,
        })
    }

    /// One after another: a file URL is signed locally (no I/O) or comes from the cache, so
    /// joining futures would only add allocations and polls to every page.
    pub async fn build_all(storage: &Storage, rows: Vec<MessageRow>) -> anyhow::Result<Vec<Self>> {
        let mut views = Vec::with_capacity(rows.len());
        for row in rows {
            views.push(Self::build(storage, row).await?);
        }
        Ok(views)
    }
}
