//! Unit tests of [`decide`]: one test per rule of the decision, each against a small policy
//! set compiled from YAML written for these tests (one partner, `cjib`, with a GET naming the
//! person in the path and a POST naming them in the body).
//!
//! Every test starts from a request its grant permits (checked in its own test) and changes
//! one or two things, so a refusal can only come from the rule under test. A denial is
//! checked for its code *and* for what the decision had established before it refused
//! (operation, purpose, grant): those facts go into the audit record.

use super::*;
use crate::context::DataSubject;
use crate::minimise::Limits;
use http::Method;
use serde_json::{json, Value};
use std::sync::OnceLock;
use time::macros::date;

/// The day every request is decided on, unless a test says otherwise.
const TODAY: Date = date!(2026 - 11 - 24);
/// Test BSNs (9999xxxxx range) that pass the elfproef.
const SUBJECT: &str = "999990019";
const OTHER: &str = "999990020";
/// Nine digits that fail the elfproef.
const NOT_A_BSN: &str = "999990010";

const VORDERINGEN: &str = "cjib/vorderingen";
const OPSCHORTING: &str = "cjib/opschorting";
const LOOKUP_GRANT: &str = "wijkteam-vorderingen-onderzoek";
const TIME_OUT_GRANT: &str = "schuldhulp-time-out";

const CATALOG: &str = r#"
consumers:
  - id: wijkteam
    name: Wijkteam (test)
  - id: schuldhulp
    name: Schuldhulpverlening (test)
  - id: buitenstaander
    name: Holds no grant at all (test)

purposes:
  - id: onderzoek
    title: Onderzoek
    legal_basis: {gdpr: 6(1)(e), law: Wmo 2015}
    processing_activity: urn:test:onderzoek
  - id: coordinatie
    title: Coordinatie
    legal_basis: {gdpr: 6(1)(e), law: Wmo 2015}
    processing_activity: urn:test:coordinatie
  - id: time-out
    title: Time-out
    legal_basis: {gdpr: 6(1)(e), law: Wgs}
    processing_activity: urn:test:time-out
  - id: casusoverleg
    title: Casusoverleg, granted to nobody
    legal_basis: {gdpr: 6(1)(e), law: Wmo 2015}
    processing_activity: urn:test:casusoverleg
  - id: handhaving
    title: Handhaving
    refused: geen grondslag voor handhaving

partners:
  - id: cjib
    operations:
      - id: vorderingen
        method: GET
        path: /v1/personen/{bsn}/vorderingen
        subject: path bsn
      - id: opschorting
        method: POST
        path: /v1/opschortingen
        subject: body bsn
"#;

const GRANTS: &str = r#"
grants:
  - id: wijkteam-vorderingen-onderzoek
    consumers: [wijkteam]
    operation: cjib/vorderingen
    purpose: onderzoek
    requires: [case_id, actor, involved_partner]
    query: [peildatum, status]
    valid_from: 2026-01-01
    valid_until: 2027-12-31
    rationale: the lookup every context test starts from

  # Two grants for one triple, one after the other.
  - id: wijkteam-vorderingen-coordinatie-2025
    consumers: [wijkteam]
    operation: cjib/vorderingen
    purpose: coordinatie
    valid_from: 2025-01-01
    valid_until: 2025-12-31
    rationale: the earlier of two consecutive grants
  - id: wijkteam-vorderingen-coordinatie-2026
    consumers: [wijkteam]
    operation: cjib/vorderingen
    purpose: coordinatie
    valid_from: 2026-01-01
    valid_until: 2026-12-31
    rationale: the later of two consecutive grants

  - id: schuldhulp-vorderingen-verlopen
    consumers: [schuldhulp]
    operation: cjib/vorderingen
    purpose: coordinatie
    requires: [case_id]
    valid_from: 2026-01-01
    valid_until: 2026-06-30
    rationale: expired before TODAY
  - id: schuldhulp-vorderingen-vanaf-2027
    consumers: [schuldhulp]
    operation: cjib/vorderingen
    purpose: onderzoek
    requires: [case_id]
    valid_from: 2027-01-01
    rationale: not yet valid on TODAY

  # Every condition test kind, and four eyes with a role. The actor is deliberately not
  # required, so that a request without one reaches the four-eyes check.
  - id: schuldhulp-time-out
    consumers: [schuldhulp]
    operation: cjib/opschorting
    purpose: time-out
    requires: [case_id, involved_partner]
    four_eyes:
      role: teamleider
    conditions:
      - field: einddatum
        at_most: 4 months ahead
        message: ends at most 4 months ahead
      - field: einddatum
        at_least: today
        message: does not end in the past
      - field: reden
        one_of: [schuldenregeling, crisis]
        message: has a listed reason
      - field: vorderingen[*].categorie
        not_one_of: [strafrechtelijk]
        message: touches no criminal-court claim
      - field: vorderingen[*].schuldenaar
        equals_subject: true
        message: touches only claims on the subject
    request_fields: [bsn, einddatum, reden, vorderingen]
    valid_from: 2026-01-01
    valid_until: 2027-12-31
    rationale: the time-out every condition and four-eyes test starts from

  - id: wijkteam-time-out
    consumers: [wijkteam]
    operation: cjib/opschorting
    purpose: time-out
    requires: [actor]
    four_eyes: {}
    request_fields: [bsn]
    rationale: four eyes without a role
