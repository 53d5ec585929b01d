//! Queries on `chat_messages` and `chat_message_files`.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgExecutor, Row};
use uuid::Uuid;

use crate::db::limits::RateLimit;
use crate::domain::{
    ClientId, Emoji, FileIds, MessageContent, Page, RoomId, SearchLanguage, SearchQuery,
};

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

/// The fields of a file's view, in the order every statement that aggregates
/// `chat_message_files` into a message's `files` names them (each `'name', f.name`). The
/// aggregate is written out whole in each statement that builds a view, and in the write
/// functions of the migrations; `db::file_views` checks that they all name these, so a new
/// field cannot be missed in one of them.
pub const FILE_VIEW_FIELDS: [&str; 11] = [
    "id",
    "object_key",
    "file_name",
    "content_type",
    "size",
    "width",
    "height",
    "thumbnail_key",
    "placeholder",
    "served",
    "served_size",
];

#[derive(Debug, Clone, serde::Deserialize)]
pub struct FileRow {
    pub id: Uuid,
    pub object_key: String,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    /// What processing recorded (`migrations/20261202000001_file_processing.sql`); absent
    /// in the answer of a post, which is built before any processing.
    #[serde(default)]
    pub width: Option<i32>,
    #[serde(default)]
    pub height: Option<i32>,
    #[serde(default)]
    pub thumbnail_key: Option<String>,
    #[serde(default)]
    pub placeholder: Option<String>,
    /// `original`, `stripped` or `resized`; `None` until processing recorded its result.
    #[serde(default)]
    pub served: Option<String>,
    #[serde(default)]
    pub served_size: Option<i64>,
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
                       'content_type', f.content_type, 'size', f.size,
                       'width', f.width, 'height', f.height, 'thumbnail_key', f.thumbnail_key,
                       'placeholder', f.placeholder, 'served', f.served,
                       'served_size', f.served_size) ORDER BY f.id), '[]'::json)
            FROM chat_message_files f WHERE f.message_id = m.id) AS files,
           (SELECT r.last_event FROM chat_rooms r WHERE r.id = $1) AS room_last_event,
           (SELECT r.archived_seq FROM chat_rooms r WHERE r.id = $1) AS room_archived_seq
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
                       'content_type', f.content_type, 'size', f.size,
                       'width', f.width, 'height', f.height, 'thumbnail_key', f.thumbnail_key,
                       'placeholder', f.placeholder, 'served', f.served,
                       'served_size', f.served_size) ORDER BY f.id), '[]'::json)
            FROM chat_message_files f WHERE f.message_id = m.id) AS files,
           (SELECT r.last_event FROM chat_rooms r WHERE r.id = $1) AS room_last_event,
           (SELECT r.archived_seq FROM chat_rooms r WHERE r.id = $1) AS room_archived_seq
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
                       'content_type', f.content_type, 'size', f.size,
                       'width', f.width, 'height', f.height, 'thumbnail_key', f.thumbnail_key,
                       'placeholder', f.placeholder, 'served', f.served,
                       'served_size', f.served_size) ORDER BY f.id), '[]'::json)
            FROM chat_message_files f WHERE f.message_id = m.id) AS files,
           (SELECT r.last_event FROM chat_rooms r WHERE r.id = $1) AS room_last_event,
           (SELECT r.archived_seq FROM chat_rooms r WHERE r.id = $1) AS room_archived_seq
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
    /// The highest seq the room's archive segments hold (`crate::archive`): a page reaching
    /// it reads them too.
    pub room_archived_seq: i64,
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

/// Whether a page the read replica answered holds everything a page read from the primary
/// would up to the replica's position, given the cursor it names: the rows prove the
/// replica has replayed that seq (seqs of a room commit in order, so it then holds every
/// seq below). The newest page and an `after=` page: any row (each is newer than the
/// cursor). A `before=N` page: the row of seq `N - 1` (pages are of consecutive seqs
/// otherwise). An empty page proves nothing: it is read from the primary. And the room's
/// `last_event` the statement read must be at least `written`, the newest event this
/// process wrote to the room.
pub fn page_is_fresh(page: Page, rows: &[PageRow], written: i64) -> bool {
    let replayed = match page {
        Page::Latest(_) | Page::After(..) => !rows.is_empty(),
        Page::Before(cursor, _) => rows
            .last()
            .is_some_and(|newest| newest.message.seq == cursor.get() - 1),
    };
    replayed
        && rows
            .first()
            .is_some_and(|row| row.room_last_event >= written)
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
                       'content_type', f.content_type, 'size', f.size,
                       'width', f.width, 'height', f.height, 'thumbnail_key', f.thumbnail_key,
                       'placeholder', f.placeholder, 'served', f.served,
                       'served_size', f.served_size) ORDER BY f.id), '[]'::json)
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

/// How many of a room's newest messages (before the cursor) a search tests one by one
/// before it asks the search index for the older ones ([`SEARCH`]).
pub const SEARCH_WINDOW: i64 = 2000;

