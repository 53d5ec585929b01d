//! CORS for the API: browsers on `CORS_ALLOWED_ORIGINS` may call it (bearer tokens, no
//! cookies, so no credentials mode). Preflights are answered on every route.

use http::{HeaderValue, Response, StatusCode, header};

use super::Body;
use super::body::empty;

pub use crate::config::AllowedOrigins;

impl AllowedOrigins {
    /// The request's `Origin`, when it may call the API.
    fn allowed<'a>(&self, origin: Option<&'a HeaderValue>) -> Option<&'a HeaderValue> {
        let origin = origin?;
        let ok = match self {
            Self::None => false,
            Self::Any => true,
            Self::List(list) => origin.to_str().is_ok_and(|o| list.iter().any(|a| a == o)),
        };
        ok.then_some(origin)
    }

    /// Adds the CORS headers an allowed origin needs to read `response`.
    pub fn decorate(&self, origin: Option<&HeaderValue>, response: &mut Response<Body>) {
        let headers = response.headers_mut();
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = self.allowed(origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(
                    "Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset",
                ),
            );
        }
    }

    /// The answer to `OPTIONS` on a route that allows `allow`.
    pub fn preflight(&self, origin: Option<&HeaderValue>, allow: &str) -> Response<Body> {
        let mut response = Response::new(empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let headers = response.headers_mut();
        let Ok(allow) = HeaderValue::try_from(allow) else {
            return response;
        };
        headers.insert(header::ALLOW, allow.clone());
        if self.allowed(origin).is_some() {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, allow);
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type, last-event-id"),
            );
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(o: &str) -> Option<HeaderValue> {
        Some(o.parse().unwrap())
    }

    #[test]
    fn only_listed_origins_are_allowed() {
        let cors = AllowedOrigins::parse(" https://a.example.com/ , https://b.example.com");
        assert!(
            cors.allowed(origin("https://a.example.com").as_ref())
                .is_some()
        );
        assert!(
            cors.allowed(origin("https://evil.example.com").as_ref())
                .is_none()
        );
        assert!(
            AllowedOrigins::parse("")
                .allowed(origin("https://a.example.com").as_ref())
                .is_none()
        );
        assert!(
            AllowedOrigins::parse("*")
                .allowed(origin("https://x.dev").as_ref())
                .is_some()
        );
        assert!(cors.allowed(None).is_none());
    }
}
