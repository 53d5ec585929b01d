//! The direct Postgres connection (`--database-url`): `pg_stat_database` figures, seeding
//! the deep room with `generate_series`, and `EXPLAIN (ANALYZE, BUFFERS)`.

use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The servers' database, as the benchmark sees it.
pub struct Db {
    pool: PgPool,
    pub url: String,
}

/// The columns of a listed message, as `shared::db::messages` selects them (`LIST_PAGE_*`),
/// for viewer `$4`: reaction counts from the row, the viewer's own (`mine`) only where there
/// are any, the reply quote, files, and the room's newest event. A copy (the tool links
/// nothing of the product): EXPLAIN must show the query the server runs, and a test keeps
/// [`list_sql`] the same statements.
const MESSAGE_COLUMNS: &str = r#"
        m.id, m.room_id, m.seq, m.event_id, m.created_event, m.user_email, m.content,
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
"#;

/// The visibility check of every list query (viewer `$4`).
const VISIBLE: &str = r#"
      AND EXISTS (SELECT 1 FROM chat_rooms r
                  WHERE r.id = $1
                    AND (r.visibility = 'public' OR r.created_by = $4
                         OR EXISTS (SELECT 1 FROM chat_room_members mm
                                    WHERE mm.room_id = r.id AND mm.user_email = $4)))
"#;

/// `GET /api/rooms` for user `$1`, at most `$2` rooms: `shared::db::rooms::LIST_ROOMS`. A
/// copy (the tool links nothing of the product); a test keeps it the same statement.
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

/// The emoji seeded reactions use, in first-reacted order.
const SEED_EMOJI: &str = "ARRAY['👍', '❤️', '😂']";

/// The list queries of `GET /api/rooms/{room}/messages`: newest, `before`, `after`.
pub fn list_sql(kind: ListKind) -> String {
    let (condition, order) = match kind {
        ListKind::Newest => ("m.seq > $2", "DESC"),
        ListKind::Before => ("m.seq < $2", "DESC"),
        ListKind::After => ("m.seq > $2", "ASC"),
    };
    format!(
        "SELECT {MESSAGE_COLUMNS} FROM chat_messages m WHERE m.room_id = $1 AND {condition} {VISIBLE} ORDER BY m.seq {order} LIMIT $3"
    )
}

/// `GET /api/rooms/{room}/search`: room `$1`, `seq < $2`, at most `$3`, viewer `$4`, query
/// `$5` parsed with configuration `$6`, the newest `$7` tested one by one before the index
/// is asked: `shared::db::messages::SEARCH`. A copy (the tool
/// links nothing of the product); a test keeps it the same statement.
/// `shared::db::messages::SEARCH_WINDOW` (a test keeps it the same).
pub const SEARCH_WINDOW: i64 = 2000;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    Newest,
    Before,
    After,
}

