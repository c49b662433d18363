//! The raw, span-carrying form of the configuration as written in the file. Every value keeps
//! its position so the validator can point at it; unknown keys are refused while parsing.

use serde::Deserialize;
use serde_saphyr::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) instance: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) gateway_oin: Option<Spanned<String>>,
    pub(super) listen: Spanned<String>,
    #[serde(default)]
    pub(super) admin_listen: Option<Spanned<String>>,
    pub(super) tls: RawListenerTls,
    #[serde(default)]
    pub(super) admin_tls: Option<RawListenerTls>,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) problem_base: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) consumers: Vec<RawConsumer>,
    #[serde(default)]
    pub(super) partners: Vec<RawPartner>,
    pub(super) policies: Spanned<String>,
    pub(super) schemas: Spanned<String>,
    pub(super) audit: Spanned<RawAudit>,
    /// Where shared state lives (SPEC §9): `postgres://…` or `sqlite:PATH`.
    #[serde(default)]
    pub(super) store: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) tokens: Option<RawTokens>,
    #[serde(default)]
    pub(super) assertions: Option<RawAssertions>,
    #[serde(default)]
    pub(super) pseudonym_secret: Option<Spanned<String>>,
    /// The secret the case register's household HMACs are made with (shared by replicas).
    #[serde(default)]
    pub(super) household_key: Option<Spanned<String>>,
    /// `outway` (the default: the consumers' side) or `inway` (in front of a provider).
    #[serde(default)]
    pub(super) role: Option<Spanned<String>>,
    /// At an inway: accept FSC access tokens, and issue them for configured contracts.
    #[serde(default)]
    pub(super) fsc: Option<Spanned<RawFscInway>>,
    /// The privacy officers' console: its own mTLS listener and who may open it.
    #[serde(default)]
    pub(super) console: Option<RawConsole>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsole {
    pub(super) listen: Spanned<String>,
    pub(super) tls: RawListenerTls,
    pub(super) officers: Vec<RawOfficer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOfficer {
    pub(super) id: Spanned<String>,
    pub(super) name: Spanned<String>,
    /// SHA-256 fingerprints of the officer's certificates (as for consumers).
    #[serde(default)]
    pub(super) fingerprints: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListenerTls {
    pub(super) certificate: Spanned<String>,
    pub(super) key: Spanned<String>,
    pub(super) client_ca: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) crls: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) max_connections: Option<Spanned<u64>>,
    pub(super) max_header_bytes: Option<Spanned<u64>>,
    pub(super) max_headers: Option<Spanned<u64>>,
    pub(super) max_request_body_bytes: Option<Spanned<u64>>,
    pub(super) max_response_body_bytes: Option<Spanned<u64>>,
    pub(super) max_concurrent_streams: Option<Spanned<u64>>,
    pub(super) max_json_depth: Option<Spanned<u64>>,
    pub(super) handshake_timeout: Option<Spanned<String>>,
    pub(super) header_timeout: Option<Spanned<String>>,
    pub(super) request_timeout: Option<Spanned<String>>,
    pub(super) idle_timeout: Option<Spanned<String>>,
    pub(super) shutdown_grace: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsumer {
    pub(super) id: Spanned<String>,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) oin: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) fingerprints: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) token: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) token_issuers: Vec<Spanned<String>>,
    /// The calling application, as Logboek Dataverwerkingen names it in
    /// `dpl.core.foreign_operation.processor` (an https URL).
    #[serde(default)]
    pub(super) processor: Option<Spanned<String>>,
    /// May keep its own cases in the case register (SPEC §8).
    #[serde(default)]
    pub(super) case_admin: bool,
    /// At an inway: where the calling gateway publishes its assertion keys (JWKS).
    #[serde(default)]
    pub(super) assertion_jwks: Option<Spanned<String>>,
    /// CA certificates for an `https://` JWKS address.
    #[serde(default)]
    pub(super) assertion_jwks_trust: Vec<Spanned<String>>,
    /// The `iss` its assertions name (default: its OIN).
    #[serde(default)]
    pub(super) assertion_issuer: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTokens {
    pub(super) audience: Spanned<String>,
    #[serde(default)]
    pub(super) leeway: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) max_lifetime: Option<Spanned<String>>,
    pub(super) issuers: Vec<RawIssuer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIssuer {
    pub(super) id: Spanned<String>,
    pub(super) issuer: Spanned<String>,
    pub(super) algorithms: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) keys: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) jwks: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAssertions {
    pub(super) keys: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) lifetime: Option<Spanned<String>>,
    /// How many exchange contexts keep their assertion for reuse (0: sign every exchange).
    #[serde(default)]
    pub(super) cache_size: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPartner {
    pub(super) id: Spanned<String>,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) oin: Option<Spanned<String>>,
    pub(super) url: Spanned<String>,
    pub(super) client_certificate: Spanned<String>,
    pub(super) client_key: Spanned<String>,
    pub(super) trust: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) connect_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) response_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) max_idle_connections: Option<Spanned<u64>>,
    /// The partner runs an FSC inway: access tokens come from its manager.
    #[serde(default)]
    pub(super) fsc: Option<Spanned<RawFscOutway>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    #[serde(default)]
    pub(super) mode: Option<Spanned<String>>,
    /// `files` (the default) or `postgres` (the store's database).
    #[serde(default)]
    pub(super) sink: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) dir: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) subject_key: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) segment_max_bytes: Option<Spanned<u64>>,
    #[serde(default)]
    pub(super) segment_max_age: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) retention: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) queue_capacity: Option<Spanned<u64>>,
    #[serde(default)]
    pub(super) commit_delay: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) commit_siblings: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFscOutway {
    pub(super) manager: Spanned<String>,
    pub(super) grant_hash: Spanned<String>,
    pub(super) group_id: Spanned<String>,
    #[serde(default)]
    pub(super) service: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFscInway {
    pub(super) group_id: Spanned<String>,
    pub(super) address: Spanned<String>,
    #[serde(default)]
    pub(super) token_certificate: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) token_key: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) token_lifetime: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) contracts: Vec<RawFscContract>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFscContract {
    pub(super) grant_hash: Spanned<String>,
    pub(super) consumer: Spanned<String>,
    pub(super) service: Spanned<String>,
}
