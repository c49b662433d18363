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

use crate::diagnostic::{from_yaml_error, Diagnostic, Diagnostics};
use crate::identity::{Fingerprint, Oin};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    pub audit: crate::audit::AuditSettings,
    /// Trusted issuers of caller tokens (none: no consumer can use tokens).
    pub tokens: Option<TokenConfig>,
    /// Signing keys for outbound assertions (none: an ephemeral key is made at start).
    pub assertions: Option<AssertionConfig>,
    /// File holding the secret pseudonyms are derived from (at least 32 bytes). Without it, a
    /// random secret is made at start and pseudonyms change with every restart.
    pub pseudonym_secret: Option<PathBuf>,
    /// Switches for the benchmark programs only: no configuration file can set them.
    pub benchmark: BenchmarkSwitches,
}

/// What a benchmark may switch off to show what a phase costs. Set in code by the programs
/// in `tests/bench/`; the configuration loader always leaves them off, so a deployed gateway
/// never runs without them.
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
    pub id: String,
    pub name: String,
    pub oin: Option<Oin>,
    pub fingerprints: Vec<Fingerprint>,
    /// Whether this consumer's requests carry a signed caller token.
    pub token: TokenMode,
    /// Ids of the `tokens.issuers` whose tokens this consumer may present.
    pub token_issuers: Vec<String>,
}

/// Per consumer: may, must or does not present `Authorization: Bearer <JWT>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenMode {
    /// A token is ignored (it is never forwarded either).
    #[default]
    Off,
    /// A token, when present, is verified like a required one.
    Optional,
    /// Every request needs a valid token.
    Required,
}

/// The `tokens` section: who may vouch for the employees of a consumer.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// The `aud` every token must name (this gateway).
    pub audience: String,
    /// Clock tolerance for `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    pub issuers: Vec<IssuerConfig>,
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
}

