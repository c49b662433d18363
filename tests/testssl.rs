//! The data listener as a TLS scanner sees it: testssl.sh (Debian's package, installed by
//! `.ci/run`) against the demo on loopback finds nothing at LOW or above except what concerns
//! the example certificates themselves (a private CA, no CRL or OCSP URI, no CAA record for a
//! test name). Server cipher order, protocols, ciphers and known vulnerabilities are all in
//! the scan.

mod harness;

use harness::*;
use serde_json::Value;

#[tokio::test]
async fn testssl_finds_nothing_but_the_example_certificates() {
    let run = start_demo().await;
    let port = run.demo.gateway.local_addr.port();
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("scan.json");
    // Blocking, so on its own thread: the gateway under scan keeps this runtime.
    let json_path = json.clone();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("testssl")
            .args(["--quiet", "--color", "0", "--warnings", "off"])
            .args(["--ip", "127.0.0.1"])
            .arg("--jsonfile")
            .arg(&json_path)
            .arg(format!("https://localhost:{port}"))
            .output()
    })
    .await
    .unwrap()
    .expect("testssl runs (Debian package testssl.sh; .ci/run installs it)");
    let findings: Vec<Value> = serde_json::from_slice(&std::fs::read(&json).unwrap_or_else(|e| {
        panic!(
            "testssl wrote no findings ({e}): {}",
            String::from_utf8_lossy(&status.stdout)
        )
    }))
    .unwrap();
    assert!(findings.len() > 20, "the scan ran: {findings:?}");
    let about_the_example_certificates =
        |id: &str| id.starts_with("cert_") || id == "DNS_CAArecord";
    let serious: Vec<String> = findings
        .iter()
        .filter(|f| {
            matches!(
                f["severity"].as_str(),
                Some("LOW" | "MEDIUM" | "HIGH" | "CRITICAL")
            )
        })
        .filter(|f| !about_the_example_certificates(f["id"].as_str().unwrap_or_default()))
        .map(|f| format!("{} {}: {}", f["severity"], f["id"], f["finding"]))
        .collect();
    assert!(
        serious.is_empty(),
        "testssl findings:\n{}",
        serious.join("\n")
    );
    let order = findings
        .iter()
        .find(|f| f["id"] == "cipher_order")
        .map(|f| f["severity"].clone());
    assert_eq!(order, Some(Value::from("OK")), "server cipher order");
}
