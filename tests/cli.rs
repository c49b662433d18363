//! The `doelpoort` binary's file-facing commands, run as a user would run them.

mod harness;

use harness::*;

fn doelpoort(args: &[&str]) -> (i32, String) {
    run_doelpoort(args)
}

#[test]
fn check_accepts_a_valid_config_and_warns_on_expiry_within_30_days() {
    let pki = TestPki::new();
    let spec = PartnerSpec::new("uwv", "127.0.0.1:9".parse().unwrap());
    let path = write_config(&pki, &config_yaml(&pki, &[spec], ""));
    let (code, out) = doelpoort(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(": ok ("), "{out}");
    // The test PKI is valid for 30 days, so every certificate is within the warning window.
    assert!(
        out.contains("warning: certificate") && out.contains("expires in 29 day"),
        "{out}"
    );
}

#[test]
fn check_reports_each_error_with_file_line_and_column() {
    let pki = TestPki::new();
    let spec = PartnerSpec::new("uwv", "127.0.0.1:9".parse().unwrap());
    let yaml = config_yaml(&pki, &[spec], "  request_timeout: soon")
        .replacen("listen: 127.0.0.1:0\n", "listen: 127.0.0.1\n", 1)
        .replace(&format!("oin: \"{CONSUMER_OIN}\""), "oin: \"12345\"");
    let path = write_config(&pki, &yaml);
    let (code, out) = doelpoort(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let file = path.display().to_string();
    let errors: Vec<&str> = out.lines().filter(|l| l.contains(": error: ")).collect();
    assert_eq!(errors.len(), 3, "{out}");
    for line in &errors {
        let rest = line
            .strip_prefix(&format!("{file}:"))
            .unwrap_or_else(|| panic!("{line}"));
        let mut parts = rest.splitn(3, ':');
        let line_no: u32 = parts.next().unwrap().parse().unwrap();
        let col: u32 = parts.next().unwrap().parse().unwrap();
        assert!(line_no > 0 && col > 0, "{line}");
    }
    assert!(out.contains("is not a socket address"), "{out}");
    assert!(out.contains("20 digits"), "{out}");
    assert!(out.contains("'soon' is not a duration"), "{out}");
}

#[test]
fn check_reports_unreadable_certificates() {
    let pki = TestPki::new();
    std::fs::write(pki.path("gateway.crt"), "not a certificate").unwrap();
    let spec = PartnerSpec::new("uwv", "127.0.0.1:9".parse().unwrap());
    let path = write_config(&pki, &config_yaml(&pki, &[spec], ""));
    let (code, out) = doelpoort(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("listener TLS"), "{out}");
}

#[test]
fn the_documented_example_configs_check_clean() {
    // The municipality's gateway, and a provider's inway (SPEC §10).
    for example in ["doelpoort.yaml", "inway.yaml"] {
        let path = repo_root().join("docs/examples").join(example);
        let (code, out) = doelpoort(&["check", "--config", path.to_str().unwrap()]);
        assert_eq!(code, 0, "{example}: {out}");
        assert!(out.contains(": ok (0 warning(s))"), "{example}: {out}");
    }
}

#[test]
fn an_inways_configuration_errors_are_located() {
    let pki = TestPki::new();
    let spec = PartnerSpec::new("uwv", "127.0.0.1:9".parse().unwrap());
    // An inway needs each caller's assertion keys: a plain-http JWKS off loopback is refused,
    // as are a case register at an inway and an FSC group id of the wrong form.
    let inway = config_yaml(&pki, &[spec], "")
        .replace("instance: test", "role: inway\ninstance: test")
        .replace(
            "    case_admin: true\n",
            "    case_admin: true\n    assertion_jwks: http://jwks.example/.well-known/jwks.json\n",
        );
    let yaml = inway.clone()
        + "fsc:\n  group_id: fsc test\n  address: https://localhost:8443\n  contracts: []\n";
    let path = write_config(&pki, &yaml);
    let (code, out) = doelpoort(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    for expected in [
        "the JWKS address must be https:// (http:// only on 127.0.0.1, [::1] or localhost)",
        "the case register is kept at the consumers' side (outway), not at an inway",
        "a group id is 1 to 100 of a-z A-Z 0-9 . / _ - (FSC core)",
    ] {
        assert!(out.contains(expected), "{expected}: {out}");
    }
    // An FSC block without the inway's address (every token's audience) does not parse.
    let path = write_config(&pki, &(inway + "fsc:\n  group_id: fsc-test\n"));
    let (code, out) = doelpoort(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("missing field `address`"), "{out}");
    assert!(out.contains("doelpoort.yaml:"), "located: {out}");
}

#[test]
fn the_consoles_configuration_errors_are_located() {
    let pki = TestPki::new();
    let spec = PartnerSpec::new("uwv", "127.0.0.1:9".parse().unwrap());
    let fp = "ab".repeat(32);
    let console = format!(
        "console:\n  listen: 127.0.0.1:0\n  tls:\n    certificate: {dir}/gateway.crt\n    key: {dir}/gateway.key\n    client_ca: [{dir}/ca.crt]\n  officers:\n    - id: fg-a\n      name: A\n      fingerprints: [\"{fp}\"]\n    - id: fg-b\n      name: B\n      fingerprints: [\"{fp}\", \"abc\"]\n    - id: fg-c\n      name: C\n    - id: \"fg c\"\n      name: D\n      fingerprints: []\n",
        dir = pki.path("").display()
    );
    let path = write_config(&pki, &(config_yaml(&pki, &[spec], "") + &console));
    let (code, out) = doelpoort(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    for expected in [
        "this fingerprint is already listed for another officer",
        "a fingerprint is 64 hexadecimal digits (SHA-256)",
        "officer 'fg-c' needs at least one certificate fingerprint",
        "an officer id is",
    ] {
        assert!(out.contains(expected), "{expected}: {out}");
    }
    let file = path.display().to_string();
    assert!(
        out.lines()
            .filter(|l| l.contains(": error: "))
            .all(|l| l.starts_with(&format!("{file}:"))),
        "every error is located: {out}"
    );
}

#[test]
fn check_also_checks_the_policies_and_that_both_name_the_same_parties() {
    let pki = TestPki::new();
    let spec = PartnerSpec::new("uwv", "127.0.0.1:9".parse().unwrap());
    let yaml = config_yaml(&pki, &[spec], "").replace("id: wijkteam-test", "id: wijkteam-elders");
    let path = write_config(&pki, &yaml);
    let (code, out) = doelpoort(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "consumer 'wijkteam-elders' is configured but not in the policies' consumer register"
        ),
        "{out}"
    );

    // A broken policy file makes the whole check fail, located in the policy file.
    std::fs::write(
        pki.path("policies/policy.yaml"),
        TEST_POLICY.replace(
            "purpose: test-doel\n    without",
            "purpose: test-doe\n    without",
        ),
    )
    .unwrap();
    let (code, out) = doelpoort(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let policy_file = pki.path("policies/policy.yaml").display().to_string();
    assert!(out.contains(&format!("{policy_file}:")), "{out}");
    assert!(
        out.contains("unknown purpose 'test-doe'; did you mean 'test-doel'?"),
        "{out}"
    );
}

#[test]
fn certs_generate_writes_a_pki_the_gateway_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("pki");
    let (code, out) = doelpoort(&[
        "certs",
        "generate",
        target.to_str().unwrap(),
        "--days",
        "400",
    ]);
    assert_eq!(code, 0, "{out}");
    for file in [
        "ca.crt",
        "gateway.crt",
        "gateway.key",
        "gateway-client.crt",
        "clients/wijkteam-rotterdam.crt",
        "clients/schuldhulp-utrecht.key",
        "clients/onbekend.crt",
        "partners/uwv.crt",
        "partners/jeugdhulp.key",
    ] {
        assert!(target.join(file).is_file(), "{file} missing");
    }
    let validity =
        doelpoort::tls::certificate_validity(&target.join("clients/wijkteam-rotterdam.crt"))
            .unwrap();
    let days = (validity[0].not_after - validity[0].not_before) / 86_400;
    assert_eq!(days, 400);
    let identity = doelpoort::tls::peer_identity(
        doelpoort::tls::load_certificates(&target.join("clients/wijkteam-rotterdam.crt")).unwrap()
            [0]
        .as_ref(),
    )
    .unwrap();
    assert_eq!(identity.oin.unwrap().as_str(), "00000001999990001000");
}

#[test]
fn policy_test_passes_on_the_shipped_policies() {
    let dir = repo_root().join("policies");
    let (code, out) = doelpoort(&["policy", "test", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(" passed, 0 failed"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
}

#[test]
fn policy_explain_shows_what_a_sample_response_becomes() {
    let root = repo_root();
    let (code, out) = doelpoort(&[
        "policy",
        "explain",
        root.join("policies").to_str().unwrap(),
        "--consumer",
        "wijkteam-rotterdam",
        "--request",
        "GET /uwv/v1/personen/999990019/inkomen",
        "-H",
        "Doelbinding-Purpose: wams-onderzoek",
        "-H",
        "Doelbinding-Case-Id: casus-2026-0001",
        "-H",
        "Doelbinding-Data-Subject: bsn=999990019",
        "--response",
        root.join("schemas/examples/uwv-inkomen.999990019.json")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("decision:       ALLOW"), "{out}");
    assert!(out.contains("AVG art. 6(1)(e)"), "{out}");
    let sample = out
        .split("sample response, as the consumer would receive it:")
        .nth(1)
        .and_then(|rest| rest.split("response fields").next())
        .expect("a sample section");
    // The released sample names the kinds, not the medical reason or the employer…
    let released = sample.split("value(s) released").next().unwrap();
    assert!(released.contains("\"WIA\""), "{sample}");
    for withheld in ["Fictieve", "Voorbeeld Schoonmaak", "999990019", "987.25"] {
        assert!(!released.contains(withheld), "{withheld} in {sample}");
    }
    // …and says what it withheld.
    assert!(sample.contains("/uitkeringen/*/medische_reden"), "{sample}");
}
