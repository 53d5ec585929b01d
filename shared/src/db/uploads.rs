//! Queries on `chat_uploads`: presigned uploads not yet attached to a message.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::db::limits::RateLimit;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UploadRow {
    pub id: Uuid,
    pub room_id: String,
    pub user_email: String,
    pub object_key: String,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    /// Not a column: the ETag storage reported when the send HEADed the object, which the
    /// copy to its attached key is conditioned on.
    #[sqlx(skip)]
    pub etag: Option<String>,
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

/// Records a pending upload in ONE statement; the binds are upload id `$1`, room `$2`,
/// uploader `$3`, object key `$4`, file name `$5`, content type `$6`, size `$7`, and the
/// uploader's upload bucket: action `$8`, capacity `$9`, refill `$10` tokens per second.
///
/// - `quota` takes a token from the bucket (`user_email`, `action`) in `chat_rate_limits`,
///   refilled for the time since its last take and capped at the capacity; it returns the
///   tokens left, or no row when fewer than one is there, and then nothing is recorded.
/// - `upload` inserts the row if the uploader may see the room (public, theirs, or with them
///   as a member; a hidden room is treated as missing).
/// - `tokens_left` and `tokens_before` (the bucket as it stood before this statement,
///   refilled to now) feed [`RateLimit::outcome`].
///
/// The outer `LEFT JOIN` on one row makes it return exactly one row even when nothing was
/// recorded.
pub const INSERT_UPLOAD: &str = r#"
    WITH quota AS (
        INSERT INTO chat_rate_limits AS b (user_email, action, tokens, updated_at)
        VALUES ($3, $8, $9 - 1, now())
        ON CONFLICT (user_email, action) DO UPDATE
        SET tokens = LEAST($9, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $10) - 1,
            updated_at = GREATEST(now(), b.updated_at)
        WHERE LEAST($9, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $10) >= 1
        RETURNING tokens
    ), upload AS (
        INSERT INTO chat_uploads (id, room_id, user_email, object_key, file_name, content_type, size)
        SELECT $1, r.id, $3, $4, $5, $6, $7
        FROM chat_rooms r
        WHERE r.id = $2 AND EXISTS (SELECT 1 FROM quota)
          AND (r.visibility = 'public' OR r.created_by = $3
               OR EXISTS (SELECT 1 FROM chat_room_members mm
                          WHERE mm.room_id = r.id AND mm.user_email = $3))
        RETURNING created_at
    )
    SELECT upload.created_at,
           (SELECT tokens FROM quota) AS tokens_left,
           (SELECT LEAST($9, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $10)
            FROM chat_rate_limits b WHERE b.user_email = $3 AND b.action = $8) AS tokens_before
    FROM (SELECT 1) AS one LEFT JOIN upload ON true
"#;

/// Records an upload, in one statement ([`INSERT_UPLOAD`]), if the uploader has a token
/// left in their bucket and may see the room.
pub async fn insert_upload(
    db: impl PgExecutor<'_>,
    upload: &NewUpload<'_>,
    limit: &RateLimit,
) -> sqlx::Result<UploadOutcome> {
    sqlx::query_as(INSERT_UPLOAD)
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

/// The pending uploads among `$1`, by `chat_uploads_pkey`.
pub const FIND_UPLOADS: &str = r#"
    SELECT id, room_id, user_email, object_key, file_name, content_type, size
    FROM chat_uploads
    WHERE id = ANY($1)
"#;

/// The pending uploads among `ids` (attached or unknown ones are absent).
pub async fn find_uploads(db: impl PgExecutor<'_>, ids: &[Uuid]) -> sqlx::Result<Vec<UploadRow>> {
    sqlx::query_as(FIND_UPLOADS).bind(ids).fetch_all(db).await
}

/// Locks the pending uploads among `$1` that user `$3` made for room `$2`, by
/// `chat_uploads_pkey`, until the caller's transaction ends. A send holds them while it
/// copies their bytes to their attached keys and inserts the message, so a second send of
/// the same upload waits, then finds it attached (no row) and never copies over the first
/// one's file; the cleanup cron (`SKIP LOCKED`) passes them over meanwhile.
pub const LOCK_PENDING: &str = r#"
    SELECT id FROM chat_uploads
    WHERE id = ANY($1) AND room_id = $2 AND user_email = $3
    FOR UPDATE
"#;

/// Locks `ids` for a send (see [`LOCK_PENDING`]) and returns how many are still pending
/// and the sender's, for that room. Call inside the send's transaction.
pub async fn lock_pending(
    db: impl PgExecutor<'_>,
    ids: &[Uuid],
    room_id: &str,
    user_email: &str,
) -> sqlx::Result<usize> {
    let locked: Vec<(Uuid,)> = sqlx::query_as(LOCK_PENDING)
        .bind(ids)
        .bind(room_id)
        .bind(user_email)
        .fetch_all(db)
        .await?;
    Ok(locked.len())
}

/// Locks up to `$2` uploads created before `$1`, oldest first (`idx_chat_uploads_created`).
/// `SKIP LOCKED` passes over rows another cleanup run, or a send attaching them, holds, so
/// concurrent runs never wait on each other or claim the same row. The locks last until the
/// caller's transaction ends.
pub const CLAIM_ORPHANS: &str = r#"
    SELECT id, object_key FROM chat_uploads
    WHERE created_at < $1
    ORDER BY created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
"#;

/// Claims up to `limit` uploads created before `cutoff` for deletion, skipping rows another
/// run (or an attaching send) holds. Call inside a transaction.
pub async fn claim_orphans(
    db: impl PgExecutor<'_>,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, String)>> {
    sqlx::query_as(CLAIM_ORPHANS)
        .bind(cutoff)
        .bind(limit)
        .fetch_all(db)
        .await
}

/// Deletes the uploads among `$1`, by `chat_uploads_pkey`.
pub const DELETE_UPLOADS: &str = r#"
    DELETE FROM chat_uploads WHERE id = ANY($1)
"#;

pub async fn delete_uploads(db: impl PgExecutor<'_>, ids: &[Uuid]) -> sqlx::Result<u64> {
    Ok(sqlx::query(DELETE_UPLOADS)
        .bind(ids)
        .execute(db)
        .await?
        .rows_affected())
}
