//! Policy files changing under a running gateway in the ways that go wrong in practice: one
//! file of a set disappearing, a schema a grant depends on deleted, a symlink swapped to a
//! target that is not there, the whole directory removed and recreated. An invalid set never
//! replaces the running one: exchanges keep being decided (and recorded) under the last valid
//! version, and a valid set is picked up again.
//!
//! Syntax errors, unknown references and the only file deleted are in `reload.rs`
//! (`an_invalid_change_is_rejected_and_the_old_version_keeps_serving`).

mod harness;

use harness::*;
use http::StatusCode;
use std::time::Duration;

fn version(gateway: &doelpoort::server::RunningGateway) -> String {
    gateway.policies.current().unwrap().version.clone()
}

/// A ping is served, and its audit record names policy `version`.
async fn assert_decided_under(
    pki: &TestPki,
    gateway: &doelpoort::server::RunningGateway,
    version: &str,
) {
    assert_port_decides_under(pki, gateway.local_addr.port(), version).await;
}

/// [`assert_decided_under`] for a gateway known by its port (a child process).
async fn assert_port_decides_under(pki: &TestPki, port: u16, version: &str) {
    let response = get(
        &client(pki, "consumer", Http::One),
        &format!("https://localhost:{port}/uwv/v1/ping"),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK);
    let tx = response.headers["fsc-transaction-id"].to_str().unwrap();
    let record = audit_record_of(&pki.path("audit"), tx);
    assert_eq!(record["attributes"]["doelpoort.policy_version"], version);
}

async fn wait_for_failed_reload(gateway: &doelpoort::server::RunningGateway, before: u64) {
    eventually("the reload to fail", Duration::from_secs(10), || {
        policy_reloads(gateway, "failed") > before
    })
    .await;
}

/// Makes the removed policy directory again, holding a second version of the test policy.
fn recreate_policies_as_v2(pki: &TestPki) {
    std::fs::create_dir_all(pki.path("policies")).unwrap();
    std::fs::write(
        pki.path("policies/policy.yaml"),
        TEST_POLICY.replace("rationale: test", "rationale: test v2"),
    )
    .unwrap();
}

async fn wait_for_new_version(gateway: &doelpoort::server::RunningGateway, old: &str) -> String {
    eventually("a new version", Duration::from_secs(10), || {
        version(gateway) != old
    })
    .await;
    version(gateway)
}

#[tokio::test]
async fn one_file_of_a_split_set_disappearing_keeps_the_running_version() {
    let pki = TestPki::new();
    let partner = start_partner(&pki, echo()).await;
    // The catalog in one file, the grants in another.
    let (catalog, grants) = TEST_POLICY.split_at(TEST_POLICY.find("grants:").unwrap());
    write_policies(&pki, catalog);
    std::fs::write(pki.path("policies/grants.yaml"), grants).unwrap();
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    let v1 = version(&gateway);
    assert_decided_under(&pki, &gateway, &v1).await;

    // The catalog goes away (an editor deleting before writing, a half-done deploy): the
    // grants now name a consumer, purpose and operations that do not exist.
    let failed = policy_reloads(&gateway, "failed");
    std::fs::remove_file(pki.path("policies/policy.yaml")).unwrap();
    wait_for_failed_reload(&gateway, failed).await;
    assert_eq!(version(&gateway), v1);
    assert_decided_under(&pki, &gateway, &v1).await;
    assert!(!gateway.policies.last_errors().is_empty());

    // Back, with a change: the new version is live and decides.
    std::fs::write(
        pki.path("policies/policy.yaml"),
        catalog.replace("Testing the gateway", "Testing the gateway again"),
    )
    .unwrap();
    let v2 = wait_for_new_version(&gateway, &v1).await;
    assert_decided_under(&pki, &gateway, &v2).await;
}