/// Room `$1`'s messages with `seq < $2` whose words match `$5` (`websearch_to_tsquery`
/// parsed with text search configuration `$6`), newest first, at most `$3`, as user `$4`
/// may see them: the columns and visibility check of [`LIST_PAGE_LATEST`]. A tombstone's
/// content is '' and never matches; `deleted_at IS NULL` says so outright.
///
/// Postgres cannot tell how common a word is in one room (its estimate for a word outside
/// the most common ones is the same for every word, and with `ORDER BY seq LIMIT` it then
/// walks the whole room testing each row for a rare word: seconds in a room of a million),
/// so the statement fixes the plan in two parts, each bounded; the second runs only when
/// the first leaves the page short (its `LIMIT` is what is left of the page, and a
/// `LIMIT 0` runs nothing under it, not even the start of a parallel scan):
///
/// * `cursor`: `before`, at most the room's `last_seq + 1`, if the user may see the room
///   (else no row, and no match); with the room's `last_seq`, `last_event` and
///   `archived_seq`, on every match, so that a read replica's answer shows what it had
///   replayed ([`search_is_fresh`]);
/// * `recent`: the `$7` ([`SEARCH_WINDOW`]) newest messages before the cursor, walked
///   backwards through `chat_messages_room_seq_key` and each tested (`|| ''` keeps the
///   test off the search index), stopping at the page's last match: a word in one message
///   of twenty fills a page of 100 here;
/// * `older`: the older messages from `chat_messages_search`, the GIN index on
///   `chat_search_vector(content)` (`migrations/20261203000001_search.sql`), whose matches
///   are sorted by seq (`m.seq + 0` keeps the walk out of it): rarer words, whose matches
///   are few.
///
/// The one slow case left is a query whose index lookup is not selective and that
/// matches little, like `fox -dog` where both words are in every message: every older row
/// is tested, up to `DB_STATEMENT_TIMEOUT_MS` (BENCHMARKS.md, "Search and the operator's
/// numbers").
pub const SEARCH: &str = r#"
    WITH cursor AS (
        SELECT LEAST($2, r.last_seq + 1) AS before, r.last_seq, r.last_event, r.archived_seq
        FROM chat_rooms r
        WHERE r.id = $1
          AND (r.visibility = 'public' OR r.created_by = $4
               OR EXISTS (SELECT 1 FROM chat_room_members mm
                          WHERE mm.room_id = r.id AND mm.user_email = $4))
    ),
    recent AS MATERIALIZED (
        SELECT m.id, m.room_id, m.seq, m.event_id, m.created_event, m.user_email, m.content,
               m.client_id, m.created_at, m.edited_at, m.deleted_at, m.reactions,
               CASE WHEN m.reactions = '[]' THEN '{}'::text[]
                    ELSE ARRAY(SELECT x.emoji FROM chat_message_reactions x
                               WHERE x.message_id = m.id AND x.user_email = $4
                               ORDER BY x.created_at) END AS mine,
               m.reply_to, m.reply_to_seq, m.reply_to_user, m.reply_excerpt, m.reply_count,
               (SELECT COALESCE(json_agg(json_build_object(
                           'id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                           'content_type', f.content_type, 'size', f.size,
                           'width', f.width, 'height', f.height, 'thumbnail_key', f.thumbnail_key,
                           'placeholder', f.placeholder, 'served', f.served,
                           'served_size', f.served_size) ORDER BY f.id), '[]'::json)
                FROM chat_message_files f WHERE f.message_id = m.id) AS files
        FROM chat_messages m
        WHERE m.room_id = $1 AND m.seq < (SELECT c.before FROM cursor c)
          AND m.seq >= (SELECT c.before FROM cursor c) - $7
          AND chat_search_vector(m.content || '') @@ websearch_to_tsquery($6::regconfig, $5)
          AND m.deleted_at IS NULL
        ORDER BY m.seq DESC
        LIMIT $3
    ),
    older AS (
        SELECT m.id, m.room_id, m.seq, m.event_id, m.created_event, m.user_email, m.content,
               m.client_id, m.created_at, m.edited_at, m.deleted_at, m.reactions,
               CASE WHEN m.reactions = '[]' THEN '{}'::text[]
                    ELSE ARRAY(SELECT x.emoji FROM chat_message_reactions x
                               WHERE x.message_id = m.id AND x.user_email = $4
                               ORDER BY x.created_at) END AS mine,
               m.reply_to, m.reply_to_seq, m.reply_to_user, m.reply_excerpt, m.reply_count,
               (SELECT COALESCE(json_agg(json_build_object(
                           'id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                           'content_type', f.content_type, 'size', f.size,
                           'width', f.width, 'height', f.height, 'thumbnail_key', f.thumbnail_key,
                           'placeholder', f.placeholder, 'served', f.served,
                           'served_size', f.served_size) ORDER BY f.id), '[]'::json)
                FROM chat_message_files f WHERE f.message_id = m.id) AS files
        FROM chat_messages m
        WHERE m.room_id = $1 AND m.seq < (SELECT c.before FROM cursor c) - $7
          AND chat_search_vector(m.content) @@ websearch_to_tsquery($6::regconfig, $5)
          AND m.deleted_at IS NULL
        ORDER BY m.seq + 0 DESC
        LIMIT $3 - (SELECT count(*) FROM recent)
    )
    SELECT p.*, c.last_seq AS room_last_seq, c.last_event AS room_last_event,
           c.archived_seq AS room_archived_seq
    FROM (SELECT * FROM recent
          UNION ALL
          SELECT * FROM older
          ORDER BY seq DESC
          LIMIT $3) p
    CROSS JOIN cursor c
    ORDER BY p.seq DESC
"#;

/// A match of a search, and the room as the same snapshot had it.
#[derive(Debug, sqlx::FromRow)]
pub struct SearchRow {
    #[sqlx(flatten)]
    pub message: MessageRow,
    pub room_last_seq: i64,
    pub room_last_event: i64,
    pub room_archived_seq: i64,
}

/// Whether a search the read replica answered holds everything the primary's would, up to
/// the replica's position: the room's `last_seq` it read shows it has every seq below the
/// cursor (`before`), and its `last_event` this process's own newest write to the room
/// (`written`). Matches are sparse, so the rows alone cannot show it (a page of the list
/// can: [`page_is_fresh`]). No match proves nothing (the room may be new there): read
/// from the primary.
pub fn search_is_fresh(before: Option<i64>, rows: &[SearchRow], written: i64) -> bool {
    rows.first().is_some_and(|row| {
        row.room_last_event >= written && before.is_none_or(|b| row.room_last_seq >= b - 1)
    })
}

/// One page of `room`'s messages matching `query`, newest first, before seq `before`
/// (every message when `None`), as `user` may see them, and whether older matches follow.
/// Empty when the room is not visible.
pub async fn search(
    db: impl PgExecutor<'_>,
    room: &RoomId,
    user: &str,
    query: &SearchQuery,
    language: &SearchLanguage,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<(Vec<SearchRow>, bool)> {
    let mut rows: Vec<SearchRow> = sqlx::query_as(SEARCH)
        .bind(room.as_str())
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit + 1)
        .bind(user)
        .bind(query.as_str())
        .bind(language.as_str())
        .bind(SEARCH_WINDOW)
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
                       'content_type', f.content_type, 'size', f.size,
                       'width', f.width, 'height', f.height, 'thumbnail_key', f.thumbnail_key,
                       'placeholder', f.placeholder, 'served', f.served,
                       'served_size', f.served_size) ORDER BY f.id), '[]'::json)
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
/// version, so the hub re-reads who may see the room before it sends it; and its
/// `last_event`, by which a read replica's answer shows how far it has replayed the room.
pub const HUB_RANGE: &str = r#"
    SELECT m.id, m.room_id, m.seq, m.event_id, m.created_event, m.user_email, m.content,
           m.client_id, m.created_at, m.edited_at, m.deleted_at, m.reactions,
           '{}'::text[] AS mine,
           m.reply_to, m.reply_to_seq, m.reply_to_user, m.reply_excerpt, m.reply_count,
           (SELECT COALESCE(json_agg(json_build_object(
                       'id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                       'content_type', f.content_type, 'size', f.size,
                       'width', f.width, 'height', f.height, 'thumbnail_key', f.thumbnail_key,
                       'placeholder', f.placeholder, 'served', f.served,
                       'served_size', f.served_size) ORDER BY f.id), '[]'::json)
            FROM chat_message_files f WHERE f.message_id = m.id) AS files,
           CASE WHEN m.reactions = '[]' THEN '[]'::json
                ELSE (SELECT COALESCE(json_agg(json_build_array(x.user_email, x.emoji)
                                               ORDER BY x.created_at), '[]'::json)
                      FROM chat_message_reactions x
                      WHERE x.message_id = m.id AND x.user_email = ANY($5)) END AS reactors,
           (SELECT r.members_version FROM chat_rooms r WHERE r.id = $1) AS members_version,
           (SELECT r.last_event FROM chat_rooms r WHERE r.id = $1) AS room_last_event
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
                       'content_type', f.content_type, 'size', f.size,
                       'width', f.width, 'height', f.height, 'thumbnail_key', f.thumbnail_key,
                       'placeholder', f.placeholder, 'served', f.served,
                       'served_size', f.served_size) ORDER BY f.id), '[]'::json)
            FROM chat_message_files f WHERE f.message_id = m.id) AS files,
           CASE WHEN m.reactions = '[]' THEN '[]'::json
                ELSE (SELECT COALESCE(json_agg(json_build_array(x.user_email, x.emoji)
                                               ORDER BY x.created_at), '[]'::json)
                      FROM chat_message_reactions x
                      WHERE x.message_id = m.id AND x.user_email = ANY($5)) END AS reactors,
           (SELECT r.members_version FROM chat_rooms r WHERE r.id = $1) AS members_version,
           (SELECT r.last_event FROM chat_rooms r WHERE r.id = $1) AS room_last_event
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
    /// The room's newest event as this statement saw it: on a read replica, how far it
    /// has replayed the room.
    pub room_last_event: i64,
}

