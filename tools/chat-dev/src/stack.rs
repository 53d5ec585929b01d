//! The local stack: the configuration the dev server and tests run with, filling in
//! embedded defaults for whatever the environment leaves unset.

use std::collections::HashMap;

use anyhow::Context;
use shared::config::Config;

use crate::{EmbeddedPostgres, EmbeddedS3};

/// The secret dev tokens are signed with when `AUTH_JWT_SECRET` is unset.
pub const DEV_JWT_SECRET: &str = "dev-only-secret-do-not-deploy";
/// The bucket the embedded S3 server starts with.
pub const DEV_BUCKET: &str = "chat-dev";

/// A configuration plus the embedded services it points at; they stop when this drops.
pub struct DevStack {
    pub config: Config,
    /// A streaming replica of `postgres` (`DEV_READ_REPLICA=1`): `DATABASE_URL_READ`.
    /// Declared first, so it stops before its primary.
    pub replica: Option<EmbeddedPostgres>,
    pub postgres: Option<EmbeddedPostgres>,
    pub s3: Option<EmbeddedS3>,
}

impl DevStack {
    /// Uses `DATABASE_URL` and the `S3_*` settings when set; otherwise starts a throwaway
    /// Postgres (and, with `DEV_READ_REPLICA=1`, a streaming replica of it) and an
    /// in-process S3 server. `AUTH_JWT_SECRET` defaults to a dev secret.
    pub async fn from_env() -> anyhow::Result<Self> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut defaults: HashMap<&str, String> = HashMap::new();

        let postgres = if env("DATABASE_URL").is_none() {
            let pg = EmbeddedPostgres::start()
                .await
                .context("start the embedded Postgres")?;
            defaults.insert("DATABASE_URL", pg.url());
            // No pooler locally: the same URL serves LISTEN, so the wake-up is on.
            defaults.insert("DATABASE_URL_UNPOOLED", pg.url());
            Some(pg)
        } else {
            None
        };
        // `DEV_READ_REPLICA=1`: a streaming replica of the throwaway Postgres, read from.
        let wants_replica = env("DEV_READ_REPLICA").is_some_and(|v| v == "1" || v == "true");
        let replica = match &postgres {
            Some(pg) if wants_replica => {
                let replica = pg
                    .start_replica()
                    .await
                    .context("start the embedded Postgres' read replica")?;
                defaults.insert("DATABASE_URL_READ", replica.url());
                Some(replica)
            }
            _ => None,
        };
        let s3 = if env("S3_ENDPOINT").is_none() {
            let s3 = EmbeddedS3::start(DEV_BUCKET, None).context("start the embedded S3 server")?;
            defaults.insert("S3_ENDPOINT", s3.endpoint.clone());
            defaults.insert("S3_REGION", s3.region.clone());
            defaults.insert("S3_BUCKET", s3.bucket.clone());
            defaults.insert("S3_ACCESS_KEY_ID", s3.access_key_id.clone());
            defaults.insert("S3_SECRET_ACCESS_KEY", s3.secret_access_key.clone());
            defaults.insert("S3_FORCE_PATH_STYLE", "true".into());
            Some(s3)
        } else {
            None
        };
        defaults.insert("AUTH_JWT_SECRET", DEV_JWT_SECRET.into());

        let config = Config::from_lookup(|name| {
            // Embedded services replace the whole group they stand for.
            let embedded = (name.starts_with("DATABASE_URL") && postgres.is_some())
                || (name.starts_with("S3_") && s3.is_some());
            if embedded {
                defaults.get(name).cloned()
            } else {
                env(name).or_else(|| defaults.get(name).cloned())
            }
        })?;
        Ok(Self {
            config,
            replica,
            postgres,
            s3,
        })
    }
}
