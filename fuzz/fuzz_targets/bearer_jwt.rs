//! `Authorization: Bearer <JWT>`: `bearer_token` and `Authenticator::verify` (HS256 with the
//! secret `fuzz`, no JWKS, so `verify` never awaits I/O).
//!
//! Inputs reach past the base64 layer: besides raw header values and tokens, tokens are
//! assembled from a header and claims (arbitrary text or structured JSON), optionally signed
//! with the right secret so that claim validation (`exp`, `nbf`, the email claim) is fuzzed
//! too.
//! Never panics; a token is accepted only if it is HS256, carries the HMAC of the secret and
//! names a valid email.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use shared::auth::{Authenticator, bearer_token};
use shared::config::AuthConfig;
use shared::domain::Email;

const SECRET: &str = "fuzz";

/// A well-formed header and claims object with arbitrary values.
#[derive(Arbitrary, Debug)]
struct Structured {
    alg: Alg,
    kid: Option<String>,
    typ: Option<String>,
    email: Option<Leaf>,
    exp: Option<Leaf>,
    nbf: Option<Leaf>,
    extra: Vec<(String, Leaf)>,
    sig: Vec<u8>,
    sign: bool,
}

#[derive(Arbitrary, Debug)]
enum Alg {
    Hs256,
    Hs384,
    Rs256,
    Es256,
    None,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Leaf {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    /// `now + offset` seconds: tokens near the validity window.
    Now(i32),
    Str(String),
    List(Vec<String>),
}

impl Leaf {
    fn json(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => json!(b),
            Self::U64(n) => json!(n),
            Self::I64(n) => json!(n),
            Self::F64(f) => json!(f),
            Self::Now(offset) => json!(now() + i64::from(*offset)),
            Self::Str(s) => json!(s),
            Self::List(items) => json!(items),
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn authenticator() -> &'static Authenticator {
    static AUTH: OnceLock<Authenticator> = OnceLock::new();
    AUTH.get_or_init(|| {
        Authenticator::new(&AuthConfig {
            jwt_secret: Some(SECRET.into()),
            jwks_url: None,
            email_claim: "email".into(),
            jwks_min_refresh: Duration::from_secs(60),
            issuer: None,
            audience: None,
        })
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

fn hmac(signing_input: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key size");
    mac.update(signing_input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn assemble(header: &[u8], claims: &[u8], sig: &[u8], sign: bool) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let sig = if sign {
        hmac(&signing_input)
    } else {
        sig.to_vec()
    };
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn verify(token: &str) {
    let Ok(user) = runtime().block_on(authenticator().verify(token)) else {
        return;
    };
    // Accepted: it must be an HS256 token carrying the secret's HMAC, naming a valid email.
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "accepted {token:?}");
    let lenient = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let header: Value = serde_json::from_slice(&lenient.decode(parts[0]).expect("header b64"))
        .expect("header json");
    assert_eq!(header["alg"], "HS256", "accepted {token:?}");
    let sig = lenient.decode(parts[2]).expect("signature b64");
    assert_eq!(
        sig,
        hmac(&format!("{}.{}", parts[0], parts[1])),
        "forged token accepted: {token:?}"
    );
    assert_eq!(
        Email::parse(&user.email).ok().map(Email::into_string),
        Some(user.email)
    );
}

// Input: a mode byte, then
// - `H<Authorization header value>`: what `bearer_token` yields is verified;
// - `T<token>`: a token as given (the stream's `?access_token=`);
// - `P<header json>\n<claims json>\n` signed with the secret, or `p<header>\n<claims>\n<sig>`
//   with the raw signature bytes: `base64url(header).base64url(claims).base64url(sig)`;
// - anything else: the rest as an arbitrary `Structured` header and claims.
fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode {
        b'H' => {
            if let Ok(token) = bearer_token(rest) {
                assert!(!token.is_empty() && token == token.trim());
                verify(token);
            }
        }
        b'T' => verify(&String::from_utf8_lossy(rest)),
        b'P' | b'p' => {
            let mut parts = rest.splitn(3, |&b| b == b'\n');
            let header = parts.next().unwrap_or_default();
            let claims = parts.next().unwrap_or_default();
            let sig = parts.next().unwrap_or_default();
            verify(&assemble(header, claims, sig, mode == b'P'));
        }
        _ => {
            if let Ok(s) = Structured::arbitrary_take_rest(Unstructured::new(rest)) {
                verify(&structured_token(s));
            }
        }
    }
});

fn structured_token(s: Structured) -> String {
    let alg = match s.alg {
        Alg::Hs256 => "HS256".to_owned(),
        Alg::Hs384 => "HS384".to_owned(),
        Alg::Rs256 => "RS256".to_owned(),
        Alg::Es256 => "ES256".to_owned(),
        Alg::None => "none".to_owned(),
        Alg::Other(alg) => alg,
    };
    let mut header = Map::new();
    header.insert("alg".into(), json!(alg));
    if let Some(kid) = s.kid {
        header.insert("kid".into(), json!(kid));
    }
    if let Some(typ) = s.typ {
        header.insert("typ".into(), json!(typ));
    }
    let mut claims = Map::new();
    for (key, value) in &s.extra {
        claims.insert(key.clone(), value.json());
    }
    for (key, value) in [("email", s.email), ("exp", s.exp), ("nbf", s.nbf)] {
        if let Some(value) = value {
            claims.insert(key.into(), value.json());
        }
    }
    let header = serde_json::to_vec(&header).expect("json");
    let claims = serde_json::to_vec(&claims).expect("json");
    assemble(&header, &claims, &s.sig, s.sign)
}
