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
    /// The room's newest log event (a post, edit, reaction change or delete).
    pub last_event: i64,
    /// Bumped on every membership change (the stream hub watches it).
    pub members_version: i64,
    /// The highest seq in the room's archive segments (read by [`FIND_VISIBLE`] only).
    #[sqlx(default)]
    pub archived_seq: i64,
    /// The newest event id that left the hot log (archived or deleted by retention): a
    /// stream resuming before it is told `reset` (read by [`FIND_VISIBLE`] only).
    #[sqlx(default)]
    pub history_floor: i64,
}

/// A room in `GET /api/rooms`, with the caller's read mark.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoomListRow {
    #[sqlx(flatten)]
    pub room: RoomRow,
    pub last_read_seq: i64,
    pub unread: i64,
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
    last_event: Option<i64>,
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
            last_event: self.last_event?,
            members_version: self.members_version?,
            archived_seq: 0,
            history_floor: 0,
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
        RETURNING id, name, visibility, created_by, created_at, last_seq, last_event, members_version
    )
    SELECT room.id, room.name, room.visibility, room.created_by, room.created_at, room.last_seq,
           room.last_event, room.members_version,
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

/// The rooms user `$1` may see, in id order (`chat_rooms_pkey`), at most `$2`, each with
/// the user's read mark (`chat_read_marks_pkey`) and unread count.
///
/// `unread` costs no scan of the room's messages: the author's mark moves to each of their
/// posts, so no message of theirs lies after it, and the messages after the mark are
/// `last_seq - last_read_seq` (seqs have no gaps), less the tombstones after it, counted
/// through the partial index `chat_messages_deleted` (deleted messages only).
pub const LIST_ROOMS: &str = r#"
    SELECT r.id, r.name, r.visibility, r.created_by, r.created_at, r.last_seq, r.last_event,
           r.members_version, COALESCE(k.last_read_seq, 0) AS last_read_seq,
           GREATEST(0, r.last_seq - COALESCE(k.last_read_seq, 0)
                       - (SELECT count(*) FROM chat_messages d
                          WHERE d.room_id = r.id AND d.seq > COALESCE(k.last_read_seq, 0)
                            AND d.deleted_at IS NOT NULL)) AS unread
    FROM chat_rooms r
    LEFT JOIN chat_read_marks k ON k.room_id = r.id AND k.user_email = $1
    WHERE (r.visibility = 'public' OR r.created_by = $1
           OR EXISTS (SELECT 1 FROM chat_room_members mm
                      WHERE mm.room_id = r.id AND mm.user_email = $1))
    ORDER BY r.id
    LIMIT $2
"#;

/// The rooms `user` may see, in id order, at most [`LIST_LIMIT`].
pub async fn list_rooms(db: impl PgExecutor<'_>, user: &str) -> sqlx::Result<Vec<RoomListRow>> {
    sqlx::query_as(LIST_ROOMS)
        .bind(user)
        .bind(LIST_LIMIT)
        .fetch_all(db)
        .await
}

/// Room `$1`, by `chat_rooms_pkey`, if user `$2` may see it; no row otherwise.
pub const FIND_VISIBLE: &str = r#"
    SELECT r.id, r.name, r.visibility, r.created_by, r.created_at, r.last_seq, r.last_event,
           r.members_version, r.archived_seq, r.history_floor
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
#[derive(Debug, Clone)]
pub struct RoomHead {
    pub id: String,
    /// The newest log event.
    pub last_event: i64,
    pub members_version: i64,
    /// Kept fresh in the hub's state of the room, so a stream opened from it is reset as
    /// one opened by a lookup would be.
    pub history_floor: i64,
}

/// A read mark that moved, as the tick reads it.
#[derive(Debug, Clone)]
pub struct MovedMark {
    pub room_id: String,
    pub user_email: String,
    pub last_read_seq: i64,
}

/// The stream hub's one statement per tick, two reads in one round trip: the head
/// (`last_event`, `members_version`, `history_floor`) of each room among `$1` that exists, by
/// `chat_rooms_pkey`; and the read marks of users `$2` that moved after `$3`, through
/// `chat_read_marks_user_updated`. A `head` row has no user; a `mark` row carries the mark
/// in `n`.
pub const TICK: &str = r#"
    SELECT 'head' AS kind, r.id AS room_id, NULL::text AS user_email, r.last_event AS n,
           r.members_version, r.history_floor
    FROM chat_rooms r WHERE r.id = ANY($1)
    UNION ALL
    SELECT 'mark', k.room_id, k.user_email, k.last_read_seq, 0, 0
    FROM chat_read_marks k WHERE k.user_email = ANY($2) AND k.updated_at > $3
"#;

