//! `doelpoort audit join`: one exchange from both ends, joined on the transaction id, from the
//! two gateways' own (verified) logs.

mod harness;

use harness::ends::{Ends, EndsSpec};
use harness::run_doelpoort;
use http::StatusCode;

#[tokio::test]
async fn both_logs_join_on_the_transaction_id() {
    let ends = Ends::start(EndsSpec::default()).await;
    let r = ends.call().await;
    assert_eq!(r.status, StatusCode::OK);
    let tx = r.headers["fsc-transaction-id"]
        .to_str()
        .unwrap()
        .to_string();
    let (outway, inway) = (ends.pki.path("outway-audit"), ends.pki.path("inway-audit"));
    let (code, out) = run_doelpoort([
        "audit".as_ref(),
        "join".as_ref(),
        outway.as_os_str(),
        inway.as_os_str(),
        "--transaction-id".as_ref(),
        tx.as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    let joined = &lines[0];
    assert_eq!(joined["transaction_id"], tx.as_str());
    assert_eq!(joined["findings"], serde_json::json!([]), "{out}");
    assert_eq!(joined["consumer_side"][0]["consumer"], "wijkteam-test");
    assert_eq!(joined["consumer_side"][0]["decision"], "allow");
    assert_eq!(
        joined["provider_side"][0]["requester"],
        harness::CONSUMER_OIN
    );
    assert_eq!(
        joined["provider_side"][0]["fields_withheld"],
        serde_json::json!(["/werkgever"])
    );
    assert_eq!(
        joined["consumer_side"][0]["assertion_jti"],
        joined["provider_side"][0]["assertion_jti"]
    );

    // The table says the same for people.
    let (code, table) = run_doelpoort([
        "audit".as_ref(),
        "join".as_ref(),
        outway.as_os_str(),
        inway.as_os_str(),
    ]);
    assert_eq!(code, 0, "{table}");
    assert!(table.contains(&format!("exchange {tx}")), "{table}");
    assert!(table.contains("withheld: /werkgever"), "{table}");

    // One log named for both sides is not a join.
    let (code, out) = run_doelpoort([
        "audit".as_ref(),
        "join".as_ref(),
        outway.as_os_str(),
        outway.as_os_str(),
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("is named for both sides"), "{out}");

    // A log that does not verify is not joined.
    let segment = harness::audit_segment(&inway).0;
    let text = std::fs::read(&segment).unwrap();
    let tampered = String::from_utf8_lossy(&text).replace("\"allow\"", "\"deny!\"");
    std::fs::write(&segment, tampered.as_bytes()).unwrap();
    let (code, out) = run_doelpoort([
        "audit".as_ref(),
        "join".as_ref(),
        outway.as_os_str(),
        inway.as_os_str(),
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("does not verify"), "{out}");
}
