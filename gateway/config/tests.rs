//! Unit tests of loading and validating the configuration.

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
    #[cfg(feature = "benchmark-switches")]
    assert_eq!(cfg.benchmark, super::BenchmarkSwitches::default());
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
    let default = Config::from_yaml(&sample(dir.path()), Path::new("gw.yaml"), dir.path()).unwrap();
    assert_eq!(
        default.audit.commit_delay,
        crate::config::AuditSettings::DEFAULT_COMMIT_DELAY
    );
    assert_eq!(default.audit.commit_siblings, 5);
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

#[test]
fn the_household_key_defaults_to_the_data_directory_never_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::from_yaml(&sample(dir.path()), Path::new("gw.yaml"), dir.path()).unwrap();
    let data_dir = cfg.audit.dir.parent().unwrap().to_path_buf();
    assert_eq!(cfg.household_key, Some(data_dir.join("household.key")));
    // With the audit log off: beside the default store, in the configuration's directory.
    let off = sample(dir.path()).replace(
        "  dir: audit\n  subject_key: keys/audit-subject.key\n",
        "  mode: off\n",
    );
    let cfg = Config::from_yaml(&off, Path::new("gw.yaml"), dir.path()).unwrap();
    assert!(!cfg.audit.enabled);
    assert_eq!(cfg.household_key, Some(dir.path().join("household.key")));
    assert_eq!(
        cfg.store.location,
        crate::store::StoreLocation::Sqlite(dir.path().join("store.sqlite"))
    );
}
