//! Conformance with Logius' FSC test suite (`fsc-test-suite`: `outway.md`, `inway.md`,
//! `integration.md`), SPEC §10: one test per Core and Logging scenario, named after its TestID.
//!
//! - The outway's scenarios run a real `doelpoort run` outway against the harness's FSC peer
//!   (tests/harness/fsc_peer.rs): a Manager and an Inway written from the standard, not from
//!   Doelpoort, so passing them shows interoperability with an independent implementation.
//! - The inway's scenarios call Doelpoort's own inway (`role: inway` with `fsc:`) directly, as
//!   an outway would (tests/harness/ends.rs).
//! - The integration scenarios run both Doelpoort ends, outway → inway → service.
//!
//! Not built, so not here: the Delegation scenarios (Outway-TransactionLog-3 and -4,
//! Inway-TransactionLog-4 and -5, Integration-ConsumeServiceAsDelegatee-1,
//! Integration-ConsumeDelegatedService-1 and -2).

mod harness;

use harness::ends::{self, Ends, EndsSpec, GRANT_HASH};
use harness::fsc_peer::{cert_thumbprint, FscPeer, FscPeerSpec, InwayRequest};
use harness::*;
use http::StatusCode;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

// ---- The outway against an FSC peer that is not Doelpoort ----------------------------------

/// The grant hash of the peer's ServiceConnectionGrant (the CORE contract example's hash).
const PEER_GRANT: &str =
    "$1$3$s1jAyWmruw1kMdV0wLHOWLbAu73NAk5o4RaEyFsha466ez1Cx05eQj_IG8gxGwEyAnnpSPbPC0CsMczmnQDTKQ";
/// What the peer's service answers; the outway's grant releases `ok`.
const PEER_ANSWER: &str = r#"{"ok":"answer-of-the-peers-service"}"#;

/// Per transaction id: the outway's records on disk at the moment the peer's service was
/// called.
type SeenByService = Arc<Mutex<Vec<(String, Vec<Value>)>>>;

/// A Doelpoort outway whose partner `uwv` is the peer's inway (FSC service `dienst`), and
/// the peer; the peer's service looks into the outway's audit log when it is called.
struct OutwayToPeer {
    pki: TestPki,
    peer: FscPeer,
    outway: GatewayProcess,
    port: u16,
    admin: String,
    seen_by_service: SeenByService,
}

