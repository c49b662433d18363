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
    let released = fields(&answer.headers, &DOELBINDING_FIELDS_RELEASED);
    let withheld = fields(&answer.headers, &DOELBINDING_FIELDS_WITHHELD);
    Report {
        fsc_error_code: answer
            .headers
            .get(crate::fsc::FSC_ERROR_CODE)
            .and_then(|v| v.to_str().ok())
            .filter(|v| crate::fsc::is_error_code(v))
            .map(str::to_string),
        provider_fields: (released.is_some() || withheld.is_some()).then(|| ProviderFields {
            released: released.unwrap_or_default(),
            withheld: withheld.unwrap_or_default(),
        }),
    }
}

/// A `Doelbinding-Fields-*` list: comma-separated field paths, each empty (the whole
/// document) or starting with `/`, visible ASCII only, at most 256 of them.
fn fields(headers: &HeaderMap, name: &http::HeaderName) -> Option<Vec<String>> {
    let value = headers.get(name)?.to_str().ok()?;
    if value.trim().is_empty() {
        return Some(Vec::new());
    }
    let list: Vec<String> = value.split(',').map(|p| p.trim().to_string()).collect();
    let valid = list.len() <= 256
        && list.iter().all(|p| {
            p.is_empty() || (p.starts_with('/') && p.bytes().all(|b| b.is_ascii_graphic()))
        });
    valid.then_some(list)
}
