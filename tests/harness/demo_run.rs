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
