//! FSC access tokens (core 1.1, "Access token"): certificate-bound JWTs that say which peer
//! (`sub`) may use which service (`svc`) of which peer (`iss`) under which grant (`gth`).
//!
//! - [`TokenAuthority`], at an inway: the token endpoint for configured contracts (OAuth 2.0
//!   client credentials over mTLS, the grant hash as scope), and the check of every
//!   `Fsc-Authorization` it receives: signed by this inway's own token key (named by the
//!   header's `x5t#S256`), not expired, its group, a contract that still exists, and bound to
//!   the certificate of the connection it arrives on (RFC 8705).
//! - [`OutwayTokens`], at an outway, per partner: the token request, the checks on the token
//!   received (its group, grant, service, the inway it is for, and that it is bound to this
//!   gateway's certificate), and a cache that reuses a token until shortly before it expires.

use super::{FscError, TransactionLog};
use crate::config::{FscContract, FscInway, FscOutway};
use crate::identity::Fingerprint;
use crate::token::{thumbprint, Confirmation};
use anyhow::{Context as _, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// A token is not used with less validity left than this: it must still be valid when the
/// inway checks it, after the request has travelled.
const REUSE_MARGIN_SECS: u64 = 30;
/// The longest an outway keeps a token, whatever its `exp` says: a token the inway no longer
/// honours is replaced within this time even if the inway's answer did not say so.
const MAX_CACHE_SECS: u64 = 3600;
/// After a failed token request, exchanges for the same partner are refused at once for this
/// long instead of each asking the manager again (and waiting for it) in turn.
const FAILURE_BACKOFF: Duration = Duration::from_secs(5);
/// Clock difference tolerated between the peers.
const LEEWAY_SECS: u64 = 5;

/// The claims of an FSC access token (core 1.1, "JWT Payload").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessTokenClaims {
    pub gth: String,
    pub gid: String,
    pub sub: String,
    pub iss: String,
    pub svc: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub cnf: Confirmation,
    #[serde(default)]
    pub add: serde_json::Map<String, serde_json::Value>,
}

impl AccessTokenClaims {
    /// The FSC logging fields this token fills (logging 1.0: "Data from the access token MUST
    /// be used").
    pub fn transaction_log(&self, direction: super::Direction) -> TransactionLog {
        TransactionLog {
            direction,
            grant_hash: self.gth.clone(),
            source: self.sub.clone(),
            destination: self.iss.clone(),
            service: self.svc.clone(),
        }
    }
}

/// Why the token endpoint refused (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRefusal {
    pub error: &'static str,
    pub description: &'static str,
}

impl TokenRefusal {
    fn new(error: &'static str, description: &'static str) -> Self {
        Self { error, description }
    }

    /// The 400 answer's body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": self.error, "error_description": self.description})
    }
}

/// The calling outway as the token endpoint sees it: its configured consumer id, its peer id
/// (the OIN in its certificate) and the certificate's fingerprint.
pub struct TokenClient<'a> {
    pub consumer: &'a str,
    pub peer_id: Option<&'a str>,
    pub fingerprint: &'a Fingerprint,
}

/// An inway's own token key and contracts.
pub struct TokenAuthority {
    group_id: String,
    /// The inway's address (`https://host:port`): every token's `aud`.
    address: String,
    peer_id: String,
    lifetime: Duration,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// `x5t#S256` of the token certificate: names the key in every token's header.
    x5t: String,
    contracts: HashMap<String, FscContract>,
}

