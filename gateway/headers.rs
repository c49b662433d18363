//! The header vocabulary: the names Doelpoort reads from callers and writes to partners and
//! callers (SPEC §2), and which of the other side's headers may cross at all.
//!
//! Headers cross the gateway by allow-list in both directions: hop-by-hop headers, cookies,
//! `Server`, credentials and anything else not listed here never reach the other organisation.
//! The caller's `Doelbinding-*` context headers are read in [`crate::context`].

use http::header::{self, HeaderName, HeaderValue};
use uuid::Uuid;

/// The FSC transaction id: on every forwarded request and every response.
pub const FSC_TRANSACTION_ID: HeaderName = HeaderName::from_static("fsc-transaction-id");
/// W3C trace context: continued from the caller, or started.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// The consumer's OIN, for the partner.
pub const DOELBINDING_REQUESTER: HeaderName = HeaderName::from_static("doelbinding-requester");
pub const DOELBINDING_PURPOSE: HeaderName = HeaderName::from_static("doelbinding-purpose");
pub const DOELBINDING_LEGAL_BASIS: HeaderName = HeaderName::from_static("doelbinding-legal-basis");
pub const DOELBINDING_PROCESSING_ACTIVITY: HeaderName =
    HeaderName::from_static("doelbinding-processing-activity");
/// The gateway's signed statement of the exchange context (see [`crate::assertion`]).
pub const DOELBINDING_ASSERTION: HeaderName = HeaderName::from_static("doelbinding-assertion");

/// Caller headers a partner may see (everything else is dropped).
pub const FORWARDED_REQUEST_HEADERS: &[HeaderName] = &[header::ACCEPT, header::CONTENT_TYPE];

/// Partner headers a caller may see (everything else is dropped, e.g. `Server`,
/// `X-Powered-By`, `Set-Cookie`, `Via`). `ETag` is dropped too: it names the partner's full
/// representation, not the minimised one the caller gets.
pub const RELEASED_RESPONSE_HEADERS: &[HeaderName] = &[
    header::CACHE_CONTROL,
    header::LAST_MODIFIED,
    header::EXPIRES,
    header::CONTENT_LANGUAGE,
];

/// A transaction id as a header value (hyphenated, lower case).
pub fn transaction_id(id: Uuid) -> HeaderValue {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = id.hyphenated().encode_lower(&mut buf);
    // A hyphenated UUID is always a valid header value.
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}
