//! Purpose binding through the real demo: the shipped policies and schemas, the demo's mock
//! partners, a fresh example PKI, real mTLS on loopback. Each refusal class of the policy
//! issue, as a backend system would meet it.

mod harness;

use bytes::Bytes;
use doelpoort::demo;
use harness::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use std::path::Path;

fn request(url: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut builder = Request::get(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::new(Bytes::new())).unwrap()
}

const ONDERZOEK: &[(&str, &str)] = &[
    ("doelbinding-purpose", "wams-onderzoek"),
    ("doelbinding-case-id", "casus-2026-0001"),
    ("doelbinding-data-subject", "bsn=999990019"),
    ("doelbinding-actor", "medewerker-0042"),
];

#[tokio::test]
async fn the_right_consumer_with_the_right_purpose_gets_200() {
    let run = start_demo().await;
    let client = run.client("wijkteam-rotterdam");
    for path in [
        "/uwv/v1/personen/999990019/inkomen",
        "/svb/v1/personen/999990019/kinderbijslag",
    ] {
        let response = send(&client, request(&run.url(path), ONDERZOEK)).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{path}: {:?}",
            response.body
        );
    }
    let schuldhulp = run.client("schuldhulp-utrecht");
    let response = send(
        &schuldhulp,
        request(
            &run.url("/cjib/v1/personen/999990019/vorderingen"),
            &[
                ("doelbinding-purpose", "schuldhulpverlening"),
                ("doelbinding-case-id", "shv-2026-0042"),
                ("doelbinding-data-subject", "bsn=999990019"),
            ],
        ),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK);
}

#[tokio::test]
async fn each_refusal_has_its_own_code() {
    let run = start_demo().await;
    let client = run.client("wijkteam-rotterdam");
    let inkomen = run.url("/uwv/v1/personen/999990019/inkomen");
    // (what, url, headers, expected status, expected code)
    type Case<'a> = (
        &'a str,
        String,
        Vec<(&'a str, &'a str)>,
        StatusCode,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "wrong purpose",
            run.url("/cjib/v1/personen/999990019/vorderingen"),
            ONDERZOEK.to_vec(),
            StatusCode::FORBIDDEN,
            "not-granted",
        ),
        (
            "missing purpose",
            inkomen.clone(),
            ONDERZOEK[1..].to_vec(),
            StatusCode::BAD_REQUEST,
            "purpose-missing",
        ),
        (
            "unknown purpose",
            inkomen.clone(),
            vec![
                ("doelbinding-purpose", "nieuwsgierigheid"),
                ONDERZOEK[1],
                ONDERZOEK[2],
            ],
            StatusCode::BAD_REQUEST,
            "purpose-unknown",
        ),
        (
            // Not in the catalog, however it is written: looked up, not refused as malformed.
            "a purpose written in capitals",
            inkomen.clone(),
            vec![
                ("doelbinding-purpose", "WAMS-onderzoek"),
                ONDERZOEK[1],
                ONDERZOEK[2],
            ],
            StatusCode::BAD_REQUEST,
            "purpose-unknown",
        ),
        (
            "BSN failing the elfproef",
            run.url("/uwv/v1/personen/999990010/inkomen"),
            vec![
                ONDERZOEK[0],
                ONDERZOEK[1],
                ("doelbinding-data-subject", "bsn=999990010"),
            ],
            StatusCode::BAD_REQUEST,
            "context-invalid",
        ),
        (
            "path BSN differs from the declared BSN",
            run.url("/uwv/v1/personen/999990020/inkomen"),
            ONDERZOEK.to_vec(),
            StatusCode::FORBIDDEN,
            "subject-mismatch",
        ),
        (
            "enforcement is never served",
            inkomen.clone(),
            vec![
                ("doelbinding-purpose", "handhaving"),
                ONDERZOEK[1],
                ONDERZOEK[2],
            ],
            StatusCode::FORBIDDEN,
            "not-granted",
        ),
        (
            "an operation the policy does not describe",
            run.url("/uwv/v1/personen/zoeken"),
            ONDERZOEK.to_vec(),
            StatusCode::NOT_FOUND,
            "unknown-route",
        ),
    ];
    for (name, url, headers, status, code) in cases {
        let response = send(&client, request(&url, &headers)).await;
        assert_eq!(response.status, status, "{name}");
        assert_eq!(response.problem_code(), code, "{name}");
        // A refusal never carries partner data or the BSN.
        let body = String::from_utf8_lossy(&response.body);
        assert!(
            !body.contains("999990019") && !body.contains("999990010"),
            "{name}: {body}"
        );
    }
}