impl OutwayToPeer {
    async fn start() -> Self {
        let pki = TestPki::new();
        let audit = pki.path("audit");
        let seen_by_service: SeenByService = Arc::default();
        let service: doelpoort::demo::MockHandler = {
            let seen = seen_by_service.clone();
            Arc::new(move |req| {
                let tx = req
                    .headers()
                    .get("fsc-transaction-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let on_disk = records_of(&audit, &tx);
                seen.lock().unwrap().push((tx, on_disk));
                Box::pin(async {
                    let body: Value = serde_json::from_str(PEER_ANSWER).unwrap();
                    doelpoort::demo::json_response(StatusCode::OK, &body)
                })
            })
        };
        let peer = FscPeer::start(&pki, FscPeerSpec::new(PEER_GRANT), service).await;
        write_policies(&pki, &test_policy_releasing_ok());
        std::fs::write(
            pki.path("schemas/ping.json"),
            r#"{"type":"object","properties":{"ok":{"type":"string","x-data-category":"other"}}}"#,
        )
        .unwrap();
        let yaml = format!(
            r#"{}    fsc:
      manager: {}
      grant_hash: "{PEER_GRANT}"
      group_id: {}
      service: {}
"#,
            config_yaml(&pki, &[PartnerSpec::new("uwv", peer.inway)], ""),
            peer.manager_url(),
            peer.spec().group_id,
            peer.spec().service,
        );
        let path = write_config(&pki, &yaml);
        let outway = GatewayProcess::start(&path);
        let (port, admin) = outway.wait_until_serving();
        Self {
            pki,
            peer,
            outway,
            port,
            admin,
            seen_by_service,
        }
    }

    /// `GET /uwv/v1/ping` through the outway, as the district team.
    async fn call(&self) -> TestResponse {
        get(
            &client(&self.pki, "consumer", Http::One),
            &format!("https://localhost:{}/uwv/v1/ping", self.port),
        )
        .await
    }

    fn audit(&self) -> PathBuf {
        self.pki.path("audit")
    }

    /// The outway's failed partner exchanges of `kind` (its metric).
    async fn upstream_errors(&self, kind: &str) -> u64 {
        let (_, metrics) = admin_get(&self.admin, "/metrics").await;
        let series = format!(r#"doelpoort_upstream_errors_total{{kind="{kind}",partner="uwv"}} "#);
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .map_or(0, |n| n.trim().parse().unwrap())
    }
}

/// The records of one transaction in an audit directory, in the order written.
fn records_of(audit: &Path, tx: &str) -> Vec<Value> {
    audit_records(audit)
        .into_iter()
        .filter(|r| r["attributes"]["doelpoort.transaction_id"] == tx)
        .collect()
}

fn is_intent(record: &Value) -> bool {
    record["attributes"]["doelpoort.record"] == "intent"
}

/// The transaction id an answer carries.
fn transaction_of(response: &TestResponse) -> String {
    response.headers["fsc-transaction-id"]
        .to_str()
        .unwrap()
        .to_string()
}

fn body(response: &TestResponse) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

/// The FSC logging record (`doelpoort.fsc`) the outway writes for the peer's grant.
fn outgoing_to_peer() -> Value {
    json!({
        "destination": {"service_peer_id": PARTNER_OIN, "type": "DESTINATION_TYPE_DESTINATION"},
        "direction": "DIRECTION_OUTGOING",
        "grant_hash": PEER_GRANT,
        "service_name": "dienst",
        "source": {"outway_peer_id": GATEWAY_OIN, "type": "SOURCE_TYPE_SOURCE"},
    })
}

/// Then the request is sent to the Inway and the response from the Inway is received by the
/// Outway.
#[tokio::test]
async fn outway_incoming_request_1() {
    let o = OutwayToPeer::start().await;
    let r = o.call().await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));
    assert_eq!(r.json(), json!({"ok": "answer-of-the-peers-service"}));

    // The token: client credentials over mTLS with the certificate used towards the inway.
    let tokens = o.peer.token_requests();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    let token = &tokens[0];
    assert_eq!((token.status, token.error.as_deref()), (200, None));
    assert_eq!(token.path, "/v1/token");
    assert_eq!(token.field("grant_type"), Some("client_credentials"));
    assert_eq!(token.field("scope"), Some(PEER_GRANT));
    assert_eq!(token.field("client_id"), Some(GATEWAY_OIN));
    let own = cert_thumbprint(&o.pki, "gateway-client");
    assert_eq!(token.client_thumbprint, own);

    // The inway got it, with the token as issued, on the certificate it is bound to, and
    // passed it to the service with the path unchanged.
    let inway = o.peer.inway_requests();
    assert_eq!(inway.len(), 1, "{inway:?}");
    let seen: &InwayRequest = &inway[0];
    assert_eq!((seen.status, seen.error_code.as_deref()), (200, None));
    assert_eq!(seen.path, "/v1/ping");
    assert_eq!(
        seen.header("fsc-authorization"),
        token.access_token.as_deref()
    );
    assert_eq!(seen.client_thumbprint, own);
    assert_eq!(o.peer.service_requests().len(), 1);

    // A second request reuses the token while it is valid.
    let again = o.call().await;
    assert_eq!(again.status, StatusCode::OK, "{}", body(&again));
    assert_eq!(o.peer.token_requests().len(), 1);
    assert_eq!(o.peer.inway_requests().len(), 2);
}

