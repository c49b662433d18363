//! The one harness every whole-gateway test uses: a fresh PKI per test in a temporary
//! directory, mock partners with test-chosen handlers, a gateway started from a real YAML
//! configuration file on 127.0.0.1 port 0, and HTTPS clients that present a client certificate.
//! Nothing here talks to anything but loopback.
#![allow(dead_code)] // each test crate uses a different part of the harness

mod demo_run;
pub mod ends;
pub mod fsc_peer;
pub mod stores;
pub mod wire;
#[allow(unused_imports)] // only the tests on the demo use it
pub use demo_run::{
    post_with_approval, post_with_approval_for, start_demo, time_out_approval,
    time_out_approval_for, DemoRun,
};
/// A real PostgreSQL per test: a private throwaway cluster, or a database in the tester's server.
pub mod postgres;

use bytes::Bytes;
use doelpoort::config::Config;
use doelpoort::demo::{self, MockHandler, MockPartner, MockRequest};
use doelpoort::pki::{CertificateAuthority, LeafSpec, Usage};
use doelpoort::server::{self, RunningGateway};
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const CONSUMER_OIN: &str = "00000001999990001000";
pub const UNKNOWN_OIN: &str = "00000001999990099000";
pub const GATEWAY_OIN: &str = "00000001999990000000";
pub const PARTNER_OIN: &str = "00000001999990011000";

/// A complete PKI for one test, written to a temporary directory.
pub struct TestPki {
    pub dir: tempfile::TempDir,
}

fn spec(cn: &str, oin: Option<&str>, usage: Usage) -> LeafSpec {
    let mut s = LeafSpec::new(cn, usage, 30);
    s.organisation = Some(format!("{cn} (test)"));
    s.serial_number = oin.map(str::to_string);
    if matches!(usage, Usage::Server | Usage::Both) {
        s.dns_names = vec!["localhost".into()];
        s.ip_addresses = vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ];
    }
    s
}

impl TestPki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path();
        let ca = CertificateAuthority::generate("Test Root CA", "Doelpoort tests", 30).unwrap();
        std::fs::write(path.join("ca.crt"), ca.cert_pem()).unwrap();
        // Kept so hostile tests can mint certificates the defaults below do not cover.
        std::fs::write(path.join("ca.key"), ca.key_pem()).unwrap();
        let issue =
            |stem: &str, spec: LeafSpec| ca.issue(&spec).unwrap().write(path, stem).unwrap();
        issue("gateway", spec("gateway", Some(GATEWAY_OIN), Usage::Server));
        issue(
            "gateway-client",
            spec("gateway", Some(GATEWAY_OIN), Usage::Client),
        );
        issue("partner", spec("uwv", Some(PARTNER_OIN), Usage::Server));
        issue(
            "consumer",
            spec("wijkteam-test", Some(CONSUMER_OIN), Usage::Client),
        );
        issue(
            "unknown",
            spec("onbekend", Some(UNKNOWN_OIN), Usage::Client),
        );
        // Right CA, right OIN, but a server-only certificate (no clientAuth EKU).
        issue(
            "server-only",
            spec("wijkteam-test", Some(CONSUMER_OIN), Usage::Server),
        );
        let now = doelpoort::clock::unix_now();
        let mut expired = spec("wijkteam-test", Some(CONSUMER_OIN), Usage::Client);
        expired.not_before = now - 10 * 86_400;
        expired.not_after = now - 86_400;
        issue("expired", expired);
        let mut future = spec("wijkteam-test", Some(CONSUMER_OIN), Usage::Client);
        future.not_before = now + 86_400;
        future.not_after = now + 10 * 86_400;
        issue("not-yet-valid", future);
        // Right CA and OIN, but revoked: listed in crl.pem (used when a test configures CRLs).
        let revoked = ca
            .issue(&spec("wijkteam-test", Some(CONSUMER_OIN), Usage::Client))
            .unwrap();
        revoked.write(path, "revoked").unwrap();
        std::fs::write(
            path.join("crl.pem"),
            ca.crl_pem(std::slice::from_ref(&revoked.serial), 30)
                .unwrap(),
        )
        .unwrap();
        // Same subject, issued by a CA the gateway does not trust.
        let rogue = CertificateAuthority::generate("Rogue CA", "Not trusted", 30).unwrap();
        rogue
            .issue(&spec("wijkteam-test", Some(CONSUMER_OIN), Usage::Client))
            .unwrap()
            .write(path, "rogue")
            .unwrap();
        // A partner certificate from the rogue CA: the gateway must refuse to talk to it.
        rogue
            .issue(&spec("uwv", Some(PARTNER_OIN), Usage::Server))
            .unwrap()
            .write(path, "rogue-partner")
            .unwrap();
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A partner entry in a test configuration.
pub struct PartnerSpec {
    pub id: &'static str,
    pub addr: SocketAddr,
    pub response_timeout: &'static str,
}

impl PartnerSpec {
    pub fn new(id: &'static str, addr: SocketAddr) -> Self {
        Self {
            id,
            addr,
            response_timeout: "5s",
        }
    }
}

/// [`config_yaml`] with the test PKI's CRL (`crl.pem`) checked for every client certificate.
pub fn config_yaml_with_crl(pki: &TestPki, partners: &[PartnerSpec]) -> String {
    config_yaml(pki, partners, "").replace(
        "  client_ca: [",
        &format!(
            "  crls: [{}]\n  client_ca: [",
            pki.path("crl.pem").display()
        ),
    )
}

