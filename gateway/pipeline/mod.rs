//! The exchange pipeline: one request, passed through the phases in order.
//!
//! ```text
//!  identify ─► route ─► context ─► token ─► read body ─► decide ─► admit ─► forward ─► release
//!  (identity)  (route)  (context)  (token)               (policy)  (4-eyes)  (upstream) (minimise)
//!       │ any phase ends the exchange with a Problem, or panics                           │
//!       └──────────────────────────────► conclude ◄───────────────────────────────────────┘
//!                                           │  (exchange → Concluded)
//!                                  record (audit log, durable) ─► respond (response,
//!                                                                   metrics, access log)
//! ```
//!
//! This module is the spine: it runs the phases and is the only code that writes facts into
//! the [`Exchange`]. Each phase is a function in its own file that takes what it needs and
//! returns its result: a value for the next phase, or a [`Problem`] that ends the exchange.
//! Whatever happens — a refusal, a partner failure, or a phase that panics — the exchange is
//! concluded, recorded and answered: nothing is released that was not recorded, and nothing
//! decided goes unrecorded or uncounted.
//!
//! At an inway (`role: inway`, SPEC §10) the same spine runs in front of a provider's own
//! services: the transaction id and the context come from the calling gateway
//! (`inbound.rs`: its FSC access token and its assertion), the provider's own policies decide,
//! there is no case register, and every request has its intent record before the service is
//! called. At an outway, what an inway reports back is kept for the record (`other_end.rs`).
//!
//! The proofs travel with the values: forwarding needs the [`Permit`] only the decision
//! builds, and the caller's response body is a [`crate::minimise::Released`] only
//! minimisation builds.

mod admission;
mod case;
mod discovery;
mod forward;
mod inbound;
mod other_end;
mod record;
mod register;
mod release;
mod respond;

#[cfg(test)]
mod tests;

pub use discovery::DISCOVERY_PATH;

use crate::exchange::Exchange;
use crate::identity::{Connection, Consumer};
use crate::minimise::RequestBody;
use crate::policy::decide::Permit;
use crate::problem::{Problem, ProblemCode};
use crate::state::GatewayState;
use crate::upstream::Partner;
use admission::Route;
use bytes::Bytes;
use futures_util::FutureExt as _;
use http::{Request, Response};
use http_body_util::Full;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

/// What a phase ends with: the response so far, or the problem that ends the exchange.
type Outcome = Result<Response<Full<Bytes>>, Problem>;

/// Who calls which partner with which request: the facts the later phases share.
struct Call<'a> {
    consumer: &'a Consumer,
    partner: &'a Partner,
    parts: &'a http::request::Parts,
    /// Partner-side path (after `/<partner>`), canonical.
    path: &'a str,
    /// The calendar day the exchange is decided and minimised on (read once, so both phases
    /// agree even across midnight).
    today: time::Date,
}

/// Serves one request on an identified connection: the whole exchange, from the first phase
/// to the response. Never fails: a problem becomes a problem+json response.
pub async fn serve<B>(
    state: &GatewayState,
    connection: &Connection,
    request: Request<B>,
) -> Response<Full<Bytes>>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut exchange = Exchange::begin(request.headers());
    // Announced to the audit writer until the record is handed over: under load its group
    // commit waits for records that are on their way (the adaptive commit delay).
    let upcoming = state.audit.as_ref().map(|audit| audit.upcoming());
    let head = request.method() == http::Method::HEAD;
    // A phase that panics (a defect) still ends in a record and a metric, as an error.
    let outcome = AssertUnwindSafe(run_phases(state, connection, &mut exchange, request))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            tracing::error!(transaction_id = %exchange.transaction_id, "a phase of the exchange panicked");
            Err(Problem::new(
                ProblemCode::Internal,
                "the gateway failed while handling this request",
            ))
        });
    let concluded = Arc::new(exchange.conclude(outcome.as_ref().map(|_| ())));
    drop(upcoming);
    let outcome = record::record(state, &concluded, outcome).await;
    // Within FSC's scope a refusal also carries FSC's code: at an inway that speaks FSC, and
    // at an outway for an exchange with an FSC partner whose transaction log failed. Mapped
    // after the record, which may itself have refused the exchange.
    let outcome = match (&state.inway, &concluded.fsc) {
        (Some(inway), _) if inway.fsc.is_some() => outcome.map_err(inbound::fsc_scope),
        (None, Some(_)) => outcome.map_err(other_end::fsc_scope),
        _ => outcome,
    };
    let mut response = respond::respond(state, &concluded, outcome);
    if head {
        // The answer to a HEAD carries the GET's status and headers, never a body (over
        // HTTP/2 a body would be a protocol error).
        *response.body_mut() = Full::new(Bytes::new());
    }
    response
}