"#;

/// The policy set, compiled once for all tests.
fn policies() -> &'static PolicySet {
    static SET: OnceLock<PolicySet> = OnceLock::new();
    SET.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let (policies, schemas) = (dir.path().join("policies"), dir.path().join("schemas"));
        std::fs::create_dir_all(&schemas).expect("schema dir");
        std::fs::create_dir_all(&policies).expect("policy dir");
        std::fs::write(policies.join("catalog.yaml"), CATALOG).expect("write catalog");
        std::fs::write(policies.join("grants.yaml"), GRANTS).expect("write grants");
        let (set, diagnostics) = crate::policy::compile::load(&policies, &schemas, TODAY);
        let shown: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        set.unwrap_or_else(|| panic!("the test policies do not compile:\n{}", shown.join("\n")))
    })
}

/// One request to decide, owning what [`DecisionRequest`] borrows.
struct Ask {
    consumer: &'static str,
    partner: &'static str,
    method: Method,
    path: String,
    context: RequestContext,
    body: Vec<u8>,
    approvals: Vec<Approval>,
    today: Date,
}

impl Ask {
    fn decide(&self) -> Result<Permit, Denial> {
        let body = RequestBody::new(&self.body, &Limits::default());
        decide(
            policies(),
            &DecisionRequest {
                consumer: self.consumer,
                partner: self.partner,
                method: &self.method,
                path: &self.path,
                context: &self.context,
                body: &body,
                approvals: &self.approvals,
                today: self.today,
            },
        )
    }
}

fn subject(bsn: &str) -> Option<DataSubject> {
    Some(DataSubject::Bsn(Bsn::parse(bsn).expect("a valid test BSN")))
}

fn path_about(bsn: &str) -> String {
    format!("/v1/personen/{bsn}/vorderingen")
}

fn approval(by: &str, role: Option<&str>) -> Approval {
    Approval {
        by: by.to_string(),
        role: role.map(str::to_string),
    }
}

/// A GET that [`LOOKUP_GRANT`] permits: every context it requires, about [`SUBJECT`].
fn lookup() -> Ask {
    Ask {
        consumer: "wijkteam",
        partner: "cjib",
        method: Method::GET,
        path: path_about(SUBJECT),
        context: RequestContext {
            purpose: Some("onderzoek".into()),
            case_id: Some("casus-2026-0001".into()),
            data_subject: subject(SUBJECT),
            actor: Some("medewerker-0042".into()),
            case_partners: vec!["uwv".into(), "cjib".into()],
        },
        body: Vec::new(),
        approvals: Vec::new(),
        today: TODAY,
    }
}

/// A body meeting every condition of [`TIME_OUT_GRANT`] (both date limits exactly).
fn time_out_body() -> Value {
    json!({
        "bsn": SUBJECT,
        "einddatum": "2027-03-24",
        "reden": "schuldenregeling",
        "vorderingen": [
            {"categorie": "boete", "schuldenaar": SUBJECT},
            {"categorie": "verkeersboete", "schuldenaar": SUBJECT},
            {"categorie": "schadevergoeding", "schuldenaar": SUBJECT}
        ]
    })
}

