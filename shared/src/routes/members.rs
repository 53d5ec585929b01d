//! `GET|POST /api/rooms/{room}/members` and `DELETE /api/rooms/{room}/members/{email}`.

use axum::extract::State;
use chrono::SecondsFormat;
use http::{Response, StatusCode};
use serde::Deserialize;

use crate::App;
use crate::db;
use crate::db::members::MemberRow;
use crate::db::rooms::RoomRow;
use crate::domain::{Email, RoomId, User};
use crate::http::body::empty;
use crate::http::extract::{Authed, JsonBody, MemberPath, RoomPath};
use crate::http::{ApiError, Body, json_response};

#[derive(Debug, Deserialize)]
pub struct AddMemberRequest {
    pub email: String,
}

/// `GET /api/rooms/{room}/members` → `{"owner", "members": [{"email", "added_at"}]}`. Owner only.
pub async fn list(
    State(app): State<App>,
    RoomPath(room): RoomPath,
    Authed(user): Authed,
) -> Result<Response<Body>, ApiError> {
    let owned = owned_room(&app, &user, &room).await?;
    let members: Vec<serde_json::Value> = db::members::list_members(&app.db, &room)
        .await?
        .into_iter()
        .map(member_view)
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "owner": owned.created_by, "members": members }),
    ))
}

/// `POST /api/rooms/{room}/members` `{"email"}` → 201 with the member (200 if already one).
/// Owner only.
pub async fn add(
    State(app): State<App>,
    RoomPath(room): RoomPath,
    Authed(user): Authed,
    JsonBody(request): JsonBody<AddMemberRequest>,
) -> Result<Response<Body>, ApiError> {
    let email = Email::parse(&request.email)?;
    owned_room(&app, &user, &room).await?;
    let (member, created) =
        db::members::add_member(&app.db, &room, email.as_str(), &user.email).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_response(status, &member_view(member)))
}

/// `DELETE /api/rooms/{room}/members/{email}` → 204. Owner only. A removed member's open
/// streams end within one poll interval.
pub async fn remove(
    State(app): State<App>,
    MemberPath(room, email): MemberPath,
    Authed(user): Authed,
) -> Result<Response<Body>, ApiError> {
    let email = Email::parse(&email)?;
    owned_room(&app, &user, &room).await?;
    if !db::members::remove_member(&app.db, &room, email.as_str()).await? {
        return Err(ApiError::NotFound {
            code: "member_not_found",
            message: "That user is not a member of this room.".into(),
        });
    }
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

/// The room, if the caller owns it: 404 when they cannot see it, 403 when they can but do
/// not own it.
async fn owned_room(app: &App, user: &User, room: &RoomId) -> Result<RoomRow, ApiError> {
    let row = db::rooms::find_visible(&app.db, room, &user.email)
        .await?
        .ok_or_else(ApiError::room_not_found)?;
    if row.created_by != user.email {
        return Err(ApiError::Forbidden {
            code: "not_room_owner",
            message: "Only the room's owner manages its members.".into(),
        });
    }
    Ok(row)
}

fn member_view(member: MemberRow) -> serde_json::Value {
    serde_json::json!({
        "email": member.user_email,
        "added_at": member.added_at.to_rfc3339_opts(SecondsFormat::Millis, true),
    })
}
