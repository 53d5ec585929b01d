//! Bearer-token authentication. HS256 tokens signed with `AUTH_JWT_SECRET`, and RS256/ES256
//! tokens from an identity provider's JWKS (`AUTH_JWKS_URL`: Clerk, Auth0, Supabase, Auth.js,
//! Neon Auth). The email claim (`AUTH_EMAIL_CLAIM`) is the user's identity.

mod jwks;

use http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};

use self::jwks::KeyCache;
use crate::config::AuthConfig;
use crate::domain::{Email, User};

/// Verifies tokens; built once per process (the JWKS cache lives here, and the rules each
/// algorithm's tokens are checked by).
pub struct Authenticator {
    hs256: Option<DecodingKey>,
    jwks: Option<KeyCache>,
    email_claim: String,
    /// HS256, RS256, ES256: the only algorithms accepted.
    validations: [Validation; 3],
}

/// Seconds of clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Self {
        let rules = |alg| validation(alg, config.issuer.as_deref(), config.audience.as_deref());
        Self {
            hs256: config
                .jwt_secret
                .as_ref()
                .map(|s| DecodingKey::from_secret(s.as_bytes())),
            jwks: config
                .jwks_url
                .as_ref()
                .map(|url| KeyCache::new(url.clone(), config.jwks_min_refresh)),
            email_claim: config.email_claim.clone(),
            validations: [
                rules(Algorithm::HS256),
                rules(Algorithm::RS256),
                rules(Algorithm::ES256),
            ],
        }
    }

    /// The user behind `Authorization: Bearer <JWT>`, or else behind `query_token` (the
    /// stream's `?access_token=`: `EventSource` cannot set headers).
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<User, Unauthorized> {
        let token = match headers.get(http::header::AUTHORIZATION) {
            Some(value) => bearer_token(value.as_bytes())?,
            None => query_token.ok_or_else(|| unauthorized("A bearer token is required."))?,
        };
        self.verify(token).await
    }

    /// Verifies a token. The algorithm decides the key source, never the other way round:
    /// HS256 only with the shared secret, RS256/ES256 only with a JWKS key of that type, so a
    /// public key can never be used as an HMAC secret. `none` and other algorithms fail.
    pub async fn verify(&self, token: &str) -> Result<User, Unauthorized> {
        let header = decode_header(token).map_err(|_| unauthorized("The token is not valid."))?;
        let invalid = || unauthorized("The token is not valid.");
        let fetched;
        let (key, validation) = match header.alg {
            Algorithm::HS256 => (
                self.hs256.as_ref().ok_or_else(invalid)?,
                &self.validations[0],
            ),
            Algorithm::RS256 | Algorithm::ES256 => {
                fetched = match (&self.jwks, header.kid.as_deref()) {
                    (Some(jwks), Some(kid)) => jwks.key(kid, header.alg).await,
                    _ => None,
                }
                .ok_or_else(invalid)?;
                let rules = if header.alg == Algorithm::RS256 { 1 } else { 2 };
                (&fetched, &self.validations[rules])
            }
            _ => return Err(invalid()),
        };

        let claims = decode::<serde_json::Map<String, serde_json::Value>>(token, key, validation)
            .map_err(|err| {
                use jsonwebtoken::errors::ErrorKind;
                match err.kind() {
                    ErrorKind::ExpiredSignature => unauthorized("The token has expired."),
                    ErrorKind::ImmatureSignature => unauthorized("The token is not valid yet."),
                    ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => {
                        unauthorized("The token was issued for someone else.")
                    }
                    _ => unauthorized("The token is not valid."),
                }
            })?
            .claims;
        let email = claims
            .get(&self.email_claim)
            .and_then(|v| v.as_str())
            .and_then(|e| Email::parse(e).ok())
            .ok_or_else(|| unauthorized("The token carries no email address."))?;
        Ok(User {
            email: email.into_string(),
        })
    }
}

