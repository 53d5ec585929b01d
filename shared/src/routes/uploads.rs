//! `POST /api/uploads`: presigned direct-to-storage uploads.

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::SecondsFormat;
use http::{Response, StatusCode};
use serde::Deserialize;
use uuid::Uuid;

use crate::App;
use crate::db;
use crate::db::uploads::NewUpload;
use crate::domain::{ContentType, FileName, RoomId, UploadSize};
use crate::http::error::apply_quota;
use crate::http::extract::{Authed, JsonBody};
use crate::http::{ApiError, Body, json_response};
use crate::storage::Storage;

#[derive(Debug, Deserialize)]
pub struct PresignUploadRequest {
    pub room_id: String,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
}

/// `POST /api/uploads`: `{"room_id", "file_name", "content_type", "size"}` → 201
/// `{"id", "method": "PUT", "url", "headers", "expires_at"}`. The browser PUTs the file to
/// `url` with exactly `headers`; the signature covers both, so storage refuses another
/// size. 413 above `MAX_UPLOAD_BYTES`. Attach the file by sending `id` in `file_ids`.
pub async fn presign(
    State(app): State<App>,
    Authed(user): Authed,
    JsonBody(request): JsonBody<PresignUploadRequest>,
) -> Result<Response<Body>, ApiError> {
    let room = RoomId::parse(&request.room_id).map_err(|_| {
        ApiError::bad_request(
            "invalid_field",
            "`room_id` must be 1 to 64 letters, digits, `_` or `-`.",
        )
    })?;
    let file_name = FileName::parse(&request.file_name)?;
    let content_type = ContentType::parse(&request.content_type)?;
    if !app.config.storage.allowed_types.allows(&content_type) || file_name.is_refused() {
        return Err(ApiError::bad_request(
            "content_type_not_allowed",
            format!(
                "Files of type `{}` cannot be uploaded here.",
                content_type.as_str()
            ),
        ));
    }
    let size = UploadSize::parse(request.size, app.config.storage.max_upload_bytes)?;

    let id = Uuid::now_v7();
    let key = Storage::object_key(&room, id, &content_type);
    let presigned = app.storage.presign_put(&key, &content_type, size).await?;
    let upload = NewUpload {
        id,
        room_id: room.as_str(),
        user_email: &user.email,
        object_key: &key,
        file_name: file_name.as_str(),
        content_type: content_type.as_str(),
        size: size.get() as i64,
    };
    let limit = &app.config.limits.uploads;
    let outcome = db::uploads::insert_upload(&app.db, &upload, limit).await?;
    let quota = limit.outcome(outcome.tokens_left, outcome.tokens_before)?;
    if outcome.created_at.is_none() {
        return Err(ApiError::room_not_found());
    }

    let headers: BTreeMap<String, String> = presigned.headers.into_iter().collect();
    let mut response = json_response(
        StatusCode::CREATED,
        &serde_json::json!({
            "id": id,
            "method": "PUT",
            "url": presigned.url,
            "headers": headers,
            "expires_at": presigned.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        }),
    );
    apply_quota(&quota, &mut response);
    Ok(response)
}
