//! The local HTTP server: every route on one port, with the same paths as production, plus
//! dev-only token minting. Tests call the very same `serve`.

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::App;
use crate::auth::mint_token;
use crate::http::body::{collect, parse_json};
use crate::http::{ApiError, Body, json_response};

/// How long a dev token lives.
const DEV_TOKEN_TTL_SECS: i64 = 7 * 24 * 3600;

/// Accepts connections until `shutdown` resolves, then ends open streams.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    loop {
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
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(handle(&app, request).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
    app.hub.shutdown();
    Ok(())
}

async fn handle(app: &App, request: Request<Incoming>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let body = match collect(body).await {
        Ok(bytes) => bytes,
        Err(err) => return err.into_response(),
    };
    let request = Request::from_parts(parts, body);
    if request.uri().path() == "/api/dev/token" {
        return dev_token(app, &request).unwrap_or_else(ApiError::into_response);
    }
    app.handle(request).await
}

#[derive(Deserialize)]
struct DevTokenRequest {
    email: String,
}

/// `POST /api/dev/token` `{"email"}` → `{"token"}`: dev server only; production uses the
/// team's own auth.
fn dev_token(app: &App, request: &Request<Bytes>) -> Result<Response<Body>, ApiError> {
    if request.method() != Method::POST {
        return Err(ApiError::MethodNotAllowed { allow: "POST" });
    }
    let body: DevTokenRequest = parse_json(request.body())?;
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