/// The YAML configuration for a test gateway; `extra_limits` is inserted under `limits:`.
pub fn config_yaml(pki: &TestPki, partners: &[PartnerSpec], extra_limits: &str) -> String {
    let mut yaml = format!(
        r#"# test gateway
instance: test
gateway_oin: "{GATEWAY_OIN}"
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
tls:
  certificate: {dir}/gateway.crt
  key: {dir}/gateway.key
  client_ca: [{dir}/ca.crt]
limits:
  shutdown_grace: 5s
{extra_limits}
policies: {dir}/policies
schemas: {dir}/schemas
audit:
  dir: {dir}/audit
  subject_key: {dir}/audit-subject.key
consumers:
  - id: wijkteam-test
    name: Test district team
    processor: https://wijkteam.test.example/
    case_admin: true
    oin: "{CONSUMER_OIN}"
partners:
"#,
        dir = pki.dir.path().display()
    );
    for p in partners {
        yaml.push_str(&format!(
            r#"  - id: {id}
    oin: "{PARTNER_OIN}"
    url: https://localhost:{port}
    client_certificate: {dir}/gateway-client.crt
    client_key: {dir}/gateway-client.key
    trust: [{dir}/ca.crt]
    connect_timeout: 1s
    response_timeout: {timeout}
"#,
            id = p.id,
            port = p.addr.port(),
            dir = pki.dir.path().display(),
            timeout = p.response_timeout,
        ));
    }
    yaml
}

/// The purpose test requests declare (see [`TEST_POLICY`]).
pub const TEST_PURPOSE: &str = "test-doel";

/// [`TEST_POLICY`] with a response schema (`ping.json`) for `ping` and its grant releasing
/// `ok`: an answer with something to hold back (write the schema with the test's fields).
pub fn test_policy_releasing_ok() -> String {
    TEST_POLICY
        .replace(
            "path: /v1/ping, subject: none}",
            "path: /v1/ping, subject: none, response_schema: ping.json}",
        )
        .replace(
            "    without_subject: a health check about no one\n",
            "    without_subject: a health check about no one\n    fields: {ok: keep}\n",
        )
}

/// A small policy set for transport tests: consumer `wijkteam-test` may call a few `uwv`
/// operations for purpose `test-doel`. Operations without a person need `without_subject`.
pub const TEST_POLICY: &str = r#"
consumers:
  - id: wijkteam-test
    name: Test district team
purposes:
  - id: test-doel
    title: Testing the gateway
    legal_basis: {gdpr: 6(1)(e), law: Testwet}
    processing_activity: https://register.test.example/test-doel
partners:
  - id: uwv
    operations:
      - {id: ping, method: GET, path: /v1/ping, subject: none}
      - {id: slow, method: GET, path: /v1/slow, subject: none}
      - {id: upload, method: POST, path: /v1/x, subject: none}
      - {id: inkomen, method: GET, path: "/v1/personen/{bsn}/inkomen", subject: path bsn}
grants:
  - id: test-ping
    consumers: [wijkteam-test]
    operation: uwv/ping
    purpose: test-doel
    without_subject: a health check about no one
    rationale: test
  - id: test-slow
    consumers: [wijkteam-test]
    operation: uwv/slow
    purpose: test-doel
    without_subject: a test operation about no one
    rationale: test
  - id: test-upload
    consumers: [wijkteam-test]
    operation: uwv/upload
    purpose: test-doel
    without_subject: a test operation about no one
    request_fields: [a]
    rationale: test
  - id: test-inkomen
    consumers: [wijkteam-test]
    operation: uwv/inkomen
    purpose: test-doel
    query: [peildatum]
    rationale: test
"#;

/// Writes the test policy set (and an empty schema directory) next to the PKI.
pub fn write_policies(pki: &TestPki, policy: &str) {
    let dir = pki.path("policies");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(pki.path("schemas")).unwrap();
    std::fs::write(dir.join("policy.yaml"), policy).unwrap();
}

/// Writes the configuration into the PKI's directory and returns the file path.
pub fn write_config(pki: &TestPki, yaml: &str) -> PathBuf {
    if !pki.path("policies").exists() {
        write_policies(pki, TEST_POLICY);
    }
    let path = pki.path("doelpoort.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

pub async fn start_gateway(
    pki: &TestPki,
    partners: &[PartnerSpec],
    extra_limits: &str,
) -> RunningGateway {
    let path = write_config(pki, &config_yaml(pki, partners, extra_limits));
    let config = Config::load(&path).unwrap_or_else(|d| panic!("test config invalid:\n{d}"));
    server::start(&config).await.expect("gateway starts")
}

/// A mock partner with the test PKI's partner certificate, requiring the gateway's client cert.
pub async fn start_partner(pki: &TestPki, handler: MockHandler) -> MockPartner {
    start_partner_with_cert(pki, "partner", handler).await
}

pub async fn start_partner_with_cert(
    pki: &TestPki,
    stem: &str,
    handler: MockHandler,
) -> MockPartner {
    let tls = demo::mock_partner_tls(
        &pki.path(&format!("{stem}.crt")),
        &pki.path(&format!("{stem}.key")),
        &pki.path("ca.crt"),
    )
    .unwrap();
    MockPartner::start(([127, 0, 0, 1], 0).into(), tls, handler)
        .await
        .unwrap()
}

/// A handler that answers with a fixed JSON body after an optional delay.
pub fn fixed(status: StatusCode, body: &'static str, delay: Duration) -> MockHandler {
    Arc::new(move |_req: MockRequest| {
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
            *r.status_mut() = status;
            r.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            r.headers_mut()
                .insert("server", "partner-internal/9.9".parse().unwrap());
            r.headers_mut()
                .insert("set-cookie", "session=abc".parse().unwrap());
            r
        })
    })
}

