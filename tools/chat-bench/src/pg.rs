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

/// The columns of a listed message, as `shared::db::messages` selects them. Kept in step
/// by hand: EXPLAIN must show the query the server runs.
const MESSAGE_COLUMNS: &str = r#"
        m.id, m.room_id, m.seq, m.user_email, m.content, m.client_id, m.created_at,
        (SELECT COALESCE(json_agg(json_build_object(
                    'id', f.id, 'object_key', f.object_key, 'file_name', f.file_name,
                    'content_type', f.content_type, 'size', f.size) ORDER BY f.id), '[]'::json)
         FROM chat_message_files f WHERE f.message_id = m.id) AS files
"#;

/// The list queries of `GET /api/rooms/{room}/messages`: newest, `before`, `after`.
pub fn list_sql(kind: ListKind) -> String {
    let (condition, order) = match kind {
        ListKind::Newest => ("m.seq > $2", "DESC"),
        ListKind::Before => ("m.seq < $2", "DESC"),
        ListKind::After => ("m.seq > $2", "ASC"),
    };
    format!(
        "SELECT {MESSAGE_COLUMNS} FROM chat_messages m WHERE m.room_id = $1 AND {condition} ORDER BY m.seq {order} LIMIT $3"
    )
}

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

    /// Fills `room` (which must exist and be empty) with `messages` messages, `files_percent`
    /// of them with one file, in one transaction, and sets its `last_seq` (and `last_event`: each message one post event) to the newest seq.
    /// Then VACUUM ANALYZE, as autovacuum would leave a table of that age.
    pub async fn seed_room(
        &self,
        room: &str,
        messages: i64,
        files_percent: i64,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut tx = self.pool.begin().await?;
        // UUIDv7-like ids (time-ordered, like the API's) from a base time and the seq.
        sqlx::query(
            r#"
            INSERT INTO chat_messages (id, room_id, seq, event_id, created_event, user_email, content, created_at)
            SELECT (lpad(to_hex(base_ms + g), 12, '0') || '7' || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid,
                   $1, g, g, g, 'user' || (g % 50) || '@bench.example',
                   'Seeded message ' || g || ': the quick brown fox jumps over the lazy dog, then checks the chat again.',
                   to_timestamp((base_ms + g) / 1000.0)
            FROM generate_series(1::bigint, $2::bigint) AS g,
                 LATERAL (SELECT md5($1 || g::text) AS h) AS hash,
                 (SELECT (extract(epoch FROM now()) * 1000)::bigint - $2::bigint * 1000 AS base_ms) AS base
            "#,
        )
        .bind(room)
        .bind(messages)
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
        .bind(files_percent)
        .execute(&mut *tx)
        .await
        .context("seed files")?;
        sqlx::query(
            "UPDATE chat_rooms SET last_seq = (SELECT max(seq) FROM chat_messages WHERE room_id = $1), last_event = (SELECT max(event_id) FROM chat_messages WHERE room_id = $1) WHERE id = $1",
        )
        .bind(room)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        sqlx::raw_sql("VACUUM (ANALYZE) chat_messages, chat_message_files")
            .execute(&self.pool)
            .await?;
        Ok(started.elapsed())
    }

    /// Deletes a room and everything in it.
    pub async fn drop_room(&self, room: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM chat_rooms WHERE id = $1")
            .bind(room)
            .execute(&self.pool)
            .await?;
        Ok(())
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

    /// `EXPLAIN (ANALYZE, BUFFERS)` of a list query (`limit + 1` rows, as the server reads).
    pub async fn explain_list(
        &self,
        kind: ListKind,
        room: &str,
        cursor: i64,
        limit: i64,
    ) -> anyhow::Result<String> {
        let sql = format!("EXPLAIN (ANALYZE, BUFFERS) {}", list_sql(kind));
        let lines: Vec<String> = sqlx::query_scalar(&sql)
            .bind(room)
            .bind(cursor)
            .bind(limit + 1)
            .fetch_all(&self.pool)
            .await?;
        Ok(lines.join("\n"))
    }
}

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
        let rows: Vec<(Option<String>, bool, i64, f64, f64, i64, String)> = sqlx::query_as(
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
        assert!(list_sql(ListKind::Before).contains("m.seq < $2 ORDER BY m.seq DESC LIMIT $3"));
        assert!(list_sql(ListKind::After).contains("m.seq > $2 ORDER BY m.seq ASC LIMIT $3"));
    }
}