impl TokenAuthority {
    /// The token key and certificate from `config`; `peer_id` is the inway's own OIN.
    pub fn load(config: &FscInway, peer_id: &str) -> Result<Self> {
        let certificate = crate::tls::load_certificates(&config.token_certificate)?
            .into_iter()
            .next()
            .context("the FSC token certificate file holds no certificate")?;
        let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref())
            .map_err(|e| anyhow::anyhow!("the FSC token certificate cannot be read: {e}"))?;
        let point = parsed.public_key().subject_public_key.data.to_vec();
        let key = std::fs::read(&config.token_key)
            .with_context(|| format!("{}", config.token_key.display()))?;
        let encoding = EncodingKey::from_ec_pem(&key).with_context(|| {
            format!(
                "{}: expected a PKCS#8 PEM EC P-256 key (the FSC token key)",
                config.token_key.display()
            )
        })?;
        Ok(Self {
            group_id: config.group_id.clone(),
            address: config.address.clone(),
            peer_id: peer_id.to_string(),
            lifetime: config.token_lifetime,
            encoding,
            decoding: DecodingKey::from_ec_der(&point),
            x5t: thumbprint(&Fingerprint::of_der(certificate.as_ref())),
            contracts: config
                .contracts
                .iter()
                .map(|c| (c.grant_hash.clone(), c.clone()))
                .collect(),
        })
    }

    /// The token endpoint (core 1.1, "manager_tokens"): a token for the contract whose grant
    /// hash is the scope, if the client is the peer that contract names; its audience is the
    /// inway's configured address.
    pub fn issue(
        &self,
        form: &[u8],
        client: &TokenClient<'_>,
        now: u64,
    ) -> Result<String, TokenRefusal> {
        let mut grant_type = None;
        let mut scope = None;
        let mut client_id = None;
        for (name, value) in form_urlencoded::parse(form) {
            let slot = match name.as_ref() {
                "grant_type" => &mut grant_type,
                "scope" => &mut scope,
                "client_id" => &mut client_id,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(TokenRefusal::new(
                    "invalid_request",
                    "a parameter is given twice",
                ));
            }
        }
        let (Some(grant_type), Some(scope), Some(client_id)) = (grant_type, scope, client_id)
        else {
            return Err(TokenRefusal::new(
                "invalid_request",
                "grant_type, scope and client_id are required",
            ));
        };
        if grant_type != "client_credentials" {
            return Err(TokenRefusal::new(
                "unsupported_grant_type",
                "only client_credentials is supported",
            ));
        }
        if client.peer_id != Some(client_id.as_ref()) {
            return Err(TokenRefusal::new(
                "invalid_client",
                "client_id is not the peer id of the client certificate",
            ));
        }
        let contract = self
            .contracts
            .get(scope.as_ref())
            .filter(|c| c.consumer == client.consumer)
            .ok_or_else(|| {
                TokenRefusal::new(
                    "invalid_scope",
                    "no valid contract for this peer holds a grant with this hash",
                )
            })?;
        let claims = AccessTokenClaims {
            gth: contract.grant_hash.clone(),
            gid: self.group_id.clone(),
            sub: client_id.into_owned(),
            iss: self.peer_id.clone(),
            svc: contract.service.to_string(),
            aud: self.address.clone(),
            exp: now + self.lifetime.as_secs(),
            nbf: now,
            cnf: Confirmation {
                x5t_s256: thumbprint(client.fingerprint),
            },
            add: Default::default(),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("JWT".into());
        header.x5t_s256 = Some(self.x5t.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|_| TokenRefusal::new("invalid_request", "the token could not be signed"))
    }

    /// Checks the `Fsc-Authorization` of a request arriving from `consumer` on a connection
    /// with client certificate `fingerprint` (core 1.1, Inway "Authorization").
    pub fn verify(
        &self,
        value: Option<&http::HeaderValue>,
        fingerprint: Option<&Fingerprint>,
        consumer: &str,
    ) -> Result<AccessTokenClaims, FscError> {
        let token = value.ok_or(FscError::AccessTokenMissing)?;
        let token = token.to_str().map_err(|_| FscError::AccessTokenInvalid)?;
        // FSC does not say whether the header carries a `Bearer ` prefix; both are accepted.
        let token = match token.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            Some(_) => return Err(FscError::AccessTokenInvalid),
            None => token.trim(),
        };
        if token.is_empty() {
            return Err(FscError::AccessTokenMissing);
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| FscError::AccessTokenInvalid)?;
        // Signed by this inway's own peer, with its token key, and nothing else.
        if header.alg != Algorithm::ES256
            || header.x5t_s256.as_deref() != Some(&self.x5t)
            || header.crit.is_some()
        {
            return Err(FscError::AccessTokenInvalid);
        }
        let mut validation = Validation::new(Algorithm::ES256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
        validation.set_issuer(&[&self.peer_id]);
        let claims = jsonwebtoken::decode::<AccessTokenClaims>(token, &self.decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => FscError::AccessTokenExpired,
                _ => FscError::AccessTokenInvalid,
            })?
            .claims;
        if claims.gid != self.group_id {
            return Err(FscError::WrongGroupIdInToken);
        }
        // A token for another inway is not this inway's to honour.
        if claims.aud != self.address {
            return Err(FscError::AccessTokenInvalid);
        }
        if !fingerprint.is_some_and(|fp| claims.cnf.binds(fp)) {
            return Err(FscError::AccessTokenInvalid);
        }
        // A contract removed from the configuration ends its tokens at once; and a token
        // serves only the peer its contract names.
        if !self
            .contracts
            .get(&claims.gth)
            .is_some_and(|c| c.consumer == consumer && c.service == claims.svc.as_str())
        {
            return Err(FscError::AccessTokenInvalid);
        }
        Ok(claims)
    }
}

/// At an outway, for one partner with an FSC inway: the token request and the token cache.
pub struct OutwayTokens {
    config: FscOutway,
    /// This gateway's peer id (its OIN), the token request's `client_id`.
    peer_id: String,
    /// The thumbprint of the client certificate used towards the partner.
    thumbprint: String,
    /// `https://host:port` of the partner's inway: a token must name it as `aud`.
    inway: String,
    /// The partner's OIN, when configured: the token's issuer (`iss`) must be it.
    provider: Option<String>,
    /// The token and until when (unix seconds) it may be used.
    cached: Mutex<Option<(String, AccessTokenClaims, u64)>>,
    /// Until when a failed token request refuses further exchanges at once.
    failed_until: Mutex<Option<std::time::Instant>>,
    /// One token request at a time per partner: concurrent exchanges wait for its token.
    pub fetching: tokio::sync::Mutex<()>,
}

