//! Policy hot reload: changes apply under load without dropping a request; an invalid set is
//! rejected and the running version keeps serving; in-flight requests finish under the
//! version they started with; SIGHUP reloads a real process.

mod harness;

use harness::*;
use http::StatusCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Replaces the policy file as an editor or a deploy tool should: the whole new content in a
/// temporary file (outside the watched directory), renamed over the old one, so the watcher
/// never sees a half-written file.
fn write_policy_atomically(pki: &TestPki, content: &str) {
    let tmp = pki.path("policy.yaml.tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, pki.path("policies/policy.yaml")).unwrap();
}

const EXTRA_GRANT: &str = r#"
  - id: test-new
    consumers: [wijkteam-test]
    operation: uwv/new
    purpose: test-doel
    without_subject: added by a reload
    rationale: test
"#;

fn policy_with_new_operation() -> String {
    TEST_POLICY
        .replace(
            "      - {id: ping, method: GET, path: /v1/ping, subject: none}",
            "      - {id: ping, method: GET, path: /v1/ping, subject: none}\n      - {id: new, method: GET, path: /v1/new, subject: none}",
        )
        + EXTRA_GRANT
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_change_applies_under_load_without_dropping_a_request() {
    let pki = TestPki::new();
    let partner = start_partner(&pki, echo()).await;
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    let before = gateway.policies.current().unwrap().version.clone();
    let base = url(&gateway, "");

    // Bounded load: 8 connections, until stopped or 20 s, whichever comes first.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let client = client(&pki, "consumer", Http::One);
        let (stop, ok, failures, base) = (stop.clone(), ok.clone(), failures.clone(), base.clone());
        workers.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let response = get(&client, &format!("{base}/uwv/v1/ping")).await;
                if response.status == StatusCode::OK {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures.lock().unwrap().push(response.status);
                }
            }
        }));
    }
    eventually("load running", Duration::from_secs(10), || {
        ok.load(Ordering::Relaxed) > 50
    })
    .await;

    // Change the policy on disk, as a deploy would.
    write_policy_atomically(&pki, &policy_with_new_operation());
    eventually("the new version is live", Duration::from_secs(10), || {
        gateway.policies.current().unwrap().version != before
    })
    .await;
    let during = ok.load(Ordering::Relaxed);
    eventually(
        "more load after the reload",
        Duration::from_secs(10),
        || ok.load(Ordering::Relaxed) > during + 50,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert!(
        failures.lock().unwrap().is_empty(),
        "requests failed during the reload: {:?}",
        failures.lock().unwrap()
    );
    assert!(policy_reloads(&gateway, "ok") >= 2, "initial load + reload");

    // The new grant is in force.
    let response = get(
        &client(&pki, "consumer", Http::One),
        &format!("{base}/uwv/v1/new"),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK);
    let info = String::from_utf8(gateway.metrics.render()).unwrap();
    let now = gateway.policies.current().unwrap().version.clone();
    assert!(
        info.contains(&format!("doelpoort_policy_info{{version=\"{now}\"}} 1")),
        "{info}"
    );
    assert!(
        !info.contains(&format!("version=\"{before}\"")),
        "old version still reported"
    );
}

