//! The spine's promise that every exchange reaches its record and its metrics, also when a
//! phase panics: a real gateway state (the demo's configuration, policies and keys, a real
//! audit log in a temporary directory), a phase made to panic, and the record read back from
//! the log's files.

use super::serve;
use crate::demo::{demo_config, DemoOptions};
use crate::identity::Connection;
use crate::metrics::Metrics;
use crate::state::GatewayState;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use std::path::Path;
use std::sync::Arc;

/// The demo's gateway state with its audit log in `data`; partners are never reached.
async fn demo_state(data: &Path) -> GatewayState {
    let options = DemoOptions {
        root: Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf(),
        listen: ([127, 0, 0, 1], 0).into(),
        admin_listen: ([127, 0, 0, 1], 0).into(),
        data_dir: data.to_path_buf(),
        store: None,
        instance: None,
        audit_sink: Default::default(),
        console_listen: None,
    };
    std::fs::create_dir_all(data.join("audit")).unwrap();
    crate::secrets::write_new_secret(&data.join("pseudonym.secret")).unwrap();
    // Port 9 (discard) on loopback: nothing listens, and no test gets that far.
    let partners: Vec<_> = ["uwv", "svb", "cjib", "jeugdhulp"]
        .iter()
        .map(|id| (id.to_string(), ([127, 0, 0, 1], 9).into()))
        .collect();
    let config = demo_config(&options, &partners).unwrap();
    let state = GatewayState::build(&config, Arc::new(Metrics::new()))
        .await
        .unwrap();
    // The README's case, as the demo registers it (here straight into the register).
    let member = state
        .cases
        .key()
        .member(&crate::context::Bsn::parse("999990019").unwrap());
    state
        .cases
        .change("test", "wijkteam-rotterdam", "casus-2026-0001", |_, now| {
            Ok::<_, ()>(vec![crate::store::cases::CaseWrite::Put {
                head: crate::store::cases::CaseHead {
                    owner: "wijkteam-rotterdam".into(),
                    status: crate::store::cases::CaseStatus::Open,
                    purposes: vec!["wams-onderzoek".into()],
                    objections: vec![],
                    created_at: now,
                    updated_at: now,
                    closed_at: None,
                    purge_after: None,
                },
                partners: vec![("uwv".into(), now)],
                household: vec![member],
            }])
        })
        .await
        .unwrap();
    state
}

/// The README's first call: the district team asks UWV for income, within its case.
fn income_request() -> Request<Full<Bytes>> {
    Request::get("/uwv/v1/personen/999990019/inkomen")
        .header("doelbinding-purpose", "wams-onderzoek")
        .header("doelbinding-case-id", "casus-2026-0001")
        .header("doelbinding-data-subject", "bsn=999990019")
        .header("doelbinding-actor", "medewerker-0042")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Every record in the audit directory's segments, in order, read as `audit verify` reads them.
fn records(audit: &Path) -> Vec<serde_json::Value> {
    use crate::audit::{record, segment};
    segment::list_segments(audit)
        .unwrap()
        .into_iter()
        .flat_map(|(_, path)| {
            let bytes = std::fs::read(path).unwrap();
            segment::contents(&bytes)
                .lines
                .iter()
                .map(|(_, line)| record::parse_line(line).unwrap().value)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn a_phase_that_panics_still_ends_in_an_error_record_and_a_metric() {
    for phase in ["identify", "context", "decide", "case", "forward"] {
        let data = tempfile::tempdir().unwrap();
        let mut state = demo_state(data.path()).await;
        state.panic_in = Some(phase);
        let consumer = state.consumers.by_id("wijkteam-rotterdam");
        assert!(consumer.is_some(), "the demo consumer is configured");
        let connection = Connection {
            consumer,
            fingerprint: None,
        };

        let response = serve(&state, &connection, income_request()).await;

        assert_eq!(
            response.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "{phase}"
        );
        assert!(response.headers().contains_key("fsc-transaction-id"));
        let records = records(&data.path().join("audit"));
        assert_eq!(records.len(), 1, "{phase}: one record per exchange");
        let attributes = &records[0]["attributes"];
        assert_eq!(attributes["doelpoort.decision"], "error", "{phase}");
        assert_eq!(attributes["doelpoort.reason"], "internal-error", "{phase}");
        if phase != "identify" {
            assert_eq!(
                attributes["doelpoort.consumer"]["id"], "wijkteam-rotterdam",
                "{phase}: the facts established before the panic are kept"
            );
        }
        assert_eq!(
            attributes["doelpoort.transaction_id"],
            response.headers()["fsc-transaction-id"].to_str().unwrap()
        );
        if matches!(phase, "case" | "forward") {
            assert_eq!(
                attributes["doelpoort.grant"],
                "wijkteam-uwv-inkomen-onderzoek"
            );
        }
        let (consumer, partner, operation, purpose) = match phase {
            "identify" => ("unknown", "unknown", "unknown", "unknown"),
            "context" | "decide" => ("wijkteam-rotterdam", "uwv", "unknown", "unknown"),
            _ => ("wijkteam-rotterdam", "uwv", "inkomen", "wams-onderzoek"),
        };
        let counted = state
            .metrics
            .requests_total
            .with_label_values(&[consumer, partner, operation, purpose, "error"])
            .get();
        assert_eq!(counted, 1, "{phase}: the exchange is counted as an error");
    }
}

#[tokio::test]
async fn without_a_panic_the_same_request_is_decided_and_reaches_the_partner() {
    // The control: the injected panic, not the request, is what fails above. Nothing listens
    // on the partner's port, so the exchange ends at the partner, allowed by the decision.
    let data = tempfile::tempdir().unwrap();
    let state = demo_state(data.path()).await;
    let connection = Connection {
        consumer: state.consumers.by_id("wijkteam-rotterdam"),
        fingerprint: None,
    };
    let response = serve(&state, &connection, income_request()).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let records = records(&data.path().join("audit"));
    assert_eq!(
        records[0]["attributes"]["doelpoort.reason"],
        "upstream-unavailable"
    );
    assert_eq!(
        records[0]["attributes"]["doelpoort.grant"],
        "wijkteam-uwv-inkomen-onderzoek"
    );
}

/// Every exchange's future is moved into its task at spawn (a memcpy of its whole size, 4 % of
/// the gateway's CPU when it was 13.7 KB): phases that await a store or a partner are boxed,
/// so that it stays small. A phase added inline that makes it grow fails here.
#[test]
fn the_exchange_future_stays_small() {
    fn size<F, Fut>(_: F) -> usize
    where
        F: FnOnce(
            &'static crate::state::GatewayState,
            &'static crate::identity::Connection,
            http::Request<http_body_util::Full<bytes::Bytes>>,
        ) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }
    let bytes = size(super::serve::<http_body_util::Full<bytes::Bytes>>);
    assert!(bytes <= 6 * 1024, "the exchange's future is {bytes} bytes");
}
