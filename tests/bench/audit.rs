//! Audit-log benchmark: throughput with the durable audit log in files (group commit,
//! fdatasync) and in PostgreSQL (group commit, one INSERT per batch, synchronous_commit on)
//! versus audit off, at 1, 16 and 256 concurrent clients. A program that prints numbers, not a
//! test.
//!
//! Run: `cargo bench --bench audit -- [--seconds S] [--clients 1,16,256] [--postgres URL]`
//!
//! Without `--postgres` (or `DOELPOORT_BENCH_POSTGRES`) the benchmark starts a private
//! PostgreSQL cluster with the tests' harness, its data directory under `target/` (a real
//! disk, fsync on). The PostgreSQL server's own CPU is not in the per-request CPU columns.
//!
//! Two gateways run side by side in one process, each on its own single-threaded runtime, in
//! front of the same mock partner, with the same shipped policies (full pipeline: decision and
//! minimisation of a 2 KB UWV answer). One has `audit.mode: off`; the other writes every record
//! durably to a directory under `target/` (a real disk: a tmpfs fsync costs nothing and would
//! flatter the result). For each client count the two are loaded alternately within the same
//! minute, because this VM's speed drifts. Reported per run: requests/s, latency, the audit
//! writer's records/s and fsyncs/s (group commits), records per fsync, and CPU per request of
//! the gateway thread and of the writer thread.

#[path = "data.rs"]
mod data;
#[allow(dead_code)]
#[path = "../harness/postgres.rs"]
mod postgres;
#[path = "rig.rs"]
mod rig;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The PostgreSQL to write to: `--postgres URL`, `DOELPOORT_BENCH_POSTGRES`, or a private
/// cluster (kept alive by the returned guard).
fn postgres_url() -> (String, Option<postgres::Postgres>) {
    let args: Vec<String> = std::env::args().collect();
    let given = args
        .windows(2)
        .find(|p| p[0] == "--postgres")
        .map(|p| p[1].clone())
        .or_else(|| std::env::var("DOELPOORT_BENCH_POSTGRES").ok());
    match given {
        Some(url) => (url, None),
        None => {
            let cluster = postgres::Postgres::private();
            (cluster.url(), Some(cluster))
        }
    }
}

fn options() -> (u64, Vec<usize>, String) {
    let args: Vec<String> = std::env::args().collect();
    let mut seconds = 5;
    let mut clients = vec![1, 16, 256];
    let mut commit_delay = "0s".to_string();
    for pair in args.windows(2) {
        match pair[0].as_str() {
            "--seconds" => seconds = pair[1].parse::<u64>().map_or(seconds, |s| s.clamp(2, 60)),
            "--clients" => {
                clients = pair[1]
                    .split(',')
                    .filter_map(|c| c.parse::<usize>().ok())
                    .map(|c| c.clamp(1, 1024))
                    .collect()
            }
            "--commit-delay" => commit_delay = pair[1].clone(),
            _ => {}
        }
    }
    (seconds, clients, commit_delay)
}

