//! Phase *forward*, the gateway's word to the partner: `Doelbinding-Assertion`.
//!
//! For every forwarded request the gateway signs a short-lived JWT (ES256) stating who asks
//! (`sub`: the consumer's OIN) through whom (`iss`: the gateway's OIN), of whom (`aud`: the
//! partner's OIN), for which purpose, on which legal basis and processing activity, for which
//! case and about whom (`data_subject`, as the partner finds the person in its path). It is
//! bound to the client certificate the gateway presents to that partner (`cnf.x5t#S256`,
//! RFC 8705), so it is worthless on any other connection, and it has its own `jti`, which the
//! audit record names; the per-exchange link is `Fsc-Transaction-Id` (SPEC §2). The partner —
//! or its inway Doelpoort (SPEC §10) — checks it against the gateway's public keys, which the
//! admin listener serves as a JWKS.
//!
//! Key rotation: `assertions.keys` lists PEM files; the first signs, all are published. Add
//! the new key second, let partners refresh the JWKS, move it first, later drop the old one.
//! Without configured keys the gateway makes an ephemeral key at start (and warns): partners
//! that fetch the JWKS keep working, pinned keys do not survive a restart.
//!
//! Signing uses ring (the same library as the TLS stack; its P-256 is constant-time), ~20 µs of
//! CPU. So an assertion is signed per exchange *context* (SPEC §2), not per exchange: a bounded
//! cache keyed by everything the assertion states (consumer, partner, purpose, legal basis,
//! processing activity, case, data subject, certificate) hands the same assertion to further
//! exchanges in that context while at least half its life remains, and never past the end of
//! the grant it was decided under. Another context, even one differing only in the person or
//! the case, gets its own assertion; `assertions.cache_size: 0` signs every exchange.

use crate::config::AssertionConfig;
use anyhow::{Context as _, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The gateway's assertion keys and its published JWKS.
pub struct AssertionSigner {
    /// The signing key and the JWT header that names it, pre-encoded.
    active: EcdsaKeyPair,
    header_b64: String,
    lifetime: Duration,
    /// `{"keys":[…]}` with every configured key, rendered once.
    jwks: Vec<u8>,
    rng: SystemRandom,
    /// Assertions by the claims they state (serialised), for reuse within their context.
    cache: Mutex<Contexts>,
    cache_size: usize,
}

#[derive(Default)]
struct Contexts {
    by_claims: HashMap<Vec<u8>, Cached>,
    /// The soonest `reuse_until` among them: while it lies ahead, a full cache has nothing to
    /// evict, and is not scanned.
    soonest: u64,
}

/// A signed assertion kept for its context.
#[derive(Clone)]
struct Cached {
    token: String,
    jti: String,
    /// Reused until then: half its life (which ends with the grant, if that is sooner).
    reuse_until: u64,
}

/// What one assertion states (`iat`, `exp` and `jti` are added by [`AssertionSigner::sign`]).
#[derive(Debug, Serialize)]
pub struct AssertionClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub aud: &'a str,
    pub purpose: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legal_basis: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing_activity: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case_id: Option<&'a str>,
    /// `bsn=<BSN>`, as the caller declared it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_subject: Option<&'a str>,
    /// The certificate the gateway presents to the partner.
    pub cnf: Confirmation<'a>,
}

/// RFC 8705 §3.1, borrowed: serialised on every forwarded request, without a copy (the owned
/// form that tokens are read into is [`crate::token::Confirmation`]).
#[derive(Debug, Serialize)]
pub struct Confirmation<'a> {
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: &'a str,
}

/// A signed assertion and its id.
pub struct SignedAssertion {
    pub token: String,
    pub jti: String,
}

#[derive(Serialize)]
struct Timed<'a> {
    #[serde(flatten)]
    claims: &'a AssertionClaims<'a>,
    iat: u64,
    exp: u64,
    jti: &'a str,
}

