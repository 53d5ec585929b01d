//! `GET /api/rooms/{room}/messages` and `POST /api/rooms/{room}/messages`.

use axum::extract::State;
use futures_util::future::try_join_all;
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use uuid::Uuid;

use crate::App;
use crate::db;
use crate::db::messages::{CLIENT_ID_KEY, FileRow, InsertOutcome, MessageRow, NewMessage};
use crate::db::uploads::UploadRow;
use crate::domain::{ClientId, FileIds, MessageContent, Page, RoomId, User};
use crate::http::error::apply_quota;
use crate::http::extract::{Authed, Background, JsonBody, RoomPath};
use crate::http::query::Query;
use crate::http::{ApiError, Body, json_response};
use crate::storage::{self, ObjectState, Staged};
use crate::views::{MessageView, sign_message, sign_messages};

/// `GET /api/rooms/{room}/messages?limit=&before=&after=`: one page in ascending `seq`,
/// with `has_more` in the direction of travel. Files come in the same query.
pub async fn list(
    State(app): State<App>,
    RoomPath(room): RoomPath,
    Authed(user): Authed,
    query: Query,
) -> Result<Response<Body>, ApiError> {
    let page = Page::parse(
        query.get("limit")?,
        query.get("before")?,
        query.get("after")?,
    )?;
    let (rows, has_more) = db::messages::list_page(&app.db, &room, &user.email, page).await?;
    // An empty page is the only case where the room might not exist (or be hidden).
    if rows.is_empty()
        && db::rooms::find_visible(&app.db, &room, &user.email)
            .await?
            .is_none()
    {
        return Err(ApiError::room_not_found());
    }
    let messages = sign_messages(&app.storage, rows).await?;
    Ok(json_response(
        StatusCode::OK,
        &MessagePage {
            messages: &messages,
            has_more,
        },
    ))
}

/// A page of messages, serialised straight from the views (no `Value` tree in between).
#[derive(Serialize)]
struct MessagePage<'a> {
    messages: &'a [MessageView],
    has_more: bool,
}

#[derive(Debug, Deserialize)]
pub struct SendMessageRequest {
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub file_ids: Option<Vec<Uuid>>,
    #[serde(default)]
    pub client_id: Option<ClientId>,
}

/// `POST /api/rooms/{room}/messages`: `{"content", "file_ids"?, "client_id"?}` → 201 with
/// the message. The author is the token's user, whatever the body says. A repeat with the
/// same `client_id` returns the stored message with 200 and stores nothing.
pub async fn post(
    State(app): State<App>,
    RoomPath(room): RoomPath,
    Authed(user): Authed,
    background: Background,
    JsonBody(request): JsonBody<SendMessageRequest>,
) -> Result<Response<Body>, ApiError> {
    let (app, user, room) = (&app, &user, &room);
    let file_ids = FileIds::parse(request.file_ids.unwrap_or_default())?;
    let content = MessageContent::parse(request.content, !file_ids.is_empty())?;
    let message = NewMessage {
        id: Uuid::now_v7(),
        room,
        user_email: &user.email,
        content: &content,
        client_id: request.client_id,
        file_ids: &file_ids,
    };

    let uploads = match check_uploads(app, user, room, &file_ids).await {
        Ok(uploads) => uploads,
        // A retry of a send whose files were attached the first time.
        Err(err) => return stored_or(app, user, room, message.client_id, err).await,
    };

    let limit = &app.config.limits.posts;
    let outcome = if file_ids.is_empty() {
        db::messages::insert_message(&app.db, &message, limit).await
    } else {
        insert_with_files(app, &message, &uploads).await?
    };
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) if db::is_unique_violation(&err, CLIENT_ID_KEY) => {
            // Ours: a retry. Someone else's: the key is taken in this room.
            let taken = ApiError::Conflict {
                code: "client_id_taken",
                message:
                    "Another author's message in this room has that `client_id`; pick a new one."
                        .into(),
            };
            return stored_or(app, user, room, message.client_id, taken).await;
        }
        Err(err) => return Err(err.into()),
    };
    let quota = match limit.outcome(outcome.tokens_left, outcome.tokens_before) {
        Ok(quota) => quota,
        // A retry of a stored send costs nothing, even with the bucket empty.
        Err(refused) => return stored_or(app, user, room, message.client_id, refused.into()).await,
    };
    let (Some(seq), Some(created_at)) = (outcome.seq, outcome.created_at) else {
        return Err(ApiError::room_not_found());
    };

    // Attached: the copies are what is served; the staging objects are not read again.
    let staging = uploads.iter().map(|u| u.object_key.clone()).collect();
    background.spawn(app.storage.clone().delete_staging(staging));
    let row = stored_row(&message, seq, created_at, uploads);
    let view = sign_message(&app.storage, row).await?;
    let mut response = json_response(StatusCode::CREATED, &view);
    apply_quota(&quota, &mut response);
    Ok(response)
}

