//! Safeguards that a capital letter, a look-alike character or a missing field cannot bypass
//! (issue 17), against the real demo: the shipped policies and schemas, the demo's CJIB, and a
//! time-out with a valid team leader's approval in a signed token — so the only thing that can
//! stop a bad body is the gateway's own check of it.

mod harness;

use bytes::Bytes;
use harness::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

fn approval(run: &DemoRun, body: &Value) -> String {
    time_out_approval(run, body, "teamleider")
}

fn in_three_months() -> String {
    doelpoort::policy::RelativeDate { days: 0, months: 3 }
        .resolve(doelpoort::policy::today())
        .to_string()
}

/// A time-out the grant allows: one traffic fine, three months, a reason.
fn allowed_body() -> Value {
    json!({
        "bsn": "999990019",
        "vorderingen": [{"vordering_id": "CJIB-2026-000123", "categorie": "verkeersboete"}],
        "einddatum": in_three_months(),
        "reden": "schuldhulpverlening gestart",
    })
}

async fn post_time_out(run: &DemoRun, body: &Value) -> TestResponse {
    post_approved(run, "/cjib/v1/opschortingen", body, body).await
}

/// The outcome record of the exchange this response answered.
fn record_of(run: &DemoRun, response: &TestResponse) -> Value {
    let tx = response.headers["fsc-transaction-id"].to_str().unwrap();
    audit_records(&run.root.path().join("data").join("audit"))
        .into_iter()
        // The outcome record (a state-changing exchange also has an intent record first).
        .find(|r| {
            r["attributes"]["doelpoort.transaction_id"] == tx
                && r["attributes"]["doelpoort.record"] != "intent"
        })
        .unwrap_or_else(|| panic!("no audit record for {tx}"))
}

#[tokio::test]
async fn a_time_out_body_that_does_not_match_its_schema_never_reaches_the_partner() {
    let run = start_demo().await;
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut body = allowed_body();
        edit(&mut body);
        body
    };
    let cases: Vec<(&str, Value)> = vec![
        (
            "a capital letter in the category",
            with(&|b| b["vorderingen"][0]["categorie"] = json!("Strafrechtelijk")),
        ),
        (
            "a trailing no-break space in the category",
            with(&|b| b["vorderingen"][0]["categorie"] = json!("strafrechtelijk\u{a0}")),
        ),
        (
            "a Cyrillic look-alike letter in the category",
            with(&|b| b["vorderingen"][0]["categorie"] = json!("str\u{430}frechtelijk")),
        ),
        (
            "a claim without a category next to an allowed one",
            with(&|b| {
                b["vorderingen"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"vordering_id": "CJIB-2024-018842"}))
            }),
        ),
        (
            "a reason that is an object",
            with(&|b| b["reden"] = json!({"tekst": "schuldhulpverlening gestart"})),
        ),
        (
            "another person's BSN in an extra nested field",
            with(&|b| b["vorderingen"][0]["schuldenaar"] = json!("999990020")),
        ),
        ("an empty object", json!({})),
        ("no claims at all", with(&|b| b["vorderingen"] = json!([]))),
        (
            "the same claim twice",
            with(&|b| {
                let claim = b["vorderingen"][0].clone();
                b["vorderingen"].as_array_mut().unwrap().push(claim)
            }),
        ),
    ];
    let mut passed_through = Vec::new();
    for (what, body) in &cases {
        let response = post_time_out(&run, body).await;
        let record = record_of(&run, &response);
        let attributes = &record["attributes"];
        let code = attributes["doelpoort.reason"].as_str().unwrap_or("(none)");
        if response.status != StatusCode::BAD_REQUEST
            || code != "request-invalid"
            || attributes["doelpoort.decision"] != "deny"
            || attributes.get("doelpoort.upstream_status").is_some()
        {
            passed_through.push(format!(
                "{what}: {} {code} (partner answered {})",
                response.status, attributes["doelpoort.upstream_status"]
            ));
        }
        let text = String::from_utf8_lossy(&response.body);
        assert!(!text.contains("999990020"), "{what}: {text}");
    }
    assert!(
        passed_through.is_empty(),
        "not refused as request-invalid before the partner:\n{}",
        passed_through.join("\n")
    );
    // The control: the same approval flow with the allowed body reaches CJIB, and the refusals
    // above did not spend an approval the corrected request needs.
    let response = post_time_out(&run, &allowed_body()).await;
    assert_eq!(
        response.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(
        record_of(&run, &response)["attributes"]["doelpoort.upstream_status"],
        201
    );
}

/// The README's first call (the district team asks UWV for income), with `extra` headers
/// replacing the defaults.
async fn income(run: &DemoRun, extra: &[(&str, &str)]) -> TestResponse {
    let mut headers = vec![
        ("doelbinding-purpose", "wams-onderzoek"),
        ("doelbinding-case-id", "casus-2026-0001"),
        ("doelbinding-data-subject", "bsn=999990019"),
        ("doelbinding-actor", "medewerker-0042"),
    ];
    for (name, value) in extra {
        headers.retain(|(n, _)| n != name);
        headers.push((name, value));
    }
    let mut request = Request::get(run.url("/uwv/v1/personen/999990019/inkomen"));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    send(
        &run.client("wijkteam-rotterdam"),
        request.body(Full::new(Bytes::new())).unwrap(),
    )
    .await
}

