//! The central audit log in PostgreSQL (issue 18, SPEC §9) under load and failure: a gateway
//! killed with SIGKILL mid-load lost no record of an answer it gave, and a PostgreSQL stopped
//! mid-load makes the gateway refuse (`audit-unavailable`) instead of answering unrecorded,
//! until it returns. Real processes, real PostgreSQL, real TLS on loopback.

mod harness;

use bytes::Bytes;
use harness::postgres::Postgres;
use harness::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Callers running at once in each load loop.
const CALLERS: usize = 8;

fn ping(port: u16) -> Request<Full<Bytes>> {
    Request::get(format!("https://localhost:{port}/uwv/v1/ping"))
        .header("doelbinding-purpose", TEST_PURPOSE)
        .header("doelbinding-case-id", "casus-central-1")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// The test configuration with the store and the audit log in `postgres`.
fn central_config(
    pki: &TestPki,
    partner: &doelpoort::demo::MockPartner,
    postgres: &Postgres,
) -> std::path::PathBuf {
    let yaml = config_yaml(pki, &[PartnerSpec::new("uwv", partner.addr)], "").replace(
        "audit:\n",
        &format!("store: {}\naudit:\n  sink: postgres\n", postgres.url()),
    );
    write_config(pki, &yaml)
}

/// What the load loops saw: transaction ids answered 200, and refusals by problem code.
#[derive(Default)]
struct Seen {
    answered: HashSet<String>,
    refused: Vec<String>,
    failed: usize,
}

/// Starts `CALLERS` loops sending pings to `port` until `stop` (each loop bounded to 2000
/// requests); a sent request that gets no answer (the gateway died) counts as failed.
fn load(
    pki: &TestPki,
    port: u16,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..CALLERS)
        .map(|_| {
            let client = client(pki, "consumer", Http::One);
            let (stop, seen) = (stop.clone(), seen.clone());
            tokio::spawn(async move {
                for _ in 0..2000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match tokio::time::timeout(Duration::from_secs(10), client.request(ping(port)))
                        .await
                    {
                        Ok(Ok(response)) => {
                            let status = response.status();
                            let tx = response
                                .headers()
                                .get("fsc-transaction-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string();
                            let body = http_body_util::BodyExt::collect(response.into_body())
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let mut seen = seen.lock().unwrap();
                            if status == StatusCode::OK {
                                seen.answered.insert(tx);
                            } else {
                                let problem: serde_json::Value =
                                    serde_json::from_slice(&body).unwrap_or_default();
                                seen.refused
                                    .push(problem["code"].as_str().unwrap_or("?").to_string());
                            }
                        }
                        _ => {
                            seen.lock().unwrap().failed += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            })
        })
        .collect()
}

/// Waits until `seen` satisfies `condition`, at most `limit`.
async fn wait_for(seen: &Mutex<Seen>, limit: Duration, condition: impl Fn(&Seen) -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if condition(&seen.lock().unwrap()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Transaction ids of every outcome record in the store.
fn recorded(postgres: &Postgres) -> HashSet<String> {
    postgres
        .psql("SELECT record::json->'attributes'->>'doelpoort.transaction_id' FROM audit_records")
        .lines()
        .map(str::to_string)
        .collect()
}

fn verify_store(postgres: &Postgres) -> String {
    let url = postgres.url();
    let (code, out) = run_doelpoort(["audit", "verify", "--store", url.as_str()]);
    assert_eq!(code, 0, "{out}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_killed_under_load_lost_no_record_of_an_answer() {
    let postgres = Postgres::start();
    let pki = TestPki::new();
    let partner = start_partner(&pki, ok_partner()).await;
    let config = central_config(&pki, &partner, &postgres);
    let gateway = GatewayProcess::start(&config);
    let (port, _) = gateway.wait_until_serving();

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let loops = load(&pki, port, stop.clone(), seen.clone());
    assert!(
        wait_for(&seen, Duration::from_secs(20), |s| s.answered.len() >= 200).await,
        "the gateway answered too little under load"
    );
    gateway.signal(rustix::process::Signal::KILL);
    // Requests in flight now die with the process; the loops notice and stop.
    assert!(wait_for(&seen, Duration::from_secs(10), |s| s.failed >= CALLERS).await);
    stop.store(true, Ordering::Relaxed);
    for task in loops {
        task.await.unwrap();
    }
    drop(gateway);

    // Every answer given before the kill has its record; the chain verifies.
    let answered = seen.lock().unwrap().answered.clone();
    let records = recorded(&postgres);
    let missing: Vec<&String> = answered.difference(&records).collect();
    assert!(
        missing.is_empty(),
        "{} answers without a record: {missing:?}",
        missing.len()
    );
    verify_store(&postgres);

    // The restarted gateway continues the same chain.
    let gateway = GatewayProcess::start(&config);
    let (port, _) = gateway.wait_until_serving();
    let response = send(&client(&pki, "consumer", Http::One), ping(port)).await;
    assert_eq!(response.status, StatusCode::OK);
    let out = verify_store(&postgres);
    assert!(out.contains("instance test: OK"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_postgres_refuses_exchanges_until_it_returns() {
    // A private cluster: this test stops and restarts the server.
    let postgres = Postgres::private();
    let pki = TestPki::new();
    let partner = start_partner(&pki, ok_partner()).await;
    let config =
        doelpoort::config::Config::load(&central_config(&pki, &partner, &postgres)).unwrap();
    let gateway = doelpoort::server::start(&config).await.unwrap();
    let port = gateway.local_addr.port();

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let loops = load(&pki, port, stop.clone(), seen.clone());
    assert!(wait_for(&seen, Duration::from_secs(20), |s| s.answered.len() >= 100).await);

    postgres.stop();
    assert!(
        wait_for(&seen, Duration::from_secs(30), |s| s.refused.len() >= 20).await,
        "no refusals while PostgreSQL was down"
    );
    let answered_while_down = seen.lock().unwrap().answered.len();
    let admin = gateway.admin_addr.unwrap().to_string();
    let (status, text) = admin_get(&admin, "/readyz").await;
    assert_eq!(status, 503, "{text}");

    postgres.restart();
    assert!(
        wait_for(&seen, Duration::from_secs(30), |s| s.answered.len()
            >= answered_while_down + 100)
        .await,
        "the gateway did not serve again after PostgreSQL returned"
    );
    stop.store(true, Ordering::Relaxed);
    for task in loops {
        task.await.unwrap();
    }
    gateway.shutdown().await;

    let seen = seen.lock().unwrap();
    // Refused, never answered unrecorded: every refusal says why, every answer has its record.
    assert!(
        seen.refused.iter().all(|code| code == "audit-unavailable"),
        "{:?}",
        seen.refused
    );
    let records = recorded(&postgres);
    let missing: Vec<&String> = seen.answered.difference(&records).collect();
    assert!(
        missing.is_empty(),
        "{} answers without a record: {missing:?}",
        missing.len()
    );
    verify_store(&postgres);
}

/// A partner that answers every call with a small JSON object.
fn ok_partner() -> doelpoort::demo::MockHandler {
    Arc::new(|_req| {
        Box::pin(async {
            doelpoort::demo::json_response(StatusCode::OK, &serde_json::json!({"ok": true}))
        })
    })
}
