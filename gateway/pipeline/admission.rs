//! Admission: everything that happens before the partner is called. The phases *identify*,
//! *route*, *context* (headers and the caller's signed token), reading the body, *decide*, and
//! *admit* (the four-eyes approval and the allow-listed body the partner may receive).
//!
//! Each function takes what it needs and returns a value or the [`Problem`] that ends the
//! exchange; the spine keeps the facts.

use super::Call;
use crate::config::Limits;
use crate::context::RequestContext;
use crate::identity::{Connection, Consumer};
use crate::minimise::RequestBody;
use crate::policy::decide::{self, DecisionRequest, Denial, Permit};
use crate::policy::PolicySet;
use crate::problem::{Problem, ProblemCode};
use crate::route;
use crate::state::GatewayState;
use crate::token::CallerToken;
use crate::upstream::Partner;
use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::Method;
use http_body_util::{BodyExt, Limited};
use std::sync::Arc;

/// Phase *identify*: the consumer was looked up once per connection; here it is required.
pub(super) fn identify(connection: &Connection) -> Result<&Arc<Consumer>, Problem> {
    connection.consumer.as_ref().ok_or_else(|| {
        Problem::new(
            ProblemCode::UnknownConsumer,
            "the client certificate is trusted but belongs to no configured consumer",
        )
    })
}

/// Where a request goes.
pub(super) enum Route<'s, 'p> {
    /// A configured partner, with the partner-side path (canonical).
    Partner {
        partner: &'s Arc<Partner>,
        path: &'p str,
    },
    /// `/.well-known/…` on the gateway itself.
    Discovery,
    /// `/doelpoort/…`: the case register's API (SPEC §8), with the path after `/doelpoort`.
    CaseRegister { path: &'p str },
}

/// Phase *route*: a canonical path, a forwardable method and a configured partner.
pub(super) fn route<'s, 'p>(
    state: &'s GatewayState,
    policy: Option<&PolicySet>,
    method: &Method,
    path: &'p str,
) -> Result<Route<'s, 'p>, Problem> {
    let target = route::split(path)?;
    if target.partner == ".well-known" {
        return Ok(Route::Discovery);
    }
    if target.partner == crate::cases::api::PARTNER_ID {
        return Ok(Route::CaseRegister { path: target.path });
    }
    if !matches!(
        *method,
        Method::GET | Method::HEAD | Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        // `Allow` names what this path is served with, where the policy describes it.
        let described = policy
            .map(|p| p.methods_at(target.partner, target.path))
            .unwrap_or_default();
        let allow = if described.is_empty() {
            "GET, HEAD, POST, PUT, PATCH, DELETE".to_string()
        } else {
            described
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(Problem::method_not_allowed(
            "only GET, HEAD, POST, PUT, PATCH and DELETE are forwarded, and of those only what the operation at this path is served with",
            allow,
        ));
    }
    // The id is caller input: it is deliberately not echoed in the detail.
    let partner = state.partners.get(target.partner).ok_or_else(|| {
        Problem::new(
            ProblemCode::UnknownRoute,
            "no partner with that id is configured",
        )
    })?;
    Ok(Route::Partner {
        partner,
        path: target.path,
    })
}

/// Phase *context*, first half: the declared `Doelbinding-*` headers, well-formed.
pub(super) fn declared_context(headers: &HeaderMap) -> Result<RequestContext, Problem> {
    RequestContext::from_headers(headers)
}

/// Phase *context*, second half: the caller's signed token, verified (see [`crate::token`]).
pub(super) fn verify_token(
    state: &GatewayState,
    connection: &Connection,
    call: &Call<'_>,
) -> Result<Option<CallerToken>, Problem> {
    crate::token::TokenVerifier::check(
        state.tokens.as_deref(),
        call.consumer,
        connection.fingerprint.as_ref(),
        &call.parts.headers,
    )
}

/// Lines the declared context up with the verified token and applies the token's case scope:
/// the partners the client agreed to involve.
pub(super) fn reconcile_token(
    call: &Call<'_>,
    token: &CallerToken,
    context: &mut RequestContext,
) -> Result<(), Problem> {
    crate::token::reconcile(context, token)?;
    let Some(scope) = &token.case_partners else {
        return Ok(());
    };
    if !scope.iter().any(|p| p == &call.partner.id) {
        return Err(Problem::new(
            ProblemCode::NotGranted,
            format!(
                "partner '{}' is outside the case scope the client agreed to (case_partners in the token)",
                call.partner.id
            ),
        ));
    }
    if context.case_partners.is_empty() {
        context.case_partners.clone_from(scope);
        return Ok(());
    }
    let mut declared = context.case_partners.clone();
    let mut signed = scope.clone();
    declared.sort();
    signed.sort();
    if declared != signed {
        return Err(Problem::new(
            ProblemCode::TokenMismatch,
            "the Doelbinding-Case-Partners header differs from case_partners in the signed token",
        ));
    }
    Ok(())
}

/// The policy snapshot the exchange is decided under; without one nothing is granted.
pub(super) fn require_policy(policy: Option<Arc<PolicySet>>) -> Result<Arc<PolicySet>, Problem> {
    policy.ok_or_else(|| {
        Problem::new(
            ProblemCode::NotGranted,
            "no valid policy set is loaded, so nothing can be granted",
        )
    })
}

/// The caller's body, whole, within the size and time limits.
pub(super) async fn read_body<B>(
    body: B,
    headers: &HeaderMap,
    limits: &Limits,
) -> Result<Bytes, Problem>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large = || {
        Problem::new(
            ProblemCode::RequestTooLarge,
            format!(
                "the request body exceeds {} bytes",
                limits.max_request_body_bytes
            ),
        )
    };
    // Refuse early on a declared length; the streaming limit below catches the rest.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_request_body_bytes as u64) {
        return Err(too_large());
    }
    let collect = Limited::new(body, limits.max_request_body_bytes).collect();
    match tokio::time::timeout(limits.request_timeout, collect).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(Problem::new(
            ProblemCode::ContextInvalid,
            "the request body could not be read",
        )),
        Err(_) => Err(Problem::new(
            ProblemCode::RequestTimeout,
            "the request body did not arrive in time",
        )),
    }
}

