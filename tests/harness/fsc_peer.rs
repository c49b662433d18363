//! A test FSC peer that is not Doelpoort: one Manager (the token endpoint) and one Inway in
//! front of one Service, written from the FSC standard (Logius, Federated Service
//! Connectivity: core and the logging extension) and not from Doelpoort's code. Tests use it
//! to prove that Doelpoort's outway works with an inway and manager written by someone else.
//!
//! Only the TLS plumbing and the mock-service types are shared with Doelpoort. Token issuing,
//! token validation, the error answers and the transaction log all follow the standard's text:
//! - Manager, `POST /v1/token` (core "Obtaining access tokens", "Tokens {#manager_tokens}";
//!   RFC 6749 §4.4 client credentials and §5.2 error responses): grant_type
//!   `client_credentials`, scope = the grant hash, client_id = the PeerID (subject
//!   serialNumber, the OIN) of the mTLS client certificate. It answers
//!   `{"access_token", "token_type": "bearer"}` or 400 `{"error", "error_description"}`.
//! - Access token (core "Access token"): an ES256 JWT with header `x5t#S256` (the signing
//!   certificate's thumbprint) and the claims gth, gid, sub, iss, svc, aud, exp, nbf,
//!   cnf.x5t#S256 (RFC 8705 §3.1: the thumbprint of the client certificate) and add.
//! - Inway (core "Inway"; logging "Writing to the TransactionLog"): validates
//!   `Fsc-Authorization` (a bare JWT or `Bearer <jwt>`) and `Fsc-Transaction-Id` (a UUID),
//!   writes its own log record *before* calling the Service, and passes the request on with
//!   its path and both FSC headers unchanged. Refusals carry `Fsc-Error-Code` and the body
//!   `{"message", "domain": "ERROR_DOMAIN_INWAY", "code"}`.
//!
//! Both listeners use the test PKI's `partner` certificate (the peer's OIN is PARTNER_OIN) and
//! require client certificates issued by `ca.crt`. The Manager signs tokens with `partner.key`;
//! the token header names `partner.crt` by its thumbprint.
#![allow(dead_code)] // each test crate uses a different part of the harness

use super::{Received, Recorded, TestPki};
use base64::Engine as _;
use bytes::Bytes;
use doelpoort::demo::{self, MockHandler, MockRequest};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::{AbortHandle, JoinHandle};
use tokio_rustls::TlsAcceptor;

/// The inway's error domain (core "Error handling", manager.yaml `error.domain`).
pub const ERROR_DOMAIN_INWAY: &str = "ERROR_DOMAIN_INWAY";

/// What the peer offers and to whom.
#[derive(Debug, Clone)]
pub struct FscPeerSpec {
    /// The Group ID (`gid`), e.g. `fsc-test`.
    pub group_id: String,
    /// The hash of the ServiceConnectionGrant: the `scope` the outway must ask for, `gth`.
    pub grant_hash: String,
    /// The Service's name (`svc`), e.g. `dienst`.
    pub service: String,
    /// This peer's ID (`iss`, the log record's `destination.service_peer_id`).
    pub provider_peer_id: String,
    /// The only outway peer ID the grant names: the only `client_id` that gets a token.
    pub outway_peer_id: String,
    /// `exp - nbf` of the tokens the Manager issues.
    pub token_lifetime: Duration,
}

impl FscPeerSpec {
    /// Group `fsc-test`, service `dienst`, offered by PARTNER_OIN to GATEWAY_OIN (the outway's
    /// `gateway-client` certificate), tokens valid for five minutes.
    pub fn new(grant_hash: &str) -> Self {
        Self {
            group_id: "fsc-test".into(),
            grant_hash: grant_hash.into(),
            service: "dienst".into(),
            provider_peer_id: super::PARTNER_OIN.into(),
            outway_peer_id: super::GATEWAY_OIN.into(),
            token_lifetime: Duration::from_secs(300),
        }
    }
}

