//! `GET /api/rooms/{room}/stream`: Server-Sent Events.

use axum::extract::State;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::StreamBody;
use tokio_stream::wrappers::ReceiverStream;

use crate::App;
use crate::domain::Cursor;
use crate::http::extract::{RoomPath, StreamAuthed};
use crate::http::query::Query;
use crate::http::{ApiError, Body};

/// `GET /api/rooms/{room}/stream`: `text/event-stream` of `message` events (`id: <seq>`).
/// Resumes after `Last-Event-ID`, else `?after=`, else starts at the room's newest seq.
/// Token in `Authorization` or `?access_token=`. Sends `retry: 1000` first, a comment
/// heartbeat every `STREAM_HEARTBEAT_SECS`, and ends after about `STREAM_MAX_SECONDS`
/// so the browser reconnects and resumes.
pub async fn open(
    State(app): State<App>,
    RoomPath(room): RoomPath,
    StreamAuthed(user): StreamAuthed,
    headers: HeaderMap,
    query: Query,
) -> Result<Response<Body>, ApiError> {
    let resume = resume_point(&headers, &query)?;
    // The caps first: a refused stream costs the database nothing.
    let place = app.hub.reserve(&user)?;
    // From the hub's state of a watched public room, or one query shared by the streams
    // opening on the room at once.
    let room = app
        .hub
        .find_room(&room, &user.email, resume)
        .await?
        .ok_or_else(ApiError::room_not_found)?;
    let frames = app.hub.subscribe(place, &user, &room, resume);
    let body = Body::new(StreamBody::new(ReceiverStream::new(frames)));
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// `Last-Event-ID` (sent by `EventSource` on reconnect) wins over `?after=`.
pub fn resume_point(headers: &HeaderMap, query: &Query) -> Result<Option<i64>, ApiError> {
    let header = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::bad_request("invalid_last_event_id", "`Last-Event-ID` must be a seq.")
            })
        })
        .transpose()?
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let cursor = match header {
        Some(v) => Some(Cursor::parse("Last-Event-ID", v).map_err(|_| {
            ApiError::bad_request(
                "invalid_last_event_id",
                "`Last-Event-ID` must be a seq: a whole number, zero or more.",
            )
        })?),
        None => query
            .get("after")?
            .map(|v| Cursor::parse("after", v))
            .transpose()?,
    };
    Ok(cursor.map(Cursor::get))
}
