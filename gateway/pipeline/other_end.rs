//! Phase *forward*, at an outway whose partner runs an inway: what the other end reports back
//! (its FSC error code, the fields the provider released and withheld), kept for the record so
//! both logs can be joined on `Fsc-Transaction-Id` (SPEC §10), and the FSC error of a
//! transaction log that could not be written.

use crate::exchange::ProviderFields;
use crate::headers::{DOELBINDING_FIELDS_RELEASED, DOELBINDING_FIELDS_WITHHELD};
use crate::problem::Problem;
use crate::upstream::{UpstreamError, UpstreamResponse};
use http::HeaderMap;

/// At an outway, for an exchange with an FSC partner: a transaction log that could not be
/// written is an error within FSC's scope (logging 1.0, Outway "Error response").
pub(super) fn fsc_scope(problem: Problem) -> Problem {
    if problem.code == crate::problem::ProblemCode::AuditUnavailable && problem.fsc.is_none() {
        problem
            .with_fsc(crate::fsc::FscError::TransactionLogWriteError.tag(crate::fsc::Side::Outway))
    } else {
        problem
    }
}

/// What the other end reports in its answer.
#[derive(Default)]
pub(super) struct Report {
    pub(super) fsc_error_code: Option<String>,
    pub(super) provider_fields: Option<ProviderFields>,
}

/// Reads the other end's report from its answer: a well-formed `Fsc-Error-Code`, and the
/// provider's `Doelbinding-Fields-*` lists. Malformed reports are ignored (they are the
/// provider's statement, recorded for joining logs, never trusted for the release).
pub(super) fn report(answer: &Result<UpstreamResponse, UpstreamError>) -> Report {
    let Ok(answer) = answer else {
        return Report::default();
    };
    // Both lists, each well-formed, or nothing: half a report would read as "withheld nothing".
    let released = fields(&answer.headers, &DOELBINDING_FIELDS_RELEASED);
    let withheld = fields(&answer.headers, &DOELBINDING_FIELDS_WITHHELD);
    Report {
        // An FSC error code means something only on an error.
        fsc_error_code: (answer.status.is_client_error() || answer.status.is_server_error())
            .then(|| answer.headers.get(crate::fsc::FSC_ERROR_CODE))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .filter(|v| crate::fsc::is_error_code(v))
            .map(str::to_string),
        provider_fields: released
            .zip(withheld)
            .map(|(released, withheld)| ProviderFields { released, withheld }),
    }
}

/// Whether the other end refused the FSC access token the outway sent (the cached token is
/// then dropped, so the next exchange asks the manager for a new one).
pub(super) fn token_refused(report: &Report) -> bool {
    matches!(
        report.fsc_error_code.as_deref(),
        Some("ERROR_CODE_ACCESS_TOKEN_INVALID" | "ERROR_CODE_ACCESS_TOKEN_EXPIRED")
    )
}

/// A `Doelbinding-Fields-*` list: comma-separated field paths, each empty (the whole
/// document) or starting with `/`, visible ASCII only, at most 256 of them, none holding
/// what looks like a BSN (the record must not, whatever the provider sends).
fn fields(headers: &HeaderMap, name: &http::HeaderName) -> Option<Vec<String>> {
    let value = headers.get(name)?.to_str().ok()?;
    if value.trim().is_empty() {
        return Some(Vec::new());
    }
    let list: Vec<String> = value.split(',').map(|p| p.trim().to_string()).collect();
    let valid = list.len() <= 256
        && list.iter().all(|p| {
            p.is_empty()
                || (p.starts_with('/')
                    && p.bytes().all(|b| b.is_ascii_graphic())
                    && !crate::context::holds_bsn(p))
        });
    valid.then_some(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, StatusCode};

    fn answer(status: StatusCode, headers: &[(&http::HeaderName, &str)]) -> UpstreamResponse {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert((*name).clone(), HeaderValue::from_str(value).unwrap());
        }
        UpstreamResponse {
            status,
            headers: map,
            body: bytes::Bytes::new(),
            elapsed: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn the_providers_report_is_recorded_only_whole_and_without_bsns() {
        let (released, withheld) = (&DOELBINDING_FIELDS_RELEASED, &DOELBINDING_FIELDS_WITHHELD);
        let report = |headers: &[(&http::HeaderName, &str)]| {
            report(&Ok(answer(StatusCode::OK, headers))).provider_fields
        };
        assert_eq!(
            report(&[
                (released, "/bsn,/trajecten/*/aanbieder"),
                (withheld, "/trajecten/*/zorginhoud")
            ]),
            Some(ProviderFields {
                released: vec!["/bsn".into(), "/trajecten/*/aanbieder".into()],
                withheld: vec!["/trajecten/*/zorginhoud".into()],
            })
        );
        // A BSN in a path, a malformed list, or half a report: nothing is recorded.
        assert_eq!(
            report(&[(released, "/bsn/999990019"), (withheld, "")]),
            None
        );
        assert_eq!(
            report(&[(released, "/a"), (withheld, "/jeugdige/999990019/dossier")]),
            None
        );
        assert_eq!(report(&[(released, "/a"), (withheld, "no slash")]), None);
        assert_eq!(report(&[(released, "/a")]), None);
    }

    #[test]
    fn an_fsc_error_code_counts_only_on_an_error() {
        let code = &crate::fsc::FSC_ERROR_CODE;
        let on = |status| {
            report(&Ok(answer(
                status,
                &[(code, "ERROR_CODE_ACCESS_TOKEN_EXPIRED")],
            )))
        };
        assert_eq!(on(StatusCode::OK).fsc_error_code, None);
        let refused = on(StatusCode::UNAUTHORIZED);
        assert_eq!(
            refused.fsc_error_code.as_deref(),
            Some("ERROR_CODE_ACCESS_TOKEN_EXPIRED")
        );
        assert!(token_refused(&refused), "the cached token is dropped");
    }
}
