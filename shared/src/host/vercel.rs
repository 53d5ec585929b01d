//! The Vercel host: `vercel_runtime` speaks the platform's IPC (`server-started` and `end`
//! messages on `VERCEL_IPC_PATH`) and serves HTTP on `VERCEL_DEV_PORT`; each request goes
//! straight to the router. Its own `axum` integration is not used: it buffers the request
//! body with no limit and moves every streamed frame through an extra task and channel.

use http_body_util::BodyExt;
use tower::ServiceExt;
use vercel_runtime::{AppState, ResponseBody, service_fn};

use crate::http::BoxError;
use crate::http::extract::Background;
use crate::http::router::ApiService;

use super::SyncBody;

pub async fn run(service: ApiService) -> Result<(), BoxError> {
    vercel_runtime::run(service_fn(
        move |request: vercel_runtime::Request, state: AppState| {
            let service = service.clone();
            async move {
                let mut request = request.map(axum::body::Body::new);
                request.extensions_mut().insert(Background::vercel(state));
                let response = match service.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                Ok::<_, vercel_runtime::Error>(
                    response.map(|body| ResponseBody(SyncBody::new(body).boxed())),
                )
            }
        },
    ))
    .await
}
