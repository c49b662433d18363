//! The lawful-basis audit log through a real gateway: one record per decision, nothing of a
//! person in clear, `audit verify` / `audit query` on the real files, a file-size limit that
//! makes the log unwritable (refused, nothing released), and a SIGKILL under load.

mod harness;

use bytes::Bytes;
use harness::*;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BSN: &str = "999990019";
const OTHER_BSN: &str = "999990020";
/// Personal data in a partner's error body: must never reach the caller or the log.
const LEAKY_ERROR: &str = r#"{"fout":"intern","bsn":"999990019","naam":"J. Jansen"}"#;

/// A partner whose answer depends on the path: `ping` answers, `slow` fails with personal
/// data in its error body, `inkomen` answers something that is not JSON.
fn partner_handler() -> doelpoort::demo::MockHandler {
    Arc::new(|req: doelpoort::demo::MockRequest| {
        let path = req.uri().path().to_string();
        Box::pin(async move {
            let (status, body, kind) = if path.ends_with("/ping") {
                (StatusCode::OK, r#"{"ok":true}"#, "application/json")
            } else if path.ends_with("/slow") {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    LEAKY_ERROR,
                    "application/json",
                )
            } else {
                (StatusCode::OK, "inkomen: 1234 euro", "text/plain")
            };
            let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
            *r.status_mut() = status;
            r.headers_mut()
                .insert("content-type", kind.parse().unwrap());
            r
        })
    })
}

fn request(path_and_query: &str, port: u16, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut b = Request::get(format!("https://localhost:{port}{path_and_query}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::new())).unwrap()
}

fn transaction_id(r: &TestResponse) -> String {
    r.headers["fsc-transaction-id"]
        .to_str()
        .unwrap()
        .to_string()
}

fn attr<'a>(record: &'a Value, name: &str) -> &'a Value {
    &record["attributes"][name]
}

/// All bytes of every file in the audit directory (segments, head, manifest, torn/).
fn all_bytes(dir: &Path) -> String {
    let mut text = String::new();
    for entry in walk(dir) {
        text.push_str(&String::from_utf8_lossy(&std::fs::read(entry).unwrap()));
    }
    text
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// (client, request, expected status, expected decision, expected reason)
type Case<'a> = (&'a TestClient, Request<Full<Bytes>>, u16, &'a str, &'a str);

