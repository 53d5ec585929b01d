//! Queries on `chat_messages` and `chat_message_files`.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::limits::{RateLimit, quota_columns, take_token};
use crate::db::rooms::visible_to;
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

/// The columns of a [`MessageRow`] from `chat_messages m`, files aggregated per row
/// through `idx_chat_message_files_message`: a page and its files in one round trip.
macro_rules! message_columns {
    () => {
        r#"
        m.id, m.room_id, m.seq, m.user_email, m.content, m.client_id, m.created_at,
        (SELECT COALESCE(json_agg(json_build_object(
                    'id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                    'content_type', f.content_type, 'size', f.size) ORDER BY f.id), '[]'::json)
         FROM chat_message_files f WHERE f.message_id = m.id) AS files
        "#
    };
}

/// One page of a room's messages, in ascending `seq`, and whether more lie beyond it in
/// the direction of travel. Reads `limit + 1` rows to learn `has_more` in the same query.
/// `$1`'s room is visible to the user bound at `$user`: checked once per statement (an
/// InitPlan), so a page costs one round trip whoever asks.
macro_rules! room_visible {
    ($user:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM chat_rooms r WHERE r.id = $1 AND ",
            visible_to!("r", $user),
            ")"
        )
    };
}

/// One page of a room's messages as `user` may see them, in ascending `seq`, and whether
/// more lie beyond it in the direction of travel. Empty when the room is not visible.
pub async fn list_page(
    db: impl PgExecutor<'_>,
    room: &RoomId,
    user: &str,
    page: Page,
) -> sqlx::Result<(Vec<MessageRow>, bool)> {
    let (sql, cursor, limit, descending) = match page {
        Page::Latest(limit) => (
            concat!(
                "SELECT ",
                message_columns!(),
                " FROM chat_messages m WHERE m.room_id = $1 AND m.seq > $2 AND ",
                room_visible!("$4"),
                " ORDER BY m.seq DESC LIMIT $3"
            ),
            0,
            limit.get(),
            true,
        ),
        Page::Before(cursor, limit) => (
            concat!(
                "SELECT ",
                message_columns!(),
                " FROM chat_messages m WHERE m.room_id = $1 AND m.seq < $2 AND ",
                room_visible!("$4"),
                " ORDER BY m.seq DESC LIMIT $3"
            ),
            cursor.get(),
            limit.get(),
            true,
        ),
        Page::After(cursor, limit) => (
            concat!(
                "SELECT ",
                message_columns!(),
                " FROM chat_messages m WHERE m.room_id = $1 AND m.seq > $2 AND ",
                room_visible!("$4"),
                " ORDER BY m.seq ASC LIMIT $3"
            ),
            cursor.get(),
            limit.get(),
            false,
        ),
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

/// Messages with `after < seq <= up_to`, oldest first, at most `limit`.
pub async fn list_range(
    db: impl PgExecutor<'_>,
    room: &str,
    after: i64,
    up_to: i64,
    limit: i64,
) -> sqlx::Result<Vec<MessageRow>> {
    sqlx::query_as(concat!(
        "SELECT ",
        message_columns!(),
        " FROM chat_messages m WHERE m.room_id = $1 AND m.seq > $2 AND m.seq <= $3 ORDER BY m.seq ASC LIMIT $4"
    ))
    .bind(room)
    .bind(after)
    .bind(up_to)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// The stored message sent with `client_id` in `room`, if `user` may see the room.
pub async fn find_by_client_id(
    db: impl PgExecutor<'_>,
    room: &RoomId,
    user: &str,
    client_id: ClientId,
) -> sqlx::Result<Option<MessageRow>> {
    sqlx::query_as(concat!(
        "SELECT ",
        message_columns!(),
        " FROM chat_messages m WHERE m.room_id = $1 AND m.client_id = $2 AND ",
        room_visible!("$3")
    ))
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

/// Stores a message in ONE statement: take a token from the author's post bucket, bump the
/// room's `last_seq` (the row lock serialises the room's writers until commit, so commit
/// order equals seq order and seqs have no gaps), insert the message with that seq, move its
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
    sqlx::query_as(concat!(
        "WITH ",
        take_token!("$3", "$7", "$8", "$9"),
        r#", room AS (
            UPDATE chat_rooms r SET last_seq = r.last_seq + 1
            WHERE r.id = $1 AND EXISTS (SELECT 1 FROM quota) AND "#,
        visible_to!("r", "$3"),
        r#"
            RETURNING r.last_seq
        ), message AS (
            INSERT INTO chat_messages (id, room_id, seq, user_email, content, client_id)
            SELECT $2, $1, room.last_seq, $3, $4, $5 FROM room
            RETURNING id, seq, created_at
        ), attached AS (
            DELETE FROM chat_uploads u
            USING message
            WHERE u.id = ANY($6) AND u.room_id = $1 AND u.user_email = $3
            RETURNING u.id, message.id AS message_id, u.object_key, u.file_name, u.content_type, u.size
        ), files AS (
            INSERT INTO chat_message_files (id, message_id, object_key, file_name, content_type, size)
            SELECT id, message_id, object_key, file_name, content_type, size FROM attached
            RETURNING id
        )
        SELECT message.seq, message.created_at, (SELECT count(*) FROM files) AS attached,
               CASE WHEN message.seq IS NOT NULL
                    THEN pg_notify('chat_messages', $1 || ':' || message.seq) END AS notified, "#,
        quota_columns!("$3", "$7", "$8", "$9"),
        r#"
        FROM (SELECT 1) AS one LEFT JOIN message ON true
        "#
    ))
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
