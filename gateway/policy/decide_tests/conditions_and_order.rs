//! The decision's later checks: conditions on the body, four eyes, the order of checks and
//! the permit's query allow-list.

use super::*;

// 6. Conditions on the body.

#[test]
fn at_most_holds_up_to_its_limit_and_fails_after_it() {
    // The starting body ends exactly 4 months ahead (2027-03-24).
    permits(&time_out_with(|b| b["einddatum"] = json!("2027-01-15")));
    let ask = time_out_with(|b| b["einddatum"] = json!("2027-03-25"));
    fails_condition(&ask, "ends at most 4 months ahead");
}

#[test]
fn a_relative_date_limit_is_counted_from_the_day_of_the_request() {
    // 31 October + 4 months = 28 February (the month's last day).
    let mut ask = time_out_with(|b| b["einddatum"] = json!("2027-02-28"));
    ask.today = date!(2026 - 10 - 31);
    permits(&ask);
    let mut ask = time_out_with(|b| b["einddatum"] = json!("2027-03-01"));
    ask.today = date!(2026 - 10 - 31);
    fails_condition(&ask, "ends at most 4 months ahead");
}

#[test]
fn at_least_holds_from_its_limit_on_and_fails_before_it() {
    permits(&time_out_with(|b| b["einddatum"] = json!("2026-11-24")));
    let ask = time_out_with(|b| b["einddatum"] = json!("2026-11-23"));
    fails_condition(&ask, "does not end in the past");
}

#[test]
fn a_date_condition_fails_on_a_value_that_is_not_a_date() {
    for value in [
        json!("binnenkort"),
        json!("24-03-2027"),
        json!("2027-3-24"),
        json!(20270324),
        json!(null),
    ] {
        let ask = time_out_with(|b| b["einddatum"] = value);
        fails_condition(&ask, "ends at most 4 months ahead");
    }
}

#[test]
fn one_of_holds_for_a_listed_value_and_fails_for_any_other() {
    permits(&time_out_with(|b| b["reden"] = json!("crisis")));
    for value in [
        json!("verhuizing"),
        json!("Crisis"),
        json!(["crisis"]),
        json!(1),
    ] {
        let ask = time_out_with(|b| b["reden"] = value);
        fails_condition(&ask, "has a listed reason");
    }
}

#[test]
fn not_one_of_holds_for_unlisted_values_and_fails_for_a_listed_one() {
    permits(&time_out_with(|b| {
        b["vorderingen"] = json!([{"categorie": "Strafrechtelijke boete", "schuldenaar": SUBJECT}]);
    }));
    for value in [json!("strafrechtelijk"), json!(7)] {
        let ask = time_out_with(|b| {
            b["vorderingen"] = json!([{"categorie": value, "schuldenaar": SUBJECT}]);
        });
        fails_condition(&ask, "touches no criminal-court claim");
    }
}

#[test]
fn equals_subject_holds_for_the_declared_subject_and_fails_for_anyone_else() {
    permits(&time_out_with(|b| {
        b["vorderingen"] = json!([{"categorie": "boete", "schuldenaar": SUBJECT}]);
    }));
    for value in [json!(OTHER), json!(NOT_A_BSN), json!(999_990_019)] {
        let ask = time_out_with(|b| {
            b["vorderingen"] = json!([{"categorie": "boete", "schuldenaar": value}]);
        });
        fails_condition(&ask, "touches only claims on the subject");
    }
}

#[test]
fn a_condition_on_a_missing_field_fails() {
    fails_condition(
        &time_out_with(|b| remove(b, "einddatum")),
        "ends at most 4 months ahead",
    );
    fails_condition(
        &time_out_with(|b| remove(b, "reden")),
        "has a listed reason",
    );
    // No claims at all: nothing to test, so the condition fails rather than holds.
    fails_condition(
        &time_out_with(|b| b["vorderingen"] = json!([])),
        "touches no criminal-court claim",
    );
    fails_condition(
        &time_out_with(|b| remove(b, "vorderingen")),
        "touches no criminal-court claim",
    );
}

#[test]
fn a_condition_on_an_array_field_must_hold_for_every_item() {
    // One criminal-court claim among three; the first and last ones are fine.
    let ask = time_out_with(|b| b["vorderingen"][1]["categorie"] = json!("strafrechtelijk"));
    fails_condition(&ask, "touches no criminal-court claim");
    // One claim on another person, in last place.
    let ask = time_out_with(|b| b["vorderingen"][2]["schuldenaar"] = json!(OTHER));
    fails_condition(&ask, "touches only claims on the subject");
}

#[test]
fn an_array_item_without_the_field_fails_the_condition() {
    // Found by these tests: an element lacking the field used to be skipped, so a claim without
    // a category passed "never criminal-court" as long as another claim had an allowed one.
    let ask = time_out_with(|b| {
        b["vorderingen"][1]
            .as_object_mut()
            .unwrap()
            .remove("categorie");
    });
    fails_condition(&ask, "touches no criminal-court claim");
    let ask = time_out_with(|b| {
        b["vorderingen"][2]
            .as_object_mut()
            .unwrap()
            .remove("schuldenaar");
    });
    fails_condition(&ask, "touches only claims on the subject");
}

// 7. Four eyes.

#[test]
fn four_eyes_cannot_be_established_without_a_known_actor() {
    let mut ask = time_out();
    ask.context.actor = None;
    let denial = refuses(&ask, ProblemCode::FourEyesRequired, FULL_TIME_OUT);
    assert!(denial.problem.detail.contains("'teamleider'"));
}

