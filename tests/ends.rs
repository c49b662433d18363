//! Both ends of the exchange (SPEC §10): a real outway and a real inway process, a mock
//! provider service, and what crosses the wire between them.

mod harness;

use harness::ends::{Ends, EndsSpec, SECRET};
use http::StatusCode;

/// A field the provider's release profile withholds never leaves the provider: not in the
/// bytes on the wire between the gateways, not in the answer; both logs say so and join on
/// the transaction id.
#[tokio::test]
async fn a_field_withheld_at_the_source_never_crosses_the_wire() {
    let ends = Ends::start(EndsSpec {
        tap: true,
        ..Default::default()
    })
    .await;
    let r = ends.call().await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}\ninway's records: {:#?}\ninway's log: {}",
        String::from_utf8_lossy(&r.body),
        ends.inway_audit(),
        ends.inway.raw_logs.lock().unwrap().join("\n")
    );
    let body = r.json();
    assert_eq!(body["inkomen"], 2150);
    assert!(body.get("werkgever").is_none());
    let tap = ends.tap.as_ref().unwrap();
    assert!(
        !tap.from_upstream().is_empty(),
        "the relay saw the inway's answer"
    );
    assert!(
        !tap.contains_from_upstream(SECRET.as_bytes()),
        "the employer crossed the wire"
    );
    let tx = r.headers["fsc-transaction-id"]
        .to_str()
        .unwrap()
        .to_string();
    let outway = ends.outway_audit();
    let inway = ends.inway_audit();
    let out = outway
        .iter()
        .find(|r| {
            r["attributes"]["doelpoort.transaction_id"] == tx.as_str()
                && r["attributes"]["doelpoort.record"].is_null()
        })
        .expect("the outway's record");
    let inn = inway
        .iter()
        .find(|r| {
            r["attributes"]["doelpoort.transaction_id"] == tx.as_str()
                && r["attributes"]["doelpoort.record"].is_null()
        })
        .expect("the inway's record of the same transaction");
    assert_eq!(inn["attributes"]["doelpoort.role"], "inway");
    assert_eq!(
        inn["attributes"]["doelpoort.fields_withheld"],
        serde_json::json!(["/werkgever"])
    );
    assert_eq!(
        out["attributes"]["doelpoort.provider_fields_withheld"],
        serde_json::json!(["/werkgever"])
    );
    assert_eq!(
        out["attributes"]["doelpoort.assertion_jti"],
        inn["attributes"]["doelpoort.assertion_jti"]
    );
    assert_eq!(
        inn["attributes"]["doelpoort.requester"],
        harness::CONSUMER_OIN
    );
}