/// What a mock partner received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: http::Method,
    pub path: String,
    pub query: Option<String>,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The requests a recording partner received, in order.
#[derive(Clone, Default)]
pub struct Recorded(Arc<std::sync::Mutex<Vec<Received>>>);

impl Recorded {
    pub fn last(&self) -> Received {
        self.0
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the partner received a request")
    }

    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// Wraps a handler so that every request it answers is recorded for the test to inspect.
pub fn recording(inner: MockHandler) -> (MockHandler, Recorded) {
    let recorded = Recorded::default();
    let log = recorded.clone();
    let handler: MockHandler = Arc::new(move |req: MockRequest| {
        log.0.lock().unwrap().push(Received {
            method: req.method().clone(),
            path: req.uri().path().to_string(),
            query: req.uri().query().map(str::to_string),
            version: req.version(),
            headers: req.headers().clone(),
            body: req.body().clone(),
        });
        inner(req)
    });
    (handler, recorded)
}

/// A handler that echoes what the partner received: method, path, query, headers, body length.
pub fn echo() -> MockHandler {
    Arc::new(|req: MockRequest| {
        let headers: serde_json::Map<String, serde_json::Value> = req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    serde_json::Value::String(v.to_str().unwrap_or("?").to_string()),
                )
            })
            .collect();
        let body = serde_json::json!({
            "method": req.method().as_str(),
            "path": req.uri().path(),
            "query": req.uri().query(),
            "version": format!("{:?}", req.version()),
            "headers": headers,
            "body_len": req.body().len(),
        });
        Box::pin(async move { demo::json_response(StatusCode::OK, &body) })
    })
}

pub type TestClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Http {
    One,
    Two,
}

/// rustls client config trusting the test CA, presenting `<stem>.crt` (or nothing).
pub fn client_tls(pki: &TestPki, stem: Option<&str>) -> rustls::ClientConfig {
    let identity = stem.map(|s| (pki.path(&format!("{s}.crt")), pki.path(&format!("{s}.key"))));
    client_tls_from(
        &pki.path("ca.crt"),
        identity.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
    )
}

