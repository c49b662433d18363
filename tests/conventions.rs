//! The ecosystem's conventions, over real TLS: the NL API Design Rules' version header and
//! security headers, W3C Trace Context (`tracestate`, later `traceparent` versions), and the
//! metrics every exporter offers (`doelpoort_build_info`, `process_*`).

mod harness;

use bytes::Bytes;
use harness::*;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use std::sync::Arc;

/// A partner that answers `{"ok":true}` with the given `API-Version`.
fn versioned(version: &'static str) -> doelpoort::demo::MockHandler {
    Arc::new(move |_req| {
        Box::pin(async move {
            let mut r = Response::new(Full::new(Bytes::from_static(br#"{"ok":true}"#)));
            r.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            r.headers_mut()
                .insert("api-version", version.parse().unwrap());
            r
        })
    })
}

async fn call(
    client: &TestClient,
    gateway: &doelpoort::server::RunningGateway,
    headers: &[(&str, &str)],
) -> TestResponse {
    let mut request = Request::get(url(gateway, "/uwv/v1/personen/999990019/inkomen"))
        .header("doelbinding-purpose", TEST_PURPOSE)
        .header("doelbinding-data-subject", "bsn=999990019");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(client, request.body(Full::new(Bytes::new())).unwrap()).await
}

#[tokio::test]
async fn a_partners_api_version_reaches_the_caller_when_it_is_a_version() {
    for (sent, relayed) in [
        ("1.4.2", Some("1.4.2")),
        ("2.0.0-rc.1", Some("2.0.0-rc.1")),
        ("1.4", None),
        ("1.4.2; build=999990019", None),
        ("999.990.019", None),
    ] {
        let pki = TestPki::new();
        let partner = start_partner(&pki, versioned(sent)).await;
        let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
        let client = client(&pki, "consumer", Http::One);
        let response = call(&client, &gateway, &[]).await;
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
        assert_eq!(
            response
                .headers
                .get("api-version")
                .map(|v| v.to_str().unwrap()),
            relayed,
            "{sent}"
        );
    }
}

#[tokio::test]
async fn tracestate_travels_with_a_continued_trace_of_any_version() {
    let pki = TestPki::new();
    let (handler, recorded) = recording(versioned("1.0.0"));
    let partner = start_partner(&pki, handler).await;
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    let client = client(&pki, "consumer", Http::One);
    let state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
    for parent in [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        // A later version is read as far as version 00 goes, and passed on as 00.
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later-fields",
    ] {
        let response = call(
            &client,
            &gateway,
            &[("traceparent", parent), ("tracestate", state)],
        )
        .await;
        assert_eq!(response.status, StatusCode::OK);
        let received = recorded.last();
        let forwarded = received.headers["traceparent"].to_str().unwrap();
        assert!(
            forwarded.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{forwarded}"
        );
        assert_eq!(received.headers["tracestate"], state, "{parent}");
    }
    // A trace that is not continued starts without state; a state with a BSN is not passed on.
    for (parent, state) in [
        ("garbage", "congo=t61rcWkgMzE"),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "congo=999990019",
        ),
    ] {
        call(
            &client,
            &gateway,
            &[("traceparent", parent), ("tracestate", state)],
        )
        .await;
        assert!(
            !recorded.last().headers.contains_key("tracestate"),
            "{parent} {state}"
        );
    }
}

fn assert_secure(headers: &http::HeaderMap, over_tls: bool, what: &str) {
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
        (
            "content-security-policy",
            "default-src 'none'; frame-ancestors 'none'",
        ),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(
            headers.get(name).map(|v| v.to_str().unwrap()),
            Some(value),
            "{what}: {name}"
        );
    }
    assert_eq!(
        headers.contains_key("strict-transport-security"),
        over_tls,
        "{what}"
    );
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let pki = TestPki::new();
    let partner = start_partner(&pki, versioned("1.0.0")).await;
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    let consumer = client(&pki, "consumer", Http::One);
    let released = call(&consumer, &gateway, &[]).await;
    assert_eq!(released.status, StatusCode::OK);
    assert_secure(&released.headers, true, "a released answer");
    let refused = get(
        &client(&pki, "unknown", Http::Two),
        &url(&gateway, "/uwv/v1/ping"),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_secure(&refused.headers, true, "a problem");
    let discovery = get(&consumer, &url(&gateway, "/.well-known/doelpoort/grants")).await;
    assert_eq!(discovery.status, StatusCode::OK);
    assert_secure(&discovery.headers, true, "the grants discovery document");
    let admin = gateway
        .admin_addr
        .expect("the test gateway has an admin listener");
    for path in ["/healthz", "/readyz", "/metrics", "/version", "/nowhere"] {
        let (head, _) = admin_get(admin, path).await;
        assert_secure(&head, false, path);
    }
}

#[tokio::test]
async fn build_info_and_process_metrics_are_exported() {
    let pki = TestPki::new();
    let partner = start_partner(&pki, versioned("1.0.0")).await;
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    let (_, body) = admin_get(gateway.admin_addr.unwrap(), "/metrics").await;
    let line = body
        .lines()
        .find(|l| l.starts_with("doelpoort_build_info{"))
        .unwrap_or_else(|| panic!("no build info:\n{body}"));
    assert!(
        line.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    assert!(
        line.contains("revision=\"") && line.ends_with(" 1"),
        "{line}"
    );
    for family in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            body.lines().any(|l| l.starts_with(family)),
            "{family} missing"
        );
    }
}

/// A GET on the admin listener: its headers and body.
async fn admin_get(addr: std::net::SocketAddr, path: &str) -> (http::HeaderMap, String) {
    let (_, headers, body) = admin_request(addr, http::Method::GET, path).await;
    (headers, body)
}
