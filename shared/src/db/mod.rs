//! Postgres access: the per-process pool, migrations, and one module of queries per table.

pub mod archive;
pub mod files;
pub mod limits;
pub mod members;
pub mod messages;
pub mod reads;
pub mod replica;
pub mod rooms;
pub mod stats;
pub mod uploads;
pub mod write_queue;

#[cfg(test)]
mod file_views;

use std::str::FromStr;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::DatabaseConfig;

/// A connection idle this long is pinged before it is handed out.
const PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_secs(5);

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// One small pool per process, connecting lazily: a cold start costs no connection until a
/// query needs one, and an acquire gives up after `DB_ACQUIRE_TIMEOUT_MS` so requests answer
/// 503 instead of hanging. sqlx's named-statement cache stays on: Neon's pooler supports
/// protocol-level prepared statements.
pub fn lazy_pool(config: &DatabaseConfig) -> anyhow::Result<PgPool> {
    lazy_pool_at(&config.url, "DATABASE_URL", config, config.acquire_timeout)
}

/// The write queue's connections (`write_queue`): one per kind of write in flight, at most
/// `DB_POOL_MAX`, on `DATABASE_URL` like [`lazy_pool`], with `plan_cache_mode` set to
/// `force_generic_plan`. A batch binds arrays, and Postgres's default keeps planning such a
/// statement again on every call: the plan it makes for the arrays in hand always looks
/// cheaper than one for arrays of any length. Planning a batch cost more Postgres CPU than
/// writing a small one, and more as the tables grew (BENCHMARKS.md, "Batches planned once").
/// The plan made once serves every batch: the same index lookups, whatever the length.
pub fn lazy_write_pool(config: &DatabaseConfig) -> anyhow::Result<PgPool> {
    let options = connect_options(&config.url, "DATABASE_URL", config)?
        .options([("plan_cache_mode", "force_generic_plan")]);
    Ok(pool_options(config, config.acquire_timeout)
        .max_connections(
            config
                .pool_max
                .min(write_queue::KINDS * write_queue::MAX_IN_FLIGHT as u32),
        )
        .connect_lazy_with(options))
}

/// A lazy pool like [`lazy_pool`] on another server (`name` is its setting, for the error),
/// whose acquires give up after `acquire_timeout`: the read replica's (`replica`).
pub(crate) fn lazy_pool_at(
    url: &str,
    name: &str,
    config: &DatabaseConfig,
    acquire_timeout: std::time::Duration,
) -> anyhow::Result<PgPool> {
    // `statement_timeout` travels in the startup packet, so every connection has it before
    // its first statement; Postgres then cancels anything longer (SQLSTATE 57014). JIT is
    // off: every statement here reads a page or writes a row, and a plan whose estimate
    // crosses `jit_above_cost` (a search's older part, which usually never runs) spent
    // ≈ 800 ms compiling to save nothing (BENCHMARKS.md, "Search and the operator's
    // numbers").
    let options = connect_options(url, name, config)?;
    Ok(pool_options(config, acquire_timeout).connect_lazy_with(options))
}

/// `url` with the settings every connection starts with.
fn connect_options(
    url: &str,
    name: &str,
    config: &DatabaseConfig,
) -> anyhow::Result<PgConnectOptions> {
    Ok(PgConnectOptions::from_str(url)
        .with_context(|| format!("{name} is not a valid Postgres URL"))?
        .options([
            (
                "statement_timeout",
                config.statement_timeout.as_millis().to_string(),
            ),
            ("jit", "off".to_owned()),
        ]))
}

/// A lazy pool's sizing, timeouts and ping.
fn pool_options(config: &DatabaseConfig, acquire_timeout: std::time::Duration) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(config.pool_max)
        .min_connections(0)
        .acquire_timeout(acquire_timeout)
        .idle_timeout(std::time::Duration::from_secs(60))
        // sqlx pings every connection it hands out by default: one more round trip on every
        // request (BENCHMARKS.md, "The log's write path"). Only a connection that sat idle a
        // while is pinged, so one the pooler or a restart closed is replaced, not used; a
        // busy pool's connections go straight to work.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// Applies pending migrations over `DATABASE_URL_UNPOOLED` when set (they take a
/// session-level advisory lock, which PgBouncer in transaction mode does not keep).
pub async fn migrate(config: &DatabaseConfig) -> anyhow::Result<()> {
    let url = config.url_unpooled.as_deref().unwrap_or(&config.url);
    let options =
        PgConnectOptions::from_str(url).context("database URL is not a valid Postgres URL")?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .context("connect for migrations")?;
    MIGRATOR.run(&pool).await.context("run migrations")?;
    pool.close().await;
    Ok(())
}

/// Whether `err` is a unique violation of the named constraint or index.
pub(crate) fn is_unique_violation(err: &sqlx::Error, constraint: &str) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation() && db.constraint() == Some(constraint))
}

/// The code a log-write function raised (`RAISE EXCEPTION '<code>' USING ERRCODE = 'CH400'`)
/// to undo everything it did, e.g. `invalid_upload`.
pub(crate) fn raised(err: &sqlx::Error) -> Option<&str> {
    match err {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("CH400") => Some(db.message()),
        _ => None,
    }
}
