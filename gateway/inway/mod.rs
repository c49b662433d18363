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

/// How old (seconds) a transaction id's time may be, and how far ahead: an outway makes it just
/// before it sends. Ids are remembered for as long as they are accepted.
pub const TRANSACTION_ID_WINDOW: (u64, u64) = (120, 30);

/// Whether a transaction id is new to this inway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstUse {
    Yes,
    Again,
    /// Its time is outside [`TRANSACTION_ID_WINDOW`].
    OutOfWindow,
}

/// The transaction ids seen within the window, with when each may be forgotten.
#[derive(Default)]
struct SeenIds {
    ids: std::collections::HashSet<uuid::Uuid>,
    by_expiry: std::collections::VecDeque<(u64, uuid::Uuid)>,
}

/// What an inway knows about its callers.
pub struct Inway {
    seen: std::sync::Mutex<SeenIds>,
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
    cnf: crate::token::Confirmation,
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
            seen: Default::default(),
            audience,
            peers,
            fsc,
        })
    }

    /// Whether `id` (a UUIDv7) is within the window and not seen before; remembers it. Per
    /// instance: replicas of an inway each keep their own (a reuse across replicas is still
    /// visible in `audit join`, which lists every record of an id).
    pub fn first_use(&self, id: uuid::Uuid, now: u64) -> FirstUse {
        let (past, ahead) = TRANSACTION_ID_WINDOW;
        let Some(made) = id.get_timestamp().map(|t| t.to_unix().0) else {
            return FirstUse::OutOfWindow;
        };
        if made + past < now || made > now + ahead {
            return FirstUse::OutOfWindow;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        while seen
            .by_expiry
            .front()
            .is_some_and(|(expiry, _)| *expiry < now)
        {
            if let Some((_, old)) = seen.by_expiry.pop_front() {
                seen.ids.remove(&old);
            }
        }
        if !seen.ids.insert(id) {
            return FirstUse::Again;
        }
        // Forgotten once its time has left the window (ids arrive roughly in time order; one
        // that arrives late is kept a little longer, never shorter).
        let expiry = (made + past).max(now);
        seen.by_expiry.push_back((expiry, id));
        FirstUse::Yes
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
        // RFC 7515 §4.1.11: extensions marked critical must be understood; none are.
        if header.crit.is_some() {
            return Err(invalid(
                "the Doelbinding-Assertion marks header extensions as critical (crit) that the inway does not understand",
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
        validation.validate_nbf = true;
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
        if !fingerprint.is_some_and(|fp| claims.cnf.binds(fp)) {
            return Err(Problem::new(
                ProblemCode::TokenMismatch,
                "the Doelbinding-Assertion is bound to another certificate than this connection's",
            ));
        }
        // What the assertion states goes into the inway's audit log in clear: it must have the
        // forms the outway holds its callers to, and carry no BSN outside `data_subject`.
        let well_formed = crate::identity::Oin::parse(&claims.sub).is_ok()
            && crate::context::is_plain_id(&claims.purpose)
            && uuid::Uuid::try_parse(&claims.jti).is_ok()
            && claims
                .case_id
                .as_deref()
                .is_none_or(|c| crate::context::is_plain_id(c) && !crate::context::holds_bsn(c));
        if !well_formed {
            return Err(invalid(
                "the Doelbinding-Assertion's sub must be an OIN, its jti a UUID, and its purpose and case id plain ids without a BSN",
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
