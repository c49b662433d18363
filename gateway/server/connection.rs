//! One identified connection between its requests: which HTTP it speaks, when it is idle, and
//! what it holds while it idles.
//!
//! An HTTP/1.1 connection that has served a request and then idles is what a caller's
//! connection pool leaves open, often by the thousand. hyper keeps its connection state and
//! two 8 KB buffers for as long as a connection lives and has no way to release them between
//! requests, so an idle HTTP/1.1 connection is *parked* instead: after [`PARK_AFTER`] without
//! a byte or a request, hyper is asked to end the connection without closing it
//! ([`hyper::server::conn::http1::Connection::graceful_shutdown`], which on an idle
//! connection writes nothing), the TLS stream and any bytes read ahead are taken back, and the
//! connection waits for its next bytes holding only its TLS state. Those bytes build a fresh
//! HTTP connection over the same TLS stream, with the read-ahead bytes replayed first.
//! HTTP/2 multiplexes its own streams and keeps its connection (its buffers are per stream).
//!
//! The idle timeout (`limits.idle_timeout`) closes a connection, parked or not, that has had
//! no request for that long.

use super::{first_bytes, Exchanges};
use crate::config::Limits;
use crate::metrics::Metrics;
use bytes::{Buf, Bytes, BytesMut};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// How long an HTTP/1.1 connection stays quiet (no byte read, no request in flight) before it
/// is parked. Long enough that a busy keep-alive connection never is (rebuilding hyper's
/// connection costs a few allocations), short enough that a pool's idle connections soon are.
pub const PARK_AFTER: Duration = Duration::from_millis(250);

/// The TLS stream of a data or inway listener's connection.
pub type Tls = tokio_rustls::server::TlsStream<TcpStream>;

/// Request activity on one connection, for parking and the idle timeout.
pub struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `opened` when a request last started or ended, or (HTTP/1.1)
    /// bytes last came.
    last_ms: AtomicU64,
    /// HTTP/1.1: bytes came since the last request started, so hyper may hold part of the
    /// next request's head. Such a connection is not idle, however long the client pauses
    /// (hyper's `header_timeout` bounds that pause).
    partial: AtomicBool,
    /// Requests started on this connection.
    started: AtomicU64,
}

