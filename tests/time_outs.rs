//! The time-out ledger, the escalation preconditions and the case register across replicas
//! (SPEC §2, §8, §9), through the whole gateway: the real demo (its policies, schemas, mock
//! partners and example PKI) over mTLS on loopback, and two demo replicas on one real
//! PostgreSQL.
//!
//! The ledger and escalation scenarios run on both stores (SPEC §9), as `sqlite::<scenario>`
//! and `postgres::<scenario>`:
//! - **sqlite**: the demo gateway itself, with the embedded SQLite store in its data directory
//!   and the demo's cases registered at start;
//! - **postgres**: a replica of the demo's configuration on a real PostgreSQL (harness
//!   [`Postgres::start`]), its audit log in files of its own; the demo's cases are registered
//!   there through the API first (the demo registers them only on its own gateway).
//!
//! The private-partner check (policy only) runs once; the replica tests run on PostgreSQL.
//!
//! A time-out is one person's, not one case's: the ledger rules see the person's time-outs in
//! every case of the same organisation. Scenarios that need the demo's person without
//! time-outs at the start (each replica round, each half of a scenario) get a store of their
//! own.
//!
//! The time-outs are the demo's: CJIB claims of 999990019 are `CJIB-2026-000123`
//! (verkeersboete) and `CJIB-2025-004711` (administratief); the third is strafrechtelijk and
//! never suspended. Every time-out carries a signed approval (four eyes: `teamleider`; an
//! extension also `afdelingshoofd`). `doelpoort::demo::tokens::demo_token` gives all the
//! approvers of one token the same `approver_role`, so the tokens here are minted with the
//! demo issuer's key, with the claims `demo_token` writes and one role per approver.
//!
//! What the API alone cannot reach — the 8-month cumulative cap, and a time-out that has
//! ended — needs a ledger with history: every time-out starts today or later and the grant
//! lets none end more than 4 months ahead, so time-outs asked for on one day cover at most
//! 4 months and a day. Those tests first write an earlier, granted time-out through the
//! store's own serialised register change (`Store::change_case`, as the gateway itself
//! records one), then ask the gateway.

mod harness;

use bytes::Bytes;
use doelpoort::policy::RelativeDate;
use doelpoort::server::RunningGateway;
use doelpoort::store::cases::{CaseWrite, Changed, StoredTimeOut};
use doelpoort::store::{StoreLocation, StoreSettings};
use harness::postgres::Postgres;
use harness::*;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use time::Date;

/// CJIB claims of the demo's person 999990019 that a time-out may touch.
const X: (&str, &str) = ("CJIB-2026-000123", "verkeersboete");
const Y: (&str, &str) = ("CJIB-2025-004711", "administratief");
/// Known at every demo partner; known at UWV only.
const KNOWN: &str = "999990019";
const UWV_ONLY: &str = "999990020";
const ACTOR: &str = "medewerker-0042";
const TEAMLEIDER: &[(&str, &str)] = &[("teamleider-0007", "teamleider")];
const AFDELINGSHOOFD: &[(&str, &str)] = &[("afdelingshoofd-0003", "afdelingshoofd")];
const BOTH: &[(&str, &str)] = &[
    ("teamleider-0007", "teamleider"),
    ("afdelingshoofd-0003", "afdelingshoofd"),
];
const SCHULDHULP: &str = "schuldhulp-utrecht";

// ---------------------------------------------------------------------------------------
// The two stores
// ---------------------------------------------------------------------------------------

use harness::stores::{demo_replica, on_both_stores, Backend, StoreEnv};

on_both_stores!(
    the_ledger_refuses_overlaps_and_extends_only_with_an_afdelingshoofd,
    the_cumulative_cap_counts_the_days_of_the_case_at_the_partner,
    a_time_out_is_one_persons_not_one_cases,
    the_cumulative_cap_counts_the_persons_time_outs_in_the_owners_other_cases,
    a_partner_involved_after_the_time_out_started_is_not_suspended,
    a_partner_added_in_the_same_second_as_the_time_out_is_not_suspended_either,
    a_time_out_the_partner_refuses_leaves_nothing_in_the_ledger,
    escalation_follows_a_time_out_in_an_agreed_case,
    escalation_needs_a_time_out_in_force_not_one_that_ended,
);

/// One scenario's gateway and store (see [`StoreEnv`]), with this file's own helpers.
type Env = StoreEnv;

impl StoreEnv {
    fn base(&self) -> String {
        base(self.gateway())
    }

