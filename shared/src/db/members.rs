//! Queries on `chat_room_members`. Every change bumps the room's `members_version`, which
//! the stream hub watches to end the streams of removed members.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::domain::RoomId;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub user_email: String,
    pub added_at: DateTime<Utc>,
}

/// The members of room `$1`, by email: a range of `chat_room_members_pkey`.
pub const LIST_MEMBERS: &str = r#"
    SELECT user_email, added_at
    FROM chat_room_members
    WHERE room_id = $1
    ORDER BY user_email
"#;

pub async fn list_members(db: impl PgExecutor<'_>, room: &RoomId) -> sqlx::Result<Vec<MemberRow>> {
    sqlx::query_as(LIST_MEMBERS)
        .bind(room.as_str())
        .fetch_all(db)
        .await
}

/// Adds `$2` to room `$1` (added by `$3`) and, only if the row is new, bumps the room's
/// `members_version`, in one statement. Returns exactly one row: the new member with `true`,
/// or the existing one, left as is, with `false`.
pub const ADD_MEMBER: &str = r#"
    WITH added AS (
        INSERT INTO chat_room_members (room_id, user_email, added_by)
        VALUES ($1, $2, $3)
        ON CONFLICT (room_id, user_email) DO NOTHING
        RETURNING user_email, added_at
    ), bumped AS (
        UPDATE chat_rooms SET members_version = members_version + 1
        WHERE id = $1 AND EXISTS (SELECT 1 FROM added)
    )
    SELECT user_email, added_at, true FROM added
    UNION ALL
    SELECT user_email, added_at, false FROM chat_room_members
    WHERE room_id = $1 AND user_email = $2 AND NOT EXISTS (SELECT 1 FROM added)
"#;

/// Adds a member; returns the row and whether it is new (an existing member is left as is).
pub async fn add_member(
    db: impl PgExecutor<'_>,
    room: &RoomId,
    email: &str,
    added_by: &str,
) -> sqlx::Result<(MemberRow, bool)> {
    sqlx::query_as::<_, (String, DateTime<Utc>, bool)>(ADD_MEMBER)
        .bind(room.as_str())
        .bind(email)
        .bind(added_by)
        .fetch_one(db)
        .await
        .map(|(user_email, added_at, created)| {
            (
                MemberRow {
                    user_email,
                    added_at,
                },
                created,
            )
        })
}

/// Removes `$2` from room `$1` and, only if they were a member, bumps the room's
/// `members_version` (so the stream hub ends their open streams), in one statement. Returns
/// whether a row was removed.
pub const REMOVE_MEMBER: &str = r#"
    WITH removed AS (
        DELETE FROM chat_room_members WHERE room_id = $1 AND user_email = $2 RETURNING 1
    ), bumped AS (
        UPDATE chat_rooms SET members_version = members_version + 1
        WHERE id = $1 AND EXISTS (SELECT 1 FROM removed)
    )
    SELECT EXISTS (SELECT 1 FROM removed)
"#;

/// Removes a member; `false` when they were not one.
pub async fn remove_member(
    db: impl PgExecutor<'_>,
    room: &RoomId,
    email: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(REMOVE_MEMBER)
        .bind(room.as_str())
        .bind(email)
        .fetch_one(db)
        .await
}
