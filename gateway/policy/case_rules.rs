//! The case register's rules for an exchange (SPEC §8), as pure functions of the case: what
//! the gateway applies to its copy of the register ([`crate::cases::admission`]) and what
//! `policy test` simulates. The checks run in a fixed order, cheapest and least revealing
//! first, so the same request always gets the same code:
//!
//! 1. `case-unknown`: no such case, or one the caller does not own (not revealing it exists);
//! 2. `case-closed`;
//! 3. `not-in-household`: the data subject is not a member of the case's household;
//! 4. `outside-case-scope`: the partner is not agreed (or objected to) without an override,
//!    or the case was not registered for this purpose;
//! 5. `purpose-incompatible`: the case was served under a purpose this one must never be
//!    combined with (`incompatible_with`, either way round);
//! 6. `condition-failed`: the grant needs a prior time-out and the case's ledger has none.

use super::{Grant, PolicySet, Purpose};
use crate::problem::{Problem, ProblemCode};
use crate::store::cases::{CaseStatus, StoredCase as Case};

/// What the exchange brings to the check.
pub struct CaseRequest<'a> {
    pub consumer: &'a str,
    pub partner: &'a str,
    pub purpose: &'a Purpose,
    pub grant: &'a Grant,
    /// The day the exchange is decided on (a prior time-out must still be in force).
    pub today: time::Date,
}

/// The checks above against `case` (as registered; `None`: not registered). `member` is the
/// data subject's household member id (`None` for an operation about no one person). On
/// success: whether this is the case's first exchange under the purpose.
pub fn admit(
    case: Option<&Case>,
    member: Option<&str>,
    set: &PolicySet,
    request: &CaseRequest<'_>,
) -> Result<bool, Problem> {
    let case = case
        .filter(|c| c.owner == request.consumer && c.status != CaseStatus::Purged)
        .ok_or_else(|| {
            Problem::new(
                ProblemCode::CaseUnknown,
                "no case with this id is registered for this consumer in the case register",
            )
        })?;
    if case.status != CaseStatus::Open {
        return Err(Problem::new(
            ProblemCode::CaseClosed,
            "the case is closed: no exchange is served for it any more",
        ));
    }
    if let Some(member) = member {
        if case
            .household
            .binary_search_by(|m| m.as_str().cmp(member))
            .is_err()
        {
            return Err(Problem::new(
                ProblemCode::NotInHousehold,
                "the data subject is not a member of the household this case is about",
            ));
        }
    }
    if !in_scope(case, request.partner) {
        let objected = case.objections.iter().any(|p| p == request.partner);
        return Err(Problem::new(
            ProblemCode::OutsideCaseScope,
            if objected {
                format!(
                    "the client objected to involving partner '{}' in this case, and no motivated override is registered",
                    request.partner
                )
            } else {
                format!(
                    "partner '{}' is not among the partners the client agreed to involve in this case, and no motivated override is registered",
                    request.partner
                )
            },
        ));
    }
    if !case.purposes.iter().any(|p| p == &request.purpose.id) {
        return Err(Problem::new(
            ProblemCode::OutsideCaseScope,
            format!(
                "the case is not registered for purpose '{}'",
                request.purpose.id
            ),
        ));
    }
    if let Some(earlier) = incompatible_served(set, case, request.purpose) {
        return Err(incompatible(request.purpose, &earlier));
    }
    if request.grant.requires.prior_time_out && !time_out_in_force(case, request.today) {
        return Err(Problem::new(
            ProblemCode::ConditionFailed,
            format!(
                "grant '{}' follows a local time-out already in force: the case's time-out ledger holds none that runs today",
                request.grant.id
            ),
        ));
    }
    Ok(!case.served.iter().any(|p| p == &request.purpose.id))
}

/// A purpose the case was served under that must never be combined with `purpose`.
pub fn incompatible_served(set: &PolicySet, case: &Case, purpose: &Purpose) -> Option<String> {
    case.served
        .iter()
        .find(|served| {
            purpose.incompatible_with.iter().any(|p| p == *served)
                || set
                    .purposes
                    .get(served.as_str())
                    .is_some_and(|s| s.incompatible_with.iter().any(|p| p == &purpose.id))
        })
        .cloned()
}

pub fn incompatible(purpose: &Purpose, earlier: &str) -> Problem {
    Problem::new(
        ProblemCode::PurposeIncompatible,
        format!(
            "the case was already served under purpose '{earlier}', which must never be combined with '{}'",
            purpose.id
        ),
    )
}

/// Whether a granted time-out of the case runs on `today` (escalation follows a local
/// time-out already in force, Verkenning 2019 footnote 9).
fn time_out_in_force(case: &Case, today: time::Date) -> bool {
    let today = today
        .format(time::macros::format_description!("[year]-[month]-[day]"))
        .unwrap_or_default();
    // ISO dates compare as text.
    case.time_outs
        .iter()
        .any(|t| !t.pending && t.starts_on <= today && today <= t.ends_on)
}

/// Whether `partner` is within the case's scope: agreed and not objected to, or covered by a
/// motivated override (which also lifts an objection, Wams MvT §3.3.2).
pub fn in_scope(case: &Case, partner: &str) -> bool {
    if case.overrides.iter().any(|o| o.partner == partner) {
        return true;
    }
    case.partners.iter().any(|(p, _)| p == partner) && !case.objections.iter().any(|p| p == partner)
}