impl Db {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options =
            PgConnectOptions::from_str(url).context("--database-url is not a Postgres URL")?;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .context("connect to --database-url")?;
        Ok(Self {
            pool,
            url: url.to_owned(),
        })
    }

    /// Committed plus rolled-back transactions of this database since the stats reset.
    async fn xacts(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// Starts a `pg_stat_database` window. Backends publish their counts at most once a
    /// second, so this first reads once and waits a little: then exactly one transaction of
    /// the benchmark's own (the opening read) falls inside the window.
    pub async fn open_window(&self) -> anyhow::Result<XactWindow> {
        self.xacts().await?;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        Ok(XactWindow {
            start: self.xacts().await?,
            at: Instant::now(),
        })
    }

    /// Transactions per second since `window` opened, the benchmark's own excluded.
    pub async fn close_window(&self, window: XactWindow) -> anyhow::Result<f64> {
        let end = self.xacts().await?;
        let secs = window.at.elapsed().as_secs_f64();
        Ok(((end - window.start - 1).max(0)) as f64 / secs)
    }

    /// The room's `last_seq`, if it exists.
    pub async fn last_seq(&self, room: &str) -> anyhow::Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT last_seq FROM chat_rooms WHERE id = $1")
                .bind(room)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Creates a room directly (for functions spawned without the other routes).
    pub async fn ensure_room(&self, room: &str) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO chat_rooms (id, name, created_by) VALUES ($1, $1, 'bench@bench.example') ON CONFLICT (id) DO NOTHING",
        )
        .bind(room)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Fills `room` (which must exist and be empty) in one transaction, then VACUUM ANALYZE,
    /// as autovacuum would leave a table of that age. `messages` messages by 50 authors,
    /// each one post event (event id = seq); `seed.files_percent` of them with one file;
    /// `seed.reactions_percent` with reactions (1 to 3 emoji, 1 to 4 users each, the viewer
    /// among them on every other one): `chat_message_reactions` rows plus the `reactions`
    /// counts on the row, checked equal after seeding; `seed.replies_percent` are replies to
    /// a message up to 50 before (`reply_to*`, the excerpt), their originals' `reply_count`
    /// set to match. Read marks: each author's at their newest message (the invariant posting
    /// keeps), the viewer's 1,000 behind the newest. `last_seq` and `last_event` = the newest.
    pub async fn seed_room(
        &self,
        room: &str,
        messages: i64,
        seed: &Seed,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut tx = self.pool.begin().await?;
        // UUIDv7-like ids (time-ordered, like the API's) from a base time and the seq; a
        // reply's original's id is computed the same way from its seq.
        let sql = format!(
            r#"
            INSERT INTO chat_messages (id, room_id, seq, event_id, created_event, user_email, content, created_at,
                                       reactions, reply_to, reply_to_seq, reply_to_user, reply_excerpt)
            SELECT (lpad(to_hex(base_ms + g), 12, '0') || '7' || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid,
                   $1, g, g, g, 'user' || (g % 50) || '@bench.example',
                   'Seeded message ' || g || ': the quick brown fox jumps over the lazy dog, then checks the chat again.',
                   to_timestamp((base_ms + g) / 1000.0),
                   CASE WHEN (g * 7) % 100 < $3 THEN
                       (SELECT jsonb_agg(jsonb_build_object(
                                   'emoji', ({SEED_EMOJI})[j + 1],
                                   'count', 1 + (g + j) % 4 + CASE WHEN j = 0 AND g % 2 = 0 THEN 1 ELSE 0 END)
                               ORDER BY j)
                        FROM generate_series(0, (g % 3)::int) AS j)
                   ELSE '[]'::jsonb END,
                   CASE WHEN is_reply THEN
                       (lpad(to_hex(base_ms + o), 12, '0') || '7' || substr(oh, 1, 3) || '8' || substr(oh, 4, 15))::uuid END,
                   CASE WHEN is_reply THEN o END,
                   CASE WHEN is_reply THEN 'user' || (o % 50) || '@bench.example' END,
                   CASE WHEN is_reply THEN
                       left('Seeded message ' || o || ': the quick brown fox jumps over the lazy dog, then checks the chat again.', 100) END
            FROM generate_series(1::bigint, $2::bigint) AS g,
                 LATERAL (SELECT md5($1 || g::text) AS h,
                                 g > 50 AND (g * 13) % 100 < $4 AS is_reply,
                                 g - 1 - (g * 31) % 50 AS o) AS per,
                 LATERAL (SELECT md5($1 || o::text) AS oh) AS orig,
                 (SELECT (extract(epoch FROM now()) * 1000)::bigint - $2::bigint * 1000 AS base_ms) AS base
            "#
        );
        sqlx::query(&sql)
            .bind(room)
            .bind(messages)
            .bind(seed.reactions_percent)
            .bind(seed.replies_percent)
            .execute(&mut *tx)
            .await
            .context("seed messages")?;
        sqlx::query(
            r#"
            INSERT INTO chat_message_files (id, message_id, object_key, file_name, content_type, size, created_at)
            SELECT gen_random_uuid(), m.id, 'rooms/' || m.room_id || '/' || m.id || '/photo-' || m.seq || '.jpg',
                   'photo-' || m.seq || '.jpg', 'image/jpeg', 100000 + m.seq % 900000, m.created_at
            FROM chat_messages m
            WHERE m.room_id = $1 AND m.seq % 100 < $2
            "#,
        )
        .bind(room)
        .bind(seed.files_percent)
        .execute(&mut *tx)
        .await
        .context("seed files")?;
        // Who reacted: emoji j of message g by users (g + 7j + u) % 50, u < its count, and the
        // viewer on the first emoji of every other one; first reactions in emoji order.
        let sql = format!(
            r#"
            INSERT INTO chat_message_reactions (message_id, user_email, emoji, created_at)
            SELECT m.id, 'user' || ((m.seq + j * 7 + u) % 50) || '@bench.example', ({SEED_EMOJI})[j + 1],
                   m.created_at + make_interval(secs => (j * 10 + u + 1) / 1000.0)
            FROM chat_messages m,
                 generate_series(0, (m.seq % 3)::int) AS j,
                 generate_series(0, ((m.seq + j) % 4)::int) AS u
            WHERE m.room_id = $1 AND (m.seq * 7) % 100 < $2
            UNION ALL
            SELECT m.id, $3, ({SEED_EMOJI})[1], m.created_at + make_interval(secs => 0.005)
            FROM chat_messages m
            WHERE m.room_id = $1 AND (m.seq * 7) % 100 < $2 AND m.seq % 2 = 0
            "#
        );
        sqlx::query(&sql)
            .bind(room)
            .bind(seed.reactions_percent)
            .bind(&seed.viewer)
            .execute(&mut *tx)
            .await
            .context("seed reactions")?;
        sqlx::query(
            r#"
            UPDATE chat_messages o SET reply_count = r.n
            FROM (SELECT m.reply_to, count(*)::int AS n FROM chat_messages m
                  WHERE m.room_id = $1 AND m.reply_to IS NOT NULL GROUP BY m.reply_to) r
            WHERE o.id = r.reply_to
            "#,
        )
        .bind(room)
        .execute(&mut *tx)
        .await
        .context("seed reply counts")?;
        sqlx::query(
            r#"
            INSERT INTO chat_read_marks (room_id, user_email, last_read_seq)
            SELECT $1, m.user_email, max(m.seq) FROM chat_messages m WHERE m.room_id = $1 GROUP BY m.user_email
            UNION ALL
            SELECT $1, $2, GREATEST(0, $3::bigint - 1000)
            "#,
        )
        .bind(room)
        .bind(&seed.viewer)
        .bind(messages)
        .execute(&mut *tx)
        .await
        .context("seed read marks")?;
        sqlx::query(
            "UPDATE chat_rooms SET last_seq = (SELECT max(seq) FROM chat_messages WHERE room_id = $1), last_event = (SELECT max(event_id) FROM chat_messages WHERE room_id = $1) WHERE id = $1",
        )
        .bind(room)
        .execute(&mut *tx)
        .await?;
        // The seeding is consistent, as the write functions would have left it.
        let (bad_counts, bad_replies): (i64, i64) = sqlx::query_as(
            r#"
            SELECT
              (SELECT count(*) FROM chat_messages m
               WHERE m.room_id = $1
                 AND m.reactions IS DISTINCT FROM COALESCE(
                     (SELECT jsonb_agg(jsonb_build_object('emoji', t.emoji, 'count', t.n) ORDER BY t.first)
                      FROM (SELECT x.emoji, count(*)::int AS n, min(x.created_at) AS first
                            FROM chat_message_reactions x WHERE x.message_id = m.id GROUP BY x.emoji) t),
                     '[]'::jsonb)),
              (SELECT count(*) FROM chat_messages m
               LEFT JOIN chat_messages o ON o.id = m.reply_to AND o.room_id = m.room_id
               WHERE m.room_id = $1 AND m.reply_to IS NOT NULL
                 AND (o.id IS NULL OR o.seq <> m.reply_to_seq OR o.user_email <> m.reply_to_user
                      OR left(o.content, 100) <> m.reply_excerpt))
            "#,
        )
        .bind(room)
        .fetch_one(&mut *tx)
        .await
        .context("check the seeding")?;
        anyhow::ensure!(
            bad_counts == 0 && bad_replies == 0,
            "seeding is inconsistent: {bad_counts} messages whose reaction counts differ from their rows, {bad_replies} replies whose quote differs from the original"
        );
        tx.commit().await?;
        sqlx::raw_sql(
            "VACUUM (ANALYZE) chat_messages, chat_message_files, chat_message_reactions, chat_read_marks",
        )
        .execute(&self.pool)
        .await?;
        Ok(started.elapsed())
    }

    /// What the seeded room holds: messages, with reactions, reaction rows, replies.
    pub async fn conversation_counts(&self, room: &str) -> anyhow::Result<(i64, i64, i64, i64)> {
        Ok(sqlx::query_as(
            r#"
            SELECT (SELECT count(*) FROM chat_messages WHERE room_id = $1),
                   (SELECT count(*) FROM chat_messages WHERE room_id = $1 AND reactions <> '[]'),
                   (SELECT count(*) FROM chat_message_reactions x JOIN chat_messages m ON m.id = x.message_id
                    WHERE m.room_id = $1),
                   (SELECT count(*) FROM chat_messages WHERE room_id = $1 AND reply_to IS NOT NULL)
            "#,
        )
        .bind(room)
        .fetch_one(&self.pool)
        .await?)
    }

    /// The rooms of the room-list scenario: `rooms` private rooms `{prefix}-000`… owned by
    /// `owner@bench.example` with `user` a member, each with `messages` messages by 20
    /// authors, `deleted_percent` of them tombstones (no content, `deleted_at` set). The
    /// user's read mark in room i is (i % 10) tenths of the way in; every 25th room has no
    /// mark (all unread). Each author's mark is at their newest message. One transaction,
    /// then VACUUM ANALYZE. Reused when the rooms are all there, complete.
    pub async fn seed_list_rooms(
        &self,
        prefix: &str,
        rooms: i64,
        messages: i64,
        deleted_percent: i64,
        user: &str,
    ) -> anyhow::Result<Option<Duration>> {
        let (have, total): (i64, Option<i64>) = sqlx::query_as(
            "SELECT count(*), sum(last_seq)::bigint FROM chat_rooms WHERE id LIKE $1 || '-%'",
        )
        .bind(prefix)
        .fetch_one(&self.pool)
        .await?;
        if have == rooms && total == Some(rooms * messages) {
            return Ok(None);
        }
        let started = Instant::now();
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM chat_rooms WHERE id LIKE $1 || '-%'")
            .bind(prefix)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            r#"
            INSERT INTO chat_rooms (id, name, created_by, visibility, last_seq, last_event)
            SELECT $1 || '-' || lpad(i::text, 3, '0'), $1 || ' ' || i, 'owner@bench.example', 'private', $3, $3
            FROM generate_series(0, $2 - 1) AS i
            "#,
        )
        .bind(prefix)
        .bind(rooms)
        .bind(messages)
        .execute(&mut *tx)
        .await
        .context("seed rooms")?;
        sqlx::query(
            r#"
            INSERT INTO chat_room_members (room_id, user_email, added_by)
            SELECT r.id, $2, 'owner@bench.example' FROM chat_rooms r WHERE r.id LIKE $1 || '-%'
            "#,
        )
        .bind(prefix)
        .bind(user)
        .execute(&mut *tx)
        .await
        .context("seed members")?;
        sqlx::query(
            r#"
            INSERT INTO chat_messages (id, room_id, seq, event_id, created_event, user_email, content, created_at, deleted_at)
            SELECT (lpad(to_hex(base_ms + g), 12, '0') || '7' || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid,
                   r.id, g, g, g, 'user' || (g % 20) || '@bench.example',
                   CASE WHEN deleted THEN '' ELSE 'Seeded message ' || g || ' in a room of many.' END,
                   to_timestamp((base_ms + g) / 1000.0),
                   CASE WHEN deleted THEN to_timestamp((base_ms + g) / 1000.0) + interval '1 minute' END
            FROM chat_rooms r,
                 generate_series(1::bigint, $2::bigint) AS g,
                 LATERAL (SELECT md5(r.id || g::text) AS h, (g * 11) % 100 < $3 AS deleted) AS per,
                 (SELECT (extract(epoch FROM now()) * 1000)::bigint - $2::bigint * 1000 AS base_ms) AS base
            WHERE r.id LIKE $1 || '-%'
            "#,
        )
        .bind(prefix)
        .bind(messages)
        .bind(deleted_percent)
        .execute(&mut *tx)
        .await
        .context("seed messages")?;
        sqlx::query(
            r#"
            INSERT INTO chat_read_marks (room_id, user_email, last_read_seq)
            SELECT m.room_id, m.user_email, max(m.seq) FROM chat_messages m
            WHERE m.room_id LIKE $1 || '-%' GROUP BY m.room_id, m.user_email
            UNION ALL
            SELECT r.id, $2, $3 * (substr(r.id, length($1) + 2)::int % 10) / 10
            FROM chat_rooms r
            WHERE r.id LIKE $1 || '-%' AND substr(r.id, length($1) + 2)::int % 25 <> 24
            "#,
        )
        .bind(prefix)
        .bind(user)
        .bind(messages)
        .execute(&mut *tx)
        .await
        .context("seed read marks")?;
        tx.commit().await?;
        sqlx::raw_sql(
            "VACUUM (ANALYZE) chat_rooms, chat_room_members, chat_messages, chat_read_marks",
        )
        .execute(&self.pool)
        .await?;
        Ok(Some(started.elapsed()))
    }

    /// Each room's unread count for `user`, counted the slow way: every message by someone
    /// else after the user's mark, tombstones left out.
    pub async fn unread_by_scan(
        &self,
        prefix: &str,
        user: &str,
    ) -> anyhow::Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            r#"
            SELECT r.id,
                   (SELECT count(*) FROM chat_messages m
                    WHERE m.room_id = r.id AND m.deleted_at IS NULL AND m.user_email <> $2
                      AND m.seq > COALESCE((SELECT k.last_read_seq FROM chat_read_marks k
                                            WHERE k.room_id = r.id AND k.user_email = $2), 0))
            FROM chat_rooms r WHERE r.id LIKE $1 || '-%' ORDER BY r.id
            "#,
        )
        .bind(prefix)
        .bind(user)
        .fetch_all(&self.pool)
        .await?)
    }

    /// `EXPLAIN (ANALYZE, BUFFERS)` of the room list for `user`.
    pub async fn explain_list_rooms(&self, user: &str, limit: i64) -> anyhow::Result<String> {
        let sql = format!("EXPLAIN (ANALYZE, BUFFERS) {LIST_ROOMS}");
        let lines: Vec<String> = sqlx::query_scalar(&sql)
            .bind(user)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(lines.join("\n"))
    }

    /// Deletes a room and everything in it.
    pub async fn drop_room(&self, room: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM chat_rooms WHERE id = $1")
            .bind(room)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The hot tables' size with their indexes and TOAST (`pg_total_relation_size`).
    pub async fn hot_bytes(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT (pg_total_relation_size('chat_messages') + pg_total_relation_size('chat_message_files')
                     + pg_total_relation_size('chat_message_reactions'))::bigint",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// [`Db::hot_bytes`] once `VACUUM FULL` has given the space of deleted rows back.
    pub async fn hot_bytes_after_vacuum_full(&self) -> anyhow::Result<i64> {
        sqlx::query("VACUUM FULL chat_messages, chat_message_files, chat_message_reactions")
            .execute(&self.pool)
            .await?;
        self.hot_bytes().await
    }

    /// The archive segments of `room`: how many, and their bytes.
    pub async fn segments_of(&self, room: &str) -> anyhow::Result<(i64, i64)> {
        Ok(sqlx::query_as(
            "SELECT count(*), COALESCE(sum(bytes), 0)::bigint FROM chat_archive_segments WHERE room_id = $1",
        )
        .bind(room)
        .fetch_one(&self.pool)
        .await?)
    }

    /// How many messages the room holds.
    pub async fn message_count(&self, room: &str) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM chat_messages WHERE room_id = $1")
                .bind(room)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// `EXPLAIN (ANALYZE, BUFFERS)` of a search (`limit + 1` rows, as the server reads), with
    /// the default `SEARCH_LANGUAGE` and JIT off.
    pub async fn explain_search(
        &self,
        room: &str,
        q: &str,
        limit: i64,
        viewer: &str,
    ) -> anyhow::Result<String> {
        let sql = format!("EXPLAIN (ANALYZE, BUFFERS) {SEARCH}");
        // As the server's connections run it (`shared::db::lazy_pool` turns JIT off).
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await?;
        let lines: Vec<String> = sqlx::query_scalar(&sql)
            .bind(room)
            .bind(i64::MAX)
            .bind(limit + 1)
            .bind(viewer)
            .bind(q)
            .bind("simple")
            .bind(SEARCH_WINDOW)
            .fetch_all(&mut *tx)
            .await?;
        tx.rollback().await?;
        Ok(lines.join("\n"))
    }

    /// `EXPLAIN (ANALYZE, BUFFERS)` of a list query (`limit + 1` rows, as the server reads).
    pub async fn explain_list(
        &self,
        kind: ListKind,
        room: &str,
        cursor: i64,
        limit: i64,
        viewer: &str,
    ) -> anyhow::Result<String> {
        let sql = format!("EXPLAIN (ANALYZE, BUFFERS) {}", list_sql(kind));
        let lines: Vec<String> = sqlx::query_scalar(&sql)
            .bind(room)
            .bind(cursor)
            .bind(limit + 1)
            .bind(viewer)
            .fetch_all(&self.pool)
            .await?;
        Ok(lines.join("\n"))
    }
}

/// A row of `pg_stat_statements`: database, toplevel, calls, exec ms, plan ms, rows, query.
type StatementRow = (Option<String>, bool, i64, f64, f64, i64, String);

/// A statement's share of a `pg_stat_statements` window.
#[derive(Debug, Clone)]
pub struct StatementStat {
    pub database: String,
    pub toplevel: bool,
    pub calls: i64,
    pub exec_ms: f64,
    pub plan_ms: f64,
    pub rows: i64,
    pub query: String,
}

impl Db {
    /// The postmaster of the cluster behind the URL, when it runs on this machine: the
    /// parent (in `/proc`) of this connection's backend.
    pub async fn postmaster_pid(&self) -> Option<u32> {
        let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&self.pool)
            .await
            .ok()?;
        let backend = u32::try_from(backend).ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{backend}/comm")).ok()?;
        if comm.trim() != "postgres" {
            return None;
        }
        crate::process::parent(backend)
    }

    /// Whether `pg_stat_statements` is loaded (`shared_preload_libraries`); creates the
    /// extension in this database when it is. The `pg_stat_statements.track` setting.
    pub async fn statements_tracking(&self) -> Option<String> {
        let preloaded: Option<String> =
            sqlx::query_scalar("SELECT current_setting('shared_preload_libraries', true)")
                .fetch_one(&self.pool)
                .await
                .ok()?;
        if !preloaded?.contains("pg_stat_statements") {
            return None;
        }
        sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&self.pool)
            .await
            .ok()?;
        sqlx::query_scalar("SELECT current_setting('pg_stat_statements.track', true)")
            .fetch_one(&self.pool)
            .await
            .ok()?
    }

    /// Top-level statements every database ran since the reset, the benchmark's own left
    /// out (`pg_stat_statements`).
    pub async fn statements_since_reset(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            r#"
            SELECT COALESCE(sum(calls), 0)::bigint FROM pg_stat_statements
            WHERE toplevel AND query NOT LIKE '%pg_stat_statements%'
              AND query NOT LIKE '%pg_stat_activity%'
            "#,
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// Backends of the cluster waiting in `LISTEN` (the hubs' wake-up connections).
    pub async fn listen_connections(&self) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Empties `pg_stat_statements` (every database): a window starts.
    pub async fn reset_statements(&self) -> anyhow::Result<()> {
        sqlx::raw_sql("SELECT pg_stat_statements_reset()")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The `limit` statements of every database with the most execution time since the
    /// reset, the benchmark's own left out.
    pub async fn top_statements(&self, limit: i64) -> anyhow::Result<Vec<StatementStat>> {
        let rows: Vec<StatementRow> = sqlx::query_as(
            r#"
            SELECT d.datname::text, s.toplevel, s.calls, s.total_exec_time, s.total_plan_time,
                   s.rows, s.query
            FROM pg_stat_statements s LEFT JOIN pg_database d ON d.oid = s.dbid
            WHERE s.query NOT LIKE '%pg_stat_statements%'
            ORDER BY s.total_exec_time DESC
            LIMIT $1
            "#,
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(database, toplevel, calls, exec_ms, plan_ms, rows, query)| StatementStat {
                    database: database.unwrap_or_default(),
                    toplevel,
                    calls,
                    exec_ms,
                    plan_ms,
                    rows,
                    query: query.split_whitespace().collect::<Vec<_>>().join(" "),
                },
            )
            .collect())
    }
}