#[test]
fn an_approval_by_the_actor_himself_does_not_count() {
    for by in ["medewerker-0042", "MEDEWERKER-0042", "Medewerker-0042"] {
        let mut ask = time_out();
        ask.approvals = vec![approval(by, Some("teamleider"))];
        refuses(&ask, ProblemCode::FourEyesRequired, FULL_TIME_OUT);
    }
}

#[test]
fn an_approval_without_the_required_role_does_not_count() {
    for role in [Some("medewerker"), Some("Teamleider"), None] {
        let mut ask = time_out();
        ask.approvals = vec![approval("collega-0099", role)];
        refuses(&ask, ProblemCode::FourEyesRequired, FULL_TIME_OUT);
    }
    let mut no_approval = time_out();
    no_approval.approvals.clear();
    refuses(&no_approval, ProblemCode::FourEyesRequired, FULL_TIME_OUT);
}

#[test]
fn an_approval_by_a_colleague_with_the_required_role_is_enough() {
    let mut ask = time_out();
    ask.approvals = vec![
        approval("medewerker-0042", Some("teamleider")),
        approval("collega-0099", Some("medewerker")),
        approval("teamleider-0007", Some("teamleider")),
    ];
    assert_eq!(permits(&ask).grant().id, TIME_OUT_GRANT);
}

#[test]
fn without_a_role_any_colleague_but_not_the_actor_may_approve() {
    let mut ask = time_out_with(|b| *b = json!({"bsn": SUBJECT}));
    ask.consumer = "wijkteam";
    ask.approvals = vec![approval("collega-0099", None)];
    assert_eq!(permits(&ask).grant().id, "wijkteam-time-out");
    ask.approvals = vec![approval("Medewerker-0042", Some("teamleider"))];
    refuses(
        &ask,
        ProblemCode::FourEyesRequired,
        (
            Some(OPSCHORTING),
            Some("time-out"),
            Some("wijkteam-time-out"),
        ),
    );
}

// The fixed order: when two things are wrong, the earlier check decides the code.

#[test]
fn an_unknown_route_comes_before_a_missing_purpose() {
    let mut ask = lookup();
    ask.path = format!("/v1/personen/{SUBJECT}/adres");
    ask.context.purpose = None;
    refuses(&ask, ProblemCode::UnknownRoute, (None, None, None));
    // So does a method the path is not served with.
    let mut ask = lookup();
    ask.method = Method::PUT;
    ask.context.purpose = None;
    refuses(&ask, ProblemCode::MethodNotAllowed, (None, None, None));
}

#[test]
fn an_unknown_purpose_comes_before_a_missing_case_id() {
    let mut ask = lookup();
    ask.context.purpose = Some("nieuwsgierigheid".into());
    ask.context.case_id = None;
    refuses(
        &ask,
        ProblemCode::PurposeUnknown,
        (Some(VORDERINGEN), None, None),
    );
}

#[test]
fn an_invalid_grant_comes_before_missing_context_and_a_subject_mismatch() {
    let mut ask = lookup();
    ask.consumer = "schuldhulp";
    ask.context.case_id = None;
    ask.path = path_about(OTHER);
    refuses(
        &ask,
        ProblemCode::GrantExpired,
        (
            Some(VORDERINGEN),
            Some("onderzoek"),
            Some("schuldhulp-vorderingen-vanaf-2027"),
        ),
    );
}

#[test]
fn missing_context_comes_before_a_subject_mismatch() {
    let mut ask = lookup();
    ask.context.actor = None;
    ask.path = path_about(OTHER);
    refuses(&ask, ProblemCode::ContextInvalid, FULL_LOOKUP);
}

#[test]
fn an_uninvolved_partner_comes_before_a_subject_mismatch() {
    let mut ask = lookup();
    ask.context.case_partners.clear();
    ask.path = path_about(OTHER);
    let denial = refuses(&ask, ProblemCode::ConditionFailed, FULL_LOOKUP);
    assert!(denial.problem.detail.contains("involved"));
}

#[test]
fn a_subject_mismatch_comes_before_a_failed_condition() {
    let ask = time_out_with(|b| {
        b["bsn"] = json!(OTHER);
        b["reden"] = json!("verhuizing");
    });
    refuses(&ask, ProblemCode::SubjectMismatch, FULL_TIME_OUT);
}

#[test]
fn a_failed_condition_comes_before_a_missing_approval() {
    let mut ask = time_out_with(|b| b["reden"] = json!("verhuizing"));
    ask.approvals.clear();
    fails_condition(&ask, "has a listed reason");
}

#[test]
fn conditions_are_tested_in_the_order_the_grant_lists_them() {
    let ask = time_out_with(|b| {
        b["einddatum"] = json!("2026-01-01");
        b["reden"] = json!("verhuizing");
    });
    fails_condition(&ask, "does not end in the past");
}

// What a permit lets through.

#[test]
fn a_permit_keeps_only_the_query_parameters_its_grant_lists_in_their_order() {
    let permit = permits(&lookup());
    assert_eq!(
        permit.allowed_query(Some(
            "status=open&bsn=999990020&peildatum=2026-11-01&status=betaald&statuscode=1&x"
        )),
        Some("status=open&peildatum=2026-11-01&status=betaald".to_string())
    );
    assert_eq!(
        permit.allowed_query(Some("peildatum&status=")),
        Some("peildatum&status=".to_string())
    );
    assert_eq!(permit.allowed_query(Some("bsn=999990020&sort=desc")), None);
    assert_eq!(permit.allowed_query(None), None);
}
