//! Phase *case* against this replica's copy of the register: the rules of
//! [`crate::policy::case_rules`] applied to the registered case. Only the first exchange of a
//! purpose in a case writes (the purpose becomes *served*), in the register's serialised
//! transaction that checks compatibility again, so two replicas cannot serve incompatible
//! purposes at once.

use super::{Case, CaseRegister, ChangeError};
use crate::context::Bsn;
use crate::policy::case_rules::{self, incompatible, incompatible_served};
use crate::policy::{PolicySet, Purpose};
use crate::problem::{Problem, ProblemCode};
use crate::store::cases::{CaseStatus, CaseWrite};
use std::sync::Arc;

/// What the case check established.
pub struct CaseAdmission {
    pub case: Arc<Case>,
    /// The case was not yet served under this purpose: record it before forwarding.
    pub first_of_purpose: bool,
}

/// The register's checks on `case`, the caller's case as this replica holds it (`None`: not
/// registered), for the person the operation is about (`None`: about no one person). No
/// round trip.
pub fn admit(
    register: &CaseRegister,
    set: &PolicySet,
    case: Option<Arc<Case>>,
    subject: Option<&Bsn>,
    request: &case_rules::CaseRequest<'_>,
) -> Result<CaseAdmission, Problem> {
    let member = subject.map(|bsn| register.key().member(bsn));
    let first_of_purpose = case_rules::admit(case.as_deref(), member.as_deref(), set, request)?;
    Ok(CaseAdmission {
        // The rules refuse an unregistered case, so there is one.
        case: case.ok_or_else(|| Problem::new(ProblemCode::CaseUnknown, "no such case"))?,
        first_of_purpose,
    })
}

/// Records that the case is now served under `purpose` (its first exchange for it), checking
/// compatibility and status again inside the register's transaction. A store that cannot be
/// reached refuses the exchange: the record is what the next check relies on.
pub async fn record_served(
    register: &CaseRegister,
    set: &PolicySet,
    case: &Case,
    purpose: &Purpose,
) -> Result<(), Problem> {
    let changed = register
        .change("case_serve", &case.owner, &case.id, |case, now| {
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
