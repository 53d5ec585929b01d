//! The route table's machinery: which function binary serves which route, and the one
//! `axum::Router` built from the table (`crate::routes::table`) for every host. A function
//! binary serves its own routes; the dev server and the tests serve them all.

use std::convert::Infallible;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::handler::Handler;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use http::{Method, Uri};
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use tower_http::normalize_path::NormalizePathLayer;
use tower_http::set_header::SetResponseHeaderLayer;

use super::ApiError;
use super::body::MAX_BODY_BYTES;
use super::edge;
use crate::App;

/// One function binary in `api/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Function {
    Health,
    Rooms,
    ListMessages,
    PostMessage,
    Stream,
    Members,
    PresignUpload,
    CleanupUploads,
    Message,
    Read,
    Presence,
    Archive,
}

impl Function {
    pub const ALL: [Self; 12] = [
        Self::Health,
        Self::Rooms,
        Self::ListMessages,
        Self::PostMessage,
        Self::Stream,
        Self::Members,
        Self::PresignUpload,
        Self::CleanupUploads,
        Self::Message,
        Self::Read,
        Self::Presence,
        Self::Archive,
    ];

    /// Its file under `api/` without `.rs`, which is also its Vercel path after `/api/`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::Rooms => "rooms",
            Self::ListMessages => "list_messages",
            Self::PostMessage => "post_message",
            Self::Stream => "stream",
            Self::Members => "members",
            Self::PresignUpload => "presign_upload",
            Self::CleanupUploads => "cron/cleanup-uploads",
            Self::Message => "message",
            Self::Read => "read",
            Self::Presence => "presence",
            Self::Archive => "cron/archive",
        }
    }

    /// Whether it answers with a stream (response streaming on Lambda).
    pub fn streams(self) -> bool {
        self == Self::Stream
    }

    /// Whether its requests are held to the database deadline. The crons work in batches
    /// for up to 45 s by design; each of their statements is still bounded by
    /// `statement_timeout`.
    fn has_deadline(self) -> bool {
        !matches!(self, Self::CleanupUploads | Self::Archive)
    }
}

/// One line of the route table: a method and path template, the function binary that
/// serves it, and its handler.
pub struct Route {
    pub function: Function,
    pub method: Method,
    pub path: &'static str,
    handler: MethodRouter<App>,
}

