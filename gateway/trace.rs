//! W3C Trace Context (`traceparent`) and the FSC transaction id.
//!
//! Each exchange continues the caller's trace when it sends a valid `traceparent`, or starts
//! a new one; the gateway's own hop gets a fresh span id, which is what it forwards to the
//! partner and returns to the caller. The transaction id is a UUIDv7 (time-ordered), so audit
//! records sort by time on it too. An invalid `traceparent` is replaced, not refused: tracing
//! is a diagnostic aid, not part of the lawful-basis context.

use http::HeaderValue;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    /// The caller's span, when it sent one.
    pub parent_span_id: Option<[u8; 8]>,
    /// This gateway hop.
    pub span_id: [u8; 8],
    pub sampled: bool,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    // uuid's fast-rng is a CSPRNG-seeded generator; ids need not be secret, only unique.
    let mut out = [0u8; N];
    let mut filled = 0;
    while filled < N {
        let chunk = Uuid::new_v4().into_bytes();
        let n = (N - filled).min(chunk.len());
        out[filled..filled + n].copy_from_slice(&chunk[..n]);
        filled += n;
    }
    out
}

impl TraceContext {
    /// Continues `incoming` (a `traceparent` value) if it is valid, else starts a new trace.
    pub fn continue_or_start(incoming: Option<&HeaderValue>) -> Self {
        let span_id = random_bytes::<8>();
        // A caller's ids that look like they carry a BSN are not continued: they would be
        // stored in the audit record and the access log as sent.
        // A parsed value is `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`: the ids
        // are screened as the caller wrote them, without encoding them again.
        let screened = incoming
            .and_then(|v| Some((parse(v.as_bytes())?, v.to_str().ok()?)))
            .filter(|(_, text)| {
                !crate::context::holds_bsn(&text[3..35])
                    && !crate::context::holds_bsn(&text[36..52])
            })
            .map(|(ids, _)| ids);
        if let Some((trace_id, parent, flags)) = screened {
            return Self {
                trace_id,
                parent_span_id: Some(parent),
                span_id,
                sampled: flags & 1 == 1,
            };
        }
        Self {
            trace_id: random_bytes::<16>(),
            parent_span_id: None,
            span_id,
            sampled: false,
        }
    }

    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }

    pub fn span_id_hex(&self) -> String {
        hex::encode(self.span_id)
    }

    /// The `traceparent` for this hop.
    pub fn header_value(&self) -> HeaderValue {
        let text = format!(
            "00-{}-{}-{:02x}",
            self.trace_id_hex(),
            self.span_id_hex(),
            u8::from(self.sampled)
        );
        // Only hex digits and dashes: always a valid header value.
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("00-0-0-00"))
    }
}

/// A `traceparent`: `<version>-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
///
/// Version `00` is exactly that (55 bytes). A higher version is read as far as version `00`
/// defines it (W3C Trace Context §3.2.4, forward compatibility): at least 55 bytes, and
/// whatever a later version appends must start with a dash. Version `ff` is invalid.
fn parse(v: &[u8]) -> Option<([u8; 16], [u8; 8], u8)> {
    let lower_hex = |s: &[u8]| {
        s.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    if v.len() < 55 || !lower_hex(&v[0..2]) || &v[0..2] == b"ff" {
        return None;
    }
    let fits = match &v[0..2] {
        b"00" => v.len() == 55,
        _ => v.len() == 55 || v[55] == b'-',
    };
    if !fits || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    if !lower_hex(&v[3..35]) || !lower_hex(&v[36..52]) || !lower_hex(&v[53..55]) {
        return None;
    }
    let mut trace = [0u8; 16];
    let mut span = [0u8; 8];
    hex::decode_to_slice(&v[3..35], &mut trace).ok()?;
    hex::decode_to_slice(&v[36..52], &mut span).ok()?;
    let mut flags = [0u8; 1];
    hex::decode_to_slice(&v[53..55], &mut flags).ok()?;
    // All-zero ids are invalid per the specification.
    if trace == [0; 16] || span == [0; 8] {
        return None;
    }
    Some((trace, span, flags[0]))
}

/// The `tracestate` header name (W3C Trace Context).
pub const TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");

/// The caller's `tracestate`, to pass on with a continued trace (W3C Trace Context §3.3: a
/// vendor that continues a trace MUST propagate it). Several header lines are one list. It is
/// passed on only when every member is well formed (`key=value`, keys unique, at most 32
/// members and 512 bytes) and nothing in it could be a BSN; otherwise it is dropped whole, as
/// the specification asks of a list that cannot be parsed.
pub fn tracestate(headers: &http::HeaderMap) -> Option<HeaderValue> {
    let mut parts = Vec::new();
    for value in headers.get_all(TRACESTATE) {
        parts.push(value.to_str().ok()?);
    }
    let joined = parts.join(",");
    if joined.trim().is_empty() || joined.len() > 512 || crate::context::holds_bsn(&joined) {
        return None;
    }
    let mut keys = Vec::new();
    for member in joined.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let (key, value) = member.split_once('=')?;
        let key_ok = !key.is_empty()
            && key.len() <= 256
            && key
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-*/@".contains(&b));
        let value_ok = !value.is_empty()
            && value.len() <= 256
            && value
                .bytes()
                .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
            && !value.ends_with(' ');
        if !key_ok || !value_ok || keys.contains(&key) {
            return None;
        }
        keys.push(key);
    }
    if keys.is_empty() || keys.len() > 32 {
        return None;
    }
    HeaderValue::from_str(&joined).ok()
}

