//! Queries on `chat_uploads`: presigned uploads not yet attached to a message.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

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

/// Records an upload if its room exists (one round trip); `None` for an unknown room.
pub async fn insert_upload(
    db: impl PgExecutor<'_>,
    upload: &NewUpload<'_>,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(
        r#"
        INSERT INTO chat_uploads (id, room_id, user_email, object_key, file_name, content_type, size)
        SELECT $1, r.id, $3, $4, $5, $6, $7
        FROM chat_rooms r
        WHERE r.id = $2
        RETURNING created_at
        "#,
    )
    .bind(upload.id)
    .bind(upload.room_id)
    .bind(upload.user_email)
    .bind(upload.object_key)
    .bind(upload.file_name)
    .bind(upload.content_type)
    .bind(upload.size)
    .fetch_optional(db)
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
