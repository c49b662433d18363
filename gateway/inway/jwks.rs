//! A calling gateway's assertion keys, fetched from its JWKS and cached.
//!
//! Keys are fetched at start (in the background: the calling gateway may start later), again
//! every [`REFRESH_EVERY`], and at once when an assertion names a key id the cache does not
//! hold — that is how a rotation reaches the inway without a restart — but at most once per
//! [`MIN_REFETCH`], so assertions with made-up key ids cannot make the inway hammer the other
//! gateway. A failed fetch keeps the keys in force; no keys at all means every assertion is
//! refused (fail closed).

use crate::config::PeerAssertions;
use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::DecodingKey;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the keys are fetched again while all is well.
pub const REFRESH_EVERY: Duration = Duration::from_secs(300);
/// The least time between two fetches caused by unknown key ids.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);
/// The same while no keys are known at all (the calling gateway may have started after the
/// inway): sooner, so the first exchanges do not wait for the next refresh.
pub const MIN_REFETCH_WITHOUT_KEYS: Duration = Duration::from_secs(1);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_JWKS_BYTES: usize = 64 * 1024;

/// The keys one calling gateway publishes.
pub struct PeerKeys {
    source: http::Uri,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    keys: arc_swap::ArcSwap<HashMap<String, DecodingKey>>,
    /// When the last fetch for an unknown key id started (successful or not).
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl PeerKeys {
    pub fn new(config: &PeerAssertions) -> Result<Self> {
        let roots = crate::tls::root_store(&config.trust)?;
        let tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(FETCH_TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            // Plain http:// is accepted by the configuration only on loopback.
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            source: config.jwks.clone(),
            client: Client::builder(TokioExecutor::new()).build(connector),
            keys: Default::default(),
            last_fetch: tokio::sync::Mutex::new(None),
        })
    }

    /// The key with id `kid`: from the cache, or after fetching the JWKS again if the cache
    /// does not hold it (and the last fetch is long enough ago).
    pub async fn key(&self, kid: &str) -> Option<DecodingKey> {
        if let Some(key) = self.keys.load().get(kid) {
            return Some(key.clone());
        }
        let mut last = self.last_fetch.lock().await;
        // Another exchange may have fetched while this one waited.
        if let Some(key) = self.keys.load().get(kid) {
            return Some(key.clone());
        }
        let wait = if self.keys.load().is_empty() {
            MIN_REFETCH_WITHOUT_KEYS
        } else {
            MIN_REFETCH
        };
        if last.is_some_and(|at| at.elapsed() < wait) {
            return None;
        }
        *last = Some(Instant::now());
        self.refresh().await;
        self.keys.load().get(kid).cloned()
    }

    /// Fetches the JWKS and replaces the cached keys; a failure keeps them (and is logged).
    pub async fn refresh(&self) {
        match self.fetch().await {
            Ok(keys) => {
                tracing::debug!(source = %self.source, keys = keys.len(), "assertion keys fetched");
                self.keys.store(Arc::new(keys));
            }
            Err(e) => tracing::warn!(
                source = %self.source,
                error = %format!("{e:#}"),
                "the calling gateway's assertion keys could not be fetched; the keys in force stay"
            ),
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>> {
        let request = http::Request::get(self.source.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())?;
        let body = tokio::time::timeout(FETCH_TIMEOUT, async {
            let response = self.client.request(request).await?;
            anyhow::ensure!(
                response.status().is_success(),
                "the JWKS address answered {}",
                response.status()
            );
            let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
                .collect()
                .await
                .map_err(|e| anyhow::anyhow!("reading the JWKS: {e}"))?
                .to_bytes();
            Ok::<_, anyhow::Error>(body)
        })
        .await
        .context("the JWKS address did not answer in time")??;
        parse(&body)
    }

    /// Fetches now and then every [`REFRESH_EVERY`] until the task is aborted.
    pub fn spawn_refresher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let keys = self.clone();
        tokio::spawn(async move {
            loop {
                keys.refresh().await;
                tokio::time::sleep(REFRESH_EVERY).await;
            }
        })
    }
}

/// The ES256 signing keys of a JWKS, by key id. Keys of other kinds, without an id, or for
/// another use are left out: assertions are ES256 and name their key.
fn parse(body: &[u8]) -> Result<HashMap<String, DecodingKey>> {
    let set: JwkSet = serde_json::from_slice(body).context("the JWKS is not a JWK set")?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let (Some(kid), AlgorithmParameters::EllipticCurve(ec)) =
            (&jwk.common.key_id, &jwk.algorithm)
        else {
            continue;
        };
        let signing = jwk
            .common
            .public_key_use
            .as_ref()
            .is_none_or(|u| *u == jsonwebtoken::jwk::PublicKeyUse::Signature);
        if ec.curve != EllipticCurve::P256 || !signing {
            continue;
        }
        if let Ok(key) = DecodingKey::from_jwk(jwk) {
            keys.insert(kid.clone(), key);
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_named_p256_signing_keys_are_kept() {
        let jwks = br#"{"keys":[
          {"kty":"EC","crv":"P-256","kid":"a","use":"sig","alg":"ES256",
           "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
          {"kty":"EC","crv":"P-256","use":"sig",
           "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
          {"kty":"EC","crv":"P-256","kid":"enc","use":"enc",
           "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
        ]}"#;
        let keys = parse(jwks).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["a"]);
        assert!(parse(b"{\"nokeys\":1}").is_err());
    }
}
