//! Queries on `chat_message_files` that processing makes: recording what it found.

use serde::Serialize;
use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::messages::FileRow;

/// What processing found for one file, as `chat_file_processed` reads it.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessedFile {
    pub id: Uuid,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub thumbnail_key: Option<String>,
    pub placeholder: Option<String>,
    /// `original`, `stripped` or `resized`.
    pub served: &'static str,
    pub served_size: i64,
}

/// Images attached before `$1` still waiting for processing, oldest first, at most `$2`,
/// each with its message, through `idx_chat_message_files_unprocessed` (the same predicate:
/// the types are `media::image::Kind`'s).
pub const UNPROCESSED: &str = r#"
    SELECT f.message_id,
           json_build_object('id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                             'content_type', f.content_type, 'size', f.size) AS file
    FROM chat_message_files f
    WHERE f.served IS NULL
      AND f.content_type IN ('image/jpeg', 'image/png', 'image/gif', 'image/webp')
      AND f.created_at < $1
    ORDER BY f.created_at
    LIMIT $2
"#;

/// Images left processing since before `cutoff`, grouped by message (in the order of their
/// oldest file).
pub async fn unprocessed(
    db: impl PgExecutor<'_>,
    cutoff: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, Vec<FileRow>)>> {
    let rows: Vec<(Uuid, Json<FileRow>)> = sqlx::query_as(UNPROCESSED)
        .bind(cutoff)
        .bind(limit)
        .fetch_all(db)
        .await?;
    let mut grouped: Vec<(Uuid, Vec<FileRow>)> = Vec::new();
    for (message, Json(file)) in rows {
        match grouped.iter_mut().find(|(m, _)| *m == message) {
            Some((_, files)) => files.push(file),
            None => grouped.push((message, vec![file])),
        }
    }
    Ok(grouped)
}

/// What recording did (`chat_file_processed`).
#[derive(Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded: one `message.updated` event.
    Updated,
    /// Recorded already by another run: nothing changed.
    AlreadyDone,
    /// The message was deleted (or the files are not its): what processing wrote to
    /// storage is to be deleted.
    Gone,
}

/// Records the results `$2` (a JSON array of [`ProcessedFile`]) for message `$1`, an event
/// of the room's log: see `chat_file_processed` in
/// `migrations/20261202000001_file_processing.sql`.
pub const RECORD_PROCESSED: &str = r#"
    SELECT chat_file_processed($1, $2)
"#;

pub async fn record_processed(
    db: impl PgExecutor<'_>,
    message: Uuid,
    files: &[ProcessedFile],
) -> sqlx::Result<Recorded> {
    let (outcome,): (String,) = sqlx::query_as(RECORD_PROCESSED)
        .bind(message)
        .bind(Json(files))
        .fetch_one(db)
        .await?;
    Ok(match outcome.as_str() {
        "ok" => Recorded::Updated,
        "done" => Recorded::AlreadyDone,
        _ => Recorded::Gone,
    })
}