/// What a seeded deep room holds besides its messages (percentages of its messages).
#[derive(Clone, Debug)]
pub struct Seed {
    pub files_percent: i64,
    pub reactions_percent: i64,
    pub replies_percent: i64,
    /// The user the benchmark lists as: some reactions and a read mark are theirs.
    pub viewer: String,
}

/// An open `pg_stat_database` window.
pub struct XactWindow {
    start: i64,
    at: Instant,
}

/// "Execution Time: 0.123 ms" from an EXPLAIN ANALYZE text, in ms.
pub fn execution_ms(plan: &str) -> Option<f64> {
    plan.lines()
        .find_map(|l| l.trim().strip_prefix("Execution Time: "))
        .and_then(|rest| rest.trim_end_matches(" ms").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_time_is_read_from_a_plan() {
        let plan = "Limit  (cost=...)\nPlanning Time: 0.2 ms\nExecution Time: 1.234 ms";
        assert_eq!(execution_ms(plan), Some(1.234));
    }

    #[test]
    fn list_queries_match_the_servers_shape() {
        let before = list_sql(ListKind::Before);
        assert!(before.contains("m.seq < $2") && before.contains("ORDER BY m.seq DESC LIMIT $3"));
        let after = list_sql(ListKind::After);
        assert!(after.contains("m.seq > $2") && after.contains("ORDER BY m.seq ASC LIMIT $3"));
        // The viewer's reactions and the visibility check, as the server reads them.
        assert!(after.contains("x.user_email = $4") && after.contains("mm.user_email = $4"));
    }
}

#[cfg(test)]
mod same_as_the_server {
    //! The statements EXPLAIN shows are the server's own, token for token.
    use super::*;

    fn tokens(sql: &str) -> String {
        sql.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn the_room_list_is_the_servers() {
        assert_eq!(tokens(LIST_ROOMS), tokens(shared::db::rooms::LIST_ROOMS));
    }

    #[test]
    fn the_search_is_the_servers() {
        assert_eq!(tokens(SEARCH), tokens(shared::db::messages::SEARCH));
        assert_eq!(SEARCH_WINDOW, shared::db::messages::SEARCH_WINDOW);
    }

    #[test]
    fn the_list_queries_are_the_servers() {
        for (kind, server) in [
            (ListKind::Newest, shared::db::messages::LIST_PAGE_LATEST),
            (ListKind::Before, shared::db::messages::LIST_PAGE_BEFORE),
            (ListKind::After, shared::db::messages::LIST_PAGE_AFTER),
        ] {
            assert_eq!(tokens(&list_sql(kind)), tokens(server), "{kind:?}");
        }
    }
}