#[derive(Debug, Clone)]
pub struct PartnerConfig {
    pub id: String,
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

// ---- raw, span-carrying form as written in the file ------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    instance: Option<Spanned<String>>,
    #[serde(default)]
    gateway_oin: Option<Spanned<String>>,
    listen: Spanned<String>,
    #[serde(default)]
    admin_listen: Option<Spanned<String>>,
    tls: RawListenerTls,
    #[serde(default)]
    admin_tls: Option<RawListenerTls>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    problem_base: Option<Spanned<String>>,
    #[serde(default)]
    consumers: Vec<RawConsumer>,
    #[serde(default)]
    partners: Vec<RawPartner>,
    policies: Spanned<String>,
    schemas: Spanned<String>,
    audit: Spanned<RawAudit>,
    #[serde(default)]
    tokens: Option<RawTokens>,
    #[serde(default)]
    assertions: Option<RawAssertions>,
    #[serde(default)]
    pseudonym_secret: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListenerTls {
    certificate: Spanned<String>,
    key: Spanned<String>,
    client_ca: Vec<Spanned<String>>,
    #[serde(default)]
    crls: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_connections: Option<Spanned<u64>>,
    max_header_bytes: Option<Spanned<u64>>,
    max_headers: Option<Spanned<u64>>,
    max_request_body_bytes: Option<Spanned<u64>>,
    max_response_body_bytes: Option<Spanned<u64>>,
    max_concurrent_streams: Option<Spanned<u64>>,
    max_json_depth: Option<Spanned<u64>>,
    handshake_timeout: Option<Spanned<String>>,
    header_timeout: Option<Spanned<String>>,
    request_timeout: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    shutdown_grace: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsumer {
    id: Spanned<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    oin: Option<Spanned<String>>,
    #[serde(default)]
    fingerprints: Vec<Spanned<String>>,
    #[serde(default)]
    token: Option<Spanned<String>>,
    #[serde(default)]
    token_issuers: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    audience: Spanned<String>,
    #[serde(default)]
    leeway: Option<Spanned<String>>,
    issuers: Vec<RawIssuer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssuer {
    id: Spanned<String>,
    issuer: Spanned<String>,
    algorithms: Vec<Spanned<String>>,
    #[serde(default)]
    keys: Vec<Spanned<String>>,
    #[serde(default)]
    jwks: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAssertions {
    keys: Vec<Spanned<String>>,
    #[serde(default)]
    lifetime: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartner {
    id: Spanned<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    oin: Option<Spanned<String>>,
    url: Spanned<String>,
    client_certificate: Spanned<String>,
    client_key: Spanned<String>,
    trust: Vec<Spanned<String>>,
    #[serde(default)]
    connect_timeout: Option<Spanned<String>>,
    #[serde(default)]
    response_timeout: Option<Spanned<String>>,
    #[serde(default)]
    max_idle_connections: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    #[serde(default)]
    mode: Option<Spanned<String>>,
    #[serde(default)]
    dir: Option<Spanned<String>>,
    #[serde(default)]
    subject_key: Option<Spanned<String>>,
    #[serde(default)]
    segment_max_bytes: Option<Spanned<u64>>,
    #[serde(default)]
    segment_max_age: Option<Spanned<String>>,
    #[serde(default)]
    retention: Option<Spanned<String>>,
    #[serde(default)]
    queue_capacity: Option<Spanned<u64>>,
    #[serde(default)]
    commit_delay: Option<Spanned<String>>,
}

// ---- validation ------------------------------------------------------------------------------

struct Validator<'a> {
    file: &'a Path,
    base_dir: &'a Path,
    diagnostics: Vec<Diagnostic>,
}

/// Ids appear in URLs (`/<partner>/…`), metric labels and audit records: keep them boring.
fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
}

impl Validator<'_> {
    fn error(&mut self, at: &serde_saphyr::Location, message: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::at(self.file, at, message.into()));
    }

    fn config(&mut self, raw: RawConfig) -> Config {
        let defaults = Limits::default();
        let listen = self
            .socket_addr(&raw.listen)
            .unwrap_or(([127, 0, 0, 1], 8443).into());
        let admin_listen = raw.admin_listen.as_ref().and_then(|a| self.socket_addr(a));
        let tls = self.listener_tls(&raw.tls);
        let admin_tls = raw.admin_tls.as_ref().map(|t| self.listener_tls(t));
        let l = &raw.limits;
        let limits = Limits {
            max_connections: self.count(&l.max_connections, defaults.max_connections, 1, 1_000_000),
            max_header_bytes: self.count(
                &l.max_header_bytes,
                defaults.max_header_bytes,
                8192,
                1 << 20,
            ),
            max_headers: self.count(&l.max_headers, defaults.max_headers, 8, 1024),
            max_request_body_bytes: self.count(
                &l.max_request_body_bytes,
                defaults.max_request_body_bytes,
                0,
                256 << 20,
            ),
            max_response_body_bytes: self.count(
                &l.max_response_body_bytes,
                defaults.max_response_body_bytes,
                1024,
                256 << 20,
            ),
            max_concurrent_streams: self.count(
                &l.max_concurrent_streams,
                defaults.max_concurrent_streams as usize,
                1,
                10_000,
            ) as u32,
            max_json_depth: self.count(&l.max_json_depth, defaults.max_json_depth, 2, 128),
            handshake_timeout: self.duration(&l.handshake_timeout, defaults.handshake_timeout),
            header_timeout: self.duration(&l.header_timeout, defaults.header_timeout),
            request_timeout: self.duration(&l.request_timeout, defaults.request_timeout),
            idle_timeout: self.duration(&l.idle_timeout, defaults.idle_timeout),
            shutdown_grace: self.duration(&l.shutdown_grace, defaults.shutdown_grace),
        };
        let problem_base = match &raw.problem_base {
            Some(base)
                if base.value.starts_with("https://") || base.value.starts_with("http://") =>
            {
                base.value.trim_end_matches('/').to_string()
            }
            Some(base) => {
                self.error(&base.referenced, "problem_base must be an http(s) URL");
                DEFAULT_PROBLEM_BASE.to_string()
            }
            None => DEFAULT_PROBLEM_BASE.to_string(),
        };
        let gateway_oin = raw.gateway_oin.as_ref().and_then(|o| self.oin(o));

        let mut consumer_ids = HashSet::new();
        let mut oins = HashSet::new();
        let mut fingerprints = HashSet::new();
        let mut consumers = Vec::new();
        for c in &raw.consumers {
            if !is_valid_id(&c.id.value) {
                self.error(
                    &c.id.referenced,
                    "a consumer id is lowercase letters, digits and '-' (at most 64)",
                );
            } else if !consumer_ids.insert(c.id.value.clone()) {
                self.error(
                    &c.id.referenced,
                    format!("consumer '{}' is defined twice", c.id.value),
                );
            }
            let oin = c.oin.as_ref().and_then(|o| self.oin(o));
            if let (Some(oin), Some(at)) = (&oin, &c.oin) {
                if !oins.insert(oin.clone()) {
                    self.error(
                        &at.referenced,
                        "this OIN is already used by another consumer",
                    );
                }
            }
            let mut fps = Vec::new();
            for f in &c.fingerprints {
                match Fingerprint::parse_hex(&f.value) {
                    Ok(fp) if fingerprints.insert(fp) => fps.push(fp),
                    Ok(_) => self.error(
                        &f.referenced,
                        "this fingerprint is already used by another consumer",
                    ),
                    Err(e) => self.error(&f.referenced, e),
                }
            }
            if oin.is_none() && fps.is_empty() && c.oin.is_none() && c.fingerprints.is_empty() {
                self.error(
                    &c.id.referenced,
                    format!("consumer '{}' needs an 'oin' or at least one 'fingerprints' entry to be recognised", c.id.value),
                );
            }
            let token = match c.token.as_ref().map(|t| (t, t.value.as_str())) {
                None | Some((_, "off")) => TokenMode::Off,
                Some((_, "optional")) => TokenMode::Optional,
                Some((_, "required")) => TokenMode::Required,
                Some((t, other)) => {
                    self.error(
                        &t.referenced,
                        format!(
                            "token mode '{other}' is unknown; expected off, optional or required"
                        ),
                    );
                    TokenMode::Off
                }
            };
            consumers.push(ConsumerConfig {
                id: c.id.value.clone(),
                name: c.name.clone().unwrap_or_else(|| c.id.value.clone()),
                oin,
                fingerprints: fps,
                token,
                token_issuers: c.token_issuers.iter().map(|i| i.value.clone()).collect(),
            });
        }

        let tokens = raw.tokens.as_ref().map(|t| self.tokens(t));
        self.check_token_issuers(&raw.consumers, &consumers, tokens.as_ref());

        let mut partner_ids = HashSet::new();
        let mut partners = Vec::new();
        for p in &raw.partners {
            if !is_valid_id(&p.id.value) {
                self.error(
                    &p.id.referenced,
                    "a partner id is lowercase letters, digits and '-' (at most 64)",
                );
            } else if !partner_ids.insert(p.id.value.clone()) {
                self.error(
                    &p.id.referenced,
                    format!("partner '{}' is defined twice", p.id.value),
                );
            } else if p.id.value == ".well-known" {
                self.error(&p.id.referenced, "'.well-known' is reserved");
            }
            let url = self.partner_url(&p.url);
            partners.push(PartnerConfig {
                id: p.id.value.clone(),
                name: p.name.clone().unwrap_or_else(|| p.id.value.clone()),
                oin: p.oin.as_ref().and_then(|o| self.oin(o)),
                url,
                client_certificate: self.existing_file(&p.client_certificate),
                client_key: self.existing_file(&p.client_key),
                trust: self.file_list(&p.trust, "trust"),
                connect_timeout: self.duration(&p.connect_timeout, Duration::from_secs(2)),
                response_timeout: self.duration(&p.response_timeout, Duration::from_secs(10)),
                max_idle_connections: self.count(&p.max_idle_connections, 64, 0, 100_000),
            });
        }

        Config {
            source: Some(self.file.to_path_buf()),
            instance: raw
                .instance
                .map(|i| i.value)
                .unwrap_or_else(|| "doelpoort".to_string()),
            gateway_oin,
            listen,
            admin_listen,
            admin_tls,
            tls,
            limits,
            problem_base,
            consumers,
            partners,
            policies: self.existing_dir(&raw.policies),
            schemas: self.existing_dir(&raw.schemas),
            audit: self.audit(&raw.audit),
            tokens,
            assertions: raw.assertions.as_ref().map(|a| self.assertions(a)),
            pseudonym_secret: raw.pseudonym_secret.as_ref().map(|p| self.existing_file(p)),
            benchmark: BenchmarkSwitches::default(),
        }
    }

    fn audit(&mut self, raw: &Spanned<RawAudit>) -> crate::audit::AuditSettings {
        use crate::audit::AuditSettings as A;
        let a = &raw.value;
        let enabled = match &a.mode {
            None => true,
            Some(m) if m.value == "durable" => true,
            Some(m) if m.value == "off" => false,
            Some(m) => {
                self.error(
                    &m.referenced,
                    format!(
                        "audit mode '{}' is unknown; expected durable or off",
                        m.value
                    ),
                );
                true
            }
        };
        let mut required = |v: &Option<Spanned<String>>, what: &str| match v {
            Some(v) => self.resolve(&v.value),
            None => {
                if enabled {
                    self.error(
                        &raw.referenced,
                        format!("the audit log needs {what} (or mode: off, for development only)"),
                    );
                }
                PathBuf::new()
            }
        };
        let dir = required(&a.dir, "a dir: the directory its segments are written to");
        let subject_key = required(
            &a.subject_key,
            "a subject_key: the file holding the key that pseudonymises data subjects (created on first start), outside the audit dir",
        );
        if enabled && !subject_key.as_os_str().is_empty() && subject_key.starts_with(&dir) {
            if let Some(v) = &a.subject_key {
                self.error(
                    &v.referenced,
                    "keep the subject key outside the audit directory: a copy of the log must not carry its key",
                );
            }
        }
        let retention = a.retention.as_ref().and_then(|v| {
            self.duration_within(
                v,
                Duration::from_secs(24 * 3600)..=Duration::MAX,
                "a retention period of at least a day; expected e.g. 365d, 7years",
            )
        });
        let segment_max_age = a
            .segment_max_age
            .as_ref()
            .and_then(|v| {
                self.duration_within(
                    v,
                    Duration::from_secs(1)..=Duration::MAX,
                    "a segment age; expected e.g. 1h, 24h, 7d",
                )
            })
            .unwrap_or(A::DEFAULT_SEGMENT_MAX_AGE);
        let commit_delay = a
            .commit_delay
            .as_ref()
            .and_then(|v| {
                self.duration_within(
                    v,
                    Duration::ZERO..=Duration::from_millis(10),
                    "a commit delay of at most 10ms; expected e.g. 0s, 200us, 1ms",
                )
            })
            .unwrap_or(Duration::ZERO);
        A {
            enabled,
            dir,
            subject_key,
            segment_max_bytes: self.count(
                &a.segment_max_bytes,
                A::DEFAULT_SEGMENT_MAX_BYTES as usize,
                4096,
                1 << 40,
            ) as u64,
            segment_max_age,
            retention,
            queue_capacity: self.count(&a.queue_capacity, A::DEFAULT_QUEUE_CAPACITY, 1, 1_000_000),
            commit_delay,
        }
    }

    fn tokens(&mut self, raw: &RawTokens) -> TokenConfig {
        let mut ids = HashSet::new();
        let mut iss_values = HashSet::new();
        let mut issuers = Vec::new();
        for i in &raw.issuers {
            if !ids.insert(i.id.value.clone()) {
                self.error(
                    &i.id.referenced,
                    format!("issuer '{}' is defined twice", i.id.value),
                );
            }
            if !iss_values.insert(i.issuer.value.clone()) {
                self.error(
                    &i.issuer.referenced,
                    "another issuer has the same `issuer` (iss); each needs its own",
                );
            }
            let mut algorithms = Vec::new();
            for a in &i.algorithms {
                match a.value.parse::<jsonwebtoken::Algorithm>() {
                    Ok(alg) if alg.family() != jsonwebtoken::AlgorithmFamily::Hmac => {
                        algorithms.push(alg)
                    }
                    Ok(_) => self.error(
                        &a.referenced,
                        "HMAC algorithms are not accepted: a shared secret would let every holder forge tokens; use ES256, ES384, PS256, RS256 or EdDSA",
                    ),
                    Err(_) => self.error(
                        &a.referenced,
                        format!("'{}' is not a signature algorithm; expected ES256, ES384, PS256, RS256 or EdDSA", a.value),
                    ),
                }
            }
            if i.algorithms.is_empty() {
                self.error(
                    &i.id.referenced,
                    "list the algorithms accepted from this issuer",
                );
            }
            let keys: Vec<PathBuf> = i.keys.iter().map(|k| self.existing_file(k)).collect();
            let jwks = i.jwks.as_ref().map(|j| self.existing_file(j));
            if keys.is_empty() && jwks.is_none() {
                self.error(
                    &i.id.referenced,
                    "give the issuer's public keys: keys (PEM files) or jwks (a JWKS file)",
                );
            }
            issuers.push(IssuerConfig {
                id: i.id.value.clone(),
                issuer: i.issuer.value.clone(),
                algorithms,
                keys,
                jwks,
            });
        }
        let leeway = raw
            .leeway
            .as_ref()
            .and_then(|v| {
                self.duration_within(
                    v,
                    Duration::ZERO..=Duration::from_secs(300),
                    "a leeway of at most 5m; expected e.g. 30s",
                )
            })
            .unwrap_or(Duration::from_secs(30));
        TokenConfig {
            audience: raw.audience.value.clone(),
            leeway,
            issuers,
        }
    }

    /// Every consumer that uses tokens names issuers, and every named issuer exists.
    fn check_token_issuers(
        &mut self,
        raw: &[RawConsumer],
        consumers: &[ConsumerConfig],
        tokens: Option<&TokenConfig>,
    ) {
        for (r, c) in raw.iter().zip(consumers) {
            for name in &r.token_issuers {
                if !tokens.is_some_and(|t| t.issuers.iter().any(|i| i.id == name.value)) {
                    self.error(
                        &name.referenced,
                        format!(
                            "issuer '{}' is not defined under tokens.issuers",
                            name.value
                        ),
                    );
                }
            }
            if c.token != TokenMode::Off && c.token_issuers.is_empty() {
                let at = r.token.as_ref().map_or(&r.id.referenced, |t| &t.referenced);
                self.error(at, "a consumer that uses tokens names its token_issuers");
            }
        }
    }

    fn assertions(&mut self, raw: &RawAssertions) -> AssertionConfig {
        let keys: Vec<PathBuf> = raw.keys.iter().map(|k| self.existing_file(k)).collect();
        let lifetime = raw
            .lifetime
            .as_ref()
            .and_then(|v| {
                self.duration_within(
                    v,
                    Duration::from_secs(1)..=Duration::from_secs(60),
                    "an assertion lifetime from 1s to 60s",
                )
            })
            .unwrap_or(Duration::from_secs(60));
        AssertionConfig { keys, lifetime }
    }

    fn listener_tls(&mut self, raw: &RawListenerTls) -> ListenerTls {
        ListenerTls {
            certificate: self.existing_file(&raw.certificate),
            key: self.existing_file(&raw.key),
            client_ca: self.file_list(&raw.client_ca, "client_ca"),
            crls: raw.crls.iter().map(|p| self.existing_file(p)).collect(),
        }
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let path = Path::new(p);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    fn existing_file(&mut self, p: &Spanned<String>) -> PathBuf {
        let path = self.resolve(&p.value);
        if !path.is_file() {
            self.error(
                &p.referenced,
                format!("file '{}' does not exist or is not a file", path.display()),
            );
        }
        path
    }

    fn existing_dir(&mut self, p: &Spanned<String>) -> PathBuf {
        let path = self.resolve(&p.value);
        if !path.is_dir() {
            self.error(
                &p.referenced,
                format!("directory '{}' does not exist", path.display()),
            );
        }
        path
    }

    fn file_list(&mut self, list: &[Spanned<String>], what: &str) -> Vec<PathBuf> {
        if list.is_empty() {
            // No position for an empty list; point at the file so the message is still useful.
            self.diagnostics.push(Diagnostic::file_error(
                self.file,
                format!("'{what}' needs at least one CA certificate file"),
            ));
        }
        list.iter().map(|p| self.existing_file(p)).collect()
    }

    fn socket_addr(&mut self, s: &Spanned<String>) -> Option<SocketAddr> {
        match s.value.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.error(
                    &s.referenced,
                    format!(
                        "'{}' is not a socket address; expected IP:PORT such as 127.0.0.1:8443 or [::1]:8443",
                        s.value
                    ),
                );
                None
            }
        }
    }

