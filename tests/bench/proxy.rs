//! Proxy-path benchmark: requests/s and latency of a mock partner called directly versus
//! through Doelpoort, all over mTLS on loopback. A program that prints numbers, not a test.
//!
//! Run: `cargo bench --bench proxy -- [--connections N] [--seconds S] [--body-bytes B]`
//!
//! The gateway runs its full pipeline: the shipped policies and schemas decide every request
//! (the client is the Rotterdam district team asking UWV income for `wams-onderzoek`), and the
//! partner's UWV-shaped answer of about B bytes is minimised to the fields that grant releases.
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
}

fn options() -> Options {
    let mut o = Options {
        connections: 16,
        seconds: 5,
        body_bytes: 2048,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (args[i].as_str(), value) {
            ("--connections", Some(v)) => o.connections = v.clamp(1, 1024) as usize,
            ("--seconds", Some(v)) => o.seconds = v.clamp(2, 120),
            ("--body-bytes", Some(v)) => o.body_bytes = v.clamp(2, 1 << 20) as usize,
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
    let gateway_addr = gateway.addr;
    let gateway_cpu = || gateway.cpu_ns();

    let client = rig::single_thread_runtime();
    println!(
        "# proxy benchmark: {} keep-alive HTTP/1.1 connections, {} s measured (+1 s warm-up), {} B UWV JSON body, mTLS both legs, full pipeline (policy decision + minimisation)",
        opts.connections, opts.seconds, body.len()
    );
    println!("| path | req/s | p50 µs | p99 µs | errors | gateway CPU µs/req |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut results = Vec::new();
    for (label, addr, stem, path) in [
        (
            "direct (client → partner)",
            partner_addr,
            "gateway-client",
            "/v1/personen/999990019/inkomen",
        ),
        (
            "via Doelpoort (client → gateway → partner)",
            gateway_addr,
            "consumer",
            "/uwv/v1/personen/999990019/inkomen",
        ),
    ] {
        let tls = rig::client_tls(dir.path(), stem);
        let cpu_before = gateway_cpu();
        let mut result =
            client.block_on(rig::load(addr, tls, path, opts.connections, opts.seconds));
        let cpu_after = gateway_cpu();
        result.latencies_us.sort_unstable();
        let rps = result.requests as f64 / result.elapsed.as_secs_f64();
        let cpu = if addr == gateway_addr && result.requests > 0 {
            // CPU during warm-up is included; requests counted exclude warm-up, so this slightly
            // overstates the cost per request.
            format!(
                "{:.1}",
                (cpu_after - cpu_before) as f64
                    / 1000.0
                    / (rps * (result.elapsed.as_secs_f64() + 1.0))
            )
        } else {
            "-".into()
        };
        println!(
            "| {label} | {rps:.0} | {} | {} | {} | {cpu} |",
            rig::percentile(&result.latencies_us, 0.50),
            rig::percentile(&result.latencies_us, 0.99),
            result.errors
        );
        results.push((
            rps,
            rig::percentile(&result.latencies_us, 0.50),
            rig::percentile(&result.latencies_us, 0.99),
        ));
    }
    if let [direct, via] = results[..] {
        println!();
        println!(
            "gateway/direct throughput: {:.2}; added latency p50 {} µs, p99 {} µs",
            via.0 / direct.0,
            via.1.saturating_sub(direct.1),
            via.2.saturating_sub(direct.2)
        );
    }
}
