//! `docs/openapi.yaml`, the description of the gateway's own API, held to the gateway:
//! - a third-party validator (`openapi-spec-validator`, from PyPI, pinned in
//!   `tests/openapi/requirements.txt`) accepts it as OpenAPI 3.1;
//! - every path and method it names is answered by the listener it names (not `unknown-route`,
//!   not `method-not-allowed`);
//! - the gateway answers nothing of its own that it does not name: every other method on
//!   those paths is `405`, and the paths around them are `404` (no drift either way);
//! - both listeners publish it, and their answers carry `API-Version` = its `info.version`.

mod harness;

use bytes::Bytes;
use harness::*;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn document() -> serde_json::Value {
    serde_saphyr::from_str(&std::fs::read_to_string(repo_root().join("docs/openapi.yaml")).unwrap())
        .unwrap()
}

/// The validator's own virtual environment, made (from PyPI) when missing.
fn validator() -> PathBuf {
    let dir = repo_root().join("tests").join("openapi");
    let venv = dir.join(".venv");
    let bin = venv.join("bin").join("openapi-spec-validator");
    if !bin.is_file() {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap();
        assert!(
            made.success(),
            "python3 -m venv failed (tests/run installs python3-venv)"
        );
        let installed = Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(dir.join("requirements.txt"))
            .status()
            .unwrap();
        assert!(installed.success(), "pip install of the validator failed");
    }
    bin
}

#[test]
fn a_third_party_validator_accepts_the_document() {
    let out = Command::new(validator())
        .arg(repo_root().join("docs/openapi.yaml"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("OK"), "{text}");
}

/// Which listener a path is on: the admin listener where the path overrides the servers.
fn on_admin(item: &serde_json::Value) -> bool {
    item["servers"].as_array().is_some_and(|s| {
        s.iter()
            .any(|s| s["url"].as_str().unwrap().ends_with(":9901"))
    })
}

const METHODS: [&str; 7] = ["get", "head", "put", "post", "patch", "delete", "options"];

#[tokio::test]
async fn the_gateway_answers_exactly_what_the_document_names() {
    let doc = document();
    let pki = TestPki::new();
    let partner = start_partner(&pki, echo()).await;
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    let admin = gateway.admin_addr.unwrap();
    let consumer = client(&pki, "consumer", Http::One);
    let version = doc["info"]["version"].as_str().unwrap();

    let mut named = BTreeSet::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        let path = template.replace("{case_id}", "casus-openapi-1");
        let admin_path = on_admin(item);
        for method in METHODS {
            let documented = item.get(method).is_some()
                // HEAD is answered wherever GET is (RFC 9110 §9.3.2).
                || (method == "head" && item.get("get").is_some());
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (status, headers, body) = if admin_path {
                admin_request(admin, m.clone(), &path).await
            } else {
                let request = Request::builder()
                    .method(m.clone())
                    .uri(url(&gateway, &path))
                    .header("doelbinding-actor", "medewerker-0042")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let r = send(&consumer, request).await;
                let body = String::from_utf8_lossy(&r.body).to_string();
                (r.status, r.headers, body)
            };
            let what = format!("{method} {template}");
            let body: String = body.chars().take(300).collect();
            let unknown_route =
                status == StatusCode::NOT_FOUND && body.contains("\"code\":\"unknown-route\"");
            // The token endpoint lives at an inway only (the document says so); this is an
            // outway, which answers it 404 unknown-route (tests/fsc.rs covers the inway).
            if template == "/doelpoort/fsc/v1/token" {
                assert_eq!(status, StatusCode::NOT_FOUND, "{what}: {body}");
                continue;
            }
            if documented {
                named.insert(what.clone());
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{what}: {body}");
                assert!(
                    !unknown_route,
                    "{what} is in the document but not answered: {body}"
                );
                assert_eq!(
                    headers.get("api-version").map(|v| v.to_str().unwrap()),
                    Some(version),
                    "{what}: the gateway's own answers name its API version"
                );
            } else {
                assert!(
                    status == StatusCode::METHOD_NOT_ALLOWED
                        || (method == "options" && status == StatusCode::NOT_FOUND),
                    "{what} is answered ({status}) but not in the document: {body}"
                );
            }
        }
    }
    assert!(named.len() >= 14, "{named:?}");

    // Around the documented paths: nothing else of the gateway's own is answered.
    for path in [
        "/doelpoort/v1/cases",
        "/doelpoort/v1/cases/casus-openapi-1/other",
        "/doelpoort/v1/other",
        "/doelpoort/v2/cases/casus-openapi-1",
        "/doelpoort/v1/openapi.txt",
        "/doelpoort/openapi.json",
        "/.well-known/doelpoort/other",
        "/.well-known/openapi.json",
    ] {
        let r = get(&consumer, &url(&gateway, path)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.problem_code(), "unknown-route", "{path}");
    }
    for path in [
        "/",
        "/health",
        "/metrics/",
        "/version.json",
        "/.well-known/other",
        "/openapi",
        "/doelpoort/v1/openapi.json",
    ] {
        let (status, _, _) = admin_request(admin, Method::GET, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "admin {path}");
    }
}

#[tokio::test]
async fn both_listeners_publish_the_document() {
    let doc = document();
    let pki = TestPki::new();
    let partner = start_partner(&pki, echo()).await;
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    let consumer = client(&pki, "consumer", Http::Two);
    let data = get(&consumer, &url(&gateway, "/doelpoort/v1/openapi.json")).await;
    assert_eq!(data.status, StatusCode::OK);
    assert_eq!(data.headers["content-type"], "application/json");
    assert_eq!(data.json(), doc);
    let yaml = get(&consumer, &url(&gateway, "/doelpoort/v1/openapi.yaml")).await;
    assert_eq!(yaml.status, StatusCode::OK);
    assert_eq!(
        String::from_utf8_lossy(&yaml.body),
        std::fs::read_to_string(repo_root().join("docs/openapi.yaml")).unwrap()
    );
    let (status, headers, body) =
        admin_request(gateway.admin_addr.unwrap(), Method::GET, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        doc
    );
    // A partner answer names the partner's version, not the gateway's.
    let partner_answer = get(&consumer, &url(&gateway, "/uwv/v1/ping")).await;
    assert!(
        partner_answer.headers.get("api-version").is_none(),
        "{:?}",
        partner_answer.headers
    );
    // Every problem code the gateway can answer is in the document's enum.
    let codes: BTreeSet<&str> = doc["components"]["schemas"]["Problem"]["properties"]["code"]
        ["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for code in doelpoort::problem::ProblemCode::ALL {
        assert!(codes.contains(code.as_str()), "{} missing", code.as_str());
    }
    assert_eq!(codes.len(), doelpoort::problem::ProblemCode::ALL.len());
}