impl OutwayTokens {
    pub fn new(
        config: FscOutway,
        peer_id: String,
        thumbprint: String,
        inway: String,
        provider: Option<String>,
    ) -> Self {
        Self {
            config,
            peer_id,
            thumbprint,
            inway,
            provider,
            cached: Mutex::new(None),
            failed_until: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// Forgets the cached token: the inway said it is not (or no longer) valid.
    pub fn forget(&self) {
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Whether a token request failed so recently that exchanges are refused at once.
    pub fn backing_off(&self) -> bool {
        self.failed_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|until| std::time::Instant::now() < until)
    }

    /// Notes a failed token request: exchanges are refused at once for a few seconds.
    pub fn failed(&self) {
        *self.failed_until.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(std::time::Instant::now() + FAILURE_BACKOFF);
    }

    /// The token endpoint (`<manager>/v1/token`).
    pub fn endpoint(&self) -> String {
        format!(
            "{}/v1/token",
            self.config.manager.to_string().trim_end_matches('/')
        )
    }

    /// The token request's form body (RFC 6749 §4.4.2).
    pub fn request_body(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", &self.config.grant_hash)
            .append_pair("client_id", &self.peer_id)
            .finish()
    }

    /// A cached token with enough validity left, and what it says.
    pub fn cached(&self, now: u64) -> Option<(String, AccessTokenClaims)> {
        let cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        cached
            .as_ref()
            .filter(|(_, claims, until)| claims.exp > now + REUSE_MARGIN_SECS && now < *until)
            .map(|(token, claims, _)| (token.clone(), claims.clone()))
    }

    /// Takes the manager's answer: a token that is for this gateway, this partner's inway,
    /// group, grant and service is cached and returned; anything else is refused with the
    /// reason (for the operator's log; never shown to the caller).
    pub fn accept(
        &self,
        status: http::StatusCode,
        body: &[u8],
        now: u64,
    ) -> Result<(String, AccessTokenClaims), String> {
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: String,
            token_type: String,
        }
        if !status.is_success() {
            #[derive(Deserialize)]
            struct Refusal {
                error: String,
            }
            let error = serde_json::from_slice::<Refusal>(body)
                .ok()
                .map(|r| r.error)
                .filter(|e| e.len() <= 64 && e.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
                .unwrap_or_else(|| "no OAuth error".into());
            return Err(format!(
                "the manager refused the token request ({status}, {error})"
            ));
        }
        let response: TokenResponse = serde_json::from_slice(body)
            .map_err(|_| "the manager's answer is not a token response".to_string())?;
        if !response.token_type.eq_ignore_ascii_case("bearer") {
            return Err("the manager's token is not a bearer token".into());
        }
        // A JWS in compact form (three base64url parts): anything else cannot be sent as a
        // header value unaltered, and is not a token.
        let compact = response.access_token.split('.').count() == 3
            && response
                .access_token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !compact {
            return Err("the manager's token is not a JWS in compact form".into());
        }
        // The outway cannot check the signature (that is the inway's job, with its own key);
        // it checks that the token is the one it asked for before sending it anywhere.
        let claims = response
            .access_token
            .split('.')
            .nth(1)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|p| serde_json::from_slice::<AccessTokenClaims>(&p).ok())
            .ok_or_else(|| "the manager's token is not a JWT with FSC's claims".to_string())?;
        let issuer_ok = match &self.provider {
            Some(oin) => claims.iss == *oin,
            None => crate::identity::Oin::parse(&claims.iss).is_ok(),
        };
        let problem = if claims.gid != self.config.group_id {
            Some("is for another group")
        } else if claims.gth != self.config.grant_hash {
            Some("is for another grant")
        } else if claims.svc != self.config.service {
            Some("is for another service")
        } else if claims.aud.trim_end_matches('/') != self.inway {
            // FSC routes to the token's `aud`; Doelpoort sends only to the configured inway,
            // so a token for another address is refused rather than followed.
            Some("is for another inway than the configured partner address")
        } else if claims.cnf.x5t_s256 != self.thumbprint {
            Some("is bound to another certificate")
        } else if claims.sub != self.peer_id {
            // What the token names goes into the audit record: only the peers it should name.
            Some("is for another peer than this gateway")
        } else if !issuer_ok {
            Some("is issued by another peer than the partner")
        } else if claims.exp <= now + REUSE_MARGIN_SECS {
            Some("expires too soon")
        } else if claims.nbf > now + LEEWAY_SECS {
            Some("is not valid yet")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(format!("the manager's token {problem}"));
        }
        let until = claims.exp.min(now + MAX_CACHE_SECS);
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((response.access_token.clone(), claims.clone(), until));
        Ok((response.access_token, claims))
    }
}

#[cfg(test)]
#[path = "tokens_tests.rs"]
mod tests;