/// One request the Manager received on its token endpoint, and how it answered.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub method: Method,
    pub path: String,
    pub content_type: Option<String>,
    /// The form fields as received (decoded), in order.
    pub form: Vec<(String, String)>,
    /// base64url (no padding) SHA-256 of the DER of the client's leaf certificate.
    pub client_thumbprint: String,
    /// The subject serialNumber (OIN) of the client certificate, if it has exactly one.
    pub client_peer_id: Option<String>,
    pub status: u16,
    /// The OAuth error code (`invalid_scope`, …) of a refusal; None when a token was issued.
    pub error: Option<String>,
    /// The token issued, if any.
    pub access_token: Option<String>,
}

impl TokenRequest {
    /// The (first) value of form field `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One request the Inway received, and its verdict.
#[derive(Debug, Clone)]
pub struct InwayRequest {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// base64url (no padding) SHA-256 of the DER of the client's leaf certificate.
    pub client_thumbprint: String,
    pub client_peer_id: Option<String>,
    /// The status returned to the outway (the Service's own when forwarded).
    pub status: u16,
    /// The inway's error code when it refused; None when it passed the request on.
    pub error_code: Option<String>,
    /// The verified claims, when the token passed signature and time checks.
    pub claims: Option<serde_json::Value>,
}

impl InwayRequest {
    /// The value of header `name` (first one), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// logging.yaml `source` (`SOURCE_TYPE_SOURCE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogSource {
    #[serde(rename = "type")]
    pub kind: String,
    pub outway_peer_id: String,
}

/// logging.yaml `destination` (`DESTINATION_TYPE_DESTINATION`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogDestination {
    #[serde(rename = "type")]
    pub kind: String,
    pub service_peer_id: String,
}

/// The inway's own TransactionLog record (logging.yaml `logRecord`), filled from the access
/// token as logging "Writing to the TransactionLog" prescribes: gth → grant_hash,
/// sub → source.outway_peer_id, iss → destination.service_peer_id, svc → service_name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogRecord {
    pub transaction_id: String,
    /// Always `DIRECTION_INCOMING` (the inway side).
    pub direction: String,
    pub grant_hash: String,
    pub source: LogSource,
    pub destination: LogDestination,
    pub service_name: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// The claims of an FSC access token (core "JWT Payload"); unknown claims are ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    gth: String,
    gid: String,
    sub: String,
    iss: String,
    svc: String,
    aud: String,
    exp: u64,
    nbf: u64,
    cnf: Confirmation,
    #[serde(default)]
    add: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Confirmation {
    #[serde(rename = "x5t#S256")]
    x5t_s256: String,
}

/// What the listeners know of the client of one connection.
#[derive(Debug, Clone)]
struct ClientCert {
    thumbprint: String,
    peer_id: Option<String>,
}

struct State {
    spec: FscPeerSpec,
    audience: Mutex<String>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// `x5t#S256` of the signing certificate (partner.crt).
    signer_thumbprint: String,
    service: MockHandler,
    refuse_tokens: AtomicBool,
    tokens: Mutex<Vec<TokenRequest>>,
    inway: Mutex<Vec<InwayRequest>>,
    log: Mutex<Vec<LogRecord>>,
}