/// Phase *decide*: a [`Permit`], or the denial with what the decision had established.
pub(super) fn decide(
    policy: &PolicySet,
    call: &Call<'_>,
    context: &RequestContext,
    body: &RequestBody<'_>,
    token: Option<&CallerToken>,
) -> Result<Permit, Denial> {
    decide::decide(
        policy,
        &DecisionRequest {
            consumer: &call.consumer.id,
            partner: &call.partner.id,
            method: &call.parts.method,
            path: call.path,
            context,
            body,
            approvals: token.map_or(&[][..], |t| t.approvals.as_slice()),
            today: call.today,
        },
    )
}

/// Phase *admit*: the four-eyes approval the permit may need (see
/// [`crate::policy::four_eyes`]) and the body the partner may receive. A body that cannot be
/// checked is refused before the approval is spent, so the colleague's approval stays usable
/// for the corrected request.
pub(super) fn admit(
    state: &GatewayState,
    permit: &Permit,
    token: Option<&CallerToken>,
    body: &RequestBody<'_>,
) -> Result<Bytes, Problem> {
    state
        .approvals
        .admit(permit, token, body, || allow_request_body(permit, body))
}

/// Request bodies: only the fields the grant lists go to the partner.
fn allow_request_body(permit: &Permit, body: &RequestBody<'_>) -> Result<Bytes, Problem> {
    if body.is_empty() {
        return Ok(Bytes::new());
    }
    let allow = permit.grant().request_allow.as_ref().ok_or_else(|| {
        Problem::new(
            ProblemCode::ContextInvalid,
            "the grant allows no request body for this operation",
        )
    })?;
    let minimised = crate::minimise::minimise_request(body, allow)?;
    Ok(Bytes::from(minimised.body))
}