impl Activity {
    pub fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
            partial: AtomicBool::new(false),
            started: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        self.last_ms
            .store(self.opened.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// HTTP/1.1 bytes reached hyper.
    fn bytes_came(&self) {
        self.partial.store(true, Ordering::Relaxed);
        self.touch();
    }

    /// How long nothing has happened, or `None` while a request is in flight or (HTTP/1.1)
    /// under way.
    fn quiet_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 || self.partial.load(Ordering::Relaxed) {
            return None;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        Some(self.opened.elapsed().saturating_sub(last))
    }
}

/// Counts a request as in flight for as long as it lives (also when the future is dropped).
pub struct InFlight(Arc<Activity>);

impl InFlight {
    pub fn start(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.started.fetch_add(1, Ordering::Relaxed);
        activity.partial.store(false, Ordering::Relaxed);
        activity.touch();
        Self(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The TLS stream as hyper sees it: bytes read ahead (by the protocol sniff, or by a previous
/// HTTP connection before it was parked) are replayed first. Over HTTP/1.1 every read counts
/// as activity, so a request arriving slowly is never taken for an idle connection; over
/// HTTP/2 only requests do (its pings must not keep an unused connection open forever).
pub struct Watched {
    tls: Tls,
    replay: Bytes,
    /// `Some` over HTTP/1.1.
    reads: Option<Arc<Activity>>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.replay.has_remaining() {
            let n = this.replay.len().min(buf.remaining());
            buf.put_slice(&this.replay[..n]);
            this.replay.advance(n);
            if let Some(activity) = &this.reads {
                activity.bytes_came();
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.tls).poll_read(cx, buf);
        if let Some(activity) = &this.reads {
            if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
                activity.bytes_came();
            }
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tls).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tls).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tls.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tls).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tls).poll_shutdown(cx)
    }
}

/// The request handler of one connection, as hyper calls it.
pub type Handler = Arc<
    dyn Fn(
            http::Request<Incoming>,
        ) -> Pin<
            Box<
                dyn Future<Output = Result<http::Response<Exchanges>, std::convert::Infallible>>
                    + Send,
            >,
        > + Send
        + Sync,
>;

/// Resolves once a shutdown has begun (the receiver's guard is not held across awaits).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}

/// HTTP/2's connection preface (RFC 9113 §3.4): a client that speaks HTTP/2 without ALPN
/// ("prior knowledge") starts with it.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves the connection until it ends, stays idle past the idle timeout, or a shutdown
/// has let its requests finish.
pub async fn serve(
    mut tls: Tls,
    remote: SocketAddr,
    handler: Handler,
    activity: Arc<Activity>,
    limits: &Limits,
    metrics: &Metrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let (h2, replay) = match alpn.as_deref() {
        Some(b"h2") => (true, Bytes::new()),
        Some(_) => (false, Bytes::new()),
        // Bounded like a request's head: a client that sends part of a preface and stalls.
        None => match tokio::time::timeout(limits.header_timeout, sniff(&mut tls)).await {
            Ok(Ok(sniffed)) => sniffed,
            _ => return,
        },
    };
    let io = Watched {
        tls,
        replay,
        reads: (!h2).then(|| activity.clone()),
    };
    if h2 {
        serve_h2(io, remote, handler, &activity, limits, &mut shutdown).await;
    } else {
        serve_h1(
            io,
            remote,
            handler,
            &activity,
            limits,
            metrics,
            &mut shutdown,
        )
        .await;
    }
}

/// Reads until the bytes are HTTP/2's preface or cannot become it; returns them to replay.
async fn sniff(tls: &mut Tls) -> io::Result<(bool, Bytes)> {
    let mut seen = BytesMut::with_capacity(H2_PREFACE.len());
    while seen.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(&seen) {
        let mut chunk = [0u8; 24];
        let n = tls
            .read(&mut chunk[..H2_PREFACE.len() - seen.len()])
            .await?;
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&chunk[..n]);
    }
    Ok((seen.as_ref() == H2_PREFACE, seen.freeze()))
}

async fn serve_h1(
    mut io: Watched,
    remote: SocketAddr,
    handler: Handler,
    activity: &Arc<Activity>,
    limits: &Limits,
    metrics: &Metrics,
    shutdown: &mut watch::Receiver<bool>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers);
    loop {
        io = match serve_h1_until_idle(&builder, io, remote, &handler, activity, limits, shutdown)
            .await
        {
            Some(parked) => parked,
            None => return,
        };
        // Parked: only the TLS stream (and any bytes read ahead) is left. Wait for the next
        // bytes, the idle timeout or a shutdown.
        if io.replay.is_empty() {
            let remaining = limits
                .idle_timeout
                .saturating_sub(activity.quiet_for().unwrap_or_default());
            metrics.connections_parked.inc();
            let resume = tokio::select! {
                spoke = first_bytes(&mut io.tls) => spoke,
                _ = tokio::time::sleep(remaining) => {
                    tracing::debug!(%remote, "closing idle connection");
                    false
                }
                // Nothing is in flight on a parked connection: a shutdown simply closes it.
                _ = stopped(shutdown) => false,
            };
            metrics.connections_parked.dec();
            if !resume {
                return;
            }
        }
    }
}