/// Then the request is not sent to the Inway, the Outway returns an error.
#[tokio::test]
async fn outway_incoming_request_2() {
    let o = OutwayToPeer::start().await;
    o.peer.set_refuse_tokens(true);
    let r = o.call().await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", body(&r));
    assert_eq!(r.problem_code(), "upstream-unavailable");

    let tokens = o.peer.token_requests();
    assert_eq!(tokens.len(), 1, "the outway asked the manager: {tokens:?}");
    assert_eq!(tokens[0].error.as_deref(), Some("invalid_scope"));
    assert!(
        o.peer.inway_requests().is_empty(),
        "sent to the inway without a token: {:?}",
        o.peer.inway_requests()
    );
    assert!(o.peer.service_requests().is_empty());
    assert_eq!(o.upstream_errors("fsc_token").await, 1);

    // The refusal is recorded; as nothing was sent, there is no intent.
    let records = records_of(&o.audit(), &transaction_of(&r));
    assert_eq!(records.len(), 1, "{records:?}");
    let attributes = &records[0]["attributes"];
    assert_eq!(attributes["doelpoort.decision"], "error", "{attributes}");
    assert_eq!(attributes["doelpoort.reason"], "upstream-unavailable");
    assert!(!is_intent(&records[0]));
}

/// Then the request is sent to the Inway who is unreachable, the Outway returns an error.
#[tokio::test]
async fn outway_incoming_request_3() {
    let o = OutwayToPeer::start().await;
    o.peer.stop_inway().await;
    let r = o.call().await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", body(&r));
    assert_eq!(r.problem_code(), "upstream-unavailable");
    // A token was obtained: the failure is the inway's.
    let tokens = o.peer.token_requests();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_eq!(tokens[0].status, 200);
    assert!(o.peer.inway_requests().is_empty());
    assert_eq!(o.upstream_errors("connect").await, 1);
    assert_eq!(o.upstream_errors("fsc_token").await, 0);

    // The record says so: the request was about to be sent (intent), and then failed.
    let records = records_of(&o.audit(), &transaction_of(&r));
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(is_intent(&records[0]), "{records:?}");
    assert_eq!(
        records[0]["attributes"]["doelpoort.fsc"],
        outgoing_to_peer()
    );
    let outcome = &records[1]["attributes"];
    assert_eq!(outcome["doelpoort.decision"], "error", "{outcome}");
    assert_eq!(outcome["doelpoort.reason"], "upstream-unavailable");
    assert_eq!(records[1]["status"], "Error");
    assert_eq!(outcome["doelpoort.fsc"], outgoing_to_peer());
}

/// Then the Outway should write a TransactionLog for the request before sending the request
/// to the Inway.
#[tokio::test]
async fn outway_transaction_log_1() {
    let o = OutwayToPeer::start().await;
    let r = o.call().await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));
    let tx = transaction_of(&r);

    // When the peer's inway passed the request on, the outway's intent was already on disk.
    let seen = o.seen_by_service.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (seen_tx, on_disk) = &seen[0];
    assert_eq!(seen_tx, &tx);
    assert_eq!(
        on_disk.len(),
        1,
        "the outway's records when the request arrived: {on_disk:?}"
    );
    let intent = &on_disk[0];
    assert!(is_intent(intent), "{intent}");
    assert_eq!(intent["attributes"]["doelpoort.fsc"], outgoing_to_peer());
    assert_eq!(intent["status"], "Unset");

    // Afterwards: intent, then outcome, both with FSC's record.
    let records = records_of(&o.audit(), &tx);
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0], *intent);
    assert!(records[0]["seq"].as_u64() < records[1]["seq"].as_u64());
    assert!(!is_intent(&records[1]));
    assert_eq!(records[1]["attributes"]["doelpoort.decision"], "allow");
    assert_eq!(
        records[1]["attributes"]["doelpoort.fsc"],
        outgoing_to_peer()
    );

    // The peer's own transaction log names the same transaction.
    let log = o.peer.transaction_log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].transaction_id, tx);
    assert_eq!(log[0].grant_hash, PEER_GRANT);
    assert_eq!(log[0].source.outway_peer_id, GATEWAY_OIN);
}

