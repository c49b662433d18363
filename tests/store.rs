//! One store for replicas (issue 18, SPEC §9): spent four-eyes approvals hold across replicas
//! on one real PostgreSQL, and across a restart on the embedded SQLite store.

mod harness;

use bytes::Bytes;
use doelpoort::server::RunningGateway;
use doelpoort::store::StoreLocation;
use harness::postgres::Postgres;
use harness::stores::demo_replica;
use harness::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};
use std::time::Duration;

/// A time-out the demo's grant allows: one traffic fine, three months, a reason.
fn time_out() -> Value {
    json!({
        "bsn": "999990019",
        "vorderingen": [{"vordering_id": "CJIB-2026-000123", "categorie": "verkeersboete"}],
        "einddatum": doelpoort::policy::RelativeDate { days: 0, months: 3 }
            .resolve(doelpoort::policy::today())
            .to_string(),
        "reden": "schuldhulpverlening gestart",
    })
}

fn approval(run: &DemoRun, body: &Value) -> String {
    time_out_approval(run, body, "teamleider")
}

async fn post_time_out(run: &DemoRun, port: u16, token: &str, body: &Value) -> TestResponse {
    let url = format!("https://localhost:{port}/cjib/v1/opschortingen");
    post_with_approval(run, url, token, body).await
}

fn assert_already_used(response: &TestResponse) {
    assert_eq!(
        response.status,
        StatusCode::FORBIDDEN,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.problem_code(), "four-eyes-required");
    assert!(
        String::from_utf8_lossy(&response.body).contains("already been used"),
        "{}",
        String::from_utf8_lossy(&response.body)
    );
}

/// A second gateway ("replica") of the demo's configuration, on its own port, data directory
/// and instance id, with `store`.
async fn replica(run: &DemoRun, name: &str, store: StoreLocation) -> RunningGateway {
    let gateway = demo_replica(run, name, store, |_| {}).await;
    // The demo's cases, in this replica's store (SPEC §8), as the demo registers them.
    let port = gateway.local_addr.port();
    register_case(
        &run.client("wijkteam-rotterdam"),
        port,
        "casus-2026-0001",
        &["wams-onderzoek", "wams-coordinatie"],
        &["uwv", "svb", "jeugdhulp"],
    )
    .await;
    register_case(
        &run.client("schuldhulp-utrecht"),
        port,
        "shv-2026-0042",
        &["schuldhulpverlening", "time-out", "escalatie"],
        &["uwv", "cjib"],
    )
    .await;
    gateway
}

/// A `doelpoort demo` child process over a [`DemoRun`]'s certificates and policies, as one
/// replica of a deployment: its own data directory and instance id, the store shared. Stopped
/// (and waited for) when dropped.
struct DemoProcess {
    child: std::process::Child,
    port: u16,
}

impl DemoProcess {
    fn start(run: &DemoRun, instance: &str, store: &str) -> Self {
        use std::io::{BufRead, BufReader};
        let root = run.root.path();
        let child = demo_command(root, &root.join(instance))
            .args(["--store", store, "--instance", instance])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut process = Self { child, port: 0 };
        // The demo prints its calls with its port: https://localhost:PORT/…
        let mut stdout = BufReader::new(process.child.stdout.take().unwrap());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut line = String::new();
        while process.port == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the demo did not start"
            );
            line.clear();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "the demo exited");
            if let Some(rest) = line.split("https://localhost:").nth(1) {
                let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                process.port = port.parse().unwrap();
            }
        }
        // Keep reading its output, so the demo never blocks on a full pipe.
        std::thread::spawn(move || for _ in stdout.lines() {});
        process
    }
}

