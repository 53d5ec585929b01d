//! `GET /api/rooms/{room}/messages` and `POST /api/rooms/{room}/messages`.

use axum::extract::State;
use futures_util::future::try_join_all;
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::App;
use crate::archive;
use crate::db;
use crate::db::limits::{Quota, RateLimit};
use crate::db::messages::{
    CLIENT_ID_KEY, DeleteOf, EditOf, MessageRow, NewMessage, PlainPost, WriteOutcome,
};
use crate::db::uploads::UploadRow;
use crate::domain::{ClientId, Cursor, FileIds, MessageContent, Page, PageLimit, RoomId, User};
use crate::http::error::apply_quota;
use crate::http::extract::{Authed, Background, JsonBody, MessagePath, RoomPath};
use crate::http::query::Query;
use crate::http::{ApiError, Body, json_response};
use crate::media;
use crate::storage::{ObjectState, Staged};
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
    // From the read replica when its answer shows it has replayed the cursor the page
    // names, and this process's own writes to the room (`db::messages::page_is_fresh`);
    // from the primary otherwise. The page and the room's archive boundary come from one
    // snapshot, whichever answered.
    let (room_ref, email) = (&room, user.email.as_str());
    let written = app.reader.written(room.as_str());
    let (rows, has_more) = app
        .reader
        .read(
            move |db| async move { db::messages::list_page(&db, room_ref, email, page).await },
            |(rows, _)| db::messages::page_is_fresh(page, rows, written),
        )
        .await?;
    let (last_event_id, archived_seq) = match rows.first() {
        Some(row) => (row.room_last_event, row.room_archived_seq),
        // An empty page is the only case where the room might not exist (or be hidden).
        None => {
            let room = db::rooms::find_visible(&app.db, &room, &user.email)
                .await?
                .ok_or_else(ApiError::room_not_found)?;
            (room.last_event, room.archived_seq)
        }
    };
    let rows: Vec<MessageRow> = rows.into_iter().map(|r| r.message).collect();
    let (rows, has_more) =
        through_archive(&app, &room, &user.email, page, rows, has_more, archived_seq).await?;
    let messages = sign_messages(&app.storage, rows).await?;
    Ok(json_response(
        StatusCode::OK,
        &MessagePage {
            messages: &messages,
            has_more,
            last_event_id: Some(last_event_id),
        },
    ))
}

/// The hot page `rows` completed from the room's archive segments where it reaches them
/// (`archive::read`): a page whose lowest seq is above the room's `archived_seq`, with
/// more beyond it, is whole as it is and costs nothing more.
async fn through_archive(
    app: &App,
    room: &RoomId,
    viewer: &str,
    page: Page,
    rows: Vec<MessageRow>,
    has_more: bool,
    archived_seq: i64,
) -> Result<(Vec<MessageRow>, bool), ApiError> {
    if archived_seq == 0 {
        return Ok((rows, has_more));
    }
    let (limit, descending, bound) = match page {
        Page::Latest(limit) => (limit.get() as usize, true, i64::MAX),
        Page::Before(cursor, limit) => (limit.get() as usize, true, cursor.get()),
        Page::After(cursor, limit) => (limit.get() as usize, false, cursor.get()),
    };
    let archived = if descending {
        let lowest = rows.first().map_or(i64::MAX, |r| r.seq);
        if has_more && lowest > archived_seq {
            return Ok((rows, has_more));
        }
        archive::read::below(app, room.as_str(), bound, limit + 1).await?
    } else {
        // Every seq from `bound + 1` on is in the hot page: no segment can add one.
        let gapless = rows.len() == limit
            && rows.first().is_some_and(|r| r.seq == bound + 1)
            && rows.last().is_some_and(|r| r.seq == bound + limit as i64);
        if bound >= archived_seq || gapless {
            return Ok((rows, has_more));
        }
        archive::read::above(app, room.as_str(), bound, limit + 1).await?
    };
    Ok(archive::read::merge(
        rows, has_more, archived, viewer, limit, descending,
    ))
}