/// Then the TransactionLog ID should be present in the request to the Inway.
#[tokio::test]
async fn outway_transaction_log_2() {
    let o = OutwayToPeer::start().await;
    let r = o.call().await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));
    let tx = transaction_of(&r);
    let id = uuid::Uuid::try_parse(&tx).expect("a UUID");
    assert_eq!(id.get_version_num(), 7, "{tx}");
    assert_eq!(tx, id.hyphenated().to_string());

    let inway = o.peer.inway_requests();
    assert_eq!(inway.len(), 1, "{inway:?}");
    assert_eq!(inway[0].header("fsc-transaction-id"), Some(tx.as_str()));
    assert_eq!(
        inway[0]
            .headers
            .get_all("fsc-transaction-id")
            .iter()
            .count(),
        1
    );
    let records = records_of(&o.audit(), &tx);
    assert_eq!(
        records.len(),
        2,
        "both of the outway's records: {records:?}"
    );
}

/// Then the Outway should try to write to the transaction log and upon receiving an error from
/// the transaction log the Outway must respond with an error and not proxy the request to the
/// Inway.
#[tokio::test]
async fn outway_transaction_log_5() {
    let o = OutwayToPeer::start().await;
    // The control: with a working log the request reaches the inway (and a token is cached).
    let ok = o.call().await;
    assert_eq!(ok.status, StatusCode::OK, "{}", body(&ok));
    assert_eq!(o.peer.inway_requests().len(), 1);

    // The log may not grow: every write fails (EFBIG), as on a full disk.
    let (_, size) = audit_segment(&o.audit());
    o.outway.limit_file_size(Some(size));
    let refused = o.call().await;
    o.outway.limit_file_size(None);
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        body(&refused)
    );
    assert_eq!(refused.problem_code(), "audit-unavailable");
    assert_eq!(
        o.peer.inway_requests().len(),
        1,
        "the inway got a request the outway could not record: {:?}",
        o.peer.inway_requests()
    );
    assert_eq!(o.peer.service_requests().len(), 1);
    assert_eq!(o.peer.transaction_log().len(), 1);
    assert!(records_of(&o.audit(), &transaction_of(&refused)).is_empty());

    // FSC logging, Outway "Error response": the error is TRANSACTION_LOG_WRITE_ERROR, and FSC
    // core "Error handling": an error within FSC's scope carries `Fsc-Error-Code`, with the
    // outway's domain.
    assert_eq!(
        refused
            .headers
            .get("fsc-error-code")
            .and_then(|v| v.to_str().ok()),
        Some("TRANSACTION_LOG_WRITE_ERROR"),
        "the outway's refusal names no FSC error code: {}",
        body(&refused)
    );
    assert_eq!(refused.json()["fsc"]["domain"], "ERROR_DOMAIN_OUTWAY");
}

// ---- Doelpoort's inway, called as an outway would ------------------------------------------

/// A request's FSC headers and a valid assertion, with `token` (if any).
async fn inway_headers(ends: &Ends, tx: &str, token: Option<&str>) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("fsc-transaction-id", tx.to_string()),
        ("doelbinding-assertion", ends.assertion(|_| {}, None).await),
    ];
    if let Some(token) = token {
        headers.push(("fsc-authorization", token.to_string()));
    }
    headers
}

