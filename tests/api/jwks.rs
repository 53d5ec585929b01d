//! JWKS (RS256/ES256) verification against a JWKS server started in the test.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, assert_error};

const ISSUER: &str = "https://idp.example.com/";
const AUDIENCE: &str = "chat-api";

struct RsaKey {
    kid: String,
    private: rsa::RsaPrivateKey,
}

impl RsaKey {
    fn generate(kid: &str) -> Self {
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        Self {
            kid: kid.into(),
            private,
        }
    }

    fn jwk(&self) -> Value {
        let public = self.private.to_public_key();
        json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        })
    }

    fn encoding_key(&self) -> EncodingKey {
        EncodingKey::from_rsa_pem(
            self.private
                .to_pkcs8_pem(LineEnding::LF)
                .unwrap()
                .as_bytes(),
        )
        .unwrap()
    }

    fn public_pem(&self) -> String {
        self.private
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    }
}

struct EcKey {
    kid: String,
    secret: p256::SecretKey,
}

impl EcKey {
    fn generate(kid: &str) -> Self {
        Self {
            kid: kid.into(),
            secret: p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng),
        }
    }

    fn jwk(&self) -> Value {
        let mut jwk: Value =
            serde_json::from_str(&self.secret.public_key().to_jwk_string()).unwrap();
        jwk["kid"] = json!(self.kid);
        jwk["alg"] = json!("ES256");
        jwk["use"] = json!("sig");
        jwk
    }

    fn encoding_key(&self) -> EncodingKey {
        EncodingKey::from_ec_pem(
            self.secret
                .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
                .unwrap()
                .as_bytes(),
        )
        .unwrap()
    }
}

