//! The privacy officers' console: a read-only web console on its own mTLS listener.
//!
//! Privacy officers, auditors and case workers see what the gateway enforces and records,
//! without a command line: the purposes and grants with their legal reasoning, the
//! who-sees-what matrix, "Mag ik dit zien?" (the gateway's own decision for a request they
//! describe), a citizen's art. 15 report, the audit log's health, the policy versions with the
//! impact of a change, and the case register.
//!
//! - **Who may open it.** The listener requires a client certificate chaining to the console's
//!   trust anchors, and the certificate must be listed for an officer by fingerprint
//!   (`console.officers`); anything else gets 403 before any page is rendered.
//! - **Read-only.** Nothing here changes policy, cases or the log. The one thing it writes is
//!   its own audit record: an art. 15 report reveals personal data, so every look-up is
//!   recorded (purpose `art-15-verzoek`, the officer as actor) before the answer is shown,
//!   and refused when it cannot be recorded.
//! - **No BSN in a URL, log line or metric.** A BSN is only ever posted in a form body, never
//!   echoed into a redirect or link; requests are logged by path, never by query or body.
//! - **The same answers as the tools.** Each page renders what the command-line tools compute
//!   (`policy explain`'s [`crate::policy::tools::Explanation`], `policy matrix`'s rows,
//!   `audit query`'s rows, `audit verify`), never a second implementation of a decision.
//!
//! Pages are rendered on the server with askama templates (`templates/`), in Dutch with
//! English available (`?lang=en`), with strict security headers and no scripts at all.

mod cases;
mod decision;
mod health;
mod history;
mod i18n;
mod inzage;
mod matrix;
mod page;
mod purposes;

use crate::config::{Config, ConsoleSettings, Officer};
use crate::identity::{Consumer, Fingerprint};
use crate::state::GatewayState;
use anyhow::{Context, Result};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use i18n::Lang;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The largest form the console accepts (its forms hold a handful of short fields).
const MAX_FORM_BYTES: usize = 16 * 1024;

/// Where the console reads the audit log from.
#[derive(Debug, Clone)]
pub enum AuditSource {
    /// `audit.mode: off`: there is nothing to report, and no art. 15 look-up can be recorded.
    Off,
    Files(PathBuf),
    Postgres(String),
}

/// What the console's pages look at.
pub struct Console {
    officers: HashMap<Fingerprint, Arc<Officer>>,
    state: Arc<GatewayState>,
    audit: AuditSource,
    instance: String,
    /// The policy directory (for the `policy explain` command a page shows).
    policies_dir: PathBuf,
    /// Who the console is in its own audit records: the gateway's organisation, as the
    /// party processing an art. 15 request.
    identity: Arc<Consumer>,
}

impl Console {
    pub fn new(config: &Config, settings: &ConsoleSettings, state: Arc<GatewayState>) -> Self {
        let mut officers = HashMap::new();
        for officer in &settings.officers {
            let officer = Arc::new(officer.clone());
            for fp in &officer.fingerprints {
                officers.insert(*fp, officer.clone());
            }
        }
        let audit = match (
            config.audit.enabled,
            config.audit.sink,
            &config.store.location,
        ) {
            (false, _, _) => AuditSource::Off,
            (
                true,
                crate::config::AuditSink::Postgres,
                crate::store::StoreLocation::Postgres(url),
            ) => AuditSource::Postgres(url.clone()),
            (true, _, _) => AuditSource::Files(config.audit.dir.clone()),
        };
        Self {
            officers,
            state,
            audit,
            instance: config.instance.clone(),
            policies_dir: config.policies.clone(),
            identity: Arc::new(inzage::console_identity(config)),
        }
    }
}

