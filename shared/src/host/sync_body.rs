//! A `Sync` view of axum's response body, for the hosts whose body types require it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use sync_wrapper::SyncWrapper;

use crate::http::BoxError;

/// axum's body is `Send` but not `Sync`, which `vercel_runtime`'s body type and `lambda_http`'s buffered answer require; this
/// holds it behind a `SyncWrapper` (only ever polled through `&mut`), frame for frame, with
/// the size hint read up front so a buffered answer keeps its `Content-Length`.
pub(crate) struct SyncBody {
    inner: SyncWrapper<axum::body::Body>,
    hint: SizeHint,
    ended: bool,
}

impl SyncBody {
    pub(crate) fn new(body: axum::body::Body) -> Self {
        use http_body::Body as _;
        Self {
            hint: body.size_hint(),
            ended: body.is_end_stream(),
            inner: SyncWrapper::new(body),
        }
    }
}

impl http_body::Body for SyncBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(this.inner.get_mut()).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.ended = true;
        }
        polled.map(|frame| frame.map(|f| f.map_err(BoxError::from)))
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}
