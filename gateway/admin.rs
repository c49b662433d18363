//! The admin listener (loopback by default): `/healthz`, `/readyz`, `/metrics`, `/version`,
//! the assertion keys (`/.well-known/jwks.json`) and the OpenAPI description (`/openapi.json`,
//! `/openapi.yaml`); GET and HEAD, every answer with the gateway's security headers.
//!
//! It is separate from the data listener so that operators' scrapers and probes can never
//! reach a partner, and so that it can be firewalled on its own. Plain HTTP by default (keep
//! it on loopback or a management network); with `admin_tls` configured it requires a client
//! certificate from its own trust anchors, like the data listener.

use crate::audit::AuditHealth;
use crate::metrics::Metrics;
use crate::policy::store::PolicyStore;
use crate::problem::{Problem, ProblemCode};
use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::core::Collector;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the admin endpoints look at.
pub struct Admin {
    pub metrics: Arc<Metrics>,
    pub policies: Arc<PolicyStore>,
    pub audit: Option<AuditHealth>,
    /// Whether the store answered its last round trip (SPEC §9).
    pub store: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Whether every exchange needs the store (the audit log is in its PostgreSQL).
    pub store_records_every_exchange: bool,
    /// This gateway instance (`instance` in the configuration), for `/version`.
    pub instance: String,
    /// mTLS for the admin listener, when configured.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The public keys of the gateway's assertions (JWKS).
    pub jwks: Bytes,
    /// The base of problem `type` URIs, as on the data listener.
    pub problem_base: String,
}

pub async fn start(addr: SocketAddr, admin: Admin) -> Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (admin)"))?;
    let local = listener.local_addr()?;
    let acceptor = admin.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let state = Arc::new(admin);
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let state = state.clone();
            let acceptor = acceptor.clone();
            let over_tls = acceptor.is_some();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let state = state.clone();
                    async move {
                        let mut response = respond(&state, &req);
                        crate::headers::secure(response.headers_mut(), over_tls);
                        response
                            .headers_mut()
                            .insert(crate::headers::API_VERSION, crate::openapi::api_version());
                        Ok::<_, Infallible>(response)
                    }
                });
                let http = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(5))
                    .clone();
                match acceptor {
                    None => {
                        let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                    }
                    Some(acceptor) => {
                        let handshake =
                            tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp));
                        if let Ok(Ok(tls)) = handshake.await {
                            let _ = http.serve_connection(TokioIo::new(tls), service).await;
                        }
                    }
                }
            });
        }
    });
    Ok((local, task))
}

fn respond(state: &Admin, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (metrics, policies) = (&state.metrics, &state.policies);
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Problem::method_not_allowed(
            "the admin listener answers GET (and HEAD) only",
            "GET, HEAD",
        )
        .into_response(&state.problem_base, "");
    }
    match req.uri().path() {
        "/healthz" => crate::headers::answer(StatusCode::OK, "text/plain", "ok\n"),
        "/readyz" => readiness(
            metrics,
            policies,
            state.audit.as_ref(),
            &state.store,
            state.store_records_every_exchange,
        ),
        "/metrics" => crate::headers::answer(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics.render(),
        ),
        "/version" => version(state),
        "/.well-known/jwks.json" => crate::headers::answer(
            StatusCode::OK,
            "application/jwk-set+json",
            state.jwks.clone(),
        ),
        path if crate::openapi::ADMIN_PATHS.contains(&path) => {
            match crate::openapi::answer(req.method(), path) {
                Ok(response) => response,
                Err(problem) => problem.into_response(&state.problem_base, ""),
            }
        }
        _ => Problem::new(
            ProblemCode::UnknownRoute,
            "the admin listener serves /healthz, /readyz, /metrics, /version, /.well-known/jwks.json and /openapi.json",
        )
        .into_response(&state.problem_base, ""),
    }
}

/// `/version`: what is running — the build, this instance, and the policy set in force.
fn version(state: &Admin) -> Response<Full<Bytes>> {
    let policy = state.policies.current();
    let body = serde_json::json!({
        "name": env!("CARGO_PKG_NAME"),
        "version": env!("CARGO_PKG_VERSION"),
        "revision": env!("DOELPOORT_REVISION"),
        "instance": state.instance,
        "policy_version": policy.as_ref().map(|p| p.version.as_str()),
    });
    crate::headers::answer(
        StatusCode::OK,
        "application/json",
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

/// Ready when the data listener is serving (this listener only runs alongside it), a valid
/// policy set is loaded, the audit log can be written, and no configured certificate has
/// expired. A store that does not answer is reported as "degraded" (see below).
fn readiness(
    metrics: &Metrics,
    policies: &PolicyStore,
    audit: Option<&AuditHealth>,
    store: &std::sync::atomic::AtomicBool,
    store_records_every_exchange: bool,
) -> Response<Full<Bytes>> {
    // A store outage hits every replica at once: taking them all out of the load balancer
    // would refuse every exchange, while only those that spend an approval need the store.
    // So it is reported, not a reason to be unready — unless the audit log is in the store:
    // then no exchange can be recorded.
    let degraded = !store.load(std::sync::atomic::Ordering::Relaxed);
    if degraded && store_records_every_exchange {
        return crate::headers::answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready: the store, which holds the audit log, cannot be reached; exchanges are refused with audit-unavailable\n",
        );
    }
    if let Some(Err(reason)) = audit.map(AuditHealth::check) {
        return crate::headers::answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!("not ready: {reason}; exchanges are refused with audit-unavailable\n"),
        );
    }
    if policies.current().is_none() {
        let errors = policies.last_errors();
        return crate::headers::answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!(
                "not ready: no valid policy set is loaded ({} error(s); see the log or run `doelpoort policy check`)\n",
                errors.len()
            ),
        );
    }
    let now = crate::clock::unix_now() as f64;
    let expired: Vec<String> = metrics
        .certificate_expiry
        .collect()
        .iter()
        .flat_map(|family| family.get_metric())
        .filter(|m| m.get_gauge().get_value() <= now)
        .filter_map(|m| m.get_label().first().map(|l| l.value().to_string()))
        .collect();
    if expired.is_empty() && degraded {
        crate::headers::answer(
            StatusCode::OK,
            "text/plain",
            "ready, degraded: the store cannot be reached; exchanges that spend a four-eyes approval are refused\n",
        )
    } else if expired.is_empty() {
        crate::headers::answer(StatusCode::OK, "text/plain", "ready\n")
    } else {
        crate::headers::answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!(
                "not ready: expired certificate(s): {}\n",
                expired.join(", ")
            ),
        )
    }
}
