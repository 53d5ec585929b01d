//! Token minting for the dev server's `POST /api/dev/token`, the tests and the printed dev
//! token. The product only verifies tokens (`shared::auth`); in production the team's own
//! identity provider issues them.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use shared::config::AuthConfig;

#[derive(Debug, Serialize)]
struct Claims<'a> {
    email: &'a str,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// Mints an HS256 token for `email`, valid for `ttl_secs` (negative: already expired), with
/// the configured issuer and audience, so `shared::auth::Authenticator` accepts it.
pub fn mint_token(config: &AuthConfig, email: &str, ttl_secs: i64) -> anyhow::Result<String> {
    let secret = config
        .jwt_secret
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("AUTH_JWT_SECRET is not set"))?;
    let claims = Claims {
        email,
        exp: (chrono::Utc::now().timestamp() + ttl_secs).max(0) as u64,
        iss: config.issuer.as_deref(),
        aud: config.audience.as_deref(),
    };
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shared::auth::Authenticator;

    use super::*;

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

    #[tokio::test]
    async fn a_minted_token_verifies_and_an_expired_one_does_not() {
        let auth = Authenticator::new(&config());
        let token = mint_token(&config(), "a@x.com", 60).unwrap();
        assert_eq!(auth.verify(&token).await.unwrap().email, "a@x.com");
        let expired = mint_token(&config(), "a@x.com", -120).unwrap();
        assert!(auth.verify(&expired).await.is_err());
    }

    #[test]
    fn minting_needs_a_secret() {
        let config = AuthConfig {
            jwt_secret: None,
            ..config()
        };
        assert!(mint_token(&config, "a@x.com", 60).is_err());
    }
}