    /// The store the scenario's gateway uses, as the gateway's configuration names it.
    fn store_settings(&self) -> StoreSettings {
        match &self.postgres {
            Some(pg) => StoreSettings::new(StoreLocation::Postgres(pg.url())),
            None => self.run.demo.config.store.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Dates and bodies
// ---------------------------------------------------------------------------------------

fn today() -> Date {
    doelpoort::policy::today()
}

/// `n` months from today, as the grant's conditions resolve "n months ahead/ago".
fn months(n: i32) -> Date {
    RelativeDate { days: 0, months: n }.resolve(today())
}

fn cjib_time_out(bsn: &str, claims: &[(&str, &str)], ends: Date) -> Value {
    json!({
        "bsn": bsn,
        "vorderingen": claims
            .iter()
            .map(|(id, category)| json!({"vordering_id": id, "categorie": category}))
            .collect::<Vec<_>>(),
        "einddatum": ends.to_string(),
        "reden": "schuldhulpverlening gestart",
    })
}

fn uwv_time_out(bsn: &str, ends: Date) -> Value {
    json!({"bsn": bsn, "einddatum": ends.to_string(), "reden": "schuldhulpverlening gestart"})
}

fn escalation(bsn: &str) -> Value {
    json!({
        "bsn": bsn,
        "lokale_analyse": {
            "problemen": ["problematische schulden", "dreigende huisuitzetting"],
            "ingezette_hulp": ["schuldhulpverlening", "lokale time-out"],
            "knelpunt": "De verrekening met de uitkering loopt door ondanks de lokale time-out.",
            "advies": "Schort de verrekening op tot de schuldregeling rond is.",
        },
    })
}

fn case_body(purposes: &[&str], household: &[&str], agreed: &[&str]) -> Value {
    json!({
        "purposes": purposes,
        "household": household,
        "agreed_partners": agreed,
        "objections": [],
        "status": "open",
    })
}

// ---------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------

/// The context one exchange declares (headers) and its approval token names (claims).
#[derive(Clone, Copy)]
struct Ctx<'a> {
    consumer: &'a str,
    case: &'a str,
    subject: &'a str,
    purpose: &'a str,
    /// `Doelbinding-Case-Partners` and `case_partners` in the token (none if empty).
    partners: &'a [&'a str],
}

fn time_out_ctx<'a>(case: &'a str, subject: &'a str, partners: &'a [&'a str]) -> Ctx<'a> {
    Ctx {
        consumer: SCHULDHULP,
        case,
        subject,
        purpose: "time-out",
        partners,
    }
}

fn base(gateway: &RunningGateway) -> String {
    url(gateway, "")
}

/// A caller token of the demo identity provider for `ctx`, bound to the consumer's example
/// certificate, approving `operation` with exactly `body`, by `approvals` (sub, role) — the
/// claims `demo_token` writes, with a role per approver.
fn mint(
    run: &DemoRun,
    ctx: &Ctx<'_>,
    operation: &str,
    body: &Value,
    approvals: &[(&str, &str)],
) -> String {
    let certs = run.root.path().join("certs-example");
    let cert = certs.join("clients").join(format!("{}.crt", ctx.consumer));
    let chain = doelpoort::tls::load_certificates(&cert).unwrap();
    let cnf =
        doelpoort::token::thumbprint(&doelpoort::identity::Fingerprint::of_der(chain[0].as_ref()));
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = json!({
        "iss": doelpoort::demo::tokens::DEMO_ISSUER,
        "aud": doelpoort::demo::tokens::DEMO_AUDIENCE,
        "sub": ACTOR,
        "iat": now,
        "exp": now + 120,
        "cnf": {"x5t#S256": cnf},
        "purpose": ctx.purpose,
        "case_id": ctx.case,
        "data_subject": format!("bsn={}", ctx.subject),
        "approvals": approvals
            .iter()
            .map(|(sub, role)| json!({"sub": sub, "role": role}))
            .collect::<Vec<_>>(),
        "jti": uuid::Uuid::new_v4().to_string(),
        "approves": {
            "operation": operation,
            "request_sha256": doelpoort::canonical::digest(body),
        },
    });
    if !ctx.partners.is_empty() {
        claims["case_partners"] = json!(ctx.partners);
    }
    let pem = std::fs::read(doelpoort::demo::tokens::issuer_key(&certs)).unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &claims,
        &key,
    )
    .unwrap()
}

/// One exchange through the gateway at `base` with `ctx`'s headers.
async fn exchange(
    client: &TestClient,
    base: &str,
    method: Method,
    path: &str,
    ctx: &Ctx<'_>,
    token: Option<&str>,
    body: Option<&Value>,
) -> TestResponse {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("doelbinding-purpose", ctx.purpose)
        .header("doelbinding-case-id", ctx.case)
        .header("doelbinding-data-subject", format!("bsn={}", ctx.subject))
        .header("doelbinding-actor", ACTOR);
    if !ctx.partners.is_empty() {
        request = request.header("doelbinding-case-partners", ctx.partners.join(", "));
    }
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let bytes = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Bytes::from(body.to_string())
        }
        None => Bytes::new(),
    };
    send(client, request.body(Full::new(bytes)).unwrap()).await
}

/// A time-out at `partner` (`POST /<partner>/v1/opschortingen`) with a fresh approval token.
async fn time_out(
    run: &DemoRun,
    client: &TestClient,
    base: &str,
    ctx: &Ctx<'_>,
    partner: &str,
    body: &Value,
    approvals: &[(&str, &str)],
) -> TestResponse {
    let token = mint(run, ctx, &format!("{partner}/opschorting"), body, approvals);
    post_time_out(client, base, ctx, partner, &token, body).await
}

async fn post_time_out(
    client: &TestClient,
    base: &str,
    ctx: &Ctx<'_>,
    partner: &str,
    token: &str,
    body: &Value,
) -> TestResponse {
    exchange(
        client,
        base,
        Method::POST,
        &format!("/{partner}/v1/opschortingen"),
        ctx,
        Some(token),
        Some(body),
    )
    .await
}

async fn escalate(client: &TestClient, base: &str, case: &str, body: &Value) -> TestResponse {
    let ctx = Ctx {
        consumer: SCHULDHULP,
        case,
        subject: KNOWN,
        purpose: "escalatie",
        partners: &[],
    };
    exchange(
        client,
        base,
        Method::POST,
        "/escalatieteam/v1/escalaties",
        &ctx,
        None,
        Some(body),
    )
    .await
}

/// A call to the case register's API (`/doelpoort/v1/cases/{id}…`) as a case system.
async fn register_call(
    client: &TestClient,
    base: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> TestResponse {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("{base}/doelpoort/v1/cases/{path}"))
        .header("doelbinding-actor", "casesysteem-1");
    let bytes = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Bytes::from(body.to_string())
        }
        None => Bytes::new(),
    };
    send(client, request.body(Full::new(bytes)).unwrap()).await
}

async fn put_case(client: &TestClient, base: &str, id: &str, body: &Value) -> TestResponse {
    register_call(client, base, Method::PUT, id, Some(body)).await
}

/// Registers a new case (201).
async fn new_case(client: &TestClient, base: &str, id: &str, body: &Value) {
    let response = put_case(client, base, id, body).await;
    expect(
        &response,
        StatusCode::CREATED,
        None,
        &format!("registering {id}"),
    );
}

async fn get_case(client: &TestClient, base: &str, id: &str) -> TestResponse {
    register_call(client, base, Method::GET, id, None).await
}

async fn close_case(client: &TestClient, base: &str, id: &str) -> TestResponse {
    register_call(client, base, Method::POST, &format!("{id}/close"), None).await
}