fn date_in_months(months: i32) -> String {
    let d = doelpoort::policy::RelativeDate { days: 0, months }.resolve(doelpoort::policy::today());
    d.to_string()
}

async fn time_out(run: &DemoRun, einddatum: &str, vordering: (&str, &str)) -> TestResponse {
    let body = serde_json::json!({
        "bsn": "999990019",
        "vorderingen": [{"vordering_id": vordering.0, "categorie": vordering.1}],
        "einddatum": einddatum,
        "reden": "schuldhulpverlening gestart",
    });
    time_out_with_body(run, body.to_string()).await
}

async fn time_out_with_body(run: &DemoRun, body: String) -> TestResponse {
    time_out_naming_partners(run, body, "uwv, cjib").await
}

/// The time-out POST with `Doelbinding-Case-Partners: <partners>`.
async fn time_out_naming_partners(run: &DemoRun, body: String, partners: &str) -> TestResponse {
    let request = Request::post(run.url("/cjib/v1/opschortingen"))
        .header("content-type", "application/json")
        .header("doelbinding-purpose", "time-out")
        .header("doelbinding-case-id", "shv-2026-0042")
        .header("doelbinding-data-subject", "bsn=999990019")
        .header("doelbinding-actor", "medewerker-0042")
        .header("doelbinding-case-partners", partners)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    send(&run.client("schuldhulp-utrecht"), request).await
}

#[tokio::test]
async fn a_body_that_reads_two_ways_is_refused_by_the_decision() {
    // `einddatum` twice: 5 months ahead (refused by the condition), then 3 (allowed). A
    // last-key-wins reading would judge the second while a partner may act on the first: the
    // decision reads bodies strictly and refuses it before any condition or approval.
    let run = start_demo().await;
    let body = format!(
        r#"{{"bsn":"999990019","vorderingen":[{{"vordering_id":"CJIB-2026-000123","categorie":"verkeersboete"}}],"einddatum":"{}","einddatum":"{}","reden":"schuldhulpverlening gestart"}}"#,
        date_in_months(5),
        date_in_months(3)
    );
    let response = time_out_with_body(&run, body).await;
    assert_eq!(
        response.status,
        StatusCode::BAD_REQUEST,
        "{:?}",
        response.body
    );
    assert_eq!(response.problem_code(), "context-invalid");
    assert!(response.json()["detail"]
        .as_str()
        .unwrap()
        .contains("duplicate key"));
}

#[tokio::test]
async fn time_out_conditions_are_enforced() {
    let run = start_demo().await;
    let response = time_out(
        &run,
        &date_in_months(5),
        ("CJIB-2026-000123", "verkeersboete"),
    )
    .await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert_eq!(response.problem_code(), "condition-failed");
    assert!(response.json()["detail"]
        .as_str()
        .unwrap()
        .contains("4 maanden"));

    let response = time_out(
        &run,
        &date_in_months(3),
        ("CJIB-2024-018842", "strafrechtelijk"),
    )
    .await;
    assert_eq!(response.problem_code(), "condition-failed");
    assert!(response.json()["detail"]
        .as_str()
        .unwrap()
        .contains("strafrechter"));

    // Within the rules, the time-out still needs a colleague's approval (a signed token).
    let response = time_out(
        &run,
        &date_in_months(3),
        ("CJIB-2026-000123", "verkeersboete"),
    )
    .await;
    assert_eq!(response.problem_code(), "four-eyes-required");
}

