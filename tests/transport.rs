//! The core gateway over real TLS on loopback: who may connect, what reaches the partner,
//! and how partner failures look to the caller.

mod harness;

use bytes::Bytes;
use harness::*;
use http::{Request, StatusCode, Version};
use http_body_util::Full;
use std::time::Duration;

/// A gateway in front of a partner that answers `{"ok":true}` and records what it received.
async fn echo_setup() -> (
    TestPki,
    doelpoort::demo::MockPartner,
    doelpoort::server::RunningGateway,
    Recorded,
) {
    let pki = TestPki::new();
    let (handler, recorded) = recording(fixed(StatusCode::OK, r#"{"ok":true}"#, Duration::ZERO));
    let partner = start_partner(&pki, handler).await;
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    (pki, partner, gateway, recorded)
}

fn handshake_failures(gateway: &doelpoort::server::RunningGateway, reason: &str) -> u64 {
    gateway
        .metrics
        .tls_handshake_failures
        .with_label_values(&[reason])
        .get()
}

#[tokio::test]
async fn no_client_certificate_is_refused_in_the_handshake() {
    let (pki, _partner, gateway, _recorded) = echo_setup().await;
    let result = try_raw_request(gateway.local_addr, client_tls(&pki, None)).await;
    let err = result.expect_err("a connection without client certificate must not be served");
    assert!(
        err.contains("CertificateRequired") || err.contains("certificate"),
        "{err}"
    );
    assert_eq!(handshake_failures(&gateway, "no_client_certificate"), 1);
}

#[tokio::test]
async fn untrusted_ca_is_refused_in_the_handshake() {
    let (pki, _partner, gateway, _recorded) = echo_setup().await;
    let err = try_raw_request(gateway.local_addr, client_tls(&pki, Some("rogue")))
        .await
        .expect_err("a certificate from an untrusted CA must not be served");
    assert!(err.contains("UnknownCA") || err.contains("alert"), "{err}");
    assert_eq!(handshake_failures(&gateway, "certificate_untrusted"), 1);
}

#[tokio::test]
async fn expired_and_not_yet_valid_certificates_are_refused() {
    let (pki, _partner, gateway, _recorded) = echo_setup().await;
    for stem in ["expired", "not-yet-valid"] {
        let err = try_raw_request(gateway.local_addr, client_tls(&pki, Some(stem)))
            .await
            .expect_err(stem);
        assert!(
            err.contains("alert") || err.contains("Certificate"),
            "{stem}: {err}"
        );
    }
    assert!(handshake_failures(&gateway, "certificate_expired") >= 1);
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_when_crls_are_configured() {
    let pki = TestPki::new();
    let partner = start_partner(&pki, echo()).await;
    let yaml = config_yaml_with_crl(&pki, &[PartnerSpec::new("uwv", partner.addr)]);
    let path = write_config(&pki, &yaml);
    let config = doelpoort::config::Config::load(&path).unwrap();
    assert_eq!(config.tls.crls.len(), 1);
    let gateway = doelpoort::server::start(&config).await.unwrap();
    let err = try_raw_request(gateway.local_addr, client_tls(&pki, Some("revoked")))
        .await
        .expect_err("a revoked certificate must not be served");
    assert!(err.contains("alert") || err.contains("Revoked"), "{err}");
    assert_eq!(handshake_failures(&gateway, "certificate_revoked"), 1);
    // Certificates the CRL does not list still get through.
    let response = get(
        &client(&pki, "consumer", Http::One),
        &url(&gateway, "/uwv/v1/ping"),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK);
}

#[tokio::test]
async fn certificate_without_client_auth_usage_is_refused() {
    let (pki, _partner, gateway, _recorded) = echo_setup().await;
    try_raw_request(gateway.local_addr, client_tls(&pki, Some("server-only")))
        .await
        .expect_err("a server-only certificate is not a client identity");
}

#[tokio::test]
async fn unknown_organisation_gets_unknown_consumer() {
    let (pki, _partner, gateway, _recorded) = echo_setup().await;
    let client = client(&pki, "unknown", Http::One);
    let response = get(
        &client,
        &url(&gateway, "/uwv/v1/personen/999990019/inkomen"),
    )
    .await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert_eq!(response.problem_code(), "unknown-consumer");
    let json = response.json();
    assert_eq!(
        json["type"],
        "https://doelpoort.example/problems/unknown-consumer"
    );
    assert_eq!(
        json["transaction_id"].as_str().unwrap(),
        response.headers["fsc-transaction-id"].to_str().unwrap()
    );
}

#[tokio::test]
async fn mapped_consumer_reaches_the_partner_over_mtls() {
    let (pki, _partner, gateway, recorded) = echo_setup().await;
    let client = client(&pki, "consumer", Http::One);
    let caller_trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let request = Request::get(url(
        &gateway,
        "/uwv/v1/personen/999990019/inkomen?peildatum=2026-01-01&extra=1",
    ))
    .header("doelbinding-purpose", TEST_PURPOSE)
    .header("doelbinding-data-subject", "bsn=999990019")
    .header("accept", "application/json")
    .header("traceparent", caller_trace)
    .header("cookie", "session=secret")
    .header("authorization", "Basic c2VjcmV0")
    .header("doelbinding-actor", "medewerker-0042")
    .header("x-internal", "1")
    .body(Full::new(Bytes::new()))
    .unwrap();
    let response = send(&client, request).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    let received = recorded.last();
    assert_eq!(received.path, "/v1/personen/999990019/inkomen");
    assert_eq!(received.query.as_deref(), Some("peildatum=2026-01-01"));
    let headers = &received.headers;
    // Added by the gateway and consistent with what the caller gets back.
    let tx = response.headers["fsc-transaction-id"].to_str().unwrap();
    assert_eq!(headers["fsc-transaction-id"], tx);
    assert_eq!(uuid::Uuid::parse_str(tx).unwrap().get_version_num(), 7);
    assert_eq!(headers["doelbinding-requester"], CONSUMER_OIN);
    let forwarded_trace = headers["traceparent"].to_str().unwrap();
    assert!(forwarded_trace.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    assert!(
        !forwarded_trace.contains("00f067aa0ba902b7"),
        "the gateway is its own span"
    );
    assert_eq!(
        response.headers["traceparent"].to_str().unwrap(),
        forwarded_trace
    );
    // Everything else the caller sent stays behind.
    for name in [
        "cookie",
        "authorization",
        "doelbinding-actor",
        "x-internal",
        "doelbinding-data-subject",
    ] {
        assert!(!headers.contains_key(name), "{name} was forwarded");
    }
    // The lawful basis travels with the request; query parameters only when granted.
    assert_eq!(headers["doelbinding-purpose"], TEST_PURPOSE);
    assert_eq!(
        headers["doelbinding-legal-basis"],
        "AVG art. 6(1)(e); Testwet"
    );
    assert_eq!(
        headers["doelbinding-processing-activity"],
        "https://register.test.example/test-doel"
    );
}

#[tokio::test]
async fn http2_and_http1_both_work_on_both_sides() {
    let (pki, _partner, gateway, recorded) = echo_setup().await;
    for (http, version) in [(Http::One, Version::HTTP_11), (Http::Two, Version::HTTP_2)] {
        let client = client(&pki, "consumer", http);
        for _ in 0..3 {
            let response = get(&client, &url(&gateway, "/uwv/v1/ping")).await;
            assert_eq!(response.status, StatusCode::OK);
            assert_eq!(response.version, version);
            // The gateway → partner leg negotiates HTTP/2 by ALPN with the mock partner.
            assert_eq!(recorded.last().version, Version::HTTP_2);
        }
    }
}

#[tokio::test]
async fn trace_is_started_when_the_caller_sends_none() {
    let (pki, _partner, gateway, recorded) = echo_setup().await;
    let client = client(&pki, "consumer", Http::One);
    let response = get(&client, &url(&gateway, "/uwv/v1/ping")).await;
    let trace = response.headers["traceparent"].to_str().unwrap();
    assert_eq!(trace.len(), 55);
    assert_eq!(recorded.last().headers["traceparent"], trace);
}

#[tokio::test]
async fn upstream_down_is_upstream_unavailable() {
    let pki = TestPki::new();
    // Reserve a port, then free it: nothing listens there.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", addr)], "").await;
    let client = client(&pki, "consumer", Http::One);
    let response = get(&client, &url(&gateway, "/uwv/v1/ping")).await;
    assert_eq!(response.status, StatusCode::BAD_GATEWAY);
    assert_eq!(response.problem_code(), "upstream-unavailable");
    assert_eq!(
        gateway
            .metrics
            .upstream_errors
            .with_label_values(&["uwv", "connect"])
            .get(),
        1
    );
}

#[tokio::test]
async fn upstream_slow_is_upstream_timeout() {
    let pki = TestPki::new();
    // Far slower than the bound below, so that bound tells a timeout from a late answer.
    let partner = start_partner(&pki, fixed(StatusCode::OK, "{}", Duration::from_secs(10))).await;
    let spec = PartnerSpec {
        response_timeout: "300ms",
        ..PartnerSpec::new("uwv", partner.addr)
    };
    let gateway = start_gateway(&pki, &[spec], "").await;
    let client = client(&pki, "consumer", Http::One);
    let started = std::time::Instant::now();
    let response = get(&client, &url(&gateway, "/uwv/v1/ping")).await;
    assert_eq!(response.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(response.problem_code(), "upstream-timeout");
    // Generous for a loaded machine: the timeout is 300 ms.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn partner_with_an_untrusted_certificate_is_refused() {
    let pki = TestPki::new();
    let partner = start_partner_with_cert(&pki, "rogue-partner", echo()).await;
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    let client = client(&pki, "consumer", Http::One);
    let response = get(&client, &url(&gateway, "/uwv/v1/ping")).await;
    assert_eq!(response.status, StatusCode::BAD_GATEWAY);
    assert_eq!(response.problem_code(), "upstream-unavailable");
}

#[tokio::test]
async fn partner_errors_never_leak_their_body_or_headers() {
    let pki = TestPki::new();
    let body = r#"{"error":"stack trace at PersonService for bsn 999990019"}"#;
    let partner = start_partner(
        &pki,
        fixed(StatusCode::INTERNAL_SERVER_ERROR, body, Duration::ZERO),
    )
    .await;
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    let client = client(&pki, "consumer", Http::One);
    let response = get(&client, &url(&gateway, "/uwv/v1/ping")).await;
    assert_eq!(response.status, StatusCode::BAD_GATEWAY);
    assert_eq!(response.problem_code(), "upstream-unavailable");
    let text = String::from_utf8_lossy(&response.body);
    assert!(
        !text.contains("999990019") && !text.contains("PersonService"),
        "{text}"
    );
    assert!(!response.headers.contains_key("server"));
    assert!(!response.headers.contains_key("set-cookie"));
}

#[tokio::test]
async fn partner_client_errors_keep_their_status_but_not_their_body() {
    let pki = TestPki::new();
    let partner = start_partner(
        &pki,
        fixed(
            StatusCode::NOT_FOUND,
            r#"{"fout":"persoon 999990019 onbekend"}"#,
            Duration::ZERO,
        ),
    )
    .await;
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    let client = client(&pki, "consumer", Http::One);
    let response = get(&client, &url(&gateway, "/uwv/v1/ping")).await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(response.problem_code(), "partner-rejected");
    assert!(!String::from_utf8_lossy(&response.body).contains("999990019"));
}

#[tokio::test]
async fn successful_answers_drop_leaking_response_headers() {
    let pki = TestPki::new();
    let partner = start_partner(
        &pki,
        fixed(StatusCode::OK, r#"{"ok":true}"#, Duration::ZERO),
    )
    .await;
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    let client = client(&pki, "consumer", Http::One);
    let response = get(&client, &url(&gateway, "/uwv/v1/ping")).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.headers["content-type"], "application/json");
    assert!(!response.headers.contains_key("server"));
    assert!(!response.headers.contains_key("set-cookie"));
    assert!(response.headers.contains_key("fsc-transaction-id"));
}

#[tokio::test]
async fn unknown_partner_and_non_canonical_paths_are_unknown_route() {
    let (pki, _partner, gateway, _recorded) = echo_setup().await;
    let client = client(&pki, "consumer", Http::One);
    for path in [
        "/belastingdienst/v1/x",
        "/uwv/v1/../../svb/v1/x",
        "/uwv/v1%2f..%2fadmin",
        "/uwv//v1",
        "/",
    ] {
        let response = get(&client, &url(&gateway, path)).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(response.problem_code(), "unknown-route", "{path}");
    }
}

#[tokio::test]
async fn oversized_request_body_is_request_too_large() {
    let (pki, _partner, gateway, recorded) = echo_setup().await;
    let client = client(&pki, "consumer", Http::One);
    let big = vec![b'a'; 2 * 1024 * 1024];
    let request = Request::post(url(&gateway, "/uwv/v1/x"))
        .header("content-type", "application/json")
        .header("doelbinding-purpose", TEST_PURPOSE)
        .body(Full::new(Bytes::from(big)))
        .unwrap();
    let response = send(&client, request).await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.problem_code(), "request-too-large");
    // A small body goes through.
    let request = Request::post(url(&gateway, "/uwv/v1/x"))
        .header("content-type", "application/json")
        .header("doelbinding-purpose", TEST_PURPOSE)
        .body(Full::new(Bytes::from_static(
            b"{\"a\":1,\"internal\":\"x\"}",
        )))
        .unwrap();
    let response = send(&client, request).await;
    assert_eq!(response.status, StatusCode::OK);
    // Only the granted request field reaches the partner.
    assert_eq!(&recorded.last().body[..], b"{\"a\":1}");
}

#[tokio::test]
async fn oversized_partner_response_is_not_released() {
    let pki = TestPki::new();
    let huge: &'static str = Box::leak(format!("\"{}\"", "x".repeat(64 * 1024)).into_boxed_str());
    let partner = start_partner(&pki, fixed(StatusCode::OK, huge, Duration::ZERO)).await;
    let gateway = start_gateway(
        &pki,
        &[PartnerSpec::new("uwv", partner.addr)],
        "  max_response_body_bytes: 16384",
    )
    .await;
    let client = client(&pki, "consumer", Http::One);
    let response = get(&client, &url(&gateway, "/uwv/v1/ping")).await;
    assert_eq!(response.status, StatusCode::BAD_GATEWAY);
    assert_eq!(response.problem_code(), "minimisation-failed");
    assert!(response.body.len() < 1024);
}

#[tokio::test]
async fn requests_are_counted_by_decision() {
    let (pki, _partner, gateway, _recorded) = echo_setup().await;
    let ok = client(&pki, "consumer", Http::One);
    let unknown = client(&pki, "unknown", Http::One);
    get(&ok, &url(&gateway, "/uwv/v1/ping")).await;
    get(&ok, &url(&gateway, "/nope/x")).await;
    get(&unknown, &url(&gateway, "/uwv/v1/ping")).await;
    let count = |consumer: &str, partner: &str, operation: &str, purpose: &str, decision: &str| {
        gateway
            .metrics
            .requests_total
            .with_label_values(&[consumer, partner, operation, purpose, decision])
            .get()
    };
    assert_eq!(
        count("wijkteam-test", "uwv", "ping", TEST_PURPOSE, "allow"),
        1
    );
    assert_eq!(
        count("wijkteam-test", "unknown", "unknown", "unknown", "deny"),
        1
    );
    assert_eq!(count("unknown", "unknown", "unknown", "unknown", "deny"), 1);
    let text = String::from_utf8(gateway.metrics.render()).unwrap();
    assert!(!text.contains("999990019"));
}

#[tokio::test]
async fn admin_listener_serves_health_readiness_and_metrics() {
    let (_pki, _partner, gateway, _recorded) = echo_setup().await;
    let admin = gateway.admin_addr.unwrap();
    let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Full<Bytes>>();
    for (path, expect) in [
        ("/healthz", "ok"),
        ("/readyz", "ready"),
        ("/metrics", "doelpoort_connections_active"),
    ] {
        let response = client
            .get(format!("http://{admin}{path}").parse().unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert!(String::from_utf8_lossy(&body).contains(expect), "{path}");
    }
}

use hyper_util::client::legacy::Client;

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = TestPki::new();
    let partner = start_partner(
        &pki,
        fixed(StatusCode::OK, "{}", Duration::from_millis(500)),
    )
    .await;
    let gateway = start_gateway(
        &pki,
        &[PartnerSpec::new("uwv", partner.addr)],
        "  idle_timeout: 300ms",
    )
    .await;
    let connector =
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(client_tls(&pki, Some("consumer"))));
    let tcp = tokio::net::TcpStream::connect(gateway.local_addr)
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    // A request slower than the idle timeout is not cut off: it is in flight, not idle.
    tls.write_all(
        b"GET /uwv/v1/slow HTTP/1.1\r\nhost: localhost\r\ndoelbinding-purpose: test-doel\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // Then, idle, the connection is closed by the gateway within a bounded time.
    let started = std::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the idle connection stayed open");
    // Generous for a loaded machine: the idle timeout is 300 ms.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn caller_and_partner_see_only_headers_the_gateway_states_itself() {
    // The partner asks for a year of public caching and sends a free-text language header;
    // the caller sends a charset the gateway does not write and asks for HTML.
    let pki = TestPki::new();
    let answer: doelpoort::demo::MockHandler = std::sync::Arc::new(|_req| {
        Box::pin(async {
            let mut r =
                doelpoort::demo::json_response(StatusCode::OK, &serde_json::json!({"ok": true}));
            let h = r.headers_mut();
            h.insert("cache-control", "public, max-age=31536000".parse().unwrap());
            h.insert("expires", "Thu, 01 Dec 2099 16:00:00 GMT".parse().unwrap());
            h.insert(
                "last-modified",
                "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
            );
            h.insert("content-language", "nl, persoon 999990020".parse().unwrap());
            r
        })
    });
    let (handler, recorded) = recording(answer);
    let partner = start_partner(&pki, handler).await;
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    let request = Request::post(url(&gateway, "/uwv/v1/x"))
        .header("doelbinding-purpose", TEST_PURPOSE)
        .header("content-type", "application/json; charset=utf-7")
        .header("accept", "text/html")
        .body(Full::new(Bytes::from_static(br#"{"a":1}"#)))
        .unwrap();
    let response = send(&client(&pki, "consumer", Http::One), request).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    assert_eq!(response.headers["cache-control"], "no-store");
    assert!(!response.headers.contains_key("expires"));
    assert_eq!(
        response.headers["last-modified"],
        "Sun, 06 Nov 1994 08:49:37 GMT"
    );
    assert!(!response.headers.contains_key("content-language"));
    let received = recorded.last();
    assert_eq!(received.headers["content-type"], "application/json");
    assert_eq!(received.headers["accept"], "application/json");
    assert_eq!(received.body, Bytes::from_static(br#"{"a":1}"#));
}

#[tokio::test]
async fn head_is_answered_as_the_get_it_mirrors_without_a_body() {
    let (pki, _partner, gateway, recorded) = echo_setup().await;
    for http in [Http::One, Http::Two] {
        let client = client(&pki, "consumer", http);
        let request = Request::head(url(&gateway, "/uwv/v1/ping"))
            .header("doelbinding-purpose", TEST_PURPOSE)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = send(&client, request).await;
        assert_eq!(response.status, StatusCode::OK);
        assert!(response.body.is_empty());
        assert!(response.headers.contains_key("fsc-transaction-id"));
        // The partner was asked the GET, so its answer was checked like a GET's; nothing of
        // it was released, and the record says so.
        assert_eq!(recorded.last().method, http::Method::GET);
        let tx = response.headers["fsc-transaction-id"].to_str().unwrap();
        let record = audit_records(&pki.path("audit"))
            .into_iter()
            .find(|r| r["attributes"]["doelpoort.transaction_id"] == tx)
            .unwrap();
        assert_eq!(
            record["attributes"]["doelpoort.fields_released"],
            serde_json::json!([]),
            "{record}"
        );
        // A refused HEAD still carries its status (no body, also over HTTP/2).
        let refused = Request::head(url(&gateway, "/uwv/v1/ping"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = send(&client, refused).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST);
        assert!(response.body.is_empty());
    }
}

#[tokio::test]
async fn a_described_path_with_another_method_is_405_with_allow() {
    let (pki, _partner, gateway, recorded) = echo_setup().await;
    let request = Request::delete(url(&gateway, "/uwv/v1/ping"))
        .header("doelbinding-purpose", TEST_PURPOSE)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = send(&client(&pki, "consumer", Http::One), request).await;
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.problem_code(), "method-not-allowed");
    assert_eq!(response.headers["allow"], "GET, HEAD");
    assert_eq!(recorded.count(), 0);
    // A method the gateway never forwards names the ones it does.
    let request = Request::options(url(&gateway, "/uwv/v1/ping"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = send(&client(&pki, "consumer", Http::One), request).await;
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
    // The path is described (GET only), so `Allow` names what it is served with.
    assert_eq!(response.headers["allow"], "GET, HEAD");
    let request = Request::options(url(&gateway, "/uwv/v1/nergens"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = send(&client(&pki, "consumer", Http::One), request).await;
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        response.headers["allow"],
        "GET, HEAD, POST, PUT, PATCH, DELETE"
    );
}

/// Reads one HTTP/1.1 answer with a `content-length` body; returns its head. Bytes past it
/// (a pipelined next answer) stay in `pending`.
async fn read_answer(
    tls: &mut (impl tokio::io::AsyncRead + Unpin),
    pending: &mut Vec<u8>,
) -> String {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if pending.len() >= end + 4 + length {
                pending.drain(..end + 4 + length);
                return head;
            }
        }
        let mut buf = [0u8; 8192];
        let n = tokio::time::timeout_at(deadline, tls.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(n > 0, "the gateway closed the connection");
        pending.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn an_idle_http1_connection_is_parked_and_serves_its_next_requests() {
    use tokio::io::AsyncWriteExt;
    let (pki, _partner, gateway, recorded) = echo_setup().await;
    let request =
        b"GET /uwv/v1/ping HTTP/1.1\r\nhost: localhost\r\ndoelbinding-purpose: test-doel\r\n\r\n";
    // Without ALPN (the protocol is sniffed) and with ALPN http/1.1.
    for alpn in [None, Some(b"http/1.1".to_vec())] {
        let mut config = client_tls(&pki, Some("consumer"));
        config.alpn_protocols = alpn.into_iter().collect();
        let mut tls = raw_tls(gateway.local_addr, config).await;
        let mut pending = Vec::new();
        tls.write_all(request).await.unwrap();
        let head = read_answer(&mut tls, &mut pending).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        let before = recorded.count();

        // Idle past PARK_AFTER: parked. Two pipelined requests in one write wake it; both are
        // answered, in order, and the connection stays open.
        tokio::time::sleep(doelpoort::server::PARK_AFTER * 3).await;
        assert_eq!(gateway.metrics.connections_parked.get(), 1, "parked");
        let mut two = request.to_vec();
        two.extend_from_slice(request);
        tls.write_all(&two).await.unwrap();
        for _ in 0..2 {
            let head = read_answer(&mut tls, &mut pending).await;
            assert!(head.starts_with("http/1.1 200"), "{head}");
            assert!(!head.contains("connection: close"), "{head}");
        }
        assert_eq!(recorded.count(), before + 2);

        // Parked again; now a request whose head arrives in two parts, the pause longer than
        // PARK_AFTER: it is a request under way, not an idle connection.
        tokio::time::sleep(doelpoort::server::PARK_AFTER * 3).await;
        let (first, rest) = request.split_at(20);
        tls.write_all(first).await.unwrap();
        tokio::time::sleep(doelpoort::server::PARK_AFTER * 3).await;
        assert_eq!(
            gateway.metrics.connections_parked.get(),
            0,
            "a request under way"
        );
        tls.write_all(rest).await.unwrap();
        let head = read_answer(&mut tls, &mut pending).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(!head.contains("connection: close"), "{head}");
        tls.write_all(request).await.unwrap();
        let head = read_answer(&mut tls, &mut pending).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(pending.is_empty());
        // Closed by the client while parked: no longer counted.
        tokio::time::sleep(doelpoort::server::PARK_AFTER * 3).await;
        assert_eq!(gateway.metrics.connections_parked.get(), 1, "parked");
        drop(tls);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while gateway.metrics.connections_parked.get() != 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "still counted as parked"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served_without_alpn() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (pki, _partner, gateway, _recorded) = echo_setup().await;
    let mut tls = raw_tls(gateway.local_addr, client_tls(&pki, Some("consumer"))).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), None);
    // The preface in two writes (the gateway reads until it can tell), then an empty SETTINGS.
    tls.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    tls.write_all(b"\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let mut frame = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(10), tls.read_exact(&mut frame))
        .await
        .expect("the server's first frame")
        .unwrap();
    assert_eq!(frame[3], 0x4, "the server answers with SETTINGS: {frame:?}");
}
