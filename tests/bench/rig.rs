//! What the benchmarks share: a throw-away PKI, a mock partner and gateways each on their own
//! single-threaded runtime (one OS thread each, so "gateway CPU" is one thread's CPU time), and
//! a keep-alive mTLS load generator bounded by time. Included by each bench with `#[path]`.
#![allow(dead_code)] // each bench uses a different part

use bytes::Bytes;
use doelpoort::demo::{self, MockPartner, MockRequest};
use doelpoort::metrics::Metrics;
use doelpoort::pki::{CertificateAuthority, LeafSpec, Usage};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Writes the bench PKI: gateway (server + client), partner, and the Rotterdam district team.
pub fn write_pki(dir: &Path) {
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

/// The gateway configuration for the benchmarks; `audit` is the YAML of the `audit:` section.
pub fn config_yaml(dir: &Path, partner: SocketAddr, audit: &str) -> String {
    let d = dir.display();
    let repo = env!("CARGO_MANIFEST_DIR");
    format!(
        r#"listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
tls:
  certificate: {d}/gateway.crt
  key: {d}/gateway.key
  client_ca: [{d}/ca.crt]
policies: {repo}/policies
schemas: {repo}/schemas
audit:
{audit}
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

pub fn single_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// CPU nanoseconds consumed so far by the calling thread.
pub fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

pub struct RunResult {
    pub requests: usize,
    pub errors: usize,
    pub elapsed: Duration,
    pub latencies_us: Vec<u32>,
}

/// Drives `connections` keep-alive HTTP/1.1 connections against `addr` for `seconds`.
pub async fn load(
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

pub fn client_tls(dir: &Path, stem: &str) -> Arc<rustls::ClientConfig> {
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

pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// CPU nanoseconds of every thread of this process named `name` (e.g. `audit-writer`).
pub fn named_threads_cpu_ns(name: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| {
            s.split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        })
        .sum()
}

/// Starts the mock partner on its own thread, answering every request with `body`.
pub fn start_partner(dir: &Path, body: &'static [u8]) -> SocketAddr {
    let (partner_tx, partner_rx) = std::sync::mpsc::channel();
    let pdir = dir.to_path_buf();
    // Named threads, so a profiler can tell partner, gateway and load generator apart.
    named_thread("partner", move || {
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
    partner_rx.recv().unwrap()
}

fn named_thread(name: &str, f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("a thread");
}

/// A gateway running on its own thread.
pub struct BenchGateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub metrics: Arc<Metrics>,
    cpu_requests: std::sync::mpsc::Sender<std::sync::mpsc::Sender<u64>>,
}

impl BenchGateway {
    /// Starts a gateway from the configuration at `config_path` on its own thread.
    pub fn start(config_path: &Path) -> Self {
        Self::start_with(doelpoort::config::Config::load(config_path).unwrap())
    }

    /// Starts a gateway from a loaded (and possibly adjusted) configuration.
    pub fn start_with(config: doelpoort::config::Config) -> Self {
        let (gw_tx, gw_rx) = std::sync::mpsc::channel();
        let (cpu_requests, cpu_req_rx) = std::sync::mpsc::channel::<std::sync::mpsc::Sender<u64>>();
        named_thread("gateway", move || {
            single_thread_runtime().block_on(async move {
                let gateway = doelpoort::server::start(&config).await.unwrap();
                gw_tx
                    .send((
                        gateway.local_addr,
                        gateway
                            .admin_addr
                            .expect("the bench config has an admin listener"),
                        gateway.metrics.clone(),
                    ))
                    .unwrap();
                loop {
                    while let Ok(reply) = cpu_req_rx.try_recv() {
                        let _ = reply.send(thread_cpu_ns());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        });
        let (addr, admin, metrics) = gw_rx.recv().unwrap();
        Self {
            addr,
            admin,
            metrics,
            cpu_requests,
        }
    }

    /// CPU nanoseconds the gateway's runtime thread has used so far.
    pub fn cpu_ns(&self) -> u64 {
        let (tx, rx) = std::sync::mpsc::channel();
        self.cpu_requests.send(tx).unwrap();
        rx.recv().unwrap()
    }
}

/// Pins this process's threads to CPU cores by thread name (`taskset -p` on each thread id),
/// as issue 8's layout asks: the gateway side on one core, load generator and partner on the
/// other. `main` stands for the main thread (the load generator). Returns what it pinned.
pub fn pin_threads(layout: &[(&str, usize)]) -> Vec<String> {
    let mut pinned = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return pinned;
    };
    let pid = std::process::id().to_string();
    for task in tasks.filter_map(Result::ok) {
        let tid = task.file_name().to_string_lossy().into_owned();
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let name = if tid == pid { "main" } else { comm.trim() };
        if let Some((_, core)) = layout.iter().find(|(n, _)| *n == name) {
            let ok = std::process::Command::new("taskset")
                .args(["-p", "-c", &core.to_string(), &tid])
                .stdout(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                pinned.push(format!("{name}→{core}"));
            }
        }
    }
    pinned.sort();
    pinned.dedup();
    pinned
}
