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

/// An inway's report to the outway: the field paths the provider released and withheld
/// (array positions as `*`), so the consumer side's record can say what left the provider.
pub const DOELBINDING_FIELDS_RELEASED: HeaderName =
    HeaderName::from_static("doelbinding-fields-released");
pub const DOELBINDING_FIELDS_WITHHELD: HeaderName =
    HeaderName::from_static("doelbinding-fields-withheld");

/// What the partner is told about the body: the gateway rebuilt it as UTF-8 JSON, so it
/// says so itself instead of relaying the caller's `Content-Type` (a `charset=utf-7` would let
/// partner and gateway read the same bytes differently) or `Accept`.
pub const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Partner headers a caller may see, each only with a value of its own well-defined form:
/// everything else is dropped (`Server`, `X-Powered-By`, `Set-Cookie`, `Via`, free text).
/// `ETag` is dropped too: it names the partner's full representation, not the minimised one
/// the caller gets. `Cache-Control` and `Expires` are not relayed: the gateway says
/// `Cache-Control: no-store` itself on every released answer (personal data is not cached).
///
/// `API-Version` (NL API Design Rules, /core/version-header) tells the caller which version of
/// the partner's API answered: a semantic version, nothing else.
pub static RELEASED_RESPONSE_HEADERS: [HeaderName; 3] =
    [header::LAST_MODIFIED, header::CONTENT_LANGUAGE, API_VERSION];

/// The partner API's version (NL API Design Rules), relayed when it is a semantic version.
pub const API_VERSION: HeaderName = HeaderName::from_static("api-version");

/// The gateway's own caching rule for a released answer.
pub const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// Whether a partner's value for one of [`RELEASED_RESPONSE_HEADERS`] has the form that header
/// defines, and nothing else: an HTTP-date (IMF-fixdate, RFC 9110 §5.6.7) for `Last-Modified`,
/// language tags for `Content-Language`. A value that does not fit is dropped, never repaired.
pub fn is_releasable(name: &HeaderName, value: &HeaderValue) -> bool {
    let Ok(text) = value.to_str() else {
        return false;
    };
    if name == header::LAST_MODIFIED {
        let imf_fixdate = time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        );
        time::PrimitiveDateTime::parse(text, imf_fixdate).is_ok()
    } else if name == header::CONTENT_LANGUAGE {
        // `nl`, `nl-NL`, `en, nl`: alphabetic primary subtag, alphanumeric subtags, at most
        // 8 characters each (RFC 5646's shape, without its registry).
        text.len() <= 64
            && text.split(',').map(str::trim).all(|tag| {
                let mut subtags = tag.split('-');
                subtags.next().is_some_and(|primary| {
                    (1..=8).contains(&primary.len())
                        && primary.bytes().all(|b| b.is_ascii_alphabetic())
                }) && subtags.all(|sub| {
                    (1..=8).contains(&sub.len()) && sub.bytes().all(|b| b.is_ascii_alphanumeric())
                })
            })
    } else if name == API_VERSION {
        is_semantic_version(text)
    } else {
        false
    }
}

/// `1.0.2`, `2.1.0-rc.1`: MAJOR.MINOR.PATCH with an optional pre-release, at most 32
/// characters. (Whether a released value could hold a BSN is the release phase's check.)
fn is_semantic_version(text: &str) -> bool {
    let (core, pre) = match text.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (text, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    text.len() <= 32
        && numbers.len() == 3
        && numbers
            .iter()
            .all(|n| !n.is_empty() && n.len() <= 6 && n.bytes().all(|b| b.is_ascii_digit()))
        && pre.is_none_or(|p| {
            !p.is_empty()
                && p.split('.').all(|id| {
                    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        })
}

/// The security headers of every answer the gateway gives, on the data and the admin listener
/// (NL API Design Rules, /core/transport/security-headers): nothing it answers may be cached,
/// framed, sniffed into another type, or run as a page. `Strict-Transport-Security` only
/// where the answer travels over TLS.
pub fn secure(headers: &mut http::HeaderMap, over_tls: bool) {
    headers.insert(header::CACHE_CONTROL, NO_STORE);
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if over_tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
}

/// A transaction id as a header value (hyphenated, lower case).
pub fn transaction_id(id: Uuid) -> HeaderValue {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = id.hyphenated().encode_lower(&mut buf);
    // A hyphenated UUID is always a valid header value.
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// An answer of the gateway's own with this status, content type and body.
pub fn answer(
    status: http::StatusCode,
    content_type: &'static str,
    body: impl Into<bytes::Bytes>,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    let mut response = http::Response::new(http_body_util::Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON answer the gateway makes itself (never cached: it may describe people or cases).
pub fn json_answer(
    status: http::StatusCode,
    body: &serde_json::Value,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    let bytes = serde_json::to_vec_pretty(body).unwrap_or_default();
    let mut response = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, JSON);
    response
        .headers_mut()
        .insert(http::header::CACHE_CONTROL, NO_STORE);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_values_are_releasable() {
        let lm = header::LAST_MODIFIED;
        let cl = header::CONTENT_LANGUAGE;
        let ok =
            |name: &HeaderName, v: &'static str| is_releasable(name, &HeaderValue::from_static(v));
        assert!(ok(&lm, "Sun, 06 Nov 1994 08:49:37 GMT"));
        assert!(!ok(&lm, "Sun, 06 Nov 1994 08:49:37 GMT; bsn=999990019"));
        assert!(!ok(&lm, "gisteren"));
        assert!(ok(&cl, "nl"));
        assert!(ok(&cl, "nl-NL, en"));
        assert!(!ok(&cl, "nl; 999990019"));
        assert!(!ok(&cl, "persoon-999990019"));
        assert!(!ok(&cl, ""));
        assert!(!ok(&header::CACHE_CONTROL, "no-store"));
        let av = API_VERSION;
        assert!(ok(&av, "1.0.2"));
        assert!(ok(&av, "2.1.0-rc.1"));
        for bad in ["1.0", "v1.0.0", "1.0.0 ", "1.0.0; x", "1.0.0-", "1..0"] {
            assert!(!ok(&av, bad), "{bad}");
        }
    }
}
