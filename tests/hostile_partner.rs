//! Hostile or broken chain partners: connections that fail, reset or lie about their length,
//! chunked garbage, TLS that fails or presents the wrong certificate, bodies that trickle,
//! compressed bombs and JSON bombs. The gateway verifies every partner like a caller verifies
//! the gateway, reads a partner's answer completely before anything is released, and never
//! relays what it could not check: each case ends in one problem with its code, an audit
//! record naming it, no byte of the partner's body at the caller, and a gateway that serves
//! the next exchange.
//!
//! Partner `uwv` is the broken one in each test; `svb` is a healthy partner that proves the
//! gateway still serves. Raw partners follow a script, so that a later `uwv` call shows the
//! connection pool recovered from the broken connection.

mod harness;

use bytes::Bytes;
use harness::*;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The test policy, with `uwv/ping` releasing `ok` under a response schema, and a healthy
/// second partner `svb`.
fn policy() -> String {
    test_policy_releasing_ok()
        .replace(
            "grants:\n",
            "  - id: svb\n    operations:\n      - {id: ping, method: GET, path: /v1/ping, subject: none}\ngrants:\n",
        )
        + r#"
  - id: svb-ping
    consumers: [wijkteam-test]
    operation: svb/ping
    purpose: test-doel
    without_subject: a health check about no one
    rationale: test
"#
}

const PING_SCHEMA: &str = r#"{"type":"object","properties":{
  "ok":{"type":"boolean","x-data-category":"other"},
  "geheim":{"type":"string","x-data-category":"other"}}}"#;

