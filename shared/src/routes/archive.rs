//! `GET /api/cron/archive`: moves old history to segments in the bucket and applies the
//! retention window (`crate::archive`).

use axum::extract::State;
use http::{HeaderMap, Response, StatusCode};

use crate::App;
use crate::archive::mover;
use crate::http::{ApiError, Body, json_response};
use crate::routes::cleanup::authorize;

/// Stop starting batches after this long, well inside the function's time limit; the next
/// run picks up the rest.
const TIME_BUDGET: std::time::Duration = std::time::Duration::from_secs(45);

/// `GET /api/cron/archive`, called by Vercel Cron with `Authorization: Bearer
/// $CRON_SECRET`: deletes messages older than `RETENTION_DAYS` (hot and archived, with
/// their files), then moves messages older than `ARCHIVE_AFTER_DAYS` or beyond the newest
/// `ARCHIVE_KEEP_PER_ROOM` of their room into segments, at most
/// `ARCHIVE_BATCHES_PER_RUN` batches of `ARCHIVE_BATCH`; answers `{"archived", "deleted",
/// "more"}`. With none of the three set it does nothing. Safe to run twice at once and to
/// rerun after a crash at any step (`archive::mover`).
pub async fn run(State(app): State<App>, headers: HeaderMap) -> Result<Response<Body>, ApiError> {
    authorize(&app, &headers)?;
    let report = mover::run(&app, TIME_BUDGET).await?;
    tracing::info!(
        archived = report.archived,
        deleted = report.deleted,
        more = report.more,
        "archive run"
    );
    Ok(json_response(StatusCode::OK, &report))
}