async fn run_phases<B>(
    state: &GatewayState,
    connection: &Connection,
    exchange: &mut Exchange,
    request: Request<B>,
) -> Outcome
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // The policy snapshot this exchange is decided under, taken first so that every record —
    // an early refusal's too — names the version in force; kept to the end even if a reload
    // happens meanwhile.
    let policy = state.policies.current();
    exchange.policy.clone_from(&policy);
    if state.inway.is_some() {
        exchange.role = Some("inway");
    }
    checkpoint(state, "identify");
    let consumer = admission::identify(connection)?;
    exchange.consumer = Some(consumer.clone());
    let (parts, body) = request.into_parts();
    let (partner, path) =
        match admission::route(state, policy.as_deref(), &parts.method, parts.uri.path())? {
            Route::Partner { partner, path } => (partner, path),
            Route::CaseRegister { .. } if crate::openapi::is_document(parts.uri.path()) => {
                // The gateway's own API description: about no one, not audited.
                exchange.audited = false;
                return crate::openapi::answer(&parts.method, parts.uri.path());
            }
            Route::CaseRegister { path } if state.inway.is_some() => {
                // An inway keeps no case register; its manager's token endpoint lives here.
                exchange.audited = false;
                let inway = state.inway.as_deref().expect("checked");
                if format!("/doelpoort{path}") != crate::fsc::TOKEN_PATH {
                    return Err(Problem::new(
                        ProblemCode::UnknownRoute,
                        "an inway serves its providers' services and its FSC token endpoint only",
                    ));
                }
                let body = admission::read_body(body, &parts.headers, &state.limits).await?;
                return inbound::token_endpoint(inway, connection, consumer, &parts, &body);
            }
            Route::CaseRegister { path } => {
                // Boxed, like every phase below that awaits a store or a partner: their futures
                // are large, and inline they would make every exchange's future (moved at each
                // spawn) as large as the largest (13.7 KB before; docs/performance.md).
                return Box::pin(register::serve(
                    state, connection, exchange, consumer, &parts, path, body,
                ))
                .await;
            }
            Route::Discovery => {
                // Metadata about the caller's own grants, not an exchange about anyone.
                exchange.audited = false;
                return discovery::answer(
                    policy.as_deref(),
                    consumer,
                    &parts.method,
                    parts.uri.path(),
                );
            }
        };
    exchange.partner = Some(partner.clone());
    if let Some(inway) = &state.inway {
        // The outway's transaction id is kept end to end (FSC logging); a request to a
        // service without one is refused.
        exchange.transaction_id = inbound::transaction_id(inway, &parts.headers)?;
    }
    let call = Call {
        consumer,
        partner,
        parts: &parts,
        path,
        today: crate::policy::today(),
    };
    checkpoint(state, "context");
    let (context, token, vouched) = match state.inway.as_deref() {
        // At an inway, the context is what the calling gateway's assertion states.
        Some(inway) => {
            let verified = Box::pin(provider_context(
                inway,
                connection,
                consumer,
                partner,
                &parts.headers,
                exchange,
            ))
            .await?;
            (verified.context.clone(), None, Some(verified))
        }
        None => {
            let (context, token) = caller_context(state, connection, &call, exchange)?;
            (context, token, None)
        }
    };
    let policy = admission::require_policy(policy)?;
    let (permit, forwarded): (Permit, Bytes) = {
        // Read before deciding: grant conditions may look at the body. It is parsed (once)
        // only if the decision or the request's minimisation needs it, and the caller's bytes
        // end with this block, before the partner is called.
        let raw = admission::read_body(body, &parts.headers, &state.limits).await?;
        let body = RequestBody::new(&raw, &state.minimise_limits);
        checkpoint(state, "decide");
        let decision = admission::decide(&policy, &call, &context, &body, token.as_ref());
        exchange.note_decision(&decision);
        let permit = decision.map_err(|denial| denial.problem)?;
        if let Some(vouched) = &vouched {
            inbound::check_legal_basis(&permit, vouched)?;
        }
        let forwarded = admission::admit(state, &permit, token.as_ref(), &body)?;
        (permit, forwarded)
    };
    // The case register is the consumers' side's (an inway keeps none).
    let reservation = if vouched.is_none() {
        checkpoint(state, "case");
        let case = case::admit(state, &policy, &call, &context, &permit)?;
        // The approval is spent in the store (shared by replicas) once the body has passed,
        // and before the case's ledger is asked: a replayed approval is answered as a replay
        // on every replica, whatever the ledger would say.
        // The store's futures are large: built (and boxed) only for the exchanges that write.
        if crate::policy::four_eyes::ApprovalLedger::spends(&permit, token.as_ref()) {
            Box::pin(state.approvals.spend(&permit, token.as_ref())).await?;
        }
        match case {
            Some(admitted) if case::writes(&admitted, &permit) => {
                Box::pin(case::record(
                    state,
                    &policy,
                    &call,
                    &context,
                    &permit,
                    admitted,
                    &forwarded,
                    exchange,
                    token.as_ref(),
                ))
                .await?
            }
            _ => None,
        }
    } else {
        None
    };
    checkpoint(state, "forward");
    let answer = Box::pin(async {
        let fsc_token = match vouched {
            Some(_) => None,
            None => fsc_token(&call, exchange).await?,
        };
        let credentials = match vouched {
            Some(_) => forward::Credentials::Inway {
                incoming: &parts.headers,
            },
            None => forward::Credentials::Outway {
                fsc_token: fsc_token.as_deref(),
            },
        };
        let (request, jti) =
            forward::request(state, &call, &permit, forwarded, exchange, credentials)?;
        exchange.assertion_jti = jti.or(exchange.assertion_jti.take());
        if changes_state(&call.parts.method) || exchange.fsc.is_some() || vouched.is_some() {
            // Write-ahead: the partner may act on this request (or FSC's transaction log
            // requires it), so the record that it was sent is durable first; if it cannot be
            // written, nothing is sent.
            record::intent(state, exchange).await?;
        }
        Ok::<_, Problem>(forward::send(state, &call, request).await)
    })
    .await;
    // A time-out reserved in the case's ledger is granted only on the partner's confirmation.
    if let Some(reservation) = &reservation {
        Box::pin(case::settle(state, reservation, &answer)).await;
    }
    let answer = answer?;
    exchange.note_upstream(&answer);
    let report = other_end::report(&answer);
    if other_end::token_refused(&report) {
        if let Some(tokens) = &call.partner.fsc {
            tokens.forget();
        }
    }
    exchange.fsc_error_code = report.fsc_error_code;
    exchange.provider_fields = report.provider_fields;
    let answer = answer.map_err(|e| e.problem)?;
    checkpoint(state, "release");
    let released = release::release(state, &policy, &call, &permit, answer)?;
    exchange.fields_released = released.fields_released;
    exchange.fields_withheld = released.fields_withheld;
    Ok(released.response)
}

