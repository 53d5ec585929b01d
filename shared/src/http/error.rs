//! The one API error type and its JSON rendering: `{"error": {"code", "message"}}`.

use http::{HeaderValue, Response, StatusCode, header};

use super::body::{Body, json_response};
use crate::db::limits::{Quota, Refused};

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_SECS: &str = "2";

/// Every way a request can fail. Each variant documents its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: bad JSON, a bad field, a bad query parameter.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 401: missing, invalid or expired token.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the caller sees the resource but may not do this to it.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// 404: unknown room or route.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// 405: the path exists but not with this method; `allow` lists those it has.
    #[error("method not allowed")]
    MethodNotAllowed { allow: String },
    /// 409: the resource already exists.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 413: upload size over the limit, or a body over 1 MiB.
    #[error("{message}")]
    PayloadTooLarge { code: &'static str, message: String },
    /// 429: a rate limit; `Retry-After` and `RateLimit-*` say when to come back.
    #[error("Too many requests. Retry in {retry_after} s.")]
    RateLimited { retry_after: u64, quota: Quota },
    /// 503: this instance is at a capacity limit (open streams).
    #[error("{message}")]
    Overloaded { code: &'static str, message: String },
    /// 429: a per-user cap other than a token bucket (concurrent streams).
    #[error("{message}")]
    TooMany {
        code: &'static str,
        message: String,
        retry_after: u64,
    },
    /// 503: the database is down or the pool is exhausted.
    #[error("database unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// 500: anything unexpected. The cause is logged, never shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn route_not_found() -> Self {
        Self::NotFound {
            code: "route_not_found",
            message: "No such route.".into(),
        }
    }

    pub fn message_not_found() -> Self {
        Self::NotFound {
            code: "message_not_found",
            message: "No such message in this room.".into(),
        }
    }

    pub fn room_not_found() -> Self {
        Self::NotFound {
            code: "room_not_found",
            message: "No such room.".into(),
        }
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } | Self::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Overloaded { .. } | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Forbidden { code, .. }
            | Self::NotFound { code, .. }
            | Self::Conflict { code, .. }
            | Self::PayloadTooLarge { code, .. }
            | Self::Overloaded { code, .. }
            | Self::TooMany { code, .. } => code,
            Self::Unauthorized(_) => "unauthorized",
            Self::RateLimited { .. } => "rate_limited",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Unavailable(_) => "database_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    fn public_message(&self) -> String {
        match self {
            Self::MethodNotAllowed { allow } => {
                format!("This route does not support that method. Allowed: {allow}.")
            }
            Self::Unavailable(_) => {
                "The database is unavailable right now. Retry shortly.".to_owned()
            }
            Self::Internal(_) => "Something went wrong on our side.".to_owned(),
            other => other.to_string(),
        }
    }

    /// Renders the error. The cause chain of a server-side failure travels in the
    /// response's extensions to the request span, which logs it once (`http::edge`).
    pub fn render(self) -> Response<Body> {
        let cause = match &self {
            Self::Unavailable(cause) => Some(LoggedCause::Unavailable(format!("{cause:#}"))),
            Self::Internal(cause) => Some(LoggedCause::Internal(format!("{cause:#}"))),
            _ => None,
        };
        let body = serde_json::json!({
            "error": { "code": self.code(), "message": self.public_message() }
        });
        let mut response = json_response(self.status_code(), &body);
        if let Some(cause) = cause {
            response.extensions_mut().insert(cause);
        }
        match self {
            Self::MethodNotAllowed { allow } => {
                if let Ok(allow) = HeaderValue::try_from(allow) {
                    response.headers_mut().insert(header::ALLOW, allow);
                }
            }
            Self::TooMany { retry_after, .. } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            Self::RateLimited { retry_after, quota } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                apply_quota(&quota, &mut response);
            }
            Self::Overloaded { .. } | Self::Unavailable(_) => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECS),
                );
            }
            _ => {}
        }
        response
    }
}