/// The heads of `ids` that exist, and the marks of `users` that moved after `since`.
pub async fn tick(
    db: impl PgExecutor<'_>,
    ids: &[String],
    users: &[String],
    since: DateTime<Utc>,
) -> sqlx::Result<(Vec<RoomHead>, Vec<MovedMark>)> {
    let rows: Vec<(String, String, Option<String>, i64, i64, i64)> = sqlx::query_as(TICK)
        .bind(ids)
        .bind(users)
        .bind(since)
        .fetch_all(db)
        .await?;
    let (mut heads, mut marks) = (Vec::new(), Vec::new());
    for (kind, room_id, user_email, n, members_version, history_floor) in rows {
        match (kind.as_str(), user_email) {
            ("mark", Some(user_email)) => marks.push(MovedMark {
                room_id,
                user_email,
                last_read_seq: n,
            }),
            _ => heads.push(RoomHead {
                id: room_id,
                last_event: n,
                members_version,
                history_floor,
            }),
        }
    }
    Ok((heads, marks))
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

/// An instance's presence heartbeat, one statement: upserts every (room, user) pair it
/// holds a stream for (`$2`, `$3`, with `since` in `$4`) to expire `$5` seconds from now,
/// deletes its own pairs it no longer holds, sweeps other instances' expired rows, and
/// returns the other instances' live entries on the rooms it watches (`$6`), so the hub
/// learns who joined or left elsewhere without a statement of its own. The read sees the
/// table as it was before this statement's writes, which touch only this instance's rows
/// and expired ones.
pub const PRESENCE_HEARTBEAT: &str = r#"
    WITH held AS (
        SELECT h.room_id, h.user_email, h.since
        FROM unnest($2::text[], $3::text[], $4::timestamptz[]) AS h(room_id, user_email, since)
    ), gone AS (
        DELETE FROM chat_presence p
        WHERE (p.instance_id = $1
               AND NOT EXISTS (SELECT 1 FROM held h
                               WHERE h.room_id = p.room_id AND h.user_email = p.user_email))
           OR (p.instance_id <> $1 AND p.expires_at < now())
    ), written AS (
        INSERT INTO chat_presence (room_id, user_email, instance_id, since, expires_at)
        SELECT h.room_id, h.user_email, $1, h.since, now() + make_interval(secs => $5)
        FROM held h
        ON CONFLICT (room_id, user_email, instance_id)
        DO UPDATE SET expires_at = excluded.expires_at
    )
    SELECT p.room_id, p.user_email, p.instance_id
    FROM chat_presence p
    WHERE p.room_id = ANY($6::text[]) AND p.instance_id <> $1 AND p.expires_at > now()
"#;

/// One live presence entry of another instance: (room, user, instance).
pub type PresenceEntry = (String, String, String);

/// Writes this instance's presence and reads the others' on `watched`: see
/// [`PRESENCE_HEARTBEAT`].
pub async fn presence_heartbeat(
    db: impl PgExecutor<'_>,
    instance: &str,
    held: &[(String, String, DateTime<Utc>)],
    ttl: std::time::Duration,
    watched: &[String],
) -> sqlx::Result<Vec<PresenceEntry>> {
    let rooms: Vec<&str> = held.iter().map(|(r, _, _)| r.as_str()).collect();
    let users: Vec<&str> = held.iter().map(|(_, u, _)| u.as_str()).collect();
    let since: Vec<DateTime<Utc>> = held.iter().map(|(_, _, s)| *s).collect();
    sqlx::query_as(PRESENCE_HEARTBEAT)
        .bind(instance)
        .bind(rooms)
        .bind(users)
        .bind(since)
        .bind(ttl.as_secs_f64())
        .bind(watched)
        .fetch_all(db)
        .await
}

/// Tells every instance's LISTEN connection of presence changes here, one notification per
/// (`$1` room, `$2` JSON) pair: `presence:<room>:<json>` on `chat_messages`. Never written
/// anywhere.
pub const NOTIFY_PRESENCE: &str = r#"
    SELECT count(pg_notify('chat_messages', 'presence:' || c.room_id || ':' || c.data))
    FROM unnest($1::text[], $2::text[]) AS c(room_id, data)
"#;

pub async fn notify_presence(
    db: impl PgExecutor<'_>,
    changes: &[(String, String)],
) -> sqlx::Result<()> {
    let rooms: Vec<&str> = changes.iter().map(|(r, _)| r.as_str()).collect();
    let data: Vec<&str> = changes.iter().map(|(_, d)| d.as_str()).collect();
    sqlx::query(NOTIFY_PRESENCE)
        .bind(rooms)
        .bind(data)
        .execute(db)
        .await?;
    Ok(())
}

/// Who has an unexpired presence entry on the room, once each, with their earliest `since`.
pub const PRESENCE_ONLINE: &str = r#"
    SELECT p.user_email, min(p.since) AS since
    FROM chat_presence p
    WHERE p.room_id = $1 AND p.expires_at > now()
    GROUP BY p.user_email
    ORDER BY p.user_email
"#;

pub async fn presence_online(
    db: impl PgExecutor<'_>,
    room: &str,
) -> sqlx::Result<Vec<(String, DateTime<Utc>)>> {
    sqlx::query_as(PRESENCE_ONLINE)
        .bind(room)
        .fetch_all(db)
        .await
}

/// Sends a typing event to every instance's LISTEN connection if `$2` may see room `$1`:
/// a row when it was sent, none when the room is not visible to them. Never in the log.
pub const NOTIFY_TYPING: &str = r#"
    SELECT r.id, pg_notify('chat_messages', 'typing:' || r.id || ':' || $3)::text AS sent
    FROM chat_rooms r
    WHERE r.id = $1
      AND (r.visibility = 'public' OR r.created_by = $2
           OR EXISTS (SELECT 1 FROM chat_room_members mm
                      WHERE mm.room_id = r.id AND mm.user_email = $2))
"#;

/// `true` when the room is visible to `user` and the notification went out.
pub async fn notify_typing(
    db: impl PgExecutor<'_>,
    room: &RoomId,
    user: &str,
    data: &str,
) -> sqlx::Result<bool> {
    let row: Option<(String, String)> = sqlx::query_as(NOTIFY_TYPING)
        .bind(room.as_str())
        .bind(user)
        .bind(data)
        .fetch_optional(db)
        .await?;
    Ok(row.is_some())
}
