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

/// The test configuration file for `postgres`, as a loaded [`doelpoort::config::Config`].
async fn central_gateway(
    pki: &TestPki,
    partner: &doelpoort::demo::MockPartner,
    postgres: &Postgres,
) -> (doelpoort::config::Config, doelpoort::server::RunningGateway) {
    let config = doelpoort::config::Config::load(&central_config(pki, partner, postgres)).unwrap();
    let gateway = doelpoort::server::start(&config).await.unwrap();
    (config, gateway)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_writer_per_chain_and_one_subject_key_per_store() {
    let postgres = Postgres::start();
    let pki = TestPki::new();
    let partner = start_partner(&pki, ok_partner()).await;
    let (config, gateway) = central_gateway(&pki, &partner, &postgres).await;

    // A second process claiming the same instance id is refused, not racing the first.
    let same_instance = doelpoort::server::start(&config).await;
    let error = format!("{:#}", same_instance.err().expect("refused"));
    assert!(
        error.contains("another gateway process writes the audit chain of instance 'test'"),
        "{error}"
    );

    // A replica with another subject key is refused: one key must answer for every replica.
    let mut other_key = config.clone();
    other_key.instance = "test-2".into();
    other_key.audit.subject_key = pki.path("other-subject.key");
    let refused = doelpoort::server::start(&other_key).await;
    let error = format!("{:#}", refused.err().expect("refused"));
    assert!(
        error.contains("every replica needs the same audit.subject_key"),
        "{error}"
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_slipped_into_the_chain_is_refused_not_continued_from() {
    let postgres = Postgres::start();
    let pki = TestPki::new();
    let partner = start_partner(&pki, ok_partner()).await;
    let (_, gateway) = central_gateway(&pki, &partner, &postgres).await;
    let port = gateway.local_addr.port();
    let client = client(&pki, "consumer", Http::One);
    assert_eq!(send(&client, ping(port)).await.status, StatusCode::OK);

    // Someone with the database's INSERT right appends the next record of this chain.
    postgres.psql(
        "INSERT INTO audit_records (instance, seq, prev_hash, hash, start_time, record) \
         SELECT instance, seq + 1, hash, 'forged', start_time, '{}' FROM audit_records \
         WHERE instance = 'test' ORDER BY seq DESC LIMIT 1",
    );
    // The writer's next commit collides; it finds a record it did not write and stops
    // writing (fail closed) instead of chaining its records to the forged one.
    for _ in 0..3 {
        let response = send(&client, ping(port)).await;
        assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.problem_code(), "audit-unavailable");
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
    let after = postgres.psql("SELECT count(*) FROM audit_records WHERE hash <> 'forged' AND seq > (SELECT seq FROM audit_records WHERE hash = 'forged')");
    assert_eq!(after.trim(), "0", "nothing was chained to the forged row");
    let (status, text) = admin_get(&gateway.admin_addr.unwrap().to_string(), "/readyz").await;
    assert_eq!(status, 503, "{text}");
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_returns_with_the_store_without_waiting_for_traffic() {
    let postgres = Postgres::private();
    let pki = TestPki::new();
    let partner = start_partner(&pki, ok_partner()).await;
    let (_, gateway) = central_gateway(&pki, &partner, &postgres).await;
    let port = gateway.local_addr.port();
    let admin = gateway.admin_addr.unwrap().to_string();
    let client = client(&pki, "consumer", Http::One);
    postgres.stop();
    // Every exchange needs the store for its record: not ready, even before any traffic.
    let started = Instant::now();
    while admin_get(&admin, "/readyz").await.0 != 503 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "still ready with the store down"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let response = send(&client, ping(port)).await;
    assert_eq!(response.problem_code(), "audit-unavailable");
    assert_eq!(admin_get(&admin, "/readyz").await.0, 503);
    postgres.restart();
    // No request is sent: behind a load balancer that checks /readyz, none would arrive.
    let started = Instant::now();
    let mut status = 0;
    while started.elapsed() < Duration::from_secs(15) {
        status = admin_get(&admin, "/readyz").await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, 200, "still not ready 15 s after the store returned");
    assert_eq!(send(&client, ping(port)).await.status, StatusCode::OK);
    verify_store(&postgres);
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_cut_short_in_the_store_is_refused_at_start() {
    let postgres = Postgres::start();
    let pki = TestPki::new();
    let partner = start_partner(&pki, ok_partner()).await;
    let (config, gateway) = central_gateway(&pki, &partner, &postgres).await;
    let client = client(&pki, "consumer", Http::One);
    for _ in 0..3 {
        let response = send(&client, ping(gateway.local_addr.port())).await;
        assert_eq!(response.status, StatusCode::OK);
    }
    gateway.shutdown().await;
    // The end of the chain removed while the gateway was down (by someone who can switch
    // the table's triggers off): the store alone cannot tell, the replica's head.json can.
    postgres.psql(
        "ALTER TABLE audit_records DISABLE TRIGGER USER; \
         DELETE FROM audit_records WHERE instance = 'test' AND seq >= 2; \
         ALTER TABLE audit_records ENABLE TRIGGER USER;",
    );
    // As after a crash (no clean-stop marker): head.json alone must catch it.
    std::fs::remove_file(pki.path("audit").join("stopped.json")).unwrap();
    let restarted = doelpoort::server::start(&config).await;
    let error = format!("{:#}", restarted.err().expect("refused"));
    assert!(
        error.contains("records were removed or replaced"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_runs_as_a_role_that_cannot_change_the_log() {
    // The deployment guide's roles: the owner applies the migrations once, the replicas run
    // as a role with INSERT and SELECT on the audit tables.
    let postgres = Postgres::private();
    let pki = TestPki::new();
    let partner = start_partner(&pki, ok_partner()).await;
    let (_, owner_gateway) = central_gateway(&pki, &partner, &postgres).await;
    owner_gateway.shutdown().await;
    postgres.psql(
        "CREATE ROLE gateway LOGIN; \
         GRANT SELECT, INSERT ON audit_records, audit_instances TO gateway; \
         GRANT SELECT, INSERT, DELETE ON spent_approvals TO gateway; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON case_register, cases, case_partners, \
           case_household, case_overrides, case_purposes_served, case_time_outs TO gateway; \
         GRANT SELECT ON _sqlx_migrations TO gateway;",
    );
    let url = postgres.url().replacen("doelpoort@", "gateway@", 1);
    let path = central_config(&pki, &partner, &postgres);
    let yaml = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&postgres.url(), &url);
    std::fs::write(&path, yaml).unwrap();
    let config = doelpoort::config::Config::load(&path).unwrap();
    let gateway = doelpoort::server::start(&config)
        .await
        .expect("starts as the restricted role");
    let client = client(&pki, "consumer", Http::One);
    let response = send(&client, ping(gateway.local_addr.port())).await;
    assert_eq!(response.status, StatusCode::OK);
    gateway.shutdown().await;
    // The role cannot switch the append-only triggers off, nor remove records.
    let gateway_psql = |sql: &str| {
        std::process::Command::new("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                &url,
                "-c",
                sql,
            ])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(!gateway_psql(
        "ALTER TABLE audit_records DISABLE TRIGGER USER"
    ));
    assert!(!gateway_psql("DELETE FROM audit_records"));
    assert!(gateway_psql("SELECT count(*) FROM audit_records"));
    verify_store(&postgres);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_added_while_the_gateway_was_stopped_is_refused_at_start() {
    let postgres = Postgres::start();
    let pki = TestPki::new();
    let partner = start_partner(&pki, ok_partner()).await;
    let (config, gateway) = central_gateway(&pki, &partner, &postgres).await;
    let client = client(&pki, "consumer", Http::One);
    assert_eq!(
        send(&client, ping(gateway.local_addr.port())).await.status,
        StatusCode::OK
    );
    gateway.shutdown().await;
    // A clean stop leaves stopped.json: the chain must end where the writer left it.
    postgres.psql(
        "INSERT INTO audit_records (instance, seq, prev_hash, hash, start_time, record) \
         SELECT instance, seq + 1, hash, 'forged', start_time, '{}' FROM audit_records \
         WHERE instance = 'test' ORDER BY seq DESC LIMIT 1",
    );
    let restarted = doelpoort::server::start(&config).await;
    let error = format!("{:#}", restarted.err().expect("refused"));
    assert!(
        error.contains("changed while this replica was stopped"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_takes_its_lock_again_after_postgres_restarts() {
    let postgres = Postgres::private();
    let pki = TestPki::new();
    let partner = start_partner(&pki, ok_partner()).await;
    let (config, gateway) = central_gateway(&pki, &partner, &postgres).await;
    let client = client(&pki, "consumer", Http::One);
    postgres.restart();
    // A commit after the restart confirms the lock (every 2 s at most) and takes it again
    // on a new connection, so a second process with the same instance id is still refused.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let started = Instant::now();
    while send(&client, ping(gateway.local_addr.port())).await.status != StatusCode::OK {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no commit after the restart"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let second = doelpoort::server::start(&config).await;
    let error = format!("{:#}", second.err().expect("refused"));
    assert!(
        error.contains("another gateway process writes the audit chain"),
        "{error}"
    );
    gateway.shutdown().await;
}
