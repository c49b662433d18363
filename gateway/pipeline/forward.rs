//! Phase *forward*: the gateway's own request to the partner, built from the [`Permit`], and
//! the partner's answer.
//!
//! The partner sees the caller's allow-listed headers only, plus what the gateway states
//! itself: the transaction id, the trace, the consumer's OIN, the lawful basis (added by
//! [`UpstreamRequest::new`] from the permit) and the signed assertion.

use super::Call;
use crate::exchange::Exchange;
use crate::headers::{
    self, DOELBINDING_ASSERTION, DOELBINDING_REQUESTER, FSC_TRANSACTION_ID, JSON, TRACEPARENT,
};
use crate::identity::Consumer;
use crate::policy::decide::Permit;
use crate::problem::{Problem, ProblemCode};
use crate::state::GatewayState;
use crate::upstream::{UpstreamError, UpstreamRequest, UpstreamResponse};
use bytes::Bytes;
use http::header::{self as http_header, HeaderMap, HeaderValue};

/// The permitted request: the caller's allow-listed headers, the gateway's own, and the
/// signed assertion. A signing failure refuses the exchange: nothing is sent without it.
pub(super) fn request(
    state: &GatewayState,
    call: &Call<'_>,
    permit: &Permit,
    body: Bytes,
    exchange: &Exchange,
) -> Result<UpstreamRequest, Problem> {
    let mut headers = forwarded_request_headers(!body.is_empty(), exchange, call.consumer);
    headers.insert(
        DOELBINDING_ASSERTION,
        assertion(state, call, permit, exchange)?,
    );
    // A HEAD is answered as the GET it mirrors would be, so the partner is asked the GET: its
    // answer is checked and minimised the same way, and only the body is left out.
    let method = if call.parts.method == http::Method::HEAD {
        http::Method::GET
    } else {
        call.parts.method.clone()
    };
    Ok(UpstreamRequest::new(
        permit,
        method,
        call.path,
        call.parts.uri.query(),
        headers,
        body,
    ))
}

/// Sends the request and reads the partner's answer (within the response limit).
pub(super) async fn send(
    state: &GatewayState,
    call: &Call<'_>,
    request: UpstreamRequest,
) -> Result<UpstreamResponse, UpstreamError> {
    call.partner
        .forward(request, state.limits.max_response_body_bytes)
        .await
}

/// The gateway's own headers: nothing of the caller's is relayed. The body (if any) is the
/// gateway's own JSON serialisation, and only JSON is accepted back.
pub(super) fn forwarded_request_headers(
    has_body: bool,
    exchange: &Exchange,
    consumer: &Consumer,
) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(8);
    out.insert(http_header::ACCEPT, JSON);
    if has_body {
        out.insert(http_header::CONTENT_TYPE, JSON);
    }
    // The gateway must be able to parse what it releases: no compressed partner bodies.
    out.insert(
        http_header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    out.insert(
        FSC_TRANSACTION_ID,
        headers::transaction_id(exchange.transaction_id),
    );
    out.insert(TRACEPARENT, exchange.traceparent.clone());
    if let Some(oin) = &consumer.oin {
        if let Ok(v) = HeaderValue::from_str(oin.as_str()) {
            out.insert(DOELBINDING_REQUESTER, v);
        }
    }
    out
}

/// The signed statement of this exchange's lawful basis for the partner (see
/// [`crate::assertion`]). A signing failure refuses the exchange: nothing is forwarded
/// without it.
fn assertion(
    state: &GatewayState,
    call: &Call<'_>,
    permit: &Permit,
    exchange: &Exchange,
) -> Result<HeaderValue, Problem> {
    let purpose = permit.purpose();
    let mut tx = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let audit_record_id = exchange.transaction_id.hyphenated().encode_lower(&mut tx);
    let claims = crate::assertion::AssertionClaims {
        iss: &state.gateway_id,
        sub: call
            .consumer
            .oin
            .as_ref()
            .map_or(call.consumer.id.as_str(), |o| o.as_str()),
        aud: call
            .partner
            .oin
            .as_ref()
            .map_or(call.partner.id.as_str(), |o| o.as_str()),
        purpose: &purpose.id,
        legal_basis: purpose.legal_basis_text.as_deref(),
        processing_activity: purpose.processing_activity.as_deref(),
        case_id: exchange.case_id.as_deref(),
        audit_record_id,
    };
    state
        .assertions
        .sign(&claims)
        .ok()
        .and_then(|token| HeaderValue::from_str(&token).ok())
        .map(|mut value| {
            // Unique per exchange, so HTTP/2 header compression gains nothing by indexing it;
            // sensitive values are sent "never indexed" and kept out of the HPACK tables.
            value.set_sensitive(true);
            value
        })
        .ok_or_else(|| {
            Problem::new(
                ProblemCode::Internal,
                "the gateway could not sign the assertion for the partner",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderName;

    #[test]
    fn the_partner_gets_only_the_gateways_own_headers() {
        let consumer = Consumer::example(
            "c",
            "C",
            Some(crate::identity::Oin::parse("00000001999990001000").unwrap()),
        );
        let exchange = Exchange::begin(&HeaderMap::new());
        for has_body in [false, true] {
            let out = forwarded_request_headers(has_body, &exchange, &consumer);
            let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
            names.sort();
            let mut expected = vec![
                "accept",
                "accept-encoding",
                "doelbinding-requester",
                "fsc-transaction-id",
                "traceparent",
            ];
            if has_body {
                expected.insert(2, "content-type");
            }
            assert_eq!(names, expected);
            assert_eq!(out["accept"], "application/json");
            assert_eq!(out["doelbinding-requester"], "00000001999990001000");
        }
    }
}