/// The hub's read of `room`'s log in `(after, up_to]`, with the reactions of `subscribers`.
pub async fn hub_range(
    db: impl PgExecutor<'_>,
    room: &str,
    after: i64,
    up_to: i64,
    limit: i64,
    subscribers: &[&str],
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
    subscribers: &[&str],
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
                       'content_type', f.content_type, 'size', f.size,
                       'width', f.width, 'height', f.height, 'thumbnail_key', f.thumbnail_key,
                       'placeholder', f.placeholder, 'served', f.served,
                       'served_size', f.served_size) ORDER BY f.id), '[]'::json)
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

/// Several plain posts (no files, no reply) in ONE statement: what [`crate::db::write_queue`]
/// sends when posts wait their turn. Each post is decided as `chat_post` decides it, and
/// every guarantee holds:
///
/// * `took`: a token from each author's bucket (the queue puts one post per author in a
///   batch, so a bucket is touched once), buckets locked in author order;
/// * `locked`: then the rooms' rows, in id order (`FOR NO KEY UPDATE`), for the posts that
///   took a token; `ok`: those whose author may see the room (public, theirs, or a member);
/// * `bumped`: each room takes its next `n` seqs and event ids, and its posts get them in
///   the batch's order, so seqs stay gapless and commit order is event-id order;
/// * `written`, `marked`: the messages, then the authors' read marks in (room, author)
///   order (a mark stamped in the last 2 s keeps its stamp, as in `chat_post`:
///   `migrations/20261204000001_hot_room_rows.sql`); `notified`: each room's newest event is
///   `pg_notify`d (delivered at commit).
///
/// Locks are taken buckets → rooms → read marks, the order `chat_post` takes them in, so
/// batches and single writes never wait on each other in a cycle. A repeated `client_id`
/// fails the statement with a unique violation of [`CLIENT_ID_KEY`], undoing the whole
/// batch; the queue then sends each of its posts on its own. The answer is one `chat_write`
/// per post, in the arrays' order, built from what was written as `chat_post`
/// answers; a refused post's `tokens_before` is its bucket as of the statement's start.
pub const POST_BATCH: &str = r#"
    WITH item AS (
        SELECT t.i, t.room, t.id, t.usr, t.content, t.client_id
        FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::uuid[])
             WITH ORDINALITY AS t(room, id, usr, content, client_id, i)
    ),
    took AS (
        INSERT INTO chat_rate_limits AS b (user_email, action, tokens, updated_at)
        SELECT item.usr, $6, $7 - 1, now() FROM item ORDER BY item.usr
        ON CONFLICT (user_email, action) DO UPDATE
        SET tokens = LEAST($7, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $8) - 1,
            updated_at = GREATEST(now(), b.updated_at)
        WHERE LEAST($7, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $8) >= 1
        RETURNING b.user_email, b.tokens
    ),
    locked AS (
        SELECT r.id, r.visibility, r.created_by FROM chat_rooms r
        WHERE r.id IN (SELECT item.room FROM item JOIN took ON took.user_email = item.usr)
        ORDER BY r.id
        FOR NO KEY UPDATE
    ),
    ok AS (
        SELECT item.i, item.room, item.id, item.usr, item.content, item.client_id,
               row_number() OVER (PARTITION BY item.room ORDER BY item.i) AS k
        FROM item JOIN took ON took.user_email = item.usr JOIN locked l ON l.id = item.room
        WHERE l.visibility = 'public' OR l.created_by = item.usr
           OR EXISTS (SELECT 1 FROM chat_room_members mm
                      WHERE mm.room_id = l.id AND mm.user_email = item.usr)
    ),
    bumped AS (
        UPDATE chat_rooms r SET last_seq = r.last_seq + n.n, last_event = r.last_event + n.n
        FROM (SELECT ok.room, count(*) AS n FROM ok GROUP BY ok.room) n
        WHERE r.id = n.room
        RETURNING r.id, r.last_seq - n.n AS seq0, r.last_event - n.n AS event0, r.last_event
    ),
    written AS (
        INSERT INTO chat_messages (id, room_id, seq, event_id, created_event, user_email, content,
                                   client_id)
        SELECT ok.id, ok.room, b.seq0 + ok.k, b.event0 + ok.k, b.event0 + ok.k, ok.usr, ok.content,
               ok.client_id
        FROM ok JOIN bumped b ON b.id = ok.room
        RETURNING id, room_id, seq, event_id, user_email, created_at
    ),
    marked AS (
        INSERT INTO chat_read_marks AS k (room_id, user_email, last_read_seq)
        SELECT w.room_id, w.user_email, max(w.seq) FROM written w
        GROUP BY w.room_id, w.user_email ORDER BY w.room_id, w.user_email
        ON CONFLICT (room_id, user_email) DO UPDATE
        SET last_read_seq = EXCLUDED.last_read_seq,
            updated_at = CASE WHEN k.updated_at > now() - interval '2 seconds' THEN k.updated_at
                              ELSE now() END
        WHERE k.last_read_seq < EXCLUDED.last_read_seq
    ),
    notified AS (
        SELECT count(pg_notify('chat_messages', b.id || ':' || b.last_event)) AS n FROM bumped b
    )
    SELECT CASE WHEN w.id IS NOT NULL THEN 'ok'
                WHEN took.user_email IS NULL THEN 'rate_limited'
                ELSE 'room_not_found' END AS outcome,
           took.tokens AS tokens_left,
           CASE WHEN took.user_email IS NULL THEN COALESCE(
               (SELECT LEAST($7, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $8)
                FROM chat_rate_limits b WHERE b.user_email = item.usr AND b.action = $6), 0)
           END AS tokens_before,
           NULL::text[] AS trashed,
           w.id, w.room_id, w.seq, w.event_id, w.event_id AS created_event, w.user_email,
           CASE WHEN w.id IS NOT NULL THEN item.content END AS content,
           CASE WHEN w.id IS NOT NULL THEN item.client_id END AS client_id,
           w.created_at, NULL::timestamptz AS edited_at, NULL::timestamptz AS deleted_at,
           '[]'::jsonb AS reactions, '{}'::text[] AS mine,
           NULL::uuid AS reply_to, NULL::int8 AS reply_to_seq, NULL::text AS reply_to_user,
           NULL::text AS reply_excerpt, 0 AS reply_count, '[]'::json AS files
    FROM item
    CROSS JOIN notified
    LEFT JOIN took ON took.user_email = item.usr
    LEFT JOIN written w ON w.id = item.id
    ORDER BY item.i
