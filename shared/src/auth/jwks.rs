//! The identity provider's public keys, fetched from `AUTH_JWKS_URL` and cached per process.
//! An unknown key id triggers a refetch, at most once per `jwks_min_refresh`; a failed fetch
//! keeps the keys already cached, so a JWKS outage does not take the API down.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use anyhow::Context;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Mutex;

const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

pub struct KeyCache {
    url: String,
    min_refresh: Duration,
    client: reqwest::Client,
    keys: RwLock<HashMap<String, (Algorithm, DecodingKey)>>,
    /// When the last fetch started; also serialises fetches (one in flight per process).
    last_fetch: Mutex<Option<Instant>>,
}

impl KeyCache {
    pub fn new(url: String, min_refresh: Duration) -> Self {
        Self {
            url,
            min_refresh,
            client: reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .build()
                .unwrap_or_default(),
            keys: RwLock::new(HashMap::new()),
            last_fetch: Mutex::new(None),
        }
    }

    /// The key with this id, usable with `alg`, fetching the set when the id is unknown
    /// (and the last fetch is old enough).
    pub async fn key(&self, kid: &str, alg: Algorithm) -> Option<DecodingKey> {
        if let Some(key) = self.cached(kid, alg) {
            return Some(key);
        }
        let mut last_fetch = self.last_fetch.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.cached(kid, alg) {
            return Some(key);
        }
        if last_fetch.is_some_and(|at| at.elapsed() < self.min_refresh) {
            return None;
        }
        *last_fetch = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "fetched JWKS");
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
            }
            Err(err) => tracing::warn!(
                error = format!("{err:#}"),
                "JWKS fetch failed; keeping cached keys"
            ),
        }
        drop(last_fetch);
        self.cached(kid, alg)
    }

    fn cached(&self, kid: &str, alg: Algorithm) -> Option<DecodingKey> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.get(kid)
            .filter(|(key_alg, _)| *key_alg == alg)
            .map(|(_, key)| key.clone())
    }

    async fn fetch(&self) -> anyhow::Result<HashMap<String, (Algorithm, DecodingKey)>> {
        let set: JwkSet = self
            .client
            .get(&self.url)
            .send()
            .await
            .context("GET JWKS")?
            .error_for_status()
            .context("GET JWKS")?
            .json()
            .await
            .context("parse JWKS")?;
        Ok(set.keys.iter().filter_map(usable).collect())
    }
}

/// A signing key we accept: RS256 (RSA) or ES256 (EC P-256), with a key id, whose declared
/// `alg` (when present) agrees with its type.
fn usable(jwk: &Jwk) -> Option<(String, (Algorithm, DecodingKey))> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let kid = jwk.common.key_id.clone()?;
    let alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        _ => return None,
    };
    let declared_ok = match jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::RS256) => alg == Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => alg == Algorithm::ES256,
        Some(_) => false,
    };
    if !declared_ok {
        return None;
    }
    Some((kid, (alg, DecodingKey::from_jwk(jwk).ok()?)))
}