/// A JWKS endpoint: serves `keys`, counts fetches, and can be taken down.
struct JwksServer {
    url: String,
    keys: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

impl JwksServer {
    async fn start(keys: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let (k, f, d) = (keys.clone(), fetches.clone(), down.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (k, f, d) = (k.clone(), f.clone(), d.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let _ = socket.read(&mut buf).await;
                    f.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = if d.load(Ordering::SeqCst) {
                        ("503 Service Unavailable", "down".to_owned())
                    } else {
                        ("200 OK", k.lock().unwrap().to_string())
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        Self {
            url,
            keys,
            fetches,
            down,
        }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn claims(extra: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({"email": "idp-user@example.com", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, "iat": now});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

struct Setup {
    app: TestApp,
    jwks: JwksServer,
    rsa: RsaKey,
    ec: EcKey,
}

async fn setup(min_refresh: Duration) -> Setup {
    let rsa = RsaKey::generate("rsa-1");
    let ec = EcKey::generate("ec-1");
    let jwks = JwksServer::start(json!({"keys": [rsa.jwk(), ec.jwk()]})).await;
    let url = jwks.url.clone();
    let app = TestApp::spawn_with(move |c| {
        c.auth.jwks_url = Some(url);
        c.auth.jwks_min_refresh = min_refresh;
        c.auth.issuer = Some(ISSUER.into());
        c.auth.audience = Some(AUDIENCE.into());
    })
    .await;
    Setup { app, jwks, rsa, ec }
}

async fn rooms_with(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .get(app.url("/api/rooms"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn rs256_and_es256_tokens_from_the_jwks_are_accepted_and_keys_are_cached() {
    let s = setup(Duration::from_secs(60)).await;
    let rs = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &s.rsa.encoding_key(),
        &claims(json!({})),
    );
    let es = sign(
        Algorithm::ES256,
        Some("ec-1"),
        &s.ec.encoding_key(),
        &claims(json!({})),
    );
    for token in [&rs, &es, &rs, &es] {
        assert_eq!(rooms_with(&s.app, token).await.status(), StatusCode::OK);
    }
    // The identity is the token's email: a room it creates is owned by it.
    let room: Value = s
        .app
        .client
        .post(s.app.url("/api/rooms"))
        .bearer_auth(&rs)
        .json(&json!({"id": "idp-room"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(room["id"], "idp-room");
    assert_eq!(s.jwks.fetches(), 1, "keys are fetched once and cached");
}

#[tokio::test]
async fn bad_tokens_are_401_whatever_is_wrong_with_them() {
    let s = setup(Duration::from_secs(60)).await;
    let rsa = s.rsa.encoding_key();
    let ec = s.ec.encoding_key();
    let now = chrono::Utc::now().timestamp();
    let stranger = RsaKey::generate("rsa-1");
    let hs_with_public_key = EncodingKey::from_secret(s.rsa.public_pem().as_bytes());
    let unsigned = {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"rsa-1"}"#);
        let body = URL_SAFE_NO_PAD.encode(claims(json!({})).to_string());
        format!("{header}.{body}.")
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "unknown kid",
            sign(Algorithm::RS256, Some("nope"), &rsa, &claims(json!({}))),
        ),
        (
            "no kid",
            sign(Algorithm::RS256, None, &rsa, &claims(json!({}))),
        ),
        ("alg none", unsigned),
        (
            "HS256 signed with the RSA public key (alg confusion)",
            sign(
                Algorithm::HS256,
                Some("rsa-1"),
                &hs_with_public_key,
                &claims(json!({})),
            ),
        ),
        (
            "RS256 from another key under the same kid",
            sign(
                Algorithm::RS256,
                Some("rsa-1"),
                &stranger.encoding_key(),
                &claims(json!({})),
            ),
        ),
        (
            "ES256 naming the RSA kid",
            sign(Algorithm::ES256, Some("rsa-1"), &ec, &claims(json!({}))),
        ),
        (
            "RS256 naming the EC kid",
            sign(Algorithm::RS256, Some("ec-1"), &rsa, &claims(json!({}))),
        ),
        (
            "expired",
            sign(
                Algorithm::RS256,
                Some("rsa-1"),
                &rsa,
                &claims(json!({"exp": now - 600})),
            ),
        ),
        (
            "not yet valid (nbf)",
            sign(
                Algorithm::RS256,
                Some("rsa-1"),
                &rsa,
                &claims(json!({"nbf": now + 600})),
            ),
        ),
        (
            "wrong issuer",
            sign(
                Algorithm::ES256,
                Some("ec-1"),
                &ec,
                &claims(json!({"iss": "https://evil.example.com/"})),
            ),
        ),
        (
            "wrong audience",
            sign(
                Algorithm::ES256,
                Some("ec-1"),
                &ec,
                &claims(json!({"aud": "other-api"})),
            ),
        ),
        (
            "no email",
            sign(
                Algorithm::RS256,
                Some("rsa-1"),
                &rsa,
                &claims(json!({"email": null})),
            ),
        ),
    ];
    for (case, token) in cases {
        let response = rooms_with(&s.app, &token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
        assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    // The unknown kids fetched the set once at most: the rest waited out the minute.
    assert!(s.jwks.fetches() <= 1, "{} fetches", s.jwks.fetches());
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_keys_at_most_once_per_interval() {
    let s = setup(Duration::from_millis(500)).await;
    let rotated = RsaKey::generate("rsa-2");
    let token = sign(
        Algorithm::RS256,
        Some("rsa-2"),
        &rotated.encoding_key(),
        &claims(json!({})),
    );
    assert_eq!(
        rooms_with(&s.app, &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(s.jwks.fetches(), 1);
    // The provider rotates its keys.
    *s.jwks.keys.lock().unwrap() = json!({"keys": [s.rsa.jwk(), rotated.jwk()]});
    // Within the interval the cache is not refetched, however many unknown kids arrive.
    for _ in 0..5 {
        assert_eq!(
            rooms_with(&s.app, &token).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(s.jwks.fetches(), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rooms_with(&s.app, &token).await.status(), StatusCode::OK);
    assert_eq!(s.jwks.fetches(), 2);
}

#[tokio::test]
async fn a_jwks_outage_keeps_cached_keys_working() {
    let s = setup(Duration::from_millis(100)).await;
    let token = sign(
        Algorithm::ES256,
        Some("ec-1"),
        &s.ec.encoding_key(),
        &claims(json!({})),
    );
    assert_eq!(rooms_with(&s.app, &token).await.status(), StatusCode::OK);
    s.jwks.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    // An unknown kid makes it refetch, which fails...
    let unknown = sign(
        Algorithm::RS256,
        Some("nope"),
        &s.rsa.encoding_key(),
        &claims(json!({})),
    );
    assert_eq!(
        rooms_with(&s.app, &unknown).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(s.jwks.fetches(), 2);
    // ...and the cached keys still verify.
    assert_eq!(rooms_with(&s.app, &token).await.status(), StatusCode::OK);
    let rs = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &s.rsa.encoding_key(),
        &claims(json!({})),
    );
    assert_eq!(rooms_with(&s.app, &rs).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn hs256_tokens_keep_working_alongside_the_jwks() {
    let s = setup(Duration::from_secs(60)).await;
    let token = s.app.token("hs-user@example.com");
    assert_eq!(rooms_with(&s.app, &token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_custom_email_claim_is_the_identity() {
    let ec = EcKey::generate("ec-1");
    let jwks = JwksServer::start(json!({"keys": [ec.jwk()]})).await;
    let url = jwks.url.clone();
    let app = TestApp::spawn_with(move |c| {
        c.auth.jwks_url = Some(url);
        c.auth.email_claim = "https://chat.example.com/email".into();
    })
    .await;
    let now = chrono::Utc::now().timestamp();
    let token = sign(
        Algorithm::ES256,
        Some("ec-1"),
        &ec.encoding_key(),
        &json!({"sub": "user_123", "https://chat.example.com/email": "clerk-user@example.com", "exp": now + 600}),
    );
    // A token whose email sits under the default claim name identifies nobody here.
    assert_eq!(
        rooms_with(&app, &app.token("a@x.com")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let created = app
        .client
        .post(app.url("/api/rooms"))
        .bearer_auth(&token)
        .json(&json!({"id": "general"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let message: Value = app
        .client
        .post(app.url("/api/rooms/general/messages"))
        .bearer_auth(&token)
        .json(&json!({"content": "hi"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(message["user_email"], "clerk-user@example.com");
}