/// rustls client config trusting `ca`, presenting `identity` (certificate, key) if given.
pub fn client_tls_from(ca: &Path, identity: Option<(&Path, &Path)>) -> rustls::ClientConfig {
    let provider = doelpoort::tls::provider();
    let mut roots = rustls::RootCertStore::empty();
    for c in doelpoort::tls::load_certificates(ca).unwrap() {
        roots.add(c).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                doelpoort::tls::load_certificates(cert).unwrap(),
                doelpoort::tls::load_private_key(key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    }
}

pub fn client(pki: &TestPki, stem: &str, http: Http) -> TestClient {
    client_with(client_tls(pki, Some(stem)), http)
}

/// An HTTPS client (HTTP/1.1 or HTTP/2 only) with the given TLS configuration.
pub fn client_with(tls: rustls::ClientConfig, http: Http) -> TestClient {
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only();
    let connector = match http {
        Http::One => builder.enable_http1().build(),
        Http::Two => builder.enable_http2().build(),
    };
    let mut client = Client::builder(TokioExecutor::new());
    if http == Http::Two {
        client.http2_only(true);
    }
    client.build(connector)
}

pub struct TestResponse {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The problem code of a problem+json answer.
    pub fn problem_code(&self) -> String {
        assert_eq!(
            self.headers["content-type"],
            "application/problem+json",
            "not a problem: {}",
            String::from_utf8_lossy(&self.body)
        );
        self.json()["code"].as_str().unwrap().to_string()
    }
}

pub fn url(gateway: &RunningGateway, path: &str) -> String {
    format!("https://localhost:{}{path}", gateway.local_addr.port())
}

pub async fn send(client: &TestClient, request: Request<Full<Bytes>>) -> TestResponse {
    let response = tokio::time::timeout(Duration::from_secs(20), client.request(request))
        .await
        .expect("response within 20 s")
        .expect("request succeeds at HTTP level");
    let (parts, body) = response.into_parts();
    TestResponse {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// GET with the test purpose declared.
pub async fn get(client: &TestClient, url: &str) -> TestResponse {
    send(
        client,
        Request::get(url)
            .header("doelbinding-purpose", TEST_PURPOSE)
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await
}

/// Connects with raw TLS and tries one HTTP/1.1 request; Ok(status line) or Err(reason).
/// Used to prove that a handshake is refused before any HTTP is served.
pub async fn try_raw_request(
    addr: SocketAddr,
    tls: rustls::ClientConfig,
) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .map_err(|_| "handshake timeout".to_string())?
        .map_err(|e| e.to_string())?;
    // With TLS 1.3 the client finishes its side before the server has judged the client
    // certificate; the refusal arrives as an alert on the first read.
    stream
        .write_all(b"GET /uwv/v1/x HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    match tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await {
        Err(_) => Err("read timeout".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(_)) if buf.is_empty() => Err("closed without response".into()),
        Ok(Ok(_)) => Ok(String::from_utf8_lossy(&buf)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()),
    }
}

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Sends a signal to a child process (SIGTERM, SIGINT; SIGKILL in crash tests).
pub fn signal(child: &std::process::Child, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("child pid");
    rustix::process::kill_process(pid, signal).expect("signal delivered");
}

/// Copies a directory tree (policies, schemas) into a test root.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Runs the `doelpoort` binary to completion: (exit code, stdout followed by stderr).
pub fn run_doelpoort<S: AsRef<std::ffi::OsStr>>(
    args: impl IntoIterator<Item = S>,
) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_doelpoort"))
        .args(args)
        .output()
        .expect("doelpoort runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("panicked"), "doelpoort panicked:\n{text}");
    (out.status.code().unwrap_or(-1), text)
}

/// A real `doelpoort run` child process, with its structured (JSON) log lines.
pub struct GatewayProcess {
    pub child: std::process::Child,
    logs: std::sync::mpsc::Receiver<serde_json::Value>,
    /// Every line the process wrote to stderr, as written.
    pub raw_logs: Arc<std::sync::Mutex<Vec<String>>>,
}

impl GatewayProcess {
    pub fn start(config: &Path) -> Self {
        Self::start_with_log_level(config, "info")
    }

    /// Starts with `--log-level LEVEL` (a tracing filter, e.g. `debug`).
    pub fn start_with_log_level(config: &Path, level: &str) -> Self {
        Self::spawn(
            std::process::Command::new(env!("CARGO_BIN_EXE_doelpoort")),
            config,
            level,
        )
    }

    /// Starts as a user without privileges, so that file permissions apply to the gateway (a
    /// test running as root would otherwise bypass them). As root: a copy of the binary and
    /// the whole test directory `root` are given to `nobody` (65534), and the gateway runs as
    /// that user. As anyone else: started as that user, unchanged.
    pub fn start_unprivileged(config: &Path, root: &Path) -> Self {
        use std::os::unix::process::CommandExt;
        if !rustix::process::getuid().is_root() {
            return Self::start(config);
        }
        const NOBODY: u32 = 65_534;
        // The binary itself, if `nobody` can reach it; otherwise a copy in the test directory.
        let binary = Path::new(env!("CARGO_BIN_EXE_doelpoort"));
        let reachable = binary.ancestors().skip(1).all(|dir| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0)
        }) && std::fs::metadata(binary).is_ok_and(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.permissions().mode() & 0o005 == 0o005
        });
        let program = if reachable {
            binary.to_path_buf()
        } else {
            let copy = root.join("doelpoort-unprivileged");
            std::fs::copy(binary, &copy).unwrap();
            copy
        };
        fn give(path: &Path) {
            std::os::unix::fs::lchown(path, Some(NOBODY), Some(NOBODY)).unwrap();
            if path.is_dir() && !path.is_symlink() {
                for entry in std::fs::read_dir(path).unwrap() {
                    give(&entry.unwrap().path());
                }
            }
        }
        give(root);
        let mut command = std::process::Command::new(program);
        command.uid(NOBODY).gid(NOBODY);
        Self::spawn(command, config, "info")
    }

    fn spawn(mut command: std::process::Command, config: &Path, level: &str) -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = command
            .args([
                "--log-format",
                "json",
                "--log-level",
                level,
                "run",
                "--config",
            ])
            .arg(config)
            .env_remove("DOELPOORT_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("doelpoort starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, logs) = std::sync::mpsc::channel();
        let raw_logs = Arc::new(std::sync::Mutex::new(Vec::new()));
        let raw = raw_logs.clone();
        // Reads every line so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) {
                    let _ = tx.send(json);
                }
                raw.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            logs,
            raw_logs,
        }
    }

    /// Waits for the start-up log line: the data listener's port and the admin address.
    pub fn wait_until_serving(&self) -> (u16, String) {
        let line = self.wait_for_log(|l| l["message"] == "doelpoort listening");
        let port = line["local_addr"]
            .as_str()
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .expect("the listening line names the address")
            .port();
        (port, Self::admin_addr(&line))
    }

    /// The admin listener's address, from the start-up log line.
    pub fn admin_addr(line: &serde_json::Value) -> String {
        line["admin"]
            .as_str()
            .expect("the listening line names the admin address")
            .trim_start_matches("Some(")
            .trim_end_matches(')')
            .to_string()
    }

    /// The next log line (within 20 s) for which `matches` holds.
    pub fn wait_for_log(&self, matches: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(line) = self.logs.recv_timeout(Duration::from_millis(100)) {
                if matches(&line) {
                    return line;
                }
            }
        }
        panic!(
            "the expected log line did not appear within 20 s; the process logged:\n{}",
            self.raw_logs.lock().unwrap().join("\n")
        );
    }

    /// The data listener's address, from the start-up log line.
    pub fn wait_until_listening(&self) -> SocketAddr {
        let line = self.wait_for_log(|l| l["message"] == "doelpoort listening");
        line["local_addr"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .expect("the listening line names the address")
    }

    pub fn signal(&self, signal: rustix::process::Signal) {
        self::signal(&self.child, signal);
    }
}

impl GatewayProcess {
    /// Sets (`Some(bytes)`) or lifts (`None`) the running gateway's file-size limit
    /// (RLIMIT_FSIZE): a write past it fails with EFBIG, as on a full disk.
    pub fn limit_file_size(&self, bytes: Option<u64>) {
        use rustix::process::{prlimit, Pid, Resource, Rlimit};
        let limit = Rlimit {
            current: bytes,
            maximum: None,
        };
        prlimit(Some(Pid::from_child(&self.child)), Resource::Fsize, limit).unwrap();
    }
}

