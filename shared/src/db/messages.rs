//! Queries on `chat_messages` and `chat_message_files`.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::limits::RateLimit;
use crate::domain::{ClientId, FileIds, MessageContent, Page, RoomId};

/// A message with its files, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub id: Uuid,
    pub room_id: String,
    pub seq: i64,
    pub user_email: String,
    pub content: String,
    pub client_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub files: Json<Vec<FileRow>>,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct FileRow {
    pub id: Uuid,
    pub object_key: String,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
}

/// The newest page of room `$1`: at most `$3` messages, newest first (`list_page` reverses
/// them), as user `$4` may see them. `$2` is `0`, so `seq > $2` keeps every message and the
/// statement has the same shape as [`LIST_PAGE_AFTER`].
///
/// The columns are a [`MessageRow`]'s, its files aggregated per row through
/// `idx_chat_message_files_message`: a page and its files in one round trip. The room's
/// visibility does not depend on the row, so Postgres checks it once per statement (an
/// InitPlan on `chat_rooms_pkey`) and a page costs one round trip whoever asks; a room the
/// user may not see yields no rows. Rows come from `chat_messages_room_seq_key`, walked
/// backwards.
pub const LIST_PAGE_LATEST: &str = r#"
    SELECT m.id, m.room_id, m.seq, m.user_email, m.content, m.client_id, m.created_at,
           (SELECT COALESCE(json_agg(json_build_object(
                       'id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                       'content_type', f.content_type, 'size', f.size) ORDER BY f.id), '[]'::json)
            FROM chat_message_files f WHERE f.message_id = m.id) AS files
    FROM chat_messages m
    WHERE m.room_id = $1 AND m.seq > $2
      AND EXISTS (SELECT 1 FROM chat_rooms r
                  WHERE r.id = $1
                    AND (r.visibility = 'public' OR r.created_by = $4
                         OR EXISTS (SELECT 1 FROM chat_room_members mm
                                    WHERE mm.room_id = r.id AND mm.user_email = $4)))
    ORDER BY m.seq DESC
    LIMIT $3
"#;

/// The page of room `$1` just before seq `$2`: at most `$3` messages, newest first
/// (`list_page` reverses them), as user `$4` may see them. Same columns, visibility check
/// and index as [`LIST_PAGE_LATEST`]; only the comparison differs.
pub const LIST_PAGE_BEFORE: &str = r#"
    SELECT m.id, m.room_id, m.seq, m.user_email, m.content, m.client_id, m.created_at,
           (SELECT COALESCE(json_agg(json_build_object(
                       'id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                       'content_type', f.content_type, 'size', f.size) ORDER BY f.id), '[]'::json)
            FROM chat_message_files f WHERE f.message_id = m.id) AS files
    FROM chat_messages m
    WHERE m.room_id = $1 AND m.seq < $2
      AND EXISTS (SELECT 1 FROM chat_rooms r
                  WHERE r.id = $1
                    AND (r.visibility = 'public' OR r.created_by = $4
                         OR EXISTS (SELECT 1 FROM chat_room_members mm
                                    WHERE mm.room_id = r.id AND mm.user_email = $4)))
    ORDER BY m.seq DESC
    LIMIT $3
"#;

/// The page of room `$1` just after seq `$2`: at most `$3` messages, oldest first, as user
/// `$4` may see them. Same columns, visibility check and index as [`LIST_PAGE_LATEST`],
/// walked forwards.
pub const LIST_PAGE_AFTER: &str = r#"
    SELECT m.id, m.room_id, m.seq, m.user_email, m.content, m.client_id, m.created_at,
           (SELECT COALESCE(json_agg(json_build_object(
                       'id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                       'content_type', f.content_type, 'size', f.size) ORDER BY f.id), '[]'::json)
            FROM chat_message_files f WHERE f.message_id = m.id) AS files
    FROM chat_messages m
    WHERE m.room_id = $1 AND m.seq > $2
      AND EXISTS (SELECT 1 FROM chat_rooms r
                  WHERE r.id = $1
                    AND (r.visibility = 'public' OR r.created_by = $4
                         OR EXISTS (SELECT 1 FROM chat_room_members mm
                                    WHERE mm.room_id = r.id AND mm.user_email = $4)))
    ORDER BY m.seq ASC
    LIMIT $3
"#;

/// One page of a room's messages as `user` may see them, in ascending `seq`, and whether
/// more lie beyond it in the direction of travel. Empty when the room is not visible.
/// Reads `limit + 1` rows to learn `has_more` in the same query.
pub async fn list_page(
    db: impl PgExecutor<'_>,
    room: &RoomId,
    user: &str,
    page: Page,
) -> sqlx::Result<(Vec<MessageRow>, bool)> {
    let (sql, cursor, limit, descending) = match page {
        Page::Latest(limit) => (LIST_PAGE_LATEST, 0, limit.get(), true),
        Page::Before(cursor, limit) => (LIST_PAGE_BEFORE, cursor.get(), limit.get(), true),
        Page::After(cursor, limit) => (LIST_PAGE_AFTER, cursor.get(), limit.get(), false),
    };
    let mut rows: Vec<MessageRow> = sqlx::query_as(sql)
        .bind(room.as_str())
        .bind(cursor)
        .bind(limit + 1)
        .bind(user)
        .fetch_all(db)
        .await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    if descending {
        rows.reverse();
    }
    Ok((rows, has_more))
}

/// The messages of room `$1` with `$2 < seq <= $3`, oldest first, at most `$4`, with the
/// columns of [`LIST_PAGE_LATEST`], through `chat_messages_room_seq_key`. No visibility
/// check: the stream reads it for subscribers already let into the room (the hub once for
/// all of a room's subscribers, or one subscriber catching up).
pub const LIST_RANGE: &str = r#"
    SELECT m.id, m.room_id, m.seq, m.user_email, m.content, m.client_id, m.created_at,
           (SELECT COALESCE(json_agg(json_build_object(
                       'id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                       'content_type', f.content_type, 'size', f.size) ORDER BY f.id), '[]'::json)
            FROM chat_message_files f WHERE f.message_id = m.id) AS files
    FROM chat_messages m
    WHERE m.room_id = $1 AND m.seq > $2 AND m.seq <= $3
    ORDER BY m.seq ASC
    LIMIT $4
"#;

/// Messages with `after < seq <= up_to`, oldest first, at most `limit`.
pub async fn list_range(
    db: impl PgExecutor<'_>,
    room: &str,
    after: i64,
    up_to: i64,
    limit: i64,
) -> sqlx::Result<Vec<MessageRow>> {
    sqlx::query_as(LIST_RANGE)
        .bind(room)
        .bind(after)
        .bind(up_to)
        .bind(limit)
        .fetch_all(db)
        .await
}

/// [`LIST_RANGE`] for the stream hub, with the room's `members_version` on every row, read in
/// the same statement (one snapshot): a message committed after a membership change comes
/// with the bumped version, so the hub re-reads who may see the room before it sends it.
pub const HUB_RANGE: &str = r#"
    SELECT m.id, m.room_id, m.seq, m.user_email, m.content, m.client_id, m.created_at,
           (SELECT COALESCE(json_agg(json_build_object(
                       'id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                       'content_type', f.content_type, 'size', f.size) ORDER BY f.id), '[]'::json)
            FROM chat_message_files f WHERE f.message_id = m.id) AS files,
           (SELECT r.members_version FROM chat_rooms r WHERE r.id = $1) AS members_version
    FROM chat_messages m
    WHERE m.room_id = $1 AND m.seq > $2 AND m.seq <= $3
    ORDER BY m.seq ASC
    LIMIT $4
"#;

/// A row of [`HUB_RANGE`].
#[derive(Debug, sqlx::FromRow)]
pub struct HubRow {
    #[sqlx(flatten)]
    pub message: MessageRow,
    pub members_version: i64,
}

/// [`list_range`] with the room's membership version (the stream hub's read).
pub async fn hub_range(
    db: impl PgExecutor<'_>,
    room: &str,
    after: i64,
    up_to: i64,
    limit: i64,
) -> sqlx::Result<Vec<HubRow>> {
    sqlx::query_as(HUB_RANGE)
        .bind(room)
        .bind(after)
        .bind(up_to)
        .bind(limit)
        .fetch_all(db)
        .await
}

/// The message of room `$1` sent with client id `$2`, through
/// `chat_messages_room_client_id_key`, if user `$3` may see the room (the visibility check
/// of [`LIST_PAGE_LATEST`]); with its columns. A retried send answers with it.
pub const FIND_BY_CLIENT_ID: &str = r#"
    SELECT m.id, m.room_id, m.seq, m.user_email, m.content, m.client_id, m.created_at,
           (SELECT COALESCE(json_agg(json_build_object(
                       'id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                       'content_type', f.content_type, 'size', f.size) ORDER BY f.id), '[]'::json)
            FROM chat_message_files f WHERE f.message_id = m.id) AS files
    FROM chat_messages m
    WHERE m.room_id = $1 AND m.client_id = $2 AND m.user_email = $3
      AND EXISTS (SELECT 1 FROM chat_rooms r
                  WHERE r.id = $1
                    AND (r.visibility = 'public' OR r.created_by = $3
                         OR EXISTS (SELECT 1 FROM chat_room_members mm
                                    WHERE mm.room_id = r.id AND mm.user_email = $3)))
"#;

/// The stored message `user` sent with `client_id` in `room`, if they may still see the
/// room. Another author's message under the same key is never returned.
pub async fn find_by_client_id(
    db: impl PgExecutor<'_>,
    room: &RoomId,
    user: &str,
    client_id: ClientId,
) -> sqlx::Result<Option<MessageRow>> {
    sqlx::query_as(FIND_BY_CLIENT_ID)
        .bind(room.as_str())
        .bind(client_id)
        .bind(user)
        .fetch_optional(db)
        .await
}

/// A message to store.
pub struct NewMessage<'a> {
    pub id: Uuid,
    pub room: &'a RoomId,
    pub user_email: &'a str,
    pub content: &'a MessageContent,
    pub client_id: Option<ClientId>,
    pub file_ids: &'a FileIds,
}

/// What the insert did.
#[derive(Debug, sqlx::FromRow)]
pub struct InsertOutcome {
    /// The assigned seq; `None` when nothing was stored (unknown or hidden room, or no
    /// token left in the author's bucket).
    pub seq: Option<i64>,
    pub created_at: Option<DateTime<Utc>>,
    /// How many of the requested uploads were attached.
    pub attached: i64,
    pub tokens_left: Option<f64>,
    pub tokens_before: Option<f64>,
}

/// The name of the unique index a repeated `client_id` violates.
pub const CLIENT_ID_KEY: &str = "chat_messages_room_client_id_key";

/// Stores a message in ONE statement; the binds are room `$1`, message id `$2`, author
/// `$3`, content `$4`, client id `$5`, upload ids `$6`, and the author's post bucket:
/// action `$7`, capacity `$8`, refill `$9` tokens per second.
///
/// - `quota` takes a token from the bucket (`user_email`, `action`), refilled for the time
///   since its last take and capped at the capacity; it returns the tokens left, or no row
///   when fewer than one is there, and then nothing below happens. The bucket lives in
///   `chat_rate_limits`, so it holds across every instance, and taking it here costs no
///   extra round trip.
/// - `room` bumps the room's `last_seq`, if the author may see the room (public, theirs, or
///   with them as a member; a hidden room is treated as missing). Its row lock serialises
///   the room's writers until commit, so commit order equals seq order and seqs have no
///   gaps.
/// - `message` inserts the message with that seq.
/// - `attached` and `files` move the author's pending uploads for this room among `$6`
///   into `chat_message_files`, under the key the send copied their bytes to
///   (`storage::attached_key`: `attached/` + the staging key); the `attached` column counts
///   them.
/// - `pg_notify` tells listeners `room:seq`; Postgres delivers it at commit, so no one
///   hears of a message they cannot read yet.
/// - `tokens_left` and `tokens_before` (the bucket as it stood before this statement,
///   refilled to now, whether or not a token was taken) feed [`RateLimit::outcome`].
///
/// The outer `LEFT JOIN` on one row makes the statement return exactly one row even when
/// nothing was stored. A repeated client id fails the whole statement with a unique
/// violation of [`CLIENT_ID_KEY`], so the bumped seq and the token are undone with it.
/// Outside a transaction this is a single autocommit round trip: the room lock is never
/// held across the network.
pub const INSERT_MESSAGE: &str = r#"
    WITH quota AS (
        INSERT INTO chat_rate_limits AS b (user_email, action, tokens, updated_at)
        VALUES ($3, $7, $8 - 1, now())
        ON CONFLICT (user_email, action) DO UPDATE
        SET tokens = LEAST($8, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $9) - 1,
            updated_at = GREATEST(now(), b.updated_at)
        WHERE LEAST($8, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $9) >= 1
        RETURNING tokens
    ), room AS (
        UPDATE chat_rooms r SET last_seq = r.last_seq + 1
        WHERE r.id = $1 AND EXISTS (SELECT 1 FROM quota)
          AND (r.visibility = 'public' OR r.created_by = $3
               OR EXISTS (SELECT 1 FROM chat_room_members mm
                          WHERE mm.room_id = r.id AND mm.user_email = $3))
        RETURNING r.last_seq
    ), message AS (
        INSERT INTO chat_messages (id, room_id, seq, user_email, content, client_id)
        SELECT $2, $1, room.last_seq, $3, $4, $5 FROM room
        RETURNING id, seq, created_at
    ), attached AS (
        DELETE FROM chat_uploads u
        USING message
        WHERE u.id = ANY($6) AND u.room_id = $1 AND u.user_email = $3
        RETURNING u.id, message.id AS message_id, 'attached/' || u.object_key AS object_key,
                  u.file_name, u.content_type, u.size
    ), files AS (
        INSERT INTO chat_message_files (id, message_id, object_key, file_name, content_type, size)
        SELECT id, message_id, object_key, file_name, content_type, size FROM attached
        RETURNING id
    )
    SELECT message.seq, message.created_at, (SELECT count(*) FROM files) AS attached,
           CASE WHEN message.seq IS NOT NULL
                THEN pg_notify('chat_messages', $1 || ':' || message.seq) END AS notified,
           (SELECT tokens FROM quota) AS tokens_left,
           (SELECT LEAST($8, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $9)
            FROM chat_rate_limits b WHERE b.user_email = $3 AND b.action = $7) AS tokens_before
    FROM (SELECT 1) AS one LEFT JOIN message ON true
"#;

/// Stores a message in ONE statement ([`INSERT_MESSAGE`]): take a token from the author's
/// post bucket, bump the room's `last_seq`, insert the message with that seq, move its
/// uploads into `chat_message_files`, and notify listeners (delivered at commit).
///
/// A repeated `client_id` fails the whole statement with a unique violation of
/// [`CLIENT_ID_KEY`], so the bumped seq and the token are undone with it. Outside a
/// transaction this is a single autocommit round trip: the room lock is never held across
/// the network.
pub async fn insert_message(
    db: impl PgExecutor<'_>,
    message: &NewMessage<'_>,
    limit: &RateLimit,
) -> sqlx::Result<InsertOutcome> {
    sqlx::query_as(INSERT_MESSAGE)
        .bind(message.room.as_str())
        .bind(message.id)
        .bind(message.user_email)
        .bind(message.content.as_str())
        .bind(message.client_id)
        .bind(message.file_ids.as_slice())
        .bind(limit.action)
        .bind(limit.capacity())
        .bind(limit.refill_per_sec())
        .fetch_one(db)
        .await
}
