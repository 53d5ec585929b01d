//! Settings, read once per process from the environment.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use crate::db::limits::RateLimit;
use crate::domain::{AllowedTypes, SearchLanguage};

/// Everything the API can be configured with. Each field maps to one environment
/// variable, documented in the README's configuration table and `.env.example`.
#[derive(Clone, Debug)]
pub struct Config {
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub storage: StorageConfig,
    pub stream: StreamConfig,
    pub limits: LimitsConfig,
    pub media: MediaConfig,
    pub archive: ArchiveConfig,
    /// `CORS_ALLOWED_ORIGINS`
    pub cors: AllowedOrigins,
    /// `SEARCH_LANGUAGE`: the text search configuration a search is parsed with.
    pub search_language: SearchLanguage,
    /// `ADMIN_EMAILS`: who may read `GET /api/admin/stats`.
    pub admins: Admins,
}

/// `ADMIN_EMAILS`: comma-separated emails, compared case-insensitively. Unset: nobody.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Admins(Vec<String>);

impl Admins {
    pub fn parse(raw: &str) -> Self {
        Self(
            raw.split(',')
                .map(|e| e.trim().to_lowercase())
                .filter(|e| !e.is_empty())
                .collect(),
        )
    }

    pub fn contains(&self, email: &str) -> bool {
        let email = email.trim().to_lowercase();
        self.0.contains(&email)
    }
}

/// History tiered to object storage, and retention (`archive`), run by `/api/cron/archive`.
#[derive(Clone, Debug)]
pub struct ArchiveConfig {
    /// `ARCHIVE_AFTER_DAYS`: messages older than this move to segments (`None`: never by age).
    pub after: Option<Duration>,
    /// `ARCHIVE_KEEP_PER_ROOM`: a room's messages beyond its newest this many move to
    /// segments (`None`: never by count).
    pub keep_per_room: Option<i64>,
    /// `RETENTION_DAYS`: messages older than this are deleted, with their files, hot and
    /// archived alike (`None`: kept forever).
    pub retention: Option<Duration>,
    /// `ARCHIVE_BATCH`: messages per move (one segment) and per retention delete.
    pub batch: i64,
    /// `ARCHIVE_BATCHES_PER_RUN`: batches one cron call runs at most before answering
    /// `"more": true`.
    pub batches_per_run: usize,
    /// Tests only (never read from the environment): stop a run at a step, as a crash would.
    pub fault: Option<crate::archive::mover::Fault>,
}

/// Processing of attached images (`media`): sizes made, and the bounds on decoding one.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// `THUMBNAIL_MAX_PX`: the thumbnail's long side at most.
    pub thumbnail_max_px: u32,
    /// `IMAGE_MAX_PX`: a larger image is served re-encoded to this long side.
    pub image_max_px: u32,
    /// `IMAGE_DECODE_MAX_PIXELS`: an image declaring more pixels (width × height) is not
    /// decoded at all.
    pub decode_max_pixels: u64,
    /// `IMAGE_DECODE_MAX_BYTES`: what a decoder may allocate (`image::Limits::max_alloc`).
    pub decode_max_bytes: u64,
    /// `IMAGE_PROCESS_TIMEOUT_MS`: an image not done in this time keeps its original.
    pub timeout: Duration,
}

impl MediaConfig {
    pub fn defaults() -> Self {
        Self {
            thumbnail_max_px: 320,
            image_max_px: 2048,
            // A 48-megapixel phone photo (8000 × 6000) passes; its RGB buffer is 144 MB.
            decode_max_pixels: 50_000_000,
            decode_max_bytes: 512 * 1024 * 1024,
            timeout: Duration::from_secs(20),
        }
    }
}

/// Abuse limits. Buckets are per user and hold across instances (they live in Postgres).
#[derive(Clone, Debug)]
pub struct LimitsConfig {
    /// `RATE_LIMIT_POSTS`
    pub posts: RateLimit,
    /// `RATE_LIMIT_UPLOADS`
    pub uploads: RateLimit,
    /// `RATE_LIMIT_ROOMS`
    pub rooms: RateLimit,
    /// `RATE_LIMIT_EDITS`: edits and deletes of messages.
    pub edits: RateLimit,
    /// `RATE_LIMIT_REACTIONS`: reactions added or removed.
    pub reactions: RateLimit,
    /// `STREAM_MAX_PER_USER`: concurrent streams one user may hold on one instance.
    pub streams_per_user: usize,
}

