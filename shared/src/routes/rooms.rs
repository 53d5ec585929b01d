//! `GET /api/rooms` and `POST /api/rooms`.

use axum::extract::State;
use http::{Response, StatusCode};
use serde::Deserialize;

use crate::App;
use crate::db;
use crate::domain::{RoomId, RoomName, Visibility};
use crate::http::error::apply_quota;
use crate::http::extract::{Authed, JsonBody};
use crate::http::{ApiError, Body, json_response};
use crate::views::RoomView;

#[derive(Debug, Deserialize)]
pub struct CreateRoomRequest {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub visibility: Option<String>,
}

/// `POST /api/rooms`: `{"id"?, "name"?, "visibility"?}` → 201 with the room; 409 when the id
/// is taken. Without an id the server picks an unguessable one ([`RoomId::generate`]): ids
/// are global, so whether an explicit id is taken is visible to anyone who tries it, and a
/// private room should not have one worth guessing. The name defaults to the id, the
/// visibility to `public`; the creator owns it. Rate-limited per user (`RATE_LIMIT_ROOMS`),
/// a refused id included, which also bounds probing.
pub async fn create(
    State(app): State<App>,
    Authed(user): Authed,
    JsonBody(request): JsonBody<CreateRoomRequest>,
) -> Result<Response<Body>, ApiError> {
    let id = match &request.id {
        Some(id) => RoomId::parse(id)?,
        None => RoomId::generate(),
    };
    let name = match &request.name {
        Some(name) => RoomName::parse(name)?,
        None => RoomName::from_id(&id),
    };
    let visibility = match &request.visibility {
        Some(v) => Visibility::parse(v)?,
        None => Visibility::Public,
    };
    let limit = &app.config.limits.rooms;
    let outcome =
        db::rooms::insert_room(&app.db, &id, &name, visibility, &user.email, limit).await?;
    let quota = limit.outcome(outcome.tokens_left, outcome.tokens_before)?;
    let mut response = match outcome.room() {
        Some(room) => json_response(StatusCode::CREATED, &RoomView::from(room)),
        None => ApiError::Conflict {
            code: "room_exists",
            message: format!("A room with id `{}` already exists.", id.as_str()),
        }
        .render(),
    };
    apply_quota(&quota, &mut response);
    Ok(response)
}

/// `GET /api/rooms`: `{"rooms": [...]}`, the rooms the caller may see, in id order.
pub async fn list(
    State(app): State<App>,
    Authed(user): Authed,
) -> Result<Response<Body>, ApiError> {
    let rooms: Vec<RoomView> = db::rooms::list_rooms(&app.db, &user.email)
        .await?
        .into_iter()
        .map(RoomView::from)
        .collect();
    Ok(json_response(StatusCode::OK, &RoomList { rooms: &rooms }))
}

/// `{"rooms": [...]}`, serialised straight from the views.
#[derive(serde::Serialize)]
struct RoomList<'a> {
    rooms: &'a [RoomView],
}
