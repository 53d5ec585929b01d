//! Queries on `chat_rooms`, and who may see a room.
//!
//! A room is visible to a user when it is public, owned by them, or has them as a member:
//! `r.visibility = 'public' OR r.created_by = $user OR EXISTS (a chat_room_members row)`.
//! Every statement that reads or writes a room on a user's behalf spells that condition
//! out, here and in the other `db` modules. A private room is invisible, not forbidden, to
//! everyone else, so its existence is not leaked.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::db::limits::RateLimit;
use crate::domain::{RoomId, RoomName, Visibility};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoomRow {
    pub id: String,
    pub name: String,
    pub visibility: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub last_seq: i64,
    /// Bumped on every membership change (the stream hub watches it).
    pub members_version: i64,
}

/// The most rooms `GET /api/rooms` returns.
pub const LIST_LIMIT: i64 = 1000;

/// What creating a room did: the room (columns all `NULL` when the id was taken or the
/// bucket was empty) and the creator's bucket.
#[derive(Debug, sqlx::FromRow)]
pub struct CreateOutcome {
    id: Option<String>,
    name: Option<String>,
    visibility: Option<String>,
    created_by: Option<String>,
    created_at: Option<DateTime<Utc>>,
    last_seq: Option<i64>,
    members_version: Option<i64>,
    pub tokens_left: Option<f64>,
    pub tokens_before: Option<f64>,
}

impl CreateOutcome {
    pub fn room(&self) -> Option<RoomRow> {
        Some(RoomRow {
            id: self.id.clone()?,
            name: self.name.clone()?,
            visibility: self.visibility.clone()?,
            created_by: self.created_by.clone()?,
            created_at: self.created_at?,
            last_seq: self.last_seq?,
            members_version: self.members_version?,
        })
    }
}

/// Creates room `$1` named `$2` with visibility `$3`, owned by `$4`, in ONE statement that
/// also takes a token from the creator's room bucket: action `$5`, capacity `$6`, refill
/// `$7` tokens per second.
///
/// - `quota` takes a token from the bucket (`user_email`, `action`) in `chat_rate_limits`,
///   refilled for the time since its last take and capped at the capacity; it returns the
///   tokens left, or no row when fewer than one is there, and then no room is inserted.
/// - `room` inserts the room unless the id is taken (`ON CONFLICT DO NOTHING`: no error,
///   just no row).
/// - `tokens_left` and `tokens_before` (the bucket as it stood before this statement,
///   refilled to now) feed [`RateLimit::outcome`].
///
/// The outer `LEFT JOIN` on one row makes it return exactly one row: the room's columns are
/// all `NULL` when nothing was inserted.
pub const INSERT_ROOM: &str = r#"
    WITH quota AS (
        INSERT INTO chat_rate_limits AS b (user_email, action, tokens, updated_at)
        VALUES ($4, $5, $6 - 1, now())
        ON CONFLICT (user_email, action) DO UPDATE
        SET tokens = LEAST($6, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $7) - 1,
            updated_at = GREATEST(now(), b.updated_at)
        WHERE LEAST($6, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $7) >= 1
        RETURNING tokens
    ), room AS (
        INSERT INTO chat_rooms (id, name, visibility, created_by)
        SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM quota)
        ON CONFLICT (id) DO NOTHING
        RETURNING id, name, visibility, created_by, created_at, last_seq, members_version
    )
    SELECT room.id, room.name, room.visibility, room.created_by, room.created_at, room.last_seq,
           room.members_version,
           (SELECT tokens FROM quota) AS tokens_left,
           (SELECT LEAST($6, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $7)
            FROM chat_rate_limits b WHERE b.user_email = $4 AND b.action = $5) AS tokens_before
    FROM (SELECT 1) AS one LEFT JOIN room ON true
"#;