/// A listener's accept task and the tasks of its connections.
struct Served {
    accept: Mutex<Option<JoinHandle<()>>>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Served {
    fn abort(&self) {
        if let Some(task) = self.accept.lock().unwrap().as_ref() {
            task.abort();
        }
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

/// A running FSC peer: Manager on `manager`, Inway on `inway` (both 127.0.0.1, TLS with the
/// `partner` certificate, server name `localhost`).
pub struct FscPeer {
    pub manager: SocketAddr,
    pub inway: SocketAddr,
    state: Arc<State>,
    service_log: Recorded,
    manager_task: Served,
    inway_task: Served,
}

impl FscPeer {
    /// Starts Manager and Inway; `service` answers what the Inway lets through.
    pub async fn start(pki: &TestPki, spec: FscPeerSpec, service: MockHandler) -> FscPeer {
        let (service, service_log) = super::recording(service);
        let tls = demo::mock_partner_tls(
            &pki.path("partner.crt"),
            &pki.path("partner.key"),
            &pki.path("ca.crt"),
        )
        .unwrap();
        let inway_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let manager_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let inway = inway_listener.local_addr().unwrap();
        let manager = manager_listener.local_addr().unwrap();

        let key_pem = std::fs::read(pki.path("partner.key")).unwrap();
        let cert_pem = std::fs::read(pki.path("partner.crt")).unwrap();
        let cert = openssl::x509::X509::from_pem(&cert_pem).unwrap();
        let public_pem = cert.public_key().unwrap().public_key_to_pem().unwrap();
        let state = Arc::new(State {
            // core: "a URL that MUST contain the scheme and port number used by the Inway".
            audience: Mutex::new(format!("https://localhost:{}", inway.port())),
            encoding: EncodingKey::from_ec_pem(&key_pem).expect("partner.key is an EC key"),
            decoding: DecodingKey::from_ec_pem(&public_pem).unwrap(),
            signer_thumbprint: thumbprint(&cert.to_der().unwrap()),
            spec,
            service,
            refuse_tokens: AtomicBool::new(false),
            tokens: Mutex::default(),
            inway: Mutex::default(),
            log: Mutex::default(),
        });
        let acceptor = TlsAcceptor::from(tls);
        FscPeer {
            manager,
            inway,
            manager_task: serve(
                manager_listener,
                acceptor.clone(),
                state.clone(),
                Role::Manager,
            ),
            inway_task: serve(inway_listener, acceptor, state.clone(), Role::Inway),
            state,
            service_log,
        }
    }

    pub fn spec(&self) -> &FscPeerSpec {
        &self.state.spec
    }

    /// `https://localhost:<manager port>`: the Manager's address (the token URL is this plus
    /// `/v1/token`).
    pub fn manager_url(&self) -> String {
        format!("https://localhost:{}", self.manager.port())
    }

    /// `https://localhost:<inway port>`: the Inway's address, the `aud` of issued tokens.
    pub fn inway_url(&self) -> String {
        format!("https://localhost:{}", self.inway.port())
    }

    /// Every request the Manager received, in order.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.state.tokens.lock().unwrap().clone()
    }

    /// Every request the Inway received, in order, with its verdict.
    pub fn inway_requests(&self) -> Vec<InwayRequest> {
        self.state.inway.lock().unwrap().clone()
    }

    /// What reached the Service (through the Inway), in order.
    pub fn service_requests(&self) -> Vec<Received> {
        self.service_log.0.lock().unwrap().clone()
    }

    /// The same, as the harness's [`Recorded`] (`last()`, `count()`).
    pub fn service_recorded(&self) -> Recorded {
        self.service_log.clone()
    }

    /// The Inway's TransactionLog: one record per request passed to the Service.
    pub fn transaction_log(&self) -> Vec<LogRecord> {
        self.state.log.lock().unwrap().clone()
    }

    /// From now on the Manager refuses every token request with 400 `invalid_scope` (as for a
    /// revoked contract), or issues tokens again.
    pub fn set_refuse_tokens(&self, refuse: bool) {
        self.state.refuse_tokens.store(refuse, Ordering::SeqCst);
    }

    /// Sets the `aud` of tokens issued from now on (default: [`Self::inway_url`]), e.g. to
    /// route the outway through a [`super::wire::WireTap`] in front of the Inway.
    pub fn set_token_audience(&self, audience: &str) {
        *self.state.audience.lock().unwrap() = audience.to_string();
    }

    /// Makes the Inway unreachable: its listener is closed (new connections are refused) and
    /// its open connections are dropped. Returns once the listener is closed.
    pub async fn stop_inway(&self) {
        let task = self.inway_task.accept.lock().unwrap().take();
        self.inway_task.abort();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Signs `claims` as this peer's Manager does (ES256, `x5t#S256` of partner.crt): for tests
    /// that need a token the Manager would not issue (expired, other group, …).
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.x5t_s256 = Some(self.state.signer_thumbprint.clone());
        jsonwebtoken::encode(&header, claims, &self.state.encoding).unwrap()
    }
}

impl Drop for FscPeer {
    fn drop(&mut self) {
        self.manager_task.abort();
        self.inway_task.abort();
    }
}

/// base64url (no padding) SHA-256 of DER bytes: the `x5t#S256` certificate thumbprint
/// (RFC 7515 §4.1.8, RFC 8705 §3.1).
pub fn thumbprint(der: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(der))
}

/// The `x5t#S256` thumbprint of the test PKI's `<stem>.crt`.
pub fn cert_thumbprint(pki: &TestPki, stem: &str) -> String {
    let pem = std::fs::read(pki.path(&format!("{stem}.crt"))).unwrap();
    thumbprint(
        &openssl::x509::X509::from_pem(&pem)
            .unwrap()
            .to_der()
            .unwrap(),
    )
}

/// The JOSE header and claims of a JWT, decoded without checking anything.
pub fn unverified_parts(token: &str) -> (serde_json::Value, serde_json::Value) {
    let part = |i: usize| {
        let text = token.split('.').nth(i).expect("a JWT has three parts");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .expect("base64url");
        serde_json::from_slice(&bytes).expect("JSON")
    };
    (part(0), part(1))
}

/// `application/x-www-form-urlencoded` encoding of `fields` (unreserved bytes as is, the rest
/// percent-encoded).
pub fn form_encode(fields: &[(&str, &str)]) -> String {
    fn encode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes a form body; None when it is not valid (bad percent-escape, not UTF-8).
fn form_decode(body: &[u8]) -> Option<Vec<(String, String)>> {
    fn decode(s: &[u8]) -> Option<String> {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = std::str::from_utf8(s.get(i + 1..i + 3)?).ok()?;
                    out.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).ok()
    }
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut it = pair.splitn(2, |&b| b == b'=');
            let key = decode(it.next()?)?;
            let value = decode(it.next().unwrap_or(b""))?;
            Some((key, value))
        })
        .collect()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The subject serialNumber of a certificate, if there is exactly one.
