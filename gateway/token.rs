//! Phase *context*, second half: the caller's signed token (RFC 9068 style, RFC 8705 bound).
//!
//! A client certificate says which organisation calls. The token says which employee (`sub`),
//! for which purpose and case, about whom, with whose approval (`approvals`) and within which
//! partner domains the client agreed to (`case_partners`). It is signed by an issuer the
//! operator trusts for that consumer, names this gateway as its audience, and is bound to the
//! client certificate of the connection it arrives on (`cnf.x5t#S256`): a token copied from
//! one system is worthless on another.
//!
//! Fail closed: any doubt about a token is a refusal (`token-invalid`), never "no token". The
//! claims override nothing; a `Doelbinding-*` header that disagrees with a claim is refused
//! (`token-mismatch`), and a header that is absent is filled from the (signed) claim.

use crate::config::{IssuerConfig, TokenConfig, TokenMode};
use crate::context::{DataSubject, RequestContext};
use crate::identity::{Consumer, Fingerprint};
use crate::problem::{Problem, ProblemCode};
use anyhow::{Context as _, Result};
use base64::Engine as _;
use http::HeaderMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The trusted issuers with their current keys: loaded at start and reloaded on SIGHUP (an
/// identity provider rotating its keys publishes a new JWKS file; the gateway picks it up
/// without a restart). A reload that fails keeps the keys in force.
pub struct TokenIssuers {
    config: TokenConfig,
    current: arc_swap::ArcSwap<TokenVerifier>,
}

impl TokenIssuers {
    pub fn load(config: &TokenConfig) -> Result<Self> {
        Ok(Self {
            current: arc_swap::ArcSwap::from_pointee(TokenVerifier::load(config)?),
            config: config.clone(),
        })
    }

    pub fn current(&self) -> Arc<TokenVerifier> {
        self.current.load_full()
    }

    /// Re-reads every issuer's key files.
    pub fn reload(&self) -> Result<()> {
        self.current
            .store(Arc::new(TokenVerifier::load(&self.config)?));
        Ok(())
    }

    /// Reloads on every SIGHUP until the task is aborted.
    pub fn spawn_reloader(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        use tokio::signal::unix::{signal, SignalKind};
        // Registered now, so a SIGHUP right after start is not missed.
        let hangup = signal(SignalKind::hangup());
        let issuers = self.clone();
        tokio::spawn(async move {
            let Ok(mut hangup) = hangup else { return };
            while hangup.recv().await.is_some() {
                match issuers.reload() {
                    Ok(()) => tracing::info!("SIGHUP: token issuer keys reloaded"),
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "SIGHUP: token issuer keys NOT reloaded; the previous keys stay in force")
                    }
                }
            }
        })
    }
}

/// The trusted issuers and their keys, as loaded from their files.
pub struct TokenVerifier {
    audience: String,
    leeway: Duration,
    max_lifetime: Duration,
    /// By `iss` claim.
    issuers: HashMap<String, Issuer>,
}

struct Issuer {
    id: String,
    algorithms: Vec<Algorithm>,
    /// Keys with their `kid` (PEM keys have none).
    keys: Vec<(Option<String>, DecodingKey)>,
}

/// An approval of this exchange by a colleague, as a signed caller token carries it (see
/// [`crate::policy::four_eyes`] for what it counts for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// Pseudonymous id of the approver.
    pub by: String,
    pub role: Option<String>,
}

/// What a verified token says.
#[derive(Debug, Clone)]
pub struct CallerToken {
    /// The configured id of the issuer that vouched for the caller.
    pub issuer: String,
    /// The issuer as the token names it (`iss`): what a spent approval is stored under, so
    /// replicas that name the same issuer differently in their configuration agree on it.
    pub iss: String,
    /// The employee acting (`sub`), pseudonymous.
    pub actor: String,
    pub purpose: Option<String>,
    pub case_id: Option<String>,
    pub data_subject: Option<DataSubject>,
    pub approvals: Vec<Approval>,
    /// The partner domains the client agreed to involve in this case (absent: not limited).
    pub case_partners: Option<Vec<String>>,
    /// What the approvals in this token approve: one operation, and the request body (its
    /// canonical digest) when there is one.
    pub approves: Option<Approves>,
    /// For a token carrying approvals: its `jti` and `exp`, so the approval is used once.
    pub approval_use: Option<(String, u64)>,
}

