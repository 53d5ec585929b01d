//! Queries on `chat_uploads`: presigned uploads not yet attached to a message.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::db::limits::{RateLimit, quota_columns, take_token};
use crate::db::rooms::visible_to;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UploadRow {
    pub id: Uuid,
    pub room_id: String,
    pub user_email: String,
    pub object_key: String,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
}

/// A pending upload to record.
pub struct NewUpload<'a> {
    pub id: Uuid,
    pub room_id: &'a str,
    pub user_email: &'a str,
    pub object_key: &'a str,
    pub file_name: &'a str,
    pub content_type: &'a str,
    pub size: i64,
}

/// What recording an upload did.
#[derive(Debug, sqlx::FromRow)]
pub struct UploadOutcome {
    /// `None` when nothing was recorded: unknown or hidden room, or no token left.
    pub created_at: Option<DateTime<Utc>>,
    pub tokens_left: Option<f64>,
    pub tokens_before: Option<f64>,
}

/// Records an upload, in one statement, if the uploader has a token left in their bucket and
/// may see the room.
pub async fn insert_upload(
    db: impl PgExecutor<'_>,
    upload: &NewUpload<'_>,
    limit: &RateLimit,
) -> sqlx::Result<UploadOutcome> {
    sqlx::query_as(concat!(
        "WITH ",
        take_token!("$3", "$8", "$9", "$10"),
        r#", upload AS (
            INSERT INTO chat_uploads (id, room_id, user_email, object_key, file_name, content_type, size)
            SELECT $1, r.id, $3, $4, $5, $6, $7
            FROM chat_rooms r
            WHERE r.id = $2 AND EXISTS (SELECT 1 FROM quota) AND "#,
        visible_to!("r", "$3"),
        r#"
            RETURNING created_at
        )
        SELECT upload.created_at, "#,
        quota_columns!("$3", "$8", "$9", "$10"),
        r#"
        FROM (SELECT 1) AS one LEFT JOIN upload ON true
        "#
    ))
    .bind(upload.id)
    .bind(upload.room_id)
    .bind(upload.user_email)
    .bind(upload.object_key)
    .bind(upload.file_name)
    .bind(upload.content_type)
    .bind(upload.size)
    .bind(limit.action)
    .bind(limit.capacity())
    .bind(limit.refill_per_sec())
    .fetch_one(db)
    .await
}

/// The pending uploads among `ids` (attached or unknown ones are absent).
pub async fn find_uploads(db: impl PgExecutor<'_>, ids: &[Uuid]) -> sqlx::Result<Vec<UploadRow>> {
    sqlx::query_as(
        r#"
        SELECT id, room_id, user_email, object_key, file_name, content_type, size
        FROM chat_uploads
        WHERE id = ANY($1)
        "#,
    )
    .bind(ids)
    .fetch_all(db)
    .await
}

/// Claims up to `limit` uploads created before `cutoff` for deletion, skipping rows another
/// run (or an attaching send) holds. Call inside a transaction.
pub async fn claim_orphans(
    db: impl PgExecutor<'_>,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, String)>> {
    sqlx::query_as(
        r#"
        SELECT id, object_key FROM chat_uploads
        WHERE created_at < $1
        ORDER BY created_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED
        "#,
    )
    .bind(cutoff)
    .bind(limit)
    .fetch_all(db)
    .await
}

pub async fn delete_uploads(db: impl PgExecutor<'_>, ids: &[Uuid]) -> sqlx::Result<u64> {
    Ok(sqlx::query("DELETE FROM chat_uploads WHERE id = ANY($1)")
        .bind(ids)
        .execute(db)
        .await?
        .rows_affected())
}
