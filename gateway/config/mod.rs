//! The operator's configuration file: listeners, TLS material, limits, consumers, partners and
//! where policies, schemas and the audit log live.
//!
//! Loading has two steps. [`Config::load`] parses the YAML into span-carrying raw structs and
//! validates every value, collecting *all* problems as `file:line:col` diagnostics. The
//! result is a plain [`Config`] whose paths are resolved against the config file's directory,
//! so a config can be moved together with its certificates. Building TLS contexts from the
//! files happens later (`tls`, `upstream`); `doelpoort check` runs both steps.
//!
//! Operators own this file (addresses, certificates, timeouts); privacy officers own
//! `policies/` (who may see what, and why). Keeping them apart lets each change their part
//! without touching the other's.

pub mod console;
mod ends;
mod raw;
pub mod store;
mod validate;

#[cfg(test)]
mod tests;

use crate::diagnostic::{from_yaml_error, Diagnostic, Diagnostics};
use crate::id::Id;
use crate::identity::{Fingerprint, Oin};
pub use console::{ConsoleSettings, Officer};
pub use ends::{FscContract, FscInway, FscOutway, PeerAssertions, Role};
use raw::RawConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use validate::Validator;

/// Default base URI of problem `type`s (SPEC §2).
pub const DEFAULT_PROBLEM_BASE: &str = "https://doelpoort.example/problems";

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (for messages), if any.
    pub source: Option<PathBuf>,
    /// Identifies this gateway instance (replicas each keep their own audit chain).
    pub instance: String,
    /// The gateway's own organisation: it signs assertions and calls partners as this OIN.
    pub gateway_oin: Option<Oin>,
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    /// Optional mTLS for the admin listener (scrapers and probes then need a client
    /// certificate from `client_ca`); plain HTTP without it.
    pub admin_tls: Option<ListenerTls>,
    /// The privacy officers' console (its own mTLS listener), when configured.
    pub console: Option<ConsoleSettings>,
    pub tls: ListenerTls,
    pub limits: Limits,
    pub problem_base: String,
    pub consumers: Vec<ConsumerConfig>,
    pub partners: Vec<PartnerConfig>,
    /// The privacy officers' policy directory (purposes, operations, grants).
    pub policies: PathBuf,
    /// JSON Schemas of partner operations.
    pub schemas: PathBuf,
    /// The lawful-basis audit log (required; `mode: off` only for development and benchmarks).
    pub audit: AuditSettings,
    /// Where state shared by replicas lives (SPEC §9).
    pub store: store::StoreSettings,
    /// Trusted issuers of caller tokens (none: no consumer can use tokens).
    pub tokens: Option<TokenConfig>,
    /// Signing keys for outbound assertions (none: an ephemeral key is made at start).
    pub assertions: Option<AssertionConfig>,
    /// File holding the secret pseudonyms are derived from (at least 32 bytes). Without it, a
    /// random secret is made at start and pseudonyms change with every restart.
    pub pseudonym_secret: Option<PathBuf>,
    /// File holding the secret the case register stores household members' BSNs under (as
    /// keyed HMACs). Replicas must share it. Default: `household.key` next to the audit
    /// directory, made on first start.
    pub household_key: Option<PathBuf>,
    /// Which end of the exchange this gateway is (SPEC §10).
    pub role: Role,
    /// At an inway: FSC access tokens accepted and issued (none: no FSC at this inway).
    pub fsc: Option<FscInway>,
    /// Switches for the benchmark programs only: no configuration file can set them.
    #[cfg(feature = "benchmark-switches")]
    pub benchmark: BenchmarkSwitches,
}

/// The `audit` section of the configuration, validated.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// `false` only with `mode: off` (benchmarks and development; the gateway warns).
    pub enabled: bool,
    /// Where records are written: segment files in `dir`, or the store's PostgreSQL.
    pub sink: AuditSink,
    pub dir: PathBuf,
    /// File with the HMAC key for data subjects (created on first start).
    pub subject_key: PathBuf,
    pub segment_max_bytes: u64,
    pub segment_max_age: Duration,
    /// Segments whose newest record is older than this are deleted (`None`: keep all).
    pub retention: Option<Duration>,
    /// Records that may wait for the writer; beyond it exchanges are refused.
    pub queue_capacity: usize,
    /// Under concurrent load, how long a group commit waits at most for more records before
    /// its fsync (PostgreSQL's `commit_delay`); zero never waits.
    pub commit_delay: Duration,
    /// The wait applies only while at least this many exchanges are on their way to the writer
    /// (PostgreSQL's `commit_siblings`), so a lone request is never delayed; `0` turns the
    /// wait off, as `commit_delay: 0s` does.
    pub commit_siblings: usize,
}