/// The `approves` claim: the request a colleague approved.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approves {
    /// The operation, as `<partner>/<operation>` (e.g. `cjib/opschorting`).
    pub operation: String,
    /// SHA-256 (lowercase hex) of the canonical request body ([`crate::canonical::digest`]);
    /// absent for a request without a body.
    #[serde(default)]
    pub request_sha256: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    purpose: Option<String>,
    #[serde(default)]
    case_id: Option<String>,
    #[serde(default)]
    data_subject: Option<String>,
    #[serde(default)]
    approvals: Vec<ApprovalClaim>,
    #[serde(default)]
    case_partners: Option<Vec<String>>,
    #[serde(default)]
    approves: Option<Approves>,
    cnf: Confirmation,
    iat: u64,
    exp: u64,
    #[serde(default)]
    jti: Option<String>,
}

/// An approval names exactly what was approved and is used at once: a token carrying
/// approvals may live at most this long.
pub const MAX_APPROVAL_LIFETIME_SECS: u64 = 300;

#[derive(Deserialize)]
struct ApprovalClaim {
    sub: String,
    #[serde(default)]
    role: Option<String>,
}

/// RFC 8705 §3.1: the certificate a token is bound to (`cnf`). Caller tokens, assertions and
/// FSC access tokens all carry it.
#[derive(Debug, Clone, serde::Serialize, Deserialize, PartialEq, Eq)]
pub struct Confirmation {
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
}

impl Confirmation {
    /// Whether the token is bound to the certificate with `fingerprint`.
    pub fn binds(&self, fingerprint: &Fingerprint) -> bool {
        self.x5t_s256 == thumbprint(fingerprint)
    }
}

#[derive(Deserialize)]
struct IssuerOnly {
    iss: String,
}

fn invalid(detail: impl Into<std::borrow::Cow<'static, str>>) -> Problem {
    Problem::new(ProblemCode::TokenInvalid, detail)
}

fn mismatch(what: &str) -> Problem {
    Problem::new(
        ProblemCode::TokenMismatch,
        format!("the {what} in the request headers differs from the one in the signed token"),
    )
}

/// `cnf.x5t#S256` of a certificate: base64url (no padding) of its SHA-256 (RFC 8705).
pub fn thumbprint(fingerprint: &Fingerprint) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(fingerprint.0)
}

impl TokenVerifier {
    pub fn load(config: &TokenConfig) -> Result<Self> {
        let mut issuers = HashMap::new();
        for i in &config.issuers {
            issuers.insert(i.issuer.clone(), Issuer::load(i)?);
        }
        Ok(Self {
            audience: config.audience.clone(),
            leeway: config.leeway,
            max_lifetime: config.max_lifetime,
            issuers,
        })
    }

    /// The caller's token for this request, verified — or `None` where the consumer presents
    /// none and need not. `fingerprint` is the connection's client certificate.
    pub fn check(
        verifier: Option<&TokenIssuers>,
        consumer: &Consumer,
        fingerprint: Option<&Fingerprint>,
        headers: &HeaderMap,
    ) -> Result<Option<CallerToken>, Problem> {
        if consumer.token == TokenMode::Off {
            // Not this consumer's way of working: whatever it sends is ignored (and, like every
            // credential, never forwarded).
            return Ok(None);
        }
        match (consumer.token, bearer(headers)?) {
            (TokenMode::Optional, None) => Ok(None),
            (TokenMode::Required, None) => Err(invalid(
                "this consumer must present a signed caller token (Authorization: Bearer)",
            )),
            (TokenMode::Off, _) => Ok(None),
            (_, Some(token)) => {
                let verifier = verifier
                    .ok_or_else(|| invalid("no token issuers are configured"))?
                    .current();
                let fingerprint =
                    fingerprint.ok_or_else(|| invalid("no client certificate to bind to"))?;
                verifier
                    .verify(token, &consumer.token_issuers, fingerprint)
                    .map(Some)
            }
        }
    }

