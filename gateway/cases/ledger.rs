//! The time-out ledger of each case: a time-out is *reserved* (pending) in the register's
//! serialised transaction before it is sent, after the rules of
//! [`crate::policy::time_out`] passed against the case as it is then, and *granted* when the
//! partner confirms with a 2xx; dropped otherwise.

use super::{Case, CaseRegister, ChangeError};
use crate::policy::time_out::{decide, TimeOutRequest};
use crate::policy::TimeOutRule;
use crate::problem::{Problem, ProblemCode};
use crate::store::cases::{CaseStatus, CaseWrite};

/// A reserved time-out, to be granted or dropped when the partner has answered.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub owner: String,
    pub case_id: String,
    pub id: String,
}

impl CaseRegister {
    /// Reserves a time-out in `case`'s ledger (see [`decide`]), before it is sent. The rules
    /// see the case as the store holds it now, with the time-outs the same person has in the
    /// owner's other cases: a second case must not be a way round them.
    pub async fn reserve_time_out(
        &self,
        case: &Case,
        rule: &TimeOutRule,
        request: &TimeOutRequest<'_>,
    ) -> Result<Reservation, Problem> {
        let mut reserved = None;
        let member = Some(request.subject.as_str()).filter(|m| !m.is_empty());
        let changed = self
            .change_seeing(
                "time_out_reserve",
                &case.owner,
                &case.id,
                member,
                |current, related, now| {
                    // Checked again in the transaction: another replica may have closed the
                    // case since this one decided; a time-out is an instruction to a partner.
                    let current = current
                        .filter(|c| c.status != CaseStatus::Purged)
                        .ok_or_else(|| {
                            Problem::new(
                                ProblemCode::CaseUnknown,
                                "the case is no longer registered",
                            )
                        })?;
                    if current.status != CaseStatus::Open {
                        return Err(Problem::new(
                            ProblemCode::CaseClosed,
                            "the case is closed: no exchange is served for it any more",
                        ));
                    }
                    let mut seen = current.clone();
                    seen.time_outs.extend(related.iter().cloned());
                    let entry = decide(&seen, rule, request, now)?;
                    reserved = Some(entry.id.clone());
                    Ok(vec![CaseWrite::ReserveTimeOut(entry)])
                },
            )
            .await;
        match changed {
            Ok(_) => Ok(Reservation {
                owner: case.owner.clone(),
                case_id: case.id.clone(),
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
            .change(
                "time_out_settle",
                &reservation.owner,
                &reservation.case_id,
                |_, _| Ok::<_, ()>(vec![write]),
            )
            .await;
        if settled.is_err() {
            tracing::error!("a time-out reservation could not be settled in the case register");
        }
    }
}
