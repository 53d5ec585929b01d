//! The AWS Lambda host: function URLs and API Gateway HTTP APIs (payload 2.0) through
//! `lambda_http`. The stream function answers with response streaming (function URL
//! invoke mode `RESPONSE_STREAM`), frame by frame; the others answer buffered.
//!
//! One instance serves one invocation at a time (unless `AWS_LAMBDA_MAX_CONCURRENCY` says
//! otherwise on Lambda Managed Instances), so each instance's hub fans out to fewer streams
//! than on Vercel's Fluid compute; it still holds one LISTEN connection per instance.

use lambda_http::{RequestExt, service_fn};
use tower::ServiceExt;

use crate::http::BoxError;
use crate::http::extract::RequestId;
use crate::http::router::ApiService;

use super::SyncBody;

pub async fn run(service: ApiService, streams: bool) -> Result<(), BoxError> {
    let handler = service_fn(move |request: lambda_http::Request| {
        let service = service.clone();
        async move {
            let request_id = request
                .lambda_context_ref()
                .map(|context| RequestId(context.request_id.clone()));
            let mut request = request.map(axum::body::Body::new);
            if let Some(id) = request_id {
                request.extensions_mut().insert(id);
            }
            service.oneshot(request).await
        }
    });
    if streams {
        lambda_http::run_with_streaming_response_concurrent(handler).await
    } else {
        let buffered = handler.map_response(|response| response.map(SyncBody::new));
        lambda_http::run_concurrent(buffered).await
    }
}