    fn oin(&mut self, s: &Spanned<String>) -> Option<Oin> {
        match Oin::parse(&s.value) {
            Ok(oin) => Some(oin),
            Err(e) => {
                self.error(&s.referenced, format!("{e} (quote it: \"000000...\")"));
                None
            }
        }
    }

    fn count(&mut self, v: &Option<Spanned<u64>>, default: usize, min: u64, max: u64) -> usize {
        match v {
            None => default,
            Some(v) if (min..=max).contains(&v.value) => v.value as usize,
            Some(v) => {
                self.error(
                    &v.referenced,
                    format!("expected a number from {min} to {max}"),
                );
                default
            }
        }
    }

    /// A duration within `range`, or an error "'<value>' is not <expected>".
    fn duration_within(
        &mut self,
        v: &Spanned<String>,
        range: std::ops::RangeInclusive<Duration>,
        expected: &str,
    ) -> Option<Duration> {
        match humantime::parse_duration(&v.value) {
            Ok(d) if range.contains(&d) => Some(d),
            _ => {
                self.error(&v.referenced, format!("'{}' is not {expected}", v.value));
                None
            }
        }
    }

    fn duration(&mut self, v: &Option<Spanned<String>>, default: Duration) -> Duration {
        match v {
            None => default,
            Some(v) => match humantime::parse_duration(&v.value) {
                Ok(d) if !d.is_zero() && d <= Duration::from_secs(3600) => d,
                Ok(_) => {
                    self.error(&v.referenced, "expected a duration above 0 and at most 1h");
                    default
                }
                Err(_) => {
                    self.error(
                        &v.referenced,
                        format!(
                            "'{}' is not a duration; expected e.g. 500ms, 5s, 2m",
                            v.value
                        ),
                    );
                    default
                }
            },
        }
    }