"#;

/// A plain post waiting in the queue: owned, since it outlives the request's borrows.
#[derive(Debug, Clone)]
pub struct PlainPost {
    pub id: Uuid,
    pub room: RoomId,
    pub user_email: String,
    pub content: MessageContent,
    pub client_id: Option<ClientId>,
}

/// Sends `posts` (at most one per author) as one [`POST_BATCH`]; the outcomes come back in
/// `posts`' order. An author twice is refused before anything is sent.
pub async fn post_batch(
    db: impl PgExecutor<'_>,
    posts: &[PlainPost],
    limit: &RateLimit,
) -> sqlx::Result<Vec<WriteOutcome>> {
    distinct_authors(posts.iter().map(|p| p.user_email.as_str()))?;
    let rooms: Vec<&str> = posts.iter().map(|p| p.room.as_str()).collect();
    let ids: Vec<Uuid> = posts.iter().map(|p| p.id).collect();
    let users: Vec<&str> = posts.iter().map(|p| p.user_email.as_str()).collect();
    let contents: Vec<&str> = posts.iter().map(|p| p.content.as_str()).collect();
    let client_ids: Vec<Option<Uuid>> = posts.iter().map(|p| p.client_id).collect();
    let outcomes: Vec<WriteOutcome> = sqlx::query_as(POST_BATCH)
        .bind(rooms)
        .bind(ids)
        .bind(users)
        .bind(contents)
        .bind(client_ids)
        .bind(limit.action)
        .bind(limit.capacity())
        .bind(limit.refill_per_sec())
        .fetch_all(db)
        .await?;
    answered_all(posts.len(), outcomes)
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

/// Several edits in ONE statement: what [`crate::db::write_queue`] sends when edits wait
/// their turn. Each is decided as `chat_edit` decides it alone, in the same order of
/// checks, and every guarantee holds:
///
/// * `seen`: the rooms each editor may see (no lock, as `chat_visible_owner`);
/// * `target`: the messages, locked in id order (`FOR UPDATE`); `decided`: the refusals
///   (`room_not_found`, `message_not_found`, `not_message_author`, `message_deleted`,
///   `content_required`), which cost no token and no event;
/// * `took`: a token from each remaining editor's bucket, in author order (one edit per
///   author per batch);
/// * `locked`: the rooms' rows in id order; `bumped`: each room's next event ids, given in
///   the batch's order; `edited`: the new content, `edited_at` and event id; `notified`:
///   each room's newest event.
///
/// Locks are taken messages → buckets → rooms, the order `chat_edit` takes them in. The
/// answer is one `chat_write` per edit, in the arrays' order, with the message as its
/// author now sees it (as `chat_write_message` answers).
pub const EDIT_BATCH: &str = r#"
    WITH item AS (
        SELECT t.i, t.room, t.id, t.usr, t.content
        FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[])
             WITH ORDINALITY AS t(room, id, usr, content, i)
    ),
    seen AS (
        SELECT item.i FROM item JOIN chat_rooms r ON r.id = item.room
        WHERE r.visibility = 'public' OR r.created_by = item.usr
           OR EXISTS (SELECT 1 FROM chat_room_members mm
                      WHERE mm.room_id = r.id AND mm.user_email = item.usr)
    ),
    target AS (
        SELECT m.id, m.room_id, m.user_email, m.deleted_at FROM chat_messages m
        WHERE m.id IN (SELECT item.id FROM item JOIN seen ON seen.i = item.i)
        ORDER BY m.id
        FOR UPDATE
    ),
    decided AS (
        SELECT item.i, item.room, item.id, item.usr, item.content,
               CASE WHEN seen.i IS NULL THEN 'room_not_found'
                    WHEN t.id IS NULL OR t.room_id <> item.room THEN 'message_not_found'
                    WHEN t.user_email <> item.usr THEN 'not_message_author'
                    WHEN t.deleted_at IS NOT NULL THEN 'message_deleted'
                    WHEN btrim(item.content, chat_white_space()) = ''
                         AND NOT EXISTS (SELECT 1 FROM chat_message_files f
                                         WHERE f.message_id = item.id) THEN 'content_required'
               END AS refused
        FROM item LEFT JOIN seen ON seen.i = item.i LEFT JOIN target t ON t.id = item.id
    ),
    took AS (
        INSERT INTO chat_rate_limits AS b (user_email, action, tokens, updated_at)
        SELECT d.usr, $5, $6 - 1, now() FROM decided d WHERE d.refused IS NULL ORDER BY d.usr
        ON CONFLICT (user_email, action) DO UPDATE
        SET tokens = LEAST($6, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $7) - 1,
            updated_at = GREATEST(now(), b.updated_at)
        WHERE LEAST($6, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $7) >= 1
        RETURNING b.user_email, b.tokens
    ),
    locked AS (
        SELECT r.id FROM chat_rooms r
        WHERE r.id IN (SELECT d.room FROM decided d JOIN took ON took.user_email = d.usr
                       WHERE d.refused IS NULL)
        ORDER BY r.id
        FOR NO KEY UPDATE
    ),
    ok AS (
        SELECT d.i, d.room, d.id, d.content,
               row_number() OVER (PARTITION BY d.room ORDER BY d.i) AS k
        FROM decided d JOIN took ON took.user_email = d.usr JOIN locked l ON l.id = d.room
        WHERE d.refused IS NULL
    ),
    bumped AS (
        UPDATE chat_rooms r SET last_event = r.last_event + n.n
        FROM (SELECT ok.room, count(*) AS n FROM ok GROUP BY ok.room) n
        WHERE r.id = n.room
        RETURNING r.id, r.last_event - n.n AS event0, r.last_event
    ),
    edited AS (
        UPDATE chat_messages m
        SET content = ok.content, edited_at = now(), event_id = b.event0 + ok.k
        FROM ok JOIN bumped b ON b.id = ok.room
        WHERE m.id = ok.id
        RETURNING ok.i, m.id, m.room_id, m.seq, m.event_id, m.created_event, m.user_email, m.content,
                  m.client_id, m.created_at, m.edited_at, m.deleted_at, m.reactions, m.reply_to,
                  m.reply_to_seq, m.reply_to_user, m.reply_excerpt, m.reply_count
    ),
    notified AS (
        SELECT count(pg_notify('chat_messages', b.id || ':' || b.last_event)) AS n FROM bumped b
    )
    SELECT CASE WHEN e.id IS NOT NULL THEN 'ok'
                WHEN d.refused IS NOT NULL THEN d.refused
                ELSE 'rate_limited' END AS outcome,
           took.tokens AS tokens_left,
           CASE WHEN e.id IS NULL AND d.refused IS NULL THEN COALESCE(
               (SELECT LEAST($6, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $7)
                FROM chat_rate_limits b WHERE b.user_email = d.usr AND b.action = $5), 0)
           END AS tokens_before,
           NULL::text[] AS trashed,
           e.id, e.room_id, e.seq, e.event_id, e.created_event, e.user_email, e.content,
           e.client_id, e.created_at, e.edited_at, e.deleted_at, e.reactions,
           CASE WHEN e.id IS NULL THEN NULL
                WHEN e.reactions = '[]' THEN '{}'::text[]
                ELSE ARRAY(SELECT x.emoji FROM chat_message_reactions x
                           WHERE x.message_id = e.id AND x.user_email = e.user_email
                           ORDER BY x.created_at) END AS mine,
           e.reply_to, e.reply_to_seq, e.reply_to_user, e.reply_excerpt, e.reply_count,
           CASE WHEN e.id IS NOT NULL THEN
               (SELECT COALESCE(json_agg(json_build_object(
                           'id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                           'content_type', f.content_type, 'size', f.size,
                           'width', f.width, 'height', f.height, 'thumbnail_key', f.thumbnail_key,
                           'placeholder', f.placeholder, 'served', f.served,
                           'served_size', f.served_size) ORDER BY f.id), '[]'::json)
                FROM chat_message_files f WHERE f.message_id = e.id) END AS files
    FROM decided d
    CROSS JOIN notified
    LEFT JOIN took ON took.user_email = d.usr AND d.refused IS NULL
    LEFT JOIN edited e ON e.i = d.i
    ORDER BY d.i
