//! The cost of the second hop (SPEC §10): the same exchange through the municipality's
//! gateway straight to the provider's service, and through the provider's inway Doelpoort in
//! between (with and without FSC). Real `doelpoort run` processes on loopback, durable audit
//! logs at both ends, one keep-alive HTTP/1.1 connection, sequential requests; prints p50/p99
//! per setup and the added latency.
//!
//! `cargo bench --bench second_hop` (optionally `-- ROUNDS`, default 2000).

#[path = "../harness/mod.rs"]
mod harness;

use bytes::Bytes;
use harness::ends::{Ends, EndsSpec, BSN};
use http::{Request, StatusCode};
use http_body_util::Full;
use std::time::{Duration, Instant};

async fn measure(spec: EndsSpec, rounds: usize) -> Vec<Duration> {
    let ends = Ends::start(spec).await;
    let client = harness::client(&ends.pki, "consumer", harness::Http::One);
    let url = format!(
        "https://localhost:{}/uwv/v1/personen/{BSN}/inkomen",
        ends.outway_port
    );
    let request = || {
        Request::get(&url)
            .header("doelbinding-purpose", harness::TEST_PURPOSE)
            .header("doelbinding-data-subject", format!("bsn={BSN}"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    for _ in 0..rounds / 10 {
        assert_eq!(
            harness::send(&client, request()).await.status,
            StatusCode::OK
        );
    }
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let r = harness::send(&client, request()).await;
        samples.push(started.elapsed());
        assert_eq!(r.status, StatusCode::OK);
        if Instant::now() > deadline {
            break;
        }
    }
    samples.sort();
    samples
}

fn pct(samples: &[Duration], p: f64) -> Duration {
    samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)]
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2000);
    let direct = measure(
        EndsSpec {
            bypass_inway: true,
            ..Default::default()
        },
        rounds,
    )
    .await;
    let inway = measure(EndsSpec::default(), rounds).await;
    let fsc = measure(
        EndsSpec {
            fsc: true,
            ..Default::default()
        },
        rounds,
    )
    .await;
    println!("second hop: {rounds} sequential requests per setup, one connection, durable audit at each end");
    println!("{:<34} {:>10} {:>10}", "setup", "p50 µs", "p99 µs");
    for (name, s) in [
        ("outway → service", &direct),
        ("outway → inway → service", &inway),
        ("outway → inway (FSC) → service", &fsc),
    ] {
        println!(
            "{name:<34} {:>10} {:>10}",
            pct(s, 0.5).as_micros(),
            pct(s, 0.99).as_micros()
        );
    }
    for (name, s) in [("inway", &inway), ("inway with FSC", &fsc)] {
        println!(
            "added by the {name}: p50 +{} µs, p99 +{} µs",
            pct(s, 0.5).as_micros() as i128 - pct(&direct, 0.5).as_micros() as i128,
            pct(s, 0.99).as_micros() as i128 - pct(&direct, 0.99).as_micros() as i128
        );
    }
}
