//! Applies pending migrations: `cargo migrate` (or `cargo run -p chat-dev --bin migrate`)
//! with `DATABASE_URL_UNPOOLED` or `DATABASE_URL` set. A deploy step, never a cold-start one.

use anyhow::Context;
use shared::config::DatabaseConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    let get = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let url = get("DATABASE_URL")
        .or_else(|| get("DATABASE_URL_UNPOOLED"))
        .context("set DATABASE_URL_UNPOOLED or DATABASE_URL")?;
    let config = DatabaseConfig {
        url,
        url_unpooled: get("DATABASE_URL_UNPOOLED"),
        // Migrations run on the primary only; a replica replays them.
        url_read: None,
        read_timeout: std::time::Duration::from_secs(1),
        pool_max: 1,
        acquire_timeout: std::time::Duration::from_secs(30),
        // Migrations connect on their own, with no statement_timeout: an index build may
        // take long.
        statement_timeout: std::time::Duration::from_secs(0),
    };
    shared::db::migrate(&config).await?;
    println!("migrations applied");
    Ok(())
}