/// A POST that [`TIME_OUT_GRANT`] permits, its body changed by `edit`.
fn time_out_with(edit: impl FnOnce(&mut Value)) -> Ask {
    let mut body = time_out_body();
    edit(&mut body);
    Ask {
        consumer: "schuldhulp",
        partner: "cjib",
        method: Method::POST,
        path: "/v1/opschortingen".into(),
        context: RequestContext {
            purpose: Some("time-out".into()),
            case_id: Some("casus-2026-0002".into()),
            data_subject: subject(SUBJECT),
            actor: Some("medewerker-0042".into()),
            case_partners: vec!["cjib".into()],
        },
        body: serde_json::to_vec(&body).expect("serialise"),
        approvals: vec![approval("teamleider-0007", Some("teamleider"))],
        today: TODAY,
    }
}

fn time_out() -> Ask {
    time_out_with(|_| {})
}

fn remove(body: &mut Value, field: &str) {
    body.as_object_mut().expect("an object").remove(field);
}

/// What a denial had established: (operation key, purpose id, grant id).
type Reached<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>);

fn reached(denial: &Denial) -> Reached<'_> {
    (
        denial.operation.as_deref().map(|o| o.key.as_str()),
        denial.purpose.as_deref().map(|p| p.id.as_str()),
        denial.grant.as_deref().map(|g| g.id.as_str()),
    )
}

/// Everything established: the refusal came from a check after the grant was found.
const FULL_LOOKUP: Reached<'static> = (Some(VORDERINGEN), Some("onderzoek"), Some(LOOKUP_GRANT));
const FULL_TIME_OUT: Reached<'static> = (Some(OPSCHORTING), Some("time-out"), Some(TIME_OUT_GRANT));

#[track_caller]
fn permits(ask: &Ask) -> Permit {
    match ask.decide() {
        Ok(permit) => permit,
        Err(denial) => panic!("expected a permit, got {}", denial.problem),
    }
}

#[track_caller]
fn refuses(ask: &Ask, code: ProblemCode, expected: Reached<'_>) -> Denial {
    let denial = match ask.decide() {
        Ok(permit) => panic!("expected {code}, but grant '{}' permits", permit.grant().id),
        Err(denial) => denial,
    };
    assert_eq!(denial.problem.code, code, "{}", denial.problem.detail);
    assert_eq!(reached(&denial), expected, "what the denial carries");
    denial
}

/// A time-out refused by the condition with this message, everything else established.
#[track_caller]
fn fails_condition(ask: &Ask, message: &str) {
    let denial = refuses(ask, ProblemCode::ConditionFailed, FULL_TIME_OUT);
    let expected = format!("condition of grant '{TIME_OUT_GRANT}' failed: {message}");
    assert_eq!(denial.problem.detail, expected);
}

// The starting points.

#[test]
fn a_lookup_with_everything_its_grant_requires_is_permitted() {
    let permit = permits(&lookup());
    assert_eq!(permit.grant().id, LOOKUP_GRANT);
    assert_eq!(permit.operation().key, VORDERINGEN);
    assert_eq!(permit.purpose().id, "onderzoek");
}

#[test]
fn a_time_out_meeting_every_condition_with_a_teamleaders_approval_is_permitted() {
    let permit = permits(&time_out());
    assert_eq!(permit.grant().id, TIME_OUT_GRANT);
    assert_eq!(permit.operation().key, OPSCHORTING);
    assert_eq!(permit.purpose().id, "time-out");
}

// 1. The operation.

#[test]
fn an_operation_the_policy_does_not_describe_is_an_unknown_route() {
    let mut unknown_path = lookup();
    unknown_path.path = format!("/v1/personen/{SUBJECT}/adres");
    let mut unknown_partner = lookup();
    unknown_partner.partner = "uwv";
    for ask in [unknown_path, unknown_partner] {
        refuses(&ask, ProblemCode::UnknownRoute, (None, None, None));
    }
}

#[test]
fn a_described_path_asked_with_another_method_is_method_not_allowed_with_allow() {
    for method in [Method::DELETE, Method::POST, Method::PUT] {
        let mut ask = lookup();
        ask.method = method.clone();
        let denial = refuses(&ask, ProblemCode::MethodNotAllowed, (None, None, None));
        assert_eq!(
            denial.problem.allow.as_deref(),
            Some("GET, HEAD"),
            "{method}"
        );
    }
}

