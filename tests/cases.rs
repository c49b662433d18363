//! The case register (SPEC §8) through the whole gateway: real mTLS on loopback, the real demo
//! (mock partners, shipped policies, example PKI made per test), and the real `doelpoort`
//! binary for the operator's commands. Nothing of the gateway is mocked.
//!
//! Every scenario runs on both stores (SPEC §9), as `sqlite::<scenario>` and
//! `postgres::<scenario>`:
//! - **sqlite**: the demo gateway itself, with the embedded SQLite store in its data directory
//!   and the demo's cases registered at start;
//! - **postgres**: a replica of the demo's configuration on a real PostgreSQL (harness
//!   [`Postgres::start`]), its audit log in files of its own; the demo's cases are registered
//!   there through the API first (the demo registers them only on its own gateway).
//!
//! What is covered, each refusal checked by status *and* problem `type` code:
//! 1. every code of §8 through the data listener: `case-unknown` (never registered, and another
//!    consumer's case, indistinguishable: each consumer has its own case ids, so another's PUT
//!    of an id creates a case of its own), `case-closed`, `not-in-household`,
//!    `outside-case-scope` (partner not agreed, objected to, purpose not on the case) and
//!    `purpose-incompatible` (both ways round, after a policy reload adds an incompatible
//!    purpose); a case the caller registered binds its exchanges under any grant;
//! 2. the API: 201/200 on create/replace, the household shown as a count, strict bodies
//!    (`request-invalid` without quoting the caller's text or a BSN), case ids holding a BSN
//!    (`context-invalid`), and consumers that are not case admins (403);
//! 3. motivated overrides: two approvers other than the actor, each approval used once, bound
//!    to its case, its partner and its reason;
//! 4. the audit chain: one record per register call, verifiable, no BSN in the raw segments;
//!    who acts (`Doelbinding-Actor` once, or a verified caller token that agrees with the
//!    call), and withdrawn objections named;
//! 5. purge after the retention with a controllable clock (`case purge --as-of`), a purged id
//!    never given out again, and the operator's `case list`, `case show` (the cases of an id,
//!    `--owner`) and `case close` (`--owner` where several consumers have the id);
//! 6. the GDPR art. 15 report naming the person's cases with their agreed scope.

mod harness;

use bytes::Bytes;
use doelpoort::config::Config;
use doelpoort::server::RunningGateway;
use doelpoort::store::StoreLocation;
use harness::*;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// The two stores
// ---------------------------------------------------------------------------------------------

use harness::stores::{demo_replica, on_both_stores, Backend, StoreEnv};

on_both_stores!(
    unknown_and_foreign_cases_are_indistinguishable,
    a_closed_case_refuses_exchanges_and_changes,
    a_person_outside_the_household_is_not_in_household,
    partners_and_purposes_outside_the_case_are_outside_case_scope,
    a_registered_case_binds_exchanges_under_any_grant,
    purposes_never_to_be_combined_are_refused_either_way,
    the_api_creates_replaces_and_shows_a_household_as_a_count,
    invalid_case_bodies_and_ids_are_refused_without_echoing_a_bsn,
    a_household_member_of_the_wrong_json_type_is_not_echoed,
    refused_bodies_never_quote_the_callers_text,
    the_store_keeps_households_only_as_keyed_hmacs,
    only_case_admins_keep_cases,
    an_override_needs_two_fresh_approvals_by_colleagues,
    an_override_approves_one_partner_for_one_reason,
    every_register_call_is_one_audit_record_without_bsns,
    register_calls_check_the_actor_and_the_caller_token,
    withdrawing_an_objection_needs_an_actor_and_is_recorded,
    a_closed_case_is_purged_only_after_its_retention,
    operators_list_show_and_close_cases,
    operators_name_the_owner_when_consumers_share_a_case_id,
    the_second_outside_pass_stays_mended,
    the_art15_report_names_the_persons_cases,
);

/// One scenario's gateway and store (see [`StoreEnv`]), with this file's own helpers.
type Env = StoreEnv;

impl StoreEnv {
    fn url(&self, path: &str) -> String {
        url(self.gateway(), path)
    }

    fn root(&self) -> PathBuf {
        self.run.root.path().to_path_buf()
    }

    /// The store the scenario's gateway uses.
    fn store(&self) -> StoreLocation {
        match &self.postgres {
            Some(pg) => StoreLocation::Postgres(pg.url()),
            None => StoreLocation::Sqlite(self.root().join("data").join("store.sqlite")),
        }
    }

    /// The store as `--store` takes it.
    fn store_arg(&self) -> String {
        match self.store() {
            // The URL as given (`describe` leaves the user out).
            StoreLocation::Postgres(url) => url,
            StoreLocation::Sqlite(path) => format!("sqlite:{}", path.display()),
        }
    }

    /// The audit directory of the scenario's gateway.
    fn audit_dir(&self) -> PathBuf {
        match &self.replica {
            Some(_) => self.root().join("pg").join("audit"),
            None => self.root().join("data").join("audit"),
        }
    }

    fn household_key(&self) -> PathBuf {
        self.root().join("data").join("household.key")
    }

    /// Another gateway on the same store, with its own instance id and audit log, and the
    /// configuration changed by `edit`.
    async fn variant(&self, name: &str, edit: impl FnOnce(&mut Config)) -> RunningGateway {
        demo_replica(&self.run, name, self.store(), edit).await
    }
}

// ---------------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------------

const ACTOR: &str = "medewerker-0042";
const WIJKTEAM: &str = "wijkteam-rotterdam";
const SCHULDHULP: &str = "schuldhulp-utrecht";
/// The demo's test people (SPEC §7); both pass the elfproef.
const BSN: &str = "999990019";
const OTHER_BSN: &str = "999990020";
/// More valid (elfproef) BSNs for households of the tests' own cases.
const HOUSEHOLD_BSNS: [&str; 3] = ["999990032", "999990044", "999990056"];

fn income(bsn: &str) -> String {
    format!("/uwv/v1/personen/{bsn}/inkomen")
}

fn child_benefit(bsn: &str) -> String {
    format!("/svb/v1/personen/{bsn}/kinderbijslag")
}

fn youth_care(bsn: &str) -> String {
    format!("/jeugdhulp/v1/jeugdigen/{bsn}/trajecten")
}

fn case_path(case_id: &str) -> String {
    format!("/doelpoort/v1/cases/{case_id}")
}

/// An exchange through the gateway with the full context declared.
async fn exchange(
    env: &Env,
    consumer: &str,
    path: &str,
    purpose: &str,
    case_id: &str,
    subject: &str,
) -> TestResponse {
    let request = Request::get(env.url(path))
        .header("doelbinding-purpose", purpose)
        .header("doelbinding-case-id", case_id)
        .header("doelbinding-data-subject", format!("bsn={subject}"))
        .header("doelbinding-actor", ACTOR)
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(&env.client(consumer), request).await
}