/// The first segment file of an audit directory, and how many bytes of records it holds (the
/// records end where the preallocated zeros begin).
pub fn audit_segment(dir: &Path) -> (PathBuf, u64) {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    segments.sort();
    let segment = segments.into_iter().next().expect("an audit segment");
    let len = segment_records_len(&segment);
    (segment, len)
}

/// Bytes of records in a segment file (up to the preallocated zeros).
pub fn segment_records_len(segment: &Path) -> u64 {
    let bytes = std::fs::read(segment).unwrap();
    bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len()) as u64
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        // A failed test must not leave a gateway running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many policy reloads ended with `result` (`ok`, `failed`) so far.
pub fn policy_reloads(gateway: &RunningGateway, result: &str) -> u64 {
    gateway
        .metrics
        .policy_reloads
        .with_label_values(&[result])
        .get()
}

/// Waits (bounded by `limit`) until `done` holds.
pub async fn eventually(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A root for a `doelpoort demo` child: the shipped policies and schemas, and a fresh example
/// PKI made by the binary (so a test never depends on the committed one expiring).
pub fn demo_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for dir in ["policies", "schemas"] {
        copy_dir(&repo_root().join(dir), &root.path().join(dir));
    }
    let certs = root.path().join("certs-example");
    assert!(std::process::Command::new(env!("CARGO_BIN_EXE_doelpoort"))
        .args(["certs", "generate", certs.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
        .success());
    root
}

/// `doelpoort demo` with every listener on a loopback port of the system's choosing.
pub fn demo_command(root: &Path, data: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_doelpoort"));
    command
        .arg("demo")
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--console-listen", "127.0.0.1:0", "--root"])
        .arg(root)
        .arg("--data-dir")
        .arg(data);
    command
}

/// A plain-HTTP request on an admin listener: status, headers and body.
pub async fn admin_request(
    addr: SocketAddr,
    method: http::Method,
    path: &str,
) -> (StatusCode, HeaderMap, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = http_body_util::BodyExt::collect(body)
        .await
        .unwrap()
        .to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).to_string(),
    )
}

/// A plain HTTP/1.1 GET on an admin listener: (status, body).
pub async fn admin_get(addr: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf))
        .await
        .expect("the admin listener answers within 5 s")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// Every record in an audit directory, oldest first, as JSON. Safe to poll while the gateway
/// writes: the last line of the live (newest) segment may be read half-written, and is then
/// left out; an unparsable line anywhere else is a broken log and panics.
pub fn audit_records(dir: &Path) -> Vec<serde_json::Value> {
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    segments.sort();
    let mut out = Vec::new();
    let newest = segments.len().saturating_sub(1);
    for (i, s) in segments.iter().enumerate() {
        let text = std::fs::read_to_string(s).unwrap();
        // The live segment is preallocated with zeros after its last record.
        let lines: Vec<&str> = text.trim_end_matches('\0').lines().collect();
        for (j, line) in lines.iter().enumerate() {
            match serde_json::from_str(line) {
                Ok(record) => out.push(record),
                // A torn read of the record being written: it is complete on the next poll.
                Err(_) if i == newest && j + 1 == lines.len() => {}
                Err(e) => panic!(
                    "{}: line {} is not a record ({e}): {line}",
                    s.display(),
                    j + 1
                ),
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Hostile inputs (tests/hostile_*.rs): odd certificates, raw protocol peers, and the checks every
// hostile case ends with.
// ---------------------------------------------------------------------------------------------

/// A recognisable string in mock partner bodies: it must never reach a caller in a hostile case.
pub const LEAK_MARKER: &str = "UPSTREAM-MARKER-7f3a9c";

/// A certificate the default [`TestPki`] does not have: any key usage and extended key usage,
/// issued by the test CA or self-signed.
pub struct Mint<'a> {
    pub common_name: &'a str,
    pub oin: Option<&'a str>,
    /// keyUsage bits by OpenSSL name (`digitalSignature`, `keyEncipherment`, `keyCertSign`, …);
    /// empty: no keyUsage extension.
    pub key_usage: &'a [&'a str],
    /// extendedKeyUsage by OpenSSL name (`clientAuth`, `serverAuth`, `codeSigning`, …); empty:
    /// no extendedKeyUsage extension.
    pub extended_key_usage: &'a [&'a str],
    /// subjectAltName DNS names (plus 127.0.0.1 when `loopback_ip`).
    pub dns_names: &'a [&'a str],
    pub loopback_ip: bool,
    /// Signed with its own key instead of the test CA's.
    pub self_signed: bool,
    /// Further subject serialNumber attributes after `oin`.
    pub more_oins: &'a [&'a str],
}

impl Mint<'_> {
    /// A client certificate like the consumer's (same OIN), before the test bends one thing.
    pub fn consumer() -> Self {
        Self {
            common_name: "wijkteam-test",
            oin: Some(CONSUMER_OIN),
            key_usage: &["digitalSignature"],
            extended_key_usage: &["clientAuth"],
            dns_names: &[],
            loopback_ip: false,
            self_signed: false,
            more_oins: &[],
        }
    }

    /// A server certificate like the partner's, before the test bends one thing.
    pub fn partner() -> Self {
        Self {
            common_name: "uwv",
            oin: Some(PARTNER_OIN),
            key_usage: &["digitalSignature"],
            extended_key_usage: &["serverAuth"],
            dns_names: &["localhost"],
            loopback_ip: true,
            self_signed: false,
            more_oins: &[],
        }
    }
}