impl Drop for DemoProcess {
    fn drop(&mut self) {
        signal(&self.child, rustix::process::Signal::INT);
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_approval_spent_on_one_replica_is_refused_on_the_other() {
    // Two gateway processes (`doelpoort demo` as replicas) on one real PostgreSQL.
    let postgres = Postgres::start();
    let run = start_demo().await;
    let url = postgres.url();
    let replica_a = DemoProcess::start(&run, "replica-a", &url);
    let replica_b = DemoProcess::start(&run, "replica-b", &url);
    let (a, b) = (replica_a.port, replica_b.port);
    let body = time_out();

    // Spent on A, then replayed on B, and on A.
    let token = approval(&run, &body);
    let first = post_time_out(&run, a, &token, &body).await;
    assert_eq!(
        first.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert_already_used(&post_time_out(&run, b, &token, &body).await);
    assert_already_used(&post_time_out(&run, a, &token, &body).await);

    // The same approval on both replicas at once: exactly one exchange gets it, 50 times.
    // The one that gets it then meets the case's time-out ledger, which holds this claim's
    // time-out from above: refused as a second time-out, not as a replay. This test is
    // about the approval: exactly one of the two is refused as already used.
    for round in 0..50 {
        let token = approval(&run, &body);
        let (on_a, on_b) = tokio::join!(
            post_time_out(&run, a, &token, &body),
            post_time_out(&run, b, &token, &body)
        );
        let replays = [&on_a, &on_b]
            .iter()
            .filter(|r| String::from_utf8_lossy(&r.body).contains("already been used"))
            .count();
        assert_eq!(
            replays, 1,
            "round {round}: {} and {}",
            on_a.status, on_b.status
        );
        for response in [&on_a, &on_b] {
            if String::from_utf8_lossy(&response.body).contains("already been used") {
                assert_already_used(response);
            } else {
                assert_eq!(response.problem_code(), "condition-failed", "round {round}");
            }
        }
    }
    let spent = postgres.psql("SELECT count(*) FROM spent_approvals");
    assert_eq!(spent.trim(), "51", "one row per approval spent");
    // Kept a day past the token's expiry, whatever a replica's leeway, and under the
    // token's own `iss`: replicas that name the issuer differently still agree.
    let kept = postgres.psql("SELECT min(expires_at - spent_at) FROM spent_approvals");
    assert!(kept.trim().parse::<i64>().unwrap() >= 86_400, "{kept}");
    let issuers = postgres.psql("SELECT DISTINCT issuer FROM spent_approvals");
    assert_eq!(issuers.trim(), doelpoort::demo::tokens::DEMO_ISSUER);
    let instances = postgres.psql("SELECT DISTINCT instance FROM spent_approvals ORDER BY 1");
    assert_eq!(
        instances.trim(),
        "replica-a\nreplica-b",
        "both replicas spent approvals"
    );
    drop((replica_a, replica_b));
}

#[tokio::test]
async fn a_spent_approval_stays_spent_after_a_restart() {
    // The embedded store (SQLite in the data directory), the demo's default.
    let run = start_demo().await;
    let body = time_out();
    let token = approval(&run, &body);
    let store = StoreLocation::Sqlite(run.root.path().join("single").join("store.sqlite"));
    let gateway = replica(&run, "single", store.clone()).await;
    let first = post_time_out(&run, gateway.local_addr.port(), &token, &body).await;
    assert_eq!(first.status, StatusCode::CREATED);
    gateway.shutdown().await;

    let restarted = replica(&run, "single", store).await;
    assert_already_used(&post_time_out(&run, restarted.local_addr.port(), &token, &body).await);
    // A new approval still works: the store refuses replays, not the operation (for another
    // claim: the ledger would refuse a second time-out for the same one).
    let mut other_claim = body.clone();
    other_claim["vorderingen"] =
        json!([{"vordering_id": "CJIB-2025-004711", "categorie": "administratief"}]);
    let fresh = post_time_out(
        &run,
        restarted.local_addr.port(),
        &approval(&run, &other_claim),
        &other_claim,
    )
    .await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{:?}", fresh.body);
    restarted.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_store_refuses_the_approval_and_readiness_says_so() {
    let postgres = Postgres::private();
    let run = start_demo().await;
    let gateway = replica(&run, "lonely", StoreLocation::Postgres(postgres.url())).await;
    let body = time_out();
    postgres.stop();
    let token = approval(&run, &body);
    let response = post_time_out(&run, gateway.local_addr.port(), &token, &body).await;
    assert_eq!(
        response.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.problem_code(), "audit-unavailable");
    // The partner was never called: CJIB registered no time-out for this exchange.
    let record = audit_records(&run.root.path().join("lonely").join("audit"))
        .into_iter()
        .rev()
        .find(|r| r["attributes"]["doelpoort.reason"] == "audit-unavailable")
        .expect("the refusal is recorded");
    assert!(record["attributes"]["doelpoort.upstream_status"].is_null());
    let admin = gateway.admin_addr.unwrap();
    // Reported, but the replica stays in rotation: the store is shared, and taking every
    // replica out would refuse the exchanges that do not need it too.
    let (status, text) = admin_get(&admin.to_string(), "/readyz").await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("degraded") && text.contains("store"),
        "{text}"
    );

    postgres.restart();
    // The same approval was never spent: it works once the store is back.
    let mut answered = None;
    for _ in 0..50 {
        let response = post_time_out(&run, gateway.local_addr.port(), &token, &body).await;
        if response.status != StatusCode::SERVICE_UNAVAILABLE {
            answered = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let answered = answered.expect("the store came back within 10 s");
    assert_eq!(answered.status, StatusCode::CREATED);
    let (status, text) = admin_get(&admin.to_string(), "/readyz").await;
    assert_eq!((status, text.as_str()), (200, "ready\n"));
    gateway.shutdown().await;
}

/// The demo's income lookup through `gateway` (allowed: 200).
async fn income(run: &DemoRun, gateway: &RunningGateway) -> TestResponse {
    let request = Request::get(url(gateway, "/uwv/v1/personen/999990019/inkomen"))
        .header("doelbinding-purpose", "wams-onderzoek")
        .header("doelbinding-case-id", "casus-2026-0001")
        .header("doelbinding-data-subject", "bsn=999990019")
        .header("doelbinding-actor", "medewerker-0042")
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(&run.client("wijkteam-rotterdam"), request).await
}

/// `doelpoort audit query … --subject 999990019 --format json`, as rows.
fn art15(place: &[&str]) -> Vec<Value> {
    let mut args = vec!["audit", "query"];
    args.extend_from_slice(place);
    args.extend_from_slice(&["--subject", "999990019", "--format", "json"]);
    let (code, out) = run_doelpoort(&args);
    assert_eq!(code, 0, "{out}");
    // stdout (the JSON rows) comes first, then stderr; the rows alone are read.
    let json_start = out.find('[').unwrap_or_else(|| panic!("{out}"));
    assert!(!out.contains("warning"), "{out}");
    serde_json::Deserializer::from_str(&out[json_start..])
        .into_iter::<Vec<Value>>()
        .next()
        .unwrap_or_else(|| panic!("{out}"))
        .unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_central_audit_log_answers_for_every_replica() {
    let postgres = Postgres::start();
    let url = postgres.url();
    let run = start_demo().await;
    // Replica A writes files (then is imported); replica B writes to PostgreSQL directly.
    let a = replica(&run, "replica-a", StoreLocation::Postgres(url.clone())).await;
    // Its own directory (the demo's own log, with its case registrations, is another chain),
    // and its audit log in PostgreSQL.
    let b = demo_replica(
        &run,
        "replica-b",
        StoreLocation::Postgres(url.clone()),
        |config| {
            config.audit.sink = doelpoort::config::AuditSink::Postgres;
        },
    )
    .await;
    for gateway in [&a, &b, &a, &b, &b] {
        assert_eq!(income(&run, gateway).await.status, StatusCode::OK);
    }
    a.shutdown().await;
    b.shutdown().await;

    // B's records are in the store, one chain, released only after their commit.
    let rows = postgres.psql("SELECT instance, count(*) FROM audit_records GROUP BY 1");
    assert_eq!(rows.trim(), "replica-b|3", "{rows}");

    // A's file log moves into the store; importing again adds nothing and still verifies.
    let dir_a = run.root.path().join("replica-a").join("audit");
    let dir_a = dir_a.to_str().unwrap();
    let (code, out) = run_doelpoort(["audit", "import", dir_a, "--store", &url]);
    assert_eq!(code, 0, "{out}");
    // Two exchanges, and the two case registrations made when the replica started.
    assert!(
        out.contains("imported 4 records of instance 'replica-a' (4 new)"),
        "{out}"
    );
    let (code, out) = run_doelpoort(["audit", "import", dir_a, "--store", &url]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(0 new)"), "{out}");

    let (code, out) = run_doelpoort(["audit", "verify", "--store", &url]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("instance replica-a: OK, 4 records"), "{out}");
    assert!(out.contains("instance replica-b: OK, 3 records"), "{out}");

    // The citizen's report from the store covers both replicas, and A's part is exactly what
    // A's own files answer.
    let central = art15(&["--store", &url]);
    assert_eq!(central.len(), 5, "{central:?}");
    let from_files = art15(&[dir_a]);
    let a_tx: Vec<&Value> = from_files.iter().map(|r| &r["transaction_id"]).collect();
    let central_a: Vec<&Value> = central
        .iter()
        .filter(|r| a_tx.contains(&&r["transaction_id"]))
        .collect();
    assert_eq!(central_a.len(), 2);
    for (file_row, store_row) in from_files.iter().zip(central_a) {
        assert_eq!(file_row, store_row);
    }

    // A log written with another subject key is refused whole: nothing of it is registered.
    let mut other_key = run.demo.config.clone();
    other_key.instance = "other-key".into();
    other_key.listen = "127.0.0.1:0".parse().unwrap();
    other_key.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    other_key.audit.dir = run.root.path().join("other-key").join("audit");
    other_key.audit.subject_key = run.root.path().join("other-key").join("subject.key");
    let c = doelpoort::server::start(&other_key).await.unwrap();
    assert_eq!(income(&run, &c).await.status, StatusCode::OK);
    c.shutdown().await;
    let dir_c = other_key.audit.dir.to_str().unwrap().to_string();
    let (code, out) = run_doelpoort(["audit", "import", &dir_c, "--store", &url]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("one store holds records of one subject key"),
        "{out}"
    );
    let registered =
        postgres.psql("SELECT count(*) FROM audit_instances WHERE instance = 'other-key'");
    assert_eq!(registered.trim(), "0");

    // A manifest edited to file A's records under another instance is refused.
    let renamed = run.root.path().join("renamed-audit");
    copy_dir(std::path::Path::new(dir_a), &renamed);
    let manifest = renamed.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("\"replica-a\"", "\"replica-x\"")).unwrap();
    let (code, out) = run_doelpoort([
        "audit",
        "import",
        renamed.to_str().unwrap(),
        "--store",
        &url,
    ]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("belongs to instance"), "{out}");

    // Records cannot be changed, deleted or truncated through the table's triggers.
    for statement in [
        "UPDATE audit_records SET record = record WHERE seq = 1",
        "DELETE FROM audit_records WHERE instance = 'replica-b' AND seq = 2",
        "TRUNCATE audit_records",
    ] {
        let refused = postgres.try_psql(statement);
        assert!(refused.is_err(), "{statement} must be refused: {refused:?}");
    }
    // Someone who can switch the triggers off (the table's owner) still cannot hide it: a
    // row re-filed under another person, or a deleted row, breaks the instance's chain.
    postgres.psql(
        "ALTER TABLE audit_records DISABLE TRIGGER USER; \
         UPDATE audit_records SET subject_id = 'someone-else' WHERE instance = 'replica-a' AND seq = 1; \
         DELETE FROM audit_records WHERE instance = 'replica-b' AND seq = 2; \
         ALTER TABLE audit_records ENABLE TRIGGER USER;",
    );
    let (code, out) = run_doelpoort(["audit", "verify", "--store", &url]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("instance replica-a, seq:1") && out.contains("subject columns"),
        "{out}"
    );
    assert!(
        out.contains("instance replica-b, seq:3") && out.contains("missing"),
        "{out}"
    );

    // The read-side tools change nothing: against a database without Doelpoort's tables they
    // say so, and create none.
    let empty = Postgres::start();
    let (code, out) = run_doelpoort(["audit", "verify", "--store", &empty.url()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no Doelpoort audit log"), "{out}");
    assert_eq!(
        empty
            .psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            .trim(),
        "0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_that_name_the_issuer_differently_still_share_spent_approvals() {
    let postgres = Postgres::start();
    let run = start_demo().await;
    let store = StoreLocation::Postgres(postgres.url());
    let a = replica(&run, "named-a", store.clone()).await;
    // Replica B calls the same identity provider (same `iss`, same keys) by another id.
    let b = demo_replica(&run, "named-b", store, |config| {
        let tokens = config.tokens.as_mut().unwrap();
        tokens.issuers[0].id = "idp-renamed".into();
        for consumer in &mut config.consumers {
            consumer.token_issuers = vec!["idp-renamed".into()];
        }
    })
    .await;
    let body = time_out();
    let token = approval(&run, &body);
    let first = post_time_out(&run, a.local_addr.port(), &token, &body).await;
    assert_eq!(
        first.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert_already_used(&post_time_out(&run, b.local_addr.port(), &token, &body).await);
    a.shutdown().await;
    b.shutdown().await;
}
