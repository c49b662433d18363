//! What operators see: the metrics after a known workload, `/readyz` following the audit log
//! and the policy set, `/version`, an admin listener behind mTLS, and no personal data in any
//! log line or metric while real requests flow.

mod harness;

use bytes::Bytes;
use harness::*;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use std::sync::Arc;
use std::time::Duration;

const BSN: &str = "999990019";
const CASE: &str = "casus-geheim-77";
const ACTOR: &str = "medewerker-geheim-5";
const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJnZWhlaW0ifQ.c2lnbmF0dXJlLWdlaGVpbQ";

/// `ping` answers, `slow` fails with personal data in its body, `inkomen` answers JSON that
/// names the person.
fn partner_handler() -> doelpoort::demo::MockHandler {
    Arc::new(|req: doelpoort::demo::MockRequest| {
        let path = req.uri().path().to_string();
        Box::pin(async move {
            let (status, body) = if path.ends_with("/ping") {
                (StatusCode::OK, r#"{"ok":true}"#)
            } else if path.ends_with("/slow") {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    r#"{"fout":"intern","bsn":"999990019"}"#,
                )
            } else {
                (StatusCode::OK, r#"{"bsn":"999990019","inkomen":1234}"#)
            };
            let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
            *r.status_mut() = status;
            r.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            r
        })
    })
}

fn request(port: u16, path: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut b = Request::get(format!("https://localhost:{port}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::new())).unwrap()
}

/// The value of one sample line `name{labels} value` in a Prometheus text exposition.
fn sample(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {name_and_labels} in:\n{text}"))
}

#[tokio::test]
async fn metrics_count_a_mixed_workload_exactly() {
    let pki = TestPki::new();
    let partner = start_partner(&pki, partner_handler()).await;
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    let port = gateway.local_addr.port();
    let admin = gateway.admin_addr.unwrap().to_string();
    let consumer = client(&pki, "consumer", Http::One);
    let purpose = ("doelbinding-purpose", TEST_PURPOSE);

    for _ in 0..3 {
        let r = send(&consumer, request(port, "/uwv/v1/ping", &[purpose])).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    for _ in 0..2 {
        let r = send(&consumer, request(port, "/uwv/v1/ping", &[])).await;
        assert_eq!(r.problem_code(), "purpose-missing");
    }
    let r = send(
        &consumer,
        request(
            port,
            "/uwv/v1/ping",
            &[("doelbinding-purpose", "geen-doel")],
        ),
    )
    .await;
    assert_eq!(r.problem_code(), "purpose-unknown");
    let r = send(&consumer, request(port, "/uwv/v1/nergens", &[purpose])).await;
    assert_eq!(r.problem_code(), "unknown-route");
    let unknown = client(&pki, "unknown", Http::One);
    let r = send(&unknown, request(port, "/uwv/v1/ping", &[purpose])).await;
    assert_eq!(r.problem_code(), "unknown-consumer");
    for _ in 0..2 {
        let r = send(&consumer, request(port, "/uwv/v1/slow", &[purpose])).await;
        assert_eq!(r.problem_code(), "upstream-unavailable");
    }
    // A handshake without a client certificate.
    assert!(try_raw_request(gateway.local_addr, client_tls(&pki, None))
        .await
        .is_err());
    // A reload that works, and one that fails (the running set stays).
    let policy_file = pki.path("policies/policy.yaml");
    let text = std::fs::read_to_string(&policy_file).unwrap();
    std::fs::write(&policy_file, format!("{text}\n# touched\n")).unwrap();
    let ok = || {
        gateway
            .metrics
            .policy_reloads
            .with_label_values(&["ok"])
            .get()
    };
    eventually("a successful reload", Duration::from_secs(10), || ok() >= 2).await;
    std::fs::write(&policy_file, "grants: [ {id: } ]\n").unwrap();
    let failed = || {
        gateway
            .metrics
            .policy_reloads
            .with_label_values(&["failed"])
            .get()
    };
    eventually("a failed reload", Duration::from_secs(10), || failed() >= 1).await;

    let (status, text) = admin_get(&admin, "/metrics").await;
    assert_eq!(status, 200);
    let requests = |labels: &str| sample(&text, &format!("doelpoort_requests_total{{{labels}}}"));
    assert_eq!(
        requests(
            r#"consumer="wijkteam-test",decision="allow",operation="ping",partner="uwv",purpose="test-doel""#
        ),
        3.0
    );
    assert_eq!(
        requests(
            r#"consumer="wijkteam-test",decision="deny",operation="ping",partner="uwv",purpose="unknown""#
        ),
        3.0,
        "purpose-missing ×2 and purpose-unknown"
    );
    assert_eq!(
        requests(
            r#"consumer="unknown",decision="deny",operation="unknown",partner="unknown",purpose="unknown""#
        ),
        1.0
    );
    assert_eq!(
        requests(
            r#"consumer="wijkteam-test",decision="error",operation="slow",partner="uwv",purpose="test-doel""#
        ),
        2.0
    );
    let problems = |labels: &str| sample(&text, &format!("doelpoort_problems_total{{{labels}}}"));
    for (code, n) in [
        ("purpose-missing", 2.0),
        ("purpose-unknown", 1.0),
        ("upstream-unavailable", 2.0),
    ] {
        assert_eq!(
            problems(&format!(
                r#"code="{code}",consumer="wijkteam-test",partner="uwv""#
            )),
            n,
            "{code}"
        );
    }
    assert_eq!(
        problems(r#"code="unknown-route",consumer="wijkteam-test",partner="uwv""#),
        1.0
    );
    assert_eq!(
        problems(r#"code="unknown-consumer",consumer="unknown",partner="unknown""#),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"doelpoort_upstream_errors_total{kind="status_5xx",partner="uwv"}"#
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            r#"doelpoort_upstream_duration_seconds_count{partner="uwv"}"#
        ),
        5.0,
        "3 answers + 2 failures the partner did send"
    );
    assert_eq!(
        sample(
            &text,
            r#"doelpoort_request_duration_seconds_count{decision="allow",partner="uwv"}"#
        ),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            r#"doelpoort_fields_withheld_total{operation="ping",partner="uwv",purpose="test-doel"}"#
        ),
        3.0,
        "`ok` withheld from each ping (the test grant releases nothing)"
    );
    assert_eq!(
        sample(
            &text,
            r#"doelpoort_tls_handshake_failures_total{reason="no_client_certificate"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(&text, r#"doelpoort_policy_reloads_total{result="ok"}"#),
        2.0
    );
    assert_eq!(
        sample(&text, r#"doelpoort_policy_reloads_total{result="failed"}"#),
        1.0
    );
    assert_eq!(sample(&text, "doelpoort_audit_failures_total"), 0.0);
    assert_eq!(sample(&text, "doelpoort_audit_queue_depth"), 0.0);
    assert!(
        sample(&text, "doelpoort_audit_write_duration_seconds_count") >= 1.0,
        "group commits are observed"
    );
    let version = gateway.policies.current().unwrap().version.clone();
    assert_eq!(
        sample(
            &text,
            &format!(r#"doelpoort_policy_info{{version="{version}"}}"#)
        ),
        1.0
    );
    assert!(
        sample(
            &text,
            r#"doelpoort_certificate_expiry_timestamp_seconds{certificate="listener"}"#
        ) > 0.0
    );

    let (status, body) = admin_get(&admin, "/version").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["name"], "doelpoort");
    assert_eq!(v["instance"], "test");
    assert_eq!(v["policy_version"], version.as_str());
    gateway.shutdown().await;
}

#[tokio::test]
async fn readyz_follows_the_audit_directory_and_the_policy_set() {
    let pki = TestPki::new();
    let partner = start_partner(&pki, partner_handler()).await;
    // The policy set is broken at start: the gateway runs, refuses, and is not ready.
    write_policies(&pki, "grants: [ {id: } ]\n");
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    let admin = gateway.admin_addr.unwrap().to_string();
    let (status, body) = admin_get(&admin, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("policy"), "{body}");

    // Fixed: reloaded, ready.
    std::fs::write(pki.path("policies/policy.yaml"), TEST_POLICY).unwrap();
    eventually("the fixed policy set", Duration::from_secs(10), || {
        gateway.policies.current().is_some()
    })
    .await;
    let (status, body) = admin_get(&admin, "/readyz").await;
    assert_eq!(status, 200, "{body}");

    // The audit directory disappears (moved away): not ready, with the reason.
    let dir = pki.path("audit");
    let moved = pki.path("audit-moved");
    std::fs::rename(&dir, &moved).unwrap();
    let (status, body) = admin_get(&admin, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("audit directory is not writable"), "{body}");
    std::fs::rename(&moved, &dir).unwrap();
    let (status, body) = admin_get(&admin, "/readyz").await;
    assert_eq!(status, 200, "{body}");

    // An error of the admin listener is a problem+json like the data listener's.
    let (status, body) = admin_get(&admin, "/nope").await;
    assert_eq!(status, 404, "{body}");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["code"], "unknown-route", "{body}");
    gateway.shutdown().await;
}

#[tokio::test]
async fn the_admin_listener_can_require_a_client_certificate() {
    let pki = TestPki::new();
    let partner = start_partner(&pki, partner_handler()).await;
    let dir = pki.dir.path().display().to_string();
    let yaml = config_yaml(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").replace(
        "admin_listen: 127.0.0.1:0\n",
        &format!(
            "admin_listen: 127.0.0.1:0\nadmin_tls:\n  certificate: {dir}/gateway.crt\n  key: {dir}/gateway.key\n  client_ca: [{dir}/ca.crt]\n"
        ),
    );
    let path = write_config(&pki, &yaml);
    let config = doelpoort::config::Config::load(&path).unwrap();
    let gateway = doelpoort::server::start(&config).await.unwrap();
    let admin = gateway.admin_addr.unwrap();
    assert!(
        gateway
            .metrics
            .certificate_expiry
            .with_label_values(&["admin_listener"])
            .get()
            > 0.0,
        "the admin certificate's expiry is published too"
    );

    // Plain HTTP gets nothing useful; TLS without a client certificate is refused.
    let (status, _) = admin_get(&admin.to_string(), "/metrics").await;
    assert_eq!(status, 0, "no plain HTTP on an mTLS admin listener");
    assert!(try_raw_request(admin, client_tls(&pki, None))
        .await
        .is_err());
    // With a certificate from the admin trust anchors: served.
    let scraper = client(&pki, "consumer", Http::One);
    let r = send(
        &scraper,
        Request::get(format!("https://localhost:{}/healthz", admin.port()))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    gateway.shutdown().await;
}

/// Real traffic through a real process at debug log level, with a BSN, case id, actor and
/// bearer token in every request (and a BSN in partner answers): none of them may appear in
/// any log line or in the metrics.
#[tokio::test]
async fn no_personal_data_in_logs_or_metrics() {
    let pki = TestPki::new();
    let partner = start_partner(&pki, partner_handler()).await;
    let path = write_config(
        &pki,
        &config_yaml(&pki, &[PartnerSpec::new("uwv", partner.addr)], ""),
    );
    let gateway = GatewayProcess::start_with_log_level(&path, "debug");
    let (port, admin) = gateway.wait_until_serving();
    let consumer = client(&pki, "consumer", Http::One);
    let subject = format!("bsn={BSN}");
    let bearer = format!("Bearer {TOKEN}");
    let context = [
        ("doelbinding-purpose", TEST_PURPOSE),
        ("doelbinding-data-subject", subject.as_str()),
        ("doelbinding-case-id", CASE),
        ("doelbinding-actor", ACTOR),
        ("authorization", bearer.as_str()),
    ];
    let inkomen = format!("/uwv/v1/personen/{BSN}/inkomen?peildatum=2026-01-01");
    for path in [
        inkomen.as_str(),
        "/uwv/v1/ping",
        "/uwv/v1/slow",
        &format!("/uwv/v1/personen/{BSN}/onbekend"),
        &format!("/{BSN}/v1/x"),
    ] {
        let r = send(&consumer, request(port, path, &context)).await;
        assert!(!String::from_utf8_lossy(&r.body).contains(BSN) || r.status == StatusCode::OK);
    }
    // Malformed context with the secrets in it.
    let bad = format!("bsn={BSN}x");
    send(
        &consumer,
        request(
            port,
            &inkomen,
            &[
                ("doelbinding-purpose", TEST_PURPOSE),
                ("doelbinding-data-subject", bad.as_str()),
                ("doelbinding-case-id", CASE),
            ],
        ),
    )
    .await;
    let (_, metrics) = admin_get(&admin, "/metrics").await;
    let raw = gateway.raw_logs.clone();
    drop(gateway);
    // (The reader thread drains what the killed process left in the pipe.)
    std::thread::sleep(Duration::from_millis(200));
    let logs = raw.lock().unwrap().join("\n");
    let access_lines = logs.matches("doelpoort::access").count();
    assert!(
        access_lines >= 6,
        "the exchanges were logged ({access_lines} access lines)"
    );
    assert!(logs.contains("DEBUG"), "debug logging was on");
    for (what, text) in [
        ("the logs", logs.as_str()),
        ("the metrics", metrics.as_str()),
    ] {
        for secret in [BSN, CASE, ACTOR, TOKEN] {
            assert!(!text.contains(secret), "{what} contain {secret}");
        }
    }
}
