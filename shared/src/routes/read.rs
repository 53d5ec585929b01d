//! `PUT /api/rooms/{room}/read`: read marks.

use axum::extract::State;
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::App;
use crate::db;
use crate::domain::Cursor;
use crate::http::extract::{Authed, JsonBody, RoomPath};
use crate::http::{ApiError, Body, json_response};

#[derive(Debug, Deserialize)]
pub struct MarkReadRequest {
    #[serde(default)]
    pub seq: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct MarkView {
    last_read_seq: i64,
    unread: i64,
}

/// `PUT /api/rooms/{room}/read` `{"seq": N}` → 200 `{"last_read_seq", "unread"}`. The mark
/// only moves forward (a lower `N` leaves it) and never past the room's newest message. The
/// user's other open streams hear of a move as `event: read`.
pub async fn mark(
    State(app): State<App>,
    RoomPath(room): RoomPath,
    Authed(user): Authed,
    JsonBody(request): JsonBody<MarkReadRequest>,
) -> Result<Response<Body>, ApiError> {
    let seq = match request.seq.as_ref().unwrap_or(&serde_json::Value::Null) {
        serde_json::Value::Number(n) => n.as_i64().filter(|n| *n >= 0),
        _ => None,
    }
    .ok_or_else(|| {
        ApiError::bad_request(
            "invalid_field",
            "`seq` must be a whole number, zero or more.",
        )
    })?;
    let mark = db::reads::mark_read(&app.db, &room, &user.email, Cursor::new(seq).get())
        .await?
        .ok_or_else(ApiError::room_not_found)?;
    Ok(json_response(
        StatusCode::OK,
        &MarkView {
            last_read_seq: mark.last_read_seq,
            unread: mark.unread,
        },
    ))
}
