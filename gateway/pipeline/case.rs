//! Phase *case*: for a grant with `requires: [registered_case]`, the exchange is checked
//! against its case in the register ([`crate::cases::admission`]); the first exchange of a
//! purpose in a case is recorded there; and a time-out is reserved in the case's ledger
//! ([`crate::cases::ledger`]) before it is sent, then granted or dropped on the partner's
//! answer.

use super::Call;
use crate::cases::admission::{self, CaseAdmission};
use crate::cases::ledger::Reservation;
use crate::context::RequestContext;
use crate::exchange::Exchange;
use crate::policy::case_rules::CaseRequest;
use crate::policy::decide::Permit;
use crate::policy::time_out::TimeOutRequest;
use crate::policy::{PolicySet, SubjectSource};
use crate::problem::{Problem, ProblemCode};
use crate::state::GatewayState;
use crate::token::CallerToken;
use crate::upstream::{UpstreamError, UpstreamResponse};
use bytes::Bytes;

/// The register's checks, on this replica's copy (no round trip). `None`: the grant does not
/// involve the register.
pub(super) fn admit(
    state: &GatewayState,
    policy: &PolicySet,
    call: &Call<'_>,
    context: &RequestContext,
    permit: &Permit,
) -> Result<Option<CaseAdmission>, Problem> {
    let grant = permit.grant();
    let required = grant.requires.registered_case;
    // The decision required the case id already where the grant needs a registered case.
    let Some(case_id) = context.case_id.as_deref() else {
        if required {
            return Err(Problem::new(
                ProblemCode::ContextInvalid,
                "this grant requires the case (Doelbinding-Case-Id)",
            ));
        }
        return Ok(None);
    };
    // A case the caller registered binds every exchange that names it (closed is closed,
    // whatever the grant); a grant with `registered_case` also needs it to be registered.
    let case = state.cases.get(call.consumer.id.as_str(), case_id);
    if case.is_none() && !required {
        return Ok(None);
    }
    let subject = match permit.operation().subject {
        SubjectSource::None => None,
        _ => context.data_subject.as_ref().map(|s| s.bsn()),
    };
    admission::admit(
        &state.cases,
        policy,
        case,
        subject,
        &CaseRequest {
            consumer: call.consumer.id.as_str(),
            partner: call.partner.id.as_str(),
            purpose: permit.purpose(),
            grant,
            today: call.today,
        },
    )
    .map(Some)
}

/// Whether [`record`] has anything to write for this admission: the first exchange of a
/// purpose in the case, or a time-out.
pub(super) fn writes(admitted: &CaseAdmission, permit: &Permit) -> bool {
    admitted.first_of_purpose || permit.grant().time_out.is_some()
}

/// What the register must hold before the partner is called (when [`writes`] says there is
/// something): the purpose as served, and a time-out's reservation in the ledger.
#[allow(clippy::too_many_arguments)]
pub(super) async fn record(
    state: &GatewayState,
    policy: &PolicySet,
    call: &Call<'_>,
    context: &RequestContext,
    permit: &Permit,
    admitted: CaseAdmission,
    forwarded: &Bytes,
    exchange: &Exchange,
    token: Option<&CallerToken>,
) -> Result<Option<Reservation>, Problem> {
    let case = &admitted.case;
    if admitted.first_of_purpose {
        admission::record_served(&state.cases, policy, case, permit.purpose()).await?;
    }
    let Some(rule) = &permit.grant().time_out else {
        return Ok(None);
    };
    // The body the partner receives: what the ledger records is what is asked of it.
    let body: serde_json::Value = serde_json::from_slice(forwarded).map_err(|_| {
        Problem::new(
            ProblemCode::RequestInvalid,
            "a time-out needs a JSON request body",
        )
    })?;
    let ends_on = rule
        .ends
        .values(&body)
        .first()
        .and_then(|v| v.as_str())
        .and_then(crate::policy::compile::parse_date)
        .ok_or_else(|| {
            Problem::new(
                ProblemCode::RequestInvalid,
                "the time-out's end date is missing or not a date (YYYY-MM-DD)",
            )
        })?;
    let claims = match &rule.claims {
        None => Vec::new(),
        Some(path) => {
            let claims: Vec<String> = path
                .values(&body)
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            if claims.is_empty() {
                return Err(Problem::new(
                    ProblemCode::RequestInvalid,
                    "a time-out names the claims it suspends",
                ));
            }
            claims
        }
    };
    let partner_is_private = policy
        .partners
        .get(call.partner.id.as_str())
        .is_some_and(|p| p.private);
    state
        .cases
        .reserve_time_out(
            case,
            rule,
            &TimeOutRequest {
                partner: call.partner.id.as_str(),
                partner_is_private,
                claims,
                ends_on,
                today: call.today,
                actor: context.actor.as_deref(),
                approvals: token.map_or(&[][..], |t| t.approvals.as_slice()),
                transaction_id: exchange.transaction_id.hyphenated().to_string(),
                // A time-out is one person's: their time-outs in other cases count too.
                subject: context
                    .data_subject
                    .as_ref()
                    .map(|s| state.cases.key().member(s.bsn()))
                    .unwrap_or_default(),
            },
        )
        .await
        .map(Some)
}

/// Grants a reserved time-out when the partner confirmed it (2xx), drops it otherwise.
pub(super) async fn settle(
    state: &GatewayState,
    reservation: &Reservation,
    answer: &Result<Result<UpstreamResponse, UpstreamError>, Problem>,
) {
    let confirmed = matches!(answer, Ok(Ok(response)) if response.status.is_success());
    state.cases.settle_time_out(reservation, confirmed).await;
}
