//! Write-ahead for state-changing exchanges (issue 17; FSC's transaction log rule): for any
//! method but GET and HEAD, an *intent* record is durable before the partner is called; if it
//! cannot be written, the partner is not called; a gateway killed while the partner holds the
//! request leaves an intent that `audit query` and `audit verify` report as "outcome unknown".

mod harness;

use bytes::Bytes;
use harness::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The POST the test policy allows (`uwv/upload`, body field `a`), with a case id to find it by.
fn upload(port: u16) -> Request<Full<Bytes>> {
    Request::post(format!("https://localhost:{port}/uwv/v1/x"))
        .header("doelbinding-purpose", TEST_PURPOSE)
        .header("doelbinding-case-id", "casus-wal-1")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"a":1}"#)))
        .unwrap()
}

/// A gateway process with the test configuration in front of `partner`: its configuration
/// file (to restart it), the process, and its data port once it serves.
fn gateway_process(
    pki: &TestPki,
    partner: &doelpoort::demo::MockPartner,
) -> (std::path::PathBuf, GatewayProcess, u16) {
    let path = write_config(
        pki,
        &config_yaml(pki, &[PartnerSpec::new("uwv", partner.addr)], ""),
    );
    let gateway = GatewayProcess::start(&path);
    let (port, _) = gateway.wait_until_serving();
    (path, gateway, port)
}

fn records_of(audit: &Path, tx: &str) -> Vec<Value> {
    audit_records(audit)
        .into_iter()
        .filter(|r| r["attributes"]["doelpoort.transaction_id"] == tx)
        .collect()
}

#[tokio::test]
async fn a_state_changing_request_is_recorded_before_the_partner_is_called() {
    let pki = TestPki::new();
    let audit = pki.path("audit");
    // The partner looks in the audit log itself, at the moment it is called.
    let seen_before_call: Arc<Mutex<Vec<Value>>> = Arc::default();
    let handler: doelpoort::demo::MockHandler = {
        let audit = audit.clone();
        let seen = seen_before_call.clone();
        Arc::new(move |req| {
            let tx = req.headers()["fsc-transaction-id"]
                .to_str()
                .unwrap()
                .to_string();
            *seen.lock().unwrap() = records_of(&audit, &tx);
            Box::pin(async {
                doelpoort::demo::json_response(StatusCode::OK, &serde_json::json!({"ok": true}))
            })
        })
    };
    let partner = start_partner(&pki, handler).await;
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    let client = client(&pki, "consumer", Http::One);

    let response = send(&client, upload(gateway.local_addr.port())).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    let tx = response.headers["fsc-transaction-id"].to_str().unwrap();

    let before = seen_before_call.lock().unwrap().clone();
    assert_eq!(
        before.len(),
        1,
        "one record on disk when the partner was called: {before:?}"
    );
    assert_eq!(before[0]["attributes"]["doelpoort.record"], "intent");
    assert_eq!(before[0]["status"], "Unset");
    assert_eq!(before[0]["attributes"]["doelpoort.grant"], "test-upload");
    let after = records_of(&audit, tx);
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(after[1]["attributes"].get("doelpoort.record").is_none());
    assert_eq!(after[1]["attributes"]["doelpoort.decision"], "allow");

    // A GET changes nothing at the partner: its exchange has its outcome record only.
    let response = get(
        &client,
        &format!(
            "https://localhost:{}/uwv/v1/ping",
            gateway.local_addr.port()
        ),
    )
    .await;
    let tx = response.headers["fsc-transaction-id"].to_str().unwrap();
    assert_eq!(records_of(&audit, tx).len(), 1);
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_gateway_killed_while_the_partner_holds_a_post_leaves_its_intent() {
    let pki = TestPki::new();
    let called = Arc::new(AtomicBool::new(false));
    let handler: doelpoort::demo::MockHandler = {
        let called = called.clone();
        Arc::new(move |_req| {
            called.store(true, Ordering::SeqCst);
            // Held longer than the test waits: the gateway is killed meanwhile.
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(20)).await;
                doelpoort::demo::json_response(StatusCode::OK, &serde_json::json!({"ok": true}))
            })
        })
    };
    let partner = start_partner(&pki, handler).await;
    let (path, gateway, port) = gateway_process(&pki, &partner);
    let client = client(&pki, "consumer", Http::One);
    let pending = tokio::spawn(async move {
        tokio::time::timeout(Duration::from_secs(20), client.request(upload(port))).await
    });
    eventually(
        "the partner holds the POST",
        Duration::from_secs(10),
        || called.load(Ordering::SeqCst),
    )
    .await;
    gateway.signal(rustix::process::Signal::KILL);
    drop(gateway);
    let answer = pending.await.unwrap();
    assert!(
        !matches!(answer, Ok(Ok(_))),
        "the caller got an answer from a killed gateway"
    );

    // Restarted on the same log: it recovers and serves; the intent is there, alone.
    let gateway = GatewayProcess::start(&path);
    gateway.wait_until_serving();
    drop(gateway);
    let dir = pki.path("audit");
    let (code, out) = run_doelpoort([
        "audit",
        "query",
        dir.to_str().unwrap(),
        "--case",
        "casus-wal-1",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{out}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(rows[0]["decision"], "outcome unknown", "{out}");
    let (code, out) = run_doelpoort(["audit", "verify", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("outcome unknown"), "{out}");
}

#[tokio::test]
async fn with_the_audit_log_unwritable_the_partner_is_never_called_for_a_post() {
    let pki = TestPki::new();
    let (handler, recorded) = recording(fixed(StatusCode::OK, r#"{"ok":true}"#, Duration::ZERO));
    let partner = start_partner(&pki, handler).await;
    let (_, gateway, port) = gateway_process(&pki, &partner);
    let client = client(&pki, "consumer", Http::One);
    // The control: with room, the POST reaches the partner.
    let ok = send(&client, upload(port)).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(recorded.count(), 1);

    // The log may not grow: every write fails (EFBIG), as on a full disk.
    let (_, size) = audit_segment(&pki.path("audit"));
    gateway.limit_file_size(Some(size));
    for _ in 0..3 {
        let refused = send(&client, upload(port)).await;
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.problem_code(), "audit-unavailable");
    }
    assert_eq!(
        recorded.count(),
        1,
        "the partner was called without a record"
    );
    gateway.limit_file_size(None);
}
