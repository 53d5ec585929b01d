//! Bearer-token authentication: HS256 JWTs whose `email` claim is the user's identity.

use http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

use crate::config::AuthConfig;
use crate::domain::User;
use crate::http::ApiError;

/// Verifies tokens; built once per process.
#[derive(Clone)]
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub email: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp"]);
        validation.leeway = 30;
        match &config.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &config.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        Self {
            key: DecodingKey::from_secret(config.jwt_secret.as_bytes()),
            validation,
        }
    }

    /// The user behind `Authorization: Bearer <JWT>`, or, where `allow_query_token` (the
    /// stream route: `EventSource` cannot set headers), behind `?access_token=`.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<User, ApiError> {
        let token = match headers.get(http::header::AUTHORIZATION) {
            Some(value) => bearer_token(value.as_bytes())?,
            None => query_token.ok_or_else(|| unauthorized("A bearer token is required."))?,
        };
        self.verify(token)
    }

    pub fn verify(&self, token: &str) -> Result<User, ApiError> {
        use jsonwebtoken::errors::ErrorKind;
        let data = decode::<Claims>(token, &self.key, &self.validation).map_err(|err| match err
            .kind()
        {
            ErrorKind::ExpiredSignature => unauthorized("The token has expired."),
            ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => {
                unauthorized("The token was issued for someone else.")
            }
            _ => unauthorized("The token is not valid."),
        })?;
        let email = data.claims.email.trim();
        if email.is_empty() || email.len() > 320 || !email.contains('@') {
            return Err(unauthorized(
                "The token's `email` claim is not an email address.",
            ));
        }
        Ok(User {
            email: email.to_owned(),
        })
    }
}

/// `Bearer <token>`, scheme case-insensitive.
fn bearer_token(header: &[u8]) -> Result<&str, ApiError> {
    let value = std::str::from_utf8(header)
        .map_err(|_| unauthorized("The Authorization header is malformed."))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(unauthorized(
            "The Authorization header must be `Bearer <token>`.",
        )),
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::Unauthorized(message.to_owned())
}

/// Mints an HS256 token for `email`, valid for `ttl_secs` (dev server, tests, benchmarks).
pub fn mint_token(config: &AuthConfig, email: &str, ttl_secs: i64) -> anyhow::Result<String> {
    let exp = (chrono::Utc::now().timestamp() + ttl_secs).max(0) as u64;
    let claims = Claims {
        email: email.to_owned(),
        exp,
        iss: config.issuer.clone(),
        aud: config.audience.clone(),
    };
    Ok(encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(config.jwt_secret.as_bytes()),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AuthConfig {
        AuthConfig {
            jwt_secret: "secret".into(),
            issuer: Some("me".into()),
            audience: Some("chat".into()),
        }
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn a_minted_token_verifies() {
        let auth = Authenticator::new(&config());
        let token = mint_token(&config(), "a@x.com", 60).unwrap();
        let user = auth
            .authenticate(&headers(&format!("bearer {token}")), None)
            .unwrap();
        assert_eq!(user.email, "a@x.com");
    }

    #[test]
    fn expired_forged_and_foreign_tokens_are_refused() {
        let auth = Authenticator::new(&config());
        let expired = mint_token(&config(), "a@x.com", -120).unwrap();
        let forged = mint_token(
            &AuthConfig {
                jwt_secret: "other".into(),
                ..config()
            },
            "a@x.com",
            60,
        )
        .unwrap();
        let foreign = mint_token(
            &AuthConfig {
                audience: Some("else".into()),
                ..config()
            },
            "a@x.com",
            60,
        )
        .unwrap();
        for token in [expired, forged, foreign, "garbage".into()] {
            assert!(auth.verify(&token).is_err());
        }
    }

    #[test]
    fn the_header_must_be_a_bearer_token() {
        let auth = Authenticator::new(&config());
        for bad in ["Basic abc", "Bearer", "Bearer   ", "token"] {
            assert!(auth.authenticate(&headers(bad), None).is_err(), "{bad}");
        }
        assert!(auth.authenticate(&HeaderMap::new(), None).is_err());
    }
}
