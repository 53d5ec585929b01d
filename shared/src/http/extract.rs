//! Extractors: the rules of the edge, so handlers read as the use case alone. Each rejects
//! with an [`ApiError`], so every refusal keeps the `{"error": {"code", "message"}}` shape.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use bytes::Bytes;
use http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::ApiError;
use super::body::{MAX_BODY_BYTES, parse_json};
use super::query::Query;
use crate::App;
use crate::domain::{Emoji, RoomId, User};

/// The caller, from `Authorization: Bearer <JWT>`.
pub struct Authed(pub User);

impl FromRequestParts<App> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        Ok(Self(app.auth.authenticate(&parts.headers, None).await?))
    }
}

/// The caller of a stream: the bearer header, else `?access_token=` (`EventSource` cannot
/// set headers). Only the stream route takes a token in the URL.
pub struct StreamAuthed(pub User);

impl FromRequestParts<App> for StreamAuthed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        let query = Query::parse(parts.uri.query());
        let token = query.get("access_token")?;
        Ok(Self(app.auth.authenticate(&parts.headers, token).await?))
    }
}

/// A JSON body of at most [`MAX_BODY_BYTES`] (the router's `DefaultBodyLimit`), parsed into
/// `T`: 413 `body_too_large`, 400 `invalid_utf8`, `invalid_json` or `invalid_field`. No
/// `Content-Type` is required, as before the router.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge {
                        code: "body_too_large",
                        message: format!("The request body is over {MAX_BODY_BYTES} bytes."),
                    }
                } else {
                    ApiError::bad_request(
                        "body_unreadable",
                        format!("The request body could not be read: {rejection}"),
                    )
                }
            })?;
        parse_json(&bytes).map(Self)
    }
}

/// `{room}` from the path. An id that cannot exist is an unknown room: 404 `room_not_found`.
pub struct RoomPath(pub RoomId);

impl<S: Send + Sync> FromRequestParts<S> for RoomPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = path_params(parts, state).await?;
        room_param(&params).map(Self)
    }
}

/// `{room}` and `{email}` (percent-decoded) from a member's path.
pub struct MemberPath(pub RoomId, pub String);

impl<S: Send + Sync> FromRequestParts<S> for MemberPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let mut params = path_params(parts, state).await?;
        let room = room_param(&params)?;
        let email = params
            .iter()
            .position(|(k, _)| k == "email")
            .map(|i| params.swap_remove(i).1)
            .ok_or_else(ApiError::route_not_found)?;
        Ok(Self(room, email))
    }
}

/// `{room}` and `{message}` from a message's path. A `{message}` that is not a UUID names
/// no message: 404 `message_not_found`, like an unknown one.
pub struct MessagePath(pub RoomId, pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for MessagePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = path_params(parts, state).await?;
        Ok(Self(room_param(&params)?, message_param(&params)?))
    }
}

/// `{room}`, `{message}` and `{emoji}` (percent-decoded) from a reaction's path.
pub struct ReactionPath(pub RoomId, pub Uuid, pub Emoji);

impl<S: Send + Sync> FromRequestParts<S> for ReactionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = path_params(parts, state).await?;
        let room = room_param(&params)?;
        let message = message_param(&params)?;
        let emoji = params
            .iter()
            .find(|(k, _)| k == "emoji")
            .ok_or_else(ApiError::route_not_found)?;
        Ok(Self(room, message, Emoji::parse(&emoji.1)?))
    }
}

fn message_param(params: &[(String, String)]) -> Result<Uuid, ApiError> {
    params
        .iter()
        .find(|(k, _)| k == "message")
        .and_then(|(_, v)| Uuid::try_parse(v).ok())
        .ok_or_else(ApiError::message_not_found)
}

async fn path_params<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> Result<Vec<(String, String)>, ApiError> {
    // A segment that does not percent-decode to UTF-8 names no route.
    let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
        .await
        .map_err(|_| ApiError::route_not_found())?;
    Ok(params)
}

fn room_param(params: &[(String, String)]) -> Result<RoomId, ApiError> {
    params
        .iter()
        .find(|(k, _)| k == "room")
        .and_then(|(_, v)| RoomId::parse(v).ok())
        .ok_or_else(ApiError::room_not_found)
}

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Query::parse(parts.uri.query()))
    }
}

/// Work that outlives the response. On Vercel it is handed to `vercel_runtime`'s
/// `wait_until`, which keeps the invocation alive until it settles; elsewhere (the dev
/// server, tests, AWS Lambda) it is a plain task. On Lambda a task may be frozen with the
/// sandbox between invocations and finish on the next one.
#[derive(Clone, Default)]
pub struct Background(Option<vercel_runtime::AppState>);

impl Background {
    pub fn vercel(state: vercel_runtime::AppState) -> Self {
        Self(Some(state))
    }

    pub fn spawn<F>(&self, work: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        match &self.0 {
            Some(state) => state.wait_until(work),
            None => {
                tokio::spawn(work);
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Background {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned().unwrap_or_default())
    }
}

/// The platform's id of this request (`x-vercel-id` on Vercel, the invocation's request id
/// on Lambda), put in the request's extensions by the host and carried by the request span.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);