/// The rules an `alg` token is checked by: `exp` (and `nbf` when present) with
/// [`LEEWAY_SECS`], and the issuer and audience when configured.
fn validation(alg: Algorithm, issuer: Option<&str>, audience: Option<&str>) -> Validation {
    let mut validation = Validation::new(alg);
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    let mut required = vec!["exp"];
    match issuer {
        Some(iss) => {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        None => validation.iss = None,
    }
    match audience {
        Some(aud) => {
            validation.set_audience(&[aud]);
            required.push("aud");
        }
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&required);
    validation
}

/// `Bearer <token>`, scheme case-insensitive.
pub fn bearer_token(header: &[u8]) -> Result<&str, Unauthorized> {
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

/// Why a token was refused (401 at the edge). The message is safe to show: it never
/// repeats the token.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unauthorized(pub &'static str);

fn unauthorized(message: &'static str) -> Unauthorized {
    Unauthorized(message)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jsonwebtoken::{EncodingKey, Header};

    use super::*;

    /// The product only verifies tokens; minting is the dev kit's
    /// (`chat_dev::token::mint_token`), so these tests sign their own the same way.
    fn mint_token(config: &AuthConfig, email: &str, ttl_secs: i64) -> anyhow::Result<String> {
        let mut claims = serde_json::json!({
            "email": email,
            "exp": (chrono::Utc::now().timestamp() + ttl_secs).max(0),
        });
        if let Some(iss) = &config.issuer {
            claims["iss"] = iss.as_str().into();
        }
        if let Some(aud) = &config.audience {
            claims["aud"] = aud.as_str().into();
        }
        let secret = config.jwt_secret.as_deref().expect("a test secret");
        Ok(encode_hs256(secret, &claims)?)
    }

    fn encode_hs256(
        secret: &str,
        claims: &serde_json::Value,
    ) -> jsonwebtoken::errors::Result<String> {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
    }

    fn config() -> AuthConfig {
        AuthConfig {
            jwt_secret: Some("secret".into()),
            jwks_url: None,
            email_claim: "email".into(),
            jwks_min_refresh: Duration::from_secs(60),
            issuer: Some("me".into()),
            audience: Some("chat".into()),
        }
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[tokio::test]
    async fn a_minted_token_verifies() {
        let auth = Authenticator::new(&config());
        let token = mint_token(&config(), "a@x.com", 60).unwrap();
        let user = auth
            .authenticate(&headers(&format!("bearer {token}")), None)
            .await
            .unwrap();
        assert_eq!(user.email, "a@x.com");
    }

    #[tokio::test]
    async fn expired_forged_foreign_and_claimless_tokens_are_refused() {
        let auth = Authenticator::new(&config());
        let expired = mint_token(&config(), "a@x.com", -120).unwrap();
        let forged = mint_token(
            &AuthConfig {
                jwt_secret: Some("other".into()),
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
        let no_audience = mint_token(
            &AuthConfig {
                audience: None,
                ..config()
            },
            "a@x.com",
            60,
        )
        .unwrap();
        let not_an_email = mint_token(&config(), "nobody", 60).unwrap();
        for token in [
            expired,
            forged,
            foreign,
            no_audience,
            not_an_email,
            "garbage".into(),
        ] {
            assert!(auth.verify(&token).await.is_err(), "{token}");
        }
    }

    #[tokio::test]
    async fn the_header_must_be_a_bearer_token() {
        let auth = Authenticator::new(&config());
        for bad in ["Basic abc", "Bearer", "Bearer   ", "token"] {
            assert!(
                auth.authenticate(&headers(bad), None).await.is_err(),
                "{bad}"
            );
        }
        assert!(auth.authenticate(&HeaderMap::new(), None).await.is_err());
    }

    #[tokio::test]
    async fn a_custom_email_claim_names_the_user() {
        let config = AuthConfig {
            email_claim: "https://example.com/email".into(),
            ..config()
        };
        let token = encode_hs256(
            "secret",
            &serde_json::json!({"https://example.com/email": "c@x.com", "exp": 4_000_000_000u64, "iss": "me", "aud": "chat"}),
        )
        .unwrap();
        assert_eq!(
            Authenticator::new(&config)
                .verify(&token)
                .await
                .unwrap()
                .email,
            "c@x.com"
        );
    }
}