/// An FSC error answer at Doelpoort's inway: status, Doelpoort's problem code, FSC's code in
/// `Fsc-Error-Code` and in the body's FSC error object.
fn assert_fsc_error(r: &TestResponse, status: u16, problem: &str, fsc_code: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", body(r));
    assert_eq!(r.problem_code(), problem, "{}", body(r));
    assert_eq!(
        r.headers
            .get("fsc-error-code")
            .and_then(|v| v.to_str().ok()),
        Some(fsc_code),
        "Fsc-Error-Code of: {}",
        body(r)
    );
    let fsc = &r.json()["fsc"];
    assert_eq!(fsc["code"], fsc_code, "{}", body(r));
    assert_eq!(fsc["domain"], "ERROR_DOMAIN_INWAY");
    assert!(fsc["message"].as_str().is_some_and(|m| !m.is_empty()));
    if status == 401 {
        // FSC core: "WWW-Authenticate MUST be set to Bearer".
        let challenge = r.headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
    }
}

/// The inway's one outcome record of `tx`: refused with `reason`.
fn assert_inway_refusal_recorded(ends: &Ends, tx: &str, reason: &str) {
    let records = records_of(&ends.pki.path("inway-audit"), tx);
    assert_eq!(records.len(), 1, "{records:?}");
    let attributes = &records[0]["attributes"];
    assert_eq!(attributes["doelpoort.decision"], "deny", "{attributes}");
    assert_eq!(attributes["doelpoort.reason"], reason, "{attributes}");
    assert_eq!(attributes["doelpoort.role"], "inway");
}

/// Then the request should be accepted.
#[tokio::test]
async fn inway_incoming_request_1() {
    let ends = Ends::with_fsc().await;
    let token = ends.outway_token().await;
    let tx = ends::transaction_id();
    let r = ends
        .call_inway(
            "gateway-client",
            &inway_headers(&ends, &tx, Some(&token)).await,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));
    assert_eq!(r.json()["inkomen"], 2150);
    assert!(r.headers.get("fsc-error-code").is_none());
    assert_eq!(ends.received.count(), 1);
    let records = records_of(&ends.pki.path("inway-audit"), &tx);
    assert_eq!(
        records.last().unwrap()["attributes"]["doelpoort.decision"],
        "allow"
    );
}

/// Then the request should be denied.
#[tokio::test]
async fn inway_incoming_request_2() {
    let ends = Ends::with_fsc().await;
    let tx = ends::transaction_id();
    let r = ends
        .call_inway("gateway-client", &inway_headers(&ends, &tx, None).await)
        .await;
    assert_fsc_error(&r, 401, "token-invalid", "ERROR_CODE_ACCESS_TOKEN_MISSING");
    assert_eq!(ends.received.count(), 0, "the service was called");
    assert_inway_refusal_recorded(&ends, &tx, "token-invalid");
}

/// Then the request should be denied.
#[tokio::test]
async fn inway_incoming_request_3() {
    let ends = Ends::with_fsc().await;
    // A token bound to the outway's certificate, presented on another gateway's connection
    // (`andere-gemeente`, the `consumer` certificate).
    let token = ends.outway_token().await;
    let tx = ends::transaction_id();
    let r = ends
        .call_inway("consumer", &inway_headers(&ends, &tx, Some(&token)).await)
        .await;
    assert_fsc_error(&r, 401, "token-invalid", "ERROR_CODE_ACCESS_TOKEN_INVALID");
    assert_eq!(ends.received.count(), 0, "the service was called");
    assert_inway_refusal_recorded(&ends, &tx, "token-invalid");
}

/// Then the request should be denied.
#[tokio::test]
async fn inway_incoming_request_4() {
    let ends = Ends::with_fsc().await;
    let token = ends.outway_token().await;
    // Same subject and OIN as a known caller, but issued by a CA the group does not trust.
    let refused = try_raw_request(ends.inway_addr, client_tls(&ends.pki, Some("rogue"))).await;
    assert_eq!(
        refused,
        Err("received fatal alert: UnknownCA".to_string()),
        "the inway served a certificate from an untrusted CA"
    );
    assert_eq!(ends.received.count(), 0);
    // The control: a trusted certificate is served.
    let tx = ends::transaction_id();
    let r = ends
        .call_inway(
            "gateway-client",
            &inway_headers(&ends, &tx, Some(&token)).await,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));
}