/// A page of messages, serialised straight from the views (no `Value` tree in between).
/// `last_event_id` (the message list only): the room's newest event as of this page, where
/// a stream opened after it resumes (`?after=`).
#[derive(Serialize)]
struct MessagePage<'a> {
    messages: &'a [MessageView],
    has_more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_event_id: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct SendMessageRequest {
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub file_ids: Option<Vec<Uuid>>,
    #[serde(default)]
    pub client_id: Option<ClientId>,
    /// The message this one replies to, in the same room.
    #[serde(default)]
    pub reply_to: Option<Uuid>,
}

/// `POST /api/rooms/{room}/messages`: `{"content", "file_ids"?, "client_id"?, "reply_to"?}`
/// → 201 with the message. The author is the token's user, whatever the body says. A
/// repeat with the same `client_id` returns the stored message with 200 and stores nothing.
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
        reply_to: request.reply_to,
    };

    let uploads = match check_uploads(app, user, room, &file_ids).await {
        Ok(uploads) => uploads,
        // A retry of a send whose files were attached the first time.
        Err(err) => return stored_or(app, user, room, message.client_id, err).await,
    };

    let limit = &app.config.limits.posts;
    let mut restored = false;
    let outcome = loop {
        let outcome = if !file_ids.is_empty() {
            post_with_files(app, &message, &uploads).await?
        } else if message.reply_to.is_none() {
            // A plain post: written together with whatever else is waiting.
            app.posts
                .write(PlainPost {
                    id: message.id,
                    room: room.clone(),
                    user_email: user.email.clone(),
                    content: content.clone(),
                    client_id: message.client_id,
                })
                .await
        } else {
            db::messages::post(&app.db, &message, limit).await
        };
        // A reply to an archived message: the original comes back to the hot tables (its
        // `reply_count` changes), then the post is tried once more.
        if let (Ok(written), Some(parent), false) = (&outcome, message.reply_to, restored)
            && written.outcome == "reply_to_invalid"
            && archive::read::restore(app, room.as_str(), parent, &user.email).await?
        {
            restored = true;
            continue;
        }
        break outcome;
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
        // An upload attached by a concurrent send: this one failed whole.
        Err(err) if db::raised(&err) == Some("invalid_upload") => return Err(upload_unusable()),
        Err(err) => return Err(err.into()),
    };
    let (row, quota) = match written(outcome, limit) {
        Ok(written) => written,
        // A retry of a stored send costs nothing, even with the bucket empty.
        Err(err @ ApiError::RateLimited { .. }) => {
            return stored_or(app, user, room, message.client_id, err).await;
        }
        Err(err) => return Err(err),
    };
    // Attached: the copies are what is served; the staging objects are not read again. A
    // post without files spawns nothing.
    let staging: Vec<String> = uploads.into_iter().map(|u| u.object_key).collect();
    if !staging.is_empty() {
        background.spawn(app.storage.clone().delete_staging(staging));
    }
    // Images are processed after the answer (`processing: true` until then).
    if row
        .files
        .0
        .iter()
        .any(|f| media::processable(&f.content_type))
    {
        background.spawn(app.processor().process_message(row.id, row.files.0.clone()));
    }
    app.reader.wrote(&row.room_id, row.event_id);
    let view = sign_message(&app.storage, row).await?;
    let mut response = json_response(StatusCode::CREATED, &view);
    if let Some(quota) = quota {
        apply_quota(&quota, &mut response);
    }
    Ok(response)
}