#[tokio::test]
async fn every_decision_class_leaves_exactly_one_record() {
    let pki = TestPki::new();
    let partner = start_partner(&pki, partner_handler()).await;
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    let port = gateway.local_addr.port();
    let consumer = client(&pki, "consumer", Http::One);
    let unknown = client(&pki, "unknown", Http::One);
    let purpose = ("doelbinding-purpose", TEST_PURPOSE);
    let subject = format!("bsn={BSN}");
    let subject = ("doelbinding-data-subject", subject.as_str());
    let case = ("doelbinding-case-id", "casus-2026-17");
    let actor = ("doelbinding-actor", "medewerker-42");

    let inkomen = format!("/uwv/v1/personen/{BSN}/inkomen");
    let other = format!("/uwv/v1/personen/{OTHER_BSN}/inkomen");
    let cases: Vec<Case> = vec![
        (
            &consumer,
            request("/uwv/v1/ping", port, &[purpose, case, actor]),
            200,
            "allow",
            "",
        ),
        (
            &consumer,
            request("/uwv/v1/ping", port, &[case]),
            400,
            "deny",
            "purpose-missing",
        ),
        (
            &unknown,
            request("/uwv/v1/ping", port, &[purpose]),
            403,
            "deny",
            "unknown-consumer",
        ),
        (
            &consumer,
            request("/svb/v1/x", port, &[purpose]),
            404,
            "deny",
            "unknown-route",
        ),
        (
            &consumer,
            request(
                "/uwv/v1/ping",
                port,
                &[purpose, ("doelbinding-data-subject", "bsn=123456789")],
            ),
            400,
            "deny",
            "context-invalid",
        ),
        (
            &consumer,
            request(&other, port, &[purpose, subject]),
            403,
            "deny",
            "subject-mismatch",
        ),
        (
            &consumer,
            request("/uwv/v1/slow", port, &[purpose]),
            502,
            "error",
            "upstream-unavailable",
        ),
        (
            &consumer,
            request(&inkomen, port, &[purpose, subject, case]),
            502,
            "error",
            "minimisation-failed",
        ),
    ];
    let mut expected = HashMap::new();
    for (client, req, status, decision, reason) in cases {
        let response = send(client, req).await;
        assert_eq!(
            response.status.as_u16(),
            status,
            "{reason}: {:?}",
            response.body
        );
        let body = String::from_utf8_lossy(&response.body);
        assert!(
            !body.contains(BSN) && !body.contains("Jansen"),
            "{reason}: leaked {body}"
        );
        expected.insert(transaction_id(&response), (decision, reason));
    }

    let dir = pki.path("audit");
    let records = audit_records(&dir);
    assert_eq!(
        records.len(),
        expected.len(),
        "one record per exchange, no more"
    );
    for record in &records {
        let tx = attr(record, "doelpoort.transaction_id").as_str().unwrap();
        let (decision, reason) = expected
            .remove(tx)
            .expect("a record for an exchange that happened, once");
        assert_eq!(attr(record, "doelpoort.decision"), decision, "{record}");
        // Logboek Dataverwerkingen 1.0.0 §3.2.2.3: `Error` only for the gateway's or the
        // partner's technical failure, with exception.*; a refusal of the caller's input is
        // `Unset`.
        if reason.is_empty() {
            assert!(attr(record, "doelpoort.reason").is_null(), "{record}");
            assert_eq!(record["status"], "Ok");
        } else {
            assert_eq!(attr(record, "doelpoort.reason"), reason, "{record}");
            let expected_status = if decision == "error" {
                "Error"
            } else {
                "Unset"
            };
            assert_eq!(record["status"], expected_status, "{record}");
        }
        if record["status"] == "Error" {
            assert_eq!(attr(record, "exception.type"), reason, "{record}");
            assert!(attr(record, "exception.message").is_string(), "{record}");
        } else {
            assert!(attr(record, "exception.type").is_null(), "{record}");
        }
        assert_eq!(attr(record, "doelpoort.instance"), "test");
        for chained in [
            "seq",
            "prev_hash",
            "hash",
            "trace_id",
            "span_id",
            "start_time",
            "end_time",
        ] {
            assert!(!record[chained].is_null(), "{chained} missing: {record}");
        }
    }
    assert!(
        expected.is_empty(),
        "exchanges without a record: {expected:?}"
    );

    // The allowed exchange carries its lawful basis, grant and policy version.
    let allowed = records
        .iter()
        .find(|r| attr(r, "doelpoort.decision") == "allow")
        .unwrap();
    assert_eq!(attr(allowed, "doelpoort.purpose"), TEST_PURPOSE);
    assert_eq!(attr(allowed, "doelpoort.grant"), "test-ping");
    assert_eq!(
        attr(allowed, "doelpoort.legal_basis"),
        "AVG art. 6(1)(e); Testwet"
    );
    assert_eq!(
        attr(allowed, "dpl.core.processing_activity_id"),
        "https://register.test.example/test-doel"
    );
    // The calling application (the consumer's configured URL), as §3.2.2.9 defines it; the
    // partner's OIN has a field of its own.
    assert_eq!(
        attr(allowed, "dpl.core.foreign_operation.processor"),
        "https://wijkteam.test.example/"
    );
    assert_eq!(attr(allowed, "doelpoort.partner_oin"), PARTNER_OIN);
    assert_eq!(attr(allowed, "doelpoort.consumer")["oin"], CONSUMER_OIN);
    assert_eq!(attr(allowed, "doelpoort.case_id"), "casus-2026-17");
    assert_eq!(attr(allowed, "doelpoort.actor"), "medewerker-42");
    assert_eq!(attr(allowed, "doelpoort.upstream_status"), 200);
    // `ping` has no response schema here: no member of its answer is a declared field, so the
    // record names none of the partner's keys (docs/audit.md, "Fields, not elements").
    assert_eq!(
        attr(allowed, "doelpoort.fields_withheld"),
        &serde_json::json!(["/*"])
    );
    assert_eq!(allowed["name"], "uwv/ping");
    let version = gateway.policies.current().unwrap().version.clone();
    assert_eq!(attr(allowed, "doelpoort.policy_version"), version.as_str());
    // Every record names the policy version in force, also an early refusal's (an unknown
    // consumer or route): what was in force is part of the lawful-basis record.
    for record in &records {
        assert_eq!(
            attr(record, "doelpoort.policy_version"),
            version.as_str(),
            "{record}"
        );
    }

    // A person appears only as a keyed HMAC; no file of the log holds a BSN or partner data.
    let text = all_bytes(&dir);
    for secret in [BSN, OTHER_BSN, "Jansen", "1234 euro"] {
        assert!(!text.contains(secret), "the audit directory holds {secret}");
    }
    let about_person: Vec<_> = records
        .iter()
        .filter(|r| !attr(r, "dpl.core.data_subject_id").is_null())
        .collect();
    assert_eq!(
        about_person.len(),
        2,
        "subject-mismatch and minimisation-failed declared one"
    );
    assert!(about_person
        .iter()
        .all(|r| attr(r, "dpl.core.data_subject_id_type") == "BSN"));

    // The commands a privacy officer runs, on the real files.
    let dir_arg = dir.to_str().unwrap();
    let (code, out) = run_doelpoort(["audit", "verify", dir_arg]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("audit log OK: 8 records in "), "{out}");
    let (code, out) = run_doelpoort([
        "audit",
        "query",
        dir_arg,
        "--subject",
        BSN,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{out}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(
        rows.iter().all(|r| r["subject_role"] == "declared"),
        "{out}"
    );
    assert!(rows
        .iter()
        .all(|r| r["purpose"] == TEST_PURPOSE && r["legal_basis"] == "AVG art. 6(1)(e); Testwet"));
    // The person fished for (asked about under the declared person's name) finds the attempt
    // in their own report, marked for what it was; the declared person's report marks theirs.
    let (code, out) = run_doelpoort([
        "audit",
        "query",
        dir_arg,
        "--subject",
        OTHER_BSN,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{out}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(rows[0]["reason"], "subject-mismatch", "{out}");
    assert_eq!(rows[0]["subject_role"], "requested", "{out}");
    // A reader that stops early (`| head`) ends the command quietly, not with a panic.
    let mut early = std::process::Command::new(env!("CARGO_BIN_EXE_doelpoort"))
        .args([
            "audit",
            "query",
            dir_arg,
            "--subject",
            BSN,
            "--format",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(early.stdout.take());
    let finished = early.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&finished.stderr);
    assert!(
        finished.status.success() && !stderr.contains("panicked"),
        "{stderr}"
    );
    let (code, out) = run_doelpoort(["audit", "query", dir_arg, "--subject", OTHER_BSN]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("asked about this person under another's name"),
        "{out}"
    );
    let (code, out) = run_doelpoort([
        "audit",
        "query",
        dir_arg,
        "--case",
        "casus-2026-17",
        "--format",
        "csv",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.lines().count(),
        4,
        "header + three exchanges of the case:\n{out}"
    );
    let (code, out) = run_doelpoort(["audit", "query", dir_arg, "--subject", "999990018"]);
    assert_eq!(code, 2, "a BSN failing the elfproef is refused: {out}");
    assert!(
        !out.contains("999990018"),
        "the refused BSN is not echoed: {out}"
    );
    gateway.shutdown().await;
}

/// A file-size limit (RLIMIT_FSIZE, set on the running child) makes every audit write fail with
/// EFBIG, as a full disk would: exchanges are refused with `audit-unavailable`, nothing of the
/// partner's answer is released, /readyz says why — and all recovers once the limit is lifted.
#[tokio::test]
async fn an_unwritable_log_refuses_exchanges_and_releases_nothing() {
    let pki = TestPki::new();
    let marker = r#"{"ok":"RELEASED-ONLY-IF-RECORDED"}"#;
    let partner = start_partner(&pki, fixed(StatusCode::OK, marker, Duration::ZERO)).await;
    // `ping` gets a response schema and its grant releases `ok`: a body worth holding back.
    let policy = test_policy_releasing_ok();
    write_policies(&pki, &policy);
    std::fs::write(
        pki.path("schemas/ping.json"),
        r#"{"type":"object","properties":{"ok":{"type":"string","x-data-category":"other"}}}"#,
    )
    .unwrap();
    let path = write_config(
        &pki,
        &config_yaml(&pki, &[PartnerSpec::new("uwv", partner.addr)], ""),
    );
    let gateway = GatewayProcess::start(&path);
    let (port, admin) = gateway.wait_until_serving();
    let client = client(&pki, "consumer", Http::One);
    let ping = format!("https://localhost:{port}/uwv/v1/ping");
    let ok = get(&client, &ping).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&ok.body).contains("RELEASED-ONLY-IF-RECORDED"));

    // The log may not grow any further.
    let (segment, size) = audit_segment(&pki.path("audit"));
    gateway.limit_file_size(Some(size));

    for _ in 0..3 {
        let refused = get(&client, &ping).await;
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.problem_code(), "audit-unavailable");
        assert!(
            !String::from_utf8_lossy(&refused.body).contains("RELEASED"),
            "released without a record"
        );
    }
    let (status, body) = admin_get(&admin, "/readyz").await;
    assert!(status == 503 && body.contains("audit"), "{status} {body}");
    let (_, metrics) = admin_get(&admin, "/metrics").await;
    assert!(
        metrics.contains("doelpoort_audit_failures_total 3"),
        "{metrics}"
    );
    assert_eq!(
        segment_records_len(&segment),
        size,
        "no partial record left behind"
    );

    // Room again: the next exchange is recorded and released, and the gateway is ready.
    gateway.limit_file_size(None);
    let ok = get(&client, &ping).await;
    assert_eq!(ok.status, StatusCode::OK);
    let (status, body) = admin_get(&admin, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    drop(gateway);

    let (code, out) = run_doelpoort(["audit", "verify", pki.path("audit").to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("audit log OK: 2 records in "),
        "only the released exchanges are recorded: {out}"
    );
}

/// A real gateway process under load, killed with SIGKILL: after a restart the chain
/// verifies, and every exchange a client saw answered 200 has its record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_answered_record() {
    const CLIENTS: usize = 16;
    let pki = TestPki::new();
    let partner = start_partner(
        &pki,
        fixed(StatusCode::OK, r#"{"ok":true}"#, Duration::ZERO),
    )
    .await;
    let path = write_config(
        &pki,
        &config_yaml(&pki, &[PartnerSpec::new("uwv", partner.addr)], ""),
    );
    let gateway = GatewayProcess::start(&path);
    let port = gateway.wait_until_listening().port();
    let url = format!("https://localhost:{port}/uwv/v1/ping");

    // Load: CLIENTS connections sending back to back, bounded by count and time.
    let deadline = Instant::now() + Duration::from_secs(8);
    let answered = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut load = Vec::new();
    for _ in 0..CLIENTS {
        let client = client(&pki, "consumer", Http::One);
        let (url, answered) = (url.clone(), answered.clone());
        load.push(tokio::spawn(async move {
            for _ in 0..20_000 {
                if Instant::now() > deadline {
                    break;
                }
                let request = Request::get(&url)
                    .header("doelbinding-purpose", TEST_PURPOSE)
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                match tokio::time::timeout(Duration::from_secs(2), client.request(request)).await {
                    Ok(Ok(r)) if r.status() == StatusCode::OK => {
                        let tx = r.headers()["fsc-transaction-id"]
                            .to_str()
                            .unwrap()
                            .to_string();
                        answered.lock().unwrap().push(tx);
                    }
                    Ok(Ok(_)) => {}
                    // The gateway is gone.
                    _ => break,
                }
            }
        }));
    }
    // Kill in the middle of the load, once a good number of exchanges went through.
    let started = Instant::now();
    while answered.lock().unwrap().len() < 2000 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gateway.signal(rustix::process::Signal::KILL);
    for task in load {
        let _ = task.await;
    }
    drop(gateway);
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() >= 100,
        "too little load to mean anything: {}",
        answered.len()
    );

    // Restart: recovery repairs a torn tail (if the kill cut one) and the chain continues.
    let restarted = GatewayProcess::start(&path);
    restarted.wait_until_listening();
    restarted.signal(rustix::process::Signal::TERM);
    drop(restarted);

    let dir = pki.path("audit");
    let (code, out) = run_doelpoort(["audit", "verify", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let recorded: HashSet<String> = audit_records(&dir)
        .iter()
        .map(|r| {
            attr(r, "doelpoort.transaction_id")
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let missing: Vec<_> = answered
        .iter()
        .filter(|tx| !recorded.contains(*tx))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered exchanges have no record",
        missing.len(),
        answered.len()
    );
    eprintln!(
        "SIGKILL under load: {} answered 200, {} records on disk, chain verified",
        answered.len(),
        recorded.len()
    );
}
