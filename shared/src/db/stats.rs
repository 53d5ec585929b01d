//! The operator's figures (`GET /api/admin/stats`): counters kept on `chat_rooms`
//! (`migrations/20261203000002_stats.sql`), never a count of `chat_messages` rows.

use sqlx::PgExecutor;

/// The whole database's figures: sums over `chat_rooms` (one row per room, whatever its
/// messages), and the pending uploads (bounded: the cleanup cron deletes those older than
/// `UPLOAD_ORPHAN_HOURS`). A room's messages are `last_seq - deleted_count`.
pub const TOTALS: &str = r#"
    SELECT count(*) AS rooms,
           COALESCE(sum(r.last_seq - r.deleted_count), 0)::int8 AS messages,
           COALESCE(sum(r.storage_bytes), 0)::int8 AS storage_bytes,
           (SELECT count(*) FROM chat_uploads u) AS pending_uploads,
           (SELECT COALESCE(sum(u.size), 0)::int8 FROM chat_uploads u) AS pending_upload_bytes
    FROM chat_rooms r
"#;

#[derive(Debug, sqlx::FromRow)]
pub struct Totals {
    pub rooms: i64,
    pub messages: i64,
    pub storage_bytes: i64,
    pub pending_uploads: i64,
    pub pending_upload_bytes: i64,
}

pub async fn totals(db: impl PgExecutor<'_>) -> sqlx::Result<Totals> {
    sqlx::query_as(TOTALS).fetch_one(db).await
}

/// The `$1` rooms with the most messages, most first (ties by id): a top-N sort over the room
/// rows, the same rows [`TOTALS`] sums. No index serves it on purpose: one on
/// `last_seq - deleted_count` would make every post's room update a non-HOT one
/// (`migrations/20261204000001_hot_room_rows.sql`).
pub const TOP_BY_MESSAGES: &str = r#"
    SELECT r.id, r.name, r.last_seq - r.deleted_count AS messages, r.storage_bytes
    FROM chat_rooms r
    ORDER BY r.last_seq - r.deleted_count DESC, r.id
    LIMIT $1
"#;

/// The `$1` rooms holding the most bytes of files, most first (ties by id), from the front
/// of `chat_rooms_by_storage`.
pub const TOP_BY_STORAGE: &str = r#"
    SELECT r.id, r.name, r.last_seq - r.deleted_count AS messages, r.storage_bytes
    FROM chat_rooms r
    ORDER BY r.storage_bytes DESC, r.id
    LIMIT $1
"#;

#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct RoomFigures {
    pub id: String,
    pub name: String,
    pub messages: i64,
    pub storage_bytes: i64,
}

pub async fn top_by_messages(
    db: impl PgExecutor<'_>,
    limit: i64,
) -> sqlx::Result<Vec<RoomFigures>> {
    sqlx::query_as(TOP_BY_MESSAGES)
        .bind(limit)
        .fetch_all(db)
        .await
}

pub async fn top_by_storage(db: impl PgExecutor<'_>, limit: i64) -> sqlx::Result<Vec<RoomFigures>> {
    sqlx::query_as(TOP_BY_STORAGE)
        .bind(limit)
        .fetch_all(db)
        .await
}

/// History segments in the bucket, one row each in `chat_archive_segments` (a segment holds
/// up to `ARCHIVE_BATCH` messages, so this counts a table about a thousandth the size of the
/// messages', through its primary key).
pub const ARCHIVED_SEGMENTS: &str = r#"
    SELECT count(*) FROM chat_archive_segments
"#;

pub async fn archived_segments(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar(ARCHIVED_SEGMENTS).fetch_one(db).await
}