/// Then the access token should be received by the Service.
#[tokio::test]
async fn inway_incoming_request_5() {
    let ends = Ends::with_fsc().await;
    let token = ends.outway_token().await;
    let tx = ends::transaction_id();
    let r = ends
        .call_inway(
            "gateway-client",
            &inway_headers(&ends, &tx, Some(&token)).await,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));
    let received = ends.received.last();
    assert_eq!(received.headers["fsc-authorization"], token.as_str());
    assert_eq!(
        received.headers.get_all("fsc-authorization").iter().count(),
        1
    );
}

/// Then the request should be denied.
#[tokio::test]
async fn inway_incoming_request_6() {
    let ends = Ends::with_fsc().await;
    let now = doelpoort::clock::unix_now() as u64;
    // The control: a token minted this way, still valid, is accepted.
    let valid = ends.mint_fsc_token(|_| {});
    let tx = ends::transaction_id();
    let r = ends
        .call_inway(
            "gateway-client",
            &inway_headers(&ends, &tx, Some(&valid)).await,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));
    assert_eq!(ends.received.count(), 1);

    // Expired a minute ago (well past the inway's clock leeway).
    let expired = ends.mint_fsc_token(|c| {
        c["nbf"] = (now - 360).into();
        c["exp"] = (now - 60).into();
    });
    let tx = ends::transaction_id();
    let r = ends
        .call_inway(
            "gateway-client",
            &inway_headers(&ends, &tx, Some(&expired)).await,
        )
        .await;
    assert_fsc_error(&r, 401, "token-invalid", "ERROR_CODE_ACCESS_TOKEN_EXPIRED");
    assert_eq!(ends.received.count(), 1, "the service was called");
    assert_inway_refusal_recorded(&ends, &tx, "token-invalid");
}

/// Then the Inway should write a TransactionLog for the request before proxying the request to
/// the Service.
#[tokio::test]
async fn inway_transaction_log_1() {
    // The service looks into the inway's audit log itself, at the moment it is called.
    let audit: Arc<OnceLock<PathBuf>> = Arc::default();
    let seen: Arc<Mutex<Option<Vec<Value>>>> = Arc::default();
    let service: doelpoort::demo::MockHandler = {
        let (audit, seen) = (audit.clone(), seen.clone());
        Arc::new(move |req| {
            let tx = req.headers()["fsc-transaction-id"]
                .to_str()
                .unwrap()
                .to_string();
            *seen.lock().unwrap() = Some(records_of(audit.get().unwrap(), &tx));
            Box::pin(async {
                let body: Value = serde_json::from_str(ends::SERVICE_ANSWER).unwrap();
                doelpoort::demo::json_response(StatusCode::OK, &body)
            })
        })
    };
    let ends = Ends::start(EndsSpec {
        fsc: true,
        service: Some(service),
        ..Default::default()
    })
    .await;
    audit.set(ends.pki.path("inway-audit")).unwrap();
    let token = ends.outway_token().await;
    let tx = ends::transaction_id();
    let r = ends
        .call_inway(
            "gateway-client",
            &inway_headers(&ends, &tx, Some(&token)).await,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));
    assert_eq!(ends.received.count(), 1, "the service received the request");

    let incoming = json!({
        "destination": {"service_peer_id": PARTNER_OIN, "type": "DESTINATION_TYPE_DESTINATION"},
        "direction": "DIRECTION_INCOMING",
        "grant_hash": GRANT_HASH,
        "service_name": "uwv",
        "source": {"outway_peer_id": GATEWAY_OIN, "type": "SOURCE_TYPE_SOURCE"},
    });
    let before = seen
        .lock()
        .unwrap()
        .clone()
        .expect("the service was called");
    assert_eq!(
        before.len(),
        1,
        "the inway's records when the service was called: {before:?}"
    );
    assert!(is_intent(&before[0]), "{}", before[0]);
    assert_eq!(before[0]["attributes"]["doelpoort.fsc"], incoming);

    let records = records_of(&ends.pki.path("inway-audit"), &tx);
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0], before[0]);
    assert!(records[0]["seq"].as_u64() < records[1]["seq"].as_u64());
    assert!(!is_intent(&records[1]));
    assert_eq!(records[1]["attributes"]["doelpoort.decision"], "allow");
    assert_eq!(records[1]["attributes"]["doelpoort.fsc"], incoming);
}