/// One hyper HTTP/1.1 connection over `io`, until it parks (the TLS stream is returned, still
/// open and able to carry another request) or closes (by the client, an error, the idle
/// timeout or a shutdown: `None`).
async fn serve_h1_until_idle(
    builder: &http1::Builder,
    io: Watched,
    remote: SocketAddr,
    handler: &Handler,
    activity: &Arc<Activity>,
    limits: &Limits,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Watched> {
    let handler = handler.clone();
    let service = hyper::service::service_fn(move |request| handler(request));
    // Boxed: hyper's connection state is freed when it parks, and does not size this task.
    let mut connection = Box::new(builder.serve_connection(TokioIo::new(io), service));
    // Set once hyper has been asked to end the connection: to park it (with the number of
    // requests started by then), or to stop.
    let mut parking = None;
    let mut stopping = false;
    loop {
        let wake = match activity.quiet_for() {
            None => PARK_AFTER,
            Some(quiet) if parking.is_some() || stopping => {
                limits.idle_timeout.saturating_sub(quiet)
            }
            Some(quiet) => PARK_AFTER.saturating_sub(quiet),
        };
        tokio::select! {
            done = std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)) => {
                if let Err(e) = done {
                    tracing::debug!(%remote, error = %e, "connection ended with an error");
                    return None;
                }
                let parts = connection.into_parts();
                let mut io = parts.io.into_inner();
                // A request that slipped in after hyper was asked to end was answered with
                // `Connection: close`: the client expects the connection to close, so it does.
                let parked = parking == Some(activity.started.load(Ordering::Relaxed));
                if parked && !stopping {
                    // hyper may have read ahead: those bytes come first next time.
                    if !parts.read_buf.is_empty() {
                        let mut replay = BytesMut::from(parts.read_buf);
                        replay.extend_from_slice(&io.replay);
                        io.replay = replay.freeze();
                    }
                    return Some(io);
                }
                // The client closed, or a shutdown let the last request finish: say goodbye
                // (TLS close_notify), as hyper does when it closes a connection itself.
                let _ = tokio::time::timeout(Duration::from_secs(1), io.shutdown()).await;
                return None;
            }
            _ = tokio::time::sleep(wake) => {
                match activity.quiet_for() {
                    Some(quiet) if quiet >= limits.idle_timeout => {
                        tracing::debug!(%remote, "closing idle connection");
                        return None;
                    }
                    Some(quiet) if quiet >= PARK_AFTER && parking.is_none() && !stopping => {
                        // On an idle connection this writes nothing; if a request slipped in
                        // meanwhile, it is answered with `Connection: close` and then closed.
                        Pin::new(&mut *connection).graceful_shutdown();
                        parking = Some(activity.started.load(Ordering::Relaxed));
                    }
                    _ => {}
                }
            }
            _ = stopped(shutdown), if !stopping => {
                // Stop keep-alive: in-flight requests finish, then the connection closes.
                Pin::new(&mut *connection).graceful_shutdown();
                stopping = true;
            }
        }
    }
}

async fn serve_h2(
    io: Watched,
    remote: SocketAddr,
    handler: Handler,
    activity: &Arc<Activity>,
    limits: &Limits,
    shutdown: &mut watch::Receiver<bool>,
) {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(limits.max_header_bytes as u32)
        // Rapid-reset (CVE-2023-44487) bound: a client that keeps resetting streams is cut off.
        .max_pending_accept_reset_streams(Some(64))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    let service = hyper::service::service_fn(move |request| handler(request));
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        let wake = activity.quiet_for().map_or(limits.idle_timeout, |quiet| {
            limits.idle_timeout.saturating_sub(quiet)
        });
        tokio::select! {
            result = &mut connection => {
                if let Err(e) = result {
                    tracing::debug!(%remote, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = tokio::time::sleep(wake) => {
                if activity.quiet_for().is_some_and(|quiet| quiet >= limits.idle_timeout) {
                    tracing::debug!(%remote, "closing idle connection");
                    return;
                }
            }
            _ = stopped(shutdown), if !stopping => {
                // GOAWAY: streams in flight finish, no new ones are accepted.
                connection.as_mut().graceful_shutdown();
                stopping = true;
            }
        }
    }
}
