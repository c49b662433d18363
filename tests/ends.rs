//! Both ends of the exchange (SPEC §10): a real outway and a real inway process, a mock
//! provider service, and what crosses the wire between them.

mod harness;

use harness::ends::{transaction_id, Ends, EndsSpec, SECRET};
use http::StatusCode;
use std::time::Duration;

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

// ---- Assertions the inway refuses (without FSC) ----------------------------------------------

/// The inway refused with `status` and `code`, answered under the caller's transaction id,
/// did not call the service, and recorded the refusal (decision `deny`, reason `code`).
fn assert_refused_at_inway(
    ends: &Ends,
    response: &harness::TestResponse,
    tx: &str,
    status: u16,
    code: &str,
) {
    let body = String::from_utf8_lossy(&response.body);
    assert_eq!(response.status.as_u16(), status, "{body}");
    assert_eq!(response.problem_code(), code, "{body}");
    assert_eq!(response.headers["fsc-transaction-id"], tx);
    assert_eq!(ends.received.count(), 0, "the service was called");
    let records: Vec<_> = ends
        .inway_audit()
        .into_iter()
        .filter(|r| r["attributes"]["doelpoort.transaction_id"] == tx)
        .collect();
    assert_eq!(records.len(), 1, "the inway's records of {tx}: {records:?}");
    let attributes = &records[0]["attributes"];
    assert_eq!(attributes["doelpoort.decision"], "deny", "{attributes}");
    assert_eq!(attributes["doelpoort.reason"], code, "{attributes}");
    assert_eq!(attributes["doelpoort.role"], "inway", "{attributes}");
}

/// The positive control for the refusals below: a fresh, valid assertion sent straight to the
/// inway is accepted, so each refusal is caused by the one thing its case bends.
#[tokio::test]
async fn a_fresh_valid_assertion_sent_directly_is_accepted() {
    let ends = Ends::start(EndsSpec::default()).await;
    let (r, tx) = ends.to_inway(ends.assertion(|_| {}, None).await).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}\ninway's log: {}",
        String::from_utf8_lossy(&r.body),
        ends.inway.raw_logs.lock().unwrap().join("\n")
    );
    assert_eq!(r.json()["inkomen"], 2150);
    assert!(r.json().get("werkgever").is_none());
    assert_eq!(ends.received.count(), 1);
    assert_eq!(
        ends.received.last().headers["fsc-transaction-id"],
        tx.as_str()
    );
}

#[tokio::test]
async fn assertion_from_an_untrusted_gateway_is_refused() {
    let ends = Ends::start(EndsSpec::default()).await;
    // Same claims and kid, but signed with a key the outway does not publish.
    let (other_key, _) = doelpoort::pki::signing_key_pair().unwrap();
    let (r, tx) = ends
        .to_inway(ends.assertion(|_| {}, Some(&other_key)).await)
        .await;
    assert_refused_at_inway(&ends, &r, &tx, 401, "token-invalid");
}

#[tokio::test]
async fn expired_assertion_is_refused() {
    let ends = Ends::start(EndsSpec::default()).await;
    let now = doelpoort::clock::unix_now() as u64;
    let expired = ends
        .assertion(
            |c| {
                c["iat"] = (now - 180).into();
                c["exp"] = (now - 120).into();
            },
            None,
        )
        .await;
    let (r, tx) = ends.to_inway(expired).await;
    assert_refused_at_inway(&ends, &r, &tx, 401, "token-invalid");
}

#[tokio::test]
async fn assertion_bound_to_another_certificate_is_refused() {
    let ends = Ends::start(EndsSpec::default()).await;
    let consumer_der = doelpoort::tls::load_certificates(&ends.pki.path("consumer.crt"))
        .unwrap()
        .remove(0);
    let other = doelpoort::token::thumbprint(&doelpoort::identity::Fingerprint::of_der(
        consumer_der.as_ref(),
    ));
    let bound_elsewhere = ends
        .assertion(|c| c["cnf"]["x5t#S256"] = other.into(), None)
        .await;
    let (r, tx) = ends.to_inway(bound_elsewhere).await;
    assert_refused_at_inway(&ends, &r, &tx, 403, "token-mismatch");
}

#[tokio::test]
async fn assertion_for_another_audience_is_refused() {
    let ends = Ends::start(EndsSpec::default()).await;
    let elsewhere = ends
        .assertion(|c| c["aud"] = harness::UNKNOWN_OIN.into(), None)
        .await;
    let (r, tx) = ends.to_inway(elsewhere).await;
    assert_refused_at_inway(&ends, &r, &tx, 401, "token-invalid");
}

/// An assertion copied off the wire is worthless once its life (plus the inway's clock
/// leeway) is over, even on the right connection.
#[tokio::test]
async fn replayed_assertion_past_its_life_is_refused() {
    let ends = Ends::start(EndsSpec {
        assertion_lifetime: Some("2s"),
        ..Default::default()
    })
    .await;
    let r = ends.call().await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let assertion = ends.received.last().headers["doelbinding-assertion"]
        .to_str()
        .unwrap()
        .to_string();
    // 2 s of life, 5 s of leeway at the inway, and a margin.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let before = ends.received.count();
    let tx = transaction_id();
    let replayed = ends
        .call_inway(
            "gateway-client",
            &[
                ("fsc-transaction-id", tx.clone()),
                ("doelbinding-assertion", assertion),
            ],
        )
        .await;
    let body = String::from_utf8_lossy(&replayed.body);
    assert_eq!(replayed.status.as_u16(), 401, "{body}");
    assert_eq!(replayed.problem_code(), "token-invalid", "{body}");
    assert_eq!(ends.received.count(), before, "the service was called");
    let records: Vec<_> = ends
        .inway_audit()
        .into_iter()
        .filter(|r| r["attributes"]["doelpoort.transaction_id"] == tx.as_str())
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["attributes"]["doelpoort.decision"], "deny");
    assert_eq!(
        records[0]["attributes"]["doelpoort.reason"],
        "token-invalid"
    );
}
