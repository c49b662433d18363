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

// The same allocator as the `doelpoort` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use bytes::Bytes;
use doelpoort::demo::{self, MockPartner, MockRequest};
use doelpoort::pki::{CertificateAuthority, LeafSpec, Usage};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

fn write_pki(dir: &Path) {
    let ca = CertificateAuthority::generate("Bench Root CA", "Doelpoort bench", 2).unwrap();
    std::fs::write(dir.join("ca.crt"), ca.cert_pem()).unwrap();
    let leaf = |cn: &str, oin: &str, usage: Usage| {
        let mut s = LeafSpec::new(cn, usage, 1);
        s.serial_number = Some(oin.into());
        s.dns_names = vec!["localhost".into()];
        s.ip_addresses = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
        s
    };
    for (stem, cn, oin, usage) in [
        ("gateway", "gateway", "00000001999990000000", Usage::Server),
        (
            "gateway-client",
            "gateway",
            "00000001999990000000",
            Usage::Client,
        ),
        ("partner", "uwv", "00000001999990011000", Usage::Server),
        (
            "consumer",
            "wijkteam-rotterdam",
            "00000001999990001000",
            Usage::Client,
        ),
    ] {
        ca.issue(&leaf(cn, oin, usage))
            .unwrap()
            .write(dir, stem)
            .unwrap();
    }
}

fn config_yaml(dir: &Path, partner: SocketAddr) -> String {
    let d = dir.display();
    let repo = env!("CARGO_MANIFEST_DIR");
    format!(
        r#"listen: 127.0.0.1:0
tls:
  certificate: {d}/gateway.crt
  key: {d}/gateway.key
  client_ca: [{d}/ca.crt]
policies: {repo}/policies
schemas: {repo}/schemas
audit:
  mode: off
consumers:
  - id: wijkteam-rotterdam
    oin: "00000001999990001000"
partners:
  - id: uwv
    url: https://localhost:{port}
    client_certificate: {d}/gateway-client.crt
    client_key: {d}/gateway-client.key
    trust: [{d}/ca.crt]
    max_idle_connections: 1024
"#,
        port = partner.port()
    )
}

fn single_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// CPU nanoseconds consumed so far by the calling thread.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

struct RunResult {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

/// Drives `connections` keep-alive HTTP/1.1 connections against `addr` for `seconds`.
async fn load(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    path: &'static str,
    connections: usize,
    seconds: u64,
) -> RunResult {
    let warmup_end = Instant::now() + Duration::from_secs(1);
    let end = warmup_end + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let tls = tls.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(64 * 1024);
            let mut errors = 0usize;
            let connector = tokio_rustls::TlsConnector::from(tls);
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
            let stream = connector.connect(name, tcp).await.unwrap();
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let mut warm_ok = 0usize;
            while Instant::now() < end {
                let started = Instant::now();
                let req = Request::get(path)
                    .header("host", "localhost")
                    .header("doelbinding-purpose", "wams-onderzoek")
                    .header("doelbinding-case-id", "casus-2026-0001")
                    .header("doelbinding-data-subject", "bsn=999990019")
                    .body(Empty::new())
                    .unwrap();
                match sender.send_request(req).await {
                    Ok(resp) => {
                        let ok = resp.status() == StatusCode::OK;
                        let _ = resp.into_body().collect().await;
                        if started >= warmup_end {
                            if ok {
                                latencies.push(started.elapsed().as_micros() as u32);
                            } else {
                                errors += 1;
                            }
                        } else {
                            warm_ok += 1;
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
            }
            let _ = warm_ok;
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    RunResult {
        requests: all.len(),
        errors,
        elapsed: Duration::from_secs(seconds),
        latencies_us: all,
    }
}

fn client_tls(dir: &Path, stem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in doelpoort::tls::load_certificates(&dir.join("ca.crt")).unwrap() {
        roots.add(c).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(doelpoort::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                doelpoort::tls::load_certificates(&dir.join(format!("{stem}.crt"))).unwrap(),
                doelpoort::tls::load_private_key(&dir.join(format!("{stem}.key"))).unwrap(),
            )
            .unwrap(),
    )
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let opts = options();
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path());
    let body: &'static [u8] = Box::leak(data::uwv_body(opts.body_bytes).into_boxed_slice());

    // Partner on its own thread.
    let (partner_tx, partner_rx) = std::sync::mpsc::channel();
    let pdir = dir.path().to_path_buf();
    std::thread::spawn(move || {
        single_thread_runtime().block_on(async move {
            let tls = demo::mock_partner_tls(
                &pdir.join("partner.crt"),
                &pdir.join("partner.key"),
                &pdir.join("ca.crt"),
            )
            .unwrap();
            let handler: demo::MockHandler = Arc::new(move |_r: MockRequest| {
                Box::pin(async move {
                    let mut r = Response::new(Full::new(Bytes::from_static(body)));
                    r.headers_mut()
                        .insert("content-type", "application/json".parse().unwrap());
                    r
                })
            });
            let partner = MockPartner::start(([127, 0, 0, 1], 0).into(), tls, handler)
                .await
                .unwrap();
            partner_tx.send(partner.addr).unwrap();
            std::future::pending::<()>().await;
        })
    });
    let partner_addr = partner_rx.recv().unwrap();

    // Gateway on its own thread; it reports its address and, on request, its thread CPU time.
    let config_path = dir.path().join("bench.yaml");
    std::fs::write(&config_path, config_yaml(dir.path(), partner_addr)).unwrap();
    let config = doelpoort::config::Config::load(&config_path).unwrap();
    let (gw_tx, gw_rx) = std::sync::mpsc::channel();
    let (cpu_req_tx, cpu_req_rx) = std::sync::mpsc::channel::<std::sync::mpsc::Sender<u64>>();
    std::thread::spawn(move || {
        single_thread_runtime().block_on(async move {
            let gateway = doelpoort::server::start(&config).await.unwrap();
            gw_tx.send(gateway.local_addr).unwrap();
            loop {
                while let Ok(reply) = cpu_req_rx.try_recv() {
                    let _ = reply.send(thread_cpu_ns());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    });
    let gateway_addr = gw_rx.recv().unwrap();
    let gateway_cpu = || {
        let (tx, rx) = std::sync::mpsc::channel();
        cpu_req_tx.send(tx).unwrap();
        rx.recv().unwrap()
    };

    let client = single_thread_runtime();
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
        let tls = client_tls(dir.path(), stem);
        let cpu_before = gateway_cpu();
        let mut result = client.block_on(load(addr, tls, path, opts.connections, opts.seconds));
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
            percentile(&result.latencies_us, 0.50),
            percentile(&result.latencies_us, 0.99),
            result.errors
        );
        results.push((
            rps,
            percentile(&result.latencies_us, 0.50),
            percentile(&result.latencies_us, 0.99),
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
