//! Phase *release*: only a successful partner answer is released at all, and only as a
//! [`Released`] body, which only minimisation builds.

use super::Call;
use crate::headers::{is_releasable, JSON, NO_STORE, RELEASED_RESPONSE_HEADERS};
use crate::minimise::Released;
use crate::policy::decide::Permit;
use crate::policy::PolicySet;
use crate::problem::{Problem, ProblemCode};
use crate::state::GatewayState;
use crate::upstream::UpstreamResponse;
use bytes::Bytes;
use http::header;
use http::{Response, StatusCode};
use http_body_util::Full;

/// The caller's response and what minimisation released and withheld.
pub(super) struct Release {
    pub response: Response<Full<Bytes>>,
    pub fields_released: crate::minimise::PointerList,
    pub fields_withheld: crate::minimise::PointerList,
}

/// Checks the partner's status and minimises its body for the permit's grant.
pub(super) fn release(
    state: &GatewayState,
    policy: &PolicySet,
    call: &Call<'_>,
    permit: &Permit,
    answer: UpstreamResponse,
) -> Result<Release, Problem> {
    check_partner_status(answer.status)?;
    let without_body = matches!(
        answer.status,
        StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
    );
    let mut released = if without_body {
        Released::nothing()
    } else if let Some(relayed) = benchmark_pass_through(state, &answer) {
        relayed
    } else {
        let schema = permit
            .operation()
            .response_schema
            .as_deref()
            .and_then(|name| policy.strict_schema(name));
        crate::minimise::release(
            &answer.body,
            answer.headers.get(header::CONTENT_TYPE),
            &permit.grant().release,
            schema,
            &crate::minimise::transform::Context {
                pseudonym_key: Some(&call.consumer.pseudonym_key),
                today: call.today,
            },
            &state.minimise_limits,
        )?
    };
    let (mut fields_released, fields_withheld) = released.take_fields();
    if call.parts.method == http::Method::HEAD {
        // Checked and minimised like the GET, but answered without its body (see `serve`):
        // nothing of it was released.
        fields_released = Default::default();
    }
    Ok(Release {
        response: respond_with(&answer, released),
        fields_released,
        fields_withheld,
    })
}

/// The pass-through baseline of `cargo bench --bench proxy`: the partner's body relayed as it
/// came. Only a build with the `benchmark-switches` feature has it; a production build cannot
/// be configured to skip minimisation.
#[cfg(feature = "benchmark-switches")]
fn benchmark_pass_through(state: &GatewayState, answer: &UpstreamResponse) -> Option<Released> {
    state
        .benchmark
        .skip_minimisation
        .then(|| Released::unminimised(answer.body.clone()))
}

#[cfg(not(feature = "benchmark-switches"))]
fn benchmark_pass_through(_: &GatewayState, _: &UpstreamResponse) -> Option<Released> {
    None
}

/// Only a successful partner answer is released at all; anything else becomes a problem and
/// the partner's body (which may hold personal data or internals) is dropped.
fn check_partner_status(status: StatusCode) -> Result<(), Problem> {
    if status.is_client_error() {
        return Err(Problem::partner_rejected(status));
    }
    if !(status.is_success() || status == StatusCode::NOT_MODIFIED) {
        // 5xx, 1xx leftovers and redirects.
        return Err(Problem::new(
            ProblemCode::UpstreamUnavailable,
            format!("the partner answered {status}; its response body is not released"),
        ));
    }
    Ok(())
}

/// The response to the caller: the partner's status, the allow-listed partner headers with
/// well-formed values, `Cache-Control: no-store`, and the released body. A non-empty body is
/// always the gateway's own JSON serialisation.
fn respond_with(answer: &UpstreamResponse, released: Released) -> Response<Full<Bytes>> {
    let body = released.into_body();
    let has_body = !body.is_empty();
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = answer.status;
    let headers = response.headers_mut();
    for name in &RELEASED_RESPONSE_HEADERS {
        for value in answer.headers.get_all(name) {
            // Of the well-formed shape, and nothing in it that could be a BSN (a version
            // `999.990.019` is one).
            let bsn_free = value
                .to_str()
                .is_ok_and(|text| !crate::context::holds_bsn(text));
            if is_releasable(name, value) && bsn_free {
                headers.append(name.clone(), value.clone());
            }
        }
    }
    headers.insert(header::CACHE_CONTROL, NO_STORE);
    if has_body {
        headers.insert(header::CONTENT_TYPE, JSON);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderName, HeaderValue};
    use http::HeaderMap;

    #[test]
    fn releases_only_allow_listed_response_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::SERVER, HeaderValue::from_static("partner/1.0"));
        headers.insert(header::SET_COOKIE, HeaderValue::from_static("s=1"));
        headers.insert("x-powered-by", HeaderValue::from_static("php"));
        headers.insert(header::ETAG, HeaderValue::from_static("\"v1\""));
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000"),
        );
        headers.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        headers.insert(
            header::CONTENT_LANGUAGE,
            HeaderValue::from_static("nl; persoon 999990019"),
        );
        let answer = UpstreamResponse {
            status: StatusCode::OK,
            headers,
            body: Bytes::from_static(b"{\"bsn\":\"999990019\"}"),
            elapsed: std::time::Duration::ZERO,
        };
        let response = respond_with(&answer, Released::nothing());
        let mut names: Vec<&str> = response.headers().keys().map(HeaderName::as_str).collect();
        names.sort();
        assert_eq!(names, ["cache-control", "last-modified"]);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn partner_errors_are_not_relayed() {
        let err = check_partner_status(StatusCode::INTERNAL_SERVER_ERROR).unwrap_err();
        assert_eq!(err.code, ProblemCode::UpstreamUnavailable);
        let err = check_partner_status(StatusCode::NOT_FOUND).unwrap_err();
        assert_eq!(err.status(), StatusCode::NOT_FOUND);
        let err = check_partner_status(StatusCode::FOUND).unwrap_err();
        assert_eq!(err.code, ProblemCode::UpstreamUnavailable);
        assert!(check_partner_status(StatusCode::OK).is_ok());
        assert!(check_partner_status(StatusCode::NOT_MODIFIED).is_ok());
    }
}