struct Measured {
    rps: f64,
    p50: u32,
    p99: u32,
    errors: usize,
    gateway_cpu_us: f64,
    writer_cpu_us: f64,
    records_per_s: f64,
    fsyncs_per_s: f64,
    /// Mean duration of one group commit (write + fdatasync), µs.
    commit_us: f64,
    /// Cores the whole process (client, partner, gateways, writer) kept busy.
    process_cores: f64,
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat.
fn process_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn measure(
    client: &tokio::runtime::Runtime,
    gateway: &rig::BenchGateway,
    tls: std::sync::Arc<rustls::ClientConfig>,
    clients: usize,
    seconds: u64,
) -> Measured {
    let fsyncs_before = gateway.metrics.audit_write_duration.get_sample_count();
    let commit_s_before = gateway.metrics.audit_write_duration.get_sample_sum();
    let process_before = process_cpu_s();
    let cpu_before = gateway.cpu_ns();
    let writer_before = rig::named_threads_cpu_ns("audit-writer");
    let mut result = client.block_on(rig::load(
        gateway.addr,
        tls,
        "/uwv/v1/personen/999990019/inkomen",
        clients,
        seconds,
    ));
    let cpu = gateway.cpu_ns() - cpu_before;
    let writer = rig::named_threads_cpu_ns("audit-writer") - writer_before;
    let fsyncs = gateway.metrics.audit_write_duration.get_sample_count() - fsyncs_before;
    let commit_s = gateway.metrics.audit_write_duration.get_sample_sum() - commit_s_before;
    let process_cores = (process_cpu_s() - process_before) / (seconds as f64 + 1.0);
    result.latencies_us.sort_unstable();
    let total = seconds as f64 + 1.0; // the warm-up second is in the CPU and fsync counts
    let rps = result.requests as f64 / seconds as f64;
    let requests_incl_warmup = (rps * total).max(1.0);
    Measured {
        rps,
        p50: rig::percentile(&result.latencies_us, 0.5),
        p99: rig::percentile(&result.latencies_us, 0.99),
        errors: result.errors,
        gateway_cpu_us: cpu as f64 / 1000.0 / requests_incl_warmup,
        writer_cpu_us: writer as f64 / 1000.0 / requests_incl_warmup,
        records_per_s: if fsyncs > 0 { rps } else { 0.0 },
        fsyncs_per_s: fsyncs as f64 / total,
        commit_us: commit_s * 1e6 / (fsyncs.max(1) as f64),
        process_cores,
    }
}

fn main() {
    let (seconds, client_counts, commit_delay) = options();
    let dir = tempfile::tempdir().unwrap();
    rig::write_pki(dir.path());
    let body: &'static [u8] = Box::leak(data::uwv_body(2048).into_boxed_slice());
    let partner = rig::start_partner(dir.path(), body);

    // The durable log goes to a real disk, under target/.
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&target).unwrap();
    let audit_root = tempfile::tempdir_in(&target).unwrap();
    let start = |name: &str, audit: String| {
        let path = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, rig::config_yaml(dir.path(), partner, &audit)).unwrap();
        rig::BenchGateway::start(&path)
    };
    let off = start("off", "  mode: off".into());
    let durable = start(
        "durable",
        format!(
            "  dir: {}/audit\n  subject_key: {}/subject.key\n  commit_delay: {commit_delay}",
            audit_root.path().display(),
            audit_root.path().display()
        ),
    );
    // The private cluster's data directory goes under target/ too (TMPDIR), not to /tmp.
    std::env::set_var("TMPDIR", audit_root.path());
    let (pg_url, _cluster) = postgres_url();
    let central = start(
        "central",
        format!(
            "  sink: postgres\n  subject_key: {}/subject-pg.key\n  commit_delay: {commit_delay}\nstore: {pg_url}",
            audit_root.path().display()
        ),
    );
    let tls = rig::client_tls(dir.path(), "consumer");
    let client = rig::single_thread_runtime();
    // `--pin`: the gateways and their audit writer on core 1, the load generator and the
    // partner on core 0 (issue 8's layout: the gateway does not share its core with the load).
    let pinned = if std::env::args().any(|a| a == "--pin") {
        rig::pin_threads(&[
            ("gateway", 1),
            ("audit-writer", 1),
            ("partner", 0),
            ("main", 0),
        ])
    } else {
        Vec::new()
    };

    println!(
        "# audit benchmark: {seconds} s per run (+1 s warm-up), 2 KB UWV answer, full pipeline; commit delay {commit_delay}; audit directory on {}; PostgreSQL {}; threads pinned: {}",
        audit_root.path().display(),
        if _cluster.is_some() { "private cluster (same machine, fsync on)" } else { "given by URL" },
        if pinned.is_empty() { "no".to_string() } else { pinned.join(", ") }
    );
    println!("| clients | audit | req/s | p50 µs | p99 µs | errors | records/s | commits/s | records/commit | commit µs | gateway CPU µs/req | writer CPU µs/req | cores busy |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut ratios = Vec::new();
    for &clients in &client_counts {
        let a = measure(&client, &off, tls.clone(), clients, seconds);
        let b = measure(&client, &durable, tls.clone(), clients, seconds);
        let c = measure(&client, &central, tls.clone(), clients, seconds);
        for (label, m) in [("off", &a), ("durable-files", &b), ("durable-postgres", &c)] {
            let per_fsync = if m.fsyncs_per_s > 0.0 {
                format!("{:.1}", m.records_per_s / m.fsyncs_per_s)
            } else {
                "-".into()
            };
            println!(
                "| {clients} | {label} | {:.0} | {} | {} | {} | {:.0} | {:.0} | {per_fsync} | {:.0} | {:.1} | {:.1} | {:.2} |",
                m.rps, m.p50, m.p99, m.errors, m.records_per_s, m.fsyncs_per_s, m.commit_us, m.gateway_cpu_us, m.writer_cpu_us, m.process_cores
            );
        }
        ratios.push((clients, b.rps / a.rps, c.rps / a.rps));
    }
    println!();
    for (clients, files, postgres) in ratios {
        println!("throughput relative to audit off at {clients} client(s): files {files:.2}, postgres {postgres:.2}");
    }
}
