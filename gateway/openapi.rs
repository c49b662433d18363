//! Doelpoort's own API in OpenAPI 3.1 (`docs/openapi.yaml`): embedded in the binary, published
//! on both listeners (NL API Design Rules, /core/publish-openapi), and the source of the
//! `API-Version` the gateway's own answers carry (/core/version-header).
//!
//! `tests/openapi.rs` validates the document with a third-party validator and holds the
//! routers to it: every path and method the document names is answered, and the gateway
//! answers no route of its own that the document does not name.

use crate::problem::{Problem, ProblemCode};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use std::sync::OnceLock;

/// The document as written.
pub const YAML: &str = include_str!("../docs/openapi.yaml");

/// Where the data listener publishes the document (under the case register's API root).
pub const DATA_PATHS: [&str; 2] = ["/doelpoort/v1/openapi.json", "/doelpoort/v1/openapi.yaml"];
/// Where the admin listener publishes it.
pub const ADMIN_PATHS: [&str; 2] = ["/openapi.json", "/openapi.yaml"];

struct Published {
    json: Bytes,
    version: HeaderValue,
}

fn published() -> &'static Published {
    static DOCUMENT: OnceLock<Published> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        // The document is part of the source and checked by its tests: it parses.
        let value: serde_json::Value = serde_saphyr::from_str(YAML).unwrap_or_default();
        let version = value["info"]["version"].as_str().unwrap_or("0.0.0");
        Published {
            json: Bytes::from(serde_json::to_vec(&value).unwrap_or_default()),
            version: HeaderValue::from_str(version)
                .unwrap_or_else(|_| HeaderValue::from_static("0.0.0")),
        }
    })
}

/// The version of the gateway's own API (`info.version`), for `API-Version`.
pub fn api_version() -> HeaderValue {
    published().version.clone()
}

/// Whether `path` (a full request path) is where a listener publishes the document.
pub fn is_document(path: &str) -> bool {
    DATA_PATHS.contains(&path) || ADMIN_PATHS.contains(&path)
}

/// The document, as JSON or YAML by the path's extension; GET and HEAD only.
pub fn answer(method: &Method, path: &str) -> Result<Response<Full<Bytes>>, Problem> {
    if method != Method::GET && method != Method::HEAD {
        return Err(Problem::method_not_allowed(
            "the OpenAPI document is read with GET",
            "GET, HEAD",
        ));
    }
    let (body, content_type) = if path.ends_with(".yaml") {
        (Bytes::from_static(YAML.as_bytes()), "application/yaml")
    } else if path.ends_with(".json") {
        (published().json.clone(), "application/json")
    } else {
        return Err(Problem::new(ProblemCode::UnknownRoute, "no such document"));
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_parses_and_names_its_version() {
        let value: serde_json::Value = serde_saphyr::from_str(super::YAML).unwrap();
        assert_eq!(value["openapi"], "3.1.0");
        // The YAML alias for the common headers is expanded.
        assert!(
            value["paths"]["/healthz"]["get"]["responses"]["200"]["headers"]["X-Frame-Options"]
                .is_object()
        );
        assert_eq!(
            super::api_version(),
            value["info"]["version"].as_str().unwrap()
        );
    }
}
