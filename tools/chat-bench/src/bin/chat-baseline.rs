//! `chat-baseline`: the plain-insert baseline the write-cost scenario compares the API with
//! (BENCHMARKS.md, "The log's write path"). It serves the HTTP shape `chat-bench` drives, on
//! the same HTTP stack as the dev server (hyper 1, `hyper_util`'s connection builder, one
//! task per connection), with the same HS256 check of the bearer token and a 5-connection
//! sqlx pool, and stores a post with ONE plain `INSERT … RETURNING` into a table of its own
//! that has what the deployed system had: a primary key and the two named indexes
//! (`(room_id, created_at DESC)` and `(user_email)`). None of the API's guarantees: no
//! per-room order, no idempotency, no rate limit, no read mark, no notification.
//!
//! - `GET /api/health` → 200 `{"server": "chat-baseline"}`
//! - `POST /api/rooms` `{"id", "name"}` → 201 (409 when the id is taken)
//! - `POST /api/rooms/{room}/messages` `{"content", "client_id"?}` → 201 with the row
//! - `GET /api/rooms/{room}/stream?access_token=` (`Last-Event-ID`: a count of messages) →
//!   `text/event-stream`: the per-connection poller of the replaced system, which the
//!   reconnect-storm scenario compares the hub with. Each connection reads its room's
//!   messages after its position, oldest first, in ONE statement (`POLL`), sends them
//!   (`id:` the message's position in the room), and polls again every
//!   `BASELINE_POLL_MS` (default 1000) while the client stays.
//!
//! Settings: `DATABASE_URL` (required; the tables are created when missing), `PORT`
//! (default 3300), `AUTH_JWT_SECRET` (default: the dev server's), `DB_POOL_MAX` (default 5).

