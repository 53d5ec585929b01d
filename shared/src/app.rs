//! The per-process context every handler shares, and request dispatch.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, header};
use sqlx::PgPool;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::http::query::Query;
use crate::http::router::{Endpoint, Function, resolve};
use crate::http::{ApiError, Body};
use crate::realtime::Hub;
use crate::routes;
use crate::storage::Storage;

/// Config, the lazy pool, the S3 client and the token verifier: built once per process
/// (one process serves many concurrent requests), cheap to clone.
#[derive(Clone)]
pub struct App(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub db: PgPool,
    pub storage: Storage,
    pub auth: Authenticator,
    pub hub: Hub,
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
        let storage = Storage::new(&config.storage).await;
        let auth = Authenticator::new(&config.auth);
        let hub = Hub::new(
            db.clone(),
            storage.clone(),
            config.stream.clone(),
            &config.database,
            config.limits.streams_per_user,
        );
        Ok(Self(Arc::new(Inner {
            config,
            db,
            storage,
            auth,
            hub,
        })))
    }

    /// Serves any route (the dev server, tests).
    pub async fn handle(&self, request: Request<Bytes>) -> Response<Body> {
        self.respond(None, request).await
    }

    /// Serves the routes of one function binary; other paths are 404.
    pub async fn handle_function(
        &self,
        function: Function,
        request: Request<Bytes>,
    ) -> Response<Body> {
        self.respond(Some(function), request).await
    }

    async fn respond(&self, only: Option<Function>, request: Request<Bytes>) -> Response<Body> {
        let request_headers = request.headers().clone();
        let mut response = match self.dispatch(only, request).await {
            Ok(response) => response,
            Err(err) => err.into_response(),
        };
        self.config.cors.decorate(&request_headers, &mut response);
        response.headers_mut().insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }

    async fn dispatch(
        &self,
        only: Option<Function>,
        request: Request<Bytes>,
    ) -> Result<Response<Body>, ApiError> {
        let query = Query::parse(request.uri().query());
        if request.method() == Method::OPTIONS {
            // Every route answers a preflight with the methods it allows.
            return match resolve(request.method(), request.uri().path(), &query) {
                Err(ApiError::MethodNotAllowed { allow }) => {
                    Ok(self.config.cors.preflight(request.headers(), allow))
                }
                Err(other) => Err(other),
                Ok(_) => unreachable!("no route takes OPTIONS itself"),
            };
        }
        let endpoint = resolve(request.method(), request.uri().path(), &query)?;
        if only.is_some_and(|f| f != endpoint.function()) {
            return Err(ApiError::NotFound {
                code: "route_not_found",
                message: "No such route.".into(),
            });
        }
        match endpoint {
            Endpoint::Health => return routes::health::get(self).await,
            // Authorised by `CRON_SECRET`, not a user token.
            Endpoint::CleanupUploads => return routes::cleanup::run(self, request.headers()).await,
            _ => {}
        }
        // EventSource cannot set headers, so the stream also takes `?access_token=`.
        let query_token = match endpoint {
            Endpoint::Stream(_) => query.get("access_token")?,
            _ => None,
        };
        let user = self
            .auth
            .authenticate(request.headers(), query_token)
            .await?;
        let body = request.body();
        match endpoint {
            Endpoint::ListRooms => routes::rooms::list(self, &user).await,
            Endpoint::CreateRoom => routes::rooms::create(self, &user, body).await,
            Endpoint::ListMessages(room) => {
                routes::messages::list(self, &user, &room, &query).await
            }
            Endpoint::PostMessage(room) => routes::messages::post(self, &user, &room, body).await,
            Endpoint::PresignUpload => routes::uploads::presign(self, &user, body).await,
            Endpoint::Stream(room) => {
                routes::stream::open(self, &user, &room, request.headers(), &query).await
            }
            Endpoint::ListMembers(room) => routes::members::list(self, &user, &room).await,
            Endpoint::AddMember(room) => routes::members::add(self, &user, &room, body).await,
            Endpoint::RemoveMember(room, email) => {
                routes::members::remove(self, &user, &room, &email).await
            }
            Endpoint::Health | Endpoint::CleanupUploads => unreachable!("served above"),
        }
    }
}
