//! The per-process context every handler shares (the router's state).

use std::sync::Arc;

use sqlx::PgPool;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::db::replica::Reader;
use crate::db::write_queue::{Deletes, Edits, Posts, Reactions, WriteQueue};
use crate::http::latency::RouteLatencies;
use crate::realtime::Hub;
use crate::storage::Storage;

/// Config, the lazy pools, the S3 client, the token verifier, the hub and the write queues: built once per process
/// (one process serves many concurrent requests), cheap to clone.
#[derive(Clone)]
pub struct App(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub db: PgPool,
    /// Reads that may be served by the read replica (`DATABASE_URL_READ`), falling back to
    /// `db`: pages, replies, the stream's catch-up, search.
    pub reader: Reader,
    pub storage: Storage,
    pub auth: Authenticator,
    pub hub: Hub,
    /// Plain posts, edits, reactions and deletes written together under load
    /// (`db::write_queue`).
    pub posts: WriteQueue<Posts>,
    pub edits: WriteQueue<Edits>,
    pub reactions: WriteQueue<Reactions>,
    pub deletes: WriteQueue<Deletes>,
    /// Archive segments read lately, decoded (`archive`).
    pub segments: crate::archive::SegmentCache,
    /// Per-route counts and latencies since start (`GET /api/admin/stats`).
    pub latencies: Arc<RouteLatencies>,
    /// When this process built its context.
    pub started: std::time::Instant,
}

impl std::ops::Deref for App {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl App {
    /// Builds the context from the environment. Does no I/O beyond reading it: the pool
    /// connects on first use.
    pub async fn from_env() -> anyhow::Result<Self> {
        Self::new(Config::from_env()?).await
    }

    pub async fn new(config: Config) -> anyhow::Result<Self> {
        let db = crate::db::lazy_pool(&config.database)?;
        let reader = Reader::new(db.clone(), &config.database)?;
        let storage = Storage::new(&config.storage).await;
        let auth = Authenticator::new(&config.auth);
        let hub = Hub::new(
            db.clone(),
            reader.clone(),
            storage.clone(),
            config.stream.clone(),
            &config.database,
            config.limits.streams_per_user,
        );
        // The queues' own connections, which plan each batch statement once.
        let writes = crate::db::lazy_write_pool(&config.database)?;
        let posts = WriteQueue::new(writes.clone(), config.limits.posts);
        let edits = WriteQueue::new(writes.clone(), config.limits.edits);
        let reactions = WriteQueue::new(writes.clone(), config.limits.reactions);
        // Deletes take their tokens from the edits' bucket (`RATE_LIMIT_EDITS`).
        let deletes = WriteQueue::new(writes, config.limits.edits);
        Ok(Self(Arc::new(Inner {
            config,
            db,
            reader,
            storage,
            auth,
            hub,
            posts,
            edits,
            deletes,
            reactions,
            segments: Default::default(),
            latencies: Arc::default(),
            started: std::time::Instant::now(),
        })))
    }

    /// What processes attached images (`media`), from this context.
    pub fn processor(&self) -> crate::media::Processor {
        crate::media::Processor {
            storage: self.storage.clone(),
            db: self.db.clone(),
            config: self.config.media.clone(),
            max_bytes: self.config.storage.max_upload_bytes,
        }
    }
}
