//! A recording TLS relay: what crosses the wire between two gateways, in plaintext.
//!
//! The tap terminates TLS from the client (with `<server_stem>.crt`, requiring a client
//! certificate from the test CA) and opens its own TLS connection to `upstream` (presenting
//! `<client_stem>.crt`, trusting the test CA, server name `localhost`), then copies bytes both
//! ways, keeping a copy of each direction. Both sides offer only ALPN `http/1.1`, so the
//! recording is plain HTTP/1.1.
//!
//! Because the tap presents `client_stem`'s certificate upstream, a certificate-bound token
//! (RFC 8705) stays valid through the tap when `client_stem` is the certificate the real client
//! uses.
#![allow(dead_code)] // each test crate uses a different part of the harness

use super::TestPki;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

type Bytes = Arc<Mutex<Vec<u8>>>;

/// A running tap on `addr` (127.0.0.1, server name `localhost`).
pub struct WireTap {
    pub addr: SocketAddr,
    to_upstream: Bytes,
    from_upstream: Bytes,
    connections: Arc<Mutex<usize>>,
    accept: JoinHandle<()>,
    relays: Arc<Mutex<Vec<AbortHandle>>>,
}

/// Starts a tap in front of `upstream` (see the module documentation).
pub async fn start(
    pki: &TestPki,
    upstream: SocketAddr,
    server_stem: &str,
    client_stem: &str,
) -> WireTap {
    let mut server = (*doelpoort::demo::mock_partner_tls(
        &pki.path(&format!("{server_stem}.crt")),
        &pki.path(&format!("{server_stem}.key")),
        &pki.path("ca.crt"),
    )
    .unwrap())
    .clone();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let mut client = super::client_tls(pki, Some(client_stem));
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (to_upstream, from_upstream): (Bytes, Bytes) = Default::default();
    let connections = Arc::new(Mutex::new(0));
    let relays: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
    let (up, down, count, tracked) = (
        to_upstream.clone(),
        from_upstream.clone(),
        connections.clone(),
        relays.clone(),
    );
    let accept = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, connector) = (acceptor.clone(), connector.clone());
            let (up, down, count) = (up.clone(), down.clone(), count.clone());
            let relay = tokio::spawn(async move {
                let Ok(Ok(downstream)) =
                    tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp)).await
                else {
                    return;
                };
                let Ok(tcp) = TcpStream::connect(upstream).await else {
                    return;
                };
                let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
                let Ok(Ok(upstream)) =
                    tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
                        .await
                else {
                    return;
                };
                *count.lock().unwrap() += 1;
                let (mut down_read, mut down_write) = tokio::io::split(downstream);
                let (mut up_read, mut up_write) = tokio::io::split(upstream);
                tokio::join!(
                    pump(&mut down_read, &mut up_write, &up),
                    pump(&mut up_read, &mut down_write, &down),
                );
            });
            let mut open = tracked.lock().unwrap();
            open.retain(|r| !r.is_finished());
            open.push(relay.abort_handle());
        }
    });
    WireTap {
        addr,
        to_upstream,
        from_upstream,
        connections,
        accept,
        relays,
    }
}

/// Copies `from` to `to` until either ends, recording what passes; then closes `to` (TLS
/// close_notify), so the other side sees the end too.
async fn pump<R, W>(from: &mut R, to: &mut W, record: &Bytes)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        record.lock().unwrap().extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() || to.flush().await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

impl WireTap {
    /// The tap's address as a URL: `https://localhost:<port>`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// Every plaintext byte the client sent upstream so far (all connections, concatenated).
    pub fn to_upstream(&self) -> Vec<u8> {
        self.to_upstream.lock().unwrap().clone()
    }

    /// Every plaintext byte upstream sent back so far (all connections, concatenated).
    #[allow(clippy::wrong_self_convention)] // a direction on the wire, not a conversion
    pub fn from_upstream(&self) -> Vec<u8> {
        self.from_upstream.lock().unwrap().clone()
    }

    /// Whether `needle` occurs in what upstream sent back.
    pub fn contains_from_upstream(&self, needle: &[u8]) -> bool {
        contains(&self.from_upstream.lock().unwrap(), needle)
    }

    /// Whether `needle` occurs in what the client sent upstream.
    pub fn contains_to_upstream(&self, needle: &[u8]) -> bool {
        contains(&self.to_upstream.lock().unwrap(), needle)
    }

    /// How many connections the tap relayed (both handshakes completed).
    pub fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }
}

impl Drop for WireTap {
    fn drop(&mut self) {
        self.accept.abort();
        for r in self.relays.lock().unwrap().drain(..) {
            r.abort();
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
