//! Request and response bodies: the response body type and collecting a bounded request body.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use serde::Serialize;

use super::ApiError;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The response body every handler returns; the same type `vercel_runtime::ResponseBody` wraps.
pub type Body = BoxBody<Bytes, BoxError>;

/// Request bodies above this size are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    // Serialising our own view types cannot fail: they hold only strings, numbers and maps.
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// Collects a request body at the edge, refusing anything over [`MAX_BODY_BYTES`].
pub async fn collect<B>(body: B) -> Result<Bytes, ApiError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::PayloadTooLarge {
                code: "body_too_large",
                message: format!("The request body is over {MAX_BODY_BYTES} bytes."),
            })
        }
        Err(err) => Err(ApiError::bad_request(
            "body_unreadable",
            format!("The request body could not be read: {err}"),
        )),
    }
}

/// Parses a JSON request body into `T`, with a 400 that says what is wrong.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if std::str::from_utf8(body).is_err() {
        return Err(ApiError::bad_request(
            "invalid_utf8",
            "The request body is not valid UTF-8.",
        ));
    }
    serde_json::from_slice(body).map_err(|err| {
        let code = if err.is_data() {
            "invalid_field"
        } else {
            "invalid_json"
        };
        ApiError::bad_request(code, format!("The request body is not valid: {err}."))
    })
}
