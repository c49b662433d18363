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
use crate::policy::decide::Permit;
use crate::problem::{Problem, ProblemCode};
use crate::state::GatewayState;
use crate::upstream::{UpstreamError, UpstreamRequest, UpstreamResponse};
use bytes::Bytes;
use http::header::{self as http_header, HeaderMap, HeaderValue};

/// What the gateway says for itself on a forwarded request, besides the permit's lawful basis.
pub(super) enum Credentials<'a> {
    /// At an outway: a freshly signed assertion, and the FSC access token for a partner that
    /// runs an FSC inway.
    Outway { fsc_token: Option<&'a str> },
    /// At an inway: the calling gateway's assertion and FSC token, passed on to the
    /// provider's service as they arrived (FSC: the inway must not remove `Fsc-Authorization`).
    Inway { incoming: &'a HeaderMap },
}

/// The permitted request: the caller's allow-listed headers, the gateway's own, and the
/// signed assertion (its `jti` is returned for the record). A signing failure refuses the
/// exchange: nothing is sent without it.
pub(super) fn request(
    state: &GatewayState,
    call: &Call<'_>,
    permit: &Permit,
    body: Bytes,
    exchange: &Exchange,
    credentials: Credentials<'_>,
) -> Result<(UpstreamRequest, Option<String>), Problem> {
    let requester = exchange.requester.as_deref().or(call
        .consumer
        .oin
        .as_ref()
        .map(|o| o.as_str()));
    let mut headers = forwarded_request_headers(!body.is_empty(), exchange, requester);
    let jti = match credentials {
        Credentials::Outway { fsc_token } => {
            let (assertion, jti) = assertion(state, call, permit, exchange)?;
            headers.insert(DOELBINDING_ASSERTION, assertion);
            if let Some(token) = fsc_token {
                // A token that cannot be sent as it is (the manager's answer was checked
                // for this) is never dropped silently: without it nothing is sent.
                let value = HeaderValue::from_str(token).map_err(|_| {
                    Problem::new(
                        ProblemCode::UpstreamUnavailable,
                        "no access token could be obtained for this partner (FSC)",
                    )
                })?;
                headers.insert(crate::fsc::FSC_AUTHORIZATION, sensitive(value));
            }
            Some(jti)
        }
        Credentials::Inway { incoming } => {
            for name in [DOELBINDING_ASSERTION, crate::fsc::FSC_AUTHORIZATION] {
                if let Some(value) = incoming.get(&name) {
                    headers.insert(name, sensitive(value.clone()));
                }
            }
            None
        }
    };
    // A HEAD is answered as the GET it mirrors would be, so the partner is asked the GET: its
    // answer is checked and minimised the same way, and only the body is left out.
    let method = if call.parts.method == http::Method::HEAD {
        http::Method::GET
    } else {
        call.parts.method.clone()
    };
    Ok((
        UpstreamRequest::new(
            permit,
            method,
            call.path,
            call.parts.uri.query(),
            headers,
            body,
        ),
        jti,
    ))
}

/// Credentials are unique per context, so HTTP/2 header compression gains nothing by
/// indexing them; sensitive values are sent "never indexed" and kept out of the HPACK tables.
fn sensitive(mut value: HeaderValue) -> HeaderValue {
    value.set_sensitive(true);
    value
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
    requester: Option<&str>,
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
    if let Some(state) = &exchange.tracestate {
        out.insert(crate::trace::TRACESTATE, state.clone());
    }
    if let Some(v) = requester.and_then(|r| HeaderValue::from_str(r).ok()) {
        out.insert(DOELBINDING_REQUESTER, v);
    }
    out
}

/// The signed statement of this exchange's lawful basis for the partner (see
/// [`crate::assertion`]), and its `jti`. A signing failure refuses the exchange: nothing is
/// forwarded without it.
fn assertion(
    state: &GatewayState,
    call: &Call<'_>,
    permit: &Permit,
    exchange: &Exchange,
) -> Result<(HeaderValue, String), Problem> {
    let purpose = permit.purpose();
    let data_subject = exchange
        .subject
        .as_ref()
        .map(|bsn| format!("bsn={}", bsn.as_str()));
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
        data_subject: data_subject.as_deref(),
        cnf: crate::assertion::Confirmation {
            x5t_s256: &call.partner.client_thumbprint,
        },
    };
    // Valid through the last day of the grant (UTC), and not a second longer.
    let grant_ends = permit
        .grant()
        .valid_until
        .map(|day| (day.midnight().assume_utc().unix_timestamp() + 86_400).max(0) as u64);
    state
        .assertions
        .for_context(&claims, grant_ends)
        .ok()
        .and_then(|signed| {
            HeaderValue::from_str(&signed.token)
                .ok()
                .map(|v| (sensitive(v), signed.jti))
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
    use crate::identity::Consumer;
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
            let out = forwarded_request_headers(
                has_body,
                &exchange,
                consumer.oin.as_ref().map(|o| o.as_str()),
            );
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