use std::convert::Infallible;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// The schema: what the deployed system's messages table had, in tables of its own.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS baseline_rooms (
    id          text        PRIMARY KEY,
    name        text        NOT NULL,
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS baseline_messages (
    id          uuid        PRIMARY KEY,
    room_id     text        NOT NULL,
    user_email  text        NOT NULL,
    content     text        NOT NULL,
    client_id   uuid,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_baseline_messages_room ON baseline_messages (room_id, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_baseline_messages_user ON baseline_messages (user_email);
"#;

const INSERT_MESSAGE: &str = r#"
    INSERT INTO baseline_messages (id, room_id, user_email, content, client_id)
    VALUES ($1, $2, $3, $4, $5)
    RETURNING id, room_id, user_email, content, client_id, created_at
"#;

const INSERT_ROOM: &str = r#"
    INSERT INTO baseline_rooms (id, name, created_by) VALUES ($1, $2, $3)
    ON CONFLICT (id) DO NOTHING
    RETURNING id, name, created_by, created_at
"#;

/// A connection's poll: the room's messages after its position `$2`, oldest first.
const POLL: &str = r#"
    SELECT id, user_email, content, created_at FROM baseline_messages
    WHERE room_id = $1
    ORDER BY created_at, id
    OFFSET $2 LIMIT 500
"#;

struct State {
    db: PgPool,
    key: DecodingKey,
    validation: Validation,
    poll: std::time::Duration,
}

type Body = BoxBody<Bytes, Infallible>;

/// A refused request: its status and error code.
struct Refusal(StatusCode, &'static str);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let url = env("DATABASE_URL").context("DATABASE_URL is required")?;
    let port: u16 = env("PORT").map_or(Ok(3300), |p| p.trim().parse())?;
    let secret = env("AUTH_JWT_SECRET").unwrap_or_else(|| chat_bench::args::DEV_JWT_SECRET.into());
    let pool_max: u32 = env("DB_POOL_MAX").map_or(Ok(5), |p| p.trim().parse())?;
    let poll_ms: u64 = env("BASELINE_POLL_MS").map_or(Ok(1000), |p| p.trim().parse())?;

    let db = PgPoolOptions::new()
        .max_connections(pool_max)
        .connect_with(PgConnectOptions::from_str(&url).context("DATABASE_URL")?)
        .await
        .context("connect to DATABASE_URL")?;
    sqlx::raw_sql(SCHEMA)
        .execute(&db)
        .await
        .context("create the tables")?;

    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 30;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp"]);
    let state = Arc::new(State {
        db,
        key: DecodingKey::from_secret(secret.as_bytes()),
        validation,
        poll: std::time::Duration::from_millis(poll_ms),
    });

    let listener = listen(port).with_context(|| format!("listen on port {port}"))?;
    println!(
        "chat-baseline on http://localhost:{port} (pid {})",
        std::process::id()
    );
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                eprintln!("accept failed: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, request).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(state: &Arc<State>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let result = match (request.method(), segments.as_slice()) {
        (&Method::GET, ["api", "health"]) => Ok(reply(
            StatusCode::OK,
            &json!({ "status": "ok", "server": "chat-baseline" }),
        )),
        (&Method::POST, ["api", "rooms"]) => create_room(state, request).await,
        (&Method::POST, ["api", "rooms", room, "messages"]) => {
            let room = (*room).to_owned();
            post_message(state, &room, request).await
        }
        (&Method::GET, ["api", "rooms", room, "stream"]) => {
            let room = (*room).to_owned();
            stream(state, &room, &request)
        }
        _ => Err(Refusal(StatusCode::NOT_FOUND, "route_not_found")),
    };
    result.unwrap_or_else(|Refusal(status, code)| error(status, code))
}

/// The caller's email from `Authorization: Bearer <HS256 JWT>`.
fn authenticate(state: &State, request: &Request<Incoming>) -> Result<String, Refusal> {
    let unauthorized = || Refusal(StatusCode::UNAUTHORIZED, "unauthorized");
    let token = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(unauthorized)?;
    let claims = jsonwebtoken::decode::<serde_json::Map<String, Value>>(
        token,
        &state.key,
        &state.validation,
    )
    .map_err(|_| unauthorized())?
    .claims;
    claims
        .get("email")
        .and_then(Value::as_str)
        .filter(|e| e.contains('@'))
        .map(str::to_owned)
        .ok_or_else(unauthorized)
}

async fn json_body(request: Request<Incoming>) -> Result<Value, Refusal> {
    let bytes = request
        .into_body()
        .collect()
        .await
        .map_err(|_| Refusal(StatusCode::BAD_REQUEST, "body_unreadable"))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|_| Refusal(StatusCode::BAD_REQUEST, "invalid_json"))
}

async fn create_room(state: &State, request: Request<Incoming>) -> Result<Response<Body>, Refusal> {
    let user = authenticate(state, &request)?;
    let body = json_body(request).await?;
    let id = body["id"]
        .as_str()
        .ok_or(Refusal(StatusCode::BAD_REQUEST, "invalid_field"))?;
    let name = body["name"].as_str().unwrap_or(id);
    let row = sqlx::query(INSERT_ROOM)
        .bind(id)
        .bind(name)
        .bind(&user)
        .fetch_optional(&state.db)
        .await
        .map_err(|_| Refusal(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"))?;
    match row {
        Some(row) => Ok(reply(
            StatusCode::CREATED,
            &json!({
                "id": row.get::<String, _>("id"),
                "name": row.get::<String, _>("name"),
                "created_by": row.get::<String, _>("created_by"),
                "created_at": row.get::<chrono::DateTime<chrono::Utc>, _>("created_at"),
            }),
        )),
        None => Err(Refusal(StatusCode::CONFLICT, "room_exists")),
    }
}

async fn post_message(
    state: &State,
    room: &str,
    request: Request<Incoming>,
) -> Result<Response<Body>, Refusal> {
    let user = authenticate(state, &request)?;
    let body = json_body(request).await?;
    let content = body["content"].as_str().unwrap_or_default();
    if content.trim().is_empty() || content.chars().count() > 4000 {
        return Err(Refusal(StatusCode::BAD_REQUEST, "invalid_field"));
    }
    let client_id = body["client_id"]
        .as_str()
        .and_then(|v| Uuid::try_parse(v).ok());
    let row = sqlx::query(INSERT_MESSAGE)
        .bind(Uuid::now_v7())
        .bind(room)
        .bind(&user)
        .bind(content)
        .bind(client_id)
        .fetch_one(&state.db)
        .await
        .map_err(|_| Refusal(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"))?;
    Ok(reply(
        StatusCode::CREATED,
        &json!({
            "id": row.get::<Uuid, _>("id"),
            "room_id": row.get::<String, _>("room_id"),
            "user_email": row.get::<String, _>("user_email"),
            "content": row.get::<String, _>("content"),
            "client_id": row.get::<Option<Uuid>, _>("client_id"),
            "created_at": row.get::<chrono::DateTime<chrono::Utc>, _>("created_at"),
        }),
    ))
}

/// The per-connection poller: after `Last-Event-ID` (a position in the room), every
/// message, then a poll every `BASELINE_POLL_MS`, each one statement, until the client goes.
fn stream(
    state: &Arc<State>,
    room: &str,
    request: &Request<Incoming>,
) -> Result<Response<Body>, Refusal> {
    let token = request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("access_token=")))
        .ok_or(Refusal(StatusCode::UNAUTHORIZED, "unauthorized"))?;
    jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &state.key, &state.validation)
        .map_err(|_| Refusal(StatusCode::UNAUTHORIZED, "unauthorized"))?;
    let mut position: i64 = request
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let (state, room) = (state.clone(), room.to_owned());
    tokio::spawn(async move {
        if tx
            .send(Bytes::from_static(b"retry: 1000\n\n"))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let rows = match sqlx::query(POLL)
                .bind(&room)
                .bind(position)
                .fetch_all(&state.db)
                .await
            {
                Ok(rows) => rows,
                Err(_) => return,
            };
            let fetched = rows.len();
            for row in rows {
                position += 1;
                let data = json!({
                    "id": row.get::<Uuid, _>("id"),
                    "event_id": position,
                    "user_email": row.get::<String, _>("user_email"),
                    "content": row.get::<String, _>("content"),
                    "created_at": row.get::<chrono::DateTime<chrono::Utc>, _>("created_at"),
                });
                let frame = format!("id: {position}\nevent: message\ndata: {data}\n\n");
                if tx.send(Bytes::from(frame)).await.is_err() {
                    return;
                }
            }
            if fetched < 500 {
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(state.poll) => {}
                }
            }
        }
    });
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        let bytes = rx.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(bytes)), rx))
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(hyper::header::CONTENT_TYPE, "text/event-stream")
        .header(hyper::header::CACHE_CONTROL, "no-cache")
        .body(StreamBody::new(frames).boxed())
        .expect("a valid response"))
}

fn reply(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .expect("a valid response")
}

fn error(status: StatusCode, code: &str) -> Response<Body> {
    reply(status, &json!({ "error": { "code": code } }))
}

/// A listener on `port` with a deep accept queue (`LISTEN_BACKLOG`, capped by the kernel's
/// `somaxconn`): a thousand browsers reconnecting at once overflow tokio's default of 1,024
/// while the server is busy, and each dropped SYN costs its client a 1 s retransmit.
fn listen(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    const LISTEN_BACKLOG: u32 = 8192;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind((std::net::Ipv4Addr::UNSPECIFIED, port).into())?;
    socket.listen(LISTEN_BACKLOG)
}