#[tokio::test]
async fn an_invalid_change_is_rejected_and_the_old_version_keeps_serving() {
    let pki = TestPki::new();
    let partner = start_partner(&pki, echo()).await;
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    let before = gateway.policies.current().unwrap().version.clone();
    let client = client(&pki, "consumer", Http::One);

    for (broken, named) in [
        // YAML syntax error
        (
            TEST_POLICY.replace("grants:", "grants: [unclosed"),
            "error: illegal placement of ':' indicator",
        ),
        // An unknown reference
        (
            TEST_POLICY.replace("operation: uwv/ping", "operation: uwv/pong"),
            "error: unknown operation 'uwv/pong'",
        ),
    ] {
        let failed_before = policy_reloads(&gateway, "failed");
        write_policy_atomically(&pki, &broken);
        eventually("the reload to fail", Duration::from_secs(10), || {
            policy_reloads(&gateway, "failed") > failed_before
        })
        .await;
        let errors = gateway.policies.last_errors();
        // The file (and where in it), and what is wrong there.
        assert!(
            errors.iter().any(|e| {
                e.split_once("policies/policy.yaml:")
                    .is_some_and(|(_, at)| at.contains(&format!(": {named}")))
            }),
            "the rejection does not name {named:?} in policy.yaml: {errors:?}"
        );
        assert_eq!(gateway.policies.current().unwrap().version, before);
        let response = get(&client, &url(&gateway, "/uwv/v1/ping")).await;
        assert_eq!(response.status, StatusCode::OK, "the old version serves");
    }

    // A policy file deleted mid-change: the set without grants is still valid YAML, but the
    // directory without any file is rejected; the old version stays.
    let failed_before = policy_reloads(&gateway, "failed");
    std::fs::remove_file(pki.path("policies/policy.yaml")).unwrap();
    eventually("the reload to fail", Duration::from_secs(10), || {
        policy_reloads(&gateway, "failed") > failed_before
    })
    .await;
    let errors = gateway.policies.last_errors();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("policies: error: no policy files (*.yaml) found")),
        "the rejection does not say that no policy file is left: {errors:?}"
    );
    assert_eq!(gateway.policies.current().unwrap().version, before);
    assert_eq!(
        get(&client, &url(&gateway, "/uwv/v1/ping")).await.status,
        StatusCode::OK
    );

    // Fixed again: the valid set loads.
    write_policy_atomically(&pki, &policy_with_new_operation());
    eventually("the fixed version is live", Duration::from_secs(10), || {
        gateway.policies.current().unwrap().version != before
    })
    .await;
}

#[tokio::test]
async fn in_flight_requests_finish_under_the_version_they_started_with() {
    let pki = TestPki::new();
    let partner = start_partner(
        &pki,
        fixed(
            StatusCode::OK,
            r#"{"ok":true}"#,
            Duration::from_millis(1200),
        ),
    )
    .await;
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    let before = gateway.policies.current().unwrap().version.clone();
    let client = client(&pki, "consumer", Http::One);
    let slow_url = url(&gateway, "/uwv/v1/slow");
    let in_flight = {
        let client = client.clone();
        let slow_url = slow_url.clone();
        tokio::spawn(async move { get(&client, &slow_url).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // End the grant for the slow operation while the request is at the partner.
    let ended = TEST_POLICY.replace(
        "operation: uwv/slow",
        "operation: uwv/slow\n    valid_until: 2000-01-01",
    );
    write_policy_atomically(&pki, &ended);
    eventually("the new version is live", Duration::from_secs(10), || {
        gateway.policies.current().unwrap().version != before
    })
    .await;
    let response = in_flight.await.unwrap();
    assert_eq!(
        response.status,
        StatusCode::OK,
        "decided under the old version"
    );
    let response = get(&client, &slow_url).await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert_eq!(response.problem_code(), "grant-expired");
}

#[tokio::test]
async fn sighup_reloads_a_running_process() {
    let pki = TestPki::new();
    let partner = start_partner(&pki, echo()).await;
    let path = write_config(
        &pki,
        &config_yaml(&pki, &[PartnerSpec::new("uwv", partner.addr)], ""),
    );
    let mut gateway = GatewayProcess::start(&path);
    let loaded = gateway.wait_for_log(|l| l["message"] == "policy set loaded");
    gateway.wait_until_listening();
    // The file watcher would also pick up a change; SIGHUP must reload even without one.
    gateway.signal(rustix::process::Signal::HUP);
    gateway.wait_for_log(|l| l["message"] == "SIGHUP: reloading policies");
    let reloaded = gateway.wait_for_log(|l| l["message"] == "policy set loaded");
    assert_eq!(loaded["version"], reloaded["version"]);
    gateway.signal(rustix::process::Signal::TERM);
    assert!(gateway.child.wait().unwrap().success());
}
