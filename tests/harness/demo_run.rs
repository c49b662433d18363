//! The real demo for whole-gateway tests: the shipped policies and schemas (copied), a fresh
//! example PKI, the demo's mock partners and gateway on loopback port 0.

use super::*;
use doelpoort::demo::DemoOptions;

pub struct DemoRun {
    pub root: tempfile::TempDir,
    pub demo: demo::Demo,
}

pub async fn start_demo() -> DemoRun {
    let root = tempfile::tempdir().unwrap();
    for dir in ["policies", "schemas"] {
        copy_dir(&repo_root().join(dir), &root.path().join(dir));
    }
    let cat = demo::catalog();
    doelpoort::pki::generate_example(
        &root.path().join("certs-example"),
        &doelpoort::pki::ExamplePki {
            gateway: &cat.gateway,
            consumers: &cat.consumers,
            partners: &cat.partners,
            officers: &cat.officers,
            days: 30,
        },
    )
    .unwrap();
    let demo = demo::start(&DemoOptions {
        root: root.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: root.path().join("data"),
        store: None,
        instance: None,
        audit_sink: Default::default(),
        console_listen: Some("127.0.0.1:0".parse().unwrap()),
    })
    .await
    .expect("demo starts");
    assert!(
        demo.gateway.policies.current().is_some(),
        "{:?}",
        demo.gateway.policies.last_errors()
    );
    DemoRun { root, demo }
}

impl DemoRun {
    pub fn client(&self, consumer: &str) -> TestClient {
        let certs = self.root.path().join("certs-example");
        let cert = certs.join("clients").join(format!("{consumer}.crt"));
        let key = certs.join("clients").join(format!("{consumer}.key"));
        client_with(
            client_tls_from(&certs.join("ca.crt"), Some((cert.as_path(), key.as_path()))),
            Http::One,
        )
    }

    pub fn url(&self, path: &str) -> String {
        url(&self.demo.gateway, path)
    }
}

/// The demo's team leader approving `body` as a CJIB time-out for `schuldhulp-utrecht`'s
/// employee, in a token bound to that consumer's certificate (a fresh `jti` each call).
/// `role` is the approver's role (the grant asks for `teamleider`).
pub fn time_out_approval(run: &DemoRun, body: &serde_json::Value, role: &str) -> String {
    time_out_approval_for(run, body, role, "shv-2026-0042")
}

/// [`time_out_approval`] for another case of `schuldhulp-utrecht`.
pub fn time_out_approval_for(
    run: &DemoRun,
    body: &serde_json::Value,
    role: &str,
    case: &str,
) -> String {
    doelpoort::demo::tokens::demo_token(
        &run.root.path().join("certs-example"),
        &doelpoort::demo::tokens::TokenRequest {
            consumer: "schuldhulp-utrecht".into(),
            actor: "medewerker-0042".into(),
            purpose: Some("time-out".into()),
            case_id: Some(case.into()),
            subject: Some("999990019".into()),
            approved_by: Some("teamleider-0007".into()),
            approver_role: Some(role.into()),
            case_partners: vec!["uwv".into(), "cjib".into()],
            approves_operation: Some("cjib/opschorting".into()),
            approves_body: Some(body.clone()),
            valid_for: Duration::from_secs(120),
        },
    )
    .unwrap()
}

/// POSTs `body` to `url` (a demo time-out at CJIB, or another operation to try the approval
/// on) as `schuldhulp-utrecht`'s employee with `token` and the time-out's context headers.
pub async fn post_with_approval(
    run: &DemoRun,
    url: String,
    token: &str,
    body: &serde_json::Value,
) -> TestResponse {
    post_with_approval_for(run, url, token, body, "shv-2026-0042").await
}

/// [`post_with_approval`] for another case of `schuldhulp-utrecht`.
pub async fn post_with_approval_for(
    run: &DemoRun,
    url: String,
    token: &str,
    body: &serde_json::Value,
    case: &str,
) -> TestResponse {
    let request = Request::post(url)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .header("doelbinding-purpose", "time-out")
        .header("doelbinding-case-id", case)
        .header("doelbinding-data-subject", "bsn=999990019")
        .header("doelbinding-actor", "medewerker-0042")
        .header("doelbinding-case-partners", "uwv, cjib")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    send(&run.client("schuldhulp-utrecht"), request).await
}