    fn partner_url(&mut self, s: &Spanned<String>) -> http::Uri {
        let fallback = http::Uri::from_static("https://invalid.invalid");
        let uri: http::Uri = match s.value.parse() {
            Ok(u) => u,
            Err(_) => {
                self.error(&s.referenced, format!("'{}' is not a URL", s.value));
                return fallback;
            }
        };
        if uri.scheme_str() != Some("https") {
            self.error(
                &s.referenced,
                "a partner URL must start with https:// (partners are reached over mTLS only)",
            );
            return fallback;
        }
        if uri.authority().is_none() {
            self.error(&s.referenced, "a partner URL needs a host");
            return fallback;
        }
        if uri.query().is_some() {
            self.error(&s.referenced, "a partner URL has no query string");
            return fallback;
        }
        uri
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str) -> String {
        std::fs::write(dir.join(name), "x").unwrap();
        name.to_string()
    }

    fn sample(dir: &Path) -> String {
        for f in ["gw.crt", "gw.key", "ca.crt", "c.crt", "c.key"] {
            write(dir, f);
        }
        std::fs::create_dir_all(dir.join("policies")).unwrap();
        std::fs::create_dir_all(dir.join("schemas")).unwrap();
        r#"
listen: 127.0.0.1:8443
admin_listen: 127.0.0.1:9901
tls:
  certificate: gw.crt
  key: gw.key
  client_ca: [ca.crt]
limits:
  request_timeout: 5s
consumers:
  - id: wijkteam-rotterdam
    oin: "00000001999990001000"
partners:
  - id: uwv
    url: https://127.0.0.1:9441
    client_certificate: c.crt
    client_key: c.key
    trust: [ca.crt]
policies: policies
schemas: schemas
audit:
  dir: audit
  subject_key: keys/audit-subject.key
"#
        .to_string()
    }

