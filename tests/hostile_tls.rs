//! Hostile callers at the TLS layer: certificates that must not identify anyone, protocol
//! versions that must not be spoken, renegotiation, and bytes that are not TLS at all. Each
//! case is refused in the handshake (no HTTP is served, no exchange exists, so no audit record
//! is written), counted under its reason, and the gateway keeps serving normal callers.
//!
//! The plain cases (no certificate, untrusted CA, expired, not yet valid, revoked, serverAuth
//! only) are in `transport.rs`; here they are rerun together only to prove what those tests do
//! not check: no audit record, and a gateway that still serves afterwards.

mod harness;

use harness::*;
use http::StatusCode;
use std::time::Duration;

async fn setup() -> (
    TestPki,
    doelpoort::demo::MockPartner,
    doelpoort::server::RunningGateway,
) {
    let pki = TestPki::new();
    let partner = start_partner(
        &pki,
        fixed(StatusCode::OK, r#"{"ok":true}"#, Duration::ZERO),
    )
    .await;
    let gateway = start_gateway(&pki, &[PartnerSpec::new("uwv", partner.addr)], "").await;
    (pki, partner, gateway)
}

fn handshake_failures(gateway: &doelpoort::server::RunningGateway, reason: &str) -> u64 {
    gateway
        .metrics
        .tls_handshake_failures
        .with_label_values(&[reason])
        .get()
}

/// No exchange happened: the audit log holds no record at all.
fn assert_no_records(pki: &TestPki) {
    let records = audit_records(&pki.path("audit"));
    assert!(
        records.is_empty(),
        "a refused handshake left records: {records:?}"
    );
}

/// Every TLS handshake failure the gateway counted, whatever the reason.
fn all_handshake_failures(gateway: &doelpoort::server::RunningGateway) -> u64 {
    let text = String::from_utf8(gateway.metrics.render()).unwrap();
    text.lines()
        .filter(|l| l.starts_with("doelpoort_tls_handshake_failures_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
        .sum()
}

/// The connection with `stem`'s certificate is refused by TLS in the handshake, before any
/// HTTP: the client receives the fatal alert `alert` (not a timeout, not a silent close), and
/// the gateway counts exactly one more handshake failure.
async fn assert_handshake_refused(
    pki: &TestPki,
    gateway: &doelpoort::server::RunningGateway,
    stem: &str,
    alert: &str,
) {
    let before = all_handshake_failures(gateway);
    let result = try_raw_request(gateway.local_addr, client_tls(pki, Some(stem))).await;
    let err = result.expect_err(&format!("{stem}: a request was served"));
    assert_eq!(
        err,
        format!("received fatal alert: {alert}"),
        "{stem}: not refused by TLS as expected"
    );
    // The gateway counts the failure once its side of the handshake has ended.
    eventually(
        &format!("{stem}: the refusal counted"),
        Duration::from_secs(5),
        || all_handshake_failures(gateway) > before,
    )
    .await;
    assert_eq!(all_handshake_failures(gateway), before + 1, "{stem}");
}

/// The positive control for minted certificates: an unbent `Mint::consumer()` is served, so a
/// refusal below is caused by the one thing the case bends, not by `mint` itself.
async fn assert_minted_consumer_is_served(pki: &TestPki, port: u16) {
    mint(pki, "minted-control", &Mint::consumer());
    let response = get(
        &client(pki, "minted-control", Http::One),
        &format!("https://localhost:{port}/uwv/v1/ping"),
    )
    .await;
    assert_eq!(
        response.status,
        StatusCode::OK,
        "an unmodified minted consumer certificate is not served: {}",
        String::from_utf8_lossy(&response.body)
    );
}

#[tokio::test]
async fn a_self_signed_certificate_with_a_consumers_oin_is_refused() {
    let (pki, _partner, gateway) = setup().await;
    assert_minted_consumer_is_served(&pki, gateway.local_addr.port()).await;
    mint(
        &pki,
        "self-signed",
        &Mint {
            self_signed: true,
            ..Mint::consumer()
        },
    );
    assert_handshake_refused(&pki, &gateway, "self-signed", "UnknownCA").await;
    assert_eq!(handshake_failures(&gateway, "certificate_untrusted"), 1);
    // The served control exchange is the only record.
    assert_eq!(audit_records(&pki.path("audit")).len(), 1);
    assert_still_serving(&pki, gateway.local_addr.port()).await;
}

#[tokio::test]
async fn certificates_with_the_wrong_key_usage_or_extended_key_usage_are_refused() {
    let (pki, _partner, gateway) = setup().await;
    assert_minted_consumer_is_served(&pki, gateway.local_addr.port()).await;
    let cases: [(&str, &[&str], &[&str]); 5] = [
        // A signing key that may only sign certificates (a CA key used as a client key).
        ("ku-cert-sign", &["keyCertSign"], &["clientAuth"]),
        // An encryption-only key cannot sign the handshake.
        ("ku-encipher", &["keyEncipherment"], &["clientAuth"]),
        ("eku-code-signing", &["digitalSignature"], &["codeSigning"]),
        ("eku-email", &["digitalSignature"], &["emailProtection"]),
        // No extended key usage at all: webpki takes it as good for every purpose; a client
        // certificate must say it is one.
        ("eku-none", &["digitalSignature"], &[]),
    ];
    for (stem, key_usage, extended_key_usage) in cases {
        mint(
            &pki,
            stem,
            &Mint {
                key_usage,
                extended_key_usage,
                ..Mint::consumer()
            },
        );
        assert_handshake_refused(&pki, &gateway, stem, "UnsupportedCertificate").await;
    }
    // The served control exchange is the only record.
    assert_eq!(audit_records(&pki.path("audit")).len(), 1);
    assert_still_serving(&pki, gateway.local_addr.port()).await;
}

#[tokio::test]
async fn a_certificate_naming_two_organisations_is_refused() {
    // Two serialNumber OINs: which organisation calls would depend on which one is read.
    let (pki, _partner, gateway) = setup().await;
    assert_minted_consumer_is_served(&pki, gateway.local_addr.port()).await;
    for (stem, more) in [
        ("two-oins", ["00000001999990009000"]),
        ("the-oin-twice", [CONSUMER_OIN]),
    ] {
        mint(
            &pki,
            stem,
            &Mint {
                more_oins: &more,
                ..Mint::consumer()
            },
        );
        assert_handshake_refused(&pki, &gateway, stem, "AccessDenied").await;
    }
    assert_eq!(audit_records(&pki.path("audit")).len(), 1);
    assert_still_serving(&pki, gateway.local_addr.port()).await;
}

/// Every certificate the default PKI has for refusal, again: no record, still serving.
#[tokio::test]
async fn refused_handshakes_leave_no_record_and_the_gateway_serves_on() {
    let pki = TestPki::new();
    let partner = start_partner(&pki, echo()).await;
    let yaml = config_yaml_with_crl(&pki, &[PartnerSpec::new("uwv", partner.addr)]);
    let path = write_config(&pki, &yaml);
    let config = doelpoort::config::Config::load(&path).unwrap();
    let gateway = doelpoort::server::start(&config).await.unwrap();
    let no_certificate = try_raw_request(gateway.local_addr, client_tls(&pki, None)).await;
    assert!(no_certificate.is_err(), "served without a certificate");
    for (stem, alert) in [
        ("rogue", "UnknownCA"),
        ("expired", "CertificateExpired"),
        ("not-yet-valid", "CertificateExpired"),
        ("revoked", "CertificateRevoked"),
        ("server-only", "UnsupportedCertificate"),
    ] {
        assert_handshake_refused(&pki, &gateway, stem, alert).await;
        // Between the refusals, a good caller is served.
        assert_still_serving(&pki, gateway.local_addr.port()).await;
    }
    // Not yet valid and serverAuth-only count as untrusted, like the rogue CA.
    for (reason, count) in [
        ("no_client_certificate", 1),
        ("certificate_untrusted", 3),
        ("certificate_revoked", 1),
        ("certificate_expired", 1),
    ] {
        assert_eq!(handshake_failures(&gateway, reason), count, "{reason}");
    }
    // Only the good callers' exchanges are in the log.
    let records = audit_records(&pki.path("audit"));
    assert_eq!(records.len(), 5, "{records:?}");
    assert!(records
        .iter()
        .all(|r| r["attributes"]["doelpoort.decision"] == "allow"));
}

/// A TLS 1.0 or 1.1 ClientHello (no supported_versions extension) with an ECDHE-GCM and a
/// CBC suite; with `signature_algorithms` (a TLS 1.2 extension) when `sig_algs`.
fn legacy_client_hello(version: [u8; 2], sig_algs: bool) -> Vec<u8> {
    let mut hello = Vec::new();
    hello.extend_from_slice(&version); // client_version
    hello.extend_from_slice(&[0x5a; 32]); // random
    hello.push(0); // no session id
    let suites: &[u8] = &[0xc0, 0x2f, 0xc0, 0x13, 0x00, 0x2f];
    hello.extend_from_slice(&(suites.len() as u16).to_be_bytes());
    hello.extend_from_slice(suites);
    hello.extend_from_slice(&[1, 0]); // compression: null
                                      // Extensions: server_name "localhost", supported_groups x25519+P-256, ec_point_formats.
    let mut ext = Vec::new();
    let name = b"localhost";
    let mut sni = vec![0x00];
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    let mut sni_list = (sni.len() as u16).to_be_bytes().to_vec();
    sni_list.extend(sni);
    ext.extend_from_slice(&[0x00, 0x00]);
    ext.extend_from_slice(&(sni_list.len() as u16).to_be_bytes());
    ext.extend(sni_list);
    ext.extend_from_slice(&[0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]);
    ext.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    if sig_algs {
        // ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256
        ext.extend_from_slice(&[0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 4, 3, 8, 4, 4, 1]);
    }
    hello.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    hello.extend(ext);
    let mut handshake = vec![0x01]; // client_hello
    handshake.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend(hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend(handshake);
    record
}

/// A real TLS 1.0/1.1 client sends no signature_algorithms: rustls refuses that hello with a
/// fatal handshake_failure (40); with the extension, the version itself is refused with a fatal
/// protocol_version (70). Either way nothing but the alert comes back, and the connection ends.
#[tokio::test]
async fn tls_1_0_and_1_1_client_hellos_are_refused_with_a_fatal_alert() {
    use tokio::io::AsyncWriteExt;
    let (pki, _partner, gateway) = setup().await;
    for (name, version) in [("TLS 1.0", [3, 1]), ("TLS 1.1", [3, 2])] {
        for (sig_algs, alert) in [(false, 40), (true, 70)] {
            let mut tcp = tokio::net::TcpStream::connect(gateway.local_addr)
                .await
                .unwrap();
            tcp.write_all(&legacy_client_hello(version, sig_algs))
                .await
                .unwrap();
            let (answer, closed) = read_until_closed(&mut tcp, Duration::from_secs(10)).await;
            assert!(closed, "{name}: the connection stayed open");
            // One alert record: content type 21, two bytes, level fatal (2), description.
            assert_eq!(answer.len(), 7, "{name}: {answer:?}");
            assert_eq!(answer[0], 21, "{name}: not an alert: {answer:?}");
            assert_eq!(&answer[5..7], &[2, alert], "{name} {sig_algs}: {answer:?}");
        }
    }
    assert_eq!(handshake_failures(&gateway, "protocol_version"), 4);
    assert_no_records(&pki);
    assert_still_serving(&pki, gateway.local_addr.port()).await;
}

#[tokio::test]
async fn bytes_that_are_not_a_tls_handshake_are_dropped() {
    use tokio::io::AsyncWriteExt;
    let (pki, _partner, gateway) = setup().await;
    let garbage: [&[u8]; 4] = [
        b"GET /uwv/v1/ping HTTP/1.1\r\nhost: localhost\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        &[0x16, 0x03, 0x03, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00],
        &[0u8; 512],
    ];
    for bytes in garbage {
        let mut tcp = tokio::net::TcpStream::connect(gateway.local_addr)
            .await
            .unwrap();
        let _ = tcp.write_all(bytes).await;
        let (answer, closed) = read_until_closed(&mut tcp, Duration::from_secs(10)).await;
        assert!(closed, "the connection stayed open after {bytes:?}");
        let text = String::from_utf8_lossy(&answer);
        assert!(
            !text.contains("HTTP/"),
            "HTTP was served on a plain socket: {text}"
        );
    }
    // Random-looking bytes, deterministic: a simple LCG.
    let mut x: u32 = 0x1234_5678;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect();
    let mut tcp = tokio::net::TcpStream::connect(gateway.local_addr)
        .await
        .unwrap();
    let _ = tcp.write_all(&noise).await;
    let (_, closed) = read_until_closed(&mut tcp, Duration::from_secs(10)).await;
    assert!(closed, "the connection stayed open after noise");
    let failed: u64 = ["handshake_error", "protocol_version"]
        .iter()
        .map(|r| handshake_failures(&gateway, r))
        .sum();
    assert_eq!(failed, 5, "every garbage connection is counted");
    assert_no_records(&pki);
    assert_still_serving(&pki, gateway.local_addr.port()).await;
}

extern "C" {
    // From libssl, which the openssl crate links. Not wrapped by the crate.
    fn SSL_renegotiate(ssl: *mut std::ffi::c_void) -> std::ffi::c_int;
}

/// One HTTP/1.1 request over an OpenSSL stream; the status code of the answer.
fn openssl_request<S: std::io::Read + std::io::Write>(stream: &mut S) -> std::io::Result<u16> {
    stream.write_all(
        b"GET /uwv/v1/ping HTTP/1.1\r\nhost: localhost\r\ndoelbinding-purpose: test-doel\r\n\r\n",
    )?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Enough to hold the status line; bounded by the socket's read timeout.
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(first_status(&String::from_utf8_lossy(&buf)))
}

/// A TLS 1.2 client (OpenSSL) that asks to renegotiate on an established connection, for
/// instance to present another certificate: refused with a `no_renegotiation` alert (rustls
/// implements no renegotiation), so the connection's identity cannot change, and new
/// connections are served.
#[tokio::test]
async fn a_renegotiation_attempt_is_refused() {
    let (pki, _partner, gateway) = setup().await;
    let addr = gateway.local_addr;
    let (ca, crt, key) = (
        pki.path("ca.crt"),
        pki.path("consumer.crt"),
        pki.path("consumer.key"),
    );
    let outcome = tokio::task::spawn_blocking(move || {
        use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVersion};
        let mut builder = SslConnector::builder(SslMethod::tls_client()).unwrap();
        builder.set_ca_file(&ca).unwrap();
        builder.set_certificate_chain_file(&crt).unwrap();
        builder
            .set_private_key_file(&key, SslFiletype::PEM)
            .unwrap();
        builder
            .set_max_proto_version(Some(SslVersion::TLS1_2))
            .unwrap();
        let tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut stream = builder.build().connect("localhost", tcp).unwrap();
        assert_eq!(stream.ssl().version_str(), "TLSv1.2");
        let first = openssl_request(&mut stream).unwrap();
        // SAFETY: an `&SslRef` points at the `SSL` object itself (openssl's foreign-type
        // layout); the stream outlives the call.
        let asked = unsafe {
            SSL_renegotiate(stream.ssl() as *const openssl::ssl::SslRef as *mut std::ffi::c_void)
        };
        assert_eq!(asked, 1, "OpenSSL did not start a renegotiation");
        let renegotiated = stream.do_handshake();
        (first, renegotiated.map_err(|e| e.to_string()))
    })
    .await
    .unwrap();
    let (first, renegotiated) = outcome;
    assert_eq!(first, 200);
    // rustls answers the new ClientHello with a no_renegotiation alert; OpenSSL reports that
    // (and itself abandons the connection, which is its choice, not the gateway's).
    let error = renegotiated.expect_err("the renegotiation completed");
    assert!(
        error.contains("no renegotiation"),
        "not refused as a renegotiation: {error}"
    );
    assert_eq!(
        audit_records(&pki.path("audit")).len(),
        1,
        "only the first exchange"
    );
    assert_still_serving(&pki, addr.port()).await;
}

#[tokio::test]
async fn the_gateway_chooses_the_cipher_suite_not_the_client() {
    // A client that prefers ChaCha20 over AES-128 gets the gateway's preference (AES-128-GCM
    // ranks above ChaCha20 in the gateway's list; AES-256 is not offered).
    let (pki, _partner, gateway) = setup().await;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![
        rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
    ];
    let mut roots = rustls::RootCertStore::empty();
    for c in doelpoort::tls::load_certificates(&pki.path("ca.crt")).unwrap() {
        roots.add(c).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            doelpoort::tls::load_certificates(&pki.path("consumer.crt")).unwrap(),
            doelpoort::tls::load_private_key(&pki.path("consumer.key")).unwrap(),
        )
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(gateway.local_addr)
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    let suite = stream.get_ref().1.negotiated_cipher_suite().unwrap();
    assert_eq!(
        suite.suite(),
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
        "the client's order decided"
    );
}