/// A new FSC transaction id (UUIDv7, time-ordered).
pub fn new_transaction_id() -> Uuid {
    Uuid::now_v7()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_a_valid_trace() {
        let incoming =
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let ctx = TraceContext::continue_or_start(Some(&incoming));
        assert_eq!(ctx.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            ctx.parent_span_id,
            Some(*b"\x00\xf0\x67\xaa\x0b\xa9\x02\xb7")
        );
        assert_ne!(ctx.span_id_hex(), "00f067aa0ba902b7");
        assert!(ctx.sampled);
        let out = ctx.header_value();
        assert!(out
            .to_str()
            .unwrap()
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(out.to_str().unwrap().ends_with("-01"));
    }

    #[test]
    fn replaces_a_trace_that_embeds_a_bsn() {
        for carrying in [
            "00-aaaaaaaaaaa999990019aaaaaaaaaaaa-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-a999990019aaaaaa-01",
            "00-00000000000000000000000999990019-b7ad6b7169203331-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000999990019-01",
        ] {
            let ctx = TraceContext::continue_or_start(Some(&HeaderValue::from_static(carrying)));
            assert!(ctx.parent_span_id.is_none(), "{carrying}");
            assert!(!ctx.trace_id_hex().contains("999990019"), "{carrying}");
        }
    }

    #[test]
    fn replaces_invalid_traces() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let ctx = TraceContext::continue_or_start(Some(&HeaderValue::from_static(bad)));
            assert_eq!(ctx.parent_span_id, None, "{bad}");
            assert_ne!(ctx.trace_id, [0; 16]);
        }
    }

    #[test]
    fn later_versions_are_read_as_far_as_version_00_goes() {
        for later in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-adds",
        ] {
            let ctx = TraceContext::continue_or_start(Some(&HeaderValue::from_static(later)));
            assert_eq!(
                ctx.trace_id_hex(),
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "{later}"
            );
            assert!(ctx.sampled && ctx.parent_span_id.is_some(), "{later}");
            // The gateway speaks the version it knows.
            assert!(ctx.header_value().to_str().unwrap().starts_with("00-"));
        }
        for bad in [
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            let ctx = TraceContext::continue_or_start(Some(&HeaderValue::from_static(bad)));
            assert_eq!(ctx.parent_span_id, None, "{bad}");
        }
    }

    #[test]
    fn tracestate_is_kept_only_when_well_formed_and_free_of_bsns() {
        let keep = |values: &[&'static str]| {
            let mut headers = http::HeaderMap::new();
            for v in values {
                headers.append(TRACESTATE, HeaderValue::from_static(v));
            }
            tracestate(&headers).map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(
            keep(&["congo=t61rcWkgMzE"]).as_deref(),
            Some("congo=t61rcWkgMzE")
        );
        assert_eq!(
            keep(&[
                "rojo=00f067aa0ba902b7",
                "congo=t61rcWkgMzE, fw529a3039@dt=abc"
            ])
            .as_deref(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE, fw529a3039@dt=abc")
        );
        assert_eq!(keep(&[]), None);
        for bad in [
            "Rojo=1",
            "rojo",
            "rojo=a=b",
            "rojo=999990019",
            "rojo=1,rojo=2",
            "rojo=",
        ] {
            assert_eq!(keep(&[bad]), None, "{bad}");
        }
        let long = format!("a={}", "x".repeat(600));
        let mut headers = http::HeaderMap::new();
        headers.insert(TRACESTATE, HeaderValue::from_str(&long).unwrap());
        assert_eq!(tracestate(&headers), None, "over 512 bytes");
    }

    #[test]
    fn transaction_ids_are_v7() {
        assert_eq!(new_transaction_id().get_version_num(), 7);
    }
}
