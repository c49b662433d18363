//! Phase *forward*: the gateway's own mTLS connection to a chain partner.
//!
//! Each partner has one pooled HTTP client (HTTP/1.1 or HTTP/2 by ALPN) built from its own TLS
//! context, so connections — and TLS sessions — are reused across exchanges. The caller's
//! connection is never tunnelled: the gateway terminates the caller's TLS, decides, and opens
//! (or reuses) its own connection to the partner as itself.
//!
//! Partner bodies are read completely, up to a limit, before anything is returned: a later
//! phase minimises them, and a response that cannot be checked is not released.

use crate::config::PartnerConfig;
use crate::fsc::tokens::{AccessTokenClaims, OutwayTokens};
use crate::headers;
use crate::id::Id;
use crate::identity::{Fingerprint, Oin};
use crate::policy::decide::Permit;
use crate::problem::{Problem, ProblemCode};
use crate::tls;
use anyhow::{Context, Result};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A chain partner as the data path sees it.
pub struct Partner {
    pub id: Id,
    pub name: String,
    pub oin: Option<Oin>,
    /// `https://host:port` of the partner.
    origin: String,
    /// Path prefix from the partner URL, without a trailing slash (often empty).
    base_path: String,
    response_timeout: Duration,
    client: HttpsClient,
    /// `x5t#S256` of the client certificate the gateway presents to this partner: the
    /// assertion is bound to it.
    pub client_thumbprint: String,
    /// The partner runs an FSC inway: its access tokens (SPEC §10).
    pub fsc: Option<OutwayTokens>,
}

impl std::fmt::Debug for Partner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partner")
            .field("id", &self.id)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// What the gateway asks of a partner. Its fields are private and [`UpstreamRequest::new`]
/// needs a [`Permit`], which only the decision can build: a request that was not decided
/// cannot be sent. This does not compile:
///
/// ```compile_fail
/// # use doelpoort::upstream::UpstreamRequest;
/// let undecided = UpstreamRequest {
///     method: http::Method::GET,
///     path: "/v1/personen/999990019/inkomen".into(),
///     query: None,
///     headers: http::HeaderMap::new(),
///     body: bytes::Bytes::new(),
/// };
/// ```
///
/// while building it from a permit does:
///
/// ```no_run
/// # use doelpoort::{policy::decide::Permit, upstream::UpstreamRequest};
/// fn ask(permit: &Permit) -> UpstreamRequest {
///     UpstreamRequest::new(permit, http::Method::GET, "/v1/x", None, http::HeaderMap::new(), bytes::Bytes::new())
/// }
/// ```
pub struct UpstreamRequest {
    method: Method,
    /// Partner-side path, starting with `/`.
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

impl UpstreamRequest {
    /// The request the permit allows: only the grant's query parameters pass, and the
    /// purpose's lawful basis is stated for the partner's own log (values prepared at policy
    /// load). `headers` are the gateway's own (the caller's allow-listed ones included).
    pub fn new(
        permit: &Permit,
        method: Method,
        path: &str,
        query: Option<&str>,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Self {
        let purpose = permit.purpose();
        headers.insert(
            headers::DOELBINDING_PURPOSE,
            purpose.header_values.purpose.clone(),
        );
        if let Some(v) = &purpose.header_values.legal_basis {
            headers.insert(headers::DOELBINDING_LEGAL_BASIS, v.clone());
        }
        if let Some(v) = &purpose.header_values.processing_activity {
            headers.insert(headers::DOELBINDING_PROCESSING_ACTIVITY, v.clone());
        }
        Self {
            method,
            path: path.to_string(),
            query: permit.allowed_query(query),
            headers,
            body,
        }
    }
}

/// What the partner answered, fully read.
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Time from sending the request to having read the whole body.
    pub elapsed: Duration,
}

/// Why forwarding failed; becomes a problem and an `upstream_errors_total{kind}` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    Connect,
    Timeout,
    Protocol,
    TooLarge,
    /// The partner answered with a 5xx status (its body is never relayed).
    Status,
    /// No FSC access token could be obtained from the partner's manager.
    FscToken,
}

