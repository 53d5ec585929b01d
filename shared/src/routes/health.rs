//! `GET /api/health`: whether this process reaches the database, and its stream figures.

use axum::extract::State;
use http::{Response, StatusCode};

use crate::App;
use crate::http::{ApiError, Body, json_response};

/// `GET /api/health`: 200 `{"status":"ok","database":"ok","streams":{...}}`, or 503 when
/// the database does not answer within the pool's acquire timeout. Needs no token.
/// `streams` is this process's hub: open streams, watched rooms, polls and notifications
/// in the last minute. `reads`: whether a read replica is configured and up, and how many
/// reads it and the primary answered, and why reads fell back (`db::replica`).
pub async fn get(State(app): State<App>) -> Result<Response<Body>, ApiError> {
    sqlx::query("SELECT 1").execute(&app.db).await?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "status": "ok", "database": "ok", "streams": app.hub.stats(),
            "reads": app.reader.stats() }),
    ))
}
