//! `GET /.well-known/doelpoort/grants`: the grants the calling consumer holds, and what each
//! releases. Answered for the calling certificate only; no other consumer's grants are shown.
//! Metadata about the caller itself, not an exchange about anyone: it is not audited.

use crate::identity::Consumer;
use crate::policy::PolicySet;
use crate::problem::{Problem, ProblemCode};
use bytes::Bytes;
use http::{Method, Response};
use http_body_util::Full;

/// Where a consumer asks which grants it holds (on the data listener, answered per certificate).
pub const DISCOVERY_PATH: &str = "/.well-known/doelpoort/grants";

pub(super) fn answer(
    policy: Option<&PolicySet>,
    consumer: &Consumer,
    method: &Method,
    path: &str,
) -> Result<Response<Full<Bytes>>, Problem> {
    if path != DISCOVERY_PATH {
        return Err(Problem::new(
            ProblemCode::UnknownRoute,
            "unknown well-known resource",
        ));
    }
    if method != Method::GET && method != Method::HEAD {
        return Err(Problem::method_not_allowed("GET only", "GET, HEAD"));
    }
    let policy = policy
        .ok_or_else(|| Problem::new(ProblemCode::NotGranted, "no valid policy set is loaded"))?;
    let body = crate::policy::tools::discovery_document(policy, &consumer.id);
    Ok(crate::headers::json_answer(http::StatusCode::OK, &body))
}
