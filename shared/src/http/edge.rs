//! What every response passes through on its way out: the router's 405 rendered as the
//! API's JSON error (or, for `OPTIONS`, as the route's preflight), CORS, and the request
//! span that logs failures once with their cause chain.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, header};
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::TraceLayer;
use tracing::Span;

use super::ApiError;
use super::cors::AllowedOrigins;
use super::error::LoggedCause;
use super::extract::RequestId;

/// The router answers a known path with a method it lacks with an empty 405 and `Allow`
/// (`GET,HEAD,POST`). That becomes the API's 405 (`Allow: GET, POST`), or for `OPTIONS`
/// the preflight of exactly those methods. tower-http's `CorsLayer` is not used: it
/// answers every `OPTIONS` before routing, with one method list for all routes and 200,
/// where the documented contract is 204 with the route's own methods, and 404 for an
/// unknown path.
pub async fn edge(
    State(cors): State<Arc<AllowedOrigins>>,
    request: Request,
    next: Next,
) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let preflight = request.method() == Method::OPTIONS;
    let mut response = next.run(request).await;
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        let allow = allow_list(response.headers());
        response = if preflight {
            cors.preflight(origin.as_ref(), &allow)
                .map(axum::body::Body::new)
        } else {
            ApiError::MethodNotAllowed { allow }.into_response()
        };
    }
    cors.decorate(origin.as_ref(), &mut response);
    response
}

/// `GET,HEAD,POST` → `GET, POST`: HEAD is implied by GET and not listed.
fn allow_list(headers: &HeaderMap) -> String {
    headers
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty() && *m != "HEAD")
        .collect::<Vec<_>>()
        .join(", ")
}

/// The request-span layer: our span and response hook, tower-http's defaults off.
pub type RequestTrace = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    fn(&Request) -> Span,
    (),
    fn(&Response, Duration, &Span),
    (),
    (),
    (),
>;

/// One span per request, named by its route template, with the method, the platform's
/// request id, and once answered the status and latency. A failed request (5xx, or any
/// error whose cause was kept) is logged once, here, inside that span; a token never is:
/// no header or query string is recorded.
pub fn trace_layer() -> RequestTrace {
    TraceLayer::new_for_http()
        .make_span_with(request_span as fn(&Request) -> Span)
        .on_request(())
        .on_response(on_response as fn(&Response, Duration, &Span))
        .on_body_chunk(())
        .on_eos(())
        .on_failure(())
}

fn request_span(request: &Request) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.as_str())
        .or_else(|| {
            request
                .headers()
                .get("x-vercel-id")
                .and_then(|v| v.to_str().ok())
        })
        .unwrap_or("");
    tracing::info_span!(
        "request",
        route,
        method = %request.method(),
        request_id,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    )
}

fn on_response(response: &Response, latency: Duration, span: &Span) {
    let status = response.status().as_u16();
    span.record("status", status);
    span.record("latency_ms", latency.as_secs_f64() * 1000.0);
    match response.extensions().get::<LoggedCause>() {
        Some(LoggedCause::Unavailable(cause)) => {
            tracing::warn!(error = cause.as_str(), "database unavailable")
        }
        Some(LoggedCause::Internal(cause)) => {
            tracing::error!(error = cause.as_str(), "internal error")
        }
        None if status >= 500 => tracing::error!("request failed"),
        None => tracing::debug!("answered"),
    }
}
