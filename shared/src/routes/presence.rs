//! `POST /api/rooms/{room}/typing` and `GET /api/rooms/{room}/presence`: ephemeral
//! signals, never in the log.

use axum::extract::State;
use chrono::{DateTime, SecondsFormat, Utc};
use http::{Response, StatusCode};
use serde::Serialize;

use crate::App;
use crate::db;
use crate::http::body::empty;
use crate::http::extract::{Authed, RoomPath};
use crate::http::{ApiError, Body, json_response};
use crate::realtime::TYPING_TTL;

/// `POST /api/rooms/{room}/typing` → 204. The room's subscribers on every instance get
/// `event: typing` `{"user_email", "expires_at"}` with no id. At most one per user and
/// room per second is sent; the rest still answer 204 and send nothing. With the NOTIFY
/// wake-up on it goes out through `pg_notify` (one statement, which also checks the room is
/// visible); with polling only it reaches this instance's subscribers alone.
pub async fn typing(
    State(app): State<App>,
    RoomPath(room): RoomPath,
    Authed(user): Authed,
) -> Result<Response<Body>, ApiError> {
    let no_content = || {
        let mut response = Response::new(empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        response
    };
    // Counted only once the room proved visible, so an outsider always gets 404.
    if app.hub.typing_recent(room.as_str(), &user.email) {
        return Ok(no_content());
    }
    let expires_at = (Utc::now() + TYPING_TTL).to_rfc3339_opts(SecondsFormat::Millis, true);
    let data =
        serde_json::json!({ "user_email": user.email, "expires_at": expires_at }).to_string();
    if app.hub.wakeup_on() {
        if !db::rooms::notify_typing(&app.db, &room, &user.email, &data).await? {
            return Err(ApiError::room_not_found());
        }
    } else {
        db::rooms::find_visible(&app.db, &room, &user.email)
            .await?
            .ok_or_else(ApiError::room_not_found)?;
        app.hub.deliver_typing(room.as_str(), &data);
    }
    app.hub.typing_sent(room.as_str(), &user.email);
    Ok(no_content())
}

#[derive(Serialize)]
struct Online {
    user_email: String,
    since: DateTime<Utc>,
}

#[derive(Serialize)]
struct PresenceView {
    online: Vec<Online>,
}

/// `GET /api/rooms/{room}/presence` → 200 `{"online": [{"user_email", "since"}]}`: who
/// has an open stream on the room on any instance, once each, as of each instance's last
/// heartbeat (`PRESENCE_HEARTBEAT_SECS`); entries expire after `PRESENCE_TTL_SECS`.
pub async fn list(
    State(app): State<App>,
    RoomPath(room): RoomPath,
    Authed(user): Authed,
) -> Result<Response<Body>, ApiError> {
    db::rooms::find_visible(&app.db, &room, &user.email)
        .await?
        .ok_or_else(ApiError::room_not_found)?;
    let online = db::rooms::presence_online(&app.db, room.as_str())
        .await?
        .into_iter()
        .map(|(user_email, since)| Online { user_email, since })
        .collect();
    Ok(json_response(StatusCode::OK, &PresenceView { online }))
}
