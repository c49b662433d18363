//! The data and admin listeners: accepting connections, serving them, and shutting down
//! gracefully.
//!
//! Concurrency model: one tokio task per connection. The accept loop takes a permit from a
//! semaphore before accepting, so at most `max_connections` are open and excess callers wait
//! in the kernel backlog instead of exhausting file descriptors. Each connection task runs the
//! TLS handshake (bounded by `handshake_timeout`), identifies the consumer once from the client
//! certificate, then — once the client sends its first bytes, so that an idle connection holds
//! no HTTP state — serves HTTP/1.1 or HTTP/2 with [`pipeline::serve`] per request. An
//! HTTP/1.1 connection that then idles is parked, holding only its TLS state again
//! (`server/connection.rs`).
//!
//! Shutdown: the accept loop stops, every open connection is told to finish its in-flight
//! requests and close (HTTP/1 stops keep-alive, HTTP/2 sends GOAWAY), and the server waits up
//! to `shutdown_grace` for them before dropping what is left.

use crate::admin;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::pipeline;
use crate::policy::store::PolicyStore;
use crate::state::GatewayState;
use crate::tls;
use anyhow::{Context, Result};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

mod connection;

pub use connection::PARK_AFTER;

/// How often the store is probed for `/readyz` when no exchange needs it.
const STORE_PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// How often a replica looks for case register changes made elsewhere (one cheap query).
const CASE_FOLLOW_INTERVAL: Duration = Duration::from_millis(250);
/// How often closed cases past their retention are purged.
const CASE_PURGE_INTERVAL: Duration = Duration::from_secs(60);
use tokio_rustls::TlsAcceptor;

/// Records `notAfter` of every configured certificate in the expiry metric.
fn publish_certificate_expiry(config: &Config, metrics: &Metrics) {
    for (label, path) in config.certificate_files() {
        if let Ok(validity) = tls::certificate_validity(path) {
            if let Some(first) = validity.first() {
                metrics.set_certificate_expiry(&label, first.not_after);
            }
        }
    }
}

/// A started gateway: listeners bound and serving.
pub struct RunningGateway {
    pub local_addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    /// The privacy officers' console, when configured.
    pub console_addr: Option<SocketAddr>,
    pub metrics: Arc<Metrics>,
    pub policies: Arc<PolicyStore>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    admin_task: Option<JoinHandle<()>>,
    console_task: Option<JoinHandle<()>>,
    watcher_task: JoinHandle<()>,
    token_task: Option<JoinHandle<()>>,
    store_task: JoinHandle<()>,
    case_tasks: [JoinHandle<()>; 2],
    /// At an inway: the callers' assertion keys, fetched periodically.
    inway_tasks: Vec<JoinHandle<()>>,
}

impl RunningGateway {
    /// Stops accepting, drains in-flight requests (bounded by `shutdown_grace`), and returns
    /// when every connection is closed.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        self.watcher_task.abort();
        self.store_task.abort();
        for task in self.case_tasks.iter().chain(&self.inway_tasks) {
            task.abort();
        }
        if let Some(task) = &self.token_task {
            task.abort();
        }
        let _ = self.task.await;
        for task in self.admin_task.iter().chain(&self.console_task) {
            task.abort();
        }
    }

    /// Resolves when the data listener has stopped (after a shutdown).
    pub async fn stopped(&mut self) {
        let _ = (&mut self.task).await;
    }

    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// A write past `RLIMIT_FSIZE` (e.g. systemd's `LimitFSIZE=`) raises SIGXFSZ, which by
/// default kills the process. The gateway must instead see the write fail (EFBIG), refuse the
/// exchange with `audit-unavailable` and keep serving, so the signal gets a handler. tokio
/// keeps a registered handler for the life of the process.
fn survive_file_size_limit() {
    use tokio::signal::unix::{signal, SignalKind};
    if let Err(e) = signal(SignalKind::from_raw(libc::SIGXFSZ)) {
        tracing::warn!(error = %e, "cannot handle SIGXFSZ; a file size limit would stop the gateway");
    }
}

