//! Queries on `chat_rooms`, and who may see a room.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::db::limits::{RateLimit, quota_columns, take_token};
use crate::domain::{RoomId, RoomName, Visibility};

/// `room` (an alias of `chat_rooms`) is visible to `user` (a bind parameter): public, owned
/// by them, or with them as a member. A private room is invisible, not forbidden, to
/// everyone else, so its existence is not leaked.
macro_rules! visible_to {
    ($room:literal, $user:literal) => {
        concat!(
            "(",
            $room,
            ".visibility = 'public' OR ",
            $room,
            ".created_by = ",
            $user,
            " OR EXISTS (SELECT 1 FROM chat_room_members mm WHERE mm.room_id = ",
            $room,
            ".id AND mm.user_email = ",
            $user,
            "))"
        )
    };
}
pub(crate) use visible_to;

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

/// Inserts a room owned by `created_by`, taking a token from their bucket, in one statement.
/// `room` is `None` when the id is taken or the bucket is empty.
pub async fn insert_room(
    db: impl PgExecutor<'_>,
    id: &RoomId,
    name: &RoomName,
    visibility: Visibility,
    created_by: &str,
    limit: &RateLimit,
) -> sqlx::Result<CreateOutcome> {
    sqlx::query_as(concat!(
        "WITH ",
        take_token!("$4", "$5", "$6", "$7"),
        r#", room AS (
            INSERT INTO chat_rooms (id, name, visibility, created_by)
            SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM quota)
            ON CONFLICT (id) DO NOTHING
            RETURNING id, name, visibility, created_by, created_at, last_seq, members_version
        )
        SELECT room.id, room.name, room.visibility, room.created_by, room.created_at, room.last_seq,
               room.members_version, "#,
        quota_columns!("$4", "$5", "$6", "$7"),
        r#"
        FROM (SELECT 1) AS one LEFT JOIN room ON true
        "#
    ))
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

/// The rooms `user` may see, in id order, at most [`LIST_LIMIT`].
pub async fn list_rooms(db: impl PgExecutor<'_>, user: &str) -> sqlx::Result<Vec<RoomRow>> {
    sqlx::query_as(concat!(
        "SELECT r.id, r.name, r.visibility, r.created_by, r.created_at, r.last_seq, r.members_version
         FROM chat_rooms r WHERE ",
        visible_to!("r", "$1"),
        " ORDER BY r.id LIMIT $2"
    ))
    .bind(user)
    .bind(LIST_LIMIT)
    .fetch_all(db)
    .await
}

/// The room as `user` sees it: `None` when it does not exist or is not visible to them.
pub async fn find_visible(
    db: impl PgExecutor<'_>,
    id: &RoomId,
    user: &str,
) -> sqlx::Result<Option<RoomRow>> {
    sqlx::query_as(concat!(
        "SELECT r.id, r.name, r.visibility, r.created_by, r.created_at, r.last_seq, r.members_version
         FROM chat_rooms r WHERE r.id = $1 AND ",
        visible_to!("r", "$2")
    ))
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

/// The head of each of `ids` that exists: the hub's one query per tick.
pub async fn heads(db: impl PgExecutor<'_>, ids: &[String]) -> sqlx::Result<Vec<RoomHead>> {
    sqlx::query_as("SELECT id, last_seq, members_version FROM chat_rooms WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(db)
        .await
}

/// Who may read a private room now (owner and members); `None` for a public or missing room.
pub async fn private_readers(
    db: impl PgExecutor<'_>,
    id: &str,
) -> sqlx::Result<Option<Vec<String>>> {
    let readers: Option<(String, Vec<String>)> = sqlx::query_as(
        r#"
        SELECT r.visibility,
               array_append(ARRAY(SELECT user_email FROM chat_room_members WHERE room_id = r.id), r.created_by)
        FROM chat_rooms r WHERE r.id = $1
        "#,
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(readers.and_then(|(visibility, emails)| (visibility == "private").then_some(emails)))
}
