//! Queries on `chat_message_files` that processing makes: recording what it found.

use serde::Serialize;
use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

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