fn serial_number_of(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut values = cert
        .subject()
        .iter_by_oid(&x509_parser::oid_registry::OID_X509_SERIALNUMBER);
    let first = values.next()?.as_str().ok()?.to_string();
    values.next().is_none().then_some(first)
}

#[derive(Clone, Copy)]
enum Role {
    Manager,
    Inway,
}

fn serve(listener: TcpListener, acceptor: TlsAcceptor, state: Arc<State>, role: Role) -> Served {
    let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
    let tracked = connections.clone();
    let accept = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, state) = (acceptor.clone(), state.clone());
            let task = tokio::spawn(async move {
                let Ok(Ok(stream)) =
                    tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp)).await
                else {
                    return;
                };
                // The client verifier already required a certificate from the test CA.
                let Some(leaf) = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                else {
                    return;
                };
                let client = ClientCert {
                    thumbprint: thumbprint(leaf),
                    peer_id: serial_number_of(leaf),
                };
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (state, client) = (state.clone(), client.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let Ok(body) = Limited::new(body, 4 << 20).collect().await else {
                            return Ok::<_, Infallible>(json(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                &serde_json::json!({"message": "body unreadable or too large"}),
                            ));
                        };
                        let req = Request::from_parts(parts, body.to_bytes());
                        Ok(match role {
                            Role::Manager => manager(&state, &client, req),
                            Role::Inway => inway(&state, &client, req).await,
                        })
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
            let mut open = tracked.lock().unwrap();
            open.retain(|t| !t.is_finished());
            open.push(task.abort_handle());
        }
    });
    Served {
        accept: Mutex::new(Some(accept)),
        connections,
    }
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    demo::json_response(status, body)
}