/// Writes `<stem>.crt` / `<stem>.key` into the PKI directory (see [`Mint`]).
pub fn mint(pki: &TestPki, stem: &str, spec: &Mint<'_>) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::{BigNum, MsbOption};
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::extension::{
        AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage,
        SubjectAlternativeName, SubjectKeyIdentifier,
    };
    use openssl::x509::{X509NameBuilder, X509};

    let ca_cert = X509::from_pem(&std::fs::read(pki.path("ca.crt")).unwrap()).unwrap();
    let ca_key = PKey::private_key_from_pem(&std::fs::read(pki.path("ca.key")).unwrap()).unwrap();
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COUNTRYNAME, "NL").unwrap();
    name.append_entry_by_nid(
        Nid::ORGANIZATIONNAME,
        &format!("{} (test)", spec.common_name),
    )
    .unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, spec.common_name)
        .unwrap();
    if let Some(oin) = spec.oin {
        name.append_entry_by_nid(Nid::SERIALNUMBER, oin).unwrap();
    }
    for oin in spec.more_oins {
        name.append_entry_by_nid(Nid::SERIALNUMBER, oin).unwrap();
    }
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(127, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(if spec.self_signed {
        &name
    } else {
        ca_cert.subject_name()
    })
    .unwrap();
    b.set_pubkey(&key).unwrap();
    let now = doelpoort::clock::unix_now();
    b.set_not_before(&Asn1Time::from_unix(now - 3600).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(now + 30 * 86_400).unwrap())
        .unwrap();
    let mut exts = vec![BasicConstraints::new().build().unwrap()];
    if !spec.key_usage.is_empty() {
        let mut ku = KeyUsage::new();
        ku.critical();
        for bit in spec.key_usage {
            match *bit {
                "digitalSignature" => ku.digital_signature(),
                "keyEncipherment" => ku.key_encipherment(),
                "keyAgreement" => ku.key_agreement(),
                "keyCertSign" => ku.key_cert_sign(),
                "cRLSign" => ku.crl_sign(),
                other => panic!("unknown key usage {other}"),
            };
        }
        exts.push(ku.build().unwrap());
    }
    if !spec.extended_key_usage.is_empty() {
        let mut eku = ExtendedKeyUsage::new();
        for purpose in spec.extended_key_usage {
            match *purpose {
                "clientAuth" => eku.client_auth(),
                "serverAuth" => eku.server_auth(),
                "codeSigning" => eku.code_signing(),
                "emailProtection" => eku.email_protection(),
                other => panic!("unknown extended key usage {other}"),
            };
        }
        exts.push(eku.build().unwrap());
    }
    {
        let issuer = if spec.self_signed {
            None
        } else {
            Some(&*ca_cert)
        };
        let ctx = b.x509v3_context(issuer, None);
        exts.push(SubjectKeyIdentifier::new().build(&ctx).unwrap());
        if !spec.self_signed {
            exts.push(
                AuthorityKeyIdentifier::new()
                    .keyid(false)
                    .build(&ctx)
                    .unwrap(),
            );
        }
        if !spec.dns_names.is_empty() || spec.loopback_ip {
            let mut san = SubjectAlternativeName::new();
            for dns in spec.dns_names {
                san.dns(dns);
            }
            if spec.loopback_ip {
                san.ip("127.0.0.1");
            }
            exts.push(san.build(&ctx).unwrap());
        }
    }
    for ext in exts {
        b.append_extension(ext).unwrap();
    }
    let signer = if spec.self_signed { &key } else { &ca_key };
    b.sign(signer, MessageDigest::sha256()).unwrap();
    let cert = b.build();
    std::fs::write(pki.path(&format!("{stem}.crt")), cert.to_pem().unwrap()).unwrap();
    std::fs::write(
        pki.path(&format!("{stem}.key")),
        key.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
}

pub type RawTls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// A TLS connection to `addr` (server name `localhost`) with `tls`, for hand-written requests.
pub async fn raw_tls(addr: SocketAddr, tls: rustls::ClientConfig) -> RawTls {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .expect("handshake within 5 s")
        .expect("handshake succeeds")
}

/// Reads until the peer closes (or errors), at most `limit` long and 1 MiB: what came back.
pub async fn read_until_closed<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> (Vec<u8>, bool) {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + limit;
    while out.len() < 1 << 20 {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (out, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    (out, false)
}

/// Sends hand-written HTTP/1.1 bytes over a fresh mTLS connection as the consumer and returns
/// everything the gateway wrote back within 10 s, and whether the gateway closed the
/// connection in that time (false: it was still open after 10 s).
pub async fn raw_http1(pki: &TestPki, addr: SocketAddr, request: &[u8]) -> (String, bool) {
    use tokio::io::AsyncWriteExt;
    let mut tls = raw_tls(addr, client_tls(pki, Some("consumer"))).await;
    tls.write_all(request).await.unwrap();
    let (bytes, closed) = read_until_closed(&mut tls, Duration::from_secs(10)).await;
    (String::from_utf8_lossy(&bytes).into_owned(), closed)
}

/// The status code of the first response in raw HTTP/1.1 output (0 if there is none).
pub fn first_status(raw: &str) -> u16 {
    raw.strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The one audit record of a transaction in `dir` (panics when there is none or more).
pub fn audit_record_of(dir: &Path, transaction_id: &str) -> serde_json::Value {
    let mut found: Vec<_> = audit_records(dir)
        .into_iter()
        .filter(|r| r["attributes"]["doelpoort.transaction_id"] == transaction_id)
        .collect();
    assert_eq!(found.len(), 1, "records of {transaction_id}: {found:?}");
    found.remove(0)
}

/// Checks a refusal end to end: status, problem code, no partner body bytes in the answer,
/// and its one audit record with `decision` and `code` as reason. Returns the record.
pub fn assert_refused(
    response: &TestResponse,
    status: u16,
    code: &str,
    audit_dir: &Path,
    decision: &str,
) -> serde_json::Value {
    let body = String::from_utf8_lossy(&response.body);
    assert_eq!(response.status.as_u16(), status, "{body}");
    assert_eq!(response.problem_code(), code, "{body}");
    assert!(!body.contains(LEAK_MARKER), "partner bytes leaked: {body}");
    for (name, value) in &response.headers {
        assert!(
            !value
                .as_bytes()
                .windows(LEAK_MARKER.len())
                .any(|w| w == LEAK_MARKER.as_bytes()),
            "partner bytes leaked in header {name}"
        );
    }
    let tx = response.headers["fsc-transaction-id"].to_str().unwrap();
    let record = audit_record_of(audit_dir, tx);
    let attributes = &record["attributes"];
    assert_eq!(attributes["doelpoort.decision"], decision, "{record}");
    assert_eq!(attributes["doelpoort.reason"], code, "{record}");
    // Logboek Dataverwerkingen 1.0.0 §3.2.2.3: a refusal of the caller's input, or the
    // partner's own refusal, is `Unset`; a failure inside the gateway or towards the partner is
    // `Error`.
    let logboek_status = if decision == "error" && code != "partner-rejected" {
        "Error"
    } else {
        "Unset"
    };
    assert_eq!(record["status"], logboek_status, "{record}");
    assert!(
        !record.to_string().contains(LEAK_MARKER),
        "partner bytes in the audit record"
    );
    record
}

/// A normal exchange on a fresh connection still succeeds: the gateway survived the case.
pub async fn assert_still_serving(pki: &TestPki, port: u16) {
    let client = client(pki, "consumer", Http::One);
    let response = get(&client, &format!("https://localhost:{port}/uwv/v1/ping")).await;
    assert_eq!(
        response.status,
        StatusCode::OK,
        "the gateway no longer serves: {}",
        String::from_utf8_lossy(&response.body)
    );
}

/// What a raw mock partner does once it has read a request head.
#[derive(Clone)]
pub enum RawAnswer {
    /// Writes these bytes, then closes cleanly (TLS close_notify).
    Close(Vec<u8>),
    /// Writes these bytes, then resets the TCP connection (no close_notify, RST).
    Reset(Vec<u8>),
    /// Writes these bytes, then keeps the connection open for this long.
    Hang(Vec<u8>, Duration),
    /// Writes the first bytes (a head), then the second one byte at a time, each after the
    /// interval, then closes cleanly.
    Trickle(Vec<u8>, Vec<u8>, Duration),
}

/// Reads once more into `into` (within 5 s); false at the end of the stream or on error.
async fn read_some<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, into: &mut Vec<u8>) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => {
            into.extend_from_slice(&buf[..n]);
            true
        }
        _ => false,
    }
}

/// A raw partner's address, the number of requests it read, and each request as read (head
/// and, when it declared a Content-Length, body).
pub struct RawPartner {
    pub addr: SocketAddr,
    pub requests: Arc<std::sync::atomic::AtomicUsize>,
    pub received: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

/// A partner that speaks TLS (with the PKI's certificate `<stem>`, requiring the gateway's
/// client certificate, HTTP/1.1 only) but writes hand-made bytes instead of a proper response:
/// the n-th request it reads gets `script[n]` (the last entry once the script is used up), one
/// request per connection.
pub async fn start_raw_partner(pki: &TestPki, stem: &str, script: Vec<RawAnswer>) -> RawPartner {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncWriteExt;
    assert!(!script.is_empty());
    let base = demo::mock_partner_tls(
        &pki.path(&format!("{stem}.crt")),
        &pki.path(&format!("{stem}.key")),
        &pki.path("ca.crt"),
    )
    .unwrap();
    let mut config = (*base).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (count, log) = (requests.clone(), received.clone());
    let script = Arc::new(script);
    tokio::spawn(async move {
        // Bounded: a test never needs more than a few hundred connections.
        for _ in 0..512 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, script, count, log) =
                (acceptor.clone(), script.clone(), count.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(Ok(mut tls)) =
                    tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp)).await
                else {
                    return;
                };
                let mut request = Vec::new();
                let head_end = loop {
                    if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    if request.len() > 1 << 16 || !read_some(&mut tls, &mut request).await {
                        return;
                    }
                };
                let declared = String::from_utf8_lossy(&request[..head_end])
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0)
                    .min(1 << 20);
                while request.len() < head_end + declared {
                    if !read_some(&mut tls, &mut request).await {
                        break;
                    }
                }
                log.lock().unwrap().push(request);
                let n = count.fetch_add(1, Ordering::SeqCst);
                match script[n.min(script.len() - 1)].clone() {
                    RawAnswer::Close(bytes) => {
                        let _ = tls.write_all(&bytes).await;
                        let _ = tls.shutdown().await;
                    }
                    RawAnswer::Reset(bytes) => {
                        let _ = tls.write_all(&bytes).await;
                        let _ = tls.flush().await;
                        let (tcp, _) = tls.into_inner();
                        let _ = tcp.set_zero_linger();
                        drop(tcp);
                    }
                    RawAnswer::Hang(bytes, how_long) => {
                        let _ = tls.write_all(&bytes).await;
                        let _ = tls.flush().await;
                        tokio::time::sleep(how_long).await;
                    }
                    RawAnswer::Trickle(head, body, interval) => {
                        let _ = tls.write_all(&head).await;
                        let _ = tls.flush().await;
                        // Bounded by the body's length; stops when the gateway hangs up.
                        for byte in body {
                            tokio::time::sleep(interval).await;
                            if tls.write_all(&[byte]).await.is_err() || tls.flush().await.is_err() {
                                return;
                            }
                        }
                        let _ = tls.shutdown().await;
                    }
                }
            });
        }
    });
    RawPartner {
        addr,
        requests,
        received,
    }
}