/// One public key as a JWK (RFC 7517), with its RFC 7638 thumbprint as `kid`.
fn jwk(key: &EcdsaKeyPair) -> serde_json::Value {
    // An uncompressed P-256 point: 0x04 ‖ x (32 bytes) ‖ y (32 bytes).
    let point = key.public_key().as_ref();
    let (x, y) = (
        URL_SAFE_NO_PAD.encode(&point[1..33]),
        URL_SAFE_NO_PAD.encode(&point[33..65]),
    );
    serde_json::json!({
        "kty": "EC", "crv": "P-256", "x": x, "y": y,
        "kid": kid(key), "use": "sig", "alg": "ES256",
    })
}

/// RFC 7638: base64url SHA-256 of the required members in lexicographic order.
fn kid(key: &EcdsaKeyPair) -> String {
    let point = key.public_key().as_ref();
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(&point[1..33]),
        URL_SAFE_NO_PAD.encode(&point[33..65])
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn load_key(path: &std::path::Path, rng: &SystemRandom) -> Result<EcdsaKeyPair> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_file(path).with_context(|| {
        format!(
            "{}: expected a PKCS#8 PEM EC P-256 private key (convert with `openssl pkcs8 -topk8 -nocrypt`)",
            path.display()
        )
    })?;
    EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        der.secret_pkcs8_der(),
        rng,
    )
    .map_err(|e| anyhow::anyhow!("{}: not an EC P-256 key ({e})", path.display()))
}