/// Binds the listeners and starts serving in the background.
pub async fn start(config: &Config) -> Result<RunningGateway> {
    survive_file_size_limit();
    let metrics = Arc::new(Metrics::new());
    let state = Arc::new(GatewayState::build(config, metrics.clone()).await?);
    let policies = state.policies.clone();
    let watcher_task = policies.spawn_watcher();
    let token_task = state.tokens.as_ref().map(|t| t.spawn_reloader());
    let store_task = state.store.spawn_upkeep(STORE_PROBE_INTERVAL);
    // A case changed through another replica is seen here within a quarter of a second.
    let case_tasks = [
        state.cases.follow(CASE_FOLLOW_INTERVAL),
        state.cases.spawn_purge(CASE_PURGE_INTERVAL),
    ];
    let inway_tasks = state
        .inway
        .as_ref()
        .map(|i| i.spawn_refreshers())
        .unwrap_or_default();
    let acceptor = TlsAcceptor::from(tls::server_config(config)?);
    publish_certificate_expiry(config, &metrics);

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local_addr = listener.local_addr()?;
    let (admin_addr, admin_task) = match config.admin_listen {
        Some(addr) => {
            let admin = admin::Admin {
                metrics: metrics.clone(),
                policies: policies.clone(),
                audit: state.audit.as_ref().map(|a| a.health()),
                store: state.store.reachable(),
                store_records_every_exchange: config.audit.enabled
                    && config.audit.sink == crate::config::AuditSink::Postgres,
                instance: config.instance.clone(),
                tls: tls::admin_server_config(config)?,
                jwks: bytes::Bytes::copy_from_slice(state.assertions.jwks()),
                problem_base: config.problem_base.clone(),
            };
            let (addr, task) = admin::start(addr, admin).await?;
            (Some(addr), Some(task))
        }
        None => (None, None),
    };
    let (console_addr, console_task) = match &config.console {
        Some(settings) => {
            let console = crate::console::Console::new(config, settings, state.clone());
            let tls = tls::console_server_config(settings)?;
            let (addr, task) = crate::console::start(settings.listen, console, tls).await?;
            (Some(addr), Some(task))
        }
        None => (None, None),
    };
    let (shutdown, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, acceptor, state, shutdown_rx));
    tracing::info!(%local_addr, admin = ?admin_addr, role = config.role.as_str(), "doelpoort listening");
    Ok(RunningGateway {
        local_addr,
        admin_addr,
        console_addr,
        metrics,
        policies,
        shutdown,
        task,
        admin_task,
        console_task,
        watcher_task,
        token_task,
        store_task,
        case_tasks,
        inway_tasks,
    })
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<GatewayState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = state.limits.clone();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        let watcher = graceful.watcher();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            state.metrics.connections_active.inc();
            serve_connection(tcp, remote, acceptor, &state, watcher, shutdown).await;
            state.metrics.connections_active.dec();
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!(
        open_connections = graceful.count(),
        "shutting down: draining connections"
    );
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period ended with connections still open");
    }
}

async fn serve_connection(
    tcp: TcpStream,
    remote: SocketAddr,
    acceptor: TlsAcceptor,
    state: &Arc<GatewayState>,
    watcher: hyper_util::server::graceful::Watcher,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = &state.limits;
    let _ = tcp.set_nodelay(true);
    // The handshake's state is boxed: freed once it completes, it does not size the task
    // that then holds the connection for as long as it stays open.
    let handshake = Box::pin(acceptor.accept(tcp));
    let mut tls = match tokio::time::timeout(limits.handshake_timeout, handshake).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            let reason = tls::HandshakeFailure::of(&e).as_str();
            state
                .metrics
                .tls_handshake_failures
                .with_label_values(&[reason])
                .inc();
            tracing::debug!(%remote, reason, "TLS handshake refused");
            return;
        }
        Err(_) => {
            state
                .metrics
                .tls_handshake_failures
                .with_label_values(&["timeout"])
                .inc();
            return;
        }
    };

    // identify, once per connection: the certificate cannot change within a TLS session
    // (rustls does not support renegotiation).
    let peer = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| tls::peer_identity(leaf.as_ref()).ok());
    let connection = Arc::new(crate::identity::Connection {
        consumer: peer.as_ref().and_then(|p| state.consumers.identify(p)),
        fingerprint: peer.map(|p| p.fingerprint),
    });

    // Until the client speaks, a connection costs only its TLS state: the HTTP connection
    // (hyper's state and buffers, most of this task's size) is built on the heap once the first
    // bytes arrive. That saves ~3 KB on each connection opened ahead of use (measured in
    // docs/performance.md, "Memory per connection"); one that has served a request keeps
    // hyper's state while it idles.
    tokio::select! {
        spoke = first_bytes(&mut tls) => if !spoke { return },
        _ = tokio::time::sleep(limits.idle_timeout) => {
            tracing::debug!(%remote, "closing idle connection (no request)");
            return;
        }
        // Nothing was asked on it: a shutdown simply closes it.
        _ = shutdown.wait_for(|stopping| *stopping) => return,
    }
    Box::pin(serve_http(
        tls, remote, connection, state, watcher, shutdown,
    ))
    .await;
}

