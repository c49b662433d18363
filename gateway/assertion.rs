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
//! Signing uses ring (the same library as the TLS stack; its P-256 is constant-time and fast):
//! it runs on every forwarded request.

use crate::config::AssertionConfig;
use anyhow::{Context as _, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::Serialize;
use sha2::{Digest, Sha256};
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
        })
    }

    /// The JWKS the admin listener serves at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &[u8] {
        &self.jwks
    }

    /// A signed assertion (compact JWS) valid from now for the configured lifetime.
    pub fn sign(&self, claims: &AssertionClaims<'_>) -> Result<SignedAssertion> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let jti = uuid::Uuid::new_v4().hyphenated().to_string();
        let payload = serde_json::to_vec(&Timed {
            claims,
            iat: now,
            exp: now + self.lifetime.as_secs(),
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
}