/// A well-formed HTTP/1.1 JSON answer that closes its connection, for raw partner scripts.
pub fn raw_json_answer(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A plain TCP listener that counts connections and writes `bytes` to each (a partner that
/// does not speak TLS, or a trap that must never be contacted).
pub async fn start_plain_listener(
    bytes: &'static [u8],
) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        for _ in 0..512 {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let _ = tcp.write_all(bytes).await;
            let _ = tcp.shutdown().await;
        }
    });
    (addr, connections)
}

/// Hand-written HTTP/2 frames, for the cases a well-behaved client library cannot produce
/// (rapid reset, stream floods, invalid header fields). Header blocks use HPACK literals
/// without indexing or Huffman coding, which every decoder must accept.
pub mod h2raw {
    use tokio::io::{AsyncRead, AsyncReadExt};

    pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    pub const DATA: u8 = 0;
    pub const HEADERS: u8 = 1;
    pub const RST_STREAM: u8 = 3;
    pub const SETTINGS: u8 = 4;
    pub const GOAWAY: u8 = 7;
    pub const END_STREAM: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const ACK: u8 = 0x1;
    pub const CANCEL: u32 = 0x8;

    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = Vec::with_capacity(9 + payload.len());
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.push(kind);
        out.push(flags);
        out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn integer(out: &mut Vec<u8>, value: usize) {
        // 7-bit prefix, H bit clear (no Huffman).
        if value < 127 {
            out.push(value as u8);
            return;
        }
        out.push(127);
        let mut rest = value - 127;
        while rest >= 128 {
            out.push((rest % 128) as u8 | 0x80);
            rest /= 128;
        }
        out.push(rest as u8);
    }

