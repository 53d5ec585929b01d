//! Response bodies and JSON request bodies.

use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use super::ApiError;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The response body every handler returns (axum's).
pub type Body = axum::body::Body;

/// Request bodies above this size are refused with 413 (the router's `DefaultBodyLimit`).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn empty() -> Body {
    Body::empty()
}

pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    // Serialising our own view types cannot fail: they hold only strings, numbers and maps.
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// Parses a JSON request body into `T`, with a 400 that says what is wrong. Every body is a
/// JSON object: serde would also read a struct from an array (`[]` is a struct whose fields
/// all have defaults), which no client means.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if std::str::from_utf8(body).is_err() {
        return Err(ApiError::bad_request(
            "invalid_utf8",
            "The request body is not valid UTF-8.",
        ));
    }
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => ApiError::bad_request(
                    "invalid_field",
                    "The request body must be a JSON object.",
                ),
                Err(err) => ApiError::bad_request(
                    "invalid_json",
                    format!("The request body is not valid: {err}."),
                ),
            },
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct AllOptional {
        #[serde(default)]
        _id: Option<String>,
    }

    #[test]
    fn a_body_is_a_json_object() {
        assert!(parse_json::<AllOptional>(b" {}").is_ok());
        for (body, code) in [
            (&b"[]"[..], "invalid_field"),
            (b"\"x\"", "invalid_field"),
            (b"5", "invalid_field"),
            (b"", "invalid_json"),
            (b"[", "invalid_json"),
            (b"{", "invalid_json"),
        ] {
            let err = parse_json::<AllOptional>(body).unwrap_err();
            assert_eq!(err.code(), code, "{}", String::from_utf8_lossy(body));
        }
    }
}