    #[test]
    fn loads_a_valid_config_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::from_yaml(&sample(dir.path()), Path::new("gw.yaml"), dir.path()).unwrap();
        assert_eq!(cfg.listen.port(), 8443);
        assert_eq!(cfg.limits.request_timeout, Duration::from_secs(5));
        assert_eq!(cfg.limits.max_headers, Limits::default().max_headers);
        assert_eq!(cfg.partners[0].url.port_u16(), Some(9441));
        assert_eq!(cfg.tls.certificate, dir.path().join("gw.crt"));
        assert_eq!(cfg.problem_base, DEFAULT_PROBLEM_BASE);
        assert!(cfg.audit.enabled);
        assert_eq!(cfg.audit.dir, dir.path().join("audit"));
        assert_eq!(cfg.audit.retention, None);
        assert_eq!(cfg.benchmark, BenchmarkSwitches::default());
    }

    #[test]
    fn the_commit_delay_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let with = |delay: &str| {
            sample(dir.path()).replace(
                "  subject_key: keys/audit-subject.key\n",
                &format!("  subject_key: keys/audit-subject.key\n  commit_delay: {delay}\n"),
            )
        };
        let cfg = Config::from_yaml(&with("200us"), Path::new("gw.yaml"), dir.path()).unwrap();
        assert_eq!(cfg.audit.commit_delay, Duration::from_micros(200));
        let err = Config::from_yaml(&with("20ms"), Path::new("gw.yaml"), dir.path()).unwrap_err();
        assert!(err.to_string().contains("commit delay"), "{err}");
        let default =
            Config::from_yaml(&sample(dir.path()), Path::new("gw.yaml"), dir.path()).unwrap();
        assert_eq!(default.audit.commit_delay, Duration::ZERO);
    }

    #[test]
    fn no_configuration_file_can_switch_minimisation_off() {
        let dir = tempfile::tempdir().unwrap();
        for extra in [
            "benchmark:\n  skip_minimisation: true\n",
            "skip_minimisation: true\n",
        ] {
            let yaml = sample(dir.path()) + extra;
            assert!(Config::from_yaml(&yaml, Path::new("gw.yaml"), dir.path()).is_err());
        }
    }

    #[test]
    fn token_issuers_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("idp.pem"), "x").unwrap();
        let base = sample(dir.path());
        let with = |consumer: &str, tokens: &str| {
            base.replace(
                "    oin: \"00000001999990001000\"\n",
                &format!("    oin: \"00000001999990001000\"\n{consumer}"),
            ) + tokens
        };
        let good_tokens = "tokens:\n  audience: urn:x\n  issuers:\n    - {id: idp, issuer: https://idp, algorithms: [ES256], keys: [idp.pem]}\n";
        let ok = with(
            "    token: required\n    token_issuers: [idp]\n",
            good_tokens,
        );
        let cfg = Config::from_yaml(&ok, Path::new("gw.yaml"), dir.path()).unwrap();
        assert_eq!(cfg.consumers[0].token, TokenMode::Required);
        assert_eq!(cfg.tokens.unwrap().leeway, Duration::from_secs(30));

        for (consumer, tokens, expected) in [
            ("    token: required\n", good_tokens, "names its token_issuers"),
            ("    token: maybe\n    token_issuers: [idp]\n", good_tokens, "token mode 'maybe'"),
            ("    token: optional\n    token_issuers: [other]\n", good_tokens, "issuer 'other' is not defined"),
            (
                "    token: required\n    token_issuers: [idp]\n",
                "tokens:\n  audience: urn:x\n  issuers:\n    - {id: idp, issuer: https://idp, algorithms: [HS256], keys: [idp.pem]}\n",
                "HMAC algorithms are not accepted",
            ),
            (
                "    token: required\n    token_issuers: [idp]\n",
                "tokens:\n  audience: urn:x\n  issuers:\n    - {id: idp, issuer: https://idp, algorithms: [none], keys: [idp.pem]}\n",
                "'none' is not a signature algorithm",
            ),
            (
                "    token: required\n    token_issuers: [idp]\n",
                "tokens:\n  audience: urn:x\n  issuers:\n    - {id: idp, issuer: https://idp, algorithms: [ES256]}\n",
                "give the issuer's public keys",
            ),
            (
                "    token: required\n    token_issuers: [idp]\n",
                "tokens:\n  audience: urn:x\n  issuers:\n    - {id: idp, issuer: https://idp, algorithms: [ES256], keys: [idp.pem]}\n    - {id: idp2, issuer: https://idp, algorithms: [ES256], keys: [idp.pem]}\n",
                "another issuer has the same `issuer`",
            ),
        ] {
            let err = Config::from_yaml(&with(consumer, tokens), Path::new("gw.yaml"), dir.path())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "expected '{expected}' in:\n{err}");
        }
    }

    #[test]
    fn the_audit_log_is_required_and_its_key_kept_apart() {
        let dir = tempfile::tempdir().unwrap();
        let without = sample(dir.path()).replace(
            "audit:\n  dir: audit\n  subject_key: keys/audit-subject.key\n",
            "",
        );
        let err = Config::from_yaml(&without, Path::new("gw.yaml"), dir.path()).unwrap_err();
        assert!(err.to_string().contains("audit"), "{err}");

        let no_key = sample(dir.path()).replace("  subject_key: keys/audit-subject.key\n", "");
        let err = Config::from_yaml(&no_key, Path::new("gw.yaml"), dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains("gw.yaml:22:3: error: the audit log needs a subject_key"),
            "{err}"
        );

        let inside = sample(dir.path()).replace("keys/audit-subject.key", "audit/key");
        let err = Config::from_yaml(&inside, Path::new("gw.yaml"), dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("outside the audit directory"),
            "{err}"
        );

        let off = without + "audit: {mode: off}\n";
        let cfg = Config::from_yaml(&off, Path::new("gw.yaml"), dir.path()).unwrap();
        assert!(!cfg.audit.enabled);

        let bad = sample(dir.path()).replace(
            "  dir: audit\n",
            "  dir: audit\n  retention: 3h\n  mode: fast\n",
        );
        let err = Config::from_yaml(&bad, Path::new("gw.yaml"), dir.path()).unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
    }

    #[test]
    fn reports_every_error_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let text = sample(dir.path())
            .replace("127.0.0.1:8443", "localhost")
            .replace("\"00000001999990001000\"", "\"123\"")
            .replace("https://127.0.0.1:9441", "http://127.0.0.1:9441")
            .replace("5s", "five seconds");
        let err = Config::from_yaml(&text, Path::new("gw.yaml"), dir.path()).unwrap_err();
        let lines: Vec<String> = err.0.iter().map(|d| d.to_string()).collect();
        assert_eq!(err.0.len(), 4, "{lines:#?}");
        assert!(
            lines[0].starts_with("gw.yaml:2:9: error: 'localhost' is not a socket address"),
            "{}",
            lines[0]
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("gw.yaml:9:20:") && l.contains("duration")),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("gw.yaml:12:10:") && l.contains("20 digits")),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("gw.yaml:15:10:") && l.contains("https://")),
            "{lines:#?}"
        );
    }

    #[test]
    fn unknown_key_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let text = sample(dir.path()).replace("admin_listen:", "admin_lsten:");
        let err = Config::from_yaml(&text, Path::new("gw.yaml"), dir.path()).unwrap_err();
        let d = &err.0[0];
        assert_eq!(d.line, 3, "{d}");
        assert!(d.message.contains("admin_lsten"), "{d}");
    }

    #[test]
    fn missing_file_and_duplicate_consumer() {
        let dir = tempfile::tempdir().unwrap();
        let text = sample(dir.path())
            .replace("key: gw.key", "key: missing.key")
            .replace(
                "partners:",
                "  - id: wijkteam-rotterdam\n    oin: \"00000001999990002000\"\npartners:",
            );
        let err = Config::from_yaml(&text, Path::new("gw.yaml"), dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("gw.yaml:6:8: error: file"), "{text}");
        assert!(text.contains("defined twice"), "{text}");
    }
}