    /// Verifies `token` for a consumer that trusts `allowed` issuers (configured ids).
    pub fn verify(
        &self,
        token: &str,
        allowed: &[String],
        fingerprint: &Fingerprint,
    ) -> Result<CallerToken, Problem> {
        // `alg: none` and unknown algorithms fail here: the crate has no such algorithm.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| invalid("the bearer token is not a signed JWT with a known algorithm"))?;
        // RFC 7515 §4.1.11: a header parameter marked critical must be understood, and the
        // gateway understands no extension.
        if header.crit.is_some() {
            return Err(invalid(
                "the token marks header extensions as critical (crit) that the gateway does not understand",
            ));
        }
        // The issuer picks the keys; it is read before the signature is checked, and only
        // trusted once the signature under that issuer's keys holds.
        let iss = jsonwebtoken::dangerous::insecure_decode_claims::<IssuerOnly>(token)
            .map_err(|_| invalid("the bearer token names no issuer (iss)"))?
            .iss;
        // One message for both cases: a caller learns nothing about which issuers exist.
        let issuer = self
            .issuers
            .get(&iss)
            .filter(|i| allowed.contains(&i.id))
            .ok_or_else(|| invalid("the token's issuer is not trusted for this consumer"))?;
        if !issuer.algorithms.contains(&header.alg) {
            return Err(invalid(
                "the token's algorithm is not allowed for its issuer",
            ));
        }
        let candidates = issuer.keys_for(header.kid.as_deref());
        if candidates.is_empty() {
            return Err(invalid(
                "the token's key id (kid) is unknown for its issuer",
            ));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&[&iss]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        let mut last = ErrorKind::InvalidSignature;
        let mut claims = None;
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) => {
                    claims = Some(data.claims);
                    break;
                }
                Err(e) => last = e.into_kind(),
            }
        }
        let claims = claims.ok_or_else(|| invalid(describe(&last)))?;
        let now = jsonwebtoken::get_current_timestamp();
        if claims.iat > now + self.leeway.as_secs() {
            return Err(invalid("the token was issued in the future (iat)"));
        }
        if claims.exp.saturating_sub(claims.iat) > self.max_lifetime.as_secs() {
            return Err(invalid(format!(
                "the token lives longer (exp - iat) than the {} this gateway accepts",
                humantime::format_duration(self.max_lifetime)
            )));
        }
        if !claims.cnf.binds(fingerprint) {
            return Err(invalid(
                "the token is bound to another client certificate (cnf.x5t#S256)",
            ));
        }
        check_claim_values(&claims)?;
        let data_subject = claims
            .data_subject
            .as_deref()
            .map(DataSubject::parse)
            .transpose()
            .map_err(|_| invalid("the token's data_subject is not bsn=<a valid BSN>"))?;
        let approval_use = (!claims.approvals.is_empty())
            .then(|| claims.jti.clone().map(|jti| (jti, claims.exp)))
            .flatten();
        Ok(CallerToken {
            issuer: issuer.id.clone(),
            iss: iss.clone(),
            actor: claims.sub,
            purpose: claims.purpose,
            case_id: claims.case_id,
            data_subject,
            approvals: claims
                .approvals
                .into_iter()
                .map(|a| Approval {
                    by: a.sub,
                    role: a.role,
                })
                .collect(),
            case_partners: claims.case_partners,
            approves: claims.approves,
            approval_use,
        })
    }
}

