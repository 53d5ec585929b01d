//! Queries of the archive tier (`chat_archive_segments`) and of retention
//! (`migrations/20261203000003_archive.sql`, `crate::archive`).

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgExecutor, Postgres, Transaction};
use uuid::Uuid;

/// Rooms whose oldest hot message is due to move: beyond the newest `$1` of the room
/// (`NULL`: no count rule), or created before `$2` (`NULL`: no age rule). One probe of
/// `chat_messages_room_seq_key` per room, from `$3` on (exclusive) in id order, at most
/// `$4`.
pub const ROOMS_TO_ARCHIVE: &str = r#"
    SELECT r.id FROM chat_rooms r
    CROSS JOIN LATERAL (SELECT m.seq, m.created_at FROM chat_messages m
                        WHERE m.room_id = r.id ORDER BY m.seq ASC LIMIT 1) o
    WHERE r.id > $3
      AND (($1::bigint IS NOT NULL AND o.seq <= r.last_seq - $1::bigint)
           OR ($2::timestamptz IS NOT NULL AND o.created_at < $2::timestamptz))
    ORDER BY r.id
    LIMIT $4
"#;

pub async fn rooms_to_archive(
    db: impl PgExecutor<'_>,
    keep: Option<i64>,
    before: Option<DateTime<Utc>>,
    after_room: &str,
    limit: i64,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(ROOMS_TO_ARCHIVE)
        .bind(keep)
        .bind(before)
        .bind(after_room)
        .bind(limit)
        .fetch_all(db)
        .await
}

/// The oldest `$2` hot messages of room `$1` by seq, each whole as JSON: its row
/// (`to_jsonb`), its files' rows and who reacted with what, oldest reaction first; with
/// the room's `last_seq` and `last_event`. Through `chat_messages_room_seq_key`, the files'
/// and reactions' indexes.
pub const OLDEST_HOT: &str = r#"
    SELECT to_jsonb(m)
           || jsonb_build_object(
                'files', COALESCE((SELECT jsonb_agg(to_jsonb(f) ORDER BY f.id)
                                   FROM chat_message_files f WHERE f.message_id = m.id), '[]'),
                'reactors', COALESCE((SELECT jsonb_agg(jsonb_build_object(
                                          'user_email', x.user_email, 'emoji', x.emoji,
                                          'created_at', x.created_at)
                                          ORDER BY x.created_at, x.user_email, x.emoji)
                                      FROM chat_message_reactions x WHERE x.message_id = m.id), '[]'))
           AS message,
           r.last_seq, r.last_event
    FROM chat_messages m
    CROSS JOIN (SELECT last_seq, last_event FROM chat_rooms WHERE id = $1) r
    WHERE m.room_id = $1
    ORDER BY m.seq ASC
    LIMIT $2
"#;

pub async fn oldest_hot<T: serde::de::DeserializeOwned + Send + Unpin + 'static>(
    db: impl PgExecutor<'_>,
    room: &str,
    limit: i64,
) -> sqlx::Result<Vec<(Json<T>, i64, i64)>> {
    sqlx::query_as(OLDEST_HOT)
        .bind(room)
        .bind(limit)
        .fetch_all(db)
        .await
}

/// Locks messages `$1` (seq order, before any room row, the order every write takes) and
/// answers their `(id, event_id)`: the move checks they are unchanged since it read them.
pub const LOCK_MESSAGES: &str = r#"
    SELECT m.id, m.event_id FROM chat_messages m
    WHERE m.id = ANY($1)
    ORDER BY m.seq
    FOR UPDATE
"#;

pub async fn lock_messages(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[Uuid],
) -> sqlx::Result<Vec<(Uuid, i64)>> {
    sqlx::query_as(LOCK_MESSAGES)
        .bind(ids)
        .fetch_all(&mut **tx)
        .await
}

/// A segment as recorded.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SegmentRow {
    pub object_key: String,
    pub room_id: String,
    pub first_seq: i64,
    pub last_seq: i64,
    pub max_event: i64,
    pub messages: i32,
    pub bytes: i64,
    pub min_id: Uuid,
    pub max_id: Uuid,
    pub oldest_at: DateTime<Utc>,
    pub newest_at: DateTime<Utc>,
    pub reply_parents: Vec<Uuid>,
}

