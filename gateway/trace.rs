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

fn parse(v: &[u8]) -> Option<([u8; 16], [u8; 8], u8)> {
    // version "00" has exactly 55 bytes: 00-<32 hex>-<16 hex>-<2 hex>
    if v.len() != 55 || &v[0..3] != b"00-" || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let lower_hex = |s: &[u8]| {
        s.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
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
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let ctx = TraceContext::continue_or_start(Some(&HeaderValue::from_static(bad)));
            assert_eq!(ctx.parent_span_id, None, "{bad}");
            assert_ne!(ctx.trace_id, [0; 16]);
        }
    }

    #[test]
    fn transaction_ids_are_v7() {
        assert_eq!(new_transaction_id().get_version_num(), 7);
    }
}