/// The claims that end up in the audit log, the assertion and the decision get the same checks
/// as the headers they stand in for: plain ids, and nothing that looks like a BSN.
fn check_claim_values(claims: &Claims) -> Result<(), Problem> {
    use crate::context::{holds_bsn, is_plain_id};
    let plain = |s: &str| is_plain_id(s) && !holds_bsn(s);
    if !plain(&claims.sub) {
        return Err(invalid("the token's sub is not a plain pseudonymous id"));
    }
    if claims.case_id.as_deref().is_some_and(|c| !plain(c)) {
        return Err(invalid("the token's case_id is not a plain id"));
    }
    if claims.purpose.as_deref().is_some_and(|p| !is_plain_id(p)) {
        return Err(invalid("the token's purpose is not a purpose id"));
    }
    let approvals_ok = claims
        .approvals
        .iter()
        .all(|a| plain(&a.sub) && a.role.as_deref().is_none_or(plain));
    if !approvals_ok {
        return Err(invalid(
            "an approval in the token does not name a plain id and role",
        ));
    }
    // Any plain id: a jti is random (a UUID's digit groups can look like a BSN), and the
    // store keeps only its digest.
    if !claims.approvals.is_empty() && !claims.jti.as_deref().is_some_and(is_plain_id) {
        return Err(invalid(
            "a token carrying approvals needs a jti, a plain id (letters, digits, '-', '_', '.'): each approval is used once",
        ));
    }
    if !claims.approvals.is_empty()
        && claims.exp.saturating_sub(claims.iat) > MAX_APPROVAL_LIFETIME_SECS
    {
        return Err(invalid(
            "a token carrying approvals may live at most 5 minutes (exp - iat)",
        ));
    }
    if claims
        .case_partners
        .as_ref()
        .is_some_and(|list| !list.iter().all(|p| is_plain_id(p)))
    {
        return Err(invalid("the token's case_partners are not partner ids"));
    }
    if let Some(approves) = &claims.approves {
        let digest_ok = approves.request_sha256.as_deref().is_none_or(|d| {
            d.len() == 64
                && d.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if !is_plain_id(&approves.operation) || !digest_ok {
            return Err(invalid(
                "the token's approves claim names no operation or no SHA-256 of a request body",
            ));
        }
    }
    Ok(())
}

/// Why a token failed, for the caller (no token content is echoed).
fn describe(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired (exp)",
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
        ErrorKind::InvalidAudience => "the token is not meant for this gateway (aud)",
        ErrorKind::InvalidIssuer => "the token's issuer does not match (iss)",
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not fit the issuer's key",
        ErrorKind::MissingRequiredClaim(_) => {
            "the token lacks a required claim (exp, iat, iss, aud, sub)"
        }
        ErrorKind::InvalidSignature => "the token's signature does not verify",
        ErrorKind::Json(_) | ErrorKind::InvalidClaimFormat(_) => {
            "the token's claims are malformed (cnf.x5t#S256, sub and iat are required)"
        }
        _ => "the bearer token is invalid",
    }
}

impl Issuer {
    /// The keys a token with `kid` may be signed with: those published under that kid, or
    /// else the issuer's PEM keys (which have no kid).
    fn keys_for(&self, kid: Option<&str>) -> Vec<&DecodingKey> {
        let with = |wanted: Option<&str>| -> Vec<&DecodingKey> {
            self.keys
                .iter()
                .filter(|(k, _)| k.as_deref() == wanted)
                .map(|(_, key)| key)
                .collect()
        };
        match kid.map(|kid| with(Some(kid))) {
            Some(named) if !named.is_empty() => named,
            _ => with(None),
        }
    }

    fn load(config: &IssuerConfig) -> Result<Self> {
        let mut keys = Vec::new();
        for path in &config.keys {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read issuer key {}", path.display()))?;
            let key = DecodingKey::from_ec_pem(&pem)
                .or_else(|_| DecodingKey::from_rsa_pem(&pem))
                .or_else(|_| DecodingKey::from_ed_pem(&pem))
                .with_context(|| {
                    format!("{}: not an EC, RSA or Ed25519 public key", path.display())
                })?;
            keys.push((None, key));
        }
        if let Some(path) = &config.jwks {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a JWKS", path.display()))?;
            // A key the gateway cannot or must not use is skipped, not fatal: an issuer that
            // removes a compromised key and adds an odd one must not leave the old key trusted.
            for jwk in &set.keys {
                let Some(kid) = jwk.common.key_id.clone() else {
                    tracing::warn!(file = %path.display(), "JWKS key without kid skipped");
                    continue;
                };
                if jwk
                    .common
                    .public_key_use
                    .as_ref()
                    .is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature)
                {
                    continue;
                }
                match DecodingKey::from_jwk(jwk) {
                    Ok(key) if key.family() != jsonwebtoken::AlgorithmFamily::Hmac => {
                        keys.push((Some(kid), key))
                    }
                    _ => {
                        tracing::warn!(file = %path.display(), kid, "JWKS key skipped: not a usable public key")
                    }
                }
            }
        }
        Ok(Self {
            id: config.id.clone(),
            algorithms: config.algorithms.clone(),
            keys,
        })
    }
}

