//! The local HTTP server: every route on one port, with the same paths as production, plus
//! dev-only token minting and the demo page's static files. Tests call the very same `serve`.

use std::convert::Infallible;
use std::future::Future;
use std::path::{Path, PathBuf};

use axum::extract::State;
use axum::routing::post;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Deserialize;
use shared::App;
use shared::http::body::empty;
use shared::http::extract::JsonBody;
use shared::http::router::ApiService;
use shared::http::{ApiError, Body, json_response};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::hyper_errors::JsonErrors;
use crate::token::mint_token;

/// How long a dev token lives.
const DEV_TOKEN_TTL_SECS: i64 = 7 * 24 * 3600;

/// Routes only the dev server has (never deployed), as (method, path template); the public
/// ones are [`shared::routes::table`]. `openapi.yaml` documents both.
pub const DEV_ROUTES: &[(&str, &str)] = &[("POST", "/api/dev/token")];

/// Every route of the route table, plus the dev-only ones, as one service.
pub fn api(app: App) -> ApiService {
    shared::routes::all()
        .route("/api/dev/token", post(dev_token))
        .into_service(app)
}

/// Accepts connections until `shutdown` resolves, then ends open streams.
/// Limits any production front applies, so slow or idle clients cannot exhaust the server.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A connection that has not sent a whole request head by then is closed.
    pub header_read_timeout: std::time::Duration,
    /// Connections served at once; past it, new ones wait in the kernel's accept queue.
    pub max_connections: usize,
}

impl Default for Limits {
    /// 10 s for a request head; 10,000 connections (the benchmark opens 5,000 streams).
    fn default() -> Self {
        Self {
            header_read_timeout: std::time::Duration::from_secs(10),
            max_connections: 10_000,
        }
    }
}

pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    serve_with(listener, app, shutdown, Limits::default()).await
}

/// [`serve`] with explicit [`Limits`].
pub async fn serve_with(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()>,
    limits: Limits,
) -> anyhow::Result<()> {
    let api = api(app.clone());
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("never closed"),
            _ = &mut shutdown => break,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    // Out of descriptors and the like: keep serving.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let api = api.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |request: Request<Incoming>| {
                let api = api.clone();
                async move { Ok::<_, Infallible>(handle(api, request).await) }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            // hyper's own 400/414/431 for heads it cannot parse, as JSON errors.
            let io = TokioIo::new(JsonErrors::new(stream));
            let _ = builder.serve_connection(io, service).await;
        });
    }
    app.hub.shutdown();
    Ok(())
}

/// `/api/…` goes to the router; anything else is the demo page's static files.
async fn handle(api: ApiService, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path();
    if path != "/api" && !path.starts_with("/api/") {
        let mut response = static_file(request.method(), path).await;
        response.headers_mut().insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        return response;
    }
    match api.oneshot(request.map(Body::new)).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

#[derive(Deserialize)]
struct DevTokenRequest {
    email: String,
}

/// `POST /api/dev/token` `{"email"}` → `{"token"}`: dev server only; production uses the
/// team's own auth.
async fn dev_token(
    State(app): State<App>,
    JsonBody(body): JsonBody<DevTokenRequest>,
) -> Result<Response<Body>, ApiError> {
    let email = body.email.trim();
    if email.is_empty() || !email.contains('@') || email.len() > 320 {
        return Err(ApiError::bad_request(
            "invalid_field",
            "`email` must be an email address.",
        ));
    }
    let token = mint_token(&app.config.auth, email, DEV_TOKEN_TTL_SECS)?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "token": token }),
    ))
}

/// The repository root, fixed at build time (this crate is `tools/chat-dev/`): `public/`
/// and `client/` are under it.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The file a static path names, relative to the repository root: `public/` at `/`, and
/// the one client module, `client/chat-client.js`, at `/chat-client.js` (a single source
/// that the page imports as `./chat-client.js`). `None` for anything that could leave those
/// directories: every segment must be plain (letters, digits, `.`, `_`, `-`), not start
/// with a dot (so no `..` and no hidden files), and percent-escapes are refused outright.
fn static_path(path: &str) -> Option<PathBuf> {
    if path == "/chat-client.js" {
        return Some(PathBuf::from("client/chat-client.js"));
    }
    let rel = path.strip_prefix('/')?;
    let rel = if rel.is_empty() || rel.ends_with('/') {
        format!("{rel}index.html")
    } else {
        rel.to_owned()
    };
    let plain = |segment: &str| {
        !segment.is_empty()
            && !segment.starts_with('.')
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    if !rel.split('/').all(plain) {
        return None;
    }
    Some(Path::new("public").join(rel))
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json; charset=utf-8",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `GET`/`HEAD` of the demo page's files (see [`static_path`]); 404 JSON otherwise, and 405
/// for other methods.
async fn static_file(method: &Method, path: &str) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        return ApiError::MethodNotAllowed {
            allow: "GET, HEAD".into(),
        }
        .render();
    }
    let not_found = || ApiError::route_not_found().render();
    let root = repo_root();
    let Some(rel) = static_path(path) else {
        return not_found();
    };
    // Belt and braces: the resolved file must still be inside the root (no symlinks out).
    let (Ok(file), Ok(root)) = (
        tokio::fs::canonicalize(root.join(&rel)).await,
        tokio::fs::canonicalize(&root).await,
    ) else {
        return not_found();
    };
    if !file.starts_with(root.join("public")) && !file.starts_with(root.join("client")) {
        return not_found();
    }
    let Ok(bytes) = tokio::fs::read(&file).await else {
        return not_found();
    };
    let mut response = Response::new(if method == Method::HEAD {
        empty()
    } else {
        Body::from(bytes)
    });
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&rel)),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_paths_stay_inside_public_and_the_client_module() {
        assert_eq!(static_path("/"), Some(PathBuf::from("public/index.html")));
        assert_eq!(static_path("/app.js"), Some(PathBuf::from("public/app.js")));
        assert_eq!(
            static_path("/img/a-b_c.png"),
            Some(PathBuf::from("public/img/a-b_c.png"))
        );
        assert_eq!(
            static_path("/chat-client.js"),
            Some(PathBuf::from("client/chat-client.js"))
        );
        for bad in [
            "/../Cargo.toml",
            "/a/../../Cargo.toml",
            "/%2e%2e/Cargo.toml",
            "/..%2fCargo.toml",
            "/.env",
            "/a//b",
            "/a\\..\\b",
            "/a\0b",
            "relative",
        ] {
            assert_eq!(static_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn known_files_get_their_content_type() {
        assert_eq!(
            content_type(Path::new("public/index.html")),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("client/chat-client.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("x.bin")), "application/octet-stream");
    }
}