/// Binds the console's listener and serves it in the background.
pub async fn start(
    addr: SocketAddr,
    console: Console,
    tls: Arc<rustls::ServerConfig>,
) -> Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (console)"))?;
    let local = listener.local_addr()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let console = Arc::new(console);
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let console = console.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp));
                let Ok(Ok(tls)) = handshake.await else {
                    return;
                };
                // The officer, once per connection: the certificate cannot change within it.
                let peer = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|leaf| Fingerprint::of_der(leaf.as_ref()));
                let officer = peer.and_then(|fp| console.officers.get(&fp).cloned());
                if officer.is_none() {
                    // Who tried, for the operator: a certificate's fingerprint, not a person.
                    tracing::warn!(
                        target: "doelpoort::console",
                        certificate = peer.map(|fp| fp.to_hex()).unwrap_or_default(),
                        "console refused a certificate that is not listed for an officer"
                    );
                }
                let service = service_fn(move |req| {
                    let console = console.clone();
                    let officer = officer.clone();
                    async move { Ok::<_, Infallible>(serve(&console, officer, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Ok((local, task))
}

/// One request to the console, as the pages see it.
pub(crate) struct Ask {
    pub officer: Arc<Officer>,
    pub lang: Lang,
    pub method: Method,
    /// The query string's pairs (never holds a BSN: the forms that take one post).
    pub query: Vec<(String, String)>,
    /// A posted form's pairs.
    pub form: Vec<(String, String)>,
}

impl Ask {
    /// The first value of `name` in the query (a page's filters), when not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        first(&self.query, name)
    }

    /// The first value of `name` in a posted form. The pages that take a BSN read their
    /// fields only from here: a link cannot fill in a person.
    pub fn posted(&self, name: &str) -> Option<&str> {
        first(&self.form, name)
    }
}

fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Query or form pairs, without any whose name or value holds a control character: such a
/// value is never valid input, and is not echoed back into a page.
fn pairs(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes)
        .into_owned()
        .filter(|(k, v)| !k.chars().chain(v.chars()).any(char::is_control))
        .collect()
}

/// The console's pages: path (a prefix when it ends in `/`) and whether it takes a form.
const PAGES: [(&str, bool); 10] = [
    ("/", false),
    ("/console.css", false),
    ("/doelen", false),
    ("/schema/", false),
    ("/matrix", false),
    ("/mag-ik-dit-zien", true),
    ("/inzage", true),
    ("/audit", false),
    ("/beleid", false),
    ("/zaken", false),
];

/// The page a path is, as logged: never the path itself, which could hold anything.
fn page_of(path: &str) -> Option<(&'static str, bool)> {
    PAGES
        .iter()
        .find(|(p, _)| *p == path || (p.len() > 1 && p.ends_with('/') && path.starts_with(p)))
        .copied()
}

async fn serve(
    console: &Console,
    officer: Option<Arc<Officer>>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    // Only what the console knows is logged: a page from its list, a method it serves. A
    // path, a query, a form or an invented method may hold what a log must not (a BSN).
    let method = match *req.method() {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        _ => "(other)",
    };
    let page = page_of(req.uri().path()).map_or("(unknown)", |(p, _)| p);
    let mut response = route(console, officer.clone(), req).await;
    secure(&mut response);
    tracing::info!(
        target: "doelpoort::console",
        officer = officer.as_ref().map_or("-", |o| o.id.as_str()),
        method,
        page,
        status = response.status().as_u16(),
        "console request"
    );
    response
}

async fn route(
    console: &Console,
    officer: Option<Arc<Officer>>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let query = req
        .uri()
        .query()
        .map(|q| pairs(q.as_bytes()))
        .unwrap_or_default();
    let lang = Lang::from_pairs(&query);
    let t = lang.texts();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let Some((_, takes_form)) = page_of(&path) else {
        return page::refusal(lang, StatusCode::NOT_FOUND, t.not_found);
    };
    // Who asks comes first: a stranger learns nothing about methods or pages but the
    // stylesheet (which the refusal page itself uses).
    if officer.is_none() && path != "/console.css" {
        return page::refusal(lang, StatusCode::FORBIDDEN, t.not_an_officer);
    }
    let allowed = matches!(
        (&method, takes_form),
        (&Method::GET | &Method::HEAD, _) | (&Method::POST, true)
    );
    if !allowed {
        let mut r = page::refusal(lang, StatusCode::METHOD_NOT_ALLOWED, t.method_not_allowed);
        let allow = if takes_form {
            "GET, HEAD, POST"
        } else {
            "GET, HEAD"
        };
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        return r;
    }
    if path == "/console.css" {
        return page::stylesheet();
    }
    let Some(officer) = officer else {
        return page::refusal(lang, StatusCode::FORBIDDEN, t.not_an_officer);
    };
    let form = match method {
        Method::POST => match read_form(req).await {
            Ok(form) => form,
            Err(status) => {
                let message = match status {
                    StatusCode::PAYLOAD_TOO_LARGE => t.form_too_large,
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => t.not_a_form,
                    StatusCode::UNPROCESSABLE_ENTITY => t.control_characters,
                    _ => t.bad_form,
                };
                return page::refusal(lang, status, message);
            }
        },
        _ => Vec::new(),
    };
    let lang = if method == Method::POST {
        Lang::from_pairs(&form)
    } else {
        lang
    };
    let ask = Ask {
        officer,
        lang,
        method: method.clone(),
        query,
        form,
    };
    match (method, path.as_str()) {
        (Method::GET | Method::HEAD, "/") => page::home(console, &ask),
        (Method::GET | Method::HEAD, "/doelen") => purposes::page(console, &ask),
        (Method::GET | Method::HEAD, p) if p.starts_with("/schema/") => {
            purposes::schema(console, &ask, &p["/schema/".len()..])
        }
        (Method::GET | Method::HEAD, "/matrix") => matrix::page(console, &ask),
        (_, "/mag-ik-dit-zien") => decision::page(console, &ask),
        (_, "/inzage") => inzage::page(console, &ask).await,
        (Method::GET | Method::HEAD, "/audit") => health::page(console, &ask).await,
        (Method::GET | Method::HEAD, "/beleid") => history::page(console, &ask),
        (Method::GET | Method::HEAD, "/zaken") => cases::page(console, &ask),
        _ => page::refusal(lang, StatusCode::NOT_FOUND, t.not_found),
    }
}

/// A posted form: `application/x-www-form-urlencoded`, at most [`MAX_FORM_BYTES`], sent by
/// the console's own pages (a cross-site form post would otherwise ride on the officer's
/// certificate: the browser presents it to any site that asks).
async fn read_form(req: Request<Incoming>) -> Result<Vec<(String, String)>, StatusCode> {
    let headers = req.headers();
    // One of each at most: with two, which one a check reads is a guess.
    let once = ["sec-fetch-site", "origin", "host"]
        .iter()
        .all(|name| headers.get_all(*name).iter().count() <= 1);
    let same_site = once
        && headers
            .get("sec-fetch-site")
            .is_none_or(|v| v == "same-origin" || v == "none");
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let same_origin = match (headers.get(header::ORIGIN), host) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .to_str()
            .is_ok_and(|o| o == format!("https://{host}")),
        (Some(_), None) => false,
    };
    if !same_site || !same_origin {
        // Whether each check held, not the values sent: those are the sender's text.
        tracing::warn!(
            target: "doelpoort::console",
            one_of_each = once,
            same_site,
            same_origin,
            "console form refused: not sent from the console's own pages"
        );
        return Err(StatusCode::FORBIDDEN);
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !is_form {
        return Err(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let body = Limited::new(req.into_body(), MAX_FORM_BYTES)
        .collect()
        .await
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE)?
        .to_bytes();
    // A control character is never valid input: the form is refused whole rather than
    // answered without the value (the gateway would refuse such a header too).
    let all: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    if all
        .iter()
        .any(|(k, v)| k.chars().chain(v.chars()).any(char::is_control))
    {
        return Err(StatusCode::UNPROCESSABLE_ENTITY);
    }
    Ok(all)
}

/// Headers on every answer: the gateway's own (no caching — the art. 15 report must not
/// linger in a shared browser cache —, no framing, no sniffing, HSTS), with a page's content
/// policy: its own stylesheet and forms, and nothing else, no scripts at all.
fn secure(response: &mut Response<Full<Bytes>>) {
    let h = response.headers_mut();
    crate::headers::secure(h, true);
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    // `same-origin`, not `no-referrer`: with the latter a browser posts forms with
    // `Origin: null`, and the console's own forms could not be told from a forged one.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}