/// Posts a message with files in a transaction that first locks the uploads and copies their
/// bytes to their attached keys (conditioned on the ETags the HEAD check saw), so what the
/// message serves is fixed and a concurrent send of the same uploads waits, then finds them
/// attached. The room's row lock is taken only after, by `chat_post`.
async fn post_with_files(
    app: &App,
    message: &NewMessage<'_>,
    uploads: &[UploadRow],
) -> Result<sqlx::Result<WriteOutcome>, ApiError> {
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
    match db::messages::post(&mut *tx, message, &app.config.limits.posts).await {
        Ok(outcome) => {
            tx.commit().await?;
            Ok(Ok(outcome))
        }
        // Rolled back when `tx` drops.
        Err(err) => Ok(Err(err)),
    }
}

#[derive(Debug, Deserialize)]
pub struct EditMessageRequest {
    pub content: String,
}

/// `PATCH /api/rooms/{room}/messages/{message}`: `{"content"}` → 200 with the message,
/// `edited_at` set. The author only; the rules of a post's content (blank only when the
/// message has files, which stay attached).
pub async fn edit(
    State(app): State<App>,
    MessagePath(room, id): MessagePath,
    Authed(user): Authed,
    JsonBody(request): JsonBody<EditMessageRequest>,
) -> Result<Response<Body>, ApiError> {
    // Blank content is checked against the message's files by `chat_edit`.
    let content = MessageContent::parse(request.content, true)?;
    let limit = &app.config.limits.edits;
    let edit = EditOf {
        room,
        id,
        user_email: user.email,
        content,
    };
    // Written together with whatever other edits are waiting.
    let mut outcome = app.edits.write(edit.clone()).await?;
    if brought_back(&app, &outcome, &edit.room, id, &edit.user_email).await? {
        outcome = app.edits.write(edit).await?;
    }
    respond(&app, written(outcome, limit)?).await
}

/// `DELETE /api/rooms/{room}/messages/{message}`: → 200 with the tombstone. The author or
/// the room's owner. The message's files are deleted from storage (their URLs stop
/// serving); one that cannot be deleted now stays in `chat_object_trash` for the cleanup
/// cron. Deleting a tombstone again answers it.
pub async fn delete(
    State(app): State<App>,
    MessagePath(room, id): MessagePath,
    Authed(user): Authed,
) -> Result<Response<Body>, ApiError> {
    let limit = &app.config.limits.edits;
    let delete = DeleteOf {
        room,
        id,
        user_email: user.email,
    };
    let mut outcome = app.deletes.write(delete.clone()).await?;
    if brought_back(&app, &outcome, &delete.room, id, &delete.user_email).await? {
        outcome = app.deletes.write(delete).await?;
    }
    let trashed = outcome.trashed.take().unwrap_or_default();
    let written = written(outcome, limit)?;
    if !trashed.is_empty() {
        match app.storage.delete_objects(&trashed).await {
            Ok(()) => db::messages::empty_trash(&app.db, &trashed).await?,
            Err(err) => tracing::warn!(
                error = format!("{err:#}"),
                objects = trashed.len(),
                "objects of a deleted message left for the cleanup cron"
            ),
        }
    }
    respond(&app, written).await
}

/// `GET /api/rooms/{room}/messages/{message}/replies?limit=&after=`: the replies to a
/// message, oldest first, after seq `after`, `{"messages", "has_more"}`.
pub async fn replies(
    State(app): State<App>,
    MessagePath(room, id): MessagePath,
    Authed(user): Authed,
    query: Query,
) -> Result<Response<Body>, ApiError> {
    let limit = query
        .get("limit")?
        .map(PageLimit::parse)
        .transpose()?
        .unwrap_or(PageLimit::DEFAULT);
    let after = query
        .get("after")?
        .map(|v| Cursor::parse("after", v))
        .transpose()?
        .map_or(0, Cursor::get);
    // From the read replica when it has a reply after `after` (so it has replayed that
    // seq); an empty answer, which may be a lagging replica's, is read from the primary.
    let (room_ref, email) = (&room, user.email.as_str());
    let (rows, has_more) = app
        .reader
        .read(
            move |db| async move {
                db::messages::list_replies(&db, room_ref, id, email, after, limit.get()).await
            },
            |(rows, _)| !rows.is_empty(),
        )
        .await?;
    let visible = if rows.is_empty() {
        db::rooms::find_visible(&app.db, &room, &user.email).await?
    } else {
        None
    };
    if rows.is_empty() && visible.is_none() {
        return Err(ApiError::room_not_found());
    }
    // Replies in the archive tier (its segments list the messages their replies quote).
    let limit = limit.get() as usize;
    let archived = archive::read::replies(&app, room.as_str(), id, after, limit + 1).await?;
    if rows.is_empty()
        && archived.is_empty()
        && !db::messages::exists(&app.db, &room, id, &user.email).await?
        && archive::read::find(&app, room.as_str(), id)
            .await?
            .is_none()
    {
        return Err(ApiError::message_not_found());
    }
    let (rows, has_more) =
        archive::read::merge(rows, has_more, archived, &user.email, limit, false);
    let messages = sign_messages(&app.storage, rows).await?;
    Ok(json_response(
        StatusCode::OK,
        &MessagePage {
            messages: &messages,
            has_more,
            last_event_id: None,
        },
    ))
}