    /// An HPACK block of literal fields (without indexing, new names).
    pub fn header_block(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in fields {
            out.push(0x00);
            integer(&mut out, name.len());
            out.extend_from_slice(name);
            integer(&mut out, value.len());
            out.extend_from_slice(value);
        }
        out
    }

    /// A complete GET on `stream` with the test purpose, plus `extra` fields.
    pub fn get(stream: u32, path: &str, extra: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut fields: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", path.as_bytes()),
            (b"doelbinding-purpose", super::TEST_PURPOSE.as_bytes()),
        ];
        fields.extend_from_slice(extra);
        frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            stream,
            &header_block(&fields),
        )
    }

    pub fn rst(stream: u32, code: u32) -> Vec<u8> {
        frame(RST_STREAM, 0, stream, &code.to_be_bytes())
    }

    /// The client's connection start: preface and empty SETTINGS.
    pub fn start() -> Vec<u8> {
        let mut out = PREFACE.to_vec();
        out.extend(frame(SETTINGS, 0, 0, &[]));
        out
    }

    #[derive(Debug)]
    pub struct Frame {
        pub kind: u8,
        pub flags: u8,
        pub stream: u32,
        pub payload: Vec<u8>,
    }

    impl Frame {
        /// The error code of a GOAWAY or RST_STREAM frame.
        pub fn error_code(&self) -> u32 {
            let at = if self.kind == GOAWAY { 4 } else { 0 };
            self.payload
                .get(at..at + 4)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        }
    }

    /// The next frame, or None when the connection ended.
    pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Option<Frame> {
        let mut head = [0u8; 9];
        r.read_exact(&mut head).await.ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload).await.ok()?;
        Some(Frame {
            kind: head[3],
            flags: head[4],
            stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
            payload,
        })
    }
}

/// Registers (PUT) a case in the gateway's case register as the consumer `client` is, with
/// household 999990019 and the given purposes and agreed partners; panics unless 200/201.
pub async fn register_case(
    client: &TestClient,
    gateway_port: u16,
    case_id: &str,
    purposes: &[&str],
    agreed: &[&str],
) {
    let body = serde_json::json!({
        "purposes": purposes,
        "household": ["999990019"],
        "agreed_partners": agreed,
        "objections": [],
    });
    let request = Request::put(format!(
        "https://localhost:{gateway_port}/doelpoort/v1/cases/{case_id}"
    ))
    .header("content-type", "application/json")
    .header("doelbinding-actor", "casemanager-0001")
    .body(Full::new(Bytes::from(body.to_string())))
    .unwrap();
    let response = send(client, request).await;
    assert!(
        matches!(response.status.as_u16(), 200 | 201),
        "registering case {case_id}: {} {:?}",
        response.status,
        response.body
    );
}
