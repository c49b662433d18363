//! Phase *case*: an exchange under a grant with `requires: [registered_case]`, checked
//! against the case in the register (SPEC §8). The checks run in a fixed order, cheapest and
//! least revealing first, so the same request always gets the same code:
//!
//! 1. `case-unknown`: no such case, or one the caller does not own (not revealing it exists);
//! 2. `case-closed`;
//! 3. `not-in-household`: the data subject is not a member of the case's household;
//! 4. `outside-case-scope`: the partner is not agreed (or objected to) without an override,
//!    or the case was not registered for this purpose;
//! 5. `purpose-incompatible`: the case was served under a purpose this one must never be
//!    combined with (`incompatible_with`, either way round);
//! 6. `condition-failed`: the grant needs a prior time-out and the case's ledger has none.
//!
//! All of it reads this replica's copy of the register. Only the first exchange of a purpose
//! in a case writes (the purpose becomes *served*), in the register's serialised transaction
//! that checks compatibility again, so two replicas cannot serve incompatible purposes at once.

use super::{in_scope, Case, CaseRegister, ChangeError};
use crate::context::Bsn;
use crate::policy::{Grant, PolicySet, Purpose};
use crate::problem::{Problem, ProblemCode};
use crate::store::cases::{CaseStatus, CaseWrite};
use std::sync::Arc;

/// What the case check established.
pub struct CaseAdmission {
    pub case: Arc<Case>,
    /// The case was not yet served under this purpose: record it before forwarding.
    pub first_of_purpose: bool,
}

/// What the exchange brings to the check.
pub struct CaseRequest<'a> {
    pub consumer: &'a str,
    pub partner: &'a str,
    pub case_id: &'a str,
    pub purpose: &'a Purpose,
    pub grant: &'a Grant,
    /// The person the operation is about (already checked against the request itself);
    /// `None` for an operation about no one person.
    pub subject: Option<&'a Bsn>,
}

/// The checks above, against this replica's copy of the register.
pub fn admit(
    register: &CaseRegister,
    set: &PolicySet,
    request: &CaseRequest<'_>,
) -> Result<CaseAdmission, Problem> {
    let case = register
        .get(request.case_id)
        .filter(|c| c.owner == request.consumer)
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
    if let Some(bsn) = request.subject {
        let member = register.key().member(bsn);
        if case.household.binary_search(&member).is_err() {
            return Err(Problem::new(
                ProblemCode::NotInHousehold,
                "the data subject is not a member of the household this case is about",
            ));
        }
    }
    if !in_scope(&case, request.partner) {
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
    if let Some(earlier) = incompatible_served(set, &case, request.purpose) {
        return Err(incompatible(request.purpose, &earlier));
    }
    if request.grant.requires.prior_time_out && !case.time_outs.iter().any(|t| !t.pending) {
        return Err(Problem::new(
            ProblemCode::ConditionFailed,
            format!(
                "grant '{}' follows a local time-out: the case's time-out ledger holds none",
                request.grant.id
            ),
        ));
    }
    let first_of_purpose = !case.served.iter().any(|p| p == &request.purpose.id);
    Ok(CaseAdmission {
        case,
        first_of_purpose,
    })
}

/// A purpose the case was served under that must never be combined with `purpose`.
fn incompatible_served(set: &PolicySet, case: &Case, purpose: &Purpose) -> Option<String> {
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

fn incompatible(purpose: &Purpose, earlier: &str) -> Problem {
    Problem::new(
        ProblemCode::PurposeIncompatible,
        format!(
            "the case was already served under purpose '{earlier}', which must never be combined with '{}'",
            purpose.id
        ),
    )
}

/// Records that the case is now served under `purpose` (its first exchange for it), checking
/// compatibility and status again inside the register's transaction. A store that cannot be
/// reached refuses the exchange: the record is what the next check relies on.
pub async fn record_served(
    register: &CaseRegister,
    set: &PolicySet,
    case_id: &str,
    purpose: &Purpose,
) -> Result<(), Problem> {
    let changed = register
        .change("case_serve", case_id, |case, now| {
            let Some(case) = case.filter(|c| c.status == CaseStatus::Open) else {
                return Err(Problem::new(
                    ProblemCode::CaseClosed,
                    "the case is closed: no exchange is served for it any more",
                ));
            };
            if let Some(earlier) = incompatible_served(set, case, purpose) {
                return Err(incompatible(purpose, &earlier));
            }
            Ok(vec![CaseWrite::Served {
                purpose: purpose.id.clone(),
                at: now,
            }])
        })
        .await;
    match changed {
        Ok(_) => Ok(()),
        Err(ChangeError::Refused(problem)) => Err(problem),
        Err(ChangeError::Unavailable(_)) => Err(store_unavailable()),
    }
}

/// The refusal when the register's store cannot be reached for a write the exchange needs.
pub fn store_unavailable() -> Problem {
    Problem::new(
        ProblemCode::AuditUnavailable,
        "the case register's store cannot be reached, so this exchange cannot be recorded in its case",
    )
}
