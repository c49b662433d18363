//! Phase *record*: the exchange's audit record, durably written before anything is released.
//! If it cannot be written, the exchange is refused with `audit-unavailable` instead — a
//! response nobody can account for is never sent.

use super::Outcome;
use crate::exchange::Concluded;
use crate::problem::{Problem, ProblemCode};
use crate::state::GatewayState;
use std::sync::Arc;

pub(super) async fn record(
    state: &GatewayState,
    concluded: &Arc<Concluded>,
    outcome: Outcome,
) -> Outcome {
    let Some(audit) = &state.audit else {
        return outcome;
    };
    if !concluded.audited {
        return outcome;
    }
    match audit.record(concluded.clone()).await {
        Ok(_seq) => outcome,
        Err(e) => {
            state.metrics.audit_failures.inc();
            tracing::error!(
                target: "doelpoort::audit",
                transaction_id = %concluded.transaction_id,
                error = %e,
                "exchange refused: its audit record could not be written"
            );
            Err(Problem::new(
                ProblemCode::AuditUnavailable,
                "the exchange cannot be recorded in the audit log, so it is refused",
            ))
        }
    }
}
