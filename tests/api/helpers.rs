//! `TestApp`: the real app on a real port, with a fresh database from a migrated template
//! on a real Postgres, and an S3-compatible server that verifies signatures.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use chat_dev::server::serve;
use chat_dev::token::mint_token;
use chat_dev::{EmbeddedPostgres, EmbeddedS3};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use shared::App;
use shared::config::Config;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;

pub const ALICE: &str = "alice@example.com";
pub const BOB: &str = "bob@example.com";
const SECRET: &str = "test-secret";

/// The Postgres server the whole test binary shares: `DATABASE_URL` when set, otherwise a
/// throwaway cluster. Each test gets its own database, copied from a migrated template.
struct Cluster {
    admin_url: String,
    template: String,
    _embedded: Option<EmbeddedPostgres>,
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        // Its own runtime, kept for the life of the process: tests each have theirs.
        std::thread::spawn(|| {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            let cluster = runtime
                .block_on(start_cluster())
                .expect("start the test database");
            Box::leak(Box::new(runtime));
            cluster
        })
        .join()
        .expect("cluster thread")
    })
}

async fn start_cluster() -> anyhow::Result<Cluster> {
    let (admin_url, embedded) = match std::env::var("DATABASE_URL").ok().filter(|v| !v.is_empty()) {
        Some(url) => (url, None),
        None => {
            let pg = EmbeddedPostgres::start().await?;
            (pg.url(), Some(pg))
        }
    };
    let template = format!("chat_template_{}", std::process::id());
    let mut admin = PgConnection::connect(&admin_url).await?;
    admin
        .execute(format!(r#"DROP DATABASE IF EXISTS "{template}""#).as_str())
        .await?;
    admin
        .execute(format!(r#"CREATE DATABASE "{template}""#).as_str())
        .await?;
    let pool = PgPool::connect(&with_database(&admin_url, &template)).await?;
    shared::db::MIGRATOR.run(&pool).await?;
    pool.close().await;
    Ok(Cluster {
        admin_url,
        template,
        _embedded: embedded,
    })
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{database}?{q}"),
        None => format!("{root}/{database}"),
    }
}

/// A fresh database for one test.
pub async fn fresh_database() -> String {
    let cluster = cluster();
    let name = format!("test_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&cluster.admin_url)
        .await
        .expect("admin connection");
    admin
        .execute(
            format!(
                r#"CREATE DATABASE "{name}" TEMPLATE "{}""#,
                cluster.template
            )
            .as_str(),
        )
        .await
        .expect("create test database");
    with_database(&cluster.admin_url, &name)
}

/// A fresh database with no migrations applied (a test that migrates it itself).
pub async fn empty_database() -> String {
    let cluster = cluster();
    let name = format!("test_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&cluster.admin_url)
        .await
        .expect("admin connection");
    admin
        .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
        .await
        .expect("create test database");
    with_database(&cluster.admin_url, &name)
}

/// The settings every test runs with, as the environment variables a deployment sets (the
/// function binaries under the Lambda emulator get exactly these).
pub fn base_env(database_url: &str, s3: &EmbeddedS3) -> HashMap<&'static str, String> {
    HashMap::from([
        ("DATABASE_URL", database_url.to_owned()),
        ("AUTH_JWT_SECRET", SECRET.to_owned()),
        ("S3_ENDPOINT", s3.endpoint.clone()),
        ("S3_REGION", s3.region.clone()),
        ("S3_BUCKET", s3.bucket.clone()),
        ("S3_ACCESS_KEY_ID", s3.access_key_id.clone()),
        ("S3_SECRET_ACCESS_KEY", s3.secret_access_key.clone()),
        // Most tests send faster than a person; the rate-limit tests turn limits back on.
        ("RATE_LIMIT_POSTS", "off".to_owned()),
        ("RATE_LIMIT_UPLOADS", "off".to_owned()),
        ("RATE_LIMIT_ROOMS", "off".to_owned()),
        ("STREAM_MAX_PER_USER", "100000".to_owned()),
    ])
}

pub fn base_config(database_url: &str, s3: &EmbeddedS3) -> Config {
    let vars = base_env(database_url, s3);
    Config::from_lookup(|k| vars.get(k).cloned()).expect("test config")
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: PgPool,
    pub app: App,
    _s3: EmbeddedS3,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
        self.app.hub.shutdown();
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns the app with a configuration the test adjusts.
    pub async fn spawn_with(customise: impl FnOnce(&mut Config)) -> Self {
        let database_url = fresh_database().await;
        let s3 = EmbeddedS3::start("chat-test", None).expect("start S3");
        let mut config = base_config(&database_url, &s3);
        customise(&mut config);
        Self::serve(config, database_url, s3).await
    }

    pub async fn serve(config: Config, database_url: String, s3: EmbeddedS3) -> Self {
        let app = App::new(config).await.expect("app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tokio::spawn({
            let app = app.clone();
            async move {
                serve(listener, app, std::future::pending())
                    .await
                    .expect("serve");
            }
        });
        let db = PgPool::connect_lazy(&database_url).expect("pool");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Self {
            address,
            client,
            db,
            app,
            _s3: s3,
            server,
        }
    }

    /// Whether the server task is still running (it ends only by panicking here).
    pub fn server_alive(&self) -> bool {
        !self.server.is_finished()
    }

    /// `GET /api/health`: the status and the body.
    pub async fn health(&self) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.url("/api/health"))
            .send()
            .await
            .expect("GET /api/health");
        let status = response.status();
        (status, response.json().await.expect("health json"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn token(&self, email: &str) -> String {
        mint_token(&self.app.config.auth, email, 3600).expect("token")
    }

    pub async fn get_as(&self, email: &str, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(self.token(email))
            .send()
            .await
            .expect("GET")
    }

    pub async fn post_as(&self, email: &str, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(self.token(email))
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn create_room(&self, id: &str) -> Response {
        self.post_as(ALICE, "/api/rooms", &json!({ "id": id }))
            .await
    }

    /// Creates a room and asserts it worked.
    pub async fn room(&self, id: &str) {
        let response = self.create_room(id).await;
        assert_eq!(response.status(), StatusCode::CREATED, "create room {id}");
    }

    pub async fn list_rooms(&self) -> Response {
        self.get_as(ALICE, "/api/rooms").await
    }

    pub async fn post_message(&self, room: &str, body: &Value) -> Response {
        self.post_message_as(ALICE, room, body).await
    }

    pub async fn post_message_as(&self, email: &str, room: &str, body: &Value) -> Response {
        self.post_as(email, &format!("/api/rooms/{room}/messages"), body)
            .await
    }

    /// Posts `content` and returns the stored message.
    pub async fn send(&self, room: &str, content: &str) -> Value {
        let response = self
            .post_message(room, &json!({ "content": content }))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "send to {room}");
        response.json().await.expect("message json")
    }

    pub async fn list_messages(&self, room: &str, query: &str) -> Response {
        self.get_as(ALICE, &format!("/api/rooms/{room}/messages{query}"))
            .await
    }

    pub async fn presign(&self, email: &str, body: &Value) -> Response {
        self.post_as(email, "/api/uploads", body).await
    }

    /// Presigns an upload as `email`, asserting 201, and returns the presign body.
    pub async fn presigned(&self, email: &str, body: &Value) -> Value {
        let response = self.presign(email, body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }

    /// PUTs `bytes` to a presigned upload with exactly the headers it names.
    pub async fn put_upload(&self, upload: &Value, bytes: &[u8]) -> Response {
        let mut request = self
            .client
            .put(upload["url"].as_str().unwrap())
            .body(bytes.to_vec());
        for (name, value) in upload["headers"].as_object().unwrap() {
            request = request.header(name, value.as_str().unwrap());
        }
        request.send().await.unwrap()
    }

    /// Inserts `n` messages straight into the database (fast seeding for paging tests).
    pub async fn seed_messages(&self, room: &str, n: i64) {
        sqlx::query(
            r#"
            WITH bumped AS (
                UPDATE chat_rooms SET last_seq = last_seq + $2, last_event = last_event + $2
                WHERE id = $1
                RETURNING last_seq - $2 AS first, last_event - $2 AS first_event
            )
            INSERT INTO chat_messages (id, room_id, seq, event_id, created_event, user_email, content)
            SELECT gen_random_uuid(), $1, bumped.first + g, bumped.first_event + g,
                   bumped.first_event + g, 'seed@example.com', 'seed ' || (bumped.first + g)
            FROM bumped, generate_series(1, $2) AS g
            "#,
        )
        .bind(room)
        .bind(n)
        .execute(&self.db)
        .await
        .expect("seed");
    }
}

/// Asserts the error shape and code, and returns the message.
pub async fn assert_error(response: Response, status: StatusCode, code: &str) -> String {
    assert_eq!(response.status(), status, "status for expected `{code}`");
    let content_type = response.headers().get("content-type").cloned();
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(body["error"]["code"], code, "body: {body}");
    let message = body["error"]["message"]
        .as_str()
        .expect("message")
        .to_owned();
    assert!(!message.is_empty());
    assert!(content_type.is_some_and(|c| c.to_str().unwrap().starts_with("application/json")));
    message
}

/// Panics anywhere in this process outside the test code itself (the server's tasks, the
/// hub, the subscribers), counted from the first call on.
pub fn server_panics() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static PANICS: AtomicUsize = AtomicUsize::new(0);
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_tests = info
                .location()
                .is_some_and(|l| l.file().contains("tests/api/"));
            if !in_tests {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
    PANICS.load(Ordering::SeqCst)
}

/// A cluster of its own with a streaming replica (`EmbeddedPostgres::start_replica`), and
/// a migrated database `chat` on it: the replica tests pause, stop and freeze the replica,
/// which the cluster the other tests share must never see.
pub struct Replicated {
    pub database_url: String,
    pub read_url: String,
    /// Superuser pools on each side, for the tests' own checks.
    pub primary_db: PgPool,
    pub replica_db: PgPool,
    /// Declared after the pools (dropped after them), the replica before its primary.
    pub replica: EmbeddedPostgres,
    _primary: EmbeddedPostgres,
}

impl Replicated {
    pub async fn start() -> Self {
        let primary = EmbeddedPostgres::start().await.expect("start a primary");
        let mut admin = PgConnection::connect(&primary.url()).await.expect("admin");
        admin.execute("CREATE DATABASE chat").await.expect("create");
        admin.close().await.expect("close");
        let database_url = primary.url_for("chat");
        let primary_db = PgPool::connect(&database_url).await.expect("connect");
        shared::db::MIGRATOR
            .run(&primary_db)
            .await
            .expect("migrate");
        let replica = primary.start_replica().await.expect("start a replica");
        let read_url = replica.url_for("chat");
        let replica_db = PgPool::connect_lazy(&read_url).expect("replica pool");
        let replicated = Self {
            database_url,
            read_url,
            primary_db,
            replica_db,
            replica,
            _primary: primary,
        };
        replicated.caught_up().await;
        replicated
    }

    /// The app on the primary, reading from the replica.
    pub async fn app(&self, customise: impl FnOnce(&mut Config)) -> TestApp {
        let s3 = EmbeddedS3::start("chat-test", None).expect("start S3");
        let mut config = base_config(&self.database_url, &s3);
        config.database.url_read = Some(self.read_url.clone());
        customise(&mut config);
        TestApp::serve(config, self.database_url.clone(), s3).await
    }

    /// Waits until the replica has replayed everything the primary has written so far.
    pub async fn caught_up(&self) {
        let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
            .fetch_one(&self.primary_db)
            .await
            .expect("primary lsn");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let replayed: Option<bool> =
                sqlx::query_scalar("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn")
                    .bind(&lsn)
                    .fetch_one(&self.replica_db)
                    .await
                    .ok()
                    .flatten();
            if replayed == Some(true) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the replica did not replay {lsn} in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Pauses the replica's replay (`pg_wal_replay_pause()`) and waits until it is paused:
    /// from here on it receives the primary's WAL but shows none of it.
    pub async fn pause(&self) {
        sqlx::query("SELECT pg_wal_replay_pause()")
            .execute(&self.replica_db)
            .await
            .expect("pause replay");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let state: String = sqlx::query_scalar("SELECT pg_get_wal_replay_pause_state()")
                .fetch_one(&self.replica_db)
                .await
                .expect("pause state");
            if state == "paused" {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "replay did not pause");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Resumes the replica's replay (`pg_wal_replay_resume()`).
    pub async fn resume(&self) {
        sqlx::query("SELECT pg_wal_replay_resume()")
            .execute(&self.replica_db)
            .await
            .expect("resume replay");
    }
}