#[tokio::test]
async fn a_consumer_discovers_only_its_own_grants() {
    let run = start_demo().await;
    let wijkteam = get(
        &run.client("wijkteam-rotterdam"),
        &run.url("/.well-known/doelpoort/grants"),
    )
    .await;
    assert_eq!(wijkteam.status, StatusCode::OK);
    let doc = wijkteam.json();
    assert_eq!(doc["consumer"], "wijkteam-rotterdam");
    let grants = doc["grants"].as_array().unwrap();
    let ids: Vec<&str> = grants
        .iter()
        .map(|g| g["grant"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"wijkteam-uwv-inkomen-onderzoek"), "{ids:?}");
    assert!(
        !ids.iter().any(|id| id.starts_with("schuldhulp")),
        "{ids:?}"
    );
    let uwv = grants
        .iter()
        .find(|g| g["grant"] == "wijkteam-uwv-inkomen-onderzoek")
        .unwrap();
    assert_eq!(uwv["path"], "/uwv/v1/personen/{bsn}/inkomen");
    assert_eq!(uwv["purpose"], "wams-onderzoek");
    assert!(uwv["fields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"] == "uitkeringen[*].soort"));

    let unknown = get(
        &run.client("onbekend"),
        &run.url("/.well-known/doelpoort/grants"),
    )
    .await;
    assert_eq!(unknown.problem_code(), "unknown-consumer");
}

/// A gateway with the shipped policies and schemas in front of the demo's UWV data, with the
/// partner side recorded.
async fn shipped_policies_before_uwv() -> (
    TestPki,
    doelpoort::demo::MockPartner,
    doelpoort::server::RunningGateway,
    Recorded,
) {
    shipped_policies_before(demo::demo_handler("uwv")).await
}

/// The shipped policies in front of a UWV answering with `handler`.
async fn shipped_policies_before(
    handler: doelpoort::demo::MockHandler,
) -> (
    TestPki,
    doelpoort::demo::MockPartner,
    doelpoort::server::RunningGateway,
    Recorded,
) {
    let pki = TestPki::new();
    let (handler, recorded) = recording(handler);
    let partner = start_partner(&pki, handler).await;
    copy_dir(&repo_root().join("policies"), &pki.path("policies"));
    copy_dir(&repo_root().join("schemas"), &pki.path("schemas"));
    // The test PKI's consumer certificate plays the Rotterdam district team.
    let yaml = config_yaml(&pki, &[PartnerSpec::new("uwv", partner.addr)], "")
        .replace("id: wijkteam-test", "id: wijkteam-rotterdam");
    let path = write_config(&pki, &yaml);
    let config = doelpoort::config::Config::load(Path::new(&path)).unwrap();
    let gateway = doelpoort::server::start(&config).await.unwrap();
    // The district team's case, as its case system registers it (SPEC §8).
    register_case(
        &client(&pki, "consumer", Http::One),
        gateway.local_addr.port(),
        "casus-2026-0001",
        &["wams-onderzoek"],
        &["uwv"],
    )
    .await;
    (pki, partner, gateway, recorded)
}

