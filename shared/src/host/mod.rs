//! The hosts a function binary runs on. One artifact for both platforms: under AWS Lambda
//! (`AWS_LAMBDA_RUNTIME_API` is set by its runtime) it speaks the Lambda Runtime API through
//! `lambda_http`; everywhere else it is a Vercel function on `vercel_runtime`. Both serve
//! the same router (`crate::routes::of`), as do the dev server and the tests.

mod lambda;
mod sync_body;
mod vercel;

use sync_body::SyncBody;

use crate::App;
use crate::http::BoxError;
use crate::http::router::Function;

/// Serves `function`'s routes on whichever platform started the process, until it stops.
/// On SIGTERM, open streams end cleanly so clients resume elsewhere with `Last-Event-ID`.
pub async fn run(app: App, function: Function) -> Result<(), BoxError> {
    let hub = app.hub.clone();
    tokio::spawn(async move {
        if let Ok(mut sigterm) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            sigterm.recv().await;
            hub.shutdown();
        }
    });
    let service = crate::routes::of(function).into_service(app);
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        lambda::run(service, function.streams()).await
    } else {
        vercel::run(service).await
    }
}

/// What every `api/*.rs` does: logging, the per-process context, then the host.
pub async fn main(function: Function) -> Result<(), BoxError> {
    crate::telemetry::init();
    let app = App::from_env().await?;
    run(app, function).await
}
