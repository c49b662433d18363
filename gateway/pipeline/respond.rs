//! Phase *respond*: the last one every exchange reaches. It turns the outcome into the
//! caller's response (a problem becomes `application/problem+json`), and projects the
//! concluded exchange onto the metrics and the access log.
//!
//! Label values and log fields come from configuration and policy only (bounded), never from
//! the request: no path (it holds BSNs), header or body.

use super::Outcome;
use crate::exchange::{Concluded, Decision};
use crate::headers::{self, FSC_TRANSACTION_ID, TRACEPARENT};
use crate::state::GatewayState;
use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use std::time::Duration;

pub(super) fn respond(
    state: &GatewayState,
    concluded: &Concluded,
    outcome: Outcome,
) -> Response<Full<Bytes>> {
    // The final outcome: the record phase may have refused what the phases allowed.
    let decision = Decision::of(outcome.as_ref().map(|_| ()));
    let reason = outcome.as_ref().err().map(|p| p.code.as_str());
    let tx = headers::transaction_id(concluded.transaction_id);
    let mut response = match outcome {
        Ok(mut response) => {
            if state.inway.is_some() {
                report_fields(concluded, response.headers_mut());
            }
            response
        }
        Err(problem) => problem.into_response(&state.problem_base, tx.to_str().unwrap_or_default()),
    };
    response.headers_mut().insert(FSC_TRANSACTION_ID, tx);
    // An answer of the gateway's own API (no partner behind it) names that API's version; a
    // partner's answer carries the partner's, when it sent a well-formed one.
    if concluded.partner.is_none() {
        response
            .headers_mut()
            .insert(headers::API_VERSION, crate::openapi::api_version());
    }
    response
        .headers_mut()
        .insert(TRACEPARENT, concluded.traceparent.clone());
    let elapsed = concluded.started.elapsed();
    count(state, concluded, decision, reason, elapsed);
    log_access(
        concluded,
        decision,
        reason,
        response.status().as_u16(),
        elapsed,
    );
    response
}

/// At an inway: which fields the provider released and withheld, for the outway's record (as
/// the audit record states them: array positions and undeclared members `*`, each field once;
/// a BSN-like run of digits as `#`).
fn report_fields(concluded: &Concluded, headers: &mut http::HeaderMap) {
    for (name, pointers) in [
        (
            headers::DOELBINDING_FIELDS_RELEASED,
            &concluded.fields_released,
        ),
        (
            headers::DOELBINDING_FIELDS_WITHHELD,
            &concluded.fields_withheld,
        ),
    ] {
        // The fields as the audit record states them (one function says what a field is).
        let mut paths = crate::policy::fields::stated(pointers.iter(), concluded.response_schema());
        paths.sort();
        // Paths that are not plain visible ASCII (or would make the list ambiguous) are not
        // reported; the inway's own record holds them all.
        paths.retain(|p| !p.contains(',') && p.bytes().all(|b| b.is_ascii_graphic()));
        paths.truncate(256);
        if let Ok(value) = http::HeaderValue::from_str(&paths.join(",")) {
            headers.insert(name, value);
        }
    }
}

/// The metrics' projection of an exchange.
fn count(
    state: &GatewayState,
    concluded: &Concluded,
    decision: Decision,
    reason: Option<&str>,
    elapsed: Duration,
) {
    let (consumer, partner) = (concluded.consumer_id(), concluded.partner_id());
    let (operation, purpose) = (concluded.operation_id(), concluded.purpose_id());
    let metrics = &state.metrics;
    metrics
        .requests_total
        .with_label_values(&[consumer, partner, operation, purpose, decision.as_str()])
        .inc();
    metrics
        .request_duration
        .with_label_values(&[partner, decision.as_str()])
        .observe(elapsed.as_secs_f64());
    if let Some(code) = reason {
        metrics
            .problems_total
            .with_label_values(&[consumer, partner, code])
            .inc();
    }
    if let Some(elapsed) = concluded.upstream_elapsed {
        metrics
            .upstream_duration
            .with_label_values(&[partner])
            .observe(elapsed.as_secs_f64());
    }
    if let Some(kind) = concluded.upstream_error {
        metrics
            .upstream_errors
            .with_label_values(&[partner, kind.as_str()])
            .inc();
    }
    if !concluded.fields_withheld.is_empty() {
        metrics
            .fields_withheld
            .with_label_values(&[partner, operation, purpose])
            .inc_by(concluded.fields_withheld.values() as u64);
    }
}

/// The access log's projection: configured names, codes and numbers only.
fn log_access(
    concluded: &Concluded,
    decision: Decision,
    reason: Option<&str>,
    status: u16,
    elapsed: Duration,
) {
    tracing::info!(
        target: "doelpoort::access",
        transaction_id = %concluded.transaction_id,
        trace_id = %concluded.trace.trace_id_hex(),
        consumer = concluded.consumer_id(),
        partner = concluded.partner_id(),
        operation = concluded.operation_id(),
        purpose = concluded.purpose_id(),
        grant = concluded.grant.as_ref().map_or("", |g| g.id.as_str()),
        policy_version = concluded.policy.as_ref().map_or("", |p| p.version.as_str()),
        decision = decision.as_str(),
        reason = reason.unwrap_or(""),
        status,
        upstream_status = concluded.upstream_status.map_or(0, |s| s.as_u16()),
        duration_us = elapsed.as_micros() as u64,
    );
}