impl LimitsConfig {
    pub fn defaults() -> Self {
        Self {
            posts: RateLimit {
                action: "post",
                capacity: 30,
                window: Duration::from_secs(10),
            },
            uploads: RateLimit {
                action: "upload",
                capacity: 20,
                window: Duration::from_secs(60),
            },
            rooms: RateLimit {
                action: "room",
                capacity: 10,
                window: Duration::from_secs(3600),
            },
            edits: RateLimit {
                action: "edit",
                capacity: 30,
                window: Duration::from_secs(10),
            },
            reactions: RateLimit {
                action: "react",
                capacity: 60,
                window: Duration::from_secs(10),
            },
            streams_per_user: 10,
        }
    }
}

#[derive(Clone)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`: the pooled URL (Neon's PgBouncer endpoint in production).
    pub url: String,
    /// `DATABASE_URL_UNPOOLED`: a direct URL, for migrations (advisory locks) and LISTEN.
    pub url_unpooled: Option<String>,
    /// `DATABASE_URL_READ`: a read replica (Neon: a read replica's pooled URL). Pages,
    /// replies and the stream's catch-up read there (`db::replica`).
    pub url_read: Option<String>,
    /// `DB_READ_TIMEOUT_MS`: the longest a read waits on the replica (a connection, then its
    /// statement) before it is read from the primary instead.
    pub read_timeout: Duration,
    /// `DB_POOL_MAX`
    pub pool_max: u32,
    /// `DB_ACQUIRE_TIMEOUT_MS`
    pub acquire_timeout: Duration,
    /// `DB_STATEMENT_TIMEOUT_MS`: Postgres cancels a statement running longer
    /// (`statement_timeout`, set per connection), and the server gives up waiting on one.
    pub statement_timeout: Duration,
}

impl DatabaseConfig {
    /// The longest a request, or a hub read, waits on the database: a connection, then a
    /// statement, plus a second of slack for the round trips. Past it: 503.
    pub fn deadline(&self) -> Duration {
        self.acquire_timeout + self.statement_timeout + Duration::from_secs(1)
    }
}

#[derive(Clone)]
pub struct AuthConfig {
    /// `AUTH_JWT_SECRET`: HS256 key. Unset: HS256 tokens are refused.
    pub jwt_secret: Option<String>,
    /// `AUTH_JWKS_URL`: where the identity provider publishes its RS256/ES256 keys.
    pub jwks_url: Option<String>,
    /// `AUTH_EMAIL_CLAIM`: the claim holding the user's email.
    pub email_claim: String,
    /// The least time between two JWKS fetches triggered by unknown key ids.
    pub jwks_min_refresh: Duration,
    /// `AUTH_JWT_ISSUER`
    pub issuer: Option<String>,
    /// `AUTH_JWT_AUDIENCE`
    pub audience: Option<String>,
}

#[derive(Clone)]
pub struct StorageConfig {
    /// `S3_ENDPOINT`, e.g. `https://<account>.r2.cloudflarestorage.com`.
    pub endpoint: String,
    /// `S3_REGION` (`auto` for R2).
    pub region: String,
    /// `S3_BUCKET`
    pub bucket: String,
    /// `S3_ACCESS_KEY_ID`
    pub access_key_id: String,
    /// `S3_SECRET_ACCESS_KEY`
    pub secret_access_key: String,
    /// `S3_FORCE_PATH_STYLE`
    pub force_path_style: bool,
    /// `FILES_PUBLIC_BASE_URL`: when set, file urls are `{base}/{key}` instead of presigned GETs.
    pub public_base_url: Option<String>,
    /// `MAX_UPLOAD_BYTES`
    pub max_upload_bytes: u64,
    /// `UPLOAD_ALLOWED_TYPES`
    pub allowed_types: AllowedTypes,
    /// `UPLOAD_ORPHAN_HOURS`: uploads never attached are deleted after this.
    pub orphan_after: Duration,
    /// `CRON_SECRET`: the bearer token Vercel Cron sends to the cleanup function.
    pub cron_secret: Option<String>,
}