/// Every audit record as text, for "does this appear anywhere" checks.
fn audit_text(run: &DemoRun) -> String {
    audit_records(&run.root.path().join("data").join("audit"))
        .iter()
        .map(Value::to_string)
        .collect()
}

#[tokio::test]
async fn a_bsn_with_separators_in_a_case_id_or_actor_is_refused_and_never_stored() {
    let run = start_demo().await;
    let disguised = [
        "casus-9999.90.019",
        "dossier-999-990-019",
        "p_999_990_019",
        "bsn:999:990:019",
        "casus-0999990019",
    ];
    let mut stored = Vec::new();
    for value in disguised {
        for header in ["doelbinding-case-id", "doelbinding-actor"] {
            let response = income(&run, &[(header, value)]).await;
            let code = String::from_utf8_lossy(&response.body).into_owned();
            if response.status != StatusCode::BAD_REQUEST || !code.contains("context-invalid") {
                stored.push(format!("{header}: {value} → {}", response.status));
            }
        }
    }
    let log = audit_text(&run);
    for value in disguised {
        if log.contains(value) {
            stored.push(format!("{value} is in the audit log"));
        }
    }
    assert!(
        stored.is_empty(),
        "BSN-shaped ids accepted or stored:\n{}",
        stored.join("\n")
    );
    // The control: a case id with digit groups that are no BSN is accepted, by the register
    // and by the exchange.
    register_case(
        &run.client("wijkteam-rotterdam"),
        run.demo.gateway.local_addr.port(),
        "casus-2026-000123",
        &["wams-onderzoek"],
        &["uwv"],
    )
    .await;
    let response = income(&run, &[("doelbinding-case-id", "casus-2026-000123")]).await;
    assert_eq!(response.status, StatusCode::OK);
}

#[tokio::test]
async fn a_callers_trace_that_embeds_a_bsn_is_replaced_not_stored() {
    let run = start_demo().await;
    for traceparent in [
        "00-aaaaaaaaaaa999990019aaaaaaaaaaaa-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-a999990019aaaaaa-01",
        // Zero-padded into the whole id (found by the outsider pass).
        "00-00000000000000000000000999990019-b7ad6b7169203331-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000999990019-01",
    ] {
        let response = income(&run, &[("traceparent", traceparent)]).await;
        assert_eq!(response.status, StatusCode::OK, "{traceparent}");
        let answered = response.headers["traceparent"].to_str().unwrap();
        assert!(!answered.contains("999990019"), "{answered}");
        let record = record_of(&run, &response);
        assert!(
            !record.to_string().contains("999990019"),
            "{traceparent}: {record}"
        );
    }
    // The control: an ordinary trace is continued.
    let ordinary = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = income(&run, &[("traceparent", ordinary)]).await;
    let record = record_of(&run, &response);
    assert_eq!(record["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
}

/// Posts `body` with an approval of `approved` (the team leader approved that body).
async fn post_approved(run: &DemoRun, path: &str, approved: &Value, body: &Value) -> TestResponse {
    post_with_approval(run, run.url(path), &approval(run, approved), body).await
}

#[tokio::test]
async fn an_approval_counts_only_for_the_request_it_names() {
    let run = start_demo().await;
    let approved = allowed_body();
    // Another claim, or another end date, than the team leader approved.
    let mut other_claim = approved.clone();
    other_claim["vorderingen"][0]["vordering_id"] = json!("CJIB-2025-004411");
    let mut longer = approved.clone();
    longer["einddatum"] = json!(doelpoort::policy::RelativeDate { days: 0, months: 4 }
        .resolve(doelpoort::policy::today())
        .to_string());
    let mut spent = Vec::new();
    for (what, body) in [
        ("another claim", &other_claim),
        ("a later end date", &longer),
    ] {
        let response = post_approved(&run, "/cjib/v1/opschortingen", &approved, body).await;
        let record = record_of(&run, &response);
        if response.status != StatusCode::FORBIDDEN
            || record["attributes"]["doelpoort.reason"] != "four-eyes-required"
        {
            spent.push(format!("{what}: {}", response.status));
        }
    }
    // The approval of the CJIB time-out, spent on UWV's suspension of all claims.
    let uwv = json!({
        "bsn": "999990019",
        "einddatum": approved["einddatum"],
        "reden": "schuldhulpverlening gestart",
    });
    let response = post_approved(&run, "/uwv/v1/opschortingen", &approved, &uwv).await;
    let record = record_of(&run, &response);
    if response.status != StatusCode::FORBIDDEN
        || record["attributes"]["doelpoort.reason"] != "four-eyes-required"
    {
        spent.push(format!("UWV's time-out: {}", response.status));
    }
    assert!(spent.is_empty(), "approval stretched to: {spent:?}");
    // The control: the approved body itself goes through, once.
    let response = post_approved(&run, "/cjib/v1/opschortingen", &approved, &approved).await;
    assert_eq!(
        response.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
}

#[tokio::test]
async fn an_approvers_role_that_holds_a_bsn_is_refused_and_never_stored() {
    let run = start_demo().await;
    let body = allowed_body();
    let token = time_out_approval(&run, &body, "999.990.019");
    let response = post_with_approval(&run, run.url("/cjib/v1/opschortingen"), &token, &body).await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert_eq!(response.problem_code(), "token-invalid");
    assert!(!audit_text(&run).contains("999.990.019"));
}
