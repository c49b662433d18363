//! Graceful shutdown of a real `doelpoort run` process: SIGTERM stops new connections and
//! lets in-flight requests finish.

mod harness;

use harness::*;
use http::StatusCode;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_doelpoort"))
        .args([
            "--log-format",
            "json",
            "run",
            "--config",
            path.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("doelpoort starts");
    // The listening address is in the first structured log line that has one.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut line = String::new();
    while addr.is_none() && Instant::now() < deadline {
        line.clear();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) {
            addr = json["local_addr"]
                .as_str()
                .map(|a| a.parse::<std::net::SocketAddr>().unwrap());
        }
    }
    let addr = addr.expect("the gateway logs its address");
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in stderr.lines() {});

    let client = client(&pki, "consumer", Http::One);
    let url = format!("https://localhost:{}/uwv/v1/slow", addr.port());
    let in_flight = tokio::spawn(async move { get(&client, &url).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    signal(&child, rustix::process::Signal::TERM);

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
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "did not exit after draining"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