#[derive(Clone, Debug)]
pub struct StreamConfig {
    /// `STREAM_POLL_MS`
    pub poll_interval: Duration,
    /// `STREAM_WAKEUP_POLL_MS`: the tick while the wake-up (LISTEN) is connected. New
    /// changes arrive by notification then; the tick only covers read marks, membership
    /// changes and a notification missed, so it can be slower. Never faster than
    /// `poll_interval`.
    pub wakeup_poll_interval: Duration,
    /// `STREAM_MAX_SECONDS`
    pub max_lifetime: Duration,
    /// `STREAM_MAX_BACKLOG`
    pub max_backlog: i64,
    /// `STREAM_HEARTBEAT_SECS`
    pub heartbeat: Duration,
    /// `STREAM_MAX_PER_INSTANCE`: open streams one process accepts (a Vercel instance has
    /// 1,024 file descriptors for every stream and socket).
    pub max_per_instance: usize,
    /// `PRESENCE_HEARTBEAT_SECS`: how often an instance writes who streams from it (one
    /// statement for all its streams).
    pub presence_heartbeat: Duration,
    /// `PRESENCE_TTL_SECS`: how long a presence entry counts without being written again
    /// (an instance that dies stops counting its users after this).
    pub presence_ttl: Duration,
    /// `PRESENCE_EVENTS_MAX_ONLINE`: the most users present in a room for its streams to be
    /// told of each one's comings and goings (`event: presence`). Past it, streams get one
    /// `event: presence.crowded` instead, until the room is down to 90 % of it again; each
    /// join would otherwise be a frame to every stream, a cost that grows with the square
    /// of the room (0: never per user).
    pub presence_events_max_online: usize,
    /// `CATCHUP_WINDOW_EVENTS`: the most recent log events the hub keeps rendered per
    /// watched room, so a resuming stream catches up from memory (0: none).
    pub window_events: usize,
    /// `CATCHUP_WINDOW_BYTES`: the most bytes of frames one room's window holds.
    pub window_bytes: usize,
}