"#;

/// An edit waiting in the queue: owned, since it outlives the request's borrows.
#[derive(Debug, Clone)]
pub struct EditOf {
    pub room: RoomId,
    pub id: Uuid,
    pub user_email: String,
    pub content: MessageContent,
}

/// Sends `edits` (at most one per author) as one [`EDIT_BATCH`]; the outcomes come back in
/// `edits`' order. An author twice is refused before anything is sent.
pub async fn edit_batch(
    db: impl PgExecutor<'_>,
    edits: &[EditOf],
    limit: &RateLimit,
) -> sqlx::Result<Vec<WriteOutcome>> {
    distinct_authors(edits.iter().map(|e| e.user_email.as_str()))?;
    let rooms: Vec<&str> = edits.iter().map(|e| e.room.as_str()).collect();
    let ids: Vec<Uuid> = edits.iter().map(|e| e.id).collect();
    let users: Vec<&str> = edits.iter().map(|e| e.user_email.as_str()).collect();
    let contents: Vec<&str> = edits.iter().map(|e| e.content.as_str()).collect();
    let outcomes: Vec<WriteOutcome> = sqlx::query_as(EDIT_BATCH)
        .bind(rooms)
        .bind(ids)
        .bind(users)
        .bind(contents)
        .bind(limit.action)
        .bind(limit.capacity())
        .bind(limit.refill_per_sec())
        .fetch_all(db)
        .await?;
    answered_all(edits.len(), outcomes)
}

/// A batch touches each author's bucket once.
fn distinct_authors<'a>(authors: impl Iterator<Item = &'a str>) -> sqlx::Result<()> {
    let authors: Vec<&str> = authors.collect();
    match (0..authors.len()).find(|&i| authors[..i].contains(&authors[i])) {
        Some(i) => Err(sqlx::Error::Protocol(format!(
            "write {i} of a batch repeats an earlier write's author"
        ))),
        None => Ok(()),
    }
}