/// A call to the register's API as `consumer`'s case system, acting for [`ACTOR`].
async fn register_call(
    env: &Env,
    consumer: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> TestResponse {
    register_call_at(env.gateway(), env, consumer, method, path, body).await
}

async fn register_call_at(
    gateway: &RunningGateway,
    env: &Env,
    consumer: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> TestResponse {
    let body = body.map(|b| Bytes::from(b.to_string()));
    register_request_at(
        gateway,
        env,
        consumer,
        method,
        path,
        body,
        &[("doelbinding-actor", ACTOR)],
    )
    .await
}

/// A call to the register's API as `consumer`'s case system with exactly `headers` (no
/// `Doelbinding-Actor` unless given there) and the raw `body` (JSON).
async fn register_request(
    env: &Env,
    consumer: &str,
    method: Method,
    path: &str,
    body: Option<Bytes>,
    headers: &[(&str, &str)],
) -> TestResponse {
    register_request_at(env.gateway(), env, consumer, method, path, body, headers).await
}

async fn register_request_at(
    gateway: &RunningGateway,
    env: &Env,
    consumer: &str,
    method: Method,
    path: &str,
    body: Option<Bytes>,
    headers: &[(&str, &str)],
) -> TestResponse {
    let mut request = Request::builder().method(method).uri(url(gateway, path));
    // `header` appends: a name given twice is sent twice.
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    send(
        &env.client(consumer),
        request.body(Full::new(body.unwrap_or_default())).unwrap(),
    )
    .await
}

async fn put_case(env: &Env, consumer: &str, case_id: &str, body: &Value) -> TestResponse {
    register_call(env, consumer, Method::PUT, &case_path(case_id), Some(body)).await
}

async fn get_case(env: &Env, consumer: &str, case_id: &str) -> TestResponse {
    register_call(env, consumer, Method::GET, &case_path(case_id), None).await
}

async fn close_case(env: &Env, consumer: &str, case_id: &str) -> TestResponse {
    let path = format!("{}/close", case_path(case_id));
    register_call(env, consumer, Method::POST, &path, None).await
}

/// The reason the tests' overrides give (Wams MvT §3.3.2: serious problems).
const REASON: &str = "ernstige zorgen over de veiligheid van de kinderen";

/// An override for `partner` with [`REASON`], as the district team's [`ACTOR`].
async fn post_override(env: &Env, case_id: &str, partner: &str, token: &str) -> TestResponse {
    post_override_as(env, WIJKTEAM, case_id, partner, REASON, token).await
}

/// An override as `consumer`'s case system, acting for [`ACTOR`].
async fn post_override_as(
    env: &Env,
    consumer: &str,
    case_id: &str,
    partner: &str,
    reason: &str,
    token: &str,
) -> TestResponse {
    let body = json!({
        "partner": partner,
        "reason": reason,
        "approvals": token,
    });
    let path = format!("{}/overrides", case_path(case_id));
    register_call(env, consumer, Method::POST, &path, Some(&body)).await
}

/// A case body for the register.
fn case_body(purposes: &[&str], household: &[&str], agreed: &[&str], objections: &[&str]) -> Value {
    json!({
        "purposes": purposes,
        "household": household,
        "agreed_partners": agreed,
        "objections": objections,
        "status": "open",
    })
}

/// Registers a new case as `consumer` and checks it was created.
async fn create_case(env: &Env, consumer: &str, case_id: &str, body: &Value) -> Value {
    let response = put_case(env, consumer, case_id, body).await;
    assert_status(&response, StatusCode::CREATED);
    response.json()
}

/// What an override's approvals approve: its partner and reason, as sent (the token carries
/// the canonical SHA-256 of this in `approves.request_sha256`).
fn approved_override(partner: &str, reason: &str) -> Value {
    json!({"partner": partner, "reason": reason})
}

/// An override token of the demo identity provider for `wijkteam-rotterdam`'s employee
/// [`ACTOR`], approving `partner` for [`REASON`]: `approved_by` is comma-separated (two
/// approvers: two names).
fn override_token(
    env: &Env,
    case_id: &str,
    partner: &str,
    approved_by: &str,
    operation: &str,
) -> String {
    override_token_as(
        env,
        WIJKTEAM,
        case_id,
        approved_by,
        operation,
        Some(approved_override(partner, REASON)),
    )
}

/// An override token for `consumer`'s employee [`ACTOR`]; `approves` is the body whose
/// digest the approvals carry (`None`: no `request_sha256`).
fn override_token_as(
    env: &Env,
    consumer: &str,
    case_id: &str,
    approved_by: &str,
    operation: &str,
    approves: Option<Value>,
) -> String {
    caller_token(
        env,
        doelpoort::demo::tokens::TokenRequest {
            consumer: consumer.into(),
            actor: ACTOR.into(),
            case_id: Some(case_id.into()),
            approved_by: Some(approved_by.into()),
            approves_operation: Some(operation.into()),
            approves_body: approves,
            valid_for: Duration::from_secs(120),
            ..Default::default()
        },
    )
}

/// A signed caller token of the demo identity provider, bound to the consumer's example
/// certificate.
fn caller_token(env: &Env, request: doelpoort::demo::tokens::TokenRequest) -> String {
    doelpoort::demo::tokens::demo_token(&env.root().join("certs-example"), &request).unwrap()
}

/// A plain caller token (no approvals) for `consumer`'s employee `actor`, naming `case_id`.
fn actor_token(env: &Env, consumer: &str, actor: &str, case_id: Option<&str>) -> String {
    caller_token(
        env,
        doelpoort::demo::tokens::TokenRequest {
            consumer: consumer.into(),
            actor: actor.into(),
            case_id: case_id.map(Into::into),
            valid_for: Duration::from_secs(120),
            ..Default::default()
        },
    )
}

const TWO_APPROVERS: &str = "teamleider-0007,gedragswetenschapper-0003";
const OVERRIDE_OPERATION: &str = "doelpoort/case-override";

/// Repeats `call` until `done` holds for its answer or `limit` has passed; returns the last
/// answer (the caller asserts on it).
async fn answer_within<F, Fut>(
    limit: Duration,
    mut call: F,
    done: impl Fn(&TestResponse) -> bool,
) -> TestResponse
where
    F: FnMut() -> Fut,
    Fut: Future<Output = TestResponse>,
{
    let deadline = Instant::now() + limit;
    loop {
        let response = call().await;
        if done(&response) || Instant::now() >= deadline {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

fn text(response: &TestResponse) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

fn assert_status(response: &TestResponse, status: StatusCode) {
    assert_eq!(response.status, status, "{}", text(response));
}

/// A refusal: its status and problem `type` code (the `type` ends in the code too).
fn assert_problem(response: &TestResponse, status: StatusCode, code: &str) {
    assert_eq!(
        response.status,
        status,
        "expected {code}: {}",
        text(response)
    );
    assert_eq!(response.problem_code(), code, "{}", text(response));
    let problem = response.json();
    let kind = problem["type"].as_str().unwrap_or_default();
    assert!(
        kind.ends_with(&format!("/{code}")),
        "type {kind} for {code}"
    );
    assert_eq!(problem["status"], status.as_u16(), "{problem}");
}

/// No run of exactly nine digits (a BSN) anywhere in `text`.
fn assert_no_bsn(text: &str) {
    let mut run = 0;
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() {
            run += 1;
        } else {
            assert_ne!(run, 9, "a nine-digit number (a BSN?) in:\n{text}");
            run = 0;
        }
    }
}

/// The first JSON value in a command's output (stdout comes first, then stderr).
fn first_json(out: &str) -> Value {
    let start = out
        .find(['{', '['])
        .unwrap_or_else(|| panic!("no JSON in: {out}"));
    serde_json::Deserializer::from_str(&out[start..])
        .into_iter::<Value>()
        .next()
        .unwrap_or_else(|| panic!("no JSON in: {out}"))
        .unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The one case `doelpoort case show` printed (it prints the cases with that id, an array).
#[track_caller]
fn only_case(out: &str) -> Value {
    let shown = first_json(out);
    let cases = shown
        .as_array()
        .unwrap_or_else(|| panic!("case show prints an array of cases: {out}"));
    assert_eq!(cases.len(), 1, "{out}");
    cases[0].clone()
}

fn transaction_id(response: &TestResponse) -> String {
    response.headers["fsc-transaction-id"]
        .to_str()
        .unwrap()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// 1. The codes of SPEC §8 through the data listener
// ---------------------------------------------------------------------------------------------

async fn unknown_and_foreign_cases_are_indistinguishable(backend: Backend) {
    let env = Env::start(backend).await;
    // The demo's call, on the demo's case, is served: the register answers on this store.
    let served = exchange(
        &env,
        WIJKTEAM,
        &income(BSN),
        "wams-onderzoek",
        "casus-2026-0001",
        BSN,
    )
    .await;
    assert_status(&served, StatusCode::OK);

    let never = exchange(
        &env,
        WIJKTEAM,
        &income(BSN),
        "wams-onderzoek",
        "casus-2026-9999",
        BSN,
    )
    .await;
    assert_problem(&never, StatusCode::FORBIDDEN, "case-unknown");
    // Schuldhulp Utrecht's case, used by the district team: answered exactly as a case that
    // was never registered, so its existence is not revealed.
    let foreign = exchange(
        &env,
        WIJKTEAM,
        &income(BSN),
        "wams-onderzoek",
        "shv-2026-0042",
        BSN,
    )
    .await;
    assert_problem(&foreign, StatusCode::FORBIDDEN, "case-unknown");
    assert_eq!(foreign.json()["detail"], never.json()["detail"]);
    assert_eq!(foreign.json()["title"], never.json()["title"]);

    // The same through the register's API. Every organisation has its own case ids: Schuldhulp
    // Utrecht asking about the district team's casus-2026-0001 gets exactly the answer for an
    // id nobody registered, for every call (reading, closing, an override with valid
    // approvals), and changes nothing.
    let district = get_case(&env, WIJKTEAM, "casus-2026-0001").await;
    assert_status(&district, StatusCode::OK);
    let district = district.json();
    assert_eq!(district["owner"], WIJKTEAM);
    let never = get_case(&env, SCHULDHULP, "casus-2026-9999").await;
    let foreign = get_case(&env, SCHULDHULP, "casus-2026-0001").await;
    same_refusal("GET", &never, &foreign, "case-unknown");
    let never = close_case(&env, SCHULDHULP, "casus-2026-9999").await;
    let foreign = close_case(&env, SCHULDHULP, "casus-2026-0001").await;
    same_refusal("close", &never, &foreign, "case-unknown");
    let mut answers = Vec::new();
    for id in ["casus-2026-9999", "casus-2026-0001"] {
        let token = override_token_as(
            &env,
            SCHULDHULP,
            id,
            TWO_APPROVERS,
            OVERRIDE_OPERATION,
            Some(approved_override("jeugdhulp", REASON)),
        );
        answers.push(post_override_as(&env, SCHULDHULP, id, "jeugdhulp", REASON, &token).await);
    }
    same_refusal("override", &answers[0], &answers[1], "case-unknown");
    // And the district team asking about Schuldhulp Utrecht's shv-2026-0042.
    let never = get_case(&env, WIJKTEAM, "casus-2026-9999").await;
    let foreign = get_case(&env, WIJKTEAM, "shv-2026-0042").await;
    same_refusal("GET, the other way round", &never, &foreign, "case-unknown");

    // Schuldhulp Utrecht's PUT of the same id creates a case of its own: no oracle (it is
    // created, whether or not another organisation has that id), and no take-over.
    let own_body = case_body(&["schuldhulpverlening"], &[OTHER_BSN], &["cjib"], &[]);
    let created = put_case(&env, SCHULDHULP, "casus-2026-0001", &own_body).await;
    assert_status(&created, StatusCode::CREATED);
    let own = created.json();
    assert_eq!(own["case_id"], "casus-2026-0001", "{own}");
    assert_eq!(own["owner"], SCHULDHULP, "{own}");
    assert_eq!(own["purposes"], json!(["schuldhulpverlening"]), "{own}");
    assert_eq!(own["household"], 1, "{own}");
    assert_eq!(own["served_purposes"], json!([]), "{own}");
    let shown = get_case(&env, SCHULDHULP, "casus-2026-0001").await;
    assert_status(&shown, StatusCode::OK);
    assert_eq!(shown.json()["owner"], SCHULDHULP);
    assert_eq!(shown.json()["purposes"], json!(["schuldhulpverlening"]));

    // The district team's case is untouched: shown as before, and its exchanges decided
    // against its own household, partners and purposes.
    district_case_unchanged(&env, &district).await;
    // Nor does Schuldhulp Utrecht closing its own case of that id close the district team's.
    let closed = close_case(&env, SCHULDHULP, "casus-2026-0001").await;
    assert_status(&closed, StatusCode::OK);
    assert_eq!(closed.json()["owner"], SCHULDHULP);
    assert_eq!(closed.json()["status"], "closed");
    district_case_unchanged(&env, &district).await;

    // Schuldhulp Utrecht's own shv-2026-0042 is as the demo registered it.
    let own = get_case(&env, SCHULDHULP, "shv-2026-0042").await;
    assert_status(&own, StatusCode::OK);
    assert_eq!(own.json()["owner"], SCHULDHULP);
    assert_eq!(own.json()["status"], "open");
    assert_eq!(
        own.json()["purposes"],
        json!(["escalatie", "schuldhulpverlening", "time-out"])
    );
}

/// The district team's casus-2026-0001 is shown as `district`, and its exchanges are decided
/// against its own household, partners and purposes.
async fn district_case_unchanged(env: &Env, district: &Value) {
    let after = get_case(env, WIJKTEAM, "casus-2026-0001").await;
    assert_status(&after, StatusCode::OK);
    assert_eq!(&after.json(), district, "the district team's case changed");
    let served = exchange(
        env,
        WIJKTEAM,
        &income(BSN),
        "wams-onderzoek",
        "casus-2026-0001",
        BSN,
    )
    .await;
    assert_status(&served, StatusCode::OK);
    let outside = exchange(
        env,
        WIJKTEAM,
        &income(OTHER_BSN),
        "wams-onderzoek",
        "casus-2026-0001",
        OTHER_BSN,
    )
    .await;
    assert_problem(&outside, StatusCode::FORBIDDEN, "not-in-household");
}

/// Two refusals that must be indistinguishable: the same status, code and problem, all but
/// the transaction id.
#[track_caller]
fn same_refusal(what: &str, never: &TestResponse, foreign: &TestResponse, code: &str) {
    assert_problem(never, StatusCode::FORBIDDEN, code);
    assert_problem(foreign, StatusCode::FORBIDDEN, code);
    let strip = |r: &TestResponse| {
        let mut problem = r.json();
        problem.as_object_mut().unwrap().remove("transaction_id");
        problem
    };
    assert_eq!(
        strip(never),
        strip(foreign),
        "{what}: a case registered by another organisation is answered otherwise than one never registered"
    );
}

async fn a_closed_case_refuses_exchanges_and_changes(backend: Backend) {
    let env = Env::start(backend).await;
    // The demo's case closed at start.
    let demo_closed = exchange(
        &env,
        WIJKTEAM,
        &income(BSN),
        "wams-onderzoek",
        "casus-2026-0002",
        BSN,
    )
    .await;
    assert_problem(&demo_closed, StatusCode::FORBIDDEN, "case-closed");

    let id = "casus-test-close";
    let body = case_body(&["wams-onderzoek"], &[BSN], &["uwv", "svb"], &[]);
    create_case(&env, WIJKTEAM, id, &body).await;
    let open = exchange(&env, WIJKTEAM, &income(BSN), "wams-onderzoek", id, BSN).await;
    assert_status(&open, StatusCode::OK);

    let closed = close_case(&env, WIJKTEAM, id).await;
    assert_status(&closed, StatusCode::OK);
    assert_eq!(closed.json()["status"], "closed");
    assert!(closed.json()["closed_at"].is_string(), "{}", text(&closed));

    for path in [income(BSN), child_benefit(BSN)] {
        let refused = exchange(&env, WIJKTEAM, &path, "wams-onderzoek", id, BSN).await;
        assert_problem(&refused, StatusCode::FORBIDDEN, "case-closed");
    }
    // A closed case is neither replaced, reopened, overridden nor closed again.
    let replace = put_case(&env, WIJKTEAM, id, &body).await;
    assert_problem(&replace, StatusCode::FORBIDDEN, "case-closed");
    let token = override_token(&env, id, "jeugdhulp", TWO_APPROVERS, OVERRIDE_OPERATION);
    let overridden = post_override(&env, id, "jeugdhulp", &token).await;
    assert_problem(&overridden, StatusCode::FORBIDDEN, "case-closed");
    let again = close_case(&env, WIJKTEAM, id).await;
    assert_problem(&again, StatusCode::FORBIDDEN, "case-closed");

    let shown = get_case(&env, WIJKTEAM, id).await;
    assert_status(&shown, StatusCode::OK);
    assert_eq!(shown.json()["status"], "closed");
    assert_eq!(shown.json()["overrides"], json!([]));
    let exchange_after = exchange(&env, WIJKTEAM, &income(BSN), "wams-onderzoek", id, BSN).await;
    assert_problem(&exchange_after, StatusCode::FORBIDDEN, "case-closed");
}

async fn a_person_outside_the_household_is_not_in_household(backend: Backend) {
    let env = Env::start(backend).await;
    // 999990020 is known at UWV, but not a member of casus-2026-0001's household.
    let refused = exchange(
        &env,
        WIJKTEAM,
        &income(OTHER_BSN),
        "wams-onderzoek",
        "casus-2026-0001",
        OTHER_BSN,
    )
    .await;
    assert_problem(&refused, StatusCode::FORBIDDEN, "not-in-household");
    assert!(!text(&refused).contains(OTHER_BSN), "{}", text(&refused));

    // Leaving the data subject out does not skip the household check: the operation is about
    // one person, who must be declared.
    let request = Request::get(env.url(&income(OTHER_BSN)))
        .header("doelbinding-purpose", "wams-onderzoek")
        .header("doelbinding-case-id", "casus-2026-0001")
        .header("doelbinding-actor", ACTOR)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let undeclared = send(&env.client(WIJKTEAM), request).await;
    assert_problem(&undeclared, StatusCode::BAD_REQUEST, "context-invalid");

    // Replacing the household decides the next exchange: the member added is served, the
    // member removed is not.
    let id = "casus-test-household";
    create_case(
        &env,
        WIJKTEAM,
        id,
        &case_body(&["wams-onderzoek"], &[BSN], &["uwv"], &[]),
    )
    .await;
    let outside = exchange(
        &env,
        WIJKTEAM,
        &income(OTHER_BSN),
        "wams-onderzoek",
        id,
        OTHER_BSN,
    )
    .await;
    assert_problem(&outside, StatusCode::FORBIDDEN, "not-in-household");
    let replaced = put_case(
        &env,
        WIJKTEAM,
        id,
        &case_body(&["wams-onderzoek"], &[OTHER_BSN], &["uwv"], &[]),
    )
    .await;
    assert_status(&replaced, StatusCode::OK);
    let inside = exchange(
        &env,
        WIJKTEAM,
        &income(OTHER_BSN),
        "wams-onderzoek",
        id,
        OTHER_BSN,
    )
    .await;
    assert_status(&inside, StatusCode::OK);
    let removed = exchange(&env, WIJKTEAM, &income(BSN), "wams-onderzoek", id, BSN).await;
    assert_problem(&removed, StatusCode::FORBIDDEN, "not-in-household");
}

async fn partners_and_purposes_outside_the_case_are_outside_case_scope(backend: Backend) {
    let env = Env::start(backend).await;
    // casus-2026-0003: the client agreed to UWV only, and objected to youth care.
    let within = exchange(
        &env,
        WIJKTEAM,
        &income(BSN),
        "wams-onderzoek",
        "casus-2026-0003",
        BSN,
    )
    .await;
    assert_status(&within, StatusCode::OK);
    let not_agreed = exchange(
        &env,
        WIJKTEAM,
        &child_benefit(BSN),
        "wams-onderzoek",
        "casus-2026-0003",
        BSN,
    )
    .await;
    assert_problem(&not_agreed, StatusCode::FORBIDDEN, "outside-case-scope");
    let objected = exchange(
        &env,
        WIJKTEAM,
        &youth_care(BSN),
        "wams-coordinatie",
        "casus-2026-0003",
        BSN,
    )
    .await;
    assert_problem(&objected, StatusCode::FORBIDDEN, "outside-case-scope");
    // The same operation on the demo's case where youth care is agreed: served.
    let agreed = exchange(
        &env,
        WIJKTEAM,
        &youth_care(BSN),
        "wams-coordinatie",
        "casus-2026-0001",
        BSN,
    )
    .await;
    assert_status(&agreed, StatusCode::OK);

    // A purpose the case is not registered for, with the partner agreed.
    let id = "casus-test-scope";
    let body = case_body(
        &["wams-onderzoek"],
        &[BSN],
        &["uwv", "svb", "jeugdhulp"],
        &[],
    );
    create_case(&env, WIJKTEAM, id, &body).await;
    let other_purpose = exchange(
        &env,
        WIJKTEAM,
        &youth_care(BSN),
        "wams-coordinatie",
        id,
        BSN,
    )
    .await;
    assert_problem(&other_purpose, StatusCode::FORBIDDEN, "outside-case-scope");
    let registered_purpose = exchange(
        &env,
        WIJKTEAM,
        &child_benefit(BSN),
        "wams-onderzoek",
        id,
        BSN,
    )
    .await;
    assert_status(&registered_purpose, StatusCode::OK);

    // An objection registered later takes the partner out of scope at once.
    let objecting = case_body(&["wams-onderzoek"], &[BSN], &["uwv", "jeugdhulp"], &["svb"]);
    assert_status(
        &put_case(&env, WIJKTEAM, id, &objecting).await,
        StatusCode::OK,
    );
    let after_objection = exchange(
        &env,
        WIJKTEAM,
        &child_benefit(BSN),
        "wams-onderzoek",
        id,
        BSN,
    )
    .await;
    assert_problem(
        &after_objection,
        StatusCode::FORBIDDEN,
        "outside-case-scope",
    );
}

/// A case the caller registered binds every exchange that names it, also under a grant
/// without `registered_case` (Schuldhulp Utrecht's CJIB claims: `requires: [case_id]`): its
/// status, household and partners apply. An id the caller never registered is still served
/// under such a grant, also when another organisation registered (and closed) that id.
async fn a_registered_case_binds_exchanges_under_any_grant(backend: Backend) {
    let env = Env::start(backend).await;
    let claims = format!("/cjib/v1/personen/{BSN}/vorderingen");
    let purpose = "schuldhulpverlening";
    let claims_in =
        |case_id: &'static str| exchange(&env, SCHULDHULP, &claims, purpose, case_id, BSN);

    assert_status(&claims_in("shv-test-unregistered").await, StatusCode::OK);

    let id = "shv-test-binds";
    let agreed = case_body(&[purpose], &[BSN], &["uwv", "cjib"], &[]);
    create_case(&env, SCHULDHULP, id, &agreed).await;
    assert_status(&claims_in(id).await, StatusCode::OK);

    let elsewhere = "shv-test-binds-household";
    let other_household = case_body(&[purpose], &[OTHER_BSN], &["uwv", "cjib"], &[]);
    create_case(&env, SCHULDHULP, elsewhere, &other_household).await;
    assert_problem(
        &claims_in(elsewhere).await,
        StatusCode::FORBIDDEN,
        "not-in-household",
    );

    let objected = "shv-test-binds-objection";
    let objection = case_body(&[purpose], &[BSN], &["uwv"], &["cjib"]);
    create_case(&env, SCHULDHULP, objected, &objection).await;
    assert_problem(
        &claims_in(objected).await,
        StatusCode::FORBIDDEN,
        "outside-case-scope",
    );

    let closed = close_case(&env, SCHULDHULP, id).await;
    assert_status(&closed, StatusCode::OK);
    assert_problem(&claims_in(id).await, StatusCode::FORBIDDEN, "case-closed");

    // The district team's closed case of an id binds only the district team.
    let theirs = "shv-test-theirs";
    create_case(
        &env,
        WIJKTEAM,
        theirs,
        &case_body(&["wams-onderzoek"], &[OTHER_BSN], &["uwv"], &[]),
    )
    .await;
    assert_status(&close_case(&env, WIJKTEAM, theirs).await, StatusCode::OK);
    assert_status(&claims_in(theirs).await, StatusCode::OK);
    // And the unregistered id is still served.
    assert_status(&claims_in("shv-test-unregistered").await, StatusCode::OK);
}

/// The shipped policies have no pair of servable purposes that must never be combined: this
/// adds `invordering`, never to be combined with `wams-onderzoek`, and a grant for it at UWV.
const INVORDERING_POLICY: &str = r#"# Added by tests/cases.rs: a purpose incompatible with wams-onderzoek.
purposes:
  - id: invordering
    title: Invordering van een vordering (test)
    legal_basis:
      gdpr: 6(1)(e)
      law: Invorderingswet 1990 (test)
    processing_activity: https://register.voorbeeldstad.example/verwerkingen/invordering
    retention:
      after_closure: 1 year
      note: test
    incompatible_with: [wams-onderzoek]

grants:
  - id: wijkteam-uwv-inkomen-invordering
    consumers: [wijkteam-rotterdam]
    operation: uwv/inkomen
    purpose: invordering
    requires: [registered_case]
    fields:
      inkomsten[*].soort: keep
    valid_from: 2026-01-01
    valid_until: 2027-12-31
    rationale: test
"#;

/// UWV's side of the same change: UWV answers for `invordering` too (its inway decides on its
/// own release profile, SPEC §10).
const UWV_INVORDERING_POLICY: &str = r#"# Added by tests/cases.rs: UWV answers for invordering.
purposes:
  - id: invordering
    title: Invordering van een vordering (test)
    legal_basis:
      gdpr: 6(1)(e)
      law: Invorderingswet 1990 (test)
    processing_activity: https://register.uwv-voorbeeld.example/verwerkingen/invordering
grants:
  - id: uwv-gemeente-inkomen-invordering
    consumers: [gemeente-voorbeeldstad]
    operation: uwv/inkomen
    purpose: invordering
    fields:
      bsn: keep
      inkomsten[*].soort: keep
      inkomsten[*].bedrag_per_maand: keep
      uitkeringen[*].soort: keep
      uitkeringen[*].bedrag_per_maand: keep
      uitkeringen[*].ingangsdatum: keep
    rationale: test
"#;

/// Adds [`INVORDERING_POLICY`] to the demo's policy copy (written whole, then renamed into the
/// watched directory), and [`UWV_INVORDERING_POLICY`] to UWV's inway, and waits until both
/// run the new version.
async fn add_invordering_purpose(env: &Env) {
    let (_, inway) = env
        .run
        .demo
        .inways
        .iter()
        .find(|(partner, _)| partner == "uwv")
        .expect("UWV answers through an inway in the demo");
    let before = inway.policies.current().unwrap().version.clone();
    let tmp = env.root().join("uwv-invordering.yaml.tmp");
    std::fs::write(&tmp, UWV_INVORDERING_POLICY).unwrap();
    let provider = env.root().join("policies/providers/uwv/invordering.yaml");
    std::fs::rename(&tmp, provider).unwrap();
    eventually(
        "UWV's inway runs its policy with `invordering`",
        Duration::from_secs(10),
        || inway.policies.current().unwrap().version != before,
    )
    .await;
    let gateway = env.gateway();
    let before = gateway.policies.current().unwrap().version.clone();
    let tmp = env.root().join("invordering.yaml.tmp");
    std::fs::write(&tmp, INVORDERING_POLICY).unwrap();
    std::fs::rename(&tmp, env.root().join("policies").join("invordering.yaml")).unwrap();
    eventually(
        "the policy with `invordering` is live",
        Duration::from_secs(10),
        || gateway.policies.current().unwrap().version != before,
    )
    .await;
    let current = gateway.policies.current().unwrap();
    assert!(
        current.purposes.contains_key("invordering"),
        "reload errors: {:?}",
        gateway.policies.last_errors()
    );
}

async fn purposes_never_to_be_combined_are_refused_either_way(backend: Backend) {
    let env = Env::start(backend).await;
    add_invordering_purpose(&env).await;

    // One case may not list both.
    let both = case_body(&["wams-onderzoek", "invordering"], &[BSN], &["uwv"], &[]);
    let refused = put_case(&env, WIJKTEAM, "casus-test-both", &both).await;
    assert_problem(&refused, StatusCode::BAD_REQUEST, "request-invalid");

    // Served under wams-onderzoek, then re-registered for invordering only.
    let id = "casus-test-onderzoek-first";
    create_case(
        &env,
        WIJKTEAM,
        id,
        &case_body(&["wams-onderzoek"], &[BSN], &["uwv"], &[]),
    )
    .await;
    let first = exchange(&env, WIJKTEAM, &income(BSN), "wams-onderzoek", id, BSN).await;
    assert_status(&first, StatusCode::OK);
    let served = get_case(&env, WIJKTEAM, id).await.json();
    assert_eq!(
        served["served_purposes"],
        json!(["wams-onderzoek"]),
        "{served}"
    );
    let replaced = put_case(
        &env,
        WIJKTEAM,
        id,
        &case_body(&["invordering"], &[BSN], &["uwv"], &[]),
    )
    .await;
    assert_status(&replaced, StatusCode::OK);
    let later = exchange(&env, WIJKTEAM, &income(BSN), "invordering", id, BSN).await;
    assert_problem(&later, StatusCode::FORBIDDEN, "purpose-incompatible");

    // The other way round: served under invordering, then re-registered for wams-onderzoek
    // (the incompatibility is declared on invordering only).
    let id = "casus-test-invordering-first";
    create_case(
        &env,
        WIJKTEAM,
        id,
        &case_body(&["invordering"], &[BSN], &["uwv"], &[]),
    )
    .await;
    let first = exchange(&env, WIJKTEAM, &income(BSN), "invordering", id, BSN).await;
    assert_status(&first, StatusCode::OK);
    let replaced = put_case(
        &env,
        WIJKTEAM,
        id,
        &case_body(&["wams-onderzoek"], &[BSN], &["uwv"], &[]),
    )
    .await;
    assert_status(&replaced, StatusCode::OK);
    let later = exchange(&env, WIJKTEAM, &income(BSN), "wams-onderzoek", id, BSN).await;
    assert_problem(&later, StatusCode::FORBIDDEN, "purpose-incompatible");
    // A compatible purpose on the same case is still served.
    let replaced = put_case(
        &env,
        WIJKTEAM,
        id,
        &case_body(&["wams-coordinatie"], &[BSN], &["jeugdhulp"], &[]),
    )
    .await;
    assert_status(&replaced, StatusCode::OK);
    let compatible = exchange(
        &env,
        WIJKTEAM,
        &youth_care(BSN),
        "wams-coordinatie",
        id,
        BSN,
    )
    .await;
    assert_status(&compatible, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// 2. The register's API
// ---------------------------------------------------------------------------------------------

async fn the_api_creates_replaces_and_shows_a_household_as_a_count(backend: Backend) {
    let env = Env::start(backend).await;
    let id = "casus-test-api";
    let household = [BSN, HOUSEHOLD_BSNS[0], HOUSEHOLD_BSNS[1]];
    let body = case_body(
        &["wams-onderzoek", "wams-coordinatie"],
        &household,
        &["uwv", "svb"],
        &["jeugdhulp"],
    );
    let created = put_case(&env, WIJKTEAM, id, &body).await;
    assert_status(&created, StatusCode::CREATED);
    assert_eq!(created.headers["content-type"], "application/json");
    assert_no_bsn(&text(&created));

    let shown = get_case(&env, WIJKTEAM, id).await;
    assert_status(&shown, StatusCode::OK);
    let case = shown.json();
    assert_eq!(case["case_id"], id);
    assert_eq!(case["owner"], WIJKTEAM);
    assert_eq!(case["status"], "open");
    assert_eq!(case["household"], 3, "the household is a count: {case}");
    assert_eq!(
        case["purposes"],
        json!(["wams-coordinatie", "wams-onderzoek"])
    );
    let agreed: Vec<&str> = case["agreed_partners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["partner"].as_str().unwrap())
        .collect();
    assert_eq!(agreed, ["svb", "uwv"], "{case}");
    assert_eq!(case["objections"], json!(["jeugdhulp"]));
    let body_text = text(&shown);
    assert_no_bsn(&body_text);
    for bsn in household {
        assert!(!body_text.contains(bsn), "{body_text}");
    }

    // Replaced: 200, and what is shown is the new case.
    let smaller = case_body(&["wams-onderzoek"], &[HOUSEHOLD_BSNS[1]], &["uwv"], &[]);
    let replaced = put_case(&env, WIJKTEAM, id, &smaller).await;
    assert_status(&replaced, StatusCode::OK);
    let case = get_case(&env, WIJKTEAM, id).await.json();
    assert_eq!(case["household"], 1, "{case}");
    assert_eq!(case["purposes"], json!(["wams-onderzoek"]));
    assert_eq!(case["objections"], json!([]));
    assert_eq!(
        case["created_at"],
        created.json()["created_at"],
        "a replace keeps when the case began"
    );
    // Registering the same content again is a replace too.
    assert_status(
        &put_case(&env, WIJKTEAM, id, &smaller).await,
        StatusCode::OK,
    );

    // The demo's cases as the register holds them.
    let demo = get_case(&env, WIJKTEAM, "casus-2026-0001").await;
    assert_status(&demo, StatusCode::OK);
    assert_eq!(demo.json()["household"], 1);
    assert_no_bsn(&text(&demo));
}

async fn invalid_case_bodies_and_ids_are_refused_without_echoing_a_bsn(backend: Backend) {
    let env = Env::start(backend).await;
    let id = "casus-test-invalid";
    let good = case_body(&["wams-onderzoek"], &[BSN], &["uwv"], &[]);
    let mut unknown_key = good.clone();
    unknown_key["notes"] = json!("client prefers mornings");
    let not_json = json!("not a case");
    let cases: Vec<(&str, Value)> = vec![
        ("an unknown key", unknown_key),
        ("not a case at all", not_json),
        (
            "an unknown purpose",
            case_body(&["wams-onbekend"], &[BSN], &["uwv"], &[]),
        ),
        (
            "a refused purpose",
            case_body(&["handhaving"], &[BSN], &["uwv"], &[]),
        ),
        ("no purpose", case_body(&[], &[BSN], &["uwv"], &[])),
        (
            "an unknown agreed partner",
            case_body(&["wams-onderzoek"], &[BSN], &["belastingdienst"], &[]),
        ),
        (
            "an unknown objection",
            case_body(&["wams-onderzoek"], &[BSN], &["uwv"], &["belastingdienst"]),
        ),
        (
            "the reserved partner",
            case_body(&["wams-onderzoek"], &[BSN], &["doelpoort"], &[]),
        ),
        (
            "a BSN failing the elfproef",
            case_body(&["wams-onderzoek"], &[BSN, "999990018"], &["uwv"], &[]),
        ),
        (
            "a household member that is no BSN",
            case_body(&["wams-onderzoek"], &["99999001"], &["uwv"], &[]),
        ),
        (
            "an empty household",
            case_body(&["wams-onderzoek"], &[], &["uwv"], &[]),
        ),
        (
            "a partner agreed and objected to",
            case_body(&["wams-onderzoek"], &[BSN], &["uwv"], &["uwv"]),
        ),
    ];
    for (what, body) in &cases {
        let refused = put_case(&env, WIJKTEAM, id, body).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            text(&refused)
        );
        assert_eq!(
            refused.problem_code(),
            "request-invalid",
            "{what}: {}",
            text(&refused)
        );
        let detail = text(&refused);
        for bsn in [BSN, "999990018", "99999001"] {
            assert!(
                !detail.contains(bsn),
                "{what}: the problem echoes a BSN: {detail}"
            );
        }
    }
    // A body that is not JSON.
    let request = Request::put(env.url(&case_path(id)))
        .header("content-type", "application/json")
        .header("doelbinding-actor", ACTOR)
        .body(Full::new(Bytes::from_static(b"{\"household\": [999990019")))
        .unwrap();
    let broken = send(&env.client(WIJKTEAM), request).await;
    assert_problem(&broken, StatusCode::BAD_REQUEST, "request-invalid");
    assert!(!text(&broken).contains(BSN), "{}", text(&broken));
    // Nothing of it was registered.
    assert_problem(
        &get_case(&env, WIJKTEAM, id).await,
        StatusCode::FORBIDDEN,
        "case-unknown",
    );

    // A case id that holds a BSN, on every call of the API.
    let bsn_id = format!("casus-{BSN}");
    let put = put_case(&env, WIJKTEAM, &bsn_id, &good).await;
    assert_problem(&put, StatusCode::BAD_REQUEST, "context-invalid");
    let get = get_case(&env, WIJKTEAM, &bsn_id).await;
    assert_problem(&get, StatusCode::BAD_REQUEST, "context-invalid");
    let close = close_case(&env, WIJKTEAM, &bsn_id).await;
    assert_problem(&close, StatusCode::BAD_REQUEST, "context-invalid");
    for refused in [&put, &get, &close] {
        assert!(!text(refused).contains(BSN), "{}", text(refused));
    }
    // And the case register's own id checks hold for the exchange's header too.
    let exchange_bsn_id =
        exchange(&env, WIJKTEAM, &income(BSN), "wams-onderzoek", &bsn_id, BSN).await;
    assert_problem(&exchange_bsn_id, StatusCode::BAD_REQUEST, "context-invalid");
}

/// A household member of the wrong JSON type (a number, or a string where the list belongs):
/// the refusal must not repeat it, whether or not it passes the elfproef.
async fn a_household_member_of_the_wrong_json_type_is_not_echoed(backend: Backend) {
    let env = Env::start(backend).await;
    let id = "casus-test-json-types";
    let mut echoed = Vec::new();
    for raw in [
        r#"{"purposes": ["wams-onderzoek"], "household": [999990019]}"#,
        r#"{"purposes": ["wams-onderzoek"], "household": "999990019"}"#,
        r#"{"purposes": ["wams-onderzoek"], "household": [999990018]}"#,
        r#"{"purposes": ["wams-onderzoek"], "household": "999990018"}"#,
    ] {
        let request = Request::put(env.url(&case_path(id)))
            .header("content-type", "application/json")
            .header("doelbinding-actor", ACTOR)
            .body(Full::new(Bytes::from(raw)))
            .unwrap();
        let refused = send(&env.client(WIJKTEAM), request).await;
        assert_problem(&refused, StatusCode::BAD_REQUEST, "request-invalid");
        if [BSN, "999990018"]
            .iter()
            .any(|bsn| text(&refused).contains(bsn))
        {
            echoed.push(format!("{raw}\n  -> {}", refused.json()["detail"]));
        }
    }
    assert!(
        echoed.is_empty(),
        "the problem echoes the household member:\n{}",
        echoed.join("\n")
    );
}

/// A refused body never quotes the caller's text: not an unknown key (a name), not a value of
/// the wrong type, not an id that is not in the policy set, not a BSN given as a number.
async fn refused_bodies_never_quote_the_callers_text(backend: Backend) {
    let env = Env::start(backend).await;
    let id = "casus-test-quotes";
    let path = case_path(id);
    let put = |raw: &'static str| {
        register_request(
            &env,
            WIJKTEAM,
            Method::PUT,
            &path,
            Some(Bytes::from_static(raw.as_bytes())),
            &[("doelbinding-actor", ACTOR)],
        )
    };
    let bodies: [(&str, &str); 8] = [
        (
            "a name as an unknown key",
            r#"{"purposes": ["wams-onderzoek"], "household": ["999990019"], "mevrouw Jansen": 1}"#,
        ),
        (
            "a string where the purposes list belongs",
            r#"{"purposes": "mevrouw Jansen", "household": ["999990019"]}"#,
        ),
        (
            "a string where the objections list belongs",
            r#"{"purposes": ["wams-onderzoek"], "household": ["999990019"], "objections": "mevrouw Jansen wil dit niet"}"#,
        ),
        (
            "a name as a partner id",
            r#"{"purposes": ["wams-onderzoek"], "household": ["999990019"], "agreed_partners": ["Jansen"]}"#,
        ),
        (
            "a name as the status",
            r#"{"purposes": ["wams-onderzoek"], "household": ["999990019"], "status": "Jansen"}"#,
        ),
        (
            "a number for a BSN",
            r#"{"purposes": ["wams-onderzoek"], "household": [999990019]}"#,
        ),
        (
            "a number for a BSN, with a name beside it",
            r#"{"purposes": ["wams-onderzoek"], "household": ["999990019", 999990020], "mevrouw Jansen": true}"#,
        ),
        (
            "the same BSN twice",
            r#"{"purposes": ["wams-onderzoek"], "household": ["999990019", "999990019"]}"#,
        ),
    ];
    let mut quoted = Vec::new();
    for (what, raw) in bodies {
        let refused = put(raw).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            text(&refused)
        );
        assert_eq!(
            refused.problem_code(),
            "request-invalid",
            "{what}: {}",
            text(&refused)
        );
        let body = text(&refused);
        if ["Jansen", BSN, OTHER_BSN]
            .iter()
            .any(|quote| body.contains(quote))
        {
            quoted.push(format!("{what}: {raw}\n  -> {body}"));
        }
        let problem = refused.json();
        for field in ["title", "detail"] {
            assert_no_bsn(problem[field].as_str().unwrap_or_default());
        }
    }
    // The same for an override's body.
    let raw = json!({
        "partner": "jeugdhulp",
        "reason": REASON,
        "approvals": "x",
        "mevrouw Jansen 999990019": 1,
    });
    let refused = register_call(
        &env,
        WIJKTEAM,
        Method::POST,
        "/doelpoort/v1/cases/casus-2026-0003/overrides",
        Some(&raw),
    )
    .await;
    assert_problem(&refused, StatusCode::BAD_REQUEST, "request-invalid");
    let body = text(&refused);
    if body.contains("Jansen") || body.contains(BSN) {
        quoted.push(format!("an override with a name as a key\n  -> {body}"));
    }
    assert!(
        quoted.is_empty(),
        "the problem quotes the caller's text:\n{}",
        quoted.join("\n")
    );
    // Nothing of it was registered.
    assert_problem(
        &get_case(&env, WIJKTEAM, id).await,
        StatusCode::FORBIDDEN,
        "case-unknown",
    );
}

/// The register keeps a household as keyed HMACs: no member's BSN is in the store, in any
/// table or file.
async fn the_store_keeps_households_only_as_keyed_hmacs(backend: Backend) {
    let env = Env::start(backend).await;
    let household = [BSN, OTHER_BSN, HOUSEHOLD_BSNS[0], HOUSEHOLD_BSNS[1]];
    let body = case_body(&["wams-onderzoek"], &household, &["uwv"], &[]);
    create_case(&env, WIJKTEAM, "casus-test-hmac", &body).await;
    assert_status(
        &exchange(
            &env,
            WIJKTEAM,
            &income(OTHER_BSN),
            "wams-onderzoek",
            "casus-test-hmac",
            OTHER_BSN,
        )
        .await,
        StatusCode::OK,
    );
    let stored: Vec<(String, String)> = match &env.postgres {
        // Every row of every table, as text.
        Some(pg) => pg
            .psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
            .lines()
            .filter(|t| !t.trim().is_empty())
            .map(|table| {
                let rows = pg.psql(&format!("SELECT t::text FROM \"{}\" t", table.trim()));
                (table.trim().to_string(), rows)
            })
            .collect(),
        // The database file and its write-ahead log, as bytes.
        None => std::fs::read_dir(env.root().join("data"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("store.sqlite")
            })
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap();
                (
                    p.display().to_string(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                )
            })
            .collect(),
    };
    assert!(
        stored.iter().any(|(_, content)| !content.is_empty()),
        "nothing read from the store"
    );
    let tables: Vec<&str> = stored.iter().map(|(t, _)| t.as_str()).collect();
    for (place, content) in &stored {
        for bsn in household {
            assert!(
                !content.contains(bsn),
                "{place} holds the BSN {bsn} in clear (read: {tables:?})"
            );
        }
    }
}

async fn only_case_admins_keep_cases(backend: Backend) {
    let env = Env::start(backend).await;
    // A deployment where Schuldhulp Utrecht is a consumer but not a case admin, on the same
    // store (which holds its case shv-2026-0042).
    let gateway = env
        .variant("no-admin", |config| {
            let consumer = config
                .consumers
                .iter_mut()
                .find(|c| c.id.as_str() == SCHULDHULP)
                .unwrap();
            consumer.case_admin = false;
        })
        .await;
    let body = case_body(&["schuldhulpverlening"], &[BSN], &["uwv"], &[]);
    for (method, path, body) in [
        (Method::PUT, case_path("shv-test-new"), Some(&body)),
        (Method::PUT, case_path("shv-2026-0042"), Some(&body)),
        (Method::GET, case_path("shv-2026-0042"), None),
        (
            Method::POST,
            format!("{}/close", case_path("shv-2026-0042")),
            None,
        ),
    ] {
        let refused =
            register_call_at(&gateway, &env, SCHULDHULP, method.clone(), &path, body).await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            text(&refused)
        );
        assert_eq!(refused.problem_code(), "not-granted", "{method} {path}");
    }
    // Nothing changed: the case is still open (asked through a gateway where it is admin),
    // and a case admin on the variant still keeps its own cases.
    let own = get_case(&env, SCHULDHULP, "shv-2026-0042").await;
    assert_status(&own, StatusCode::OK);
    assert_eq!(own.json()["status"], "open");
    assert_problem(
        &get_case(&env, SCHULDHULP, "shv-test-new").await,
        StatusCode::FORBIDDEN,
        "case-unknown",
    );
    let admin = register_call_at(
        &gateway,
        &env,
        WIJKTEAM,
        Method::GET,
        &case_path("casus-2026-0001"),
        None,
    )
    .await;
    assert_status(&admin, StatusCode::OK);
    gateway.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 3. Overrides
// ---------------------------------------------------------------------------------------------

async fn an_override_needs_two_fresh_approvals_by_colleagues(backend: Backend) {
    let env = Env::start(backend).await;
    let id = "casus-2026-0003";
    let youth_path = youth_care(BSN);
    let youth = || exchange(&env, WIJKTEAM, &youth_path, "wams-coordinatie", id, BSN);
    assert_problem(&youth().await, StatusCode::FORBIDDEN, "outside-case-scope");

    // One approver only.
    let one = override_token(&env, id, "jeugdhulp", "teamleider-0007", OVERRIDE_OPERATION);
    assert_problem(
        &post_override(&env, id, "jeugdhulp", &one).await,
        StatusCode::FORBIDDEN,
        "four-eyes-required",
    );
    // Two approvals, but one of them is the actor's own: one colleague only.
    let own = override_token(
        &env,
        id,
        "jeugdhulp",
        &format!("{ACTOR},teamleider-0007"),
        OVERRIDE_OPERATION,
    );
    assert_problem(
        &post_override(&env, id, "jeugdhulp", &own).await,
        StatusCode::FORBIDDEN,
        "four-eyes-required",
    );
    // Approvals of another operation.
    let other_operation = override_token(&env, id, "jeugdhulp", TWO_APPROVERS, "cjib/opschorting");
    assert_problem(
        &post_override(&env, id, "jeugdhulp", &other_operation).await,
        StatusCode::FORBIDDEN,
        "four-eyes-required",
    );
    // Approvals for another case.
    let other_case = override_token(
        &env,
        "casus-2026-0001",
        "jeugdhulp",
        TWO_APPROVERS,
        OVERRIDE_OPERATION,
    );
    assert_problem(
        &post_override(&env, id, "jeugdhulp", &other_case).await,
        StatusCode::FORBIDDEN,
        "token-mismatch",
    );
    // Approvals for another actor than the one acting.
    let request = Request::post(env.url(&format!("{}/overrides", case_path(id))))
        .header("content-type", "application/json")
        .header("doelbinding-actor", "medewerker-0099")
        .body(Full::new(Bytes::from(
            json!({
                "partner": "jeugdhulp",
                "reason": REASON,
                "approvals": override_token(&env, id, "jeugdhulp", TWO_APPROVERS, OVERRIDE_OPERATION),
            })
            .to_string(),
        )))
        .unwrap();
    let other_actor = send(&env.client(WIJKTEAM), request).await;
    assert_problem(&other_actor, StatusCode::FORBIDDEN, "token-mismatch");
    // None of that changed the case.
    assert_problem(&youth().await, StatusCode::FORBIDDEN, "outside-case-scope");
    assert_eq!(
        get_case(&env, WIJKTEAM, id).await.json()["overrides"],
        json!([])
    );

    // Two colleagues other than the actor: the override is registered, and youth care is
    // within the case's scope despite the objection.
    let token = override_token(&env, id, "jeugdhulp", TWO_APPROVERS, OVERRIDE_OPERATION);
    let granted = post_override(&env, id, "jeugdhulp", &token).await;
    assert_status(&granted, StatusCode::CREATED);
    let overrides = granted.json()["overrides"].clone();
    assert_eq!(overrides.as_array().unwrap().len(), 1, "{overrides}");
    assert_eq!(overrides[0]["partner"], "jeugdhulp");
    assert_eq!(overrides[0]["actor"], ACTOR);
    assert_eq!(
        overrides[0]["approvers"],
        json!(["teamleider-0007", "gedragswetenschapper-0003"])
    );
    assert_status(&youth().await, StatusCode::OK);
    // The case's own scope stays as registered: youth care is still not among its agreed
    // partners (the override is recorded beside it).
    assert_eq!(
        get_case(&env, WIJKTEAM, id).await.json()["agreed_partners"][0]["partner"],
        json!("uwv")
    );

    // The same approvals again, for the same override: already used.
    let again = post_override(&env, id, "jeugdhulp", &token).await;
    assert_problem(&again, StatusCode::FORBIDDEN, "four-eyes-required");
    assert!(
        text(&again).contains("already been used"),
        "{}",
        text(&again)
    );
    // Nor do they approve another partner (see an_override_approves_one_partner_for_one_reason).
    let other_partner = post_override(&env, id, "svb", &token).await;
    assert_problem(&other_partner, StatusCode::FORBIDDEN, "four-eyes-required");
    // SVB stays outside the case's scope.
    let svb = exchange(
        &env,
        WIJKTEAM,
        &child_benefit(BSN),
        "wams-onderzoek",
        id,
        BSN,
    )
    .await;
    assert_problem(&svb, StatusCode::FORBIDDEN, "outside-case-scope");
}

/// The colleagues approve one override: this partner, for this reason (the canonical digest
/// of `{"partner", "reason"}` in `approves.request_sha256`). Approvals of another partner, of
/// another reason, or of no body at all are no approval of this override.
async fn an_override_approves_one_partner_for_one_reason(backend: Backend) {
    let env = Env::start(backend).await;
    let id = "casus-2026-0003";
    let youth_path = youth_care(BSN);
    let youth = || exchange(&env, WIJKTEAM, &youth_path, "wams-coordinatie", id, BSN);
    let other_reason = "de client is onbereikbaar en er zijn zorgen over de kinderen";
    let token = |approves: Option<Value>| {
        override_token_as(
            &env,
            WIJKTEAM,
            id,
            TWO_APPROVERS,
            OVERRIDE_OPERATION,
            approves,
        )
    };

    let for_svb = token(Some(approved_override("svb", REASON)));
    let refusals = [
        (
            "approving another partner",
            "jeugdhulp",
            REASON,
            for_svb.clone(),
        ),
        (
            "approving another reason",
            "jeugdhulp",
            REASON,
            token(Some(approved_override("jeugdhulp", other_reason))),
        ),
        (
            "approving the reason, sent with another",
            "jeugdhulp",
            other_reason,
            token(Some(approved_override("jeugdhulp", REASON))),
        ),
        (
            "approving no request in particular",
            "jeugdhulp",
            REASON,
            token(None),
        ),
        (
            "approving the partner alone",
            "jeugdhulp",
            REASON,
            token(Some(json!({"partner": "jeugdhulp"}))),
        ),
    ];
    for (what, partner, reason, approvals) in &refusals {
        let refused = post_override_as(&env, WIJKTEAM, id, partner, reason, approvals).await;
        assert_eq!(
            (refused.status, refused.problem_code()),
            (StatusCode::FORBIDDEN, "four-eyes-required".to_string()),
            "{what}: {}",
            text(&refused)
        );
    }
    // None of that changed the case.
    assert_problem(&youth().await, StatusCode::FORBIDDEN, "outside-case-scope");
    assert_eq!(
        get_case(&env, WIJKTEAM, id).await.json()["overrides"],
        json!([])
    );

    // The approvals for SVB, refused for youth care, were not spent: they still approve SVB.
    let svb = post_override(&env, id, "svb", &for_svb).await;
    assert_status(&svb, StatusCode::CREATED);
    assert_problem(&youth().await, StatusCode::FORBIDDEN, "outside-case-scope");
    // Approvals of exactly this override: granted, with the reason approved.
    let approved = token(Some(approved_override("jeugdhulp", REASON)));
    let granted = post_override(&env, id, "jeugdhulp", &approved).await;
    assert_status(&granted, StatusCode::CREATED);
    let overrides = granted.json()["overrides"].clone();
    let youth_override = overrides
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["partner"] == "jeugdhulp")
        .unwrap_or_else(|| panic!("{overrides}"))
        .clone();
    assert_eq!(youth_override["reason"], REASON, "{overrides}");
    assert_status(&youth().await, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// 4. The audit chain
// ---------------------------------------------------------------------------------------------

/// The records in `dir` of the register call answered by `response` (by transaction id).
fn records_of(dir: &std::path::Path, response: &TestResponse) -> Vec<Value> {
    let id = transaction_id(response);
    audit_records(dir)
        .into_iter()
        .filter(|r| r["attributes"]["doelpoort.transaction_id"] == id.as_str())
        .collect()
}

/// The one record of a register call, checked for what every register record says.
fn register_record(env: &Env, response: &TestResponse, name: &str) -> Value {
    let records = records_of(&env.audit_dir(), response);
    assert_eq!(
        records.len(),
        1,
        "one record per register call, found {records:#?}"
    );
    let record = records.into_iter().next().unwrap();
    let attributes = &record["attributes"];
    assert_eq!(record["name"], name, "{record}");
    assert_eq!(attributes["doelpoort.partner"], "doelpoort", "{record}");
    assert_eq!(attributes["doelpoort.consumer"]["id"], WIJKTEAM, "{record}");
    // The actor is named once the case id was found well-formed.
    if attributes.get("doelpoort.case_id").is_some() {
        assert_eq!(attributes["doelpoort.actor"], ACTOR, "{record}");
    }
    if response.status.is_success() {
        assert_eq!(attributes["doelpoort.decision"], "allow", "{record}");
        assert!(attributes.get("doelpoort.reason").is_none(), "{record}");
    } else {
        assert_ne!(attributes["doelpoort.decision"], "allow", "{record}");
        assert_eq!(
            attributes["doelpoort.reason"],
            response.problem_code().as_str(),
            "{record}"
        );
        assert!(
            attributes.get("doelpoort.case_change").is_none(),
            "a refused call changed nothing: {record}"
        );
    }
    record
}

async fn every_register_call_is_one_audit_record_without_bsns(backend: Backend) {
    let env = Env::start(backend).await;
    let dir = env.audit_dir();
    let id = "casus-test-audit";
    let household = [HOUSEHOLD_BSNS[0], HOUSEHOLD_BSNS[1], HOUSEHOLD_BSNS[2]];
    let body = case_body(
        &["wams-onderzoek", "wams-coordinatie"],
        &household,
        &["uwv"],
        &["jeugdhulp"],
    );

    let created = put_case(&env, WIJKTEAM, id, &body).await;
    assert_status(&created, StatusCode::CREATED);
    let record = register_record(&env, &created, "doelpoort/cases.put");
    assert_eq!(record["attributes"]["doelpoort.case_id"], id);
    let change = record["attributes"]["doelpoort.case_change"]
        .as_str()
        .expect("case_change on a change");
    assert!(change.contains("household_members=3"), "{change}");

    let replaced = put_case(
        &env,
        WIJKTEAM,
        id,
        &case_body(&["wams-onderzoek"], &household[..2], &["uwv"], &[]),
    )
    .await;
    assert_status(&replaced, StatusCode::OK);
    let record = register_record(&env, &replaced, "doelpoort/cases.put");
    assert!(
        record["attributes"]["doelpoort.case_change"].is_string(),
        "{record}"
    );

    let read = get_case(&env, WIJKTEAM, id).await;
    assert_status(&read, StatusCode::OK);
    let record = register_record(&env, &read, "doelpoort/cases.get");
    assert_eq!(record["attributes"]["doelpoort.case_id"], id);

    let invalid = put_case(
        &env,
        WIJKTEAM,
        id,
        &case_body(&["wams-onderzoek"], &["999990018"], &["uwv"], &[]),
    )
    .await;
    assert_problem(&invalid, StatusCode::BAD_REQUEST, "request-invalid");
    register_record(&env, &invalid, "doelpoort/cases.put");

    let bsn_id = put_case(
        &env,
        WIJKTEAM,
        &format!("casus-{}", HOUSEHOLD_BSNS[2]),
        &body,
    )
    .await;
    assert_problem(&bsn_id, StatusCode::BAD_REQUEST, "context-invalid");
    let record = register_record(&env, &bsn_id, "doelpoort/cases.put");
    assert!(
        record["attributes"].get("doelpoort.case_id").is_none(),
        "{record}"
    );

    let foreign = get_case(&env, WIJKTEAM, "shv-2026-0042").await;
    assert_problem(&foreign, StatusCode::FORBIDDEN, "case-unknown");
    register_record(&env, &foreign, "doelpoort/cases.get");

    let token = override_token(&env, id, "svb", TWO_APPROVERS, OVERRIDE_OPERATION);
    let overridden = post_override(&env, id, "svb", &token).await;
    assert_status(&overridden, StatusCode::CREATED);
    let record = register_record(&env, &overridden, "doelpoort/cases.override");
    assert!(
        record["attributes"]["doelpoort.case_change"]
            .as_str()
            .unwrap()
            .contains("svb"),
        "{record}"
    );
    let approvers: Vec<&str> = record["attributes"]["doelpoort.approvals"]
        .as_array()
        .unwrap_or_else(|| panic!("the approvals are named: {record}"))
        .iter()
        .map(|a| a["by"].as_str().unwrap())
        .collect();
    assert_eq!(
        approvers,
        ["teamleider-0007", "gedragswetenschapper-0003"],
        "{record}"
    );
    let reused = post_override(&env, id, "svb", &token).await;
    assert_problem(&reused, StatusCode::FORBIDDEN, "four-eyes-required");
    register_record(&env, &reused, "doelpoort/cases.override");

    let closed = close_case(&env, WIJKTEAM, id).await;
    assert_status(&closed, StatusCode::OK);
    let record = register_record(&env, &closed, "doelpoort/cases.close");
    assert_eq!(
        record["attributes"]["doelpoort.case_change"],
        "status=closed"
    );
    let closed_again = close_case(&env, WIJKTEAM, id).await;
    assert_problem(&closed_again, StatusCode::FORBIDDEN, "case-closed");
    register_record(&env, &closed_again, "doelpoort/cases.close");

    // An exchange on the demo's case, for a person in its household, is in the same chain.
    let served = exchange(
        &env,
        WIJKTEAM,
        &income(BSN),
        "wams-onderzoek",
        "casus-2026-0001",
        BSN,
    )
    .await;
    assert_status(&served, StatusCode::OK);

    // The chain verifies, with the register's records in it.
    let (code, out) = run_doelpoort(["audit", "verify", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("audit log OK"), "{out}");

    // No BSN of a household, nor of the person served, in clear in any file of the log.
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        files += 1;
        let raw = std::fs::read(&path).unwrap();
        let raw = String::from_utf8_lossy(&raw);
        for bsn in household.iter().chain([&BSN, &OTHER_BSN, &"999990018"]) {
            assert!(
                !raw.contains(bsn),
                "{} holds the BSN {bsn} in clear",
                path.display()
            );
        }
    }
    assert!(files > 0, "no audit files in {}", dir.display());

    // Nor a case id, an actor or a BSN in a metrics label (SPEC §6).
    let admin = env.gateway().admin_addr.expect("an admin listener");
    let (status, metrics) = admin_get(&admin.to_string(), "/metrics").await;
    assert_eq!(status, 200, "{metrics}");
    assert!(metrics.contains("doelpoort_requests_total"), "{metrics}");
    for secret in household
        .iter()
        .chain([&BSN, &id, &"casus-2026-0001", &ACTOR])
    {
        assert!(
            !metrics.contains(secret),
            "{secret} in the metrics:\n{metrics}"
        );
    }
}

/// The objections a record's `doelpoort.case_change` names as withdrawn.
fn withdrawn_in(change: &str) -> Option<&str> {
    change
        .split("; ")
        .find_map(|part| part.strip_prefix("objections_withdrawn="))
}

/// The one record of the call answered by `response`.
fn one_record(env: &Env, response: &TestResponse) -> Value {
    let records = records_of(&env.audit_dir(), response);
    assert_eq!(
        records.len(),
        1,
        "one record per register call: {records:#?}"
    );
    records.into_iter().next().unwrap()
}

/// Who makes a register call: `Doelbinding-Actor` (sent once), or a signed caller token,
/// which is verified like on any exchange and must agree with the call; the record names the
/// token's `sub`.
async fn register_calls_check_the_actor_and_the_caller_token(backend: Backend) {
    let env = Env::start(backend).await;
    let id = "casus-test-actor";
    let path = case_path(id);
    let body = case_body(&["wams-onderzoek"], &[BSN], &["uwv"], &[]);
    create_case(&env, WIJKTEAM, id, &body).await;
    let before = get_case(&env, WIJKTEAM, id).await.json();
    let changed =
        Bytes::from(case_body(&["wams-onderzoek"], &[BSN], &["uwv", "svb"], &[]).to_string());
    let colleague = "medewerker-0077";
    let bearer = |token: &str| format!("Bearer {token}");

    // Doelbinding-Actor twice, on a read and on a change.
    let twice = [
        ("doelbinding-actor", ACTOR),
        ("doelbinding-actor", colleague),
    ];
    let read = register_request(&env, WIJKTEAM, Method::GET, &path, None, &twice).await;
    assert_problem(&read, StatusCode::BAD_REQUEST, "context-invalid");
    let put = register_request(
        &env,
        WIJKTEAM,
        Method::PUT,
        &path,
        Some(changed.clone()),
        &twice,
    )
    .await;
    assert_problem(&put, StatusCode::BAD_REQUEST, "context-invalid");

    // A bearer token that is no token.
    let garbage = [
        ("authorization", "Bearer not-a-token"),
        ("doelbinding-actor", ACTOR),
    ];
    let put = register_request(
        &env,
        WIJKTEAM,
        Method::PUT,
        &path,
        Some(changed.clone()),
        &garbage,
    )
    .await;
    assert_problem(&put, StatusCode::UNAUTHORIZED, "token-invalid");
    let read = register_request(&env, WIJKTEAM, Method::GET, &path, None, &garbage).await;
    assert_problem(&read, StatusCode::UNAUTHORIZED, "token-invalid");

    // A token of another employee than the one named in Doelbinding-Actor.
    let theirs = bearer(&actor_token(&env, WIJKTEAM, colleague, Some(id)));
    let headers = [
        ("authorization", theirs.as_str()),
        ("doelbinding-actor", ACTOR),
    ];
    let put = register_request(
        &env,
        WIJKTEAM,
        Method::PUT,
        &path,
        Some(changed.clone()),
        &headers,
    )
    .await;
    assert_problem(&put, StatusCode::FORBIDDEN, "token-mismatch");

    // A token for another case.
    let other_case = bearer(&actor_token(
        &env,
        WIJKTEAM,
        colleague,
        Some("casus-2026-0001"),
    ));
    let headers = [("authorization", other_case.as_str())];
    let put = register_request(
        &env,
        WIJKTEAM,
        Method::PUT,
        &path,
        Some(changed.clone()),
        &headers,
    )
    .await;
    assert_problem(&put, StatusCode::FORBIDDEN, "token-mismatch");
    let close = register_request(
        &env,
        WIJKTEAM,
        Method::POST,
        &format!("{path}/close"),
        None,
        &headers,
    )
    .await;
    assert_problem(&close, StatusCode::FORBIDDEN, "token-mismatch");
    // A token bound to another organisation's certificate.
    let foreign = bearer(&actor_token(&env, SCHULDHULP, colleague, Some(id)));
    let headers = [("authorization", foreign.as_str())];
    let put = register_request(
        &env,
        WIJKTEAM,
        Method::PUT,
        &path,
        Some(changed.clone()),
        &headers,
    )
    .await;
    assert_problem(&put, StatusCode::UNAUTHORIZED, "token-invalid");

    // None of that changed the case, and no refused record names a change.
    let after = get_case(&env, WIJKTEAM, id).await;
    assert_status(&after, StatusCode::OK);
    assert_eq!(after.json()["agreed_partners"], before["agreed_partners"]);
    assert_eq!(after.json()["status"], "open");

    // A token of this case, without Doelbinding-Actor: the record names the token's sub.
    let ours = bearer(&actor_token(&env, WIJKTEAM, colleague, Some(id)));
    let headers = [("authorization", ours.as_str())];
    let put = register_request(
        &env,
        WIJKTEAM,
        Method::PUT,
        &path,
        Some(changed.clone()),
        &headers,
    )
    .await;
    assert_status(&put, StatusCode::OK);
    let record = one_record(&env, &put);
    assert_eq!(
        record["attributes"]["doelpoort.actor"], colleague,
        "{record}"
    );
    assert_eq!(record["attributes"]["doelpoort.case_id"], id, "{record}");
    // A token naming no case, with the same employee in Doelbinding-Actor.
    let any_case = bearer(&actor_token(&env, WIJKTEAM, colleague, None));
    let headers = [
        ("authorization", any_case.as_str()),
        ("doelbinding-actor", colleague),
    ];
    let read = register_request(&env, WIJKTEAM, Method::GET, &path, None, &headers).await;
    assert_status(&read, StatusCode::OK);
    let record = one_record(&env, &read);
    assert_eq!(
        record["attributes"]["doelpoort.actor"], colleague,
        "{record}"
    );
    // A refusal is recorded too, naming no change.
    let record = one_record(&env, &close);
    assert_eq!(
        record["attributes"]["doelpoort.reason"], "token-mismatch",
        "{record}"
    );
    assert!(
        record["attributes"].get("doelpoort.case_change").is_none(),
        "{record}"
    );
}

/// The client's objection is leading: withdrawing one (a PUT no longer listing it) is the
/// employee's act, who must be named (Doelbinding-Actor or a caller token), and the record
/// names the objection withdrawn.
async fn withdrawing_an_objection_needs_an_actor_and_is_recorded(backend: Backend) {
    let env = Env::start(backend).await;
    let id = "casus-test-withdraw";
    let path = case_path(id);
    let objecting = case_body(&["wams-onderzoek"], &[BSN], &["uwv"], &["jeugdhulp", "svb"]);
    create_case(&env, WIJKTEAM, id, &objecting).await;
    let put_as = |body: &Value, headers: &'static [(&'static str, &'static str)]| {
        register_request(
            &env,
            WIJKTEAM,
            Method::PUT,
            &path,
            Some(Bytes::from(body.to_string())),
            headers,
        )
    };

    // Without an actor no change is made at all (every change is attributed); with one, a
    // PUT that keeps the objections names no withdrawal.
    let anonymous = put_as(&objecting, &[]).await;
    assert_problem(&anonymous, StatusCode::BAD_REQUEST, "context-invalid");
    let kept = put_as(&objecting, &[("doelbinding-actor", "casemanager-0001")]).await;
    assert_status(&kept, StatusCode::OK);
    let record = one_record(&env, &kept);
    let change = record["attributes"]["doelpoort.case_change"]
        .as_str()
        .unwrap_or_else(|| panic!("{record}"));
    assert_eq!(withdrawn_in(change), None, "{change}");

    // Withdrawing SVB's objection without anyone named: refused, and nothing changes.
    let without_svb = case_body(&["wams-onderzoek"], &[BSN], &["uwv", "svb"], &["jeugdhulp"]);
    let refused = put_as(&without_svb, &[]).await;
    assert_problem(&refused, StatusCode::BAD_REQUEST, "context-invalid");
    let record = one_record(&env, &refused);
    assert!(
        record["attributes"].get("doelpoort.case_change").is_none(),
        "{record}"
    );
    let case = get_case(&env, WIJKTEAM, id).await.json();
    assert_eq!(case["objections"], json!(["jeugdhulp", "svb"]), "{case}");
    assert_problem(
        &exchange(
            &env,
            WIJKTEAM,
            &child_benefit(BSN),
            "wams-onderzoek",
            id,
            BSN,
        )
        .await,
        StatusCode::FORBIDDEN,
        "outside-case-scope",
    );

    // Named in Doelbinding-Actor: withdrawn, and the record says which.
    let withdrawn = put_as(&without_svb, &[("doelbinding-actor", ACTOR)]).await;
    assert_status(&withdrawn, StatusCode::OK);
    let record = one_record(&env, &withdrawn);
    assert_eq!(record["attributes"]["doelpoort.actor"], ACTOR, "{record}");
    let change = record["attributes"]["doelpoort.case_change"]
        .as_str()
        .unwrap_or_else(|| panic!("{record}"));
    assert_eq!(withdrawn_in(change), Some("svb"), "{change}");
    assert_eq!(
        get_case(&env, WIJKTEAM, id).await.json()["objections"],
        json!(["jeugdhulp"])
    );
    assert_status(
        &exchange(
            &env,
            WIJKTEAM,
            &child_benefit(BSN),
            "wams-onderzoek",
            id,
            BSN,
        )
        .await,
        StatusCode::OK,
    );

    // Named only by a signed caller token: withdrawn, and the record names the token's sub.
    let colleague = "medewerker-0077";
    let token = format!(
        "Bearer {}",
        actor_token(&env, WIJKTEAM, colleague, Some(id))
    );
    let none = case_body(&["wams-onderzoek"], &[BSN], &["uwv", "svb"], &[]);
    let withdrawn = register_request(
        &env,
        WIJKTEAM,
        Method::PUT,
        &path,
        Some(Bytes::from(none.to_string())),
        &[("authorization", token.as_str())],
    )
    .await;
    assert_status(&withdrawn, StatusCode::OK);
    let record = one_record(&env, &withdrawn);
    assert_eq!(
        record["attributes"]["doelpoort.actor"], colleague,
        "{record}"
    );
    let change = record["attributes"]["doelpoort.case_change"]
        .as_str()
        .unwrap_or_else(|| panic!("{record}"));
    assert_eq!(withdrawn_in(change), Some("jeugdhulp"), "{change}");
    assert_eq!(
        get_case(&env, WIJKTEAM, id).await.json()["objections"],
        json!([])
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Purge and the operator's commands
// ---------------------------------------------------------------------------------------------

/// `doelpoort case …` against the scenario's store: (exit code, stdout then stderr).
fn case_command(env: &Env, args: &[&str]) -> (i32, String) {
    let store = env.store_arg();
    let mut all = vec!["case", args[0], "--store", store.as_str()];
    all.extend_from_slice(&args[1..]);
    run_doelpoort(all)
}

fn day_from_today(days: i64) -> String {
    (doelpoort::policy::today() + time::Duration::days(days)).to_string()
}

async fn a_closed_case_is_purged_only_after_its_retention(backend: Backend) {
    let env = Env::start(backend).await;
    let id = "casus-test-purge";
    // Both purposes keep a closed case one year (policies/purposes.yaml).
    let body = case_body(
        &["wams-onderzoek", "wams-coordinatie"],
        &[BSN],
        &["uwv"],
        &[],
    );
    create_case(&env, WIJKTEAM, id, &body).await;
    assert_status(
        &exchange(&env, WIJKTEAM, &income(BSN), "wams-onderzoek", id, BSN).await,
        StatusCode::OK,
    );
    let closed = close_case(&env, WIJKTEAM, id).await;
    assert_status(&closed, StatusCode::OK);
    assert!(
        closed.json()["purge_after"].is_string(),
        "{}",
        text(&closed)
    );
    let case_records = || {
        audit_records(&env.audit_dir())
            .into_iter()
            .filter(|r| r["attributes"]["doelpoort.case_id"] == id)
            .count()
    };
    let records_before = case_records();
    assert!(
        records_before >= 3,
        "put, exchange, close: {records_before}"
    );

    // A day before the year is over: nothing is purged.
    let (code, out) = case_command(&env, &["purge", "--as-of", &day_from_today(364)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 closed case(s) purged"), "{out}");
    let (code, out) = case_command(&env, &["show", id]);
    assert_eq!(code, 0, "{out}");
    let shown = only_case(&out);
    assert_eq!(shown["status"], "closed");
    assert_eq!(shown["owner"], WIJKTEAM);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still = get_case(&env, WIJKTEAM, id).await;
    assert_status(&still, StatusCode::OK);
    assert_eq!(still.json()["status"], "closed");

    // Past the year: purged (with the demo's closed casus-2026-0002).
    let (code, out) = case_command(&env, &["purge", "--as-of", &day_from_today(367)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 closed case(s) purged"), "{out}");
    let gone = answer_within(
        Duration::from_secs(1),
        || get_case(&env, WIJKTEAM, id),
        |r| r.status == StatusCode::FORBIDDEN,
    )
    .await;
    assert_problem(&gone, StatusCode::FORBIDDEN, "case-unknown");
    let exchanged = exchange(&env, WIJKTEAM, &income(BSN), "wams-onderzoek", id, BSN).await;
    assert_problem(&exchanged, StatusCode::FORBIDDEN, "case-unknown");
    let (code, out) = case_command(&env, &["show", id]);
    assert_eq!(code, 1, "{out}");
    let (code, out) = case_command(&env, &["list"]);
    assert_eq!(code, 0, "{out}");
    let listed: Vec<String> = first_json(&out)
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["case_id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !listed.iter().any(|c| c == id || c == "casus-2026-0002"),
        "{listed:?}"
    );
    assert!(listed.iter().any(|c| c == "casus-2026-0001"), "{listed:?}");

    // The audit records of the case stay, and the chain still verifies.
    assert!(
        case_records() >= records_before,
        "the case's audit records are kept"
    );
    let (code, out) = run_doelpoort(["audit", "verify", env.audit_dir().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    // Closed stays closed after the purge: the owner's id is never given out again, neither
    // by a PUT (case-closed) nor as a new case.
    let reopened = put_case(&env, WIJKTEAM, id, &body).await;
    assert_problem(&reopened, StatusCode::FORBIDDEN, "case-closed");
    let reopened = put_case(
        &env,
        WIJKTEAM,
        "casus-2026-0002",
        &case_body(&["wams-onderzoek"], &[BSN], &["uwv"], &[]),
    )
    .await;
    assert_problem(&reopened, StatusCode::FORBIDDEN, "case-closed");
    assert_problem(
        &get_case(&env, WIJKTEAM, id).await,
        StatusCode::FORBIDDEN,
        "case-unknown",
    );
    let (code, out) = case_command(&env, &["show", id]);
    assert_eq!(code, 1, "the purged case stays purged: {out}");
    // Another organisation's ids are its own: the same id is a new case of its own.
    let own = put_case(
        &env,
        SCHULDHULP,
        id,
        &case_body(&["schuldhulpverlening"], &[BSN], &["uwv"], &[]),
    )
    .await;
    assert_status(&own, StatusCode::CREATED);
    assert_eq!(own.json()["owner"], SCHULDHULP);
    let (code, out) = case_command(&env, &["show", id]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(only_case(&out)["owner"], SCHULDHULP, "{out}");
}

async fn operators_list_show_and_close_cases(backend: Backend) {
    let env = Env::start(backend).await;
    let id = "casus-test-operator";
    let household = [BSN, HOUSEHOLD_BSNS[0]];
    create_case(
        &env,
        WIJKTEAM,
        id,
        &case_body(&["wams-onderzoek"], &household, &["uwv"], &[]),
    )
    .await;

    let (code, out) = case_command(&env, &["list"]);
    assert_eq!(code, 0, "{out}");
    assert_no_bsn(&out);
    let list = first_json(&out);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["case_id"].as_str().unwrap())
        .collect();
    for expected in [
        "casus-2026-0001",
        "casus-2026-0002",
        "casus-2026-0003",
        "shv-2026-0042",
        id,
    ] {
        assert!(ids.contains(&expected), "{expected} not in {ids:?}");
    }
    let (code, out) = case_command(&env, &["show", id]);
    assert_eq!(code, 0, "{out}");
    assert_no_bsn(&out);
    let shown = only_case(&out);
    assert_eq!(shown["case_id"], id);
    assert_eq!(shown["household"], 2);
    assert_eq!(shown["owner"], WIJKTEAM);
    assert_eq!(shown["status"], "open");
    let (code, out) = case_command(&env, &["show", "casus-2026-9999"]);
    assert_eq!(code, 1, "{out}");

    // An operator closes the case in the store; the gateway follows within a second.
    assert_status(
        &exchange(&env, WIJKTEAM, &income(BSN), "wams-onderzoek", id, BSN).await,
        StatusCode::OK,
    );
    let policies = env.root().join("policies");
    let schemas = env.root().join("schemas");
    let (code, out) = case_command(
        &env,
        &[
            "close",
            "--policies",
            policies.to_str().unwrap(),
            "--schemas",
            schemas.to_str().unwrap(),
            id,
        ],
    );
    assert_eq!(code, 0, "{out}");
    let income_path = income(BSN);
    let refused = answer_within(
        Duration::from_secs(1),
        || exchange(&env, WIJKTEAM, &income_path, "wams-onderzoek", id, BSN),
        |r| r.status != StatusCode::OK,
    )
    .await;
    assert_problem(&refused, StatusCode::FORBIDDEN, "case-closed");
    let (code, out) = case_command(&env, &["show", id]);
    assert_eq!(code, 0, "{out}");
    let shown = only_case(&out);
    assert_eq!(shown["status"], "closed");
    assert!(shown["purge_after"].is_string(), "{shown}");
    // Closing it again is refused.
    let (code, out) = case_command(
        &env,
        &[
            "close",
            "--policies",
            policies.to_str().unwrap(),
            "--schemas",
            schemas.to_str().unwrap(),
            id,
        ],
    );
    assert_eq!(code, 1, "{out}");
}

/// Each consumer has its own case ids, so one id may be several cases: `case show` prints them
/// all (an array; `--owner` picks one), and `case close` must be told whose case to close.
async fn operators_name_the_owner_when_consumers_share_a_case_id(backend: Backend) {
    let env = Env::start(backend).await;
    let id = "casus-test-shared";
    create_case(
        &env,
        WIJKTEAM,
        id,
        &case_body(&["wams-onderzoek"], &[BSN], &["uwv"], &[]),
    )
    .await;
    create_case(
        &env,
        SCHULDHULP,
        id,
        &case_body(
            &["schuldhulpverlening"],
            &[BSN, HOUSEHOLD_BSNS[0]],
            &["uwv", "cjib"],
            &[],
        ),
    )
    .await;

    let (code, out) = case_command(&env, &["show", id]);
    assert_eq!(code, 0, "{out}");
    assert_no_bsn(&out);
    let shown = first_json(&out);
    let mut owners: Vec<(&str, u64)> = shown
        .as_array()
        .unwrap_or_else(|| panic!("an array: {out}"))
        .iter()
        .map(|c| {
            assert_eq!(c["case_id"], id, "{out}");
            (
                c["owner"].as_str().unwrap(),
                c["household"].as_u64().unwrap(),
            )
        })
        .collect();
    owners.sort_unstable();
    assert_eq!(owners, [(SCHULDHULP, 2), (WIJKTEAM, 1)], "{out}");
    for (owner, household) in [(WIJKTEAM, 1), (SCHULDHULP, 2)] {
        let (code, out) = case_command(&env, &["show", "--owner", owner, id]);
        assert_eq!(code, 0, "{out}");
        let case = only_case(&out);
        assert_eq!(case["owner"], owner, "{out}");
        assert_eq!(case["household"], household, "{out}");
    }
    let (code, out) = case_command(&env, &["show", "--owner", "jeugdhulp", id]);
    assert_eq!(code, 1, "{out}");
    let (code, out) = case_command(&env, &["list"]);
    assert_eq!(code, 0, "{out}");
    let listed = first_json(&out)
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["case_id"] == id)
        .count();
    assert_eq!(listed, 2, "{out}");

    // Closing without saying whose: refused, nothing closed.
    let policies = env.root().join("policies");
    let schemas = env.root().join("schemas");
    let close = |owner: Option<&str>| {
        let mut args = vec![
            "close",
            "--policies",
            policies.to_str().unwrap(),
            "--schemas",
            schemas.to_str().unwrap(),
        ];
        if let Some(owner) = owner {
            args.extend(["--owner", owner]);
        }
        args.push(id);
        case_command(&env, &args)
    };
    let (code, out) = close(None);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("--owner"), "{out}");
    for owner in [WIJKTEAM, SCHULDHULP] {
        let case = get_case(&env, owner, id).await;
        assert_status(&case, StatusCode::OK);
        assert_eq!(case.json()["status"], "open", "{owner}");
    }

    // The district team's: closed, and the gateway follows; Schuldhulp Utrecht's stays open.
    let (code, out) = close(Some(WIJKTEAM));
    assert_eq!(code, 0, "{out}");
    let income_path = income(BSN);
    let refused = answer_within(
        Duration::from_secs(1),
        || exchange(&env, WIJKTEAM, &income_path, "wams-onderzoek", id, BSN),
        |r| r.status != StatusCode::OK,
    )
    .await;
    assert_problem(&refused, StatusCode::FORBIDDEN, "case-closed");
    let theirs = get_case(&env, SCHULDHULP, id).await;
    assert_status(&theirs, StatusCode::OK);
    assert_eq!(theirs.json()["status"], "open");
    let claims = format!("/cjib/v1/personen/{BSN}/vorderingen");
    assert_status(
        &exchange(&env, SCHULDHULP, &claims, "schuldhulpverlening", id, BSN).await,
        StatusCode::OK,
    );
    let (code, out) = case_command(&env, &["show", "--owner", WIJKTEAM, id]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(only_case(&out)["status"], "closed");
    let (code, out) = case_command(&env, &["show", "--owner", SCHULDHULP, id]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(only_case(&out)["status"], "open");

    // Still two cases with that id (a closed case is kept until its purge).
    let (code, out) = close(None);
    assert_eq!(code, 1, "{out}");
    let (code, out) = close(Some(SCHULDHULP));
    assert_eq!(code, 0, "{out}");
    let closed = answer_within(
        Duration::from_secs(1),
        || get_case(&env, SCHULDHULP, id),
        |r| r.json()["status"] == "closed",
    )
    .await;
    assert_eq!(closed.json()["status"], "closed", "{}", text(&closed));
}

// ---------------------------------------------------------------------------------------------
// 6. The art. 15 report
// ---------------------------------------------------------------------------------------------

/// The line of `report` about `case_id` in its case section.
fn case_line<'r>(report: &'r str, case_id: &str) -> &'r str {
    report
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{case_id} (")))
        .unwrap_or_else(|| panic!("{case_id} is not named in the report:\n{report}"))
}

/// The comma-separated list after `label` (up to the next `;`) in a case line.
fn listed_after<'l>(line: &'l str, label: &str) -> Vec<&'l str> {
    let rest = line
        .split_once(label)
        .unwrap_or_else(|| panic!("no '{label}' in: {line}"))
        .1;
    let list = rest.split(';').next().unwrap().trim();
    let mut items: Vec<&str> = list.split(',').map(str::trim).collect();
    items.sort_unstable();
    items
}

async fn the_art15_report_names_the_persons_cases(backend: Backend) {
    let env = Env::start(backend).await;
    // A case of someone else, which the report must not name.
    create_case(
        &env,
        WIJKTEAM,
        "casus-test-neighbour",
        &case_body(&["wams-onderzoek"], &[HOUSEHOLD_BSNS[0]], &["uwv"], &[]),
    )
    .await;
    assert_status(
        &exchange(
            &env,
            WIJKTEAM,
            &income(BSN),
            "wams-onderzoek",
            "casus-2026-0001",
            BSN,
        )
        .await,
        StatusCode::OK,
    );
    let refused = exchange(
        &env,
        WIJKTEAM,
        &youth_care(BSN),
        "wams-coordinatie",
        "casus-2026-0003",
        BSN,
    )
    .await;
    assert_problem(&refused, StatusCode::FORBIDDEN, "outside-case-scope");

    let (code, report) = match backend {
        // The audit directory, with the store and household key beside it.
        Backend::Sqlite => run_doelpoort([
            "audit",
            "query",
            env.audit_dir().to_str().unwrap(),
            "--subject",
            BSN,
        ]),
        // The replica's log moved into the central store, asked there with the register.
        Backend::Postgres => {
            let store = env.store_arg();
            let (code, out) = run_doelpoort([
                "audit",
                "import",
                env.audit_dir().to_str().unwrap(),
                "--store",
                &store,
            ]);
            assert_eq!(code, 0, "{out}");
            run_doelpoort([
                "audit",
                "query",
                "--store",
                &store,
                "--subject",
                BSN,
                "--household-key",
                env.household_key().to_str().unwrap(),
            ])
        }
    };
    assert_eq!(code, 0, "{report}");
    // The exchanges: the one served and the one refused.
    assert!(report.contains("wijkteam-rotterdam"), "{report}");
    assert!(report.contains("outside-case-scope"), "{report}");

    let line = case_line(&report, "casus-2026-0001");
    assert!(line.contains("(open), owner wijkteam-rotterdam"), "{line}");
    assert_eq!(
        listed_after(line, "agreed partners "),
        ["jeugdhulp", "svb", "uwv"],
        "{line}"
    );
    assert_eq!(listed_after(line, "objections "), ["none"], "{line}");
    // The demo's casus-2026-0003 agrees only UWV (youth care was not agreed, not objected to:
    // an objection is the person's, and casus-2026-0001 agrees youth care).
    let line = case_line(&report, "casus-2026-0003");
    assert_eq!(listed_after(line, "agreed partners "), ["uwv"], "{line}");
    assert_eq!(listed_after(line, "objections "), ["none"], "{line}");
    let line = case_line(&report, "shv-2026-0042");
    assert!(line.contains("owner schuldhulp-utrecht"), "{line}");
    assert_eq!(
        listed_after(line, "agreed partners "),
        ["cjib", "uwv"],
        "{line}"
    );
    let line = case_line(&report, "casus-2026-0002");
    assert!(line.contains("(closed)"), "{line}");
    assert!(
        !report.contains("casus-test-neighbour"),
        "another household's case:\n{report}"
    );
}

// ---------------------------------------------------------------------------------------------
// The second outside pass (2026-12-05)
// ---------------------------------------------------------------------------------------------

async fn the_second_outside_pass_stays_mended(backend: Backend) {
    let env = Env::start(backend).await;
    let id = "casus-test-second-pass";
    create_case(
        &env,
        WIJKTEAM,
        id,
        &case_body(&["wams-coordinatie"], &[BSN], &["uwv"], &["jeugdhulp"]),
    )
    .await;
    let path = case_path(id);

    // Every change is attributed: an anonymous close changes nothing.
    let anonymous = register_request(
        &env,
        WIJKTEAM,
        Method::POST,
        &format!("{path}/close"),
        None,
        &[],
    )
    .await;
    assert_problem(&anonymous, StatusCode::BAD_REQUEST, "context-invalid");
    assert_eq!(get_case(&env, WIJKTEAM, id).await.json()["status"], "open");

    // A reason with digits of another script (a BSN written fullwidth) is refused and kept
    // nowhere.
    let fullwidth = "zorgen om ９９９９９００１９ in dit gezin";
    let token = override_token_as(
        &env,
        WIJKTEAM,
        id,
        TWO_APPROVERS,
        OVERRIDE_OPERATION,
        Some(approved_override("jeugdhulp", fullwidth)),
    );
    let body = json!({"partner": "jeugdhulp", "reason": fullwidth, "approvals": token});
    let refused = register_request(
        &env,
        WIJKTEAM,
        Method::POST,
        &format!("{path}/overrides"),
        Some(Bytes::from(body.to_string())),
        &[("doelbinding-actor", ACTOR)],
    )
    .await;
    assert_problem(&refused, StatusCode::BAD_REQUEST, "request-invalid");
    assert!(!text(&refused).contains('９'), "{}", text(&refused));

    // The caller's own token names the actor: an approvals token for another actor is not
    // theirs to use.
    let reason = "ernstige zorgen over de veiligheid van de kinderen";
    let approvals = override_token_as(
        &env,
        WIJKTEAM,
        id,
        TWO_APPROVERS,
        OVERRIDE_OPERATION,
        Some(approved_override("jeugdhulp", reason)),
    );
    let bearer = actor_token(&env, WIJKTEAM, "teamleider-0007", Some(id));
    let body = json!({"partner": "jeugdhulp", "reason": reason, "approvals": approvals});
    let mismatch = register_request(
        &env,
        WIJKTEAM,
        Method::POST,
        &format!("{path}/overrides"),
        Some(Bytes::from(body.to_string())),
        &[("authorization", &format!("Bearer {bearer}"))],
    )
    .await;
    assert_problem(&mismatch, StatusCode::FORBIDDEN, "token-mismatch");

    // One override per partner: its motivation stays as approved.
    let first = post_override(
        &env,
        id,
        "jeugdhulp",
        &override_token_as(
            &env,
            WIJKTEAM,
            id,
            TWO_APPROVERS,
            OVERRIDE_OPERATION,
            Some(approved_override("jeugdhulp", REASON)),
        ),
    )
    .await;
    assert_status(&first, StatusCode::CREATED);
    let second = post_override(
        &env,
        id,
        "jeugdhulp",
        &override_token_as(
            &env,
            WIJKTEAM,
            id,
            TWO_APPROVERS,
            OVERRIDE_OPERATION,
            Some(approved_override("jeugdhulp", REASON)),
        ),
    )
    .await;
    assert_problem(&second, StatusCode::BAD_REQUEST, "request-invalid");
    let overrides = get_case(&env, WIJKTEAM, id).await.json()["overrides"].clone();
    assert_eq!(overrides.as_array().map(Vec::len), Some(1), "{overrides}");

    // The client's objection is the person's: a second case for the same person that does
    // not carry it is refused (it is withdrawn where it is recorded).
    let other = put_case(
        &env,
        WIJKTEAM,
        "casus-test-second-case",
        &case_body(&["wams-coordinatie"], &[BSN], &["uwv", "jeugdhulp"], &[]),
    )
    .await;
    assert_problem(&other, StatusCode::BAD_REQUEST, "request-invalid");
    assert!(!text(&other).contains(BSN), "{}", text(&other));

    // The override was approved for the household as it was: a new member makes it lapse,
    // and the record says so.
    let grown = put_case(
        &env,
        WIJKTEAM,
        id,
        &case_body(
            &["wams-coordinatie"],
            &[BSN, HOUSEHOLD_BSNS[0]],
            &["uwv"],
            &["jeugdhulp"],
        ),
    )
    .await;
    assert_status(&grown, StatusCode::OK);
    let change = one_record(&env, &grown)["attributes"]["doelpoort.case_change"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(change.contains("overrides_lapsed=jeugdhulp"), "{change}");
    let overrides = get_case(&env, WIJKTEAM, id).await.json()["overrides"].clone();
    assert_eq!(overrides, json!([]), "{overrides}");
    let youth = exchange(
        &env,
        WIJKTEAM,
        &youth_care(BSN),
        "wams-coordinatie",
        id,
        BSN,
    )
    .await;
    assert_problem(&youth, StatusCode::FORBIDDEN, "outside-case-scope");
}
