//! The Vercel adapter: collects the body at the edge, hands a plain `http::Request<Bytes>`
//! to the shared handler, and always answers with a rendered response (an `Err` given to
//! `vercel_runtime` would become a bare 500 carrying the raw error text).

use http::Request;
use vercel_runtime::{ResponseBody, service_fn};

use crate::App;
use crate::http::body::collect;
use crate::http::router::Function;

/// Serves `function`'s routes with `vercel_runtime` until the platform stops the process.
/// On SIGTERM, open streams end cleanly so clients resume elsewhere with `Last-Event-ID`.
pub async fn run(app: App, function: Function) -> Result<(), vercel_runtime::Error> {
    let hub = app.hub.clone();
    tokio::spawn(async move {
        if let Ok(mut sigterm) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            sigterm.recv().await;
            hub.shutdown();
        }
    });
    vercel_runtime::run(service_fn(move |request: vercel_runtime::Request| {
        let app = app.clone();
        async move {
            let (parts, body) = request.into_parts();
            let response = match collect(body).await {
                Ok(bytes) => {
                    app.handle_function(function, Request::from_parts(parts, bytes))
                        .await
                }
                Err(err) => err.into_response(),
            };
            response.map(ResponseBody)
        }
    }))
    .await
}
