//! The audit log's directory taken away or made unwritable under a running gateway. Nothing
//! is released that could not be recorded: such exchanges are refused with
//! `503 audit-unavailable`, `/readyz` says why, and once the directory is usable again the
//! gateway records and serves without a restart.
//!
//! A full disk (a file-size limit, EFBIG) and SIGKILL during group commit are in `audit.rs`
//! (`an_unwritable_log_refuses_exchanges_and_releases_nothing`,
//! `sigkill_under_load_loses_no_answered_record`).

mod harness;

use harness::*;
use http::StatusCode;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const RELEASED: &str = "RELEASED-ONLY-IF-RECORDED";

/// `ping` releases `ok`, so a refused exchange has something to hold back.
fn write_marker_policy(pki: &TestPki) {
    let policy = test_policy_releasing_ok();
    write_policies(pki, &policy);
    std::fs::write(
        pki.path("schemas/ping.json"),
        r#"{"type":"object","properties":{"ok":{"type":"string","x-data-category":"other"}}}"#,
    )
    .unwrap();
}

async fn marker_partner(pki: &TestPki) -> doelpoort::demo::MockPartner {
    let body: &'static str = Box::leak(format!(r#"{{"ok":"{RELEASED}"}}"#).into_boxed_str());
    start_partner(pki, fixed(StatusCode::OK, body, Duration::ZERO)).await
}

/// Pings (at most `max`, 100 ms apart) until `refusals` in a row were refused with
/// `audit-unavailable`; every answer is either released and recorded, or refused with nothing
/// of the partner's body. Returns how many were released.
async fn ping_until_refused(client: &TestClient, url: &str, max: usize, refusals: usize) -> usize {
    let (mut released, mut refused_in_a_row) = (0, 0);
    for _ in 0..max {
        let response = get(client, url).await;
        let body = String::from_utf8_lossy(&response.body).to_string();
        match response.status {
            StatusCode::OK => {
                assert!(body.contains(RELEASED), "{body}");
                released += 1;
                refused_in_a_row = 0;
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(response.problem_code(), "audit-unavailable");
                assert!(
                    !body.contains(RELEASED),
                    "released without a record: {body}"
                );
                refused_in_a_row += 1;
                if refused_in_a_row == refusals {
                    return released;
                }
            }
            other => panic!("unexpected {other}: {body}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {refusals} refusals in a row within {max} exchanges");
}

/// `rm -r` of the audit directory. The writer notices within a second that its segment is
/// gone (records of that second are lost with the directory: they were committed to a file
/// somebody deleted) and refuses every exchange from then on; recreating the directory is
/// enough to continue, in a new segment. `audit verify` on what is left names the gap.
#[tokio::test]
async fn the_audit_directory_removed_refuses_exchanges_until_it_is_back() {
    let pki = TestPki::new();
    write_marker_policy(&pki);
    let partner = marker_partner(&pki).await;
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    let admin = gateway.admin_addr.unwrap().to_string();
    let client = client(&pki, "consumer", Http::One);
    let ping = url(&gateway, "/uwv/v1/ping");
    assert_eq!(get(&client, &ping).await.status, StatusCode::OK);

    let dir = pki.path("audit");
    std::fs::remove_dir_all(&dir).unwrap();
    let lost = ping_until_refused(&client, &ping, 60, 3).await;
    eprintln!("released in the second before the writer noticed: {lost}");
    // "Within a second", loosely: pings are 100 ms apart, so about 10 fit in a second; more
    // than 15 means the writer did not notice in time.
    assert!(
        lost <= 15,
        "{lost} exchanges released after the directory was removed"
    );
    let (status, body) = admin_get(&admin, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("the last audit write failed"), "{body}");
    assert!(gateway.metrics.audit_failures.get() >= 3);

    // Back: recorded and released again, ready again.
    std::fs::create_dir_all(&dir).unwrap();
    let response = get(&client, &ping).await;
    assert_eq!(response.status, StatusCode::OK);
    let tx = response.headers["fsc-transaction-id"].to_str().unwrap();
    let record = audit_record_of(&dir, tx);
    assert_eq!(record["attributes"]["doelpoort.decision"], "allow");
    let (status, body) = admin_get(&admin, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_still_serving(&pki, gateway.local_addr.port()).await;
    gateway.shutdown().await;

    // What is left starts in the middle of the chain: verify says so instead of passing.
    let (code, out) = run_doelpoort(["audit", "verify", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("audit log BROKEN")
            && out.contains(&format!("records 1–{} are missing", 1 + lost)),
        "{out}"
    );
}

/// The gateway loses write permission on its audit directory (an operator's chmod, a
/// remount read-only). Records still go into the open segment; the first exchange that needs
/// a new segment cannot be recorded and is refused, as is every one after it, until the
/// permission is back. The chain stays intact: `audit verify` passes and counts exactly the
/// released exchanges.
#[tokio::test]
async fn losing_write_permission_on_the_audit_directory_refuses_exchanges() {
    let pki = TestPki::new();
    write_marker_policy(&pki);
    let partner = marker_partner(&pki).await;
    // Small segments: a new one is needed every few records.
    let yaml = config_yaml(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").replace(
        "  subject_key: ",
        "  segment_max_bytes: 4096\n  subject_key: ",
    );
    let path = write_config(&pki, &yaml);
    let gateway = GatewayProcess::start_unprivileged(&path, pki.dir.path());
    let (port, admin) = gateway.wait_until_serving();
    let client = client(&pki, "consumer", Http::One);
    let ping = format!("https://localhost:{port}/uwv/v1/ping");
    assert_eq!(get(&client, &ping).await.status, StatusCode::OK);

    let dir = pki.path("audit");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    let released_while_read_only = ping_until_refused(&client, &ping, 40, 3).await;
    eprintln!("released into the open segment: {released_while_read_only}");
    // The open segment still takes records: the refusals start only with a new segment.
    assert!(
        released_while_read_only >= 1,
        "refused before the open segment was full"
    );
    let (status, body) = admin_get(&admin, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("the last audit write failed"), "{body}");

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(get(&client, &ping).await.status, StatusCode::OK);
    let (status, body) = admin_get(&admin, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_still_serving(&pki, port).await;
    drop(gateway);

    let released = 3 + released_while_read_only;
    let (code, out) = run_doelpoort(["audit", "verify", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("audit log OK: {released} records in ")),
        "{out}"
    );
}
