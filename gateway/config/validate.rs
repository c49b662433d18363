//! Validation of the raw configuration: every value is checked and resolved, and *all*
//! problems are collected as `file:line:col` diagnostics instead of stopping at the first.

use super::raw::{RawAssertions, RawAudit, RawConfig, RawConsumer, RawListenerTls, RawTokens};
use super::{
    AssertionConfig, Config, ConsumerConfig, IssuerConfig, Limits, ListenerTls, PartnerConfig,
    TokenConfig, TokenMode, DEFAULT_PROBLEM_BASE,
};
use crate::diagnostic::Diagnostic;
use crate::id::Id;
use crate::identity::{Fingerprint, Oin};
use serde_saphyr::Spanned;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(super) struct Validator<'a> {
    pub(super) file: &'a Path,
    pub(super) base_dir: &'a Path,
    pub(super) diagnostics: Vec<Diagnostic>,
}

impl Validator<'_> {
    pub(super) fn error(&mut self, at: &serde_saphyr::Location, message: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::at(self.file, at, message.into()));
    }

    pub(super) fn config(&mut self, raw: RawConfig) -> Config {
        let defaults = Limits::default();
        let listen = self
            .socket_addr(&raw.listen)
            .unwrap_or(([127, 0, 0, 1], 8443).into());
        let admin_listen = raw.admin_listen.as_ref().and_then(|a| self.socket_addr(a));
        let tls = self.listener_tls(&raw.tls);
        let admin_tls = raw.admin_tls.as_ref().map(|t| self.listener_tls(t));
        let console = raw.console.as_ref().map(|c| self.console(c));
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
        let role = self.role(raw.role.as_ref());

        let mut consumer_ids = HashSet::new();
        let mut oins = HashSet::new();
        let mut fingerprints = HashSet::new();
        let mut consumers = Vec::new();
        for c in &raw.consumers {
            let Ok(id) = Id::parse(&c.id.value) else {
                // Nothing further is checked of a consumer without an id to name it by.
                self.error(&c.id.referenced, format!("a consumer id is {}", Id::FORM));
                continue;
            };
            if !consumer_ids.insert(c.id.value.clone()) {
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
                id,
                name: c.name.clone().unwrap_or_else(|| c.id.value.clone()),
                oin,
                fingerprints: fps,
                token,
                token_issuers: c.token_issuers.iter().map(|i| i.value.clone()).collect(),
                processor: c.processor.as_ref().and_then(|p| {
                    let valid = p.value.parse::<http::Uri>().is_ok_and(|u| {
                        u.scheme_str() == Some("https") && u.host().is_some()
                    });
                    if !valid {
                        self.error(
                            &p.referenced,
                            "the processor is the calling application's https URL (Logboek Dataverwerkingen: dpl.core.foreign_operation.processor), e.g. https://wijkteam.rotterdam.example/",
                        );
                    }
                    valid.then(|| p.value.clone())
                }),
                case_admin: c.case_admin,
                assertions: c.assertion_jwks.as_ref().and_then(|j| {
                    self.peer_assertions(j, &c.assertion_jwks_trust, c.assertion_issuer.as_ref())
                }),
            });
            self.check_end(role, c);
        }

        let tokens = raw.tokens.as_ref().map(|t| self.tokens(t));
        self.check_token_issuers(&raw.consumers, &consumers, tokens.as_ref());

        let mut partner_ids = HashSet::new();
        let mut partners = Vec::new();
        for p in &raw.partners {
            let Ok(id) = Id::parse(&p.id.value) else {
                // Nothing further is checked of a partner without an id to name it by.
                self.error(&p.id.referenced, format!("a partner id is {}", Id::FORM));
                continue;
            };
            if !partner_ids.insert(p.id.value.clone()) {
                self.error(
                    &p.id.referenced,
                    format!("partner '{}' is defined twice", p.id.value),
                );
            } else if p.id.value == ".well-known" {
                self.error(&p.id.referenced, "'.well-known' is reserved");
            }
            let url = self.partner_url(&p.url);
            partners.push(PartnerConfig {
                name: p.name.clone().unwrap_or_else(|| p.id.value.clone()),
                oin: p.oin.as_ref().and_then(|o| self.oin(o)),
                url,
                client_certificate: self.existing_file(&p.client_certificate),
                client_key: self.existing_file(&p.client_key),
                trust: self.file_list(&p.trust, "trust"),
                connect_timeout: self.duration(&p.connect_timeout, Duration::from_secs(2)),
                response_timeout: self.duration(&p.response_timeout, Duration::from_secs(10)),
                max_idle_connections: self.count(&p.max_idle_connections, 64, 0, 100_000),
                fsc: p.fsc.as_ref().map(|f| self.fsc_outway(f, &id, role)),
                id,
            });
        }

        let audit = self.audit(&raw.audit);
        let store = self.store(raw.store.as_ref(), &audit);
        let household_key = match &raw.household_key {
            Some(p) => self.existing_file(p),
            None => self.data_dir(&audit).join("household.key"),
        };
        if audit.enabled && audit.sink == super::AuditSink::Postgres {
            if let (false, Some(sink)) = (store.location.is_postgres(), &raw.audit.value.sink) {
                self.error(
                    &sink.referenced,
                    "the audit sink postgres writes to the store's database: set store: postgres://…",
                );
            }
        }
        let fsc = self.inway_checks(
            role,
            raw.fsc.as_ref(),
            gateway_oin.as_ref(),
            &consumers,
            &partners,
            &tls,
        );
        Config {
            role,
            fsc,
            source: Some(self.file.to_path_buf()),
            instance: raw
                .instance
                .map(|i| i.value)
                .unwrap_or_else(|| "doelpoort".to_string()),
            gateway_oin,
            listen,
            admin_listen,
            admin_tls,
            console,
            tls,
            limits,
            problem_base,
            consumers,
            partners,
            policies: self.existing_dir(&raw.policies),
            schemas: self.existing_dir(&raw.schemas),
            audit,
            store,
            tokens,
            assertions: raw.assertions.as_ref().map(|a| self.assertions(a)),
            pseudonym_secret: raw.pseudonym_secret.as_ref().map(|p| self.existing_file(p)),
            // By default beside the default store, in the data directory: never in the
            // process's working directory (where it once landed with the audit log off).
            household_key: Some(household_key),
            #[cfg(feature = "benchmark-switches")]
            benchmark: super::BenchmarkSwitches::default(),
        }
    }

    fn audit(&mut self, raw: &Spanned<RawAudit>) -> super::AuditSettings {
        use super::AuditSettings as A;
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
        let sink = match &a.sink {
            None => super::AuditSink::Files,
            Some(v) if v.value == "files" => super::AuditSink::Files,
            Some(v) if v.value == "postgres" => super::AuditSink::Postgres,
            Some(v) => {
                self.error(
                    &v.referenced,
                    format!(
                        "audit sink '{}' is unknown; expected files or postgres",
                        v.value
                    ),
                );
                super::AuditSink::Files
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
        let dir = match (&a.dir, sink) {
            // The PostgreSQL sink writes no segments; a dir may still be named (for `audit
            // import` of what the replica wrote before).
            (None, super::AuditSink::Postgres) => PathBuf::new(),
            _ => required(&a.dir, "a dir: the directory its segments are written to"),
        };
        let subject_key = required(
            &a.subject_key,
            "a subject_key: the file holding the key that pseudonymises data subjects (created on first start), outside the audit dir",
        );
        if enabled
            && !dir.as_os_str().is_empty()
            && !subject_key.as_os_str().is_empty()
            && subject_key.starts_with(&dir)
        {
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
            .unwrap_or(A::DEFAULT_COMMIT_DELAY);
        A {
            enabled,
            sink,
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
            commit_siblings: self.count(&a.commit_siblings, A::DEFAULT_COMMIT_SIBLINGS, 0, 100_000),
        }
    }

    /// The store: the URL as written, or by default `store.sqlite` in the data directory (the
    /// audit directory's parent, or the configuration's own directory without an audit log).
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
        let max_lifetime = raw
            .max_lifetime
            .as_ref()
            .and_then(|v| {
                self.duration_within(
                    v,
                    Duration::from_secs(1)..=Duration::from_secs(24 * 3600),
                    "a lifetime of at most 24h; expected e.g. 1h",
                )
            })
            .unwrap_or(TokenConfig::DEFAULT_MAX_LIFETIME);
        TokenConfig {
            audience: raw.audience.value.clone(),
            leeway,
            max_lifetime,
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
        let cache_size = self.count(
            &raw.cache_size,
            AssertionConfig::DEFAULT_CACHE_SIZE,
            0,
            1_000_000,
        );
        AssertionConfig {
            keys,
            lifetime,
            cache_size,
        }
    }

    pub(super) fn listener_tls(&mut self, raw: &RawListenerTls) -> ListenerTls {
        ListenerTls {
            certificate: self.existing_file(&raw.certificate),
            key: self.existing_file(&raw.key),
            client_ca: self.file_list(&raw.client_ca, "client_ca"),
            crls: raw.crls.iter().map(|p| self.existing_file(p)).collect(),
        }
    }

    pub(super) fn resolve(&self, p: &str) -> PathBuf {
        let path = Path::new(p);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    pub(super) fn existing_file(&mut self, p: &Spanned<String>) -> PathBuf {
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

    pub(super) fn file_list(&mut self, list: &[Spanned<String>], what: &str) -> Vec<PathBuf> {
        if list.is_empty() {
            // No position for an empty list; point at the file so the message is still useful.
            self.diagnostics.push(Diagnostic::file_error(
                self.file,
                format!("'{what}' needs at least one CA certificate file"),
            ));
        }
        list.iter().map(|p| self.existing_file(p)).collect()
    }

    pub(super) fn socket_addr(&mut self, s: &Spanned<String>) -> Option<SocketAddr> {
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

    pub(super) fn oin(&mut self, s: &Spanned<String>) -> Option<Oin> {
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
    pub(super) fn duration_within(
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

    pub(super) fn duration(&mut self, v: &Option<Spanned<String>>, default: Duration) -> Duration {
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

    pub(super) fn partner_url(&mut self, s: &Spanned<String>) -> http::Uri {
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
