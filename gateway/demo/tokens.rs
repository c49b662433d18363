//! The demo's signed tokens: a demo identity provider that vouches for the example consumers'
//! employees (`doelpoort token`), and the mock partners' side of the assertion contract.
//!
//! Example keys only, in `certs-example/tokens/` and `certs-example/assertion/`, made by
//! `doelpoort certs generate` next to the example certificates.

use super::MockHandler;
use crate::identity::Fingerprint;
use anyhow::{Context as _, Result};
use http::StatusCode;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// `iss` of the demo identity provider's tokens.
pub const DEMO_ISSUER: &str = "https://idp.demo.example";
/// `aud` the demo gateway expects in caller tokens.
pub const DEMO_AUDIENCE: &str = "urn:doelpoort:demo";

/// The demo issuer's private key (PKCS#8 PEM) and public key.
pub fn issuer_key(certs: &Path) -> PathBuf {
    certs.join("tokens").join("demo-idp.key")
}

pub fn issuer_public_key(certs: &Path) -> PathBuf {
    certs.join("tokens").join("demo-idp.pub.pem")
}

/// The gateway's example assertion signing key.
pub fn assertion_key(certs: &Path) -> PathBuf {
    certs.join("assertion").join("gateway-assertion.key")
}

/// What a demo token says (see [`crate::token`] for how the gateway checks it).
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    pub consumer: String,
    pub actor: String,
    pub purpose: Option<String>,
    pub case_id: Option<String>,
    /// A BSN.
    pub subject: Option<String>,
    pub approved_by: Option<String>,
    pub approver_role: Option<String>,
    pub case_partners: Vec<String>,
    /// With an approval: the operation it approves (`<partner>/<operation>`) and the request
    /// body it approves (its canonical SHA-256 goes into the token).
    pub approves_operation: Option<String>,
    pub approves_body: Option<serde_json::Value>,
    pub valid_for: Duration,
}

/// Signs a caller token for `request.consumer`'s example certificate with the demo issuer.
pub fn demo_token(certs: &Path, request: &TokenRequest) -> Result<String> {
    let cert = certs
        .join("clients")
        .join(format!("{}.crt", request.consumer));
    let chain = crate::tls::load_certificates(&cert).with_context(|| {
        format!(
            "no example certificate for consumer '{}' in {}",
            request.consumer,
            certs.join("clients").display()
        )
    })?;
    let leaf = chain.first().context("empty certificate file")?;
    let cnf = crate::token::thumbprint(&Fingerprint::of_der(leaf.as_ref()));
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = json!({
        "iss": DEMO_ISSUER,
        "aud": DEMO_AUDIENCE,
        "sub": request.actor,
        "iat": now,
        "exp": now + request.valid_for.as_secs().max(1),
        "cnf": {"x5t#S256": cnf},
    });
    if let Some(p) = &request.purpose {
        claims["purpose"] = json!(p);
    }
    if let Some(c) = &request.case_id {
        claims["case_id"] = json!(c);
    }
    if let Some(bsn) = &request.subject {
        crate::context::Bsn::parse(bsn).map_err(|why| anyhow::anyhow!("--subject: {why}"))?;
        claims["data_subject"] = json!(format!("bsn={bsn}"));
    }
    if let Some(by) = &request.approved_by {
        // Several approvers (an override needs two) are separated by commas.
        let approvals: Vec<serde_json::Value> = by
            .split(',')
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(|b| json!({"sub": b, "role": request.approver_role}))
            .collect();
        claims["approvals"] = json!(approvals);
        // Each approval is used once: it has its own id.
        claims["jti"] = json!(uuid::Uuid::new_v4().to_string());
        // And it names the request it approves.
        if let Some(operation) = &request.approves_operation {
            let mut approves = json!({"operation": operation});
            if let Some(body) = &request.approves_body {
                approves["request_sha256"] = json!(crate::canonical::digest(body));
            }
            claims["approves"] = approves;
        }
    }
    if !request.case_partners.is_empty() {
        claims["case_partners"] = json!(request.case_partners);
    }
    let pem = std::fs::read(issuer_key(certs)).with_context(|| {
        format!(
            "cannot read the demo issuer key {} (run `doelpoort certs generate {}`)",
            issuer_key(certs).display(),
            certs.display()
        )
    })?;
    let key = EncodingKey::from_ec_pem(&pem).context("the demo issuer key is not an EC key")?;
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &claims,
        &key,
    )?)
}

/// Wraps a mock partner's handler with the partner side of the contract: a request without a
/// `Doelbinding-Assertion` that verifies against the gateway's JWKS, is meant for this partner
/// (`aud`) and comes from the gateway (`iss`), is refused with 401 before the data is looked at.
pub fn verifying_assertions(
    inner: MockHandler,
    jwks: jsonwebtoken::jwk::JwkSet,
    gateway_oin: String,
    partner_oin: String,
) -> MockHandler {
    let jwks = Arc::new(jwks);
    Arc::new(move |req| {
        let verdict = check_assertion(&req, &jwks, &gateway_oin, &partner_oin);
        match verdict {
            Ok(()) => inner(req),
            Err(why) => Box::pin(async move {
                super::json_response(
                    StatusCode::UNAUTHORIZED,
                    &json!({"fout": "geen geldige Doelbinding-Assertion", "reden": why}),
                )
            }),
        }
    })
}

fn check_assertion(
    req: &super::MockRequest,
    jwks: &jsonwebtoken::jwk::JwkSet,
    gateway_oin: &str,
    partner_oin: &str,
) -> Result<(), &'static str> {
    let token = req
        .headers()
        .get("doelbinding-assertion")
        .and_then(|v| v.to_str().ok())
        .ok_or("missing")?;
    let header = jsonwebtoken::decode_header(token).map_err(|_| "not a JWT")?;
    let jwk = header
        .kid
        .as_deref()
        .and_then(|kid| jwks.find(kid))
        .ok_or("unknown key")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| "unusable key")?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[partner_oin]);
    validation.set_issuer(&[gateway_oin]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
        .map_err(|_| "invalid signature, issuer, audience or lifetime")?
        .claims;
    // The assertion and the plain headers must tell the same story.
    let purpose = req
        .headers()
        .get("doelbinding-purpose")
        .and_then(|v| v.to_str().ok());
    if claims["purpose"].as_str() != purpose {
        return Err("purpose differs from Doelbinding-Purpose");
    }
    Ok(())
}