/// The bearer token of a request, if any. More than one `Authorization` header, another
/// scheme or an empty token is refused rather than ignored.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Problem> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(invalid("the Authorization header is sent more than once"));
    }
    let text = value
        .to_str()
        .map_err(|_| invalid("the Authorization header is not printable ASCII"))?;
    let (scheme, token) = text
        .split_once(' ')
        .ok_or_else(|| invalid("expected Authorization: Bearer <token>"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(invalid("expected Authorization: Bearer <token>"));
    }
    Ok(Some(token.trim()))
}

/// Lines the declared context up with the token: a header that disagrees is refused, a header
/// that is absent is taken from the claim.
pub fn reconcile(context: &mut RequestContext, token: &CallerToken) -> Result<(), Problem> {
    fn agree(
        header: &mut Option<String>,
        claim: &Option<String>,
        what: &str,
    ) -> Result<(), Problem> {
        match (header.as_ref(), claim) {
            (Some(h), Some(c)) if h != c => Err(mismatch(what)),
            (None, Some(c)) => {
                *header = Some(c.clone());
                Ok(())
            }
            _ => Ok(()),
        }
    }
    agree(&mut context.purpose, &token.purpose, "purpose")?;
    agree(&mut context.case_id, &token.case_id, "case id")?;
    agree(&mut context.actor, &Some(token.actor.clone()), "actor")?;
    match (&context.data_subject, &token.data_subject) {
        (Some(h), Some(c)) if h.bsn() != c.bsn() => return Err(mismatch("data subject")),
        (None, Some(c)) => context.data_subject = Some(c.clone()),
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn bearer_is_strict() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h).unwrap(), None);
        h.insert(
            "authorization",
            HeaderValue::from_static("Bearer abc.def.ghi"),
        );
        assert_eq!(bearer(&h).unwrap(), Some("abc.def.ghi"));
        h.insert("authorization", HeaderValue::from_static("bearer  x"));
        assert_eq!(bearer(&h).unwrap(), Some("x"));
        for bad in ["Basic Zm9v", "Bearer", "Bearer  ", "abc"] {
            h.insert("authorization", HeaderValue::from_static(bad));
            assert_eq!(
                bearer(&h).unwrap_err().code,
                ProblemCode::TokenInvalid,
                "{bad}"
            );
        }
        h.insert("authorization", HeaderValue::from_static("Bearer a"));
        h.append("authorization", HeaderValue::from_static("Bearer b"));
        assert!(bearer(&h).is_err());
    }

    #[test]
    fn thumbprint_is_base64url_of_the_sha256() {
        let fp = Fingerprint([0xff; 32]);
        assert_eq!(thumbprint(&fp), "_".repeat(42) + "8");
    }

    #[test]
    fn headers_and_claims_must_agree() {
        let token = CallerToken {
            issuer: "idp".into(),
            iss: "https://idp.example".into(),
            actor: "medewerker-1".into(),
            purpose: Some("time-out".into()),
            case_id: Some("casus-1".into()),
            data_subject: Some(DataSubject::parse("bsn=999990019").unwrap()),
            approvals: vec![],
            case_partners: None,
            approves: None,
            approval_use: None,
        };
        let mut ctx = RequestContext::default();
        reconcile(&mut ctx, &token).unwrap();
        assert_eq!(ctx.purpose.as_deref(), Some("time-out"));
        assert_eq!(ctx.actor.as_deref(), Some("medewerker-1"));
        assert_eq!(ctx.data_subject.unwrap().bsn().as_str(), "999990019");
        for (field, value) in [
            ("purpose", "wams-onderzoek"),
            ("actor", "medewerker-2"),
            ("case", "casus-2"),
        ] {
            let mut ctx = RequestContext::default();
            match field {
                "purpose" => ctx.purpose = Some(value.into()),
                "actor" => ctx.actor = Some(value.into()),
                _ => ctx.case_id = Some(value.into()),
            }
            assert_eq!(
                reconcile(&mut ctx, &token).unwrap_err().code,
                ProblemCode::TokenMismatch
            );
        }
        let mut ctx = RequestContext {
            data_subject: Some(DataSubject::parse("bsn=999990020").unwrap()),
            ..Default::default()
        };
        assert_eq!(
            reconcile(&mut ctx, &token).unwrap_err().code,
            ProblemCode::TokenMismatch
        );
    }
}