// Secrets never reach logs: Debug prints them redacted.
impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &"<redacted>")
            .field(
                "url_unpooled",
                &self.url_unpooled.as_ref().map(|_| "<redacted>"),
            )
            .field("url_read", &self.url_read.as_ref().map(|_| "<redacted>"))
            .field("read_timeout", &self.read_timeout)
            .field("pool_max", &self.pool_max)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("jwks_url", &self.jwks_url)
            .field("email_claim", &self.email_claim)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("force_path_style", &self.force_path_style)
            .field("public_base_url", &self.public_base_url)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("allowed_types", &self.allowed_types)
            .field("orphan_after", &self.orphan_after)
            .field(
                "cron_secret",
                &self.cron_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 50 * 1024 * 1024;

impl StreamConfig {
    pub fn defaults() -> Self {
        Self {
            poll_interval: Duration::from_millis(500),
            wakeup_poll_interval: Duration::from_millis(1000),
            max_lifetime: Duration::from_secs(280),
            max_backlog: 1000,
            heartbeat: Duration::from_secs(15),
            max_per_instance: 800,
            presence_heartbeat: Duration::from_secs(15),
            presence_ttl: Duration::from_secs(45),
            presence_events_max_online: 100,
            window_events: 1000,
            window_bytes: 1024 * 1024,
        }
    }
}

impl Config {
    /// Reads the whole configuration; fails with every missing or malformed variable named.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Config::from_env`], over any source of variables (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let env = Env(&get);
        let mut missing = Vec::new();
        let mut required = |name: &'static str| match env.get(name) {
            Some(v) => v,
            None => {
                missing.push(name);
                String::new()
            }
        };
        let database_url = required("DATABASE_URL");
        let endpoint = required("S3_ENDPOINT");
        let bucket = required("S3_BUCKET");
        let access_key_id = required("S3_ACCESS_KEY_ID");
        let secret_access_key = required("S3_SECRET_ACCESS_KEY");
        let jwt_secret = env.get("AUTH_JWT_SECRET");
        let jwks_url = env.get("AUTH_JWKS_URL");
        if jwt_secret.is_none() && jwks_url.is_none() {
            missing.push("AUTH_JWT_SECRET or AUTH_JWKS_URL");
        }
        if !missing.is_empty() {
            bail!("missing required settings: {}", missing.join(", "));
        }
        let stream_defaults = StreamConfig::defaults();
        let limit_defaults = LimitsConfig::defaults();
        let limit = |name: &str, default: RateLimit| -> anyhow::Result<RateLimit> {
            match env.get(name) {
                None => Ok(default),
                Some(raw) => RateLimit::parse(default.action, &raw)
                    .map_err(|e| anyhow!("{name} has an invalid value: {e}")),
            }
        };
        let presence_heartbeat = Duration::from_secs(env.parse(
            "PRESENCE_HEARTBEAT_SECS",
            stream_defaults.presence_heartbeat.as_secs(),
        )?);
        let presence_ttl = Duration::from_secs(
            env.parse("PRESENCE_TTL_SECS", stream_defaults.presence_ttl.as_secs())?,
        );
        // An entry must outlive the gap between two writes of it.
        if presence_heartbeat.is_zero() || presence_ttl <= presence_heartbeat {
            bail!(
                "PRESENCE_TTL_SECS must be more than PRESENCE_HEARTBEAT_SECS, which must be 1 or more"
            );
        }
        Ok(Self {
            database: DatabaseConfig {
                url: database_url,
                url_unpooled: env.get("DATABASE_URL_UNPOOLED"),
                url_read: env.get("DATABASE_URL_READ"),
                read_timeout: Duration::from_millis(env.parse("DB_READ_TIMEOUT_MS", 1000)?),
                pool_max: env.parse("DB_POOL_MAX", 5)?,
                acquire_timeout: Duration::from_millis(env.parse("DB_ACQUIRE_TIMEOUT_MS", 5000)?),
                statement_timeout: Duration::from_millis(
                    env.parse("DB_STATEMENT_TIMEOUT_MS", 5000)?,
                ),
            },
            auth: AuthConfig {
                jwt_secret,
                jwks_url,
                email_claim: env
                    .get("AUTH_EMAIL_CLAIM")
                    .unwrap_or_else(|| "email".into()),
                jwks_min_refresh: Duration::from_secs(60),
                issuer: env.get("AUTH_JWT_ISSUER"),
                audience: env.get("AUTH_JWT_AUDIENCE"),
            },
            storage: StorageConfig {
                endpoint,
                region: env.get("S3_REGION").unwrap_or_else(|| "auto".into()),
                bucket,
                access_key_id,
                secret_access_key,
                force_path_style: env.parse("S3_FORCE_PATH_STYLE", true)?,
                public_base_url: env
                    .get("FILES_PUBLIC_BASE_URL")
                    .map(|u| u.trim_end_matches('/').to_owned()),
                max_upload_bytes: env.parse("MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES)?,
                allowed_types: env
                    .get("UPLOAD_ALLOWED_TYPES")
                    .map_or_else(AllowedTypes::default, |t| AllowedTypes::parse(&t)),
                orphan_after: Duration::from_secs(3600 * env.parse("UPLOAD_ORPHAN_HOURS", 24u64)?),
                cron_secret: env.get("CRON_SECRET"),
            },
            stream: StreamConfig {
                poll_interval: Duration::from_millis(env.parse(
                    "STREAM_POLL_MS",
                    stream_defaults.poll_interval.as_millis() as u64,
                )?),
                wakeup_poll_interval: Duration::from_millis(env.parse(
                    "STREAM_WAKEUP_POLL_MS",
                    stream_defaults.wakeup_poll_interval.as_millis() as u64,
                )?),
                max_lifetime: Duration::from_secs(
                    env.parse("STREAM_MAX_SECONDS", stream_defaults.max_lifetime.as_secs())?,
                ),
                max_backlog: env.parse("STREAM_MAX_BACKLOG", stream_defaults.max_backlog)?,
                heartbeat: Duration::from_secs(
                    env.parse("STREAM_HEARTBEAT_SECS", stream_defaults.heartbeat.as_secs())?,
                ),
                max_per_instance: env
                    .parse("STREAM_MAX_PER_INSTANCE", stream_defaults.max_per_instance)?,
                presence_heartbeat,
                presence_ttl,
                presence_events_max_online: env.parse(
                    "PRESENCE_EVENTS_MAX_ONLINE",
                    stream_defaults.presence_events_max_online,
                )?,
                window_events: env.parse("CATCHUP_WINDOW_EVENTS", stream_defaults.window_events)?,
                window_bytes: env.parse("CATCHUP_WINDOW_BYTES", stream_defaults.window_bytes)?,
            },
            limits: LimitsConfig {
                posts: limit("RATE_LIMIT_POSTS", limit_defaults.posts)?,
                uploads: limit("RATE_LIMIT_UPLOADS", limit_defaults.uploads)?,
                rooms: limit("RATE_LIMIT_ROOMS", limit_defaults.rooms)?,
                edits: limit("RATE_LIMIT_EDITS", limit_defaults.edits)?,
                reactions: limit("RATE_LIMIT_REACTIONS", limit_defaults.reactions)?,
                streams_per_user: env
                    .parse("STREAM_MAX_PER_USER", limit_defaults.streams_per_user)?,
            },
            media: {
                let d = MediaConfig::defaults();
                let media = MediaConfig {
                    thumbnail_max_px: env.parse("THUMBNAIL_MAX_PX", d.thumbnail_max_px)?,
                    image_max_px: env.parse("IMAGE_MAX_PX", d.image_max_px)?,
                    decode_max_pixels: env.parse("IMAGE_DECODE_MAX_PIXELS", d.decode_max_pixels)?,
                    decode_max_bytes: env.parse("IMAGE_DECODE_MAX_BYTES", d.decode_max_bytes)?,
                    timeout: Duration::from_millis(
                        env.parse("IMAGE_PROCESS_TIMEOUT_MS", d.timeout.as_millis() as u64)?,
                    ),
                };
                if media.thumbnail_max_px == 0 || media.image_max_px < media.thumbnail_max_px {
                    bail!("IMAGE_MAX_PX must be at least THUMBNAIL_MAX_PX, and both above 0");
                }
                media
            },
            archive: {
                let days = |name: &str| -> anyhow::Result<Option<Duration>> {
                    match env.get(name) {
                        None => Ok(None),
                        Some(v) => match v.parse::<u64>() {
                            Ok(d) if d > 0 => Ok(Some(Duration::from_secs(d * 86_400))),
                            _ => bail!("{name} must be a whole number of days, 1 or more"),
                        },
                    }
                };
                let keep_per_room = match env.get("ARCHIVE_KEEP_PER_ROOM") {
                    None => None,
                    Some(v) => match v.parse::<i64>() {
                        Ok(n) if n >= 0 => Some(n),
                        _ => bail!("ARCHIVE_KEEP_PER_ROOM must be a whole number, 0 or more"),
                    },
                };
                let archive = ArchiveConfig {
                    after: days("ARCHIVE_AFTER_DAYS")?,
                    keep_per_room,
                    retention: days("RETENTION_DAYS")?,
                    batch: env.parse("ARCHIVE_BATCH", 1000)?,
                    batches_per_run: env.parse("ARCHIVE_BATCHES_PER_RUN", 50)?,
                    fault: None,
                };
                if !(1..=10_000).contains(&archive.batch) || archive.batches_per_run == 0 {
                    bail!("ARCHIVE_BATCH must be 1 to 10000, ARCHIVE_BATCHES_PER_RUN 1 or more");
                }
                archive
            },
            cors: AllowedOrigins::parse(&env.get("CORS_ALLOWED_ORIGINS").unwrap_or_default()),
            search_language: match env.get("SEARCH_LANGUAGE") {
                None => SearchLanguage::DEFAULT,
                Some(raw) => SearchLanguage::parse(&raw).map_err(|e| anyhow!("{e}"))?,
            },
            admins: Admins::parse(&env.get("ADMIN_EMAILS").unwrap_or_default()),
        })
    }
}