/// The case's ledger as the API shows it: (partner, claim count, first day, last day, state).
async fn ledger(
    client: &TestClient,
    base: &str,
    id: &str,
) -> Vec<(String, u64, String, String, String)> {
    let response = get_case(client, base, id).await;
    expect(&response, StatusCode::OK, None, &format!("reading {id}"));
    let mut rows: Vec<_> = response.json()["time_outs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["partner"].as_str().unwrap().to_string(),
                t["claims"].as_u64().unwrap(),
                t["starts_on"].as_str().unwrap().to_string(),
                t["ends_on"].as_str().unwrap().to_string(),
                t["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

fn text(response: &TestResponse) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

/// Asserts the status and, for a refusal, the problem code (a success is no problem).
#[track_caller]
fn expect(response: &TestResponse, status: StatusCode, code: Option<&str>, what: &str) {
    assert_eq!(response.status, status, "{what}: {}", text(response));
    match code {
        Some(code) => assert_eq!(response.problem_code(), code, "{what}: {}", text(response)),
        None => assert_ne!(
            response.headers["content-type"],
            "application/problem+json",
            "{what}: {}",
            text(response)
        ),
    }
}

/// A refusal's `detail` contains `part`.
#[track_caller]
fn detail_says(response: &TestResponse, part: &str) {
    let detail = response.json()["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        detail.contains(part),
        "detail {detail:?} should say {part:?}"
    );
}

fn unix_now() -> i64 {
    doelpoort::clock::unix_now()
}

/// Waits (at most ~1.2 s) until the wall clock's second is past `second`.
async fn past_second(second: i64) {
    for _ in 0..60 {
        if unix_now() > second {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the clock did not pass second {second}");
}

// ---------------------------------------------------------------------------------------
// History in the ledger (what the API alone cannot produce on one day)
// ---------------------------------------------------------------------------------------

/// Writes a *granted* time-out with the given days into the case's ledger, through the
/// store's serialised register change (the same writes the gateway makes: reserve, grant),
/// and waits until the gateway at `base` shows it.
#[allow(clippy::too_many_arguments)]
async fn earlier_time_out(
    run: &DemoRun,
    settings: &StoreSettings,
    client: &TestClient,
    base: &str,
    case: &str,
    partner: &str,
    claims: &[&str],
    (from, to): (Date, Date),
) {
    let store =
        doelpoort::store::Store::open(settings, "ledger-history", run.demo.gateway.metrics.store())
            .await
            .unwrap();
    let id = uuid::Uuid::now_v7().to_string();
    let entry = StoredTimeOut {
        id: id.clone(),
        partner: partner.into(),
        claims: claims.iter().map(|c| c.to_string()).collect(),
        starts_on: from.to_string(),
        ends_on: to.to_string(),
        pending: false,
        created_at: from.midnight().assume_utc().unix_timestamp(),
        transaction_id: uuid::Uuid::now_v7().to_string(),
        // The demo's household key (every replica of the run shares it).
        subject: doelpoort::cases::HouseholdKey::load_or_create(
            &run.root.path().join("data").join("household.key"),
        )
        .unwrap()
        .member(&doelpoort::context::Bsn::parse("999990019").unwrap()),
    };
    let key = doelpoort::store::cases::case_key("schuldhulp-utrecht", case);
    let changed = store
        .change_case("time_out_reserve", &key, unix_now(), |current, _| {
            if current.is_none() {
                return Err("no such case");
            }
            Ok(vec![
                CaseWrite::ReserveTimeOut(entry),
                CaseWrite::GrantTimeOut { id },
            ])
        })
        .await
        .unwrap();
    assert!(matches!(changed, Changed::Committed(_)), "history written");
    let start = Instant::now();
    loop {
        let rows = ledger(client, base, case).await;
        if rows
            .iter()
            .any(|r| r.2 == from.to_string() && r.3 == to.to_string())
        {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the gateway never saw the history: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------
// 1. The ledger
// ---------------------------------------------------------------------------------------

async fn the_ledger_refuses_overlaps_and_extends_only_with_an_afdelingshoofd(backend: Backend) {
    let env = Env::start(backend).await;
    let run = &env.run;
    let client = env.client(SCHULDHULP);
    let base = env.base();
    let case = "shv-2026-0042";
    let ctx = time_out_ctx(case, KNOWN, &["uwv", "cjib"]);
    let three = months(3);

    // Claim X for three months.
    let x = cjib_time_out(KNOWN, &[X], three);
    let first = time_out(run, &client, &base, &ctx, "cjib", &x, TEAMLEIDER).await;
    expect(&first, StatusCode::CREATED, None, "a first time-out for X");
    assert!(
        first.json()["opschorting_id"].is_string(),
        "{}",
        text(&first)
    );

    // The same claim again, same end: an overlap, no extension.
    let again = time_out(run, &client, &base, &ctx, "cjib", &x, TEAMLEIDER).await;
    expect(
        &again,
        StatusCode::FORBIDDEN,
        Some("condition-failed"),
        "X again",
    );
    detail_says(&again, "already in force");
    // X together with Y overlaps X too (not the same claims: no extension either).
    let both = cjib_time_out(KNOWN, &[X, Y], months(4));
    let overlap = time_out(run, &client, &base, &ctx, "cjib", &both, BOTH).await;
    expect(
        &overlap,
        StatusCode::FORBIDDEN,
        Some("condition-failed"),
        "X and Y while X runs",
    );

    // Another claim side by side is a time-out of its own.
    let y = cjib_time_out(KNOWN, &[Y], three);
    let side = time_out(run, &client, &base, &ctx, "cjib", &y, TEAMLEIDER).await;
    expect(&side, StatusCode::CREATED, None, "Y side by side");

    // Extending X (same claims, a later end): the team leader's approval is not enough.
    let four = months(4);
    let longer = cjib_time_out(KNOWN, &[X], four);
    let short = time_out(run, &client, &base, &ctx, "cjib", &longer, TEAMLEIDER).await;
    expect(
        &short,
        StatusCode::FORBIDDEN,
        Some("four-eyes-required"),
        "extension, teamleider only",
    );
    detail_says(&short, "afdelingshoofd");
    // Nor is the head of department's alone: the grant's four eyes need the team leader.
    let head_only = time_out(run, &client, &base, &ctx, "cjib", &longer, AFDELINGSHOOFD).await;
    expect(
        &head_only,
        StatusCode::FORBIDDEN,
        Some("four-eyes-required"),
        "extension, afdelingshoofd only",
    );
    // Both, in one token: granted, running from the day after the current end.
    let extended = time_out(run, &client, &base, &ctx, "cjib", &longer, BOTH).await;
    expect(
        &extended,
        StatusCode::CREATED,
        None,
        "extension with both approvals",
    );

    // The grant's condition holds for every request, an extension too: at most 4 months
    // ahead. (So on one day the union of the case's time-outs is at most 4 months and a day:
    // the 8-month cap needs history, see the test after this one.)
    let beyond = cjib_time_out(KNOWN, &[Y], four.next_day().unwrap());
    let too_far = time_out(run, &client, &base, &ctx, "cjib", &beyond, BOTH).await;
    expect(
        &too_far,
        StatusCode::FORBIDDEN,
        Some("condition-failed"),
        "Y extended past 4 months",
    );
    detail_says(&too_far, "4 maanden");

    // The ledger: X (today .. +3m), Y (today .. +3m), X's extension (+3m+1d .. +4m); all
    // granted; nothing left of the refusals.
    let t = today().to_string();
    let rows = ledger(&client, &base, case).await;
    let granted = |from: &str, to: Date| {
        (
            "cjib".to_string(),
            1u64,
            from.to_string(),
            to.to_string(),
            "granted".to_string(),
        )
    };
    let mut want = vec![
        granted(&t, three),
        granted(&t, three),
        granted(&three.next_day().unwrap().to_string(), four),
    ];
    want.sort();
    assert_eq!(rows, want);
}

async fn the_cumulative_cap_counts_the_days_of_the_case_at_the_partner(backend: Backend) {
    let env = Env::start(backend).await;
    let run = &env.run;
    let client = env.client(SCHULDHULP);
    let base = env.base();
    let case = "shv-cap-1";
    new_case(
        &client,
        &base,
        case,
        &case_body(&["time-out"], &[KNOWN], &["cjib"]),
    )
    .await;
    let ctx = time_out_ctx(case, KNOWN, &["cjib"]);

    // History: X was suspended from 4 months ago until yesterday.
    let first_start = months(-4);
    let yesterday = today().previous_day().unwrap();
    let settings = env.store_settings();
    earlier_time_out(
        run,
        &settings,
        &client,
        &base,
        case,
        "cjib",
        &[X.0],
        (first_start, yesterday),
    )
    .await;

    // 8 months from the first start, that day not included: the last day the cap allows. A
    // time-out for Y from today continues the suspended days without a gap. (The first start
    // + 8 months is never later than today + 4 months, so the grant's own 4-month condition
    // lets the one-day-too-long request through to the ledger.)
    let cap_end = RelativeDate { days: 0, months: 8 }
        .resolve(first_start)
        .previous_day()
        .unwrap();
    assert!(
        cap_end < months(4),
        "{cap_end} must be within the grant's 4 months"
    );
    let over = cjib_time_out(KNOWN, &[Y], cap_end.next_day().unwrap());
    let refused = time_out(run, &client, &base, &ctx, "cjib", &over, TEAMLEIDER).await;
    expect(
        &refused,
        StatusCode::FORBIDDEN,
        Some("condition-failed"),
        "one day past the cap",
    );
    detail_says(&refused, "8 months");
    let at_cap = cjib_time_out(KNOWN, &[Y], cap_end);
    let granted = time_out(run, &client, &base, &ctx, "cjib", &at_cap, TEAMLEIDER).await;
    expect(&granted, StatusCode::CREATED, None, "up to the cap");

    // Side by side, days count once: X again for one month (within Y's days) is granted.
    let x = cjib_time_out(KNOWN, &[X], months(1));
    let beside = time_out(run, &client, &base, &ctx, "cjib", &x, TEAMLEIDER).await;
    expect(
        &beside,
        StatusCode::CREATED,
        None,
        "X within the days already suspended",
    );
    // An extension of Y past the cap (approved by both) is still refused by the cap.
    let y_longer = cjib_time_out(KNOWN, &[Y], cap_end.next_day().unwrap());
    let extension = time_out(run, &client, &base, &ctx, "cjib", &y_longer, BOTH).await;
    expect(
        &extension,
        StatusCode::FORBIDDEN,
        Some("condition-failed"),
        "extending Y past the cap",
    );
    detail_says(&extension, "8 months");
}

// ---------------------------------------------------------------------------------------
// 1b. A time-out is one person's, not one case's
// ---------------------------------------------------------------------------------------

/// A new case of the same organisation for the same person is no way round the ledger: a
/// claim suspended through case A is in force in case B too (the same claim again is an
/// overlap, a later end an extension with its own approval).
async fn a_time_out_is_one_persons_not_one_cases(backend: Backend) {
    let env = Env::start(backend).await;
    let run = &env.run;
    let client = env.client(SCHULDHULP);
    let base = env.base();
    let a = "shv-person-a";
    new_case(
        &client,
        &base,
        a,
        &case_body(&["time-out"], &[KNOWN], &["cjib"]),
    )
    .await;
    let three = months(3);
    let x = cjib_time_out(KNOWN, &[X], three);
    let on_a = time_out_ctx(a, KNOWN, &["cjib"]);
    let first = time_out(run, &client, &base, &on_a, "cjib", &x, TEAMLEIDER).await;
    expect(&first, StatusCode::CREATED, None, "X through case A");

    // Case B: the same organisation, the same household, CJIB agreed.
    let b = "shv-person-b";
    new_case(
        &client,
        &base,
        b,
        &case_body(&["time-out"], &[KNOWN], &["cjib"]),
    )
    .await;
    let on_b = time_out_ctx(b, KNOWN, &["cjib"]);
    let again = time_out(run, &client, &base, &on_b, "cjib", &x, TEAMLEIDER).await;
    expect(
        &again,
        StatusCode::FORBIDDEN,
        Some("condition-failed"),
        "X again, same end, through case B",
    );
    detail_says(&again, "already in force");
    let longer = cjib_time_out(KNOWN, &[X], months(4));
    let extension = time_out(run, &client, &base, &on_b, "cjib", &longer, TEAMLEIDER).await;
    expect(
        &extension,
        StatusCode::FORBIDDEN,
        Some("four-eyes-required"),
        "X to a later end through case B, teamleider only",
    );
    detail_says(&extension, "afdelingshoofd");

    // Case B's ledger holds nothing; case A's is as it was.
    assert_eq!(ledger(&client, &base, b).await, vec![]);
    assert_eq!(
        ledger(&client, &base, a).await,
        vec![(
            "cjib".to_string(),
            1,
            today().to_string(),
            three.to_string(),
            "granted".to_string()
        )]
    );
}

/// The cumulative cap counts the person's days at the partner in every case of the same
/// organisation: case A's history makes case B's time-out one day too long.
async fn the_cumulative_cap_counts_the_persons_time_outs_in_the_owners_other_cases(
    backend: Backend,
) {
    let env = Env::start(backend).await;
    let run = &env.run;
    let client = env.client(SCHULDHULP);
    let base = env.base();
    let a = "shv-cap-person-a";
    new_case(
        &client,
        &base,
        a,
        &case_body(&["time-out"], &[KNOWN], &["cjib"]),
    )
    .await;
    // History in case A: X was suspended from 4 months ago until yesterday.
    let first_start = months(-4);
    let yesterday = today().previous_day().unwrap();
    let settings = env.store_settings();
    earlier_time_out(
        run,
        &settings,
        &client,
        &base,
        a,
        "cjib",
        &[X.0],
        (first_start, yesterday),
    )
    .await;

    // Case B: no history of its own.
    let b = "shv-cap-person-b";
    new_case(
        &client,
        &base,
        b,
        &case_body(&["time-out"], &[KNOWN], &["cjib"]),
    )
    .await;
    let on_b = time_out_ctx(b, KNOWN, &["cjib"]);
    let cap_end = RelativeDate { days: 0, months: 8 }
        .resolve(first_start)
        .previous_day()
        .unwrap();
    assert!(
        cap_end < months(4),
        "{cap_end} must be within the grant's 4 months"
    );
    // One day past the cap counted from case A's first day: refused (on its own, case B's
    // time-out would be 4 months at most, well within 8).
    let over = cjib_time_out(KNOWN, &[Y], cap_end.next_day().unwrap());
    let refused = time_out(run, &client, &base, &on_b, "cjib", &over, TEAMLEIDER).await;
    expect(
        &refused,
        StatusCode::FORBIDDEN,
        Some("condition-failed"),
        "case B one day past the person's cap",
    );
    detail_says(&refused, "8 months");
    assert_eq!(ledger(&client, &base, b).await, vec![]);
    let at_cap = cjib_time_out(KNOWN, &[Y], cap_end);
    let granted = time_out(run, &client, &base, &on_b, "cjib", &at_cap, TEAMLEIDER).await;
    expect(&granted, StatusCode::CREATED, None, "case B up to the cap");
}

// ---------------------------------------------------------------------------------------
// 2. Parties involved later
// ---------------------------------------------------------------------------------------

async fn a_partner_involved_after_the_time_out_started_is_not_suspended(backend: Backend) {
    let env = Env::start(backend).await;
    let run = &env.run;
    let client = env.client(SCHULDHULP);
    let base = env.base();

    // UWV added after the CJIB time-out started.
    let later = "shv-later-1";
    new_case(
        &client,
        &base,
        later,
        &case_body(&["time-out"], &[KNOWN], &["cjib"]),
    )
    .await;
    let cjib_only = time_out_ctx(later, KNOWN, &["cjib"]);
    let x = cjib_time_out(KNOWN, &[X], months(3));
    let started = time_out(run, &client, &base, &cjib_only, "cjib", &x, TEAMLEIDER).await;
    expect(&started, StatusCode::CREATED, None, "the CJIB time-out");
    // The register keeps seconds: the partner is added in a later second than the time-out.
    past_second(unix_now()).await;
    let replaced = put_case(
        &client,
        &base,
        later,
        &case_body(&["time-out"], &[KNOWN], &["cjib", "uwv"]),
    )
    .await;
    expect(&replaced, StatusCode::OK, None, "adding uwv");
    let both = time_out_ctx(later, KNOWN, &["cjib", "uwv"]);
    let uwv = uwv_time_out(KNOWN, months(3));
    let refused = time_out(run, &client, &base, &both, "uwv", &uwv, TEAMLEIDER).await;
    expect(
        &refused,
        StatusCode::FORBIDDEN,
        Some("condition-failed"),
        "UWV involved later",
    );
    detail_says(
        &refused,
        "became involved in the case after its time-out started",
    );
    assert_eq!(
        ledger(&client, &base, later).await.len(),
        1,
        "only CJIB's time-out"
    );

    // UWV agreed before the first time-out. A time-out is one person's, not one case's: in
    // the same register the CJIB time-out above would be in force for this person in this
    // case too, so this half runs on a register of its own.
    drop(env);
    let env = Env::start(backend).await;
    let run = &env.run;
    let client = env.client(SCHULDHULP);
    let base = env.base();
    let before = "shv-before-1";
    new_case(
        &client,
        &base,
        before,
        &case_body(&["time-out"], &[KNOWN], &["cjib", "uwv"]),
    )
    .await;
    // The time-out starts in a later second than uwv's registration: "before" is then
    // plain whatever the register's resolution.
    past_second(unix_now()).await;
    let ctx = time_out_ctx(before, KNOWN, &["cjib", "uwv"]);
    let first = time_out(run, &client, &base, &ctx, "cjib", &x, TEAMLEIDER).await;
    expect(
        &first,
        StatusCode::CREATED,
        None,
        "CJIB on a case with uwv agreed",
    );
    let granted = time_out(run, &client, &base, &ctx, "uwv", &uwv, TEAMLEIDER).await;
    expect(
        &granted,
        StatusCode::CREATED,
        None,
        "UWV agreed before the time-out",
    );
    assert_eq!(ledger(&client, &base, before).await.len(), 2);
}

/// The rule is "only partners registered *before* the time-out started". The register
/// stamps both moments in whole seconds and refuses only `since > started`, so a partner
/// added in the same second as the time-out, after it, passes.
async fn a_partner_added_in_the_same_second_as_the_time_out_is_not_suspended_either(
    backend: Backend,
) {
    let env = Env::start(backend).await;
    let run = &env.run;
    let client = env.client(SCHULDHULP);
    let base = env.base();
    let x = cjib_time_out(KNOWN, &[X], months(3));
    let uwv = uwv_time_out(KNOWN, months(3));
    let mut same_second = false;
    for attempt in 0..5 {
        let case = format!("shv-tie-{attempt}");
        new_case(
            &client,
            &base,
            &case,
            &case_body(&["time-out"], &[KNOWN], &["cjib"]),
        )
        .await;
        let cjib_only = time_out_ctx(&case, KNOWN, &["cjib"]);
        let token = mint(run, &cjib_only, "cjib/opschorting", &x, TEAMLEIDER);
        let with_uwv = case_body(&["time-out"], &[KNOWN], &["cjib", "uwv"]);
        // Start right after a second begins, time-out first, then the partner.
        past_second(unix_now()).await;
        let t0 = unix_now();
        let started = post_time_out(&client, &base, &cjib_only, "cjib", &token, &x).await;
        let replaced = put_case(&client, &base, &case, &with_uwv).await;
        let t1 = unix_now();
        expect(&started, StatusCode::CREATED, None, "the CJIB time-out");
        expect(&replaced, StatusCode::OK, None, "adding uwv");
        let both = time_out_ctx(&case, KNOWN, &["cjib", "uwv"]);
        let answer = time_out(run, &client, &base, &both, "uwv", &uwv, TEAMLEIDER).await;
        assert_eq!(
            (answer.status, answer.problem_code_or_none()),
            (StatusCode::FORBIDDEN, Some("condition-failed".to_string())),
            "attempt {attempt}: uwv was registered after the CJIB time-out started \
             (both within unix second {t0}..={t1}), yet: {}",
            text(&answer)
        );
        if t0 == t1 {
            same_second = true;
            break;
        }
    }
    assert!(
        same_second,
        "no attempt fitted in one second: the tie was not tried"
    );
}

trait MaybeProblem {
    fn problem_code_or_none(&self) -> Option<String>;
}

impl MaybeProblem for TestResponse {
    fn problem_code_or_none(&self) -> Option<String> {
        (self
            .headers
            .get("content-type")
            .is_some_and(|c| c == "application/problem+json"))
        .then(|| self.problem_code())
    }
}

// ---------------------------------------------------------------------------------------
// 3. Never a private creditor
// ---------------------------------------------------------------------------------------

const PRIVATE_PARTNER: &str = "\
partners:
  - id: incasso-bv
    name: Voorbeeld Incasso BV
    private: true
    operations:
      - id: opschorting
        title: Time-out bij een private schuldeiser
        method: POST
        path: /v1/opschortingen
        subject: body bsn
        request_schema: invordering-opschorting.request.schema.json
        response_schema: invordering-opschorting.response.schema.json
";

const PRIVATE_GRANT: &str = "
  - id: schuldhulp-incasso-time-out
    consumers: [schuldhulp-utrecht]
    operation: incasso-bv/opschorting
    purpose: time-out
    requires: [registered_case, actor, involved_partner]
    four_eyes:
      role: teamleider
    time_out:
      ends: einddatum
      max_total: 8 months
      extension:
        role: afdelingshoofd
    conditions:
      - field: einddatum
        at_most: 4 months ahead
        message: een time-out duurt ten hoogste 4 maanden
    request_fields: [bsn, einddatum, reden]
    fields:
      opschorting_id: keep
      status: keep
      einddatum: keep
    valid_from: 2026-01-01
    valid_until: 2027-12-31
    rationale: >
      Een time-out bij een private incassopartij: mag nooit.
";

/// Adds the private partner and a time-out grant for it to the policy directory `dir`
/// (each file written whole and renamed into place); returns the grant file and the
/// 1-based line and column of the grant's operation value in it.
fn add_private_time_out(dir: &Path, staging: &Path, private: bool) -> (String, usize, usize) {
    let grant_file = dir.join("grants/schuldhulp-utrecht.yaml");
    let grants = std::fs::read_to_string(&grant_file).unwrap() + PRIVATE_GRANT;
    let partner = if private {
        PRIVATE_PARTNER.to_string()
    } else {
        PRIVATE_PARTNER.replace("    private: true\n", "")
    };
    // The grant first: until the partner is there the set is invalid anyway, so no
    // intermediate set can be loaded.
    for (target, content) in [
        (grant_file.clone(), grants.clone()),
        (dir.join("partners/incasso-bv.yaml"), partner),
    ] {
        let tmp = staging.join("policy.tmp");
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, &target).unwrap();
    }
    let at = grants.find("operation: incasso-bv/opschorting").unwrap() + "operation: ".len();
    let line = grants[..at].matches('\n').count() + 1;
    let column = at - grants[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    (grant_file.display().to_string(), line, column)
}

#[tokio::test]
async fn a_time_out_grant_against_a_private_partner_is_refused_by_check_and_reload() {
    let run = start_demo().await;
    let staging = tempfile::tempdir().unwrap();

    // `policy check` on a copy: the same set with a public partner checks clean; marked
    // private, the grant is refused where its operation is named.
    let schemas = run.root.path().join("schemas");
    for private in [false, true] {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(&run.root.path().join("policies"), copy.path());
        let (file, line, column) = add_private_time_out(copy.path(), staging.path(), private);
        let args: Vec<&std::ffi::OsStr> = vec![
            "policy".as_ref(),
            "check".as_ref(),
            copy.path().as_os_str(),
            "--schemas".as_ref(),
            schemas.as_os_str(),
        ];
        let (code, out) = run_doelpoort(args);
        if !private {
            assert_eq!(code, 0, "a public partner may be suspended:\n{out}");
            continue;
        }
        assert_ne!(code, 0, "{out}");
        let at = format!("{file}:{line}:{column}: error:");
        let diagnostic = out
            .lines()
            .find(|l| l.contains(&at))
            .unwrap_or_else(|| panic!("no error at {at}:\n{out}"));
        assert!(
            diagnostic.contains("incasso-bv") && diagnostic.contains("private"),
            "{diagnostic}"
        );
        assert_eq!(
            out.matches(": error:").count(),
            1,
            "only this error:\n{out}"
        );
    }

    // The running gateway: the set is rejected on reload and the running one keeps serving.
    let gateway = &run.demo.gateway;
    let before = gateway.policies.current().unwrap().version.clone();
    let failed_before = policy_reloads(gateway, "failed");
    let ok_before = policy_reloads(gateway, "ok");
    let (file, line, _) =
        add_private_time_out(&run.root.path().join("policies"), staging.path(), true);
    eventually(
        "the reload to be refused for the private partner",
        Duration::from_secs(15),
        || {
            policy_reloads(gateway, "failed") > failed_before
                && gateway
                    .policies
                    .last_errors()
                    .iter()
                    .any(|e| e.contains("private"))
        },
    )
    .await;
    let errors = gateway.policies.last_errors();
    assert!(
        errors
            .iter()
            .any(|e| e.contains(&format!("{file}:{line}:")) && e.contains("private")),
        "{errors:?}"
    );
    assert_eq!(gateway.policies.current().unwrap().version, before);
    // Still serving under the old set: a CJIB time-out on the demo case.
    let client = run.client(SCHULDHULP);
    let ctx = time_out_ctx("shv-2026-0042", KNOWN, &["uwv", "cjib"]);
    let x = cjib_time_out(KNOWN, &[X], months(2));
    let served = time_out(&run, &client, &base(gateway), &ctx, "cjib", &x, TEAMLEIDER).await;
    expect(
        &served,
        StatusCode::CREATED,
        None,
        "the old set still serves",
    );
    // And the private partner is no route.
    let private_ctx = time_out_ctx("shv-2026-0042", KNOWN, &["uwv", "cjib", "incasso-bv"]);
    let body = uwv_time_out(KNOWN, months(2));
    let refused = time_out(
        &run,
        &client,
        &base(gateway),
        &private_ctx,
        "incasso-bv",
        &body,
        TEAMLEIDER,
    )
    .await;
    assert!(
        refused.status.is_client_error(),
        "nothing may reach a private partner: {} {}",
        refused.status,
        text(&refused)
    );
    assert_eq!(
        policy_reloads(gateway, "ok"),
        ok_before,
        "no set was loaded since"
    );
}

// ---------------------------------------------------------------------------------------
// 4. A failed partner answer drops the reservation
// ---------------------------------------------------------------------------------------

async fn a_time_out_the_partner_refuses_leaves_nothing_in_the_ledger(backend: Backend) {
    let env = Env::start(backend).await;
    let run = &env.run;
    let client = env.client(SCHULDHULP);
    let base = env.base();
    let case = "shv-fail-1";
    new_case(
        &client,
        &base,
        case,
        &case_body(&["time-out"], &[KNOWN, UWV_ONLY], &["cjib"]),
    )
    .await;

    // CJIB does not know 999990020: its 404 is the partner's refusal.
    let unknown = time_out_ctx(case, UWV_ONLY, &["cjib"]);
    let body = cjib_time_out(UWV_ONLY, &[X], months(3));
    let failed = time_out(run, &client, &base, &unknown, "cjib", &body, TEAMLEIDER).await;
    expect(
        &failed,
        StatusCode::NOT_FOUND,
        Some("partner-rejected"),
        "unknown at CJIB",
    );
    assert_eq!(
        ledger(&client, &base, case).await,
        vec![],
        "the reservation was dropped"
    );

    // The same time-out for the person CJIB knows is not blocked by it.
    let known = time_out_ctx(case, KNOWN, &["cjib"]);
    let body = cjib_time_out(KNOWN, &[X], months(3));
    let granted = time_out(run, &client, &base, &known, "cjib", &body, TEAMLEIDER).await;
    expect(
        &granted,
        StatusCode::CREATED,
        None,
        "the same claim for a known person",
    );
    let rows = ledger(&client, &base, case).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].4, "granted");
}

// ---------------------------------------------------------------------------------------
// 5. Escalation preconditions
// ---------------------------------------------------------------------------------------

async fn escalation_follows_a_time_out_in_an_agreed_case(backend: Backend) {
    let env = Env::start(backend).await;
    let run = &env.run;
    let client = env.client(SCHULDHULP);
    let base = env.base();
    let case = "shv-esc-1";
    new_case(
        &client,
        &base,
        case,
        &case_body(
            &["time-out", "escalatie"],
            &[KNOWN],
            &["cjib", "escalatieteam"],
        ),
    )
    .await;

    // Agreed, but the ledger holds no time-out.
    let none = escalate(&client, &base, case, &escalation(KNOWN)).await;
    expect(
        &none,
        StatusCode::FORBIDDEN,
        Some("condition-failed"),
        "no time-out yet",
    );
    detail_says(&none, "ledger holds none");

    // The body must carry the local analysis, with its texts long enough.
    let without = json!({"bsn": KNOWN});
    let invalid = escalate(&client, &base, case, &without).await;
    expect(
        &invalid,
        StatusCode::BAD_REQUEST,
        Some("request-invalid"),
        "no lokale_analyse",
    );
    let mut short = escalation(KNOWN);
    short["lokale_analyse"]["advies"] = json!("te kort");
    let invalid = escalate(&client, &base, case, &short).await;
    expect(
        &invalid,
        StatusCode::BAD_REQUEST,
        Some("request-invalid"),
        "advies < 20 characters",
    );

    // After a CJIB time-out on the case.
    let ctx = time_out_ctx(case, KNOWN, &["cjib"]);
    let x = cjib_time_out(KNOWN, &[X], months(3));
    let granted = time_out(run, &client, &base, &ctx, "cjib", &x, TEAMLEIDER).await;
    expect(&granted, StatusCode::CREATED, None, "the local time-out");
    let escalated = escalate(&client, &base, case, &escalation(KNOWN)).await;
    expect(
        &escalated,
        StatusCode::CREATED,
        None,
        "escalation after the time-out",
    );
    let answer = escalated.json();
    assert!(answer["escalatie_id"].is_string(), "{answer}");
    assert_eq!(answer["status"], "ontvangen");
    // Still 400 for a body without the analysis: the time-out does not excuse it.
    let invalid = escalate(&client, &base, case, &without).await;
    expect(
        &invalid,
        StatusCode::BAD_REQUEST,
        Some("request-invalid"),
        "no lokale_analyse, after a time-out",
    );

    // The demo case does not agree escalatieteam: outside its scope, time-out or not. (The
    // person's claim X is suspended already, through shv-esc-1: a time-out is one person's,
    // so the demo case's is for Y.)
    let demo = "shv-2026-0042";
    let ctx = time_out_ctx(demo, KNOWN, &["uwv", "cjib"]);
    let y = cjib_time_out(KNOWN, &[Y], months(3));
    let granted = time_out(run, &client, &base, &ctx, "cjib", &y, TEAMLEIDER).await;
    expect(
        &granted,
        StatusCode::CREATED,
        None,
        "a time-out on the demo case",
    );
    let outside = escalate(&client, &base, demo, &escalation(KNOWN)).await;
    expect(
        &outside,
        StatusCode::FORBIDDEN,
        Some("outside-case-scope"),
        "escalatieteam not agreed",
    );
}

/// Escalation comes "after a local attempt, with a local time-out already in force"
/// (DOMAIN.md, Verkenning 2019 footnote 9; the grant's own rationale: "een lokale time-out die
/// al loopt"). A time-out that ended is not in force.
async fn escalation_needs_a_time_out_in_force_not_one_that_ended(backend: Backend) {
    let env = Env::start(backend).await;
    let run = &env.run;
    let client = env.client(SCHULDHULP);
    let base = env.base();
    let case = "shv-esc-ended";
    new_case(
        &client,
        &base,
        case,
        &case_body(
            &["time-out", "escalatie"],
            &[KNOWN],
            &["cjib", "escalatieteam"],
        ),
    )
    .await;
    let settings = env.store_settings();
    let ended = (months(-5), months(-1));
    earlier_time_out(run, &settings, &client, &base, case, "cjib", &[X.0], ended).await;
    let answer = escalate(&client, &base, case, &escalation(KNOWN)).await;
    assert_eq!(
        (answer.status, answer.problem_code_or_none()),
        (StatusCode::FORBIDDEN, Some("condition-failed".to_string())),
        "the case's only time-out ran {} .. {} and is no longer in force, yet: {}",
        ended.0,
        ended.1,
        text(&answer)
    );
}

// ---------------------------------------------------------------------------------------
// 6. Replicas on one PostgreSQL
// ---------------------------------------------------------------------------------------

/// The store's key of Schuldhulp Utrecht's case `case` (each consumer has its own ids).
fn case_key(case: &str) -> String {
    doelpoort::store::cases::case_key(SCHULDHULP, case)
}

/// The case's time-outs as the store holds them: `partner|claims|state` per line.
fn store_ledger(postgres: &Postgres, case: &str) -> String {
    postgres
        .psql(&format!(
            "SELECT partner, claims, state FROM case_time_outs WHERE case_key = '{}' \
             ORDER BY starts_on, claims",
            case_key(case)
        ))
        .trim()
        .to_string()
}

/// Polls `base` (50 ms steps, at most `limit`) until the case is readable there.
async fn wait_until_visible(
    client: &TestClient,
    base: &str,
    case: &str,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let response = get_case(client, base, case).await;
        if response.status == StatusCode::OK {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{case} not visible after {:?}: {}",
            start.elapsed(),
            text(&response)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_case_closed_on_one_replica_is_refused_on_the_other_within_a_second() {
    let postgres = Postgres::start();
    let run = start_demo().await;
    let a = demo_replica(
        &run,
        "replica-a",
        StoreLocation::Postgres(postgres.url()),
        |_| {},
    )
    .await;
    let b = demo_replica(
        &run,
        "replica-b",
        StoreLocation::Postgres(postgres.url()),
        |_| {},
    )
    .await;
    let (base_a, base_b) = (base(&a), base(&b));
    let client = run.client("wijkteam-rotterdam");
    let case = "casus-repl-1";
    let ctx = Ctx {
        consumer: "wijkteam-rotterdam",
        case,
        subject: KNOWN,
        purpose: "wams-onderzoek",
        partners: &[],
    };
    let income = "/uwv/v1/personen/999990019/inkomen";

    // Registered through A; B serves an exchange for it (once its copy has caught up).
    new_case(
        &client,
        &base_a,
        case,
        &case_body(&["wams-onderzoek"], &[KNOWN], &["uwv"]),
    )
    .await;
    let registered = Instant::now();
    let mut seen = None;
    for _ in 0..40 {
        let response = exchange(&client, &base_b, Method::GET, income, &ctx, None, None).await;
        if response.status == StatusCode::OK {
            seen = Some(registered.elapsed());
            break;
        }
        assert_eq!(
            response.problem_code(),
            "case-unknown",
            "{}",
            text(&response)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = seen.expect("B never served the case registered through A (2 s)");
    assert!(
        seen <= Duration::from_secs(1),
        "B served the new case only after {seen:?}"
    );
    // A second exchange through B (the purpose is served now; no first-of-purpose write).
    let again = exchange(&client, &base_b, Method::GET, income, &ctx, None, None).await;
    expect(&again, StatusCode::OK, None, "B, again");

    // Closed through A; B refuses within a second.
    let closed = close_case(&client, &base_a, case).await;
    expect(&closed, StatusCode::OK, None, "closing through A");
    let at_close = Instant::now();
    let mut refused = None;
    let mut last = String::new();
    for _ in 0..40 {
        let response = exchange(&client, &base_b, Method::GET, income, &ctx, None, None).await;
        if response.status == StatusCode::FORBIDDEN {
            assert_eq!(
                response.problem_code(),
                "case-closed",
                "{}",
                text(&response)
            );
            refused = Some(at_close.elapsed());
            break;
        }
        assert_eq!(response.status, StatusCode::OK, "{}", text(&response));
        last = format!("{} after {:?}", response.status, at_close.elapsed());
        if at_close.elapsed() > Duration::from_millis(1500) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delay = refused.unwrap_or_else(|| panic!("B still served the closed case ({last})"));
    assert!(
        delay <= Duration::from_secs(1),
        "B refused the closed case only after {delay:?} (new case seen after {seen:?})"
    );
    eprintln!("replica B: new case served after {seen:?}; closure refused after {delay:?}");
    // A refuses at once, and both keep refusing.
    for base in [&base_a, &base_b] {
        let response = exchange(&client, base, Method::GET, income, &ctx, None, None).await;
        expect(
            &response,
            StatusCode::FORBIDDEN,
            Some("case-closed"),
            "after the close",
        );
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_time_outs_for_one_claim_on_two_replicas_grant_exactly_one() {
    let run = start_demo().await;
    let (client_a, client_b) = (run.client(SCHULDHULP), run.client(SCHULDHULP));
    let body = cjib_time_out(KNOWN, &[X], months(3));

    // A time-out is one person's, not one case's: each round is the first time-out of the
    // demo's person, so each runs on a store (and two replicas) of its own.
    for round in 0..5 {
        let postgres = Postgres::start();
        let a = demo_replica(
            &run,
            &format!("replica-a-{round}"),
            StoreLocation::Postgres(postgres.url()),
            |_| {},
        )
        .await;
        let b = demo_replica(
            &run,
            &format!("replica-b-{round}"),
            StoreLocation::Postgres(postgres.url()),
            |_| {},
        )
        .await;
        let (base_a, base_b) = (base(&a), base(&b));
        let case = format!("shv-race-{round}");
        new_case(
            &client_a,
            &base_a,
            &case,
            &case_body(&["time-out"], &[KNOWN], &["cjib"]),
        )
        .await;
        wait_until_visible(&client_b, &base_b, &case, Duration::from_secs(2)).await;
        let ctx = time_out_ctx(&case, KNOWN, &["cjib"]);
        // Two colleagues' approvals, one per replica.
        let token_a = mint(&run, &ctx, "cjib/opschorting", &body, TEAMLEIDER);
        let token_b = mint(&run, &ctx, "cjib/opschorting", &body, TEAMLEIDER);
        let (on_a, on_b) = tokio::join!(
            post_time_out(&client_a, &base_a, &ctx, "cjib", &token_a, &body),
            post_time_out(&client_b, &base_b, &ctx, "cjib", &token_b, &body),
        );
        let created = [&on_a, &on_b]
            .iter()
            .filter(|r| r.status == StatusCode::CREATED)
            .count();
        assert_eq!(
            created,
            1,
            "round {round}: A {} {}, B {} {}",
            on_a.status,
            text(&on_a),
            on_b.status,
            text(&on_b)
        );
        for response in [&on_a, &on_b] {
            if response.status != StatusCode::CREATED {
                expect(
                    response,
                    StatusCode::FORBIDDEN,
                    Some("condition-failed"),
                    &format!("round {round}, the loser"),
                );
                detail_says(response, "already in force");
            }
        }
        // The store's ledger (the replicas' copies follow it within a fraction of a second):
        // one time-out, granted (settled before the answer was sent).
        assert_eq!(
            store_ledger(&postgres, &case),
            "cjib|[\"CJIB-2026-000123\"]|granted",
            "round {round}"
        );
        a.shutdown().await;
        b.shutdown().await;
    }
}

/// A time-out is decided in the register's serialised transaction, which reads the case as
/// it is in the store: a case closed through another replica must be refused there, even
/// while this replica's copy in memory still shows it open (a time-out is an instruction to
/// a partner, not a read).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_time_out_through_a_replica_that_has_not_seen_the_close_is_refused() {
    let run = start_demo().await;
    let (client_a, client_b) = (run.client(SCHULDHULP), run.client(SCHULDHULP));
    // A time-out is one person's, not one case's: each round starts with the demo's person
    // without time-outs, so each runs on a store (and two replicas) of its own.
    for round in 0..3 {
        let postgres = Postgres::start();
        let a = demo_replica(
            &run,
            &format!("replica-a-{round}"),
            StoreLocation::Postgres(postgres.url()),
            |_| {},
        )
        .await;
        let b = demo_replica(
            &run,
            &format!("replica-b-{round}"),
            StoreLocation::Postgres(postgres.url()),
            |_| {},
        )
        .await;
        let (base_a, base_b) = (base(&a), base(&b));
        let case = format!("shv-stale-{round}");
        new_case(
            &client_a,
            &base_a,
            &case,
            &case_body(&["time-out"], &[KNOWN], &["cjib"]),
        )
        .await;
        wait_until_visible(&client_b, &base_b, &case, Duration::from_secs(2)).await;
        let ctx = time_out_ctx(&case, KNOWN, &["cjib"]);
        // The case is served under time-out through B already (X), so the next one is no
        // first exchange of its purpose.
        let x = cjib_time_out(KNOWN, &[X], months(3));
        let first = time_out(&run, &client_b, &base_b, &ctx, "cjib", &x, TEAMLEIDER).await;
        expect(&first, StatusCode::CREATED, None, "X through B");
        let y = cjib_time_out(KNOWN, &[Y], months(3));
        let token = mint(&run, &ctx, "cjib/opschorting", &y, TEAMLEIDER);
        let closed = close_case(&client_a, &base_a, &case).await;
        expect(&closed, StatusCode::OK, None, "closing through A");
        let at_close = Instant::now();
        let answer = post_time_out(&client_b, &base_b, &ctx, "cjib", &token, &y).await;
        let after = at_close.elapsed();
        assert_eq!(
            (answer.status, answer.problem_code_or_none()),
            (StatusCode::FORBIDDEN, Some("case-closed".to_string())),
            "round {round}: a time-out for a case closed {after:?} earlier (through A) was sent \
             to CJIB through B; case status in the store: {}; ledger in the store: {:?}; \
             answer: {}",
            postgres
                .psql(&format!(
                    "SELECT status FROM cases WHERE case_key = '{}'",
                    case_key(&case)
                ))
                .trim(),
            store_ledger(&postgres, &case),
            text(&answer)
        );
        a.shutdown().await;
        b.shutdown().await;
    }
}
