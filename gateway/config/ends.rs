//! Which end of the exchange this gateway is (SPEC §10), and what each end needs configured.
//!
//! - `role: outway` (the default): the consumers' side. It signs `Doelbinding-Assertion`s and
//!   calls partners; a partner that runs an FSC inway gets an `fsc:` block (its manager, the
//!   grant hash of the contract, the group), and the gateway fetches access tokens for it.
//! - `role: inway`: in front of a provider's own services. Its consumers are the calling
//!   gateways, each with the address of its assertion keys (`assertion_jwks`); its policies
//!   are the provider's own release profile. With a top-level `fsc:` block it also accepts
//!   FSC access tokens (`Fsc-Authorization`) and issues them for the configured contracts.

use super::raw::{RawConsumer, RawFscInway, RawFscOutway};
use super::validate::Validator;
use crate::diagnostic::Diagnostic;
use crate::id::Id;
use serde_saphyr::Spanned;
use std::path::PathBuf;
use std::time::Duration;

/// Which end of the exchange the gateway is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// The consumers' side: decides and minimises for the municipality, calls partners.
    #[default]
    Outway,
    /// The provider's side: verifies the calling gateway's assertion, releases what the
    /// provider's own profile allows, and calls the provider's services.
    Inway,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Outway => "outway",
            Role::Inway => "inway",
        }
    }
}

/// At an inway, per calling gateway: where its assertion keys are published.
#[derive(Debug, Clone)]
pub struct PeerAssertions {
    /// The calling gateway's JWKS (`https://…`, or `http://` on loopback only).
    pub jwks: http::Uri,
    /// CA certificates for an `https://` JWKS address.
    pub trust: Vec<PathBuf>,
    /// The `iss` its assertions must name (default: the consumer's OIN).
    pub issuer: Option<String>,
}

/// At an outway, per partner that runs an FSC inway.
#[derive(Debug, Clone)]
pub struct FscOutway {
    /// The partner's manager: access tokens come from `<manager>/v1/token`.
    pub manager: http::Uri,
    /// The hash of the ServiceConnectionGrant in the signed contract (the token's scope).
    pub grant_hash: String,
    /// The FSC group both peers belong to (tokens must name it in `gid`).
    pub group_id: String,
    /// The service's name at the inway (`svc`); default: the partner's id.
    pub service: String,
}

/// At an inway: FSC access tokens accepted, and issued for configured contracts.
#[derive(Debug, Clone)]
pub struct FscInway {
    pub group_id: String,
    /// The inway's address as outways reach it (`https://host:port`): the `aud` of every
    /// token it issues, and of every token it accepts.
    pub address: String,
    /// The certificate whose key signs access tokens (its thumbprint is the token's
    /// `x5t#S256`); default: the data listener's.
    pub token_certificate: PathBuf,
    pub token_key: PathBuf,
    pub token_lifetime: Duration,
    pub contracts: Vec<FscContract>,
}

/// One ServiceConnectionGrant the inway's token endpoint honours.
#[derive(Debug, Clone)]
pub struct FscContract {
    pub grant_hash: String,
    /// The calling gateway (a configured consumer) the grant is for.
    pub consumer: Id,
    /// The service (a configured partner of this inway).
    pub service: Id,
}

/// FSC core: `^[a-zA-Z0-9./_-]{1,100}$`.
fn is_group_id(s: &str) -> bool {
    (1..=100).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'_' | b'-'))
}