/// Phase *context* at an outway: the caller's declared `Doelbinding-*` headers and its signed
/// token, lined up.
fn caller_context(
    state: &GatewayState,
    connection: &Connection,
    call: &Call<'_>,
    exchange: &mut Exchange,
) -> Result<
    (
        crate::context::RequestContext,
        Option<crate::token::CallerToken>,
    ),
    Problem,
> {
    let mut context = admission::declared_context(&call.parts.headers).inspect_err(|_| {
        // The record still names the person if that header alone was valid.
        exchange.subject = crate::context::declared_subject(&call.parts.headers);
    })?;
    // Noted before the token is checked (a refused token's record still names case and actor),
    // and again after: the token may have filled in what the headers left out.
    exchange.note_context(&context);
    let token = admission::verify_token(state, connection, call)?;
    if let Some(token) = &token {
        exchange.token_issuer = Some(token.issuer.clone());
        admission::reconcile_token(call, token, &mut context)?;
        exchange.approvals.clone_from(&token.approvals);
        exchange.note_context(&context);
    }
    Ok((context, token))
}

/// Phase *context* at an inway: the FSC access token (if the inway speaks FSC) and the calling
/// gateway's assertion, each fact kept as it is established.
async fn provider_context(
    inway: &crate::inway::Inway,
    connection: &Connection,
    consumer: &Consumer,
    partner: &Partner,
    headers: &http::HeaderMap,
    exchange: &mut Exchange,
) -> Result<crate::inway::VerifiedAssertion, Problem> {
    if let Some(claims) = inbound::access_token(inway, connection, consumer, headers)? {
        exchange.fsc = Some(claims.transaction_log(crate::fsc::Direction::Incoming));
        inbound::for_service(&claims, partner)?;
    }
    let verified = inbound::assertion(inway, connection, consumer, headers).await?;
    exchange.assertion_jti = Some(verified.jti.clone());
    exchange.requester = Some(verified.requester.clone());
    exchange.note_context(&verified.context);
    inbound::agrees(&verified, headers)?;
    Ok(verified)
}

