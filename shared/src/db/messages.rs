//! Queries on `chat_messages` and `chat_message_files`.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgExecutor, Row};
use uuid::Uuid;

use crate::db::limits::RateLimit;
use crate::domain::{ClientId, Emoji, FileIds, MessageContent, Page, RoomId};

/// A message with its files and reactions, as stored and as one user sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub id: Uuid,
    pub room_id: String,
    pub seq: i64,
    /// The room-log event that last changed it (its stream `id:`).
    pub event_id: i64,
    /// The event that created it.
    pub created_event: i64,
    pub user_email: String,
    pub content: String,
    pub client_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Counts per emoji, in first-reacted order.
    pub reactions: Json<Vec<ReactionCount>>,
    /// The viewer's own reactions.
    pub mine: Vec<String>,
    pub reply_to: Option<Uuid>,
    pub reply_to_seq: Option<i64>,
    pub reply_to_user: Option<String>,
    pub reply_excerpt: Option<String>,
    pub reply_count: i32,
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

#[derive(Debug, Clone, serde::Deserialize)]
pub struct ReactionCount {
    pub emoji: String,
    pub count: i64,
}

/// The newest page of room `$1`: at most `$3` messages, newest first (`list_page` reverses
/// them), as user `$4` may see them, each with the room's `last_event`. `$2` is `0`, so `seq > $2` keeps every message and the
/// statement has the same shape as [`LIST_PAGE_AFTER`].
///
/// The columns are a [`MessageRow`]'s: its files aggregated per row through
/// `idx_chat_message_files_message`, its reaction counts from the row itself, and the
/// viewer's own reactions (`mine`) through `chat_message_reactions_pkey`, looked up only for
/// a message that has reactions: a page, its files and reactions in one round trip. The
/// room's visibility does not depend on the row, so Postgres checks it once per statement
/// (an InitPlan on `chat_rooms_pkey`) and a page costs one round trip whoever asks; a room
/// the user may not see yields no rows. Rows come from `chat_messages_room_seq_key`, walked
/// backwards.
pub const LIST_PAGE_LATEST: &str = r#"
    SELECT m.id, m.room_id, m.seq, m.event_id, m.created_event, m.user_email, m.content,
           m.client_id, m.created_at, m.edited_at, m.deleted_at, m.reactions,
           CASE WHEN m.reactions = '[]' THEN '{}'::text[]
                ELSE ARRAY(SELECT x.emoji FROM chat_message_reactions x
                           WHERE x.message_id = m.id AND x.user_email = $4
                           ORDER BY x.created_at) END AS mine,
           m.reply_to, m.reply_to_seq, m.reply_to_user, m.reply_excerpt, m.reply_count,
           (SELECT COALESCE(json_agg(json_build_object(
                       'id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                       'content_type', f.content_type, 'size', f.size) ORDER BY f.id), '[]'::json)
            FROM chat_message_files f WHERE f.message_id = m.id) AS files,
           (SELECT r.last_event FROM chat_rooms r WHERE r.id = $1) AS room_last_event
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
    SELECT m.id, m.room_id, m.seq, m.event_id, m.created_event, m.user_email, m.content,
           m.client_id, m.created_at, m.edited_at, m.deleted_at, m.reactions,
           CASE WHEN m.reactions = '[]' THEN '{}'::text[]
                ELSE ARRAY(SELECT x.emoji FROM chat_message_reactions x
                           WHERE x.message_id = m.id AND x.user_email = $4
                           ORDER BY x.created_at) END AS mine,
           m.reply_to, m.reply_to_seq, m.reply_to_user, m.reply_excerpt, m.reply_count,
           (SELECT COALESCE(json_agg(json_build_object(
                       'id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                       'content_type', f.content_type, 'size', f.size) ORDER BY f.id), '[]'::json)
            FROM chat_message_files f WHERE f.message_id = m.id) AS files,
           (SELECT r.last_event FROM chat_rooms r WHERE r.id = $1) AS room_last_event
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
    SELECT m.id, m.room_id, m.seq, m.event_id, m.created_event, m.user_email, m.content,
           m.client_id, m.created_at, m.edited_at, m.deleted_at, m.reactions,
           CASE WHEN m.reactions = '[]' THEN '{}'::text[]
                ELSE ARRAY(SELECT x.emoji FROM chat_message_reactions x
                           WHERE x.message_id = m.id AND x.user_email = $4
                           ORDER BY x.created_at) END AS mine,
           m.reply_to, m.reply_to_seq, m.reply_to_user, m.reply_excerpt, m.reply_count,
           (SELECT COALESCE(json_agg(json_build_object(
                       'id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                       'content_type', f.content_type, 'size', f.size) ORDER BY f.id), '[]'::json)
            FROM chat_message_files f WHERE f.message_id = m.id) AS files,
           (SELECT r.last_event FROM chat_rooms r WHERE r.id = $1) AS room_last_event
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

/// A row of a page: a message, and the room's newest event in the same snapshot (where a
/// stream opened after this page resumes: `last_event_id`).
#[derive(Debug, sqlx::FromRow)]
pub struct PageRow {
    #[sqlx(flatten)]
    pub message: MessageRow,
    pub room_last_event: i64,
}

/// One page of a room's messages as `user` may see them, in ascending `seq`, and whether
/// more lie beyond it in the direction of travel. Empty when the room is not visible.
/// Reads `limit + 1` rows to learn `has_more` in the same query.
pub async fn list_page(
    db: impl PgExecutor<'_>,
    room: &RoomId,
    user: &str,
    page: Page,
) -> sqlx::Result<(Vec<PageRow>, bool)> {
    let (sql, cursor, limit, descending) = match page {
        Page::Latest(limit) => (LIST_PAGE_LATEST, 0, limit.get(), true),
        Page::Before(cursor, limit) => (LIST_PAGE_BEFORE, cursor.get(), limit.get(), true),
        Page::After(cursor, limit) => (LIST_PAGE_AFTER, cursor.get(), limit.get(), false),
    };
    let mut rows: Vec<PageRow> = sqlx::query_as(sql)
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

/// The replies to message `$2` of room `$1` with `seq > $3`, oldest first, at most `$4`, as
/// user `$5` may see them: the columns and visibility check of [`LIST_PAGE_LATEST`],
/// through `chat_messages_reply_to`.
pub const LIST_REPLIES: &str = r#"
    SELECT m.id, m.room_id, m.seq, m.event_id, m.created_event, m.user_email, m.content,
           m.client_id, m.created_at, m.edited_at, m.deleted_at, m.reactions,
           CASE WHEN m.reactions = '[]' THEN '{}'::text[]
                ELSE ARRAY(SELECT x.emoji FROM chat_message_reactions x
                           WHERE x.message_id = m.id AND x.user_email = $5
                           ORDER BY x.created_at) END AS mine,
           m.reply_to, m.reply_to_seq, m.reply_to_user, m.reply_excerpt, m.reply_count,
           (SELECT COALESCE(json_agg(json_build_object(
                       'id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                       'content_type', f.content_type, 'size', f.size) ORDER BY f.id), '[]'::json)
            FROM chat_message_files f WHERE f.message_id = m.id) AS files
    FROM chat_messages m
    WHERE m.reply_to = $2 AND m.room_id = $1 AND m.seq > $3
      AND EXISTS (SELECT 1 FROM chat_rooms r
                  WHERE r.id = $1
                    AND (r.visibility = 'public' OR r.created_by = $5
                         OR EXISTS (SELECT 1 FROM chat_room_members mm
                                    WHERE mm.room_id = r.id AND mm.user_email = $5)))
    ORDER BY m.seq ASC
    LIMIT $4
"#;

/// One page of the replies to `message`, oldest first, after seq `after`, and whether more
/// follow.
pub async fn list_replies(
    db: impl PgExecutor<'_>,
    room: &RoomId,
    message: Uuid,
    user: &str,
    after: i64,
    limit: i64,
) -> sqlx::Result<(Vec<MessageRow>, bool)> {
    let mut rows: Vec<MessageRow> = sqlx::query_as(LIST_REPLIES)
        .bind(room.as_str())
        .bind(message)
        .bind(after)
        .bind(limit + 1)
        .bind(user)
        .fetch_all(db)
        .await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok((rows, has_more))
}

/// Message `$2` of room `$1` as user `$3` may see it (the visibility check of
/// [`LIST_PAGE_LATEST`]), by `chat_messages_pkey`: whether it exists there, before the
/// replies are listed.
pub const FIND_MESSAGE: &str = r#"
    SELECT m.id FROM chat_messages m
    WHERE m.id = $2 AND m.room_id = $1
      AND EXISTS (SELECT 1 FROM chat_rooms r
                  WHERE r.id = $1
                    AND (r.visibility = 'public' OR r.created_by = $3
                         OR EXISTS (SELECT 1 FROM chat_room_members mm
                                    WHERE mm.room_id = r.id AND mm.user_email = $3)))
"#;

/// Whether message `id` is in `room` and `user` may see the room.
pub async fn exists(
    db: impl PgExecutor<'_>,
    room: &RoomId,
    id: Uuid,
    user: &str,
) -> sqlx::Result<bool> {
    let found: Option<(Uuid,)> = sqlx::query_as(FIND_MESSAGE)
        .bind(room.as_str())
        .bind(id)
        .bind(user)
        .fetch_optional(db)
        .await?;
    Ok(found.is_some())
}

/// Room `$1`'s log after event `$2`: every message whose newest event is later, in event
/// order, at most `$3`, as user `$4` sees them (the columns of [`LIST_PAGE_LATEST`]),
/// through `idx_chat_messages_room`. A message changed several times since `$2` comes once,
/// in its newest state. No visibility check: a subscriber already let into the room reads
/// it to catch up.
pub const LIST_LOG: &str = r#"
    SELECT m.id, m.room_id, m.seq, m.event_id, m.created_event, m.user_email, m.content,
           m.client_id, m.created_at, m.edited_at, m.deleted_at, m.reactions,
           CASE WHEN m.reactions = '[]' THEN '{}'::text[]
                ELSE ARRAY(SELECT x.emoji FROM chat_message_reactions x
                           WHERE x.message_id = m.id AND x.user_email = $4
                           ORDER BY x.created_at) END AS mine,
           m.reply_to, m.reply_to_seq, m.reply_to_user, m.reply_excerpt, m.reply_count,
           (SELECT COALESCE(json_agg(json_build_object(
                       'id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                       'content_type', f.content_type, 'size', f.size) ORDER BY f.id), '[]'::json)
            FROM chat_message_files f WHERE f.message_id = m.id) AS files
    FROM chat_messages m
    WHERE m.room_id = $1 AND m.event_id > $2
    ORDER BY m.event_id ASC
    LIMIT $3
"#;

/// The log of `room` after event `after`, oldest event first, at most `limit`, for `viewer`.
pub async fn list_log(
    db: impl PgExecutor<'_>,
    room: &str,
    after: i64,
    limit: i64,
    viewer: &str,
) -> sqlx::Result<Vec<MessageRow>> {
    sqlx::query_as(LIST_LOG)
        .bind(room)
        .bind(after)
        .bind(limit)
        .bind(viewer)
        .fetch_all(db)
        .await
}

/// The stream hub's read of room `$1`'s log: messages whose newest event is in
/// `($2, $3]`, in event order, at most `$4`, through `idx_chat_messages_room`; read once for
/// all of the room's subscribers on this instance. `mine` is empty; `reactors` lists
/// `[user, emoji]` of the reactions by the subscribers `$5`, so each of them can be shown
/// their own. The room's `members_version` comes on every row, read in the same statement
/// (one snapshot): a change committed after a membership change comes with the bumped
/// version, so the hub re-reads who may see the room before it sends it.
pub const HUB_RANGE: &str = r#"
    SELECT m.id, m.room_id, m.seq, m.event_id, m.created_event, m.user_email, m.content,
           m.client_id, m.created_at, m.edited_at, m.deleted_at, m.reactions,
           '{}'::text[] AS mine,
           m.reply_to, m.reply_to_seq, m.reply_to_user, m.reply_excerpt, m.reply_count,
           (SELECT COALESCE(json_agg(json_build_object(
                       'id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                       'content_type', f.content_type, 'size', f.size) ORDER BY f.id), '[]'::json)
            FROM chat_message_files f WHERE f.message_id = m.id) AS files,
           CASE WHEN m.reactions = '[]' THEN '[]'::json
                ELSE (SELECT COALESCE(json_agg(json_build_array(x.user_email, x.emoji)
                                               ORDER BY x.created_at), '[]'::json)
                      FROM chat_message_reactions x
                      WHERE x.message_id = m.id AND x.user_email = ANY($5)) END AS reactors,
           (SELECT r.members_version FROM chat_rooms r WHERE r.id = $1) AS members_version
    FROM chat_messages m
    WHERE m.room_id = $1 AND m.event_id > $2 AND m.event_id <= $3
    ORDER BY m.event_id ASC
    LIMIT $4
"#;

/// [`HUB_RANGE`] backwards: the newest `$4` messages whose newest event is in `($2, $3]`,
/// newest first, through `idx_chat_messages_room` scanned backward. The hub fills a room's
/// catch-up window back from its oldest entry with it, once for every stream resuming
/// before that entry.
pub const HUB_RANGE_BACK: &str = r#"
    SELECT m.id, m.room_id, m.seq, m.event_id, m.created_event, m.user_email, m.content,
           m.client_id, m.created_at, m.edited_at, m.deleted_at, m.reactions,
           '{}'::text[] AS mine,
           m.reply_to, m.reply_to_seq, m.reply_to_user, m.reply_excerpt, m.reply_count,
           (SELECT COALESCE(json_agg(json_build_object(
                       'id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                       'content_type', f.content_type, 'size', f.size) ORDER BY f.id), '[]'::json)
            FROM chat_message_files f WHERE f.message_id = m.id) AS files,
           CASE WHEN m.reactions = '[]' THEN '[]'::json
                ELSE (SELECT COALESCE(json_agg(json_build_array(x.user_email, x.emoji)
                                               ORDER BY x.created_at), '[]'::json)
                      FROM chat_message_reactions x
                      WHERE x.message_id = m.id AND x.user_email = ANY($5)) END AS reactors,
           (SELECT r.members_version FROM chat_rooms r WHERE r.id = $1) AS members_version
    FROM chat_messages m
    WHERE m.room_id = $1 AND m.event_id > $2 AND m.event_id <= $3
    ORDER BY m.event_id DESC
    LIMIT $4
"#;

/// A row of [`HUB_RANGE`].
#[derive(Debug, sqlx::FromRow)]
pub struct HubRow {
    #[sqlx(flatten)]
    pub message: MessageRow,
    /// `(user, emoji)` of the subscribers' own reactions.
    pub reactors: Json<Vec<(String, String)>>,
    pub members_version: i64,
}

/// The hub's read of `room`'s log in `(after, up_to]`, with the reactions of `subscribers`.
pub async fn hub_range(
    db: impl PgExecutor<'_>,
    room: &str,
    after: i64,
    up_to: i64,
    limit: i64,
    subscribers: &[String],
) -> sqlx::Result<Vec<HubRow>> {
    sqlx::query_as(HUB_RANGE)
        .bind(room)
        .bind(after)
        .bind(up_to)
        .bind(limit)
        .bind(subscribers)
        .fetch_all(db)
        .await
}

/// The newest `limit` changes of `room`'s log in `(after, up_to]`, newest first, with the
/// reactions of `subscribers` ([`HUB_RANGE_BACK`]).
pub async fn hub_range_back(
    db: impl PgExecutor<'_>,
    room: &str,
    after: i64,
    up_to: i64,
    limit: i64,
    subscribers: &[String],
) -> sqlx::Result<Vec<HubRow>> {
    sqlx::query_as(HUB_RANGE_BACK)
        .bind(room)
        .bind(after)
        .bind(up_to)
        .bind(limit)
        .bind(subscribers)
        .fetch_all(db)
        .await
}

/// The message of room `$1` sent with client id `$2`, through
/// `chat_messages_room_client_id_key`, if user `$3` sent it and may see the room (the
/// visibility check of [`LIST_PAGE_LATEST`]); with its columns. A retried send answers with
/// it.
pub const FIND_BY_CLIENT_ID: &str = r#"
    SELECT m.id, m.room_id, m.seq, m.event_id, m.created_event, m.user_email, m.content,
           m.client_id, m.created_at, m.edited_at, m.deleted_at, m.reactions,
           CASE WHEN m.reactions = '[]' THEN '{}'::text[]
                ELSE ARRAY(SELECT x.emoji FROM chat_message_reactions x
                           WHERE x.message_id = m.id AND x.user_email = $3
                           ORDER BY x.created_at) END AS mine,
           m.reply_to, m.reply_to_seq, m.reply_to_user, m.reply_excerpt, m.reply_count,
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

/// What a write to the log answered (`chat_write` in the migrations): `outcome` is `ok` or
/// an error code; the bucket; object keys to delete from storage; the message as the writer
/// sees it (absent unless `ok`).
#[derive(Debug)]
pub struct WriteOutcome {
    pub outcome: String,
    pub tokens_left: Option<f64>,
    pub tokens_before: Option<f64>,
    pub trashed: Option<Vec<String>>,
    pub message: Option<MessageRow>,
}

impl<'r> sqlx::FromRow<'r, PgRow> for WriteOutcome {
    fn from_row(row: &'r PgRow) -> sqlx::Result<Self> {
        let outcome: String = row.try_get("outcome")?;
        let message = match outcome.as_str() {
            "ok" => Some(MessageRow::from_row(row)?),
            _ => None,
        };
        Ok(Self {
            outcome,
            tokens_left: row.try_get("tokens_left")?,
            tokens_before: row.try_get("tokens_before")?,
            trashed: row.try_get("trashed")?,
            message,
        })
    }
}

/// The name of the unique index a repeated `client_id` violates.
pub const CLIENT_ID_KEY: &str = "chat_messages_room_client_id_key";

/// A message to store.
pub struct NewMessage<'a> {
    pub id: Uuid,
    pub room: &'a RoomId,
    pub user_email: &'a str,
    pub content: &'a MessageContent,
    pub client_id: Option<ClientId>,
    pub file_ids: &'a FileIds,
    pub reply_to: Option<Uuid>,
}

/// Posts a message: `chat_post` (migrations/…_log_writes.sql) takes a token from the
/// author's post bucket, checks and locks the original of a reply, takes the room's next
/// seq and event id under its row lock, inserts the message, attaches its uploads (all or
/// the post fails), moves the author's read mark and notifies listeners, in one round trip.
/// A repeated `client_id` fails it with a unique violation of [`CLIENT_ID_KEY`].
pub const POST_MESSAGE: &str = r#"
    SELECT * FROM chat_post($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"#;

pub async fn post(
    db: impl PgExecutor<'_>,
    message: &NewMessage<'_>,
    limit: &RateLimit,
) -> sqlx::Result<WriteOutcome> {
    sqlx::query_as(POST_MESSAGE)
        .bind(message.room.as_str())
        .bind(message.id)
        .bind(message.user_email)
        .bind(message.content.as_str())
        .bind(message.client_id)
        .bind(message.file_ids.as_slice())
        .bind(message.reply_to)
        .bind(limit.action)
        .bind(limit.capacity())
        .bind(limit.refill_per_sec())
        .fetch_one(db)
        .await
}

/// Edits a message's content (`chat_edit`): the author only, not a tombstone.
pub const EDIT_MESSAGE: &str = r#"
    SELECT * FROM chat_edit($1, $2, $3, $4, $5, $6, $7)
"#;

pub async fn edit(
    db: impl PgExecutor<'_>,
    room: &RoomId,
    id: Uuid,
    user: &str,
    content: &MessageContent,
    limit: &RateLimit,
) -> sqlx::Result<WriteOutcome> {
    sqlx::query_as(EDIT_MESSAGE)
        .bind(room.as_str())
        .bind(id)
        .bind(user)
        .bind(content.as_str())
        .bind(limit.action)
        .bind(limit.capacity())
        .bind(limit.refill_per_sec())
        .fetch_one(db)
        .await
}

/// Deletes a message (`chat_delete`): its author or the room's owner; leaves a tombstone and
/// queues its files' objects in `chat_object_trash`.
pub const DELETE_MESSAGE: &str = r#"
    SELECT * FROM chat_delete($1, $2, $3, $4, $5, $6)
"#;

pub async fn delete(
    db: impl PgExecutor<'_>,
    room: &RoomId,
    id: Uuid,
    user: &str,
    limit: &RateLimit,
) -> sqlx::Result<WriteOutcome> {
    sqlx::query_as(DELETE_MESSAGE)
        .bind(room.as_str())
        .bind(id)
        .bind(user)
        .bind(limit.action)
        .bind(limit.capacity())
        .bind(limit.refill_per_sec())
        .fetch_one(db)
        .await
}

/// Adds or removes the user's reaction (`chat_react`), idempotently.
pub const REACT: &str = r#"
    SELECT * FROM chat_react($1, $2, $3, $4, $5, $6, $7, $8, $9)
"#;

/// The most distinct emoji one message may carry.
pub const MAX_EMOJI_PER_MESSAGE: i32 = 50;

pub async fn react(
    db: impl PgExecutor<'_>,
    room: &RoomId,
    id: Uuid,
    user: &str,
    emoji: &Emoji,
    add: bool,
    limit: &RateLimit,
) -> sqlx::Result<WriteOutcome> {
    sqlx::query_as(REACT)
        .bind(room.as_str())
        .bind(id)
        .bind(user)
        .bind(emoji.as_str())
        .bind(add)
        .bind(MAX_EMOJI_PER_MESSAGE)
        .bind(limit.action)
        .bind(limit.capacity())
        .bind(limit.refill_per_sec())
        .fetch_one(db)
        .await
}

/// Object keys of deleted messages, removed from storage: out of the trash.
pub const EMPTY_TRASH: &str = r#"
    DELETE FROM chat_object_trash WHERE object_key = ANY($1)
"#;

pub async fn empty_trash(db: impl PgExecutor<'_>, keys: &[String]) -> sqlx::Result<()> {
    sqlx::query(EMPTY_TRASH).bind(keys).execute(db).await?;
    Ok(())
}

/// Up to `$1` object keys still in the trash (the cleanup cron retries them), oldest first.
pub const TRASHED: &str = r#"
    SELECT object_key FROM chat_object_trash ORDER BY queued_at LIMIT $1
"#;

pub async fn trashed(db: impl PgExecutor<'_>, limit: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(TRASHED).bind(limit).fetch_all(db).await
}
