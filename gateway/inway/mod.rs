//! The provider's end (`role: inway`, SPEC §10): who may call in, and on what grounds.
//!
//! An inway stands in front of a provider's own services. Its consumers are the calling
//! gateways, recognised by their client certificate (OIN). Every request must carry the
//! calling gateway's `Doelbinding-Assertion`, which this module verifies against that
//! gateway's published keys ([`jwks`]): signed by a key it publishes, issued by it, for this
//! provider (`aud`), not expired, living at most five minutes, and bound to the certificate of
//! the connection it arrives on (`cnf.x5t#S256`, so an assertion copied off one gateway is
//! worthless on another). What it states — purpose, legal basis, case, data subject — is the
//! context the provider's own policy decides on; nothing the caller says in headers overrides
//! it. With FSC configured, the inway also requires an FSC access token
//! ([`crate::fsc::tokens::TokenAuthority`]).

pub mod jwks;

use crate::config::Config;
use crate::context::{DataSubject, RequestContext};
use crate::fsc::tokens::TokenAuthority;
use crate::id::Id;
use crate::identity::{Consumer, Fingerprint};
use crate::problem::{Problem, ProblemCode};
use anyhow::{Context as _, Result};
use jsonwebtoken::{Algorithm, Validation};
use jwks::PeerKeys;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

/// The longest an assertion may live (SPEC §2: at most 5 minutes).
pub const MAX_ASSERTION_LIFETIME_SECS: u64 = 300;
/// Clock difference tolerated between the two gateways.
const LEEWAY_SECS: u64 = 5;

/// What an inway knows about its callers.
pub struct Inway {
    /// This provider's OIN: every assertion must name it as its audience.
    audience: String,
    peers: HashMap<Id, Peer>,
    /// FSC access tokens, when the inway speaks FSC.
    pub fsc: Option<TokenAuthority>,
}

struct Peer {
    issuer: String,
    keys: Arc<PeerKeys>,
}

/// What a verified assertion states.
#[derive(Debug, Clone)]
pub struct VerifiedAssertion {
    pub jti: String,
    /// The organisation on whose behalf the calling gateway asks (its consumer's OIN).
    pub requester: String,
    pub context: RequestContext,
    pub legal_basis: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    purpose: String,
    #[serde(default)]
    legal_basis: Option<String>,
    #[serde(default)]
    case_id: Option<String>,
    #[serde(default)]
    data_subject: Option<String>,
    cnf: crate::fsc::tokens::Confirmation,
    iat: u64,
    exp: u64,
    jti: String,
}

impl Inway {
    /// The callers' key sources from the configuration; the keys themselves are fetched by
    /// [`Inway::spawn_refreshers`].
    pub fn load(config: &Config) -> Result<Self> {
        let audience = config
            .gateway_oin
            .as_ref()
            .context("an inway needs gateway_oin")?
            .as_str()
            .to_string();
        let mut peers = HashMap::new();
        for c in &config.consumers {
            let Some(assertions) = &c.assertions else {
                continue;
            };
            let issuer = assertions
                .issuer
                .clone()
                .or_else(|| c.oin.as_ref().map(|o| o.as_str().to_string()))
                .with_context(|| {
                    format!("consumer '{}': give its oin or assertion_issuer", c.id)
                })?;
            let keys = PeerKeys::new(assertions)
                .with_context(|| format!("consumer '{}': assertion_jwks", c.id))?;
            peers.insert(
                c.id.clone(),
                Peer {
                    issuer,
                    keys: Arc::new(keys),
                },
            );
        }
        let fsc = config
            .fsc
            .as_ref()
            .map(|f| TokenAuthority::load(f, &audience))
            .transpose()
            .context("cannot load the FSC token key")?;
        Ok(Self {
            audience,
            peers,
            fsc,
        })
    }

    /// Fetches every caller's keys now and then periodically.
    pub fn spawn_refreshers(&self) -> Vec<tokio::task::JoinHandle<()>> {
        self.peers
            .values()
            .map(|p| p.keys.spawn_refresher())
            .collect()
    }

    /// Verifies the `Doelbinding-Assertion` a calling gateway sent on a connection whose
    /// client certificate has `fingerprint`.
    pub async fn verify(
        &self,
        consumer: &Consumer,
        fingerprint: Option<&Fingerprint>,
        value: Option<&http::HeaderValue>,
    ) -> Result<VerifiedAssertion, Problem> {
        let invalid = |detail: &'static str| Problem::new(ProblemCode::TokenInvalid, detail);
        let peer = self
            .peers
            .get(&consumer.id)
            .ok_or_else(|| invalid("no assertion keys are configured for this caller"))?;
        let token = value
            .ok_or_else(|| invalid("the request carries no Doelbinding-Assertion"))?
            .to_str()
            .map_err(|_| invalid("the Doelbinding-Assertion is not a JWT"))?;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| invalid("the Doelbinding-Assertion is not a JWT"))?;
        if header.alg != Algorithm::ES256 {
            return Err(invalid(
                "the Doelbinding-Assertion must be signed with ES256",
            ));
        }
        let kid = header
            .kid
            .ok_or_else(|| invalid("the Doelbinding-Assertion names no key (kid)"))?;
        let key = peer.keys.key(&kid).await.ok_or_else(|| {
            invalid("the Doelbinding-Assertion is signed with a key the calling gateway does not publish")
        })?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.leeway = LEEWAY_SECS;
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&[&peer.issuer]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                invalid(match e.kind() {
                    ErrorKind::ExpiredSignature => "the Doelbinding-Assertion has expired",
                    ErrorKind::InvalidAudience => {
                        "the Doelbinding-Assertion is for another provider"
                    }
                    ErrorKind::InvalidIssuer => {
                        "the Doelbinding-Assertion is issued by another gateway than the caller"
                    }
                    ErrorKind::InvalidSignature => {
                        "the Doelbinding-Assertion's signature is not valid"
                    }
                    _ => "the Doelbinding-Assertion is not valid",
                })
            })?
            .claims;
        if claims.exp.saturating_sub(claims.iat) > MAX_ASSERTION_LIFETIME_SECS
            || claims.iat > crate::clock::unix_now() as u64 + LEEWAY_SECS
        {
            return Err(invalid(
                "the Doelbinding-Assertion lives longer than 5 minutes or is issued in the future",
            ));
        }
        let bound =
            fingerprint.is_some_and(|fp| crate::fsc::tokens::thumbprint(fp) == claims.cnf.x5t_s256);
        if !bound {
            return Err(Problem::new(
                ProblemCode::TokenMismatch,
                "the Doelbinding-Assertion is bound to another certificate than this connection's",
            ));
        }
        let data_subject = claims
            .data_subject
            .as_deref()
            .map(DataSubject::parse)
            .transpose()
            .map_err(|_| {
                invalid("the Doelbinding-Assertion's data subject is not bsn=<a valid BSN>")
            })?;
        Ok(VerifiedAssertion {
            jti: claims.jti,
            requester: claims.sub,
            legal_basis: claims.legal_basis,
            context: RequestContext {
                purpose: Some(claims.purpose),
                case_id: claims.case_id,
                data_subject,
                actor: None,
                case_partners: Vec::new(),
            },
        })
    }
}
