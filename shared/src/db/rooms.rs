//! Queries on `chat_rooms`.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::domain::{RoomId, RoomName};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoomRow {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_seq: i64,
}

/// The most rooms `GET /api/rooms` returns.
pub const LIST_LIMIT: i64 = 1000;

/// Inserts a room; `None` when the id is taken.
pub async fn insert_room(
    db: impl PgExecutor<'_>,
    id: &RoomId,
    name: &RoomName,
    created_by: &str,
) -> sqlx::Result<Option<RoomRow>> {
    sqlx::query_as(
        r#"
        INSERT INTO chat_rooms (id, name, created_by)
        VALUES ($1, $2, $3)
        ON CONFLICT (id) DO NOTHING
        RETURNING id, name, created_at, last_seq
        "#,
    )
    .bind(id.as_str())
    .bind(name.as_str())
    .bind(created_by)
    .fetch_optional(db)
    .await
}

/// Rooms in id order, at most [`LIST_LIMIT`].
pub async fn list_rooms(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<RoomRow>> {
    sqlx::query_as(
        r#"
        SELECT id, name, created_at, last_seq
        FROM chat_rooms
        ORDER BY id
        LIMIT $1
        "#,
    )
    .bind(LIST_LIMIT)
    .fetch_all(db)
    .await
}

/// The room's newest seq, or `None` for an unknown room.
pub async fn last_seq(db: impl PgExecutor<'_>, id: &RoomId) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT last_seq FROM chat_rooms WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(db)
        .await
}

/// The `last_seq` of each of `ids` that exists: the hub's one query per tick.
pub async fn last_seqs(
    db: impl PgExecutor<'_>,
    ids: &[String],
) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as("SELECT id, last_seq FROM chat_rooms WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(db)
        .await
}