/// `RateLimit-*` headers of a limited route.
pub fn apply_quota(quota: &Quota, response: &mut Response<Body>) {
    let headers = response.headers_mut();
    headers.insert("ratelimit-limit", HeaderValue::from(quota.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(quota.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(quota.reset_secs));
}

impl From<crate::realtime::StreamRefused> for ApiError {
    fn from(refused: crate::realtime::StreamRefused) -> Self {
        use crate::realtime::StreamRefused;
        let message = refused.to_string();
        match refused {
            StreamRefused::InstanceFull => Self::Overloaded {
                code: "too_many_streams",
                message,
            },
            StreamRefused::UserLimit(_) => Self::TooMany {
                code: "too_many_streams_for_user",
                message,
                retry_after: 5,
            },
        }
    }
}

impl From<crate::storage::PinError> for ApiError {
    fn from(err: crate::storage::PinError) -> Self {
        use crate::storage::PinError;
        match err {
            PinError::Changed(id) => Self::bad_request(
                "upload_changed",
                format!(
                    "The file for upload {id} was replaced while the message was being sent; send it again."
                ),
            ),
            PinError::Missing(id) => Self::bad_request(
                "upload_incomplete",
                format!("The file for upload {id} is no longer in storage."),
            ),
            PinError::Storage(err) => err.into(),
        }
    }
}

impl From<crate::auth::Unauthorized> for ApiError {
    fn from(err: crate::auth::Unauthorized) -> Self {
        Self::Unauthorized(err.0.to_owned())
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        Self::RateLimited {
            retry_after: refused.retry_after,
            quota: refused.quota,
        }
    }
}

/// A request's wait on the database outlived `DatabaseConfig::deadline` (503).
#[derive(Debug, thiserror::Error)]
#[error("the database did not answer within {0:?}")]
pub struct DeadlinePassed(pub std::time::Duration);

/// The cause chain of a 5xx, for the request span to log.
#[derive(Clone, Debug)]
pub enum LoggedCause {
    Unavailable(String),
    Internal(String),
}

impl From<anyhow::Error> for ApiError {
    /// Database outages become 503; everything else is a 500.
    fn from(err: anyhow::Error) -> Self {
        if err.chain().any(is_unavailable) {
            Self::Unavailable(err)
        } else {
            Self::Internal(err)
        }
    }
}

impl From<crate::domain::Invalid> for ApiError {
    fn from(err: crate::domain::Invalid) -> Self {
        use crate::domain::Invalid;
        match err {
            Invalid::Field(message) => Self::bad_request("invalid_field", message),
            Invalid::Query(message) => Self::bad_request("invalid_query", message),
            Invalid::UploadTooLarge(message) => Self::PayloadTooLarge {
                code: "upload_too_large",
                message,
            },
        }
    }
}

impl From<crate::realtime::LookupFailed> for ApiError {
    fn from(err: crate::realtime::LookupFailed) -> Self {
        anyhow::Error::from(err).into()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        anyhow::Error::from(err).into()
    }
}

/// Whether an error means "the database cannot be reached or is overloaded", which a
/// client should retry, rather than a bug.
fn is_unavailable(err: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(err) = err.downcast_ref::<sqlx::Error>() {
        return match err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => true,
            // 08: connection exceptions; 57P0x: server shutting down or starting up;
            // 53300: too many connections; 57014: cancelled by `statement_timeout`.
            sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                c.starts_with("08") || c.starts_with("57P0") || c == "53300" || c == "57014"
            }),
            _ => false,
        };
    }
    err.downcast_ref::<std::io::Error>().is_some() || err.is::<DeadlinePassed>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_timeout_is_a_503_with_retry_after() {
        let err: ApiError = anyhow::Error::from(sqlx::Error::PoolTimedOut)
            .context("list messages")
            .into();
        let response = err.render();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
    }

    #[test]
    fn an_unexpected_error_is_a_500_that_hides_its_cause() {
        let err: ApiError = anyhow::anyhow!("SELECT secret FROM x failed").into();
        assert_eq!(err.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!err.public_message().contains("SELECT"));
    }
}