/// Waits until the client has sent something on `tls` (or closed it): plaintext rustls already
/// holds (sent with the handshake's last flight), or bytes on the socket. `false` when the
/// connection is broken.
pub(crate) async fn first_bytes(tls: &mut tokio_rustls::server::TlsStream<TcpStream>) -> bool {
    let (tcp, session) = tls.get_mut();
    match session.process_new_packets() {
        Ok(io) if io.plaintext_bytes_to_read() > 0 || io.peer_has_closed() => return true,
        Ok(_) => {}
        Err(_) => return false,
    }
    // Readiness may be spurious; hyper then simply reads nothing yet and waits itself.
    tcp.readable().await.is_ok()
}

/// The response body of every exchange.
pub(crate) type Exchanges = http_body_util::Full<bytes::Bytes>;

/// Serves HTTP/1.1 or HTTP/2 on an identified TLS connection until it ends or stays idle
/// (see [`connection`]); holds the graceful-shutdown watcher until then.
async fn serve_http(
    tls: connection::Tls,
    remote: SocketAddr,
    identity: Arc<crate::identity::Connection>,
    state: &Arc<GatewayState>,
    watcher: hyper_util::server::graceful::Watcher,
    shutdown: watch::Receiver<bool>,
) {
    let limits = &state.limits;
    let activity = Arc::new(connection::Activity::new());
    // Exchanges of this connection, including those that outlive a reset stream (below): at
    // most `max_concurrent_streams`. Without this bound, an HTTP/2 client that resets every
    // stream once it is accepted keeps the stream limit but not the work: each reset exchange
    // runs on, and one connection could keep any number of partner requests in flight.
    let exchanges = Arc::new(Semaphore::new(limits.max_concurrent_streams as usize));
    let handler: connection::Handler = {
        let state = state.clone();
        let activity = activity.clone();
        Arc::new(move |request| {
            let state = state.clone();
            let in_flight = connection::InFlight::start(&activity);
            let identity = identity.clone();
            let exchanges = exchanges.clone();
            Box::pin(async move {
                let _in_flight = in_flight;
                // Waiting here costs nothing: a stream reset while waiting is simply dropped.
                let Ok(permit) = exchanges.acquire_owned().await else {
                    return Ok(pipeline::internal_error(&state));
                };
                // The exchange runs as its own task: if the caller goes away (a reset stream, a
                // closed connection), hyper drops this future, but an exchange that may already
                // have reached the partner still ends with its audit record.
                let task_state = state.clone();
                let exchange = tokio::spawn(async move {
                    let response = pipeline::serve(&task_state, &identity, request).await;
                    drop(permit);
                    response
                });
                let mut response = exchange
                    .await
                    .unwrap_or_else(|_| pipeline::internal_error(&state));
                crate::headers::secure(response.headers_mut(), true);
                Ok::<_, Infallible>(response)
            })
        })
    };
    connection::serve(
        tls,
        remote,
        handler,
        activity,
        limits,
        &state.metrics,
        shutdown,
    )
    .await;
    // The graceful shutdown waits for every watcher: this connection is done.
    drop(watcher);
}
