//! `GET /api/cron/cleanup-uploads`: deletes uploads never attached to a message, and the
//! objects of deleted messages that storage failed to delete at the time.

use std::time::Instant;

use axum::extract::State;
use futures_util::StreamExt;
use http::{HeaderMap, Response, StatusCode};

use crate::App;
use crate::auth::bearer_token;
use crate::db;
use crate::http::{ApiError, Body, json_response};
use crate::storage;

/// Rows claimed per batch.
const BATCH: i64 = 100;
/// Objects of deleted messages retried per run.
const TRASH_BATCH: i64 = 1000;
/// Concurrent object deletions.
const PARALLEL_DELETES: usize = 16;
/// Images left processing this long are processed by the cron (a send's own processing
/// takes seconds).
const REPROCESS_AFTER_MINUTES: i64 = 10;
/// Images the cron processes per run, at most.
const REPROCESS_BATCH: i64 = 20;
/// Stop starting batches after this long, well inside the function's time limit; the next
/// run picks up the rest.
const TIME_BUDGET: std::time::Duration = std::time::Duration::from_secs(45);

/// `GET /api/cron/cleanup-uploads`, called by Vercel Cron with `Authorization: Bearer
/// $CRON_SECRET`: deletes the objects and rows of uploads older than `UPLOAD_ORPHAN_HOURS`
/// that were never attached (the staging object and any copy at its attached key), in
/// batches, and reports `{"deleted", "batches", "more"}` (counting uploads).
///
/// Safe to run twice at once: each batch claims its rows with `FOR UPDATE SKIP LOCKED`, so
/// concurrent runs split the work. A batch's rows are deleted only after its objects are,
/// in the same transaction, so a storage failure leaves them for the next run.
pub async fn run(State(app): State<App>, headers: HeaderMap) -> Result<Response<Body>, ApiError> {
    authorize(&app, &headers)?;
    let started = Instant::now();
    let older_than = chrono::Duration::from_std(app.config.storage.orphan_after)
        .unwrap_or(chrono::Duration::hours(24));
    let cutoff = chrono::Utc::now() - older_than;
    let (mut deleted, mut batches, mut more) = (0usize, 0usize, false);
    loop {
        if started.elapsed() > TIME_BUDGET {
            more = true;
            break;
        }
        let mut tx = app.db.begin().await?;
        let claimed = db::uploads::claim_orphans(&mut *tx, cutoff, BATCH).await?;
        if claimed.is_empty() {
            break;
        }
        // Each upload's staging object, and the copy at its attached key that a send which
        // failed after copying left (an upload still pending was never attached, so nothing
        // points there). Owned futures: a stream of borrowing closures trips the compiler's
        // Send proof.
        let deletions: Vec<_> = claimed
            .iter()
            .flat_map(|(_, key)| [key.clone(), storage::attached_key(key)])
            .map(|key| {
                let storage = app.storage.clone();
                async move { storage.delete(&key).await }
            })
            .collect();
        let results: Vec<anyhow::Result<()>> = futures_util::stream::iter(deletions)
            .buffer_unordered(PARALLEL_DELETES)
            .collect()
            .await;
        results.into_iter().collect::<anyhow::Result<()>>()?;
        let ids: Vec<uuid::Uuid> = claimed.iter().map(|(id, _)| *id).collect();
        db::uploads::delete_uploads(&mut *tx, &ids).await?;
        tx.commit().await?;
        deleted += claimed.len();
        batches += 1;
    }
    // Objects of deleted messages that storage did not delete at the time.
    let trashed = db::messages::trashed(&app.db, TRASH_BATCH).await?;
    if !trashed.is_empty() {
        app.storage.delete_objects(&trashed).await?;
        db::messages::empty_trash(&app.db, &trashed).await?;
        more |= trashed.len() as i64 == TRASH_BATCH;
    }
    // Images whose processing never finished (on Lambda a sandbox frozen or reclaimed after
    // the send answered; a crash): processed here, each message one event, within the budget.
    let mut reprocessed = 0usize;
    let stale = chrono::Utc::now() - chrono::Duration::minutes(REPROCESS_AFTER_MINUTES);
    for (message, files) in db::files::unprocessed(&app.db, stale, REPROCESS_BATCH).await? {
        if started.elapsed() > TIME_BUDGET {
            more = true;
            break;
        }
        reprocessed += files.len();
        app.processor().process_message(message, files).await;
    }
    tracing::info!(
        deleted,
        batches,
        more,
        reprocessed,
        trashed = trashed.len(),
        "cleaned up orphaned uploads"
    );
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({
            "deleted": deleted,
            "batches": batches,
            "more": more,
            "trashed": trashed.len(),
            "reprocessed": reprocessed,
        }),
    ))
}

/// The bearer token must equal `CRON_SECRET`; with no secret configured, nobody may call it.
pub(crate) fn authorize(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let denied = || ApiError::Unauthorized("This route is for the scheduler.".into());
    let secret = app
        .config
        .storage
        .cron_secret
        .as_deref()
        .ok_or_else(denied)?;
    let given = headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(denied)?;
    let token = bearer_token(given.as_bytes()).map_err(|_| denied())?;
    if constant_time_eq(token.as_bytes(), secret.as_bytes()) {
        Ok(())
    } else {
        Err(denied())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_compare_whole() {
        assert!(super::constant_time_eq(b"abc", b"abc"));
        assert!(!super::constant_time_eq(b"abc", b"abd"));
        assert!(!super::constant_time_eq(b"abc", b"abcd"));
    }
}