impl Route {
    pub fn new<H, T>(function: Function, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, App>,
        T: 'static,
    {
        let handler = on(filter(&method), handler);
        Self {
            function,
            method,
            path,
            handler,
        }
    }
}

fn filter(method: &Method) -> MethodFilter {
    MethodFilter::try_from(method.clone()).expect("the route table uses standard methods")
}

/// The service every host runs: the router with its layers, type-erased.
pub type ApiService = BoxCloneSyncService<Request, Response, Infallible>;

/// A router built from the route table, before it is given the app and its layers.
pub struct Api {
    router: Router<App>,
    /// (internal path, templates) of each function served: Vercel may show a function its
    /// own path, `/api/<name>?room=…`, after a `vercel.json` rewrite.
    internal: Vec<(String, Vec<&'static str>)>,
}

impl Api {
    /// The routes of `only` (every route when `None`). Another function's route answers
    /// 404 `route_not_found`, yet still counts in `Allow`, so a 405 says the same on every
    /// host.
    pub fn new(table: Vec<Route>, only: Option<Function>) -> Self {
        let served = |f: Function| only.is_none_or(|o| o == f);
        let mut internal: Vec<(String, Vec<&'static str>)> = Vec::new();
        let mut router = Router::new();
        for route in table {
            let handler = if served(route.function) {
                let path = format!("/api/{}", route.function.name());
                match internal.iter_mut().find(|(p, _)| *p == path) {
                    Some((_, templates)) if templates.contains(&route.path) => {}
                    Some((_, templates)) => templates.push(route.path),
                    None => internal.push((path, vec![route.path])),
                }
                if route.function.has_deadline() {
                    route.handler.layer(axum::middleware::from_fn(deadline))
                } else {
                    route.handler
                }
            } else {
                on(filter(&route.method), not_served)
            };
            router = router.route(route.path, handler);
        }
        // The template that names the most parameters wins when the query has them all.
        for (_, templates) in &mut internal {
            templates.sort_by_key(|t| std::cmp::Reverse(t.matches('{').count()));
        }
        Self { router, internal }
    }

    /// Adds a route outside the table (the dev server's token minting).
    pub fn route(mut self, path: &'static str, handler: MethodRouter<App>) -> Self {
        self.router = self.router.route(path, handler);
        self
    }

    /// The router with the app and every layer, as one service. Outermost first: `nosniff`
    /// and CORS on every response (errors of the router and of the body limit included),
    /// the router's 405 rendered as JSON or as a preflight, trailing slashes trimmed,
    /// internal paths mapped to public ones; then, per matched route, its count and
    /// latency (`http::latency`), the request span and the 1 MiB body limit.
    pub fn into_service(self, app: App) -> ApiService {
        let cors = std::sync::Arc::new(app.config.cors.clone());
        let internal = self.internal;
        let router = self
            .router
            .fallback(|| async { ApiError::route_not_found() })
            .layer(axum::Extension(DbDeadline(app.config.database.deadline())))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(edge::trace_layer())
            .layer(axum::middleware::from_fn_with_state(
                app.latencies.clone(),
                super::latency::record,
            ))
            .with_state(app);
        let service = tower::ServiceBuilder::new()
            .layer(SetResponseHeaderLayer::overriding(
                http::header::X_CONTENT_TYPE_OPTIONS,
                http::HeaderValue::from_static("nosniff"),
            ))
            .layer(axum::middleware::from_fn_with_state(cors, edge::edge))
            .layer(NormalizePathLayer::trim_trailing_slash())
            .map_request(move |request: Request| to_public_path(request, &internal))
            .service(router);
        BoxCloneSyncService::new(service.map_err(|never: Infallible| match never {}))
    }
}

/// Answers 503 `database_unavailable` (with `Retry-After`) once a request has waited longer
/// than `DatabaseConfig::deadline` for its answer, never a hang: a frozen database, or a
/// statement the server did not cancel. A stream's deadline covers its opening (the room
/// lookup), not its body.
async fn deadline(request: Request, next: axum::middleware::Next) -> Response {
    let Some(&DbDeadline(limit)) = request.extensions().get::<DbDeadline>() else {
        return next.run(request).await;
    };
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            ApiError::from(anyhow::Error::new(super::error::DeadlinePassed(limit))).into_response()
        }
    }
}

/// The app's `DatabaseConfig::deadline`, given to every route's request by the router.
#[derive(Clone, Copy)]
struct DbDeadline(std::time::Duration);

/// Another function binary's route.
async fn not_served() -> ApiError {
    ApiError::route_not_found()
}

/// `/api/<function>?room=general&email=…&limit=5` → `/api/rooms/general/members/…?limit=5`:
/// the first of the function's templates whose parameters the query all has. Two templates
/// of one function with the same parameters (the list and search of `list_messages`) are
/// told apart by `route`, which names the template's last segment
/// (`/api/list_messages?room=general&route=search` → `/api/rooms/general/search`).
fn to_public_path(mut request: Request, internal: &[(String, Vec<&'static str>)]) -> Request {
    let path = request.uri().path().trim_end_matches('/');
    let Some((_, templates)) = internal.iter().find(|(p, _)| p == path) else {
        return request;
    };
    let mut pairs: Vec<(String, String)> =
        form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let named = pairs
        .iter()
        .position(|(k, _)| k == "route")
        .map(|i| pairs.remove(i).1);
    for template in templates {
        if let Some(named) = &named
            && template.rsplit('/').next() != Some(named.as_str())
        {
            continue;
        }
        let mut public = String::with_capacity(template.len() + 32);
        let mut used: Vec<&str> = Vec::new();
        let mut complete = true;
        for (i, part) in template.split('/').enumerate() {
            if i > 0 {
                public.push('/');
            }
            match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) => match pairs.iter().find(|(k, _)| k == name) {
                    Some((_, value)) => {
                        public.extend(percent_encoding::utf8_percent_encode(
                            value,
                            percent_encoding::NON_ALPHANUMERIC,
                        ));
                        used.push(name);
                    }
                    None => {
                        complete = false;
                        break;
                    }
                },
                None => public.push_str(part),
            }
        }
        if !complete {
            continue;
        }
        let rest: Vec<&(String, String)> = pairs
            .iter()
            .filter(|(k, _)| !used.contains(&k.as_str()))
            .collect();
        if !rest.is_empty() {
            public.push('?');
            public.push_str(
                &form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(rest)
                    .finish(),
            );
        }
        if let Ok(uri) = public.parse::<Uri>() {
            *request.uri_mut() = uri;
        }
        return request;
    }
    request
}

/// `ApiError` renders itself, so handlers and extractors return it as is.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.render().map(axum::body::Body::new)
    }
}
