//! Phase *record*: the exchange's audit record, durably written before anything is released.
//! If it cannot be written, the exchange is refused with `audit-unavailable` instead — a
//! response nobody can account for is never sent. A state-changing exchange also has an
//! *intent* record, durable before the partner is called.

use super::Outcome;
use crate::audit::AuditError;
use crate::exchange::{Concluded, Exchange};
use crate::problem::{Problem, ProblemCode};
use crate::state::GatewayState;
use std::sync::Arc;

/// The intent record of a state-changing exchange, durable before the partner is called
/// (FSC's transaction log rule: the record first, and no request without it).
pub(super) async fn intent(state: &GatewayState, exchange: &Exchange) -> Result<(), Problem> {
    let Some(audit) = &state.audit else {
        return Ok(());
    };
    audit
        .record(Arc::new(exchange.intent()))
        .await
        .map(|_seq| ())
        .map_err(|e| refused(state, exchange.transaction_id, e))
}

/// The exchange's outcome record.
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
        Err(e) => Err(refused(state, concluded.transaction_id, e)),
    }
}

/// The refusal when a record cannot be written: counted, logged (without personal data).
fn refused(state: &GatewayState, transaction_id: uuid::Uuid, e: AuditError) -> Problem {
    state.metrics.audit_failures.inc();
    tracing::error!(
        target: "doelpoort::audit",
        %transaction_id,
        error = %e,
        "exchange refused: its audit record could not be written"
    );
    Problem::new(
        ProblemCode::AuditUnavailable,
        "the exchange cannot be recorded in the audit log, so it is refused",
    )
}
