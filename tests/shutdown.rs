//! Graceful shutdown of a real `doelpoort run` process: SIGTERM stops new connections and
//! lets in-flight requests finish.

mod harness;

use harness::*;
use http::StatusCode;
use std::time::{Duration, Instant};

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits() {
    let pki = TestPki::new();
    let partner = start_partner(
        &pki,
        fixed(
            StatusCode::OK,
            r#"{"ok":true}"#,
            Duration::from_millis(1500),
        ),
    )
    .await;
    let path = write_config(
        &pki,
        &config_yaml(&pki, &[PartnerSpec::new("uwv", partner.addr)], ""),
    );
    let mut gateway = GatewayProcess::start(&path);
    let addr = gateway.wait_until_listening();

    let client = client(&pki, "consumer", Http::One);
    let url = format!("https://localhost:{}/uwv/v1/slow", addr.port());
    let in_flight = tokio::spawn(async move { get(&client, &url).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    gateway.signal(rustix::process::Signal::TERM);

    // New connections are refused once the listener has closed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(refused.is_err(), "the listener still accepts after SIGTERM");

    // The in-flight request completes normally.
    let response = in_flight.await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    // The test grant releases no fields, so the minimised body is empty.
    assert_eq!(response.json(), serde_json::json!({}));

    // And the process exits cleanly, well within the grace period.
    exits_cleanly_within(
        &mut gateway,
        Instant::now(),
        Duration::from_secs(10),
        "did not exit after draining",
    )
    .await;
}

/// Waits until the gateway process exits with success, at most `limit` after `since`.
async fn exits_cleanly_within(
    gateway: &mut GatewayProcess,
    since: Instant,
    limit: Duration,
    why: &str,
) {
    loop {
        if let Some(status) = gateway.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            return;
        }
        assert!(since.elapsed() < limit, "{why}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `doelpoort run` child in front of a partner that answers `{}` at once.
async fn gateway_child() -> (
    TestPki,
    doelpoort::demo::MockPartner,
    GatewayProcess,
    std::net::SocketAddr,
) {
    let pki = TestPki::new();
    let partner = start_partner(&pki, fixed(StatusCode::OK, "{}", Duration::ZERO)).await;
    let path = write_config(
        &pki,
        &config_yaml(&pki, &[PartnerSpec::new("uwv", partner.addr)], ""),
    );
    let gateway = GatewayProcess::start(&path);
    let addr = gateway.wait_until_listening();
    (pki, partner, gateway, addr)
}

/// A connection that finished its handshake but never sent a request (the gateway has not
/// started HTTP on it yet) is closed by a shutdown at once, not after the grace period.
#[tokio::test]
async fn sigterm_closes_connections_that_never_sent_a_request() {
    let (pki, _partner, mut gateway, addr) = gateway_child().await;
    let mut idle = raw_tls(addr, client_tls(&pki, Some("consumer"))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    gateway.signal(rustix::process::Signal::TERM);
    let (answered, closed) = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(
        closed && answered.is_empty(),
        "the idle connection was not closed ({} bytes came back)",
        answered.len()
    );
    // The default grace period is 10 s; an idle connection must not use it.
    exits_cleanly_within(
        &mut gateway,
        started,
        Duration::from_secs(5),
        "the gateway waited for a connection that never asked anything",
    )
    .await;
}

#[tokio::test]
async fn sigterm_closes_parked_connections_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (pki, _partner, mut gateway, addr) = gateway_child().await;
    // Connections that have served a request and then idle (parked, holding only TLS).
    let mut parked = Vec::new();
    for _ in 0..3 {
        let mut tls = raw_tls(addr, client_tls(&pki, Some("consumer"))).await;
        tls.write_all(
            b"GET /uwv/v1/ping HTTP/1.1\r\nhost: localhost\r\ndoelbinding-purpose: test-doel\r\n\r\n",
        )
        .await
        .unwrap();
        // The whole answer (a JSON body), so that nothing of it is left to read later.
        let mut answer = Vec::new();
        while !(answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}")) {
            let mut buf = vec![0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
                .await
                .expect("an answer")
                .unwrap();
            assert!(n > 0, "closed before the answer ended");
            answer.extend_from_slice(&buf[..n]);
        }
        assert!(answer.starts_with(b"HTTP/1.1 200"));
        parked.push(tls);
    }
    tokio::time::sleep(doelpoort::server::PARK_AFTER * 3).await;

    let started = Instant::now();
    gateway.signal(rustix::process::Signal::TERM);
    for tls in &mut parked {
        let (answered, closed) = read_until_closed(tls, Duration::from_secs(5)).await;
        assert!(
            closed && answered.is_empty(),
            "a parked connection was not closed ({} bytes came back)",
            answered.len()
        );
    }
    exits_cleanly_within(
        &mut gateway,
        started,
        Duration::from_secs(5),
        "the gateway waited for parked connections",
    )
    .await;
}