fn answered_all(sent: usize, outcomes: Vec<WriteOutcome>) -> sqlx::Result<Vec<WriteOutcome>> {
    if outcomes.len() != sent {
        return Err(sqlx::Error::Protocol(format!(
            "a batch of {sent} writes answered {} rows",
            outcomes.len()
        )));
    }
    Ok(outcomes)
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

/// Several deletes in ONE statement: what [`crate::db::write_queue`] sends when deletes
/// wait their turn, at most one per author and one per message. Each is decided as
/// `chat_delete` decides it alone, in the same order of checks, and takes its locks in the
/// same order (the message, the bucket, its replies, the room):
///
/// * `seen`: the rooms each deleter may see, with their owners (no lock); `target`: the
///   messages, locked in id order; `decided`: `room_not_found`, `message_not_found`,
///   `not_message_author`, or `again` (a tombstone), which answers the message as it is with
///   no token and no event;
/// * `took`: a token from each remaining deleter's bucket, in author order; `going`: the
///   deletes that took one;
/// * `replies`: the replies whose quotes are emptied, locked in id order; a reply that the
///   batch also deletes is one row changed twice, so `chat_batch_clash()` undoes the batch
///   (the queue then sends each delete alone);
/// * `locked`: the rooms' rows in id order, after the replies; `placed`: each delete's first
///   event id in its room, in the batch's order (the tombstone, then its replies in seq
///   order, as `chat_delete` gives them); `bumped`: each room's events and tombstones;
/// * `tombstoned`, `requoted`, `unreacted`, `gone` and `queued`: the tombstones, the emptied
///   quotes, the reactions, the files and their objects queued in the trash; `notified`:
///   each room's newest event.
///
/// The answer is one `chat_write` per delete, in the arrays' order: the tombstone as
/// `chat_delete` answers it, with `trashed`, the object keys to delete from storage.
pub const DELETE_BATCH: &str = r#"
    WITH item AS (
        SELECT t.i, t.room, t.id, t.usr
        FROM unnest($1::text[], $2::uuid[], $3::text[]) WITH ORDINALITY AS t(room, id, usr, i)
    ),
    seen AS (
        SELECT item.i, r.created_by AS owner FROM item JOIN chat_rooms r ON r.id = item.room
        WHERE r.visibility = 'public' OR r.created_by = item.usr
           OR EXISTS (SELECT 1 FROM chat_room_members mm
                      WHERE mm.room_id = r.id AND mm.user_email = item.usr)
    ),
    target AS (
        SELECT m.id, m.room_id, m.seq, m.event_id, m.created_event, m.user_email, m.content,
               m.client_id, m.created_at, m.edited_at, m.deleted_at, m.reactions, m.reply_to,
               m.reply_to_seq, m.reply_to_user, m.reply_excerpt, m.reply_count
        FROM chat_messages m
        WHERE m.id IN (SELECT item.id FROM item JOIN seen ON seen.i = item.i)
        ORDER BY m.id
        FOR UPDATE
    ),
    decided AS (
        SELECT item.i, item.room, item.id, item.usr,
               CASE WHEN s.i IS NULL THEN 'room_not_found'
                    WHEN t.id IS NULL OR t.room_id <> item.room THEN 'message_not_found'
                    WHEN t.user_email <> item.usr AND s.owner <> item.usr THEN 'not_message_author'
                    WHEN t.deleted_at IS NOT NULL THEN 'again'
               END AS refused
        FROM item LEFT JOIN seen s ON s.i = item.i LEFT JOIN target t ON t.id = item.id
    ),
    took AS (
        INSERT INTO chat_rate_limits AS b (user_email, action, tokens, updated_at)
        SELECT d.usr, $4, $5 - 1, now() FROM decided d WHERE d.refused IS NULL ORDER BY d.usr
        ON CONFLICT (user_email, action) DO UPDATE
        SET tokens = LEAST($5, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $6) - 1,
            updated_at = GREATEST(now(), b.updated_at)
        WHERE LEAST($5, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $6) >= 1
        RETURNING b.user_email, b.tokens
    ),
    going AS (
        SELECT d.i, d.room, d.id FROM decided d JOIN took ON took.user_email = d.usr
        WHERE d.refused IS NULL
    ),
    replies AS (
        SELECT m.id, m.reply_to, m.seq FROM chat_messages m
        WHERE m.reply_to IN (SELECT going.id FROM going) AND m.reply_excerpt <> ''
        ORDER BY m.id
        FOR UPDATE
    ),
    locked AS (
        SELECT r.id FROM chat_rooms r
        WHERE r.id IN (SELECT going.room FROM going)
          AND (SELECT count(*) FROM replies) >= 0
          AND NOT EXISTS (SELECT 1 FROM replies rp JOIN going g ON g.id = rp.id
                          WHERE chat_batch_clash())
        ORDER BY r.id
        FOR NO KEY UPDATE
    ),
    ok AS (
        SELECT g.i, g.room, g.id, 1 + count(rp.id) AS n
        FROM going g JOIN locked l ON l.id = g.room LEFT JOIN replies rp ON rp.reply_to = g.id
        GROUP BY g.i, g.room, g.id
    ),
    placed AS (
        SELECT ok.i, ok.room, ok.id,
               sum(ok.n) OVER (PARTITION BY ok.room ORDER BY ok.i) - ok.n AS off
        FROM ok
    ),
    bumped AS (
        UPDATE chat_rooms r
        SET last_event = r.last_event + s.n, deleted_count = r.deleted_count + s.k
        FROM (SELECT ok.room, sum(ok.n) AS n, count(*) AS k FROM ok GROUP BY ok.room) s
        WHERE r.id = s.room
        RETURNING r.id, r.last_event - s.n AS event0, r.last_event
    ),
    tombstoned AS (
        UPDATE chat_messages m
        SET content = '', reactions = '[]', deleted_at = now(), event_id = b.event0 + p.off + 1
        FROM placed p JOIN bumped b ON b.id = p.room
        WHERE m.id = p.id
        RETURNING p.i, m.id, m.room_id, m.seq, m.event_id, m.created_event, m.user_email,
                  m.content, m.client_id, m.created_at, m.edited_at, m.deleted_at, m.reply_to,
                  m.reply_to_seq, m.reply_to_user, m.reply_excerpt, m.reply_count
    ),
    requoted AS (
        UPDATE chat_messages m
        SET reply_excerpt = '', event_id = b.event0 + p.off + 1 + q.k
        FROM (SELECT rp.id, rp.reply_to,
                     row_number() OVER (PARTITION BY rp.reply_to ORDER BY rp.seq) AS k
              FROM replies rp) q
        JOIN placed p ON p.id = q.reply_to JOIN bumped b ON b.id = p.room
        WHERE m.id = q.id
    ),
    unreacted AS (
        DELETE FROM chat_message_reactions x USING ok WHERE x.message_id = ok.id
    ),
    gone AS (
        DELETE FROM chat_message_files f USING ok WHERE f.message_id = ok.id
        RETURNING f.message_id, f.object_key
    ),
    queued AS (
        INSERT INTO chat_object_trash (object_key) SELECT gone.object_key FROM gone
        ON CONFLICT (object_key) DO NOTHING
    ),
    notified AS (
        SELECT count(pg_notify('chat_messages', b.id || ':' || b.last_event)) AS n FROM bumped b
    )
    SELECT CASE WHEN w.i IS NOT NULL OR d.refused = 'again' THEN 'ok'
                WHEN d.refused IS NOT NULL THEN d.refused
                WHEN took.user_email IS NULL THEN 'rate_limited'
                ELSE 'room_not_found' END AS outcome,
           CASE WHEN w.i IS NOT NULL THEN took.tokens END AS tokens_left,
           CASE WHEN took.user_email IS NULL AND d.refused IS NULL THEN COALESCE(
               (SELECT LEAST($5, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $6)
                FROM chat_rate_limits b WHERE b.user_email = d.usr AND b.action = $4), 0)
           END AS tokens_before,
           CASE WHEN w.i IS NOT NULL THEN
               COALESCE((SELECT array_agg(g.object_key) FROM gone g WHERE g.message_id = w.id), '{}')
           END AS trashed,
           COALESCE(w.id, t.id) AS id, COALESCE(w.room_id, t.room_id) AS room_id,
           COALESCE(w.seq, t.seq) AS seq, COALESCE(w.event_id, t.event_id) AS event_id,
           COALESCE(w.created_event, t.created_event) AS created_event,
           COALESCE(w.user_email, t.user_email) AS user_email,
           COALESCE(w.content, t.content) AS content, COALESCE(w.client_id, t.client_id) AS client_id,
           COALESCE(w.created_at, t.created_at) AS created_at,
           COALESCE(w.edited_at, t.edited_at) AS edited_at,
           COALESCE(w.deleted_at, t.deleted_at) AS deleted_at,
           CASE WHEN w.i IS NOT NULL THEN '[]'::jsonb ELSE t.reactions END AS reactions,
           CASE WHEN w.i IS NOT NULL OR t.reactions = '[]' THEN '{}'::text[]
                WHEN t.id IS NOT NULL THEN
                    ARRAY(SELECT x.emoji FROM chat_message_reactions x
                          WHERE x.message_id = t.id AND x.user_email = d.usr
                          ORDER BY x.created_at) END AS mine,
           COALESCE(w.reply_to, t.reply_to) AS reply_to,
           COALESCE(w.reply_to_seq, t.reply_to_seq) AS reply_to_seq,
           COALESCE(w.reply_to_user, t.reply_to_user) AS reply_to_user,
           COALESCE(w.reply_excerpt, t.reply_excerpt) AS reply_excerpt,
           COALESCE(w.reply_count, t.reply_count) AS reply_count,
           CASE WHEN w.i IS NOT NULL THEN '[]'::json
                WHEN t.id IS NOT NULL THEN
                    (SELECT COALESCE(json_agg(json_build_object(
                                'id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                                'content_type', f.content_type, 'size', f.size,
                                'width', f.width, 'height', f.height, 'thumbnail_key', f.thumbnail_key,
                                'placeholder', f.placeholder, 'served', f.served,
                                'served_size', f.served_size) ORDER BY f.id), '[]'::json)
                     FROM chat_message_files f WHERE f.message_id = t.id) END AS files
    FROM decided d
    CROSS JOIN notified
    LEFT JOIN took ON took.user_email = d.usr AND d.refused IS NULL
    LEFT JOIN tombstoned w ON w.i = d.i
    LEFT JOIN target t ON t.id = d.id AND d.refused = 'again'
    ORDER BY d.i
"#;

/// A delete waiting in the queue.
#[derive(Debug, Clone)]
pub struct DeleteOf {
    pub room: RoomId,
    pub id: Uuid,
    pub user_email: String,
}

/// Sends `deletes` (at most one per author and one per message) as one [`DELETE_BATCH`];
/// the outcomes come back in `deletes`' order. A batch holding a reply and its original
/// fails whole (`CH409`, nothing written).
pub async fn delete_batch(
    db: impl PgExecutor<'_>,
    deletes: &[DeleteOf],
    limit: &RateLimit,
) -> sqlx::Result<Vec<WriteOutcome>> {
    distinct_authors(deletes.iter().map(|d| d.user_email.as_str()))?;
    let ids: Vec<Uuid> = deletes.iter().map(|d| d.id).collect();
    if (0..ids.len()).any(|i| ids[..i].contains(&ids[i])) {
        return Err(sqlx::Error::Protocol(
            "a batch of deletes names one message twice".into(),
        ));
    }
    let rooms: Vec<&str> = deletes.iter().map(|d| d.room.as_str()).collect();
    let users: Vec<&str> = deletes.iter().map(|d| d.user_email.as_str()).collect();
    let outcomes: Vec<WriteOutcome> = sqlx::query_as(DELETE_BATCH)
        .bind(rooms)
        .bind(ids)
        .bind(users)
        .bind(limit.action)
        .bind(limit.capacity())
        .bind(limit.refill_per_sec())
        .fetch_all(db)
        .await?;
    answered_all(deletes.len(), outcomes)
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

/// Several reaction changes in ONE statement: what [`crate::db::write_queue`] sends when
/// they wait their turn, at most one per author and one per message. Each is decided as
/// `chat_react` decides it alone, in the same order of checks:
///
/// * `seen`, `target` (the messages, locked in id order), `decided`: `room_not_found`,
///   `message_not_found`, `message_deleted` (adding to a tombstone), `too_many_reactions`,
///   or `unchanged` (adding one already there, removing one that is not, removing from a
///   tombstone), which answers the message as it is with no token and no event;
/// * `took`, `locked`, `bumped`: a token each, then the rooms' rows in id order and their
///   next event ids in the batch's order;
/// * `added`, `removed`, `changed`: the reaction rows, then the message's counts (the same
///   expression as `chat_react`) and event id; `notified`: each room's newest event.
///
/// Locks are taken messages → buckets → rooms, the order `chat_react` takes them in. The
/// answer is one `chat_write` per change, in the arrays' order, with the message as the
/// reacting user now sees it (`mine`: their reactions before, with this change applied).
pub const REACT_BATCH: &str = r#"
    WITH item AS (
        SELECT t.i, t.room, t.id, t.usr, t.emoji, t.add
        FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::bool[])
             WITH ORDINALITY AS t(room, id, usr, emoji, add, i)
    ),
    seen AS (
        SELECT item.i FROM item JOIN chat_rooms r ON r.id = item.room
        WHERE r.visibility = 'public' OR r.created_by = item.usr
           OR EXISTS (SELECT 1 FROM chat_room_members mm
                      WHERE mm.room_id = r.id AND mm.user_email = item.usr)
    ),
    target AS (
        SELECT m.id, m.room_id, m.seq, m.event_id, m.created_event, m.user_email, m.content,
               m.client_id, m.created_at, m.edited_at, m.deleted_at, m.reactions, m.reply_to,
               m.reply_to_seq, m.reply_to_user, m.reply_excerpt, m.reply_count
        FROM chat_messages m
        WHERE m.id IN (SELECT item.id FROM item JOIN seen ON seen.i = item.i)
        ORDER BY m.id
        FOR UPDATE
    ),
    decided AS (
        SELECT item.i, item.room, item.id, item.usr, item.emoji, item.add,
               ARRAY(SELECT x.emoji FROM chat_message_reactions x
                     WHERE x.message_id = item.id AND x.user_email = item.usr
                     ORDER BY x.created_at) AS mine,
               CASE WHEN seen.i IS NULL THEN 'room_not_found'
                    WHEN t.id IS NULL OR t.room_id <> item.room THEN 'message_not_found'
                    WHEN t.deleted_at IS NOT NULL AND item.add THEN 'message_deleted'
                    WHEN t.deleted_at IS NOT NULL THEN 'unchanged'
                    WHEN EXISTS (SELECT 1 FROM chat_message_reactions x
                                 WHERE x.message_id = item.id AND x.user_email = item.usr
                                   AND x.emoji = item.emoji) = item.add THEN 'unchanged'
                    WHEN item.add AND jsonb_array_length(t.reactions) >= $6
                         AND NOT jsonb_path_exists(t.reactions, '$[*] ? (@.emoji == $e)',
                                                   jsonb_build_object('e', item.emoji))
                         THEN 'too_many_reactions'
               END AS refused
        FROM item LEFT JOIN seen ON seen.i = item.i LEFT JOIN target t ON t.id = item.id
    ),
    took AS (
        INSERT INTO chat_rate_limits AS b (user_email, action, tokens, updated_at)
        SELECT d.usr, $7, $8 - 1, now() FROM decided d WHERE d.refused IS NULL ORDER BY d.usr
        ON CONFLICT (user_email, action) DO UPDATE
        SET tokens = LEAST($8, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $9) - 1,
            updated_at = GREATEST(now(), b.updated_at)
        WHERE LEAST($8, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $9) >= 1
        RETURNING b.user_email, b.tokens
    ),
    locked AS (
        SELECT r.id FROM chat_rooms r
        WHERE r.id IN (SELECT d.room FROM decided d JOIN took ON took.user_email = d.usr
                       WHERE d.refused IS NULL)
        ORDER BY r.id
        FOR NO KEY UPDATE
    ),
    ok AS (
        SELECT d.i, d.room, d.id, d.usr, d.emoji, d.add,
               row_number() OVER (PARTITION BY d.room ORDER BY d.i) AS k
        FROM decided d JOIN took ON took.user_email = d.usr JOIN locked l ON l.id = d.room
        WHERE d.refused IS NULL
    ),
    bumped AS (
        UPDATE chat_rooms r SET last_event = r.last_event + n.n
        FROM (SELECT ok.room, count(*) AS n FROM ok GROUP BY ok.room) n
        WHERE r.id = n.room
        RETURNING r.id, r.last_event - n.n AS event0, r.last_event
    ),
    added AS (
        INSERT INTO chat_message_reactions (message_id, user_email, emoji)
        SELECT ok.id, ok.usr, ok.emoji FROM ok WHERE ok.add
    ),
    removed AS (
        DELETE FROM chat_message_reactions x USING ok
        WHERE NOT ok.add AND x.message_id = ok.id AND x.user_email = ok.usr AND x.emoji = ok.emoji
    ),
    changed AS (
        UPDATE chat_messages m
        SET event_id = b.event0 + ok.k,
            reactions = CASE
                WHEN ok.add AND NOT jsonb_path_exists(m.reactions, '$[*] ? (@.emoji == $e)',
                                                      jsonb_build_object('e', ok.emoji))
                THEN m.reactions || jsonb_build_array(jsonb_build_object('emoji', ok.emoji, 'count', 1))
                ELSE COALESCE((
                    SELECT jsonb_agg(t.e ORDER BY t.ord)
                    FROM (SELECT CASE WHEN x.e->>'emoji' = ok.emoji
                                      THEN jsonb_set(x.e, '{count}',
                                                     to_jsonb((x.e->>'count')::int + CASE WHEN ok.add THEN 1 ELSE -1 END))
                                      ELSE x.e END AS e,
                                 x.ord
                          FROM jsonb_array_elements(m.reactions) WITH ORDINALITY AS x(e, ord)) t
                    WHERE (t.e->>'count')::int > 0), '[]')
            END
        FROM ok JOIN bumped b ON b.id = ok.room
        WHERE m.id = ok.id
        RETURNING ok.i, m.event_id, m.reactions
    ),
    notified AS (
        SELECT count(pg_notify('chat_messages', b.id || ':' || b.last_event)) AS n FROM bumped b
    )
    SELECT CASE WHEN c.i IS NOT NULL OR d.refused = 'unchanged' THEN 'ok'
                WHEN d.refused IS NOT NULL THEN d.refused
                ELSE 'rate_limited' END AS outcome,
           took.tokens AS tokens_left,
           CASE WHEN c.i IS NULL AND d.refused IS NULL THEN COALESCE(
               (SELECT LEAST($8, b.tokens + GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)) * $9)
                FROM chat_rate_limits b WHERE b.user_email = d.usr AND b.action = $7), 0)
           END AS tokens_before,
           NULL::text[] AS trashed,
           t.id, t.room_id, t.seq, COALESCE(c.event_id, t.event_id) AS event_id, t.created_event,
           t.user_email, t.content, t.client_id, t.created_at, t.edited_at, t.deleted_at,
           COALESCE(c.reactions, t.reactions) AS reactions,
           CASE WHEN c.i IS NULL THEN d.mine
                WHEN d.add THEN array_append(d.mine, d.emoji)
                ELSE array_remove(d.mine, d.emoji) END AS mine,
           t.reply_to, t.reply_to_seq, t.reply_to_user, t.reply_excerpt, t.reply_count,
           (SELECT COALESCE(json_agg(json_build_object(
                       'id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                       'content_type', f.content_type, 'size', f.size,
                       'width', f.width, 'height', f.height, 'thumbnail_key', f.thumbnail_key,
                       'placeholder', f.placeholder, 'served', f.served,
                       'served_size', f.served_size) ORDER BY f.id), '[]'::json)
            FROM chat_message_files f WHERE f.message_id = t.id) AS files
    FROM decided d
    CROSS JOIN notified
    LEFT JOIN took ON took.user_email = d.usr AND d.refused IS NULL
    LEFT JOIN changed c ON c.i = d.i
    LEFT JOIN target t ON t.id = d.id AND (c.i IS NOT NULL OR d.refused = 'unchanged')
    ORDER BY d.i