// ---- Manager ---------------------------------------------------------------------------------

/// `POST /v1/token`. Checks, in order: method and path, form content type, well-formed form
/// without repeated fields (RFC 6749 §3.2), the three required fields, grant_type,
/// client_id = the certificate's PeerID = the grant's outway peer, scope = the grant hash.
fn manager(state: &State, client: &ClientCert, req: MockRequest) -> Response<Full<Bytes>> {
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let form = form_decode(req.body());
    let mut record = TokenRequest {
        method: req.method().clone(),
        path: req.uri().path().to_string(),
        content_type: content_type.clone(),
        form: form.clone().unwrap_or_default(),
        client_thumbprint: client.thumbprint.clone(),
        client_peer_id: client.peer_id.clone(),
        status: 0,
        error: None,
        access_token: None,
    };
    let outcome = token_outcome(state, client, &req, content_type.as_deref(), form);
    let response = match outcome {
        Ok(token) => {
            record.access_token = Some(token.clone());
            json(
                StatusCode::OK,
                &serde_json::json!({"access_token": token, "token_type": "bearer"}),
            )
        }
        Err((status, error, description)) => {
            record.error = error.map(str::to_string);
            match error {
                Some(error) => json(
                    status,
                    &serde_json::json!({"error": error, "error_description": description}),
                ),
                None => json(status, &serde_json::json!({"message": description})),
            }
        }
    };
    record.status = response.status().as_u16();
    state.tokens.lock().unwrap().push(record);
    let mut response = response;
    // RFC 6749 §5.1: token responses must not be cached.
    let headers = response.headers_mut();
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    headers.insert("pragma", HeaderValue::from_static("no-cache"));
    response
}

type TokenRefusal = (StatusCode, Option<&'static str>, String);

fn token_outcome(
    state: &State,
    client: &ClientCert,
    req: &MockRequest,
    content_type: Option<&str>,
    form: Option<Vec<(String, String)>>,
) -> Result<String, TokenRefusal> {
    let spec = &state.spec;
    let refuse = |error: &'static str, description: String| {
        Err((StatusCode::BAD_REQUEST, Some(error), description))
    };
    if req.uri().path() != "/v1/token" {
        return Err((StatusCode::NOT_FOUND, None, "no such endpoint".into()));
    }
    if req.method() != Method::POST {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            "the token endpoint takes POST".into(),
        ));
    }
    let media_type = content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    if media_type.as_deref() != Some("application/x-www-form-urlencoded") {
        return refuse(
            "invalid_request",
            "the body must be application/x-www-form-urlencoded".into(),
        );
    }
    let Some(form) = form else {
        return refuse("invalid_request", "the form body is malformed".into());
    };
    for (i, (name, _)) in form.iter().enumerate() {
        if form[..i].iter().any(|(n, _)| n == name) {
            return refuse("invalid_request", format!("parameter {name} repeated"));
        }
    }
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let (Some(grant_type), Some(scope), Some(client_id)) =
        (field("grant_type"), field("scope"), field("client_id"))
    else {
        return refuse(
            "invalid_request",
            "grant_type, scope and client_id are required".into(),
        );
    };
    if grant_type != "client_credentials" {
        return refuse(
            "unsupported_grant_type",
            format!("grant_type {grant_type} is not supported"),
        );
    }
    if client.peer_id.as_deref() != Some(client_id) {
        return refuse(
            "invalid_client",
            "client_id does not match the peer ID of the client certificate".into(),
        );
    }
    if client_id != spec.outway_peer_id {
        return refuse(
            "invalid_client",
            format!("peer {client_id} is not the outway peer of any grant"),
        );
    }
    if state.refuse_tokens.load(Ordering::SeqCst) {
        return refuse(
            "invalid_scope",
            "contract containing the provided grant hash has been revoked".into(),
        );
    }
    if scope != spec.grant_hash {
        return refuse("invalid_scope", "no valid grant with this hash".into());
    }
    let now = unix_now();
    let claims = Claims {
        gth: spec.grant_hash.clone(),
        gid: spec.group_id.clone(),
        sub: client_id.to_string(),
        iss: spec.provider_peer_id.clone(),
        svc: spec.service.clone(),
        aud: state.audience.lock().unwrap().clone(),
        exp: now + spec.token_lifetime.as_secs(),
        nbf: now,
        cnf: Confirmation {
            x5t_s256: client.thumbprint.clone(),
        },
        add: serde_json::json!({}),
    };
    let mut header = Header::new(Algorithm::ES256);
    header.x5t_s256 = Some(state.signer_thumbprint.clone());
    Ok(jsonwebtoken::encode(&header, &claims, &state.encoding).unwrap())
}

