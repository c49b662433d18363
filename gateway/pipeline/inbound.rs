//! Admission at an inway (`role: inway`, SPEC §10): the provider's side of the exchange.
//!
//! Before the provider's own policy decides, the inway establishes what the calling gateway
//! vouches for, in this order (the spine keeps each fact as it is established, so a refused
//! request's record says how far it got):
//! 1. the transaction id the outway made (`Fsc-Transaction-Id`, a UUIDv7): kept end to end,
//!    and required (FSC logging: a request without one is refused);
//! 2. with FSC configured, the access token (`Fsc-Authorization`): signed by this inway's
//!    token key, not expired, of this group, bound to the caller's certificate, and for the
//!    service the path names;
//! 3. the calling gateway's `Doelbinding-Assertion` (see [`crate::inway`]), whose statements
//!    are the context decided on.
//!
//! After the decision, the legal basis the assertion states must be the one the provider's
//! purpose names. The inway's token endpoint (FSC manager, client credentials) is here too.

use crate::fsc::tokens::AccessTokenClaims;
use crate::fsc::{self, FscError};
use crate::identity::{Connection, Consumer};
use crate::inway::{Inway, VerifiedAssertion};
use crate::policy::decide::Permit;
use crate::problem::{Problem, ProblemCode};
use crate::upstream::Partner;
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;

/// The transaction id the outway made: required; one RFC 9562 UUIDv7 (Doelpoort's profile)
/// whose time is within [`crate::inway::TRANSACTION_ID_WINDOW`] of now; and new to this inway — a reused id would let a
/// caller put a second provider-side record under an exchange that already has one.
pub(super) fn transaction_id(inway: &Inway, headers: &HeaderMap) -> Result<uuid::Uuid, Problem> {
    let mut values = headers.get_all(crate::headers::FSC_TRANSACTION_ID).iter();
    let value = values.next().ok_or_else(|| {
        FscError::MissingLogRecordId.problem("the request carries no Fsc-Transaction-Id")
    })?;
    let now = crate::clock::unix_now() as u64;
    let id = value
        .to_str()
        .ok()
        .filter(|v| v.len() == uuid::fmt::Hyphenated::LENGTH && values.next().is_none())
        .and_then(|v| uuid::Uuid::try_parse(v).ok())
        .filter(|id| id.get_version_num() == 7 && id.get_variant() == uuid::Variant::RFC4122)
        .ok_or_else(|| {
            FscError::InvalidLogRecordId
                .problem("the Fsc-Transaction-Id is not one UUIDv7 in hyphenated form")
        })?;
    match inway.first_use(id, now) {
        crate::inway::FirstUse::Yes => {}
        crate::inway::FirstUse::OutOfWindow => {
            return Err(FscError::InvalidLogRecordId.problem(
                "the Fsc-Transaction-Id was not made just now (its time is more than 2 minutes past or 30 s ahead)",
            ))
        }
        crate::inway::FirstUse::Again => {
            return Err(FscError::InvalidLogRecordId
                .problem("this Fsc-Transaction-Id was used before: every exchange has its own"))
        }
    }
    Ok(id)
}

/// The headers an inway reads its context from may each be sent once.
fn once(headers: &HeaderMap) -> Result<(), Problem> {
    for name in [
        crate::headers::DOELBINDING_ASSERTION,
        crate::headers::DOELBINDING_PURPOSE,
        fsc::FSC_AUTHORIZATION,
    ] {
        crate::context::sent_once(headers, name.as_str())?;
    }
    Ok(())
}

/// Step 2: with FSC configured, the access token (`Fsc-Authorization`), checked; the headers
/// an inway reads its context from, each sent once.
pub(super) fn access_token(
    inway: &Inway,
    connection: &Connection,
    consumer: &Consumer,
    headers: &HeaderMap,
) -> Result<Option<AccessTokenClaims>, Problem> {
    once(headers)?;
    let Some(tokens) = &inway.fsc else {
        return Ok(None);
    };
    tokens
        .verify(
            headers.get(fsc::FSC_AUTHORIZATION),
            connection.fingerprint.as_ref(),
            &consumer.id,
        )
        .map(Some)
        .map_err(|e| e.problem(fsc_detail(e)))
}