impl UpstreamErrorKind {
    pub const ALL: [Self; 6] = [
        Self::Connect,
        Self::Timeout,
        Self::Protocol,
        Self::TooLarge,
        Self::Status,
        Self::FscToken,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Protocol => "protocol",
            Self::TooLarge => "too_large",
            Self::Status => "status_5xx",
            Self::FscToken => "fsc_token",
        }
    }
}

#[derive(Debug)]
pub struct UpstreamError {
    pub kind: UpstreamErrorKind,
    pub problem: Problem,
}

impl UpstreamError {
    fn new(kind: UpstreamErrorKind, code: ProblemCode, detail: &'static str) -> Self {
        Self {
            kind,
            problem: Problem::new(code, detail),
        }
    }
}

impl Partner {
    /// `peer_id` is the gateway's own OIN (its FSC peer id).
    pub fn new(config: &PartnerConfig, peer_id: Option<&str>) -> Result<Self> {
        let client_certificate = tls::load_certificates(&config.client_certificate)?
            .into_iter()
            .next()
            .context("the client certificate file holds no certificate")?;
        let client_thumbprint =
            crate::token::thumbprint(&Fingerprint::of_der(client_certificate.as_ref()));
        let tls = tls::partner_client_config(config)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(config.max_idle_connections)
            .build(connector);
        let authority = config
            .url
            .authority()
            .context("partner URL without host")?
            .as_str();
        let origin = format!("https://{authority}");
        let fsc = match (&config.fsc, peer_id) {
            (Some(fsc), Some(peer_id)) => Some(OutwayTokens::new(
                fsc.clone(),
                peer_id.to_string(),
                client_thumbprint.clone(),
                origin.clone(),
                config.oin.as_ref().map(|o| o.as_str().to_string()),
            )),
            (Some(_), None) => {
                anyhow::bail!("an FSC partner needs gateway_oin (the gateway's peer id)")
            }
            (None, _) => None,
        };
        Ok(Self {
            id: config.id.clone(),
            name: config.name.clone(),
            oin: config.oin.clone(),
            client_thumbprint,
            fsc,
            origin,
            base_path: config.url.path().trim_end_matches('/').to_string(),
            response_timeout: config.response_timeout,
            client,
        })
    }

    fn uri(&self, path: &str, query: Option<&str>) -> Result<Uri, UpstreamError> {
        let mut s = String::with_capacity(
            self.origin.len()
                + self.base_path.len()
                + path.len()
                + query.map_or(0, |q| q.len() + 1),
        );
        s.push_str(&self.origin);
        s.push_str(&self.base_path);
        s.push_str(path);
        if let Some(q) = query {
            s.push('?');
            s.push_str(q);
        }
        s.parse().map_err(|_| {
            UpstreamError::new(
                UpstreamErrorKind::Protocol,
                ProblemCode::UnknownRoute,
                "the request path cannot be forwarded",
            )
        })
    }

    /// The FSC access token for this partner's inway (none for a partner without FSC): a
    /// cached one while it is valid long enough, otherwise one from the partner's manager
    /// (client credentials over the same mTLS identity). Without a token nothing is sent.
    pub async fn fsc_token(&self) -> Result<Option<(String, AccessTokenClaims)>, UpstreamError> {
        let Some(tokens) = &self.fsc else {
            return Ok(None);
        };
        if let Some(token) = tokens.cached(crate::clock::unix_now() as u64) {
            return Ok(Some(token));
        }
        let refused = |reason: &str| {
            tracing::warn!(partner = %self.id, reason, "no FSC access token: the request is not sent");
            UpstreamError::new(
                UpstreamErrorKind::FscToken,
                ProblemCode::UpstreamUnavailable,
                "no access token could be obtained for this partner (FSC)",
            )
        };
        // Exchanges wait for the one token request in flight, but never longer than the
        // partner's response timeout; after a failure they are refused at once for a while.
        if tokens.backing_off() {
            return Err(refused("a token request failed moments ago"));
        }
        let _one_request = tokio::time::timeout(self.response_timeout, tokens.fetching.lock())
            .await
            .map_err(|_| refused("another token request is still waiting for the manager"))?;
        // Another exchange may have fetched one (or failed) while this one waited.
        if let Some(token) = tokens.cached(crate::clock::unix_now() as u64) {
            return Ok(Some(token));
        }
        if tokens.backing_off() {
            return Err(refused("a token request failed moments ago"));
        }
        let result = self.request_token(tokens).await;
        if result.is_err() {
            tokens.failed();
        }
        result.map(Some).map_err(|reason| refused(&reason))
    }