/// Then the TransactionLog ID should be present in the request to the Service.
#[tokio::test]
async fn inway_transaction_log_2() {
    let ends = Ends::with_fsc().await;
    let token = ends.outway_token().await;
    let tx = ends::transaction_id();
    let r = ends
        .call_inway(
            "gateway-client",
            &inway_headers(&ends, &tx, Some(&token)).await,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));
    assert_eq!(transaction_of(&r), tx, "the answer names the outway's id");
    let received = ends.received.last();
    assert_eq!(received.headers["fsc-transaction-id"], tx.as_str());
    assert_eq!(
        received
            .headers
            .get_all("fsc-transaction-id")
            .iter()
            .count(),
        1
    );
    assert_eq!(records_of(&ends.pki.path("inway-audit"), &tx).len(), 2);
}

/// Then the Inway should reject the request.
#[tokio::test]
async fn inway_transaction_log_3() {
    let ends = Ends::with_fsc().await;
    let token = ends.outway_token().await;
    let mut headers = inway_headers(&ends, "", Some(&token)).await;
    headers.retain(|(name, _)| *name != "fsc-transaction-id");
    let r = ends.call_inway("gateway-client", &headers).await;
    assert_fsc_error(&r, 400, "context-invalid", "MISSING_LOG_RECORD_ID");
    assert_eq!(ends.received.count(), 0, "the service was called");
    // Recorded under an id of the inway's own, which the answer names.
    assert_inway_refusal_recorded(&ends, &transaction_of(&r), "context-invalid");

    // Not a UUIDv7 (a v4): refused as malformed.
    let headers = inway_headers(&ends, &uuid::Uuid::new_v4().to_string(), Some(&token)).await;
    let r = ends.call_inway("gateway-client", &headers).await;
    assert_fsc_error(&r, 400, "context-invalid", "INVALID_LOG_RECORD_ID");
    assert_eq!(ends.received.count(), 0, "the service was called");
}

/// Then the Inway should try to write to the transaction log and upon receiving an error from
/// the transaction log the Inway must respond with an error and not invoke the Service.
#[tokio::test]
async fn inway_transaction_log_6() {
    let ends = Ends::with_fsc().await;
    let token = ends.outway_token().await;
    // The control: with a working log the service is called.
    let tx = ends::transaction_id();
    let r = ends
        .call_inway(
            "gateway-client",
            &inway_headers(&ends, &tx, Some(&token)).await,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));
    assert_eq!(ends.received.count(), 1);

    let (_, size) = audit_segment(&ends.pki.path("inway-audit"));
    ends.inway.limit_file_size(Some(size));
    let tx = ends::transaction_id();
    let headers = inway_headers(&ends, &tx, Some(&token)).await;
    let r = ends.call_inway("gateway-client", &headers).await;
    ends.inway.limit_file_size(None);
    assert_fsc_error(&r, 503, "audit-unavailable", "TRANSACTION_LOG_WRITE_ERROR");
    assert_eq!(ends.received.count(), 1, "the service was called");
    assert!(records_of(&ends.pki.path("inway-audit"), &tx).is_empty());
}