/// The access token serves the service the path names, and no other.
pub(super) fn for_service(claims: &AccessTokenClaims, partner: &Partner) -> Result<(), Problem> {
    if claims.svc == partner.id.as_str() {
        Ok(())
    } else {
        Err(FscError::ServiceNotFound
            .problem("the access token is for another service than the path names"))
    }
}

/// Step 3: the calling gateway's assertion (see [`crate::inway`]).
pub(super) async fn assertion(
    inway: &Inway,
    connection: &Connection,
    consumer: &Consumer,
    headers: &HeaderMap,
) -> Result<VerifiedAssertion, Problem> {
    inway
        .verify(
            consumer,
            connection.fingerprint.as_ref(),
            headers.get(crate::headers::DOELBINDING_ASSERTION),
        )
        .await
}

/// The caller's headers may repeat what the assertion states, never contradict it.
pub(super) fn agrees(verified: &VerifiedAssertion, headers: &HeaderMap) -> Result<(), Problem> {
    let declared = headers
        .get(crate::headers::DOELBINDING_PURPOSE)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    if declared.is_some_and(|p| Some(p) != verified.context.purpose.as_deref()) {
        return Err(Problem::new(
            ProblemCode::TokenMismatch,
            "the Doelbinding-Purpose header differs from the purpose the assertion states",
        ));
    }
    Ok(())
}

fn fsc_detail(e: FscError) -> &'static str {
    match e {
        FscError::AccessTokenMissing => "the request carries no FSC access token (Fsc-Authorization)",
        FscError::AccessTokenExpired => "the FSC access token has expired",
        FscError::WrongGroupIdInToken => "the FSC access token is for another group",
        _ => "the FSC access token is not valid for this inway, this contract or this connection's certificate",
    }
}

/// After the decision: the legal basis the calling gateway states must be the one the
/// provider's purpose names (when it names one). Another basis is not the provider's grant.
pub(super) fn check_legal_basis(
    permit: &Permit,
    verified: &VerifiedAssertion,
) -> Result<(), Problem> {
    let ours = permit.purpose().legal_basis_text.as_deref();
    match ours {
        Some(ours) if verified.legal_basis.as_deref().map(str::trim) != Some(ours.trim()) => {
            Err(Problem::new(
                ProblemCode::NotGranted,
                "the legal basis the calling gateway states is not the one the provider's purpose names",
            ))
        }
        _ => Ok(()),
    }
}

/// At an inway that speaks FSC, a problem within FSC's scope carries FSC's code too.
pub(super) fn fsc_scope(problem: Problem) -> Problem {
    match (problem.fsc, FscError::of_problem(problem.code)) {
        (None, Some(e)) => problem.with_fsc(e.tag(fsc::Side::Inway)),
        _ => problem,
    }
}

/// The inway's token endpoint (FSC core, "manager_tokens"): client credentials over mTLS,
/// the grant hash as scope. The token's audience is the inway's configured address.
pub(super) fn token_endpoint(
    inway: &Inway,
    connection: &Connection,
    consumer: &Consumer,
    parts: &http::request::Parts,
    body: &[u8],
) -> Result<Response<Full<Bytes>>, Problem> {
    let Some(tokens) = &inway.fsc else {
        return Err(Problem::new(
            ProblemCode::UnknownRoute,
            "this inway does not issue FSC access tokens",
        ));
    };
    if parts.method != http::Method::POST {
        return Err(Problem::method_not_allowed(
            "the token endpoint is POST only",
            "POST",
        ));
    }
    let form = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(Problem::new(
            ProblemCode::ContextInvalid,
            "a token request is application/x-www-form-urlencoded (RFC 6749 §4.4.2)",
        ));
    }
    let fingerprint = connection
        .fingerprint
        .as_ref()
        .ok_or_else(|| Problem::new(ProblemCode::UnknownConsumer, "no client certificate"))?;
    let client = crate::fsc::tokens::TokenClient {
        consumer: &consumer.id,
        peer_id: consumer.oin.as_ref().map(|o| o.as_str()),
        fingerprint,
    };
    let (status, body) = match tokens.issue(body, &client, crate::clock::unix_now() as u64) {
        Ok(token) => (
            StatusCode::OK,
            serde_json::json!({"access_token": token, "token_type": "bearer"}),
        ),
        Err(refusal) => {
            tracing::info!(consumer = %consumer.id, error = refusal.error, "FSC token request refused");
            (StatusCode::BAD_REQUEST, refusal.body())
        }
    };
    Ok(crate::headers::json_answer(status, &body))
}