/// Where the audit log is written (`audit.sink`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditSink {
    /// Segment files in the audit directory, one hash chain per directory.
    #[default]
    Files,
    /// The `audit_records` table of the store's PostgreSQL, one hash chain per instance.
    Postgres,
}

impl AuditSettings {
    pub const DEFAULT_SEGMENT_MAX_BYTES: u64 = 64 * 1024 * 1024;
    pub const DEFAULT_SEGMENT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
    pub const DEFAULT_QUEUE_CAPACITY: usize = 8192;
    pub const DEFAULT_COMMIT_DELAY: Duration = Duration::ZERO;
    pub const DEFAULT_COMMIT_SIBLINGS: usize = 5;

    /// A durable log in `dir` with the default rotation and queue, no retention.
    pub fn durable(dir: PathBuf, subject_key: PathBuf) -> Self {
        Self {
            enabled: true,
            sink: AuditSink::Files,
            dir,
            subject_key,
            segment_max_bytes: Self::DEFAULT_SEGMENT_MAX_BYTES,
            segment_max_age: Self::DEFAULT_SEGMENT_MAX_AGE,
            retention: None,
            queue_capacity: Self::DEFAULT_QUEUE_CAPACITY,
            commit_delay: Self::DEFAULT_COMMIT_DELAY,
            commit_siblings: Self::DEFAULT_COMMIT_SIBLINGS,
        }
    }
}

/// What a benchmark may switch off to show what a phase costs. Only a build with the
/// `benchmark-switches` feature has them (`cargo bench --bench proxy --features
/// benchmark-switches`); they are set in code by the programs in `tests/bench/`, and no
/// configuration file can set them, so a production build cannot run without minimisation.
#[cfg(feature = "benchmark-switches")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BenchmarkSwitches {
    /// Relay granted partner answers unchanged (no minimisation) — the pass-through baseline.
    pub skip_minimisation: bool,
}

impl Config {
    /// Every certificate file the configuration names, with a stable label for the expiry
    /// metric: the listeners' certificates and trust anchors, and each partner's client
    /// certificate and trust anchors.
    pub fn certificate_files(&self) -> Vec<(String, &Path)> {
        let mut files: Vec<(String, &Path)> = vec![("listener".into(), &self.tls.certificate)];
        for (i, ca) in self.tls.client_ca.iter().enumerate() {
            files.push((format!("client_ca_{i}"), ca));
        }
        if let Some(admin) = &self.admin_tls {
            files.push(("admin_listener".into(), &admin.certificate));
            for (i, ca) in admin.client_ca.iter().enumerate() {
                files.push((format!("admin_client_ca_{i}"), ca));
            }
        }
        if let Some(console) = &self.console {
            files.push(("console_listener".into(), &console.tls.certificate));
            for (i, ca) in console.tls.client_ca.iter().enumerate() {
                files.push((format!("console_client_ca_{i}"), ca));
            }
        }
        for p in &self.partners {
            files.push((format!("partner_{}_client", p.id), &p.client_certificate));
            for (i, ca) in p.trust.iter().enumerate() {
                files.push((format!("partner_{}_trust_{i}", p.id), ca));
            }
        }
        files
    }
}

/// TLS material of the data listener.
#[derive(Debug, Clone)]
pub struct ListenerTls {
    pub certificate: PathBuf,
    pub key: PathBuf,
    /// Trust anchors for client certificates: a consumer's chain must end in one of these.
    pub client_ca: Vec<PathBuf>,
    /// Certificate revocation lists checked for every client certificate in the chain.
    pub crls: Vec<PathBuf>,
}