/// Whether a write that found no message `id` should be tried again: the message was in
/// the archive tier and is now back in the hot tables (`archive::read::restore`), where an
/// edit, a delete or a reaction changes it as any other (and the move archives it again
/// later).
pub(crate) async fn brought_back(
    app: &App,
    outcome: &WriteOutcome,
    room: &RoomId,
    id: Uuid,
    user: &str,
) -> Result<bool, ApiError> {
    if outcome.outcome != "message_not_found" {
        return Ok(false);
    }
    Ok(archive::read::restore(app, room.as_str(), id, user).await?)
}

/// The message a write answered with, and the bucket it took from; or the write's refusal
/// as an API error.
pub(crate) fn written(
    outcome: WriteOutcome,
    limit: &RateLimit,
) -> Result<(MessageRow, Option<Quota>), ApiError> {
    let refusal = match outcome.outcome.as_str() {
        "ok" => {
            let quota = outcome
                .tokens_left
                .map(|left| limit.outcome(Some(left), None))
                .transpose()?;
            let row = outcome
                .message
                .ok_or_else(|| anyhow::anyhow!("a write answered ok without its message"))?;
            return Ok((row, quota));
        }
        "rate_limited" => {
            return Err(limit
                .outcome(None, outcome.tokens_before)
                .unwrap_err()
                .into());
        }
        "room_not_found" => ApiError::room_not_found(),
        "message_not_found" => ApiError::message_not_found(),
        "not_message_author" => ApiError::Forbidden {
            code: "not_message_author",
            message:
                "Only its author (or, to delete it, the room's owner) may do that to a message."
                    .into(),
        },
        "message_deleted" => ApiError::Conflict {
            code: "message_deleted",
            message: "The message was deleted.".into(),
        },
        "reply_to_invalid" => ApiError::bad_request(
            "invalid_field",
            "`reply_to` must name a message of this room.",
        ),
        "content_required" => ApiError::bad_request(
            "invalid_field",
            "`content` must not be empty unless files are attached.",
        ),
        "too_many_reactions" => ApiError::bad_request(
            "invalid_field",
            format!(
                "A message may carry at most {} different emoji.",
                db::messages::MAX_EMOJI_PER_MESSAGE
            ),
        ),
        other => return Err(anyhow::anyhow!("a write answered {other:?}").into()),
    };
    Err(refusal)
}

/// 200 with the message a write answered, and its bucket's `RateLimit-*` headers.
pub(crate) async fn respond(
    app: &App,
    (row, quota): (MessageRow, Option<Quota>),
) -> Result<Response<Body>, ApiError> {
    app.reader.wrote(&row.room_id, row.event_id);
    let view = sign_message(&app.storage, row).await?;
    let mut response = json_response(StatusCode::OK, &view);
    if let Some(quota) = quota {
        apply_quota(&quota, &mut response);
    }
    Ok(response)
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