#[test]
fn a_head_request_is_decided_as_the_get_it_mirrors() {
    let mut ask = lookup();
    ask.method = Method::HEAD;
    assert_eq!(permits(&ask).operation().key, VORDERINGEN);
}

// 2. The purpose.

#[test]
fn a_request_without_a_purpose_is_purpose_missing() {
    let mut ask = lookup();
    ask.context.purpose = None;
    refuses(
        &ask,
        ProblemCode::PurposeMissing,
        (Some(VORDERINGEN), None, None),
    );
}

#[test]
fn a_purpose_outside_the_catalog_is_purpose_unknown() {
    let mut ask = lookup();
    ask.context.purpose = Some("nieuwsgierigheid".into());
    refuses(
        &ask,
        ProblemCode::PurposeUnknown,
        (Some(VORDERINGEN), None, None),
    );
}

#[test]
fn a_refused_purpose_is_not_granted_with_its_reason() {
    let mut ask = lookup();
    ask.consumer = "buitenstaander";
    ask.context.purpose = Some("handhaving".into());
    let denial = refuses(
        &ask,
        ProblemCode::NotGranted,
        (Some(VORDERINGEN), Some("handhaving"), None),
    );
    assert!(
        denial.problem.detail.contains("never served")
            && denial
                .problem
                .detail
                .contains("geen grondslag voor handhaving"),
        "{}",
        denial.problem.detail
    );
}

// 3. The grant and its validity.

#[test]
fn without_a_grant_for_consumer_operation_and_purpose_it_is_not_granted() {
    // A consumer with no grants; a purpose nobody holds; a purpose this consumer holds for
    // another operation only.
    let mut no_grants = lookup();
    no_grants.consumer = "buitenstaander";
    let mut ungranted_purpose = lookup();
    ungranted_purpose.context.purpose = Some("casusoverleg".into());
    let mut other_operation = lookup();
    other_operation.consumer = "schuldhulp";
    other_operation.context.purpose = Some("time-out".into());
    for ask in [no_grants, ungranted_purpose, other_operation] {
        let purpose = ask.context.purpose.clone();
        let denial = refuses(
            &ask,
            ProblemCode::NotGranted,
            (Some(VORDERINGEN), purpose.as_deref(), None),
        );
        assert!(denial.problem.detail.contains("holds no grant"));
    }
}

#[test]
fn an_expired_grant_is_grant_expired_and_named() {
    let mut ask = lookup();
    ask.consumer = "schuldhulp";
    ask.context.purpose = Some("coordinatie".into());
    let denial = refuses(
        &ask,
        ProblemCode::GrantExpired,
        (
            Some(VORDERINGEN),
            Some("coordinatie"),
            Some("schuldhulp-vorderingen-verlopen"),
        ),
    );
    assert!(denial
        .problem
        .detail
        .contains("'schuldhulp-vorderingen-verlopen'"));
    // Its last day was still valid.
    ask.today = date!(2026 - 06 - 30);
    assert_eq!(permits(&ask).grant().id, "schuldhulp-vorderingen-verlopen");
}

#[test]
fn a_grant_not_yet_valid_is_grant_expired_and_named() {
    let mut ask = lookup();
    ask.consumer = "schuldhulp";
    let denial = refuses(
        &ask,
        ProblemCode::GrantExpired,
        (
            Some(VORDERINGEN),
            Some("onderzoek"),
            Some("schuldhulp-vorderingen-vanaf-2027"),
        ),
    );
    assert!(denial
        .problem
        .detail
        .contains("'schuldhulp-vorderingen-vanaf-2027'"));
    // Its first day is valid.
    ask.today = date!(2027 - 01 - 01);
    assert_eq!(
        permits(&ask).grant().id,
        "schuldhulp-vorderingen-vanaf-2027"
    );
}

#[test]
fn when_a_grant_has_expired_a_later_valid_grant_for_the_same_triple_is_used() {
    let mut ask = lookup();
    ask.context.purpose = Some("coordinatie".into());
    for (today, grant) in [
        (
            date!(2025 - 12 - 31),
            "wijkteam-vorderingen-coordinatie-2025",
        ),
        (
            date!(2026 - 01 - 01),
            "wijkteam-vorderingen-coordinatie-2026",
        ),
        (TODAY, "wijkteam-vorderingen-coordinatie-2026"),
    ] {
        ask.today = today;
        assert_eq!(permits(&ask).grant().id, grant, "on {today}");
    }
}