    /// One token request to the partner's manager, and its answer checked.
    async fn request_token(
        &self,
        tokens: &OutwayTokens,
    ) -> Result<(String, AccessTokenClaims), String> {
        let request = Request::post(tokens.endpoint())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(tokens.request_body())))
            .map_err(|_| "the token request could not be built".to_string())?;
        let answer = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|_| "the manager could not be reached")?;
            let status = response.status();
            let body = Limited::new(response.into_body(), 64 * 1024)
                .collect()
                .await
                .map_err(|_| "the manager's answer could not be read")?
                .to_bytes();
            Ok::<_, &str>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.response_timeout, answer)
            .await
            .map_err(|_| "the manager did not answer in time".to_string())?
            .map_err(str::to_string)?;
        tokens.accept(status, &body, crate::clock::unix_now() as u64)
    }

    /// Sends one request and reads the whole response, within the partner's response timeout
    /// and the response size limit.
    pub async fn forward(
        &self,
        request: UpstreamRequest,
        max_body: usize,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let uri = self.uri(&request.path, request.query.as_deref())?;
        let mut builder = Request::builder().method(request.method).uri(uri);
        if let Some(headers) = builder.headers_mut() {
            *headers = request.headers;
        }
        let outgoing = builder.body(Full::new(request.body)).map_err(|_| {
            UpstreamError::new(
                UpstreamErrorKind::Protocol,
                ProblemCode::Internal,
                "the upstream request could not be built",
            )
        })?;
        let started = Instant::now();
        let exchange = async {
            let response = self.client.request(outgoing).await.map_err(|e| {
                if e.is_connect() {
                    UpstreamError::new(
                        UpstreamErrorKind::Connect,
                        ProblemCode::UpstreamUnavailable,
                        "the partner could not be reached",
                    )
                } else {
                    UpstreamError::new(
                        UpstreamErrorKind::Protocol,
                        ProblemCode::UpstreamUnavailable,
                        "the connection to the partner failed",
                    )
                }
            })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, max_body)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        UpstreamError::new(
                            UpstreamErrorKind::TooLarge,
                            ProblemCode::MinimisationFailed,
                            "the partner response exceeds the size limit; nothing of it is released",
                        )
                    } else {
                        UpstreamError::new(
                            UpstreamErrorKind::Protocol,
                            ProblemCode::UpstreamUnavailable,
                            "the partner response was cut off",
                        )
                    }
                })?
                .to_bytes();
            Ok(UpstreamResponse {
                status: parts.status,
                headers: parts.headers,
                body,
                elapsed: started.elapsed(),
            })
        };
        match tokio::time::timeout(self.response_timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(UpstreamError::new(
                UpstreamErrorKind::Timeout,
                ProblemCode::UpstreamTimeout,
                "the partner did not answer in time",
            )),
        }
    }
}

/// All partners by id; immutable once built.
#[derive(Debug, Default)]
pub struct PartnerDirectory {
    partners: HashMap<Id, Arc<Partner>>,
}

impl PartnerDirectory {
    pub fn build(configs: &[PartnerConfig], peer_id: Option<&str>) -> Result<Self> {
        let mut partners = HashMap::new();
        for config in configs {
            let partner = Partner::new(config, peer_id)
                .with_context(|| format!("partner '{}'", config.id))?;
            partners.insert(config.id.clone(), Arc::new(partner));
        }
        Ok(Self { partners })
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Partner>> {
        self.partners.get(id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.partners.keys().map(Id::as_str)
    }
}