"#;

/// A reaction change waiting in the queue.
#[derive(Debug, Clone)]
pub struct ReactionOf {
    pub room: RoomId,
    pub id: Uuid,
    pub user_email: String,
    pub emoji: Emoji,
    pub add: bool,
}

/// Sends `changes` (at most one per author and one per message) as one [`REACT_BATCH`];
/// the outcomes come back in `changes`' order.
pub async fn react_batch(
    db: impl PgExecutor<'_>,
    changes: &[ReactionOf],
    limit: &RateLimit,
) -> sqlx::Result<Vec<WriteOutcome>> {
    distinct_authors(changes.iter().map(|c| c.user_email.as_str()))?;
    let ids: Vec<Uuid> = changes.iter().map(|c| c.id).collect();
    if (0..ids.len()).any(|i| ids[..i].contains(&ids[i])) {
        return Err(sqlx::Error::Protocol(
            "a batch of reactions names one message twice".into(),
        ));
    }
    let rooms: Vec<&str> = changes.iter().map(|c| c.room.as_str()).collect();
    let users: Vec<&str> = changes.iter().map(|c| c.user_email.as_str()).collect();
    let emoji: Vec<&str> = changes.iter().map(|c| c.emoji.as_str()).collect();
    let adds: Vec<bool> = changes.iter().map(|c| c.add).collect();
    let outcomes: Vec<WriteOutcome> = sqlx::query_as(REACT_BATCH)
        .bind(rooms)
        .bind(ids)
        .bind(users)
        .bind(emoji)
        .bind(adds)
        .bind(MAX_EMOJI_PER_MESSAGE)
        .bind(limit.action)
        .bind(limit.capacity())
        .bind(limit.refill_per_sec())
        .fetch_all(db)
        .await?;
    answered_all(changes.len(), outcomes)
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