impl AssertionSigner {
    pub fn load(config: Option<&AssertionConfig>) -> Result<Self> {
        let rng = SystemRandom::new();
        let cache_size = config.map_or(AssertionConfig::DEFAULT_CACHE_SIZE, |c| c.cache_size);
        let (keys, lifetime) = match config {
            Some(c) if !c.keys.is_empty() => (
                c.keys
                    .iter()
                    .map(|p| load_key(p, &rng))
                    .collect::<Result<Vec<_>>>()?,
                c.lifetime,
            ),
            other => {
                tracing::warn!("no assertions.keys configured: signing assertions with an ephemeral key (partners must fetch the JWKS after every restart)");
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| anyhow::anyhow!("cannot generate an assertion key"))?;
                let key = EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    pkcs8.as_ref(),
                    &rng,
                )
                .map_err(|_| anyhow::anyhow!("cannot use the generated assertion key"))?;
                (
                    vec![key],
                    other.map_or(Duration::from_secs(60), |c| c.lifetime),
                )
            }
        };
        let jwks = serde_json::to_vec(&serde_json::json!({
            "keys": keys.iter().map(jwk).collect::<Vec<_>>()
        }))?;
        let mut keys = keys.into_iter();
        let active = keys.next().context("no assertion key")?;
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": kid(&active)});
        Ok(Self {
            header_b64: URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
            active,
            lifetime,
            jwks,
            rng,
            cache: Mutex::new(Contexts::default()),
            cache_size,
        })
    }

    /// The JWKS the admin listener serves at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &[u8] {
        &self.jwks
    }

    /// A signed assertion (compact JWS) valid from now for the configured lifetime.
    pub fn sign(&self, claims: &AssertionClaims<'_>) -> Result<SignedAssertion> {
        let now = unix_now();
        self.sign_until(claims, now, now + self.lifetime.as_secs())
    }

    /// The assertion for this exchange's context: the one already signed for it while at least
    /// half its life remains, else a new one. `not_after` (unix seconds) is when the grant the
    /// exchange was decided under ends: no assertion is valid past it.
    pub fn for_context(
        &self,
        claims: &AssertionClaims<'_>,
        not_after: Option<u64>,
    ) -> Result<SignedAssertion> {
        let now = unix_now();
        let exp = (now + self.lifetime.as_secs()).min(not_after.unwrap_or(u64::MAX));
        if self.cache_size == 0 || exp <= now {
            return self.sign_until(claims, now, exp.max(now + 1));
        }
        let key = serde_json::to_vec(claims)?;
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = cache.by_claims.get(&key).filter(|c| now < c.reuse_until) {
                return Ok(SignedAssertion {
                    token: c.token.clone(),
                    jti: c.jti.clone(),
                });
            }
        }
        let signed = self.sign_until(claims, now, exp)?;
        let reuse_until = now + (exp - now).div_ceil(2);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.by_claims.len() >= self.cache_size && cache.soonest <= now {
            // Bounded: expired contexts make room. While every slot holds a live context, a
            // new one is signed per exchange rather than evicting one in use.
            cache.by_claims.retain(|_, c| now < c.reuse_until);
            cache.soonest = cache
                .by_claims
                .values()
                .map(|c| c.reuse_until)
                .min()
                .unwrap_or(u64::MAX);
        }
        if cache.by_claims.len() < self.cache_size {
            cache.soonest = if cache.by_claims.is_empty() {
                reuse_until
            } else {
                cache.soonest.min(reuse_until)
            };
            cache.by_claims.insert(
                key,
                Cached {
                    token: signed.token.clone(),
                    jti: signed.jti.clone(),
                    reuse_until,
                },
            );
        }
        Ok(signed)
    }

    /// How many contexts hold an assertion now (for tests and the benchmark).
    pub fn cached_contexts(&self) -> usize {
        self.cache.lock().map(|c| c.by_claims.len()).unwrap_or(0)
    }

    fn sign_until(
        &self,
        claims: &AssertionClaims<'_>,
        now: u64,
        exp: u64,
    ) -> Result<SignedAssertion> {
        let jti = uuid::Uuid::new_v4().hyphenated().to_string();
        let payload = serde_json::to_vec(&Timed {
            claims,
            iat: now,
            exp,
            jti: &jti,
        })?;
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 100);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = self
            .active
            .sign(&self.rng, token.as_bytes())
            .map_err(|_| anyhow::anyhow!("signing the assertion failed"))?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);
        Ok(SignedAssertion { token, jti })
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    fn claims() -> AssertionClaims<'static> {
        AssertionClaims {
            iss: "00000001999990000000",
            sub: "00000001999990001000",
            aud: "00000001999990011000",
            purpose: "wams-onderzoek",
            legal_basis: Some("AVG art. 6(1)(e)"),
            processing_activity: Some("https://register.example/x"),
            case_id: Some("casus-1"),
            data_subject: Some("bsn=999990019"),
            cnf: Confirmation {
                x5t_s256: "DpAyDYakmVAQ4oOJC3UYLRk_ONRCqMj00TeGJemMiLA",
            },
        }
    }

    #[test]
    fn assertions_verify_against_the_published_jwks() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for name in ["new.pem", "old.pem"] {
            let (private, _) = crate::pki::signing_key_pair().unwrap();
            std::fs::write(dir.path().join(name), private).unwrap();
            paths.push(dir.path().join(name));
        }
        let signer = AssertionSigner::load(Some(&AssertionConfig {
            keys: paths,
            lifetime: Duration::from_secs(30),
            cache_size: 0,
        }))
        .unwrap();
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(signer.jwks()).unwrap();
        assert_eq!(
            jwks.keys.len(),
            2,
            "both keys are published during a rollover"
        );
        let signed = signer.sign(&claims()).unwrap();
        let token = signed.token;
        let header = jsonwebtoken::decode_header(&token).unwrap();
        let key = jwks
            .find(header.kid.as_deref().unwrap())
            .expect("signed by a published key");
        assert_eq!(
            key.common.key_id, jwks.keys[0].common.key_id,
            "the first key signs"
        );
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&["00000001999990011000"]);
        validation.set_issuer(&["00000001999990000000"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_jwk(key).unwrap(),
            &validation,
        )
        .unwrap();
        let c = data.claims;
        assert_eq!(c["sub"], "00000001999990001000");
        assert_eq!(c["purpose"], "wams-onderzoek");
        assert_eq!(c["jti"], signed.jti.as_str());
        assert_eq!(c["data_subject"], "bsn=999990019");
        assert_eq!(
            c["cnf"]["x5t#S256"],
            "DpAyDYakmVAQ4oOJC3UYLRk_ONRCqMj00TeGJemMiLA"
        );
        assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 30);
        // Another key cannot have signed it.
        let other = &jwks.keys[1];
        assert!(jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_jwk(other).unwrap(),
            &validation
        )
        .is_err());
    }

    #[test]
    fn without_keys_an_ephemeral_key_signs() {
        let signer = AssertionSigner::load(None).unwrap();
        let token = signer.sign(&claims()).unwrap().token;
        assert_eq!(token.split('.').count(), 3);
    }

    /// A signer with a key of its own, a 60 s lifetime and this cache size.
    fn keyed_signer(cache_size: usize) -> AssertionSigner {
        let dir = tempfile::tempdir().unwrap();
        let (private, _) = crate::pki::signing_key_pair().unwrap();
        std::fs::write(dir.path().join("k.pem"), private).unwrap();
        AssertionSigner::load(Some(&AssertionConfig {
            keys: vec![dir.path().join("k.pem")],
            lifetime: Duration::from_secs(60),
            cache_size,
        }))
        .unwrap()
    }

    fn exp_of(token: &str) -> u64 {
        let payload = token.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims["exp"].as_u64().unwrap()
    }

    #[test]
    fn one_context_reuses_its_assertion_and_another_context_never_does() {
        let signer = AssertionSigner::load(None).unwrap();
        let first = signer.for_context(&claims(), None).unwrap();
        let again = signer.for_context(&claims(), None).unwrap();
        assert_eq!(
            (first.token.as_str(), first.jti.as_str()),
            (again.token.as_str(), again.jti.as_str())
        );
        // Any difference in what the assertion states is another context.
        let mut other_person = claims();
        other_person.data_subject = Some("bsn=999990020");
        let mut other_case = claims();
        other_case.case_id = Some("casus-2");
        let mut other_purpose = claims();
        other_purpose.purpose = "wams-coordinatie";
        let mut other_partner = claims();
        other_partner.aud = "00000001999990012000";
        for other in [other_person, other_case, other_purpose, other_partner] {
            let signed = signer.for_context(&other, None).unwrap();
            assert_ne!(signed.jti, first.jti);
        }
        assert_eq!(signer.cached_contexts(), 5);
    }

    #[test]
    fn an_assertion_never_outlives_its_grant_and_the_cache_is_bounded() {
        let signer = keyed_signer(2);
        let now = unix_now();
        let ending = signer.for_context(&claims(), Some(now + 10)).unwrap();
        assert!(
            exp_of(&ending.token) <= now + 11,
            "not past the grant's end"
        );
        let mut c2 = claims();
        c2.case_id = Some("casus-2");
        let mut c3 = claims();
        c3.case_id = Some("casus-3");
        signer.for_context(&c2, None).unwrap();
        // Full with live contexts: a third context is signed, not cached.
        let third = signer.for_context(&c3, None).unwrap();
        assert_eq!(signer.cached_contexts(), 2);
        assert_ne!(signer.for_context(&c3, None).unwrap().jti, third.jti);
        // A grant that has ended gets a one-second assertion, never a cached one.
        let ended = signer.for_context(&claims(), Some(now - 1)).unwrap();
        assert_ne!(ended.jti, ending.jti);
        assert!(exp_of(&ended.token) <= now + 2);
    }

    #[test]
    fn without_a_cache_every_exchange_is_signed() {
        let signer = keyed_signer(0);
        let a = signer.for_context(&claims(), None).unwrap();
        let b = signer.for_context(&claims(), None).unwrap();
        assert_ne!(a.jti, b.jti);
        assert_eq!(signer.cached_contexts(), 0);
    }
}
