//! The time-out ledger of each case: a time-out is *reserved* (pending) in the register's
//! serialised transaction before it is sent, after the rules of
//! [`crate::policy::time_out`] passed against the case as it is then, and *granted* when the
//! partner confirms with a 2xx; dropped otherwise.

use super::{CaseRegister, ChangeError};
use crate::policy::time_out::{decide, TimeOutRequest};
use crate::policy::TimeOutRule;
use crate::problem::{Problem, ProblemCode};
use crate::store::cases::{CaseStatus, CaseWrite};

/// A reserved time-out, to be granted or dropped when the partner has answered.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub case_id: String,
    pub id: String,
}

impl CaseRegister {
    /// Reserves a time-out in the case's ledger (see [`decide`]), before it is sent.
    pub async fn reserve_time_out(
        &self,
        case_id: &str,
        rule: &TimeOutRule,
        request: &TimeOutRequest<'_>,
    ) -> Result<Reservation, Problem> {
        let mut reserved = None;
        let changed = self
            .change("time_out_reserve", case_id, |case, now| {
                // Checked again in the transaction: another replica may have closed the case
                // since this one decided; a time-out is an instruction to a partner.
                let case = case
                    .filter(|c| c.status != CaseStatus::Purged)
                    .ok_or_else(|| {
                        Problem::new(ProblemCode::CaseUnknown, "the case is no longer registered")
                    })?;
                if case.status != CaseStatus::Open {
                    return Err(Problem::new(
                        ProblemCode::CaseClosed,
                        "the case is closed: no exchange is served for it any more",
                    ));
                }
                let entry = decide(case, rule, request, now)?;
                reserved = Some(entry.id.clone());
                Ok(vec![CaseWrite::ReserveTimeOut(entry)])
            })
            .await;
        match changed {
            Ok(_) => Ok(Reservation {
                case_id: case_id.to_string(),
                id: reserved.unwrap_or_default(),
            }),
            Err(ChangeError::Refused(problem)) => Err(problem),
            Err(ChangeError::Unavailable(_)) => Err(super::admission::store_unavailable()),
        }
    }

    /// Settles a reservation once the partner answered: granted on its confirmation,
    /// dropped otherwise. A store that cannot be reached leaves it pending (it then counts
    /// until [`crate::policy::time_out::PENDING_TTL`], erring on the side of refusing).
    pub async fn settle_time_out(&self, reservation: &Reservation, confirmed: bool) {
        let write = if confirmed {
            CaseWrite::GrantTimeOut {
                id: reservation.id.clone(),
            }
        } else {
            CaseWrite::DropTimeOut {
                id: reservation.id.clone(),
            }
        };
        let settled = self
            .change("time_out_settle", &reservation.case_id, |_, _| {
                Ok::<_, ()>(vec![write])
            })
            .await;
        if settled.is_err() {
            tracing::error!("a time-out reservation could not be settled in the case register");
        }
    }
}