/// Inserts a room owned by `created_by`, taking a token from their bucket, in one statement
/// ([`INSERT_ROOM`]). `room` is `None` when the id is taken or the bucket is empty.
pub async fn insert_room(
    db: impl PgExecutor<'_>,
    id: &RoomId,
    name: &RoomName,
    visibility: Visibility,
    created_by: &str,
    limit: &RateLimit,
) -> sqlx::Result<CreateOutcome> {
    sqlx::query_as(INSERT_ROOM)
        .bind(id.as_str())
        .bind(name.as_str())
        .bind(visibility.as_str())
        .bind(created_by)
        .bind(limit.action)
        .bind(limit.capacity())
        .bind(limit.refill_per_sec())
        .fetch_one(db)
        .await
}

/// The rooms user `$1` may see, in id order (`chat_rooms_pkey`), at most `$2`.
pub const LIST_ROOMS: &str = r#"
    SELECT r.id, r.name, r.visibility, r.created_by, r.created_at, r.last_seq, r.members_version
    FROM chat_rooms r
    WHERE (r.visibility = 'public' OR r.created_by = $1
           OR EXISTS (SELECT 1 FROM chat_room_members mm
                      WHERE mm.room_id = r.id AND mm.user_email = $1))
    ORDER BY r.id
    LIMIT $2
"#;

/// The rooms `user` may see, in id order, at most [`LIST_LIMIT`].
pub async fn list_rooms(db: impl PgExecutor<'_>, user: &str) -> sqlx::Result<Vec<RoomRow>> {
    sqlx::query_as(LIST_ROOMS)
        .bind(user)
        .bind(LIST_LIMIT)
        .fetch_all(db)
        .await
}

/// Room `$1`, by `chat_rooms_pkey`, if user `$2` may see it; no row otherwise.
pub const FIND_VISIBLE: &str = r#"
    SELECT r.id, r.name, r.visibility, r.created_by, r.created_at, r.last_seq, r.members_version
    FROM chat_rooms r
    WHERE r.id = $1
      AND (r.visibility = 'public' OR r.created_by = $2
           OR EXISTS (SELECT 1 FROM chat_room_members mm
                      WHERE mm.room_id = r.id AND mm.user_email = $2))
"#;

/// The room as `user` sees it: `None` when it does not exist or is not visible to them.
pub async fn find_visible(
    db: impl PgExecutor<'_>,
    id: &RoomId,
    user: &str,
) -> sqlx::Result<Option<RoomRow>> {
    sqlx::query_as(FIND_VISIBLE)
        .bind(id.as_str())
        .bind(user)
        .fetch_optional(db)
        .await
}

/// What the stream hub reads of each watched room every tick.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoomHead {
    pub id: String,
    pub last_seq: i64,
    pub members_version: i64,
}

/// The head of each room among `$1` that exists, by `chat_rooms_pkey`.
pub const HEADS: &str = r#"
    SELECT id, last_seq, members_version FROM chat_rooms WHERE id = ANY($1)
"#;

/// The head of each of `ids` that exists: the hub's one query per tick.
pub async fn heads(db: impl PgExecutor<'_>, ids: &[String]) -> sqlx::Result<Vec<RoomHead>> {
    sqlx::query_as(HEADS).bind(ids).fetch_all(db).await
}

/// Room `$1`'s visibility and everyone who may read it were it private: its members, then
/// its owner. No row for a missing room.
pub const PRIVATE_READERS: &str = r#"
    SELECT r.visibility,
           array_append(ARRAY(SELECT user_email FROM chat_room_members WHERE room_id = r.id), r.created_by)
    FROM chat_rooms r
    WHERE r.id = $1
"#;

/// Who may read a private room now (owner and members); `None` for a public or missing room.
pub async fn private_readers(
    db: impl PgExecutor<'_>,
    id: &str,
) -> sqlx::Result<Option<Vec<String>>> {
    let readers: Option<(String, Vec<String>)> = sqlx::query_as(PRIVATE_READERS)
        .bind(id)
        .fetch_optional(db)
        .await?;
    Ok(readers.and_then(|(visibility, emails)| (visibility == "private").then_some(emails)))
}