/// A body the partner might send: `ok` may be released, `geheim` (the marker) never.
fn marked(ok: bool) -> String {
    format!(r#"{{"ok":{ok},"geheim":"{LEAK_MARKER}"}}"#)
}

struct Setup {
    pki: TestPki,
    gateway: doelpoort::server::RunningGateway,
    _svb: doelpoort::demo::MockPartner,
}

impl Setup {
    /// A gateway whose `uwv` is at `uwv` (set up by the test on `pki`).
    async fn new(pki: TestPki, uwv: SocketAddr, response_timeout: &'static str) -> Self {
        write_policies(&pki, &policy());
        std::fs::write(pki.path("schemas/ping.json"), PING_SCHEMA).unwrap();
        let svb = start_partner(
            &pki,
            fixed(StatusCode::OK, r#"{"ok":true}"#, Duration::ZERO),
        )
        .await;
        let partners = [
            PartnerSpec {
                response_timeout,
                ..PartnerSpec::new("uwv", uwv)
            },
            PartnerSpec::new("svb", svb.addr),
        ];
        let gateway = start_gateway(&pki, &partners, "").await;
        Self {
            pki,
            gateway,
            _svb: svb,
        }
    }

    async fn ping(&self, partner: &str) -> TestResponse {
        get(
            &client(&self.pki, "consumer", Http::One),
            &url(&self.gateway, &format!("/{partner}/v1/ping")),
        )
        .await
    }

    /// The broken partner's answer is refused with `status`/`code`, recorded as an error.
    async fn assert_uwv_refused(&self, status: u16, code: &str) -> serde_json::Value {
        let response = self.ping("uwv").await;
        self.assert_error(&response, status, code)
    }

    /// `response` is a refusal with `status`/`code`, recorded as an error.
    fn assert_error(&self, response: &TestResponse, status: u16, code: &str) -> serde_json::Value {
        assert_refused(response, status, code, &self.pki.path("audit"), "error")
    }

    /// The healthy partner is served: the gateway survived.
    async fn assert_still_serving(&self) {
        let response = self.ping("svb").await;
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    }

    fn upstream_errors(&self, kind: &str) -> u64 {
        self.gateway
            .metrics
            .upstream_errors
            .with_label_values(&["uwv", kind])
            .get()
    }
}

fn head(extra: &str) -> String {
    format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{extra}\r\n")
}

#[tokio::test]
async fn a_partner_that_resets_mid_body_is_upstream_unavailable() {
    let pki = TestPki::new();
    let partial = format!("{}{}", head("content-length: 2000\r\n"), marked(true));
    let raw = start_raw_partner(
        &pki,
        "partner",
        vec![
            RawAnswer::Reset(partial.into_bytes()),
            RawAnswer::Close(raw_json_answer(r#"{"ok":true}"#)),
        ],
    )
    .await;
    let s = Setup::new(pki, raw.addr, "5s").await;
    let record = s.assert_uwv_refused(502, "upstream-unavailable").await;
    assert!(record["attributes"]["doelpoort.upstream_status"].is_null());
    assert_eq!(s.upstream_errors("protocol"), 1);
    // The next exchange with the same partner gets a fresh connection and is served.
    let response = s.ping("uwv").await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(&response.body[..], br#"{"ok":true}"#);
    assert_eq!(raw.requests.load(Ordering::SeqCst), 2);
    s.assert_still_serving().await;
}

#[tokio::test]
async fn a_partner_lying_about_its_content_length_releases_nothing_extra() {
    let pki = TestPki::new();
    // Declares 5000 bytes, sends fewer, closes: the answer was cut off.
    let short = format!("{}{}", head("content-length: 5000\r\n"), marked(true));
    // Declares 11 bytes and sends more: only the declared 11 bytes are the body.
    let long = format!(
        "{}{{\"ok\":true}}{}",
        head("content-length: 11\r\nconnection: close\r\n"),
        marked(false)
    );
    let raw = start_raw_partner(
        &pki,
        "partner",
        vec![
            RawAnswer::Close(short.into_bytes()),
            RawAnswer::Close(long.into_bytes()),
        ],
    )
    .await;
    let s = Setup::new(pki, raw.addr, "5s").await;
    s.assert_uwv_refused(502, "upstream-unavailable").await;
    assert_eq!(s.upstream_errors("protocol"), 1);
    let response = s.ping("uwv").await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(&response.body[..], br#"{"ok":true}"#);
    let tx = response.headers["fsc-transaction-id"].to_str().unwrap();
    let record = audit_record_of(&s.pki.path("audit"), tx);
    assert_eq!(
        record["attributes"]["doelpoort.fields_released"],
        serde_json::json!(["/ok"])
    );
    s.assert_still_serving().await;
}

#[tokio::test]
async fn chunked_garbage_is_upstream_unavailable() {
    let pki = TestPki::new();
    let chunked = head("transfer-encoding: chunked\r\n");
    let body = marked(true);
    let garbage = [
        // Not a hexadecimal chunk size.
        format!("{chunked}zz\r\n{body}\r\n0\r\n\r\n"),
        // A chunk size that overflows 64 bits.
        format!("{chunked}fffffffffffffffffffff\r\n{body}\r\n0\r\n\r\n"),
        // A chunk longer than its size, without the CRLF where it should be.
        format!("{chunked}4\r\n{body}\r\n0\r\n\r\n"),
        // No last chunk: the body never ends properly.
        format!("{chunked}{:x}\r\n{body}\r\n", body.len()),
        // Chunk extensions full of junk.
        format!(
            "{chunked}{:x};{}\r\n{body}\r\n0\r\n\r\n",
            body.len(),
            "x".repeat(70_000)
        ),
    ];
    let mut script: Vec<RawAnswer> = garbage
        .iter()
        .map(|g| RawAnswer::Close(g.clone().into_bytes()))
        .collect();
    script.push(RawAnswer::Close(raw_json_answer(r#"{"ok":true}"#)));
    let raw = start_raw_partner(&pki, "partner", script).await;
    let s = Setup::new(pki, raw.addr, "5s").await;
    for _ in &garbage {
        s.assert_uwv_refused(502, "upstream-unavailable").await;
    }
    assert_eq!(s.upstream_errors("protocol"), garbage.len() as u64);
    assert_eq!(s.ping("uwv").await.status, StatusCode::OK);
    s.assert_still_serving().await;
}

/// `response_timeout` bounds the whole answer, not each read: a body that keeps coming, one
/// byte every 100 ms (about 4.5 s in all), is cut off at the timeout; so is one that stops half-way.
#[tokio::test]
async fn a_body_that_trickles_past_the_response_timeout_is_upstream_timeout() {
    let pki = TestPki::new();
    let trickled = marked(true).into_bytes();
    let trickle_head = head(&format!("content-length: {}\r\n", trickled.len()));
    let partial = format!("{}{{\"ok\":", head("content-length: 1000\r\n"));
    let raw = start_raw_partner(
        &pki,
        "partner",
        vec![
            RawAnswer::Trickle(
                trickle_head.into_bytes(),
                trickled,
                Duration::from_millis(100),
            ),
            RawAnswer::Hang(partial.into_bytes(), Duration::from_secs(10)),
            RawAnswer::Close(raw_json_answer(r#"{"ok":true}"#)),
        ],
    )
    .await;
    let s = Setup::new(pki, raw.addr, "500ms").await;
    for case in ["trickling", "stopped half-way"] {
        let started = std::time::Instant::now();
        s.assert_uwv_refused(504, "upstream-timeout").await;
        // At the timeout: not before it, and before the trickle would have ended (4.5 s);
        // generous for a loaded machine.
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(500) && elapsed < Duration::from_secs(5),
            "{case}: answered after {elapsed:?}, response_timeout is 500 ms"
        );
    }
    assert_eq!(s.upstream_errors("timeout"), 2);
    assert_eq!(s.ping("uwv").await.status, StatusCode::OK);
    s.assert_still_serving().await;
}

#[tokio::test]
async fn a_partner_that_does_not_speak_tls_is_upstream_unavailable() {
    let pki = TestPki::new();
    let answer: &'static [u8] = Box::leak(
        String::from_utf8(raw_json_answer(&marked(true)))
            .unwrap()
            .into_bytes()
            .into_boxed_slice(),
    );
    let (addr, connections) = start_plain_listener(answer).await;
    let s = Setup::new(pki, addr, "5s").await;
    s.assert_uwv_refused(502, "upstream-unavailable").await;
    assert_eq!(s.upstream_errors("connect"), 1);
    assert!(connections.load(Ordering::SeqCst) >= 1);
    s.assert_still_serving().await;
}

#[tokio::test]
async fn a_partner_that_refuses_the_gateways_certificate_is_upstream_unavailable() {
    let pki = TestPki::new();
    // The partner trusts another CA for its clients, so the gateway's certificate fails there.
    let tls = doelpoort::demo::mock_partner_tls(
        &pki.path("partner.crt"),
        &pki.path("partner.key"),
        &pki.path("rogue.crt"),
    )
    .unwrap();
    let (handler, recorded) = recording(fixed(StatusCode::OK, r#"{"ok":true}"#, Duration::ZERO));
    let partner = doelpoort::demo::MockPartner::start(([127, 0, 0, 1], 0).into(), tls, handler)
        .await
        .unwrap();
    let s = Setup::new(pki, partner.addr, "5s").await;
    s.assert_uwv_refused(502, "upstream-unavailable").await;
    assert_eq!(
        s.upstream_errors("connect") + s.upstream_errors("protocol"),
        1
    );
    assert_eq!(recorded.count(), 0);
    s.assert_still_serving().await;
}

/// The gateway verifies partners: a certificate for another name, for clients only, with a key
/// that may not sign, self-signed, or expired is refused in the handshake and the request is
/// never sent. The positive control: an unbent `Mint::partner()` certificate is accepted, so
/// each refusal is caused by the one thing its case bends.
#[tokio::test]
async fn wrong_partner_certificates_are_refused() {
    let pki = TestPki::new();
    mint(&pki, "partner-minted-control", &Mint::partner());
    mint(
        &pki,
        "partner-other-name",
        &Mint {
            dns_names: &["uwv.other.example"],
            loopback_ip: false,
            ..Mint::partner()
        },
    );
    mint(
        &pki,
        "partner-client-only",
        &Mint {
            extended_key_usage: &["clientAuth"],
            ..Mint::partner()
        },
    );
    mint(
        &pki,
        "partner-key-cert-sign",
        &Mint {
            key_usage: &["keyCertSign"],
            ..Mint::partner()
        },
    );
    mint(
        &pki,
        "partner-self-signed",
        &Mint {
            self_signed: true,
            ..Mint::partner()
        },
    );
    let ca = doelpoort::pki::CertificateAuthority::load(&pki.path("ca.crt"), &pki.path("ca.key"))
        .unwrap();
    let mut expired = doelpoort::pki::LeafSpec::new("uwv", doelpoort::pki::Usage::Server, 30);
    expired.dns_names = vec!["localhost".into()];
    expired.ip_addresses = vec![std::net::Ipv4Addr::LOCALHOST.into()];
    expired.not_before = doelpoort::clock::unix_now() - 10 * 86_400;
    expired.not_after = doelpoort::clock::unix_now() - 86_400;
    ca.issue(&expired)
        .unwrap()
        .write(pki.dir.path(), "partner-expired")
        .unwrap();

    let mut partners = Vec::new();
    for stem in [
        "partner-minted-control",
        "partner-other-name",
        "partner-client-only",
        "partner-key-cert-sign",
        "partner-self-signed",
        "partner-expired",
        "rogue-partner",
    ] {
        let (handler, recorded) = recording(fixed(
            StatusCode::OK,
            Box::leak(marked(true).into_boxed_str()),
            Duration::ZERO,
        ));
        partners.push((
            stem,
            start_partner_with_cert(&pki, stem, handler).await,
            recorded,
        ));
    }
    // One gateway per certificate (a partner has one address); each refuses its partner.
    let pki = Arc::new(pki);
    for (stem, partner, recorded) in &partners {
        let pki_dir = tempfile::tempdir().unwrap();
        copy_dir(pki.dir.path(), pki_dir.path());
        let own = TestPki { dir: pki_dir };
        let s = Setup::new(own, partner.addr, "5s").await;
        if *stem == "partner-minted-control" {
            let response = s.ping("uwv").await;
            assert_eq!(
                response.status,
                StatusCode::OK,
                "an unmodified minted partner certificate is refused: {:?}",
                response.body
            );
            assert_eq!(&response.body[..], br#"{"ok":true}"#, "{stem}");
            assert_eq!(recorded.count(), 1, "{stem}");
            continue;
        }
        s.assert_uwv_refused(502, "upstream-unavailable").await;
        assert_eq!(s.upstream_errors("connect"), 1, "{stem}");
        assert_eq!(recorded.count(), 0, "{stem}: the request was sent");
        s.assert_still_serving().await;
    }
}

/// A partner that ignores `Accept-Encoding: identity` and sends a gzip bomb: the gateway
/// never inflates it, so it is not JSON and nothing is released. A bomb inflates to invalid
/// JSON, so inflating would refuse it too; the proof that nothing is inflated is a small gzip
/// of a valid answer (`{"ok":true}`), which is refused all the same. Likewise for requests.
#[tokio::test]
async fn a_gzip_bomb_from_a_partner_is_never_inflated() {
    let pki = TestPki::new();
    let bomb = Bytes::from(gzip_bomb(16 << 20));
    assert!(bomb.len() < 200 * 1024, "{}", bomb.len());
    let valid_answer = Bytes::from(gzip_stored(br#"{"ok":true}"#));
    // The bomb, then the gzip of a valid answer, then (for the control below) plain JSON.
    let served = [
        (bomb.clone(), true),
        (valid_answer, true),
        (Bytes::from_static(br#"{"ok":true}"#), false),
    ];
    let next = Arc::new(AtomicUsize::new(0));
    let handler: doelpoort::demo::MockHandler = Arc::new(move |_req| {
        let (body, gzipped) = served[next.fetch_add(1, Ordering::SeqCst).min(2)].clone();
        Box::pin(async move {
            let mut r = Response::new(Full::new(body));
            r.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            if gzipped {
                r.headers_mut()
                    .insert("content-encoding", "gzip".parse().unwrap());
            }
            r
        })
    });
    let (handler, recorded) = recording(handler);
    let partner = start_partner(&pki, handler).await;
    let s = Setup::new(pki, partner.addr, "5s").await;
    for what in ["bomb", "gzip of a valid answer"] {
        let response = s.ping("uwv").await;
        assert!(!response.headers.contains_key("content-encoding"), "{what}");
        s.assert_error(&response, 502, "minimisation-failed");
        assert_eq!(
            recorded.last().headers["accept-encoding"],
            "identity",
            "{what}"
        );
    }
    // The caller's side: a compressed request body is not inflated either (not even a valid
    // one the grant would allow), and the header that names it is not forwarded.
    let valid_request = Bytes::from(gzip_stored(br#"{"a":1}"#));
    for body in [bomb, valid_request] {
        let request = Request::post(url(&s.gateway, "/uwv/v1/x"))
            .header("doelbinding-purpose", TEST_PURPOSE)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(Full::new(body))
            .unwrap();
        let response = send(&client(&s.pki, "consumer", Http::One), request).await;
        assert_refused(
            &response,
            400,
            "context-invalid",
            &s.pki.path("audit"),
            "deny",
        );
    }
    assert_eq!(recorded.count(), 2);
    // The control: the same request uncompressed is allowed and forwarded.
    let request = Request::post(url(&s.gateway, "/uwv/v1/x"))
        .header("doelbinding-purpose", TEST_PURPOSE)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"a":1}"#)))
        .unwrap();
    let response = send(&client(&s.pki, "consumer", Http::One), request).await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    assert_eq!(recorded.count(), 3);
    assert_eq!(&recorded.last().body[..], br#"{"a":1}"#);
    s.assert_still_serving().await;
}

/// CRC-32 (IEEE, as gzip uses it) of `data`.
fn crc32(data: impl IntoIterator<Item = u8>) -> u32 {
    let mut table = [0u32; 256];
    for (i, entry) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *entry = c;
    }
    let mut crc = !0u32;
    for byte in data {
        crc = table[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// A valid gzip of `data` (less than 64 KiB) in one stored (uncompressed) deflate block.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).unwrap();
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.push(1); // BFINAL, BTYPE = 00 (stored), padded to the byte
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(data.iter().copied()).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// gzip of `size` bytes of `[`: deflate with fixed Huffman codes, one literal followed by
/// (length 258, distance 1) copies, about 160:1.
fn gzip_bomb(size: usize) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u32,
        n: u32,
    }
    impl Bits {
        fn put(&mut self, value: u32, count: u32) {
            // Deflate packs bits LSB first; Huffman codes are written MSB first.
            self.acc |= value << self.n;
            self.n += count;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        fn code(&mut self, code: u32, len: u32) {
            let reversed = code.reverse_bits() >> (32 - len);
            self.put(reversed, len);
        }
    }
    let mut bits = Bits {
        out: vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff],
        acc: 0,
        n: 0,
    };
    bits.put(1, 1); // BFINAL
    bits.put(1, 2); // BTYPE = 01, fixed Huffman
                    // Literal '[' (0x5b): literals 0-143 are 8-bit codes 0x30 + value.
    bits.code(0x30 + 0x5b, 8);
    let mut left = size - 1;
    while left >= 258 {
        bits.code(0b1100_0101, 8); // length code 285 (258 bytes): 280-287 are 0xc0 + n
        bits.code(0, 5); // distance code 0 (distance 1)
        left -= 258;
    }
    for _ in 0..left {
        bits.code(0x30 + 0x5b, 8);
    }
    bits.code(0, 7); // end of block (256)
    if bits.n > 0 {
        bits.out.push(bits.acc as u8);
    }
    // Trailer: CRC-32 and length of the uncompressed data.
    bits.out
        .extend_from_slice(&crc32(std::iter::repeat_n(b'[', size)).to_le_bytes());
    bits.out.extend_from_slice(&(size as u32).to_le_bytes());
    bits.out
}

/// A partner that answers the n-th request with `bodies[n]` (the last one after that).
fn scripted(bodies: Vec<String>) -> doelpoort::demo::MockHandler {
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    Arc::new(move |_req| {
        let n = next.fetch_add(1, Ordering::SeqCst);
        let body = bodies[n.min(bodies.len() - 1)].clone();
        Box::pin(async move {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            r
        })
    })
}

/// JSON built to exhaust or confuse a parser: refused whole (`minimisation-failed`), never
/// released in part, whether it comes from the partner or (as a request body) from the caller.
#[tokio::test]
async fn json_bombs_are_refused_whole() {
    let pki = TestPki::new();
    let deep = format!(
        r#"{{"ok":true,"geheim":"{LEAK_MARKER}","x":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let deep_objects = format!(
        r#"{{"ok":true,"geheim":"{LEAK_MARKER}","x":{}1{}}}"#,
        r#"{"a":"#.repeat(50_000),
        "}".repeat(50_000)
    );
    let bombs = vec![
        ("deep arrays", deep),
        ("deep objects", deep_objects),
        (
            "huge exponent",
            format!(r#"{{"ok":true,"geheim":"{LEAK_MARKER}","n":1e999999}}"#),
        ),
        (
            "long integer",
            format!(
                r#"{{"ok":true,"geheim":"{LEAK_MARKER}","n":{}}}"#,
                "9".repeat(100_000)
            ),
        ),
        (
            "duplicate key",
            format!(r#"{{"ok":false,"ok":true,"geheim":"{LEAK_MARKER}"}}"#),
        ),
        (
            "escaped duplicate key",
            format!(r#"{{"ok":false,"\u006fk":true,"geheim":"{LEAK_MARKER}"}}"#),
        ),
        (
            "trailing data",
            format!(r#"{{"ok":true}} {{"geheim":"{LEAK_MARKER}"}}"#),
        ),
        (
            "NaN",
            format!(r#"{{"ok":true,"geheim":"{LEAK_MARKER}","n":NaN}}"#),
        ),
        (
            "lone surrogate",
            format!(r#"{{"ok":true,"geheim":"{LEAK_MARKER}\ud800"}}"#),
        ),
    ];
    let mut bodies: Vec<String> = bombs.iter().map(|(_, b)| b.clone()).collect();
    bodies.push(r#"{"ok":true}"#.to_string());
    let partner = start_partner(&pki, scripted(bodies)).await;
    let s = Setup::new(pki, partner.addr, "5s").await;
    for _ in &bombs {
        let response = s.ping("uwv").await;
        s.assert_error(&response, 502, "minimisation-failed");
    }
    assert_eq!(s.ping("uwv").await.status, StatusCode::OK);

    // The same bombs as request bodies (the grant allows field `a`).
    let client = client(&s.pki, "consumer", Http::One);
    for (what, body) in &bombs {
        let body = body
            .replace("\"ok\"", "\"a\"")
            .replace("\\u006fk", "\\u0061");
        let request = Request::post(url(&s.gateway, "/uwv/v1/x"))
            .header("doelbinding-purpose", TEST_PURPOSE)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = send(&client, request).await;
        let record = assert_refused(
            &response,
            400,
            "context-invalid",
            &s.pki.path("audit"),
            "deny",
        );
        assert!(
            record["attributes"]["doelpoort.grant"] == "test-upload",
            "{what}: {record}"
        );
    }
    s.assert_still_serving().await;
}

/// Answers a partner should not give: a redirect (never followed), an upgrade, a status line
/// that is not HTTP, too many header fields, an unknown status class. None is relayed: each
/// is `502 upstream-unavailable`, and a host named in a `Location` is never contacted.
#[tokio::test]
async fn odd_partner_answers_are_refused_and_never_followed() {
    let pki = TestPki::new();
    let (trap, trapped) = start_plain_listener(b"HTTP/1.1 200 OK\r\n\r\n").await;
    let body = marked(true);
    let with_body = |status_line: &str, extra: &str| {
        format!(
            "{status_line}\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let mut many_headers = String::new();
    for i in 0..200 {
        many_headers.push_str(&format!("x-h{i}: 1\r\n"));
    }
    let odd = [
        (
            "redirect",
            with_body(
                "HTTP/1.1 302 Found",
                &format!("location: https://127.0.0.1:{}/v1/ping\r\n", trap.port()),
            ),
        ),
        (
            "permanent redirect",
            with_body(
                "HTTP/1.1 308 Permanent Redirect",
                &format!("location: https://127.0.0.1:{}/v1/ping\r\n", trap.port()),
            ),
        ),
        (
            "upgrade",
            format!("HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n{body}"),
        ),
        ("not HTTP", format!("HTTP/1.1 2OO OK\r\n\r\n{body}")),
        ("too many header fields", with_body("HTTP/1.1 200 OK", &many_headers)),
        ("unknown status class", with_body("HTTP/1.1 600 Odd", "")),
    ];
    let mut script: Vec<RawAnswer> = odd
        .iter()
        .map(|(_, bytes)| RawAnswer::Close(bytes.clone().into_bytes()))
        .collect();
    script.push(RawAnswer::Close(raw_json_answer(r#"{"ok":true}"#)));
    let raw = start_raw_partner(&pki, "partner", script).await;
    let s = Setup::new(pki, raw.addr, "5s").await;
    for (what, _) in &odd {
        let response = s.ping("uwv").await;
        assert!(!response.headers.contains_key("location"), "{what}");
        s.assert_error(&response, 502, "upstream-unavailable");
    }
    assert_eq!(trapped.load(Ordering::SeqCst), 0, "a redirect was followed");
    assert_eq!(s.ping("uwv").await.status, StatusCode::OK);
    s.assert_still_serving().await;
}

/// A partner behind a schema that leaves an object open keys members by a diagnosis, by a BSN
/// written with spaces or in full-width digits, by a control character, and sends thousands
/// of distinct keys besides: the record names the declared fields and one `*` for everything
/// undeclared — none of the partner's text, and a record that does not grow with the answer
/// (found by an outside attack on the field lists, 2026-12-05).
#[tokio::test]
async fn an_open_object_s_keys_never_reach_the_record() {
    let pki = TestPki::new();
    let mut answer = serde_json::Map::new();
    answer.insert("ok".into(), serde_json::json!(true));
    answer.insert("geheim".into(), serde_json::json!(LEAK_MARKER));
    for hostile in [
        "Fictieve diagnose depressie",
        "999 990 019",
        "９９９９９００１９",
        "\u{0}",
        "a\u{202e}b",
    ] {
        answer.insert(hostile.into(), serde_json::json!(1));
    }
    for k in 0..2_000 {
        answer.insert(format!("k{k}"), serde_json::json!(k));
    }
    let body: &'static str = Box::leak(serde_json::to_string(&answer).unwrap().into_boxed_str());
    let partner = start_partner(&pki, fixed(StatusCode::OK, body, Duration::ZERO)).await;
    let s = Setup::new(pki, partner.addr, "5s").await;
    let response = s.ping("uwv").await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    assert_eq!(response.json(), serde_json::json!({"ok": true}));
    let tx = response.headers["fsc-transaction-id"].to_str().unwrap();
    let record = audit_record_of(&s.pki.path("audit"), tx);
    let mut withheld: Vec<String> =
        serde_json::from_value(record["attributes"]["doelpoort.fields_withheld"].clone()).unwrap();
    withheld.sort();
    assert_eq!(withheld, ["/*", "/geheim"], "{record}");
    assert_eq!(
        record["attributes"]["doelpoort.fields_released"],
        serde_json::json!(["/ok"])
    );
    let line = record.to_string();
    assert!(line.len() < 3_000, "a record of {} bytes", line.len());
    for text in ["diagnose", "999 990", "９", "\\u0000", "\u{202e}", "k1999"] {
        assert!(!line.contains(text), "{text} in {line}");
    }
    // Every value withheld is still counted (the geheim member and the 2,005 others).
    let values = s
        .gateway
        .metrics
        .fields_withheld
        .with_label_values(&["uwv", "ping", "test-doel"])
        .get();
    assert_eq!(values, 2_006);
    s.assert_still_serving().await;
}