/// Records a segment; a second insert of the same key (a rerun) changes nothing.
pub const INSERT_SEGMENT: &str = r#"
    INSERT INTO chat_archive_segments (object_key, room_id, first_seq, last_seq, max_event,
                                       messages, bytes, min_id, max_id, oldest_at, newest_at,
                                       reply_parents)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
    ON CONFLICT (object_key) DO NOTHING
"#;

pub async fn insert_segment(
    tx: &mut Transaction<'_, Postgres>,
    s: &SegmentRow,
) -> sqlx::Result<()> {
    sqlx::query(INSERT_SEGMENT)
        .bind(&s.object_key)
        .bind(&s.room_id)
        .bind(s.first_seq)
        .bind(s.last_seq)
        .bind(s.max_event)
        .bind(s.messages)
        .bind(s.bytes)
        .bind(s.min_id)
        .bind(s.max_id)
        .bind(s.oldest_at)
        .bind(s.newest_at)
        .bind(&s.reply_parents)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Deletes messages `$1` from the hot tables (their files' rows and reactions go with them,
/// `ON DELETE CASCADE`); the thumbnails the files' trigger queued in `chat_object_trash`
/// are taken out again, for they live on in the segment. Answers how many rows went.
pub const DELETE_MOVED: &str = r#"
    WITH thumbs AS (
        SELECT f.thumbnail_key FROM chat_message_files f
        WHERE f.message_id = ANY($1) AND f.thumbnail_key IS NOT NULL
    ), gone AS (
        DELETE FROM chat_messages m WHERE m.id = ANY($1) RETURNING m.id
    )
    SELECT (SELECT count(*) FROM gone), ARRAY(SELECT thumbnail_key FROM thumbs)
"#;

/// Takes back the thumbnails the delete's trigger queued (they are the segment's).
pub const UNTRASH: &str = r#"
    DELETE FROM chat_object_trash t WHERE t.object_key = ANY($1)
"#;

pub async fn delete_moved(tx: &mut Transaction<'_, Postgres>, ids: &[Uuid]) -> sqlx::Result<i64> {
    let (gone, thumbs): (i64, Vec<String>) = sqlx::query_as(DELETE_MOVED)
        .bind(ids)
        .fetch_one(&mut **tx)
        .await?;
    if !thumbs.is_empty() {
        sqlx::query(UNTRASH)
            .bind(&thumbs)
            .execute(&mut **tx)
            .await?;
    }
    Ok(gone)
}

/// Raises room `$1`'s `archived_seq` to `$2` and `history_floor` to `$3` (each only grows).
pub const RAISE_MARKS: &str = r#"
    UPDATE chat_rooms r
    SET archived_seq = GREATEST(r.archived_seq, $2),
        history_floor = GREATEST(r.history_floor, $3)
    WHERE r.id = $1
"#;

pub async fn raise_marks(
    tx: &mut Transaction<'_, Postgres>,
    room: &str,
    archived_seq: i64,
    floor: i64,
) -> sqlx::Result<()> {
    sqlx::query(RAISE_MARKS)
        .bind(room)
        .bind(archived_seq)
        .bind(floor)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Keeps room `$1`'s operator counters (`migrations/20261203000002_stats.sql`) right
/// across the tiers: `$2` more messages gone outright (not tombstoned first), `$3` bytes of
/// files that stay in storage though their rows left (a move: the storage trigger took
/// them off) or that left storage with no row to tell the trigger (retention of a
/// segment, as a negative).
pub const ADJUST_COUNTERS: &str = r#"
    UPDATE chat_rooms r
    SET deleted_count = r.deleted_count + $2, storage_bytes = r.storage_bytes + $3
    WHERE r.id = $1
"#;

pub async fn adjust_counters(
    tx: &mut Transaction<'_, Postgres>,
    room: &str,
    deleted: i64,
    bytes: i64,
) -> sqlx::Result<()> {
    if deleted == 0 && bytes == 0 {
        return Ok(());
    }
    sqlx::query(ADJUST_COUNTERS)
        .bind(room)
        .bind(deleted)
        .bind(bytes)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Whether a segment row names `$1`.
pub const SEGMENT_EXISTS: &str = r#"
    SELECT EXISTS (SELECT 1 FROM chat_archive_segments s WHERE s.object_key = $1)
"#;

pub async fn segment_exists(db: impl PgExecutor<'_>, key: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar(SEGMENT_EXISTS)
        .bind(key)
        .fetch_one(db)
        .await
}

/// Room `$1`'s segments holding a seq below `$2`, newest range first, at most `$3`, through
/// `chat_archive_segments_room_seq` (a descending page's reads).
pub const SEGMENTS_BELOW: &str = r#"
    SELECT s.object_key, s.room_id, s.first_seq, s.last_seq, s.max_event, s.messages, s.bytes,
           s.min_id, s.max_id, s.oldest_at, s.newest_at, s.reply_parents
    FROM chat_archive_segments s
    WHERE s.room_id = $1 AND s.first_seq < $2
    ORDER BY s.last_seq DESC
    LIMIT $3
"#;

pub async fn segments_below(
    db: impl PgExecutor<'_>,
    room: &str,
    below: i64,
    limit: i64,
) -> sqlx::Result<Vec<SegmentRow>> {
    sqlx::query_as(SEGMENTS_BELOW)
        .bind(room)
        .bind(below)
        .bind(limit)
        .fetch_all(db)
        .await
}

/// Room `$1`'s segments holding a seq above `$2`, oldest range first, at most `$3` (an
/// ascending page's reads).
pub const SEGMENTS_ABOVE: &str = r#"
    SELECT s.object_key, s.room_id, s.first_seq, s.last_seq, s.max_event, s.messages, s.bytes,
           s.min_id, s.max_id, s.oldest_at, s.newest_at, s.reply_parents
    FROM chat_archive_segments s
    WHERE s.room_id = $1 AND s.last_seq > $2
    ORDER BY s.first_seq ASC
    LIMIT $3
"#;

pub async fn segments_above(
    db: impl PgExecutor<'_>,
    room: &str,
    above: i64,
    limit: i64,
) -> sqlx::Result<Vec<SegmentRow>> {
    sqlx::query_as(SEGMENTS_ABOVE)
        .bind(room)
        .bind(above)
        .bind(limit)
        .fetch_all(db)
        .await
}

/// Room `$1`'s segments that may hold message `$2` (its id within their id range), newest
/// first.
pub const SEGMENTS_WITH_ID: &str = r#"
    SELECT s.object_key, s.room_id, s.first_seq, s.last_seq, s.max_event, s.messages, s.bytes,
           s.min_id, s.max_id, s.oldest_at, s.newest_at, s.reply_parents
    FROM chat_archive_segments s
    WHERE s.room_id = $1 AND s.min_id <= $2 AND s.max_id >= $2
    ORDER BY s.max_event DESC
    LIMIT 16
"#;

pub async fn segments_with_id(
    db: impl PgExecutor<'_>,
    room: &str,
    id: Uuid,
) -> sqlx::Result<Vec<SegmentRow>> {
    sqlx::query_as(SEGMENTS_WITH_ID)
        .bind(room)
        .bind(id)
        .fetch_all(db)
        .await
}

/// Room `$1`'s segments holding replies to message `$2`, oldest range first.
pub const SEGMENTS_WITH_REPLIES: &str = r#"
    SELECT s.object_key, s.room_id, s.first_seq, s.last_seq, s.max_event, s.messages, s.bytes,
           s.min_id, s.max_id, s.oldest_at, s.newest_at, s.reply_parents
    FROM chat_archive_segments s
    WHERE s.room_id = $1 AND $2 = ANY(s.reply_parents) AND s.last_seq > $3
    ORDER BY s.first_seq ASC
    LIMIT 64
"#;

pub async fn segments_with_replies(
    db: impl PgExecutor<'_>,
    room: &str,
    parent: Uuid,
    after: i64,
) -> sqlx::Result<Vec<SegmentRow>> {
    sqlx::query_as(SEGMENTS_WITH_REPLIES)
        .bind(room)
        .bind(parent)
        .bind(after)
        .fetch_all(db)
        .await
}

/// Segments holding a message created before `$1`, oldest first, at most `$2`, through
/// `chat_archive_segments_oldest` (retention).
pub const SEGMENTS_EXPIRED: &str = r#"
    SELECT s.object_key, s.room_id, s.first_seq, s.last_seq, s.max_event, s.messages, s.bytes,
           s.min_id, s.max_id, s.oldest_at, s.newest_at, s.reply_parents
    FROM chat_archive_segments s
    WHERE s.oldest_at < $1
    ORDER BY s.oldest_at
    LIMIT $2
"#;

pub async fn segments_expired(
    db: impl PgExecutor<'_>,
    before: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<SegmentRow>> {
    sqlx::query_as(SEGMENTS_EXPIRED)
        .bind(before)
        .bind(limit)
        .fetch_all(db)
        .await
}

/// Deletes the row of segment `$1` if it is still there, locking it; answers whether it was.
pub const DELETE_SEGMENT: &str = r#"
    DELETE FROM chat_archive_segments s WHERE s.object_key = $1 RETURNING s.object_key
"#;

pub async fn delete_segment(tx: &mut Transaction<'_, Postgres>, key: &str) -> sqlx::Result<bool> {
    let gone: Option<String> = sqlx::query_scalar(DELETE_SEGMENT)
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(gone.is_some())
}

/// Queues objects for deletion (`chat_object_trash`, which the cleanup cron retries): written
/// in the transaction that forgets them, so a crash before storage deletes them loses none.
pub const TRASH: &str = r#"
    INSERT INTO chat_object_trash (object_key) SELECT unnest($1::text[])
    ON CONFLICT (object_key) DO NOTHING
"#;

pub async fn trash(tx: &mut Transaction<'_, Postgres>, keys: &[String]) -> sqlx::Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query(TRASH).bind(keys).execute(&mut **tx).await?;
    Ok(())
}

/// Rooms whose oldest hot message was created before `$1`, from `$2` on (exclusive), at
/// most `$3` (retention's hot side; one probe per room as in [`ROOMS_TO_ARCHIVE`]).
pub const ROOMS_EXPIRED: &str = r#"
    SELECT r.id FROM chat_rooms r
    CROSS JOIN LATERAL (SELECT m.created_at FROM chat_messages m
                        WHERE m.room_id = r.id ORDER BY m.seq ASC LIMIT 1) o
    WHERE r.id > $2 AND o.created_at < $1
    ORDER BY r.id
    LIMIT $3
"#;

pub async fn rooms_expired(
    db: impl PgExecutor<'_>,
    before: DateTime<Utc>,
    after_room: &str,
    limit: i64,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(ROOMS_EXPIRED)
        .bind(before)
        .bind(after_room)
        .bind(limit)
        .fetch_all(db)
        .await
}

/// Deletes up to `$3` of room `$1`'s oldest hot messages created before `$2`, locked in
/// seq order. In one statement: their files' keys (and thumbnails) are queued in
/// `chat_object_trash` (the server deletes them after the commit, the cleanup cron retries
/// what it could not), the quotes of the replies to them are emptied (a reply kept the
/// first 100 characters of its original), and the room's `history_floor` rises to the
/// newest of their event ids. Answers how many went, and the keys queued.
pub const PURGE_HOT: &str = r#"
    WITH doomed AS (
        SELECT m.id, m.event_id, m.deleted_at FROM chat_messages m
        WHERE m.room_id = $1 AND m.id IN (SELECT o.id FROM chat_messages o
                                          WHERE o.room_id = $1
                                          ORDER BY o.seq ASC LIMIT $3)
          AND m.created_at < $2
        ORDER BY m.seq
        FOR UPDATE
    ), keys AS (
        SELECT f.object_key AS k FROM chat_message_files f WHERE f.message_id IN (SELECT id FROM doomed)
        UNION ALL
        SELECT f.thumbnail_key FROM chat_message_files f
        WHERE f.message_id IN (SELECT id FROM doomed) AND f.thumbnail_key IS NOT NULL
    ), queued AS (
        INSERT INTO chat_object_trash (object_key) SELECT k FROM keys
        ON CONFLICT (object_key) DO NOTHING
    ), quotes AS (
        UPDATE chat_messages q SET reply_excerpt = ''
        WHERE q.reply_to IN (SELECT id FROM doomed) AND q.reply_excerpt <> ''
          AND q.id NOT IN (SELECT id FROM doomed)
    ), gone AS (
        DELETE FROM chat_messages m WHERE m.id IN (SELECT id FROM doomed) RETURNING m.id
    ), floor AS (
        UPDATE chat_rooms r SET history_floor = GREATEST(r.history_floor,
                                                         (SELECT max(event_id) FROM doomed)),
                                deleted_count = r.deleted_count
                                    + (SELECT count(*) FROM doomed WHERE deleted_at IS NULL)
        WHERE r.id = $1 AND EXISTS (SELECT 1 FROM doomed)
    )
    SELECT (SELECT count(*) FROM gone), ARRAY(SELECT k FROM keys)
"#;

pub async fn purge_hot(
    tx: &mut Transaction<'_, Postgres>,
    room: &str,
    before: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<(i64, Vec<String>)> {
    sqlx::query_as(PURGE_HOT)
        .bind(room)
        .bind(before)
        .bind(limit)
        .fetch_one(&mut **tx)
        .await
}

/// Raises room `$1`'s `history_floor` to `$2`.
pub const RAISE_FLOOR: &str = r#"
    UPDATE chat_rooms r SET history_floor = GREATEST(r.history_floor, $2) WHERE r.id = $1
"#;

pub async fn raise_floor(
    tx: &mut Transaction<'_, Postgres>,
    room: &str,
    floor: i64,
) -> sqlx::Result<()> {
    sqlx::query(RAISE_FLOOR)
        .bind(room)
        .bind(floor)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Brings archived message `$1` (a segment's JSON of it, [`OLDEST_HOT`]'s shape) back into
/// the hot tables, in room `$2`, if user `$3` may see the room and it is not hot already:
/// its row, its files' rows and its reactions, as they were archived. Answers whether it
/// was brought back. The columns are named: a column the segment lacks takes its default.
pub const RESTORE: &str = r#"
    WITH visible AS (
        SELECT chat_visible_owner($2, $3) IS NOT NULL AS ok
    ), msg AS (
        INSERT INTO chat_messages (id, room_id, seq, event_id, created_event, user_email, content,
                                   client_id, created_at, edited_at, deleted_at, reactions,
                                   reply_to, reply_to_seq, reply_to_user, reply_excerpt,
                                   reply_count)
        SELECT r.id, r.room_id, r.seq, r.event_id, r.created_event, r.user_email, r.content,
               r.client_id, r.created_at, r.edited_at, r.deleted_at, r.reactions, r.reply_to,
               r.reply_to_seq, r.reply_to_user, r.reply_excerpt, r.reply_count
        FROM jsonb_populate_record(NULL::chat_messages, $1) r, visible v
        WHERE v.ok AND r.room_id = $2
        ON CONFLICT DO NOTHING
        RETURNING id
    ), files AS (
        INSERT INTO chat_message_files (id, message_id, object_key, file_name, content_type,
                                        size, created_at, width, height, thumbnail_key,
                                        placeholder, served_size, served)
        SELECT f.id, f.message_id, f.object_key, f.file_name, f.content_type, f.size,
               f.created_at, f.width, f.height, f.thumbnail_key, f.placeholder,
               f.served_size, f.served
        FROM jsonb_populate_recordset(NULL::chat_message_files, $1->'files') f
        WHERE EXISTS (SELECT 1 FROM msg)
        ON CONFLICT DO NOTHING
    ), reactions AS (
        INSERT INTO chat_message_reactions (message_id, user_email, emoji, created_at)
        SELECT ($1->>'id')::uuid, x.user_email, x.emoji, x.created_at
        FROM jsonb_to_recordset($1->'reactors') AS x(user_email text, emoji text, created_at timestamptz)
        WHERE EXISTS (SELECT 1 FROM msg)
        ON CONFLICT DO NOTHING
    ), counted AS (
        -- The files' bytes never left the room's storage count (the move kept them): the
        -- insert's trigger adds them again, so they come off here.
        UPDATE chat_rooms r
        SET storage_bytes = r.storage_bytes
            - (SELECT COALESCE(sum((f->>'size')::bigint), 0) FROM jsonb_array_elements($1->'files') f)
        WHERE r.id = $2 AND EXISTS (SELECT 1 FROM msg)
    )
    SELECT EXISTS (SELECT 1 FROM msg)
"#;

pub async fn restore(
    db: impl PgExecutor<'_>,
    message: &serde_json::Value,
    room: &str,
    user: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(RESTORE)
        .bind(Json(message))
        .bind(room)
        .bind(user)
        .fetch_one(db)
        .await
}
