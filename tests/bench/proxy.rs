//! Proxy-path benchmark: requests/s and latency of a mock partner called directly versus
//! through Doelpoort, all over mTLS on loopback. A program that prints numbers, not a test.
//!
//! Run: `cargo bench --bench proxy -- [--connections N] [--seconds S] [--body-bytes B]`
//!
//! The gateway runs its full pipeline: the shipped policies and schemas decide every request
//! (the client is the Rotterdam district team asking UWV income for `wams-onderzoek`), and the
//! partner's UWV-shaped answer of about B bytes is minimised to the fields that grant releases.
//! A second gateway, identical but for minimisation switched off (answers relayed unchanged,
//! a switch only benchmarks can set), is the pass-through baseline; the two are loaded
//! alternately for R rounds (`--rounds R`, default 2) because this VM's speed drifts.
//!
//! Layout: the partner, the gateway and the load generator each run on their own
//! single-threaded tokio runtime (one OS thread each), so "gateway CPU" is the CPU time of one
//! thread, read from /proc/thread-self/schedstat. Every loop is bounded by the duration; the
//! first second of each run is a warm-up whose samples are discarded.

#[path = "data.rs"]
mod data;
#[path = "rig.rs"]
mod rig;

// The same allocator as the `doelpoort` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Options {
    connections: usize,
    seconds: u64,
    body_bytes: usize,
    rounds: usize,
}

fn options() -> Options {
    let mut o = Options {
        connections: 16,
        seconds: 5,
        body_bytes: 2048,
        rounds: 2,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (args[i].as_str(), value) {
            ("--connections", Some(v)) => o.connections = v.clamp(1, 1024) as usize,
            ("--seconds", Some(v)) => o.seconds = v.clamp(2, 120),
            ("--body-bytes", Some(v)) => o.body_bytes = v.clamp(2, 1 << 20) as usize,
            ("--rounds", Some(v)) => o.rounds = v.clamp(1, 20) as usize,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

fn main() {
    let opts = options();
    let dir = tempfile::tempdir().unwrap();
    rig::write_pki(dir.path());
    let body: &'static [u8] = Box::leak(data::uwv_body(opts.body_bytes).into_boxed_slice());

    let partner_addr = rig::start_partner(dir.path(), body);
    let config_path = dir.path().join("bench.yaml");
    std::fs::write(
        &config_path,
        rig::config_yaml(dir.path(), partner_addr, "  mode: off"),
    )
    .unwrap();
    let gateway = rig::BenchGateway::start(&config_path);
    let mut config = doelpoort::config::Config::load(&config_path).unwrap();
    config.benchmark.skip_minimisation = true;
    let pass_through = rig::BenchGateway::start_with(config);

    let client = rig::single_thread_runtime();
    println!(
        "# proxy benchmark: {} keep-alive HTTP/1.1 connections, {} s measured (+1 s warm-up), {} B UWV JSON body, mTLS both legs, policy decision, signed assertion, audit off",
        opts.connections, opts.seconds, body.len()
    );
    println!("| round | path | req/s | p50 µs | p99 µs | errors | gateway CPU µs/req |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    let measure = |round: usize,
                   label: &str,
                   addr,
                   stem: &str,
                   path: &'static str,
                   gw: Option<&rig::BenchGateway>| {
        let tls = rig::client_tls(dir.path(), stem);
        let cpu_before = gw.map(|g| g.cpu_ns());
        let mut result =
            client.block_on(rig::load(addr, tls, path, opts.connections, opts.seconds));
        let cpu_after = gw.map(|g| g.cpu_ns());
        result.latencies_us.sort_unstable();
        let rps = result.requests as f64 / result.elapsed.as_secs_f64();
        let cpu = match (cpu_before, cpu_after) {
            // CPU during warm-up is included; requests counted exclude warm-up, so this
            // slightly overstates the cost per request.
            (Some(before), Some(after)) if result.requests > 0 => format!(
                "{:.1}",
                (after - before) as f64 / 1000.0 / (rps * (result.elapsed.as_secs_f64() + 1.0))
            ),
            _ => "-".into(),
        };
        let p50 = rig::percentile(&result.latencies_us, 0.50);
        let p99 = rig::percentile(&result.latencies_us, 0.99);
        println!(
            "| {round} | {label} | {rps:.0} | {p50} | {p99} | {} | {cpu} |",
            result.errors
        );
        (rps, p50, p99)
    };
    let gw_path = "/uwv/v1/personen/999990019/inkomen";
    let direct = measure(
        0,
        "direct (client → partner)",
        partner_addr,
        "gateway-client",
        "/v1/personen/999990019/inkomen",
        None,
    );
    let mut ratios = Vec::new();
    let mut last = None;
    for round in 1..=opts.rounds {
        let off = measure(
            round,
            "via Doelpoort, minimisation off (pass-through)",
            pass_through.addr,
            "consumer",
            gw_path,
            Some(&pass_through),
        );
        let on = measure(
            round,
            "via Doelpoort, full pipeline (minimisation on)",
            gateway.addr,
            "consumer",
            gw_path,
            Some(&gateway),
        );
        ratios.push(on.0 / off.0);
        last = Some(on);
    }
    ratios.sort_by(f64::total_cmp);
    println!();
    println!(
        "minimisation on / off throughput: {} (median {:.2})",
        ratios
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
        ratios[ratios.len() / 2]
    );
    if let Some(via) = last {
        println!(
            "gateway/direct throughput: {:.2}; added latency p50 {} µs, p99 {} µs",
            via.0 / direct.0,
            via.1.saturating_sub(direct.1),
            via.2.saturating_sub(direct.2)
        );
    }
}