// 4. The context the grant requires.

#[test]
fn a_grant_requiring_a_case_id_refuses_a_request_without_one() {
    let mut ask = lookup();
    ask.context.case_id = None;
    let denial = refuses(&ask, ProblemCode::ContextInvalid, FULL_LOOKUP);
    assert!(denial.problem.detail.contains("Doelbinding-Case-Id"));
}

#[test]
fn a_grant_requiring_an_actor_refuses_a_request_without_one() {
    let mut ask = lookup();
    ask.context.actor = None;
    let denial = refuses(&ask, ProblemCode::ContextInvalid, FULL_LOOKUP);
    assert!(denial.problem.detail.contains("Doelbinding-Actor"));
}

#[test]
fn a_partner_not_involved_in_the_case_fails_the_involved_partner_requirement() {
    for partners in [vec![], vec!["uwv".to_string(), "svb".to_string()]] {
        let mut ask = lookup();
        ask.context.case_partners = partners;
        let denial = refuses(&ask, ProblemCode::ConditionFailed, FULL_LOOKUP);
        assert!(denial.problem.detail.contains("involved"));
    }
}

// 5. The data subject ("no fishing").

#[test]
fn an_operation_about_one_person_refuses_a_request_that_declares_nobody() {
    let mut ask = lookup();
    ask.context.data_subject = None;
    let denial = refuses(&ask, ProblemCode::ContextInvalid, FULL_LOOKUP);
    assert!(denial.problem.detail.contains("Doelbinding-Data-Subject"));
}

#[test]
fn a_path_about_another_person_than_the_declared_subject_is_a_subject_mismatch() {
    let mut ask = lookup();
    ask.path = path_about(OTHER);
    let denial = refuses(&ask, ProblemCode::SubjectMismatch, FULL_LOOKUP);
    assert!(
        !denial.problem.detail.contains(OTHER),
        "no BSN in the detail"
    );
    assert!(
        !denial.problem.detail.contains(SUBJECT),
        "no BSN in the detail"
    );
}

#[test]
fn a_path_segment_that_is_not_a_valid_bsn_is_a_subject_mismatch() {
    for segment in [NOT_A_BSN, "zoek", "99999001", "0999990019"] {
        let mut ask = lookup();
        ask.path = path_about(segment);
        refuses(&ask, ProblemCode::SubjectMismatch, FULL_LOOKUP);
    }
}

#[test]
fn a_body_about_another_person_than_the_declared_subject_is_a_subject_mismatch() {
    let ask = time_out_with(|b| b["bsn"] = json!(OTHER));
    let denial = refuses(&ask, ProblemCode::SubjectMismatch, FULL_TIME_OUT);
    assert!(
        !denial.problem.detail.contains(OTHER),
        "no BSN in the detail"
    );
}

#[test]
fn a_body_subject_that_is_not_a_valid_bsn_is_a_subject_mismatch() {
    let failing_elfproef = time_out_with(|b| b["bsn"] = json!(NOT_A_BSN));
    let as_a_number = time_out_with(|b| b["bsn"] = json!(999_990_019));
    let padded = time_out_with(|b| b["bsn"] = json!(format!(" {SUBJECT}")));
    let missing = time_out_with(|b| remove(b, "bsn"));
    for ask in [failing_elfproef, as_a_number, padded, missing] {
        refuses(&ask, ProblemCode::SubjectMismatch, FULL_TIME_OUT);
    }
}

#[test]
fn a_body_that_cannot_be_read_strictly_is_context_invalid() {
    let duplicate = format!(r#"{{"bsn":"{OTHER}","bsn":"{SUBJECT}"}}"#);
    for bytes in [duplicate.as_str(), "", "{\"bsn\":", "[]  x"] {
        let mut ask = time_out();
        ask.body = bytes.as_bytes().to_vec();
        let denial = refuses(&ask, ProblemCode::ContextInvalid, FULL_TIME_OUT);
        assert!(
            denial.problem.detail.contains("cannot be checked"),
            "{bytes:?}"
        );
    }
}

mod conditions_and_order;
