//! `GET /api/rooms` and `POST /api/rooms`.

use http::{Response, StatusCode};
use serde::Deserialize;

use super::views::RoomView;
use crate::App;
use crate::db;
use crate::domain::{RoomId, RoomName, User};
use crate::http::body::parse_json;
use crate::http::{ApiError, Body, json_response};

#[derive(Debug, Deserialize)]
pub struct CreateRoomRequest {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /api/rooms`: `{"id", "name"?}` → 201 with the room; 409 when the id is taken.
/// The name defaults to the id.
pub async fn create(app: &App, user: &User, body: &[u8]) -> Result<Response<Body>, ApiError> {
    let request: CreateRoomRequest = parse_json(body)?;
    let id = RoomId::parse(&request.id)?;
    let name = match &request.name {
        Some(name) => RoomName::parse(name)?,
        None => RoomName::from_id(&id),
    };
    let room = db::rooms::insert_room(&app.db, &id, &name, &user.email)
        .await?
        .ok_or_else(|| ApiError::Conflict {
            code: "room_exists",
            message: format!("A room with id `{}` already exists.", id.as_str()),
        })?;
    Ok(json_response(StatusCode::CREATED, &RoomView::from(room)))
}

/// `GET /api/rooms`: `{"rooms": [...]}` in id order.
pub async fn list(app: &App) -> Result<Response<Body>, ApiError> {
    let rooms: Vec<RoomView> = db::rooms::list_rooms(&app.db)
        .await?
        .into_iter()
        .map(RoomView::from)
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "rooms": rooms }),
    ))
}