/// Resource bounds. Every one of them protects the gateway from a slow or hostile peer.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_request_body_bytes: usize,
    pub max_response_body_bytes: usize,
    pub max_concurrent_streams: u32,
    /// Deepest nesting of a JSON body the gateway will parse.
    pub max_json_depth: usize,
    pub handshake_timeout: Duration,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_request_body_bytes: 1024 * 1024,
            max_response_body_bytes: 8 * 1024 * 1024,
            max_concurrent_streams: 128,
            max_json_depth: 32,
            handshake_timeout: Duration::from_secs(5),
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub id: Id,
    pub name: String,
    pub oin: Option<Oin>,
    pub fingerprints: Vec<Fingerprint>,
    /// Whether this consumer's requests carry a signed caller token.
    pub token: TokenMode,
    /// Ids of the `tokens.issuers` whose tokens this consumer may present.
    pub token_issuers: Vec<String>,
    /// The calling application's URL, recorded as `dpl.core.foreign_operation.processor`.
    pub processor: Option<String>,
    /// May create, change and close its own cases in the case register (SPEC §8).
    pub case_admin: bool,
    /// At an inway: the calling gateway's published assertion keys.
    pub assertions: Option<PeerAssertions>,
}

/// Per consumer: may, must or does not present a token (defined with the consumer).
pub use crate::identity::TokenMode;

/// The `tokens` section: who may vouch for the employees of a consumer.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// The `aud` every token must name (this gateway).
    pub audience: String,
    /// Clock tolerance for `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// The longest a token may live (`exp - iat`); a token carrying approvals lives at most
    /// 5 minutes whatever this says.
    pub max_lifetime: Duration,
    pub issuers: Vec<IssuerConfig>,
}

impl TokenConfig {
    pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(3600);
}

/// A trusted token issuer (the consumer's identity provider).
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    pub id: String,
    /// The `iss` claim of its tokens.
    pub issuer: String,
    /// Signature algorithms accepted from it (never `none`, never HMAC).
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    /// PEM files with its public keys.
    pub keys: Vec<PathBuf>,
    /// A JWKS file with its public keys (tokens must then name a `kid`).
    pub jwks: Option<PathBuf>,
}

/// The `assertions` section: how the gateway signs `Doelbinding-Assertion`.
#[derive(Debug, Clone)]
pub struct AssertionConfig {
    /// PEM files with EC P-256 private keys; the first signs, all are published in the JWKS
    /// (so a partner keeps accepting the previous key during a rollover).
    pub keys: Vec<PathBuf>,
    /// Lifetime of one assertion (at most 60 s).
    pub lifetime: Duration,
    /// How many exchange contexts keep their signed assertion for reuse while it is valid
    /// (SPEC §2); 0 signs every exchange.
    pub cache_size: usize,
}

impl AssertionConfig {
    pub const DEFAULT_CACHE_SIZE: usize = 10_000;
}

#[derive(Debug, Clone)]
pub struct PartnerConfig {
    pub id: Id,
    pub name: String,
    pub oin: Option<Oin>,
    /// `https://host:port[/base]`; the caller's path after `/<partner id>` is appended.
    pub url: http::Uri,
    pub client_certificate: PathBuf,
    pub client_key: PathBuf,
    /// Trust anchors for the partner's server certificate: the gateway verifies partners too.
    pub trust: Vec<PathBuf>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub max_idle_connections: usize,
    /// The partner runs an FSC inway: access tokens from its manager.
    pub fsc: Option<FscOutway>,
}

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, Diagnostics> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostics(vec![Diagnostic::file_error(
                path,
                format!("cannot read the configuration file: {e}"),
            )])
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_yaml(&text, path, base)
    }

    /// Parses and validates configuration text; relative paths resolve against `base_dir`.
    pub fn from_yaml(text: &str, file: &Path, base_dir: &Path) -> Result<Config, Diagnostics> {
        let raw: RawConfig = serde_saphyr::from_str(text)
            .map_err(|e| Diagnostics(vec![from_yaml_error(file, &e)]))?;
        let mut v = Validator {
            file,
            base_dir,
            diagnostics: Vec::new(),
        };
        let config = v.config(raw);
        if v.diagnostics.iter().any(Diagnostic::is_error) {
            Err(Diagnostics(v.diagnostics))
        } else {
            Ok(config)
        }
    }

    pub fn consumer(&self, id: &str) -> Option<&ConsumerConfig> {
        self.consumers.iter().find(|c| c.id == id)
    }

    pub fn partner(&self, id: &str) -> Option<&PartnerConfig> {
        self.partners.iter().find(|p| p.id == id)
    }
}