/// Then the Inway should respond.
#[tokio::test]
async fn inway_port_1() {
    const PORT: &str = "127.0.0.1:8443";
    if let Err(e) = std::net::TcpListener::bind(PORT) {
        panic!(
            "Inway-Port-1 needs {PORT} (FSC core: data on 443 or 8443) but cannot bind it ({e}): \
             free the port and run the test again"
        );
    }
    let ends = Ends::start(EndsSpec {
        fsc: true,
        inway_listen: Some(PORT),
        ..Default::default()
    })
    .await;
    assert_eq!(ends.inway_addr.port(), 8443);
    let token = ends.outway_token().await;
    let tx = ends::transaction_id();
    let r = ends
        .call_inway(
            "gateway-client",
            &inway_headers(&ends, &tx, Some(&token)).await,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));
    // And through the outway, whose partner address is the inway on 8443.
    let r = ends.call().await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));
}

// ---- Both ends ------------------------------------------------------------------------------

/// Then the Service should return a successful response.
#[tokio::test]
async fn integration_consume_service_1() {
    let ends = Ends::with_fsc().await;
    let r = ends.call().await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}\ninway's log: {}",
        body(&r),
        ends.inway.raw_logs.lock().unwrap().join("\n")
    );
    assert_eq!(r.json()["inkomen"], 2150);
    assert_eq!(ends.received.count(), 1);
    let received = ends.received.last();
    assert!(received.headers.contains_key("fsc-authorization"));
}

/// Then the Outway should reject the request.
#[tokio::test]
async fn integration_consume_service_2() {
    let ends = Ends::start(EndsSpec {
        fsc: true,
        outway_grant_hash: Some("$1$3$no-such-grant"),
        ..Default::default()
    })
    .await;
    let r = ends.call().await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", body(&r));
    assert_eq!(r.problem_code(), "upstream-unavailable");
    assert_eq!(ends.received.count(), 0, "the service was called");
    assert!(
        ends.inway_audit().is_empty(),
        "a request reached the inway: {:#?}",
        ends.inway_audit()
    );
    let records = records_of(&ends.pki.path("outway-audit"), &transaction_of(&r));
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        records[0]["attributes"]["doelpoort.reason"],
        "upstream-unavailable"
    );
}

/// Then the consuming Peer should have created a TransactionLog record
/// And the providing Peer should have created a TransactionLog record
/// And the TransactionID of the TransactionLog records should match
///
/// (The suite's overview names it Integration-TransactionLog-1, its heading
/// Integration-Transaction-1.)
#[tokio::test]
async fn integration_transaction_log_1() {
    let ends = Ends::with_fsc().await;
    let r = ends.call().await;
    assert_eq!(r.status, StatusCode::OK, "{}", body(&r));
    let tx = transaction_of(&r);
    let outway = records_of(&ends.pki.path("outway-audit"), &tx);
    let inway = records_of(&ends.pki.path("inway-audit"), &tx);
    assert_eq!(outway.len(), 2, "intent and outcome: {outway:?}");
    assert_eq!(inway.len(), 2, "intent and outcome: {inway:?}");
    for records in [&outway, &inway] {
        assert!(is_intent(&records[0]));
        assert_eq!(records[1]["attributes"]["doelpoort.decision"], "allow");
    }
    let out = &outway[1]["attributes"]["doelpoort.fsc"];
    let inn = &inway[1]["attributes"]["doelpoort.fsc"];
    assert_eq!(out["direction"], "DIRECTION_OUTGOING");
    assert_eq!(inn["direction"], "DIRECTION_INCOMING");
    assert_eq!(out["grant_hash"], GRANT_HASH);
    assert_eq!(inn["grant_hash"], out["grant_hash"]);
    for field in ["source", "destination", "service_name"] {
        assert_eq!(inn[field], out[field], "{field}");
    }
    assert_eq!(out["source"]["outway_peer_id"], GATEWAY_OIN);
    assert_eq!(out["destination"]["service_peer_id"], PARTNER_OIN);
}