// ---- Inway -----------------------------------------------------------------------------------

/// An inway refusal: status, code, message.
type InwayRefusal = (StatusCode, &'static str, String);

fn inway_error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let mut response = json(
        status,
        &serde_json::json!({"message": message, "domain": ERROR_DOMAIN_INWAY, "code": code}),
    );
    let headers = response.headers_mut();
    headers.insert("fsc-error-code", HeaderValue::from_str(code).unwrap());
    if status == StatusCode::UNAUTHORIZED {
        headers.insert("www-authenticate", HeaderValue::from_static("Bearer"));
    }
    response
}

/// Any path. Token checks first (401/403/404), then the transaction ID (400); on success the
/// log record is written, then the Service is called with the request as received.
async fn inway(state: &State, client: &ClientCert, req: MockRequest) -> Response<Full<Bytes>> {
    let mut record = InwayRequest {
        method: req.method().clone(),
        path: req.uri().path().to_string(),
        query: req.uri().query().map(str::to_string),
        headers: req.headers().clone(),
        client_thumbprint: client.thumbprint.clone(),
        client_peer_id: client.peer_id.clone(),
        status: 0,
        error_code: None,
        claims: None,
    };
    let verdict = authorize(state, client, req.headers(), &mut record)
        .and_then(|claims| transaction_id(req.headers()).map(|id| (claims, id)));
    let response = match verdict {
        Err((status, code, message)) => {
            record.error_code = Some(code.to_string());
            inway_error(status, code, &message)
        }
        Ok((claims, transaction_id)) => {
            // logging: the record is written before the request goes to the Service.
            state.log.lock().unwrap().push(LogRecord {
                transaction_id,
                direction: "DIRECTION_INCOMING".into(),
                grant_hash: claims.gth,
                source: LogSource {
                    kind: "SOURCE_TYPE_SOURCE".into(),
                    outway_peer_id: claims.sub,
                },
                destination: LogDestination {
                    kind: "DESTINATION_TYPE_DESTINATION".into(),
                    service_peer_id: claims.iss,
                },
                service_name: claims.svc,
                created_at: unix_now() as i64,
            });
            // Path, query, headers (Fsc-Authorization and Fsc-Transaction-Id included) and
            // body as received.
            (state.service)(req).await
        }
    };
    record.status = response.status().as_u16();
    state.inway.lock().unwrap().push(record);
    response
}

