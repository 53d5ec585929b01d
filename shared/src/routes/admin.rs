//! `GET /api/admin/stats`: the operator's numbers.

use axum::extract::State;
use http::{Response, StatusCode};
use serde::Serialize;

use crate::App;
use crate::db;
use crate::db::stats::RoomFigures;
use crate::http::extract::Authed;
use crate::http::latency::RouteFigures;
use crate::http::{ApiError, Body, json_response};

/// How many rooms each top list holds.
pub const TOP_ROOMS: i64 = 20;

/// `GET /api/admin/stats`: for a token whose email is in `ADMIN_EMAILS` (anyone else: 403
/// `not_admin`). The database's figures (rooms, messages, storage, pending uploads,
/// archived segments, the top 20 rooms by messages and by storage), each from a counter
/// kept on `chat_rooms` or an index, and this instance's (its streams, watched rooms, the
/// stream hub's statements per second, and each route's count and latency since start).
pub async fn stats(
    State(app): State<App>,
    Authed(user): Authed,
) -> Result<Response<Body>, ApiError> {
    if !app.config.admins.contains(&user.email) {
        return Err(ApiError::Forbidden {
            code: "not_admin",
            message: "Only the operators named in `ADMIN_EMAILS` may read the stats.".into(),
        });
    }
    let totals = db::stats::totals(&app.db).await?;
    let by_messages = db::stats::top_by_messages(&app.db, TOP_ROOMS).await?;
    let by_storage = db::stats::top_by_storage(&app.db, TOP_ROOMS).await?;
    let archived_segments = db::stats::archived_segments(&app.db).await?;
    let hub = app.hub.stats();
    let uptime = app.started.elapsed().as_secs_f64();
    // Over the last minute, or since start when the process is younger.
    let window = uptime.clamp(1.0, 60.0);
    let statements = app.hub.statements_last_minute();
    Ok(json_response(
        StatusCode::OK,
        &Stats {
            database: Database {
                rooms: totals.rooms,
                messages: totals.messages,
                storage_bytes: totals.storage_bytes,
                pending_uploads: totals.pending_uploads,
                pending_upload_bytes: totals.pending_upload_bytes,
                archived_segments,
                top_rooms_by_messages: by_messages,
                top_rooms_by_storage: by_storage,
            },
            instance: Instance {
                uptime_seconds: uptime,
                open_streams: hub.open_streams,
                watched_rooms: hub.watched_rooms,
                db_statements_per_second: statements as f64 / window,
                db_statements_total: hub.statements_total,
                routes: app.latencies.figures(),
            },
        },
    ))
}

#[derive(Serialize)]
struct Stats {
    database: Database,
    instance: Instance,
}

#[derive(Serialize)]
struct Database {
    rooms: i64,
    messages: i64,
    storage_bytes: i64,
    pending_uploads: i64,
    pending_upload_bytes: i64,
    archived_segments: i64,
    top_rooms_by_messages: Vec<RoomFigures>,
    top_rooms_by_storage: Vec<RoomFigures>,
}

#[derive(Serialize)]
struct Instance {
    uptime_seconds: f64,
    open_streams: usize,
    watched_rooms: usize,
    db_statements_per_second: f64,
    db_statements_total: u64,
    routes: Vec<RouteFigures>,
}