/// A grant hash is opaque to the gateway, but travels in a form field, a JWT and a log: at
/// most 1024 visible ASCII characters (FSC's limit), no spaces.
fn is_grant_hash(s: &str) -> bool {
    (1..=1024).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

impl Validator<'_> {
    pub(super) fn role(&mut self, raw: Option<&Spanned<String>>) -> Role {
        match raw.map(|r| (r, r.value.as_str())) {
            None | Some((_, "outway")) => Role::Outway,
            Some((_, "inway")) => Role::Inway,
            Some((r, other)) => {
                self.error(
                    &r.referenced,
                    format!("role '{other}' is unknown; expected outway (the consumers' side, the default) or inway (in front of a provider's services)"),
                );
                Role::Outway
            }
        }
    }

    pub(super) fn peer_assertions(
        &mut self,
        jwks: &Spanned<String>,
        trust: &[Spanned<String>],
        issuer: Option<&Spanned<String>>,
    ) -> Option<PeerAssertions> {
        let uri: http::Uri = match jwks.value.parse() {
            Ok(u) => u,
            Err(_) => {
                self.error(&jwks.referenced, format!("'{}' is not a URL", jwks.value));
                return None;
            }
        };
        let loopback = matches!(uri.host(), Some("127.0.0.1" | "[::1]" | "localhost"));
        match uri.scheme_str() {
            Some("https") if trust.is_empty() => {
                self.error(
                    &jwks.referenced,
                    "an https:// JWKS address needs assertion_jwks_trust (the CA certificates of its server)",
                );
            }
            Some("https") => {}
            Some("http") if loopback => {}
            _ => {
                // Keys fetched over plain HTTP could be swapped on the way: whoever does that
                // could sign assertions in the calling gateway's name.
                self.error(
                    &jwks.referenced,
                    "the JWKS address must be https:// (http:// only on 127.0.0.1, [::1] or localhost)",
                );
                return None;
            }
        }
        Some(PeerAssertions {
            jwks: uri,
            trust: trust.iter().map(|t| self.existing_file(t)).collect(),
            issuer: issuer.map(|i| i.value.clone()),
        })
    }

    pub(super) fn fsc_outway(
        &mut self,
        raw: &Spanned<RawFscOutway>,
        partner: &Id,
        role: Role,
    ) -> FscOutway {
        if role == Role::Inway {
            self.error(
                &raw.referenced,
                "an inway calls the provider's own services; fsc: on a partner is for an outway calling an FSC inway",
            );
        }
        let r = &raw.value;
        let manager = self.partner_url(&r.manager);
        if manager.path().trim_end_matches('/').ends_with("/token") {
            self.error(
                &r.manager.referenced,
                "give the manager's address (https://host:port); the gateway asks <manager>/v1/token itself",
            );
        }
        self.group_id(&r.group_id);
        self.grant_hash(&r.grant_hash);
        FscOutway {
            manager,
            grant_hash: r.grant_hash.value.clone(),
            group_id: r.group_id.value.clone(),
            service: r
                .service
                .as_ref()
                .map_or_else(|| partner.to_string(), |s| s.value.clone()),
        }
    }

    fn group_id(&mut self, group_id: &Spanned<String>) {
        if !is_group_id(&group_id.value) {
            self.error(
                &group_id.referenced,
                "a group id is 1 to 100 of a-z A-Z 0-9 . / _ - (FSC core)",
            );
        }
    }

    fn grant_hash(&mut self, grant_hash: &Spanned<String>) {
        if !is_grant_hash(&grant_hash.value) {
            self.error(
                &grant_hash.referenced,
                "a grant hash is 1 to 1024 visible ASCII characters, e.g. $1$3$… from the signed contract",
            );
        }
    }

    /// What a consumer entry needs at this end: at an inway, the calling gateway's assertion
    /// keys; at an outway, none (and no case register at an inway).
    pub(super) fn check_end(&mut self, role: super::Role, c: &RawConsumer) {
        match role {
            Role::Inway => {
                if c.assertion_jwks.is_none() {
                    self.error(
                        &c.id.referenced,
                        "at an inway every consumer is a calling gateway: give its assertion_jwks (where it publishes its assertion keys)",
                    );
                }
                if c.case_admin {
                    self.error(
                        &c.id.referenced,
                        "the case register is kept at the consumers' side (outway), not at an inway",
                    );
                }
            }
            Role::Outway => {
                if let Some(j) = &c.assertion_jwks {
                    self.error(
                        &j.referenced,
                        "assertion_jwks is for an inway (role: inway): an outway signs assertions, it does not verify them",
                    );
                }
            }
        }
    }

    /// The top-level `fsc:` block (an inway's only) and what an inway needs besides.
    pub(super) fn inway_checks(
        &mut self,
        role: Role,
        raw: Option<&Spanned<RawFscInway>>,
        gateway_oin: Option<&crate::identity::Oin>,
        consumers: &[super::ConsumerConfig],
        partners: &[super::PartnerConfig],
        listener: &super::ListenerTls,
    ) -> Option<FscInway> {
        if role == Role::Inway && gateway_oin.is_none() {
            self.diagnostics.push(Diagnostic::file_error(
                self.file,
                "an inway needs gateway_oin: the provider's OIN, which assertions must name as their audience",
            ));
        }
        raw.map(|f| {
            if role != Role::Inway {
                self.error(
                    &f.referenced,
                    "a top-level fsc: block configures an inway (role: inway); an outway names fsc: per partner",
                );
            }
            self.fsc_inway(f, consumers, partners, listener)
        })
    }

    fn fsc_inway(
        &mut self,
        raw: &Spanned<RawFscInway>,
        consumers: &[super::ConsumerConfig],
        partners: &[super::PartnerConfig],
        listener: &super::ListenerTls,
    ) -> FscInway {
        let r = &raw.value;
        let mut contracts = Vec::new();
        let mut hashes = std::collections::HashSet::new();
        self.group_id(&r.group_id);
        for c in &r.contracts {
            self.grant_hash(&c.grant_hash);
            if !hashes.insert(c.grant_hash.value.clone()) {
                self.error(
                    &c.grant_hash.referenced,
                    "this grant hash is already used by another contract",
                );
            }
            let consumer = consumers.iter().find(|k| k.id == c.consumer.value.as_str());
            if consumer.is_none() {
                self.error(
                    &c.consumer.referenced,
                    format!("consumer '{}' is not configured", c.consumer.value),
                );
            }
            let service = partners.iter().find(|p| p.id == c.service.value.as_str());
            if service.is_none() {
                self.error(
                    &c.service.referenced,
                    format!(
                        "service '{}' is not a configured partner of this inway",
                        c.service.value
                    ),
                );
            }
            if let (Some(consumer), Some(service)) = (consumer, service) {
                contracts.push(FscContract {
                    grant_hash: c.grant_hash.value.clone(),
                    consumer: consumer.id.clone(),
                    service: service.id.clone(),
                });
            }
        }
        let (token_certificate, token_key) = match (&r.token_certificate, &r.token_key) {
            (Some(c), Some(k)) => (self.existing_file(c), self.existing_file(k)),
            (None, None) => (listener.certificate.clone(), listener.key.clone()),
            _ => {
                self.error(
                    &raw.referenced,
                    "give both token_certificate and token_key, or neither (the listener's are used)",
                );
                (listener.certificate.clone(), listener.key.clone())
            }
        };
        let token_lifetime = r
            .token_lifetime
            .as_ref()
            .and_then(|v| {
                self.duration_within(
                    v,
                    Duration::from_secs(10)..=Duration::from_secs(3600),
                    "a token lifetime from 10s to 1h",
                )
            })
            .unwrap_or(Duration::from_secs(300));
        let address = self.partner_url(&r.address);
        if address.path() != "/"
            || !r
                .address
                .value
                .contains(&format!(":{}", address.port_u16().unwrap_or(0)))
        {
            self.error(
                &r.address.referenced,
                "the inway's address is https://host:port (FSC: with the port, without a path)",
            );
        }
        FscInway {
            address: format!(
                "https://{}",
                address
                    .authority()
                    .map_or("invalid.invalid", |a| a.as_str())
            ),
            group_id: r.group_id.value.clone(),
            token_certificate,
            token_key,
            token_lifetime,
            contracts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_and_grant_hashes_have_fscs_form() {
        assert!(is_group_id("fsc-demo.gemeenten/test_1"));
        assert!(!is_group_id(""));
        assert!(!is_group_id("with space"));
        assert!(!is_group_id(&"a".repeat(101)));
        assert!(is_grant_hash(
            "$1$3$s1jAyWmruw1kMdV0wLHOWLbAu73NAk5o4RaEyFsha466ez1Cx05eQj_IG8gx"
        ));
        assert!(!is_grant_hash("$1$3$ with space"));
        assert!(!is_grant_hash(""));
    }
}