fn authorize(
    state: &State,
    client: &ClientCert,
    headers: &HeaderMap,
    record: &mut InwayRequest,
) -> Result<Claims, InwayRefusal> {
    const MISSING: &str = "ERROR_CODE_ACCESS_TOKEN_MISSING";
    const INVALID: &str = "ERROR_CODE_ACCESS_TOKEN_INVALID";
    let invalid = |message: &str| Err((StatusCode::UNAUTHORIZED, INVALID, message.to_string()));
    let mut values = headers.get_all("fsc-authorization").iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return if headers.contains_key("fsc-authorization") {
            invalid("more than one Fsc-Authorization header")
        } else {
            Err((
                StatusCode::UNAUTHORIZED,
                MISSING,
                "no Fsc-Authorization header".into(),
            ))
        };
    };
    let Ok(value) = value.to_str() else {
        return invalid("Fsc-Authorization is not text");
    };
    let value = value.trim();
    // A header value loses trailing spaces on the wire: `Bearer ` arrives as `Bearer`.
    let token = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ if value.eq_ignore_ascii_case("bearer") => "",
        _ => value,
    };
    if token.is_empty() {
        return Err((
            StatusCode::UNAUTHORIZED,
            MISSING,
            "Fsc-Authorization holds no access token".into(),
        ));
    }
    // Signed by the peer that owns this inway: its certificate named in the header, its key.
    let Ok(header) = jsonwebtoken::decode_header(token) else {
        return invalid("not a JWT");
    };
    if header.x5t_s256.as_deref() != Some(state.signer_thumbprint.as_str()) {
        return invalid("the token is not signed with this peer's certificate");
    }
    let mut validation = Validation::new(Algorithm::ES256);
    validation.leeway = 0;
    validation.validate_nbf = true;
    // core places no duty on the inway to check `aud`; the outway routes by it.
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "nbf"]);
    let claims =
        match jsonwebtoken::decode::<serde_json::Value>(token, &state.decoding, &validation) {
            Ok(data) => data.claims,
            Err(e) => {
                return match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => Err((
                        StatusCode::UNAUTHORIZED,
                        "ERROR_CODE_ACCESS_TOKEN_EXPIRED",
                        "the access token has expired".into(),
                    )),
                    _ => invalid(&format!("the access token is invalid: {e}")),
                };
            }
        };
    record.claims = Some(claims.clone());
    let Ok(claims) = serde_json::from_value::<Claims>(claims) else {
        return invalid("the access token lacks FSC claims");
    };
    if claims.iss != state.spec.provider_peer_id {
        return invalid("the access token was issued by another peer");
    }
    // RFC 8705 §3.1: bound to the certificate the outway presents.
    if claims.cnf.x5t_s256 != client.thumbprint {
        return invalid("the access token is bound to another certificate");
    }
    if claims.gid != state.spec.group_id {
        return Err((
            StatusCode::FORBIDDEN,
            "ERROR_CODE_WRONG_GROUP_ID_IN_TOKEN",
            format!("group {} is not this inway's group", claims.gid),
        ));
    }
    if claims.svc != state.spec.service {
        return Err((
            StatusCode::NOT_FOUND,
            "ERROR_CODE_SERVICE_NOT_FOUND",
            format!("service {} is not offered by this inway", claims.svc),
        ));
    }
    Ok(claims)
}

/// The `Fsc-Transaction-Id`: exactly one, a UUID in its canonical 36-character form (the
/// version is left to the FSC profile, so any version is accepted).
fn transaction_id(headers: &HeaderMap) -> Result<String, InwayRefusal> {
    let mut values = headers.get_all("fsc-transaction-id").iter();
    let Some(first) = values.next() else {
        return Err((
            StatusCode::BAD_REQUEST,
            "MISSING_LOG_RECORD_ID",
            "the Fsc-Transaction-Id header is missing".into(),
        ));
    };
    let invalid = || {
        Err((
            StatusCode::BAD_REQUEST,
            "INVALID_LOG_RECORD_ID",
            "the Fsc-Transaction-Id header is not a UUID".into(),
        ))
    };
    if values.next().is_some() {
        return invalid();
    }
    match first.to_str() {
        Ok(id) if id.len() == 36 && uuid::Uuid::try_parse(id).is_ok() => Ok(id.to_string()),
        _ => invalid(),
    }
}