struct Env<'a, F: Fn(&str) -> Option<String>>(&'a F);

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    /// A set, non-blank value.
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn parse<T: std::str::FromStr>(&self, name: &str, default: T) -> anyhow::Result<T>
    where
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .with_context(|| format!("{name} has an invalid value")),
        }
    }
}

/// Which origins may call the API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// No cross-origin access (the default).
    #[default]
    None,
    /// `*`: any origin.
    Any,
    List(Vec<String>),
}

impl AllowedOrigins {
    /// `CORS_ALLOWED_ORIGINS`: comma-separated origins such as `https://app.example.com`, or `*`.
    pub fn parse(raw: &str) -> Self {
        let origins: Vec<String> = raw
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        if origins.iter().any(|o| o == "*") {
            Self::Any
        } else if origins.is_empty() {
            Self::None
        } else {
            Self::List(origins)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn base() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("DATABASE_URL", "postgres://u:p@h/db"),
            ("DATABASE_URL_READ", "postgres://ru:rp@replica/db"),
            ("AUTH_JWT_SECRET", "s3cret"),
            ("S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("S3_BUCKET", "b"),
            ("S3_ACCESS_KEY_ID", "k"),
            ("S3_SECRET_ACCESS_KEY", "sk"),
        ])
    }

    fn load(vars: &HashMap<&str, &str>) -> anyhow::Result<Config> {
        Config::from_lookup(|k| vars.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn a_presence_entry_must_outlive_its_heartbeat() {
        let c = load(&base()).unwrap();
        assert_eq!(c.stream.presence_heartbeat, Duration::from_secs(15));
        assert_eq!(c.stream.presence_ttl, Duration::from_secs(45));
        assert_eq!(c.stream.presence_events_max_online, 100);
        for (heartbeat, ttl) in [("15", "15"), ("0", "45"), ("20", "10")] {
            let mut vars = base();
            vars.insert("PRESENCE_HEARTBEAT_SECS", heartbeat);
            vars.insert("PRESENCE_TTL_SECS", ttl);
            let err = load(&vars).unwrap_err().to_string();
            assert!(err.contains("PRESENCE_TTL_SECS"), "{err}");
        }
    }

    #[test]
    fn defaults_apply_when_optional_settings_are_unset() {
        let c = load(&base()).unwrap();
        assert_eq!(c.database.pool_max, 5);
        assert_eq!(c.database.read_timeout, Duration::from_millis(1000));
        assert_eq!(c.storage.max_upload_bytes, 52_428_800);
        assert_eq!(c.storage.region, "auto");
        assert_eq!(c.stream.poll_interval, Duration::from_millis(500));
        assert_eq!(c.stream.max_lifetime, Duration::from_secs(280));
        assert_eq!(c.stream.max_backlog, 1000);
        assert_eq!(c.stream.window_events, 1000);
        assert_eq!(c.stream.window_bytes, 1024 * 1024);
    }

    #[test]
    fn missing_required_settings_are_all_named() {
        let err = load(&HashMap::new()).unwrap_err().to_string();
        for name in [
            "DATABASE_URL",
            "AUTH_JWT_SECRET or AUTH_JWKS_URL",
            "S3_BUCKET",
        ] {
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn a_malformed_number_is_an_error_naming_the_variable() {
        let mut vars = base();
        vars.insert("DB_POOL_MAX", "many");
        let err = load(&vars).unwrap_err().to_string();
        assert!(err.contains("DB_POOL_MAX"), "{err}");
    }

    #[test]
    fn search_language_defaults_to_simple_and_must_be_known() {
        assert_eq!(load(&base()).unwrap().search_language.as_str(), "simple");
        let mut vars = base();
        vars.insert("SEARCH_LANGUAGE", "english");
        assert_eq!(load(&vars).unwrap().search_language.as_str(), "english");
        vars.insert("SEARCH_LANGUAGE", "klingon");
        let err = load(&vars).unwrap_err().to_string();
        assert!(err.contains("SEARCH_LANGUAGE"), "{err}");
    }

    #[test]
    fn admins_are_matched_case_insensitively_and_unset_is_nobody() {
        assert!(!load(&base()).unwrap().admins.contains("ops@example.com"));
        let mut vars = base();
        vars.insert("ADMIN_EMAILS", " Ops@Example.com , ,root@example.com");
        let admins = load(&vars).unwrap().admins;
        assert!(admins.contains("ops@example.com"));
        assert!(admins.contains("ROOT@example.com"));
        assert!(!admins.contains("alice@example.com"));
        assert!(!admins.contains(""));
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let c = load(&base()).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("u:p@h") && !shown.contains("\"sk\""));
        assert!(!shown.contains("rp@replica"), "{shown}");
    }
}