#[tokio::test]
async fn forwarded_requests_carry_the_lawful_basis_and_only_granted_query_parameters() {
    let (pki, _partner, gateway, recorded) = shipped_policies_before_uwv().await;
    let client = client(&pki, "consumer", Http::One);
    let response = send(
        &client,
        request(
            &url(
                &gateway,
                "/uwv/v1/personen/999990019/inkomen?peildatum=2026-01-01",
            ),
            ONDERZOEK,
        ),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    let received = recorded.last();
    let headers = &received.headers;
    assert_eq!(headers["doelbinding-purpose"], "wams-onderzoek");
    assert!(headers["doelbinding-legal-basis"]
        .to_str()
        .unwrap()
        .starts_with("AVG art. 6(1)(e); Wet maatschappelijke ondersteuning 2015"));
    assert_eq!(
        headers["doelbinding-processing-activity"],
        "https://register.voorbeeldstad.example/verwerkingen/wams-onderzoek"
    );
    // The grant allows no query parameters, so none reach the partner.
    assert_eq!(received.query, None);
    // The actor and the declared subject stay at the gateway.
    assert!(!headers.contains_key("doelbinding-actor"));
    assert!(!headers.contains_key("doelbinding-data-subject"));
}

/// The district team asks UWV for test person 999990019's income under `wams-onderzoek`; the
/// answer must be 200.
async fn ask_income_for_investigation(
    pki: &TestPki,
    gateway: &doelpoort::server::RunningGateway,
) -> TestResponse {
    let client = client(pki, "consumer", Http::One);
    let response = send(
        &client,
        request(
            &url(gateway, "/uwv/v1/personen/999990019/inkomen"),
            ONDERZOEK,
        ),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    response
}

#[tokio::test]
async fn only_the_fields_the_purpose_needs_arrive() {
    let (pki, _partner, gateway, _recorded) = shipped_policies_before_uwv().await;
    let response = ask_income_for_investigation(&pki, &gateway).await;
    assert_eq!(response.headers["content-type"], "application/json");
    // The mock answer holds the BSN, the employer, amounts and a medical reason; the
    // investigation may see the kinds of income and benefit, whether there is income, and the
    // year a benefit started.
    assert_eq!(
        response.json(),
        serde_json::json!({
            "inkomsten": [{"soort": "loon", "bedrag_per_maand": true}],
            "uitkeringen": [{"soort": "WIA", "ingangsdatum": 2024}]
        })
    );
    let text = String::from_utf8_lossy(&response.body);
    for withheld in [
        "999990019",
        "Voorbeeld Schoonmaak",
        "Teststraat",
        "987.25",
        "1245.5",
        "testdiagnose",
        "55",
    ] {
        assert!(
            !text.contains(withheld),
            "{withheld} reached the caller: {text}"
        );
    }
    let withheld = gateway
        .metrics
        .fields_withheld
        .with_label_values(&["uwv", "inkomen", "wams-onderzoek"])
        .get();
    assert!(withheld >= 6, "withheld {withheld}");
}

/// A UWV answer with two jobs and three benefits (synthetic, valid against the shipped schema).
const THREE_BENEFITS: &str = r#"{"bsn":"999990019",
 "inkomsten":[
  {"soort":"loon","werkgever":"Voorbeeld Schoonmaak BV","werkgever_adres":"Teststraat 12, 9999 XX Voorbeeldstad","bedrag_per_maand":1245.5,"sinds":"2023-03-01"},
  {"soort":"loon","werkgever":"Voorbeeld Catering BV","werkgever_adres":"Teststraat 14, 9999 XX Voorbeeldstad","bedrag_per_maand":300.0,"sinds":"2024-01-01"}],
 "uitkeringen":[
  {"soort":"WIA","bedrag_per_maand":987.25,"ingangsdatum":"2024-06-01","arbeidsongeschiktheidspercentage":55,"medische_reden":"Fictieve testdiagnose (synthetisch)"},
  {"soort":"WW","bedrag_per_maand":400.0,"ingangsdatum":"2023-01-01","arbeidsongeschiktheidspercentage":0,"medische_reden":"Fictief (synthetisch)"},
  {"soort":"WGA","bedrag_per_maand":120.0,"ingangsdatum":"2022-02-01","arbeidsongeschiktheidspercentage":35,"medische_reden":"Fictief (synthetisch)"}]}"#;

/// SPEC §5 (2026-12): the record names the *fields* released and withheld, each once with
/// array positions as `*`, not every element: how many benefits or jobs a person has is not
/// the log's business, and a long answer must not make a long record. The withheld-values
/// metric still counts every value.
#[tokio::test]
async fn the_record_names_fields_not_elements() {
    let handler = fixed(StatusCode::OK, THREE_BENEFITS, std::time::Duration::ZERO);
    let (pki, _partner, gateway, _recorded) = shipped_policies_before(handler).await;
    let response = ask_income_for_investigation(&pki, &gateway).await;
    // The caller still gets every element.
    assert_eq!(response.json()["uitkeringen"].as_array().unwrap().len(), 3);
    let tx = response.headers["fsc-transaction-id"].to_str().unwrap();
    let record = audit_record_of(&pki.path("audit"), tx);
    let attributes = &record["attributes"];
    assert_eq!(
        attributes["doelpoort.fields_released"],
        serde_json::json!([
            "/inkomsten/*/soort",
            "/inkomsten/*/bedrag_per_maand",
            "/uitkeringen/*/soort",
            "/uitkeringen/*/ingangsdatum"
        ]),
        "{record}"
    );
    let withheld: Vec<&str> = attributes["doelpoort.fields_withheld"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(
        withheld,
        [
            "/bsn",
            "/inkomsten/*/werkgever",
            "/inkomsten/*/werkgever_adres",
            "/inkomsten/*/sinds",
            "/uitkeringen/*/bedrag_per_maand",
            "/uitkeringen/*/arbeidsongeschiktheidspercentage",
            "/uitkeringen/*/medische_reden"
        ],
        "{record}"
    );
    // 1 BSN, 3 fields of 2 jobs, 3 fields of 3 benefits.
    let values = gateway
        .metrics
        .fields_withheld
        .with_label_values(&["uwv", "inkomen", "wams-onderzoek"])
        .get();
    assert_eq!(values, 1 + 3 * 2 + 3 * 3);
    // And a citizen's report names them as a reader would.
    let answer = doelpoort::audit::query::query(
        &pki.path("audit"),
        &doelpoort::audit::query::Filter::default(),
    )
    .unwrap();
    let row = answer
        .rows
        .iter()
        .find(|r| r.transaction_id == tx)
        .expect("the exchange in the report");
    assert_eq!(
        doelpoort::audit::query::field_names(&row.fields_released),
        [
            "inkomsten[*].bedrag_per_maand",
            "inkomsten[*].soort",
            "uitkeringen[*].ingangsdatum",
            "uitkeringen[*].soort"
        ]
    );
}

/// The partner side of the assertion contract in the demo: a mock partner asked directly (with
/// the gateway's own client certificate, so TLS is fine) refuses without a valid
/// `Doelbinding-Assertion`, and one signed by another key is refused too.
#[tokio::test]
async fn demo_partners_refuse_requests_without_a_valid_assertion() {
    let run = start_demo().await;
    let certs = run.root.path().join("certs-example");
    let direct = client_with(
        client_tls_from(
            &certs.join("ca.crt"),
            Some((
                certs.join("gateway-client.crt").as_path(),
                certs.join("gateway-client.key").as_path(),
            )),
        ),
        Http::One,
    );
    let uwv = run.demo.partners[0].addr;
    let url = format!(
        "https://localhost:{}/v1/personen/999990019/inkomen",
        uwv.port()
    );
    let response = send(
        &direct,
        request(&url, &[("doelbinding-purpose", "wams-onderzoek")]),
    )
    .await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    assert!(!String::from_utf8_lossy(&response.body).contains("inkomsten"));

    // Signed, well-formed, but by a key the gateway does not publish.
    let (private, _) = doelpoort::pki::signing_key_pair().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rogue.key"), private).unwrap();
    let rogue =
        doelpoort::assertion::AssertionSigner::load(Some(&doelpoort::config::AssertionConfig {
            keys: vec![dir.path().join("rogue.key")],
            lifetime: std::time::Duration::from_secs(60),
            cache_size: 0,
        }))
        .unwrap();
    let forged = rogue
        .sign(&doelpoort::assertion::AssertionClaims {
            iss: "00000001999990000000",
            sub: "00000001999990001000",
            aud: "00000001999990011000",
            purpose: "wams-onderzoek",
            legal_basis: None,
            processing_activity: None,
            case_id: None,
            data_subject: None,
            cnf: doelpoort::assertion::Confirmation { x5t_s256: "x" },
        })
        .unwrap();
    let response = send(
        &direct,
        request(
            &url,
            &[
                ("doelbinding-purpose", "wams-onderzoek"),
                ("doelbinding-assertion", forged.token.as_str()),
            ],
        ),
    )
    .await;
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);

    // Through the gateway the same question is answered.
    let client = run.client("wijkteam-rotterdam");
    let response = send(
        &client,
        request(&run.url("/uwv/v1/personen/999990019/inkomen"), ONDERZOEK),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK);
}

#[tokio::test]
async fn case_partners_are_looked_up_as_written() {
    // `CJIB` is not the partner id `cjib`: the grant's involved-partner requirement fails; the
    // header itself is well-formed (the outsider pass of 2026-12-05 found this turned into
    // context-invalid for a while).
    let run = start_demo().await;
    let body = serde_json::json!({
        "bsn": "999990019",
        "vorderingen": [{"vordering_id": "CJIB-2026-000123", "categorie": "verkeersboete"}],
        "einddatum": date_in_months(3),
        "reden": "schuldhulpverlening gestart",
    });
    let response = time_out_naming_partners(&run, body.to_string(), "UWV, CJIB").await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert_eq!(response.problem_code(), "condition-failed");
}