/// Phase *forward* at an outway: the partner's FSC access token (none for a partner without
/// FSC). Without one the request is not sent; the failure is the exchange's upstream error.
async fn fsc_token(call: &Call<'_>, exchange: &mut Exchange) -> Result<Option<String>, Problem> {
    match call.partner.fsc_token().await {
        Ok(Some((token, claims))) => {
            exchange.fsc = Some(claims.transaction_log(crate::fsc::Direction::Outgoing));
            Ok(Some(token))
        }
        Ok(None) => Ok(None),
        Err(e) => {
            let problem = e.problem.clone();
            exchange.note_upstream(&Err(e));
            Err(problem)
        }
    }
}

/// Whether the partner may change something: every method but GET and HEAD.
fn changes_state(method: &http::Method) -> bool {
    !matches!(*method, http::Method::GET | http::Method::HEAD)
}

/// The answer when an exchange task died outside the pipeline's own guard (a defect in the
/// connection task): a problem, never a partial response.
pub fn internal_error(state: &GatewayState) -> Response<Full<Bytes>> {
    // A transaction id of its own, so even this answer can be quoted in a report.
    let transaction_id = crate::trace::new_transaction_id();
    tracing::error!(%transaction_id, "an exchange task failed unexpectedly");
    let header = crate::headers::transaction_id(transaction_id);
    let mut response = Problem::new(
        ProblemCode::Internal,
        "the gateway failed while handling this request",
    )
    .into_response(&state.problem_base, header.to_str().unwrap_or_default());
    response
        .headers_mut()
        .insert(crate::headers::FSC_TRANSACTION_ID, header);
    response
}

/// Unit tests make the phase named here panic (see [`GatewayState`]); elsewhere a no-op.
#[cfg(test)]
fn checkpoint(state: &GatewayState, phase: &'static str) {
    if state.panic_in == Some(phase) {
        panic!("injected failure at the start of phase {phase}");
    }
}

#[cfg(not(test))]
#[inline(always)]
fn checkpoint(_: &GatewayState, _: &'static str) {}
