//! `GET /api/rooms/{room}/search`: full-text search of a room's messages.

use axum::extract::State;
use http::{Response, StatusCode};
use serde::Serialize;

use crate::App;
use crate::db;
use crate::domain::{Cursor, PageLimit, SearchQuery};
use crate::http::extract::{Authed, RoomPath};
use crate::http::query::Query;
use crate::http::{ApiError, Body, json_response};
use crate::views::{MessageView, sign_messages};

/// `GET /api/rooms/{room}/search?q=&limit=&before=`: the messages whose words match `q`
/// (web-search syntax: `"a phrase"`, `-word`, `or`), newest first, `limit` (1 to 200,
/// default 100) at a time, with `seq < before` when given, each shown as the message list
/// shows it; `has_more` when older matches follow (page on with `before=` the last seq).
/// Deleted messages are never found; an edited one is found by its new content. A room
/// the caller may not see is 404 `room_not_found`, as for the list.
pub async fn search(
    State(app): State<App>,
    RoomPath(room): RoomPath,
    Authed(user): Authed,
    query: Query,
) -> Result<Response<Body>, ApiError> {
    let q = SearchQuery::parse(query.get("q")?)?;
    let limit = query
        .get("limit")?
        .map(PageLimit::parse)
        .transpose()?
        .unwrap_or(PageLimit::DEFAULT);
    let before = query
        .get("before")?
        .map(|v| Cursor::parse("before", v))
        .transpose()?
        .map(Cursor::get);
    let language = &app.config.search_language;
    // From the read replica when the room's row it read in the same statement shows it has
    // replayed the cursor and this process's own writes (`db::messages::search_is_fresh`);
    // from the primary otherwise.
    let (room_ref, email, q_ref) = (&room, user.email.as_str(), &q);
    let written = app.reader.written(room.as_str());
    let (rows, has_more) = app
        .reader
        .read(
            move |db| async move {
                db::messages::search(&db, room_ref, email, q_ref, language, before, limit.get())
                    .await
            },
            |(rows, _)| db::messages::search_is_fresh(before, rows, written),
        )
        .await?;
    // The room's archive boundary came with the matches; with none, whether the room exists
    // for this user at all.
    let archived = match rows.first() {
        Some(row) => row.room_archived_seq > 0,
        None => {
            db::rooms::find_visible(&app.db, &room, &user.email)
                .await?
                .ok_or_else(ApiError::room_not_found)?
                .archived_seq
                > 0
        }
    };
    let rows: Vec<_> = rows.into_iter().map(|row| row.message).collect();
    let messages = sign_messages(&app.storage, rows).await?;
    Ok(json_response(
        StatusCode::OK,
        &SearchPage {
            messages: &messages,
            has_more,
            archived_not_searched: archived,
        },
    ))
}

/// A page of matches. `archived_not_searched`: whether the room has history in the archive
/// tier (`/api/cron/archive`), which a search does not read; `has_more` counts the hot tier
/// only, so a client that gets `true` may say that older messages were not searched.
#[derive(Serialize)]
struct SearchPage<'a> {
    messages: &'a [MessageView],
    has_more: bool,
    archived_not_searched: bool,
}