/// Runs the insert in a transaction and commits only if every upload was attached: one
/// attached concurrently by another send makes this one fail whole. First it locks the
/// uploads and copies their bytes to their attached keys (conditioned on the ETags the HEAD
/// check saw), so what the message serves is fixed; the room's row lock is taken only
/// after, by the insert.
async fn insert_with_files(
    app: &App,
    message: &NewMessage<'_>,
    uploads: &[UploadRow],
) -> Result<sqlx::Result<InsertOutcome>, ApiError> {
    let mut tx = app.db.begin().await?;
    let (ids, room) = (message.file_ids.as_slice(), message.room.as_str());
    if db::uploads::lock_pending(&mut *tx, ids, room, message.user_email).await? != ids.len() {
        return Err(upload_unusable());
    }
    let staged: Vec<Staged> = uploads
        .iter()
        .map(|u| Staged {
            id: u.id,
            key: &u.object_key,
            etag: u.etag.as_deref(),
        })
        .collect();
    app.storage.pin_all(&staged).await?;
    let result = db::messages::insert_message(&mut *tx, message, &app.config.limits.posts).await;
    match result {
        Ok(outcome)
            if outcome.seq.is_some()
                && outcome.attached != message.file_ids.as_slice().len() as i64 =>
        {
            tx.rollback().await?;
            Err(upload_unusable())
        }
        Ok(outcome) => {
            tx.commit().await?;
            Ok(Ok(outcome))
        }
        other => Ok(other),
    }
}

/// The message stored under `client_id`, with 200; otherwise `err`.
async fn stored_or(
    app: &App,
    user: &User,
    room: &RoomId,
    client_id: Option<ClientId>,
    err: ApiError,
) -> Result<Response<Body>, ApiError> {
    let Some(client_id) = client_id else {
        return Err(err);
    };
    match db::messages::find_by_client_id(&app.db, room, &user.email, client_id).await? {
        Some(row) => Ok(json_response(
            StatusCode::OK,
            &sign_message(&app.storage, row).await?,
        )),
        None => Err(err),
    }
}

/// Every upload must be pending, the caller's, for this room, and present in storage with
/// its declared size. Storage is checked before the insert so the room's row lock is
/// never held across a network call.
async fn check_uploads(
    app: &App,
    user: &User,
    room: &RoomId,
    ids: &FileIds,
) -> Result<Vec<UploadRow>, ApiError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let found = db::uploads::find_uploads(&app.db, ids.as_slice()).await?;
    let mut uploads = Vec::with_capacity(ids.as_slice().len());
    for id in ids.as_slice() {
        match found.iter().find(|u| u.id == *id) {
            Some(u) if u.user_email == user.email && u.room_id == room.as_str() => {
                uploads.push(u.clone())
            }
            _ => return Err(upload_unusable()),
        }
    }
    let states = try_join_all(uploads.iter().map(|u| app.storage.head(&u.object_key))).await?;
    for (upload, state) in uploads.iter_mut().zip(states) {
        match state {
            ObjectState::Present { size, etag } if size == upload.size => upload.etag = etag,
            ObjectState::Present { .. } => {
                return Err(ApiError::bad_request(
                    "upload_size_mismatch",
                    format!(
                        "The stored file for upload {} does not have the declared size.",
                        upload.id
                    ),
                ));
            }
            ObjectState::Missing => {
                return Err(ApiError::bad_request(
                    "upload_incomplete",
                    format!(
                        "The file for upload {} has not been uploaded yet.",
                        upload.id
                    ),
                ));
            }
        }
    }
    Ok(uploads)
}

fn upload_unusable() -> ApiError {
    ApiError::bad_request(
        "invalid_upload",
        "An upload in `file_ids` does not exist, is not yours, is for another room, or is already attached.",
    )
}

/// The stored message, from what was sent and what the insert assigned (no re-read).
fn stored_row(
    message: &NewMessage<'_>,
    seq: i64,
    created_at: chrono::DateTime<chrono::Utc>,
    uploads: Vec<UploadRow>,
) -> MessageRow {
    // Files are shown in id (upload) order, as the list query returns them.
    let mut uploads = uploads;
    uploads.sort_by_key(|u| u.id);
    let files = uploads
        .into_iter()
        .map(|u| FileRow {
            id: u.id,
            object_key: storage::attached_key(&u.object_key),
            file_name: u.file_name,
            content_type: u.content_type,
            size: u.size,
        })
        .collect();
    MessageRow {
        id: message.id,
        room_id: message.room.as_str().to_owned(),
        seq,
        user_email: message.user_email.to_owned(),
        content: message.content.as_str().to_owned(),
        client_id: message.client_id,
        created_at,
        files: Json(files),
    }
}