#[tokio::test]
async fn a_deleted_response_schema_fails_the_reload_and_the_running_set_still_minimises() {
    let pki = TestPki::new();
    let partner = start_partner(
        &pki,
        fixed(
            StatusCode::OK,
            r#"{"ok":"ja","geheim":"UPSTREAM-MARKER-7f3a9c"}"#,
            Duration::ZERO,
        ),
    )
    .await;
    let policy = test_policy_releasing_ok();
    write_policies(&pki, &policy);
    std::fs::write(
        pki.path("schemas/ping.json"),
        r#"{"type":"object","properties":{"ok":{"type":"string","x-data-category":"other"},"geheim":{"type":"string","x-data-category":"other"}}}"#,
    )
    .unwrap();
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    let v1 = version(&gateway);

    let failed = policy_reloads(&gateway, "failed");
    std::fs::remove_file(pki.path("schemas/ping.json")).unwrap();
    wait_for_failed_reload(&gateway, failed).await;
    assert_eq!(version(&gateway), v1);
    // The running set keeps its compiled schema: still minimised, the marker withheld.
    let response = get(
        &client(&pki, "consumer", Http::One),
        &url(&gateway, "/uwv/v1/ping"),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(&response.body[..], br#"{"ok":"ja"}"#);
}

#[tokio::test]
async fn a_symlink_swapped_to_a_missing_target_keeps_the_running_version() {
    let pki = TestPki::new();
    let partner = start_partner(&pki, echo()).await;
    // As configuration management deploys: policy.yaml is a symlink to a versioned file, and
    // a deploy swaps the link (rename over it, atomically).
    std::fs::create_dir_all(pki.path("policies")).unwrap();
    std::fs::create_dir_all(pki.path("schemas")).unwrap();
    std::fs::write(pki.path("v1.yaml"), TEST_POLICY).unwrap();
    std::os::unix::fs::symlink(pki.path("v1.yaml"), pki.path("policies/policy.yaml")).unwrap();
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    let v1 = version(&gateway);
    let swap = |target: &str| {
        let tmp = pki.path("policies/.policy.yaml.tmp");
        std::os::unix::fs::symlink(pki.path(target), &tmp).unwrap();
        std::fs::rename(&tmp, pki.path("policies/policy.yaml")).unwrap();
    };

    let failed = policy_reloads(&gateway, "failed");
    swap("v2-not-deployed-yet.yaml");
    wait_for_failed_reload(&gateway, failed).await;
    assert_eq!(version(&gateway), v1);
    assert_decided_under(&pki, &gateway, &v1).await;

    std::fs::write(
        pki.path("v2.yaml"),
        TEST_POLICY.replace("rationale: test", "rationale: test v2"),
    )
    .unwrap();
    swap("v2.yaml");
    let v2 = wait_for_new_version(&gateway, &v1).await;
    assert_decided_under(&pki, &gateway, &v2).await;
}

/// The whole policy directory removed and recreated (a careless deploy: `rm -r`, then copy).
/// The removal is noticed and rejected. The file watcher sees the recreated directory too (the
/// next test); here the documented fallback, SIGHUP, must load it as well: the load that
/// follows the "SIGHUP: reloading policies" line is the signal's (the watcher task handles one
/// trigger at a time, so no watcher reload can come between).
#[tokio::test]
async fn the_policy_directory_removed_and_recreated() {
    let pki = TestPki::new();
    let partner = start_partner(&pki, echo()).await;
    let path = write_config(
        &pki,
        &config_yaml(&pki, &[PartnerSpec::new("uwv", partner.addr)], ""),
    );
    let gateway = GatewayProcess::start(&path);
    let loaded = gateway.wait_for_log(|l| l["message"] == "policy set loaded");
    let (port, admin) = gateway.wait_until_serving();
    let v1 = loaded["version"].as_str().unwrap().to_string();

    std::fs::remove_dir_all(pki.path("policies")).unwrap();
    gateway.wait_for_log(|l| l["message"] == "policy set rejected; the running version stays");
    assert_still_serving(&pki, port).await;

    recreate_policies_as_v2(&pki);
    gateway.signal(rustix::process::Signal::HUP);
    gateway.wait_for_log(|l| l["message"] == "SIGHUP: reloading policies");
    let reloaded = gateway.wait_for_log(|l| {
        l["message"] == "policy set loaded"
            || l["message"] == "policy set rejected; the running version stays"
    });
    assert_eq!(reloaded["message"], "policy set loaded", "{reloaded}");
    let v2 = reloaded["version"].as_str().unwrap();
    assert_ne!(v2, v1);
    let (_, metrics) = admin_get(&admin, "/metrics").await;
    assert!(
        metrics.contains(&format!("doelpoort_policy_info{{version=\"{v2}\"}} 1")),
        "{metrics}"
    );
    assert_port_decides_under(&pki, port, v2).await;
    assert_still_serving(&pki, port).await;
}

/// What an operator would expect after `rm -r policies && cp -r new policies`: the file watcher
/// sees the new directory by itself (it also watches the parent directory, and watches the
/// policy directory afresh after every reload), and the new version decides.
#[tokio::test]
async fn a_recreated_policy_directory_is_watched_again() {
    let pki = TestPki::new();
    let partner = start_partner(&pki, echo()).await;
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    let v1 = version(&gateway);
    let failed = policy_reloads(&gateway, "failed");
    std::fs::remove_dir_all(pki.path("policies")).unwrap();
    wait_for_failed_reload(&gateway, failed).await;
    recreate_policies_as_v2(&pki);
    let v2 = wait_for_new_version(&gateway, &v1).await;
    assert_decided_under(&pki, &gateway, &v2).await;
    assert_still_serving(&pki, gateway.local_addr.port()).await;
}
