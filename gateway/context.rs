//! Phase *context*: why the caller asks, read from the `Doelbinding-*` headers (SPEC §2).
//!
//! The headers are parsed into newtypes that can only hold valid values ([`Bsn`] passes the
//! elfproef, ids have a bounded, boring alphabet), so the decision phase never sees malformed
//! input. Whether a purpose *exists* and whether a case id is *required* is for the policy to
//! say; this module only answers "is what was sent well-formed?".
//!
//! Detail messages never echo the offending value: it may be a BSN or a case reference.

use crate::problem::{Problem, ProblemCode};
use http::HeaderMap;
use std::fmt;

pub const PURPOSE: &str = "doelbinding-purpose";
pub const CASE_ID: &str = "doelbinding-case-id";
pub const DATA_SUBJECT: &str = "doelbinding-data-subject";
pub const ACTOR: &str = "doelbinding-actor";
/// Partner ids already involved in the case, comma-separated. Self-declared until it is bound
/// to a signed caller token.
pub const CASE_PARTNERS: &str = "doelbinding-case-partners";

/// A citizen service number: nine digits that pass the elfproef
/// (9·d1 + 8·d2 + … + 2·d8 − 1·d9 ≡ 0 mod 11). Personal data: never log or label it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Bsn([u8; 9]);

impl Bsn {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let bytes = s.as_bytes();
        if bytes.len() != 9 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err("a BSN is exactly nine digits");
        }
        let digits: [u8; 9] = std::array::from_fn(|i| bytes[i] - b'0');
        let sum: i32 = digits[..8]
            .iter()
            .zip((2..=9).rev())
            .map(|(d, w)| i32::from(*d) * w)
            .sum::<i32>()
            - i32::from(digits[8]);
        if sum % 11 != 0 || digits == [0; 9] {
            return Err("the BSN fails the elfproef");
        }
        Ok(Self(std::array::from_fn(|i| bytes[i])))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// Redacted on purpose: a BSN must not end up in a log line through `{:?}`.
impl fmt::Debug for Bsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bsn(…)")
    }
}

/// The person the exchange is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSubject {
    Bsn(Bsn),
}

impl DataSubject {
    /// Parses `bsn=999990019`.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let (kind, value) = s
            .split_once('=')
            .ok_or("the data subject is written as bsn=<nine digits>")?;
        match kind.trim() {
            "bsn" => Bsn::parse(value.trim()).map(Self::Bsn),
            _ => Err("only bsn=<nine digits> is supported as data subject"),
        }
    }

    pub fn bsn(&self) -> &Bsn {
        match self {
            Self::Bsn(b) => b,
        }
    }
}

/// Ids from callers (case ids, actor pseudonyms, purpose ids): 1–64 characters of
/// letters, digits and `. _ : / -`. Enough for every case-management system we know of, and
/// nothing that could smuggle structure into logs or headers.
pub fn is_plain_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'))
}

/// The request context as declared by the caller.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub purpose: Option<String>,
    pub case_id: Option<String>,
    pub data_subject: Option<DataSubject>,
    pub actor: Option<String>,
    pub case_partners: Vec<String>,
}

/// A header that may be sent at most once: a second copy is refused, never ignored (which
/// copy would the other side read?).
pub fn sent_once<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> Result<Option<&'a http::HeaderValue>, Problem> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(Problem::new(
            ProblemCode::ContextInvalid,
            format!("the {name} header is sent more than once"),
        ));
    }
    Ok(first)
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<Option<&'a str>, Problem> {
    let Some(first) = sent_once(headers, name)? else {
        return Ok(None);
    };
    let text = first.to_str().map_err(|_| {
        Problem::new(
            ProblemCode::ContextInvalid,
            format!("the {name} header is not printable ASCII"),
        )
    })?;
    let text = text.trim();
    Ok((!text.is_empty()).then_some(text))
}

/// A header holding one plain id (see [`is_plain_id`]); `why` completes the refusal.
fn plain_id_header(
    headers: &HeaderMap,
    name: &'static str,
    why: &'static str,
) -> Result<Option<String>, Problem> {
    match header(headers, name)? {
        None => Ok(None),
        Some(value) if is_plain_id(value) => Ok(Some(value.to_string())),
        Some(_) => Err(invalid(format!("{name} {why}"))),
    }
}

fn invalid(detail: String) -> Problem {
    Problem::new(ProblemCode::ContextInvalid, detail)
}

/// Whether `s` holds something BSN-shaped: nine digits that pass the elfproef, written
/// together or in groups split by separators (`.`, `-`, `_`, `:`, `/`, space), as in
/// `999990019`, `9999.90.019`, `999-990-019` or `bsn:999:990:019`, also padded with zeros
/// (`0999990019`, `999990019000`, a 32-digit trace id ending in one). Whole groups count, and
/// only zeros may pad them: `casus-2026-000123` (4 + 6 digits) or `1999990019` (a ten-digit
/// number) is not BSN-shaped.
///
/// Free text is read as a person would read it: any white space (a no-break or thin space, a
/// line break), an invisible format character (zero-width space or joiner, soft hyphen, word
/// joiner, byte-order mark) and any dash counts as a separator, and full-width digits as
/// digits, so `999 99\u{200b}0019` is caught like `999990019`.
pub fn holds_bsn(s: &str) -> bool {
    if s.bytes()
        .any(|b| !b.is_ascii() || (b.is_ascii_whitespace() && b != b' '))
    {
        return holds_bsn(&as_read(s));
    }
    let is_separator = |c: char| matches!(c, '.' | '-' | '_' | ':' | '/' | ' ');
    // Stretches of digits and separators; within each, the digit groups in order.
    s.split(|c: char| !(c.is_ascii_digit() || is_separator(c)))
        .any(|stretch| {
            let groups: Vec<&str> = stretch
                .split(is_separator)
                .filter(|g| !g.is_empty())
                .collect();
            (0..groups.len()).any(|first| {
                let mut digits = String::new();
                groups[first..].iter().any(|group| {
                    digits.push_str(group);
                    zero_padded_bsn(&digits)
                })
            })
        })
}

/// `s` as a reader sees it, in ASCII where it matters: full-width digits as digits, white
/// space, invisible format characters and dashes as separators; anything else non-ASCII as a
/// letter (which ends a stretch of digits).
fn as_read(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{ff10}'..='\u{ff19}' => char::from(b'0' + (c as u32 - 0xff10) as u8),
            '\u{00ad}' | '\u{200b}'..='\u{200f}' | '\u{2060}'..='\u{2064}' | '\u{feff}' => ' ',
            '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{fe58}' | '\u{fe63}' | '\u{ff0d}' => '-',
            c if c.is_whitespace() => ' ',
            c if c.is_ascii() => c,
            _ => 'x',
        })
        .collect()
}

/// `digits` is a valid BSN with nothing but zeros before or after it.
fn zero_padded_bsn(digits: &str) -> bool {
    let len = digits.len();
    len >= 9
        && (0..=len - 9).any(|at| {
            digits[..at].bytes().all(|b| b == b'0')
                && digits[at + 9..].bytes().all(|b| b == b'0')
                && Bsn::parse(&digits[at..at + 9]).is_ok()
        })
}

/// The declared data subject alone, when its header is valid even though another context
/// header is not: the audit record of the refusal still names (as an HMAC) whom it was about.
pub fn declared_subject(headers: &HeaderMap) -> Option<Bsn> {
    let value = header(headers, DATA_SUBJECT).ok()??;
    DataSubject::parse(value).ok().map(|s| s.bsn().clone())
}

impl RequestContext {
    /// Reads and checks the context headers. A missing purpose is reported later, by the
    /// decision, so that it is decided (and recorded) like every other refusal.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, Problem> {
        // A purpose or partner the caller names is looked up, not held to the shape of
        // Doelpoort's own ids: what is not in the catalog is unknown (`purpose-unknown`, or no
        // match among the case's partners), and only what could smuggle structure is refused.
        let purpose = plain_id_header(headers, PURPOSE, "is not a purpose id")?;
        let case_id = plain_id_header(
            headers,
            CASE_ID,
            "must be 1-64 letters, digits or . _ : / -",
        )?;
        let data_subject = header(headers, DATA_SUBJECT)?
            .map(|s| DataSubject::parse(s).map_err(|why| invalid(format!("{DATA_SUBJECT}: {why}"))))
            .transpose()?;
        let actor = plain_id_header(
            headers,
            ACTOR,
            "must be a pseudonymous id of 1-64 letters, digits or . _ : / -",
        )?;
        // Case ids and actors are stored in the audit log in clear; a BSN must not ride along.
        for (name, value) in [(CASE_ID, &case_id), (ACTOR, &actor)] {
            if value.as_deref().is_some_and(holds_bsn) {
                return Err(invalid(format!(
                    "{name} contains what looks like a BSN; use an id that does not identify the person"
                )));
            }
        }
        let case_partners = match header(headers, CASE_PARTNERS)? {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    if is_plain_id(p) {
                        Ok(p.to_string())
                    } else {
                        Err(invalid(format!(
                            "{CASE_PARTNERS} lists an invalid partner id"
                        )))
                    }
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Self {
            purpose,
            case_id,
            data_subject,
            actor,
            case_partners,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn elfproef() {
        for good in ["999990019", "999990020", "999900006", "999900018"] {
            assert!(Bsn::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "999990010",
            "123456789",
            "99999001",
            "9999900190",
            "99999001a",
            "000000000",
        ] {
            assert!(Bsn::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bsn_debug_is_redacted() {
        let bsn = Bsn::parse("999990019").unwrap();
        assert!(!format!("{bsn:?}").contains("999990019"));
        assert_eq!(bsn.as_str(), "999990019");
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn parses_a_full_context() {
        let ctx = RequestContext::from_headers(&headers(&[
            (PURPOSE, "wams-onderzoek"),
            (CASE_ID, "casus-2026-0001"),
            (DATA_SUBJECT, "bsn=999990019"),
            (ACTOR, "medewerker-0042"),
            (CASE_PARTNERS, "uwv, cjib"),
        ]))
        .unwrap();
        assert_eq!(ctx.purpose.as_deref(), Some("wams-onderzoek"));
        assert_eq!(ctx.data_subject.unwrap().bsn().as_str(), "999990019");
        assert_eq!(ctx.case_partners, ["uwv", "cjib"]);
    }

    #[test]
    fn refuses_malformed_context_without_echoing_it() {
        for (name, value) in [
            (DATA_SUBJECT, "bsn=999990010"),
            (DATA_SUBJECT, "999990019"),
            (DATA_SUBJECT, "anummer=1234567890"),
            (CASE_ID, "casus 1"),
            (ACTOR, "<script>"),
            (PURPOSE, "wams onderzoek"),
        ] {
            let err = RequestContext::from_headers(&headers(&[(name, value)])).unwrap_err();
            assert_eq!(err.code, ProblemCode::ContextInvalid, "{name}: {value}");
            assert!(!err.detail.contains(value), "{}", err.detail);
        }
        let err =
            RequestContext::from_headers(&headers(&[(PURPOSE, "a"), (PURPOSE, "b")])).unwrap_err();
        assert!(err.detail.contains("more than once"));
    }

    #[test]
    fn absent_headers_are_none() {
        let ctx = RequestContext::from_headers(&HeaderMap::new()).unwrap();
        assert!(ctx.purpose.is_none() && ctx.data_subject.is_none() && ctx.case_id.is_none());
    }

    #[test]
    fn a_purpose_the_catalog_cannot_hold_is_passed_on_to_be_looked_up() {
        // Refused later as purpose-unknown (not in the catalog), not here as malformed.
        for purpose in ["WAMS-onderzoek", "wams_onderzoek", "wams.onderzoek"] {
            let ctx = RequestContext::from_headers(&headers(&[("doelbinding-purpose", purpose)]))
                .unwrap();
            assert_eq!(ctx.purpose.as_deref(), Some(purpose));
        }
    }

    #[test]
    fn bsn_shaped_text_is_found_whatever_the_separators() {
        for holds in [
            "999990019",
            "casus-999990019",
            "casus-9999.90.019",
            "dossier-999-990-019",
            "p_999_990_019",
            "bsn:999:990:019",
            "999 990 019",
            "2026/12/05/999990019",
            "999990019.2026",
            "0999990019",
            "casus-00999990019",
            "999990019000",
            "00000000000000000000000999990019",
            "999990019000000000000000000000ab",
            // Free text as a reader reads it (an override's reason).
            "zorgen 99999\u{200b}0019",
            "999\u{a0}990\u{a0}019",
            "999\u{2009}990\u{2009}019",
            "999\u{ad}990\u{ad}019",
            "999\u{2011}990\u{2011}019",
            "999\n990\n019",
            "bsn \u{ff19}\u{ff19}\u{ff19}\u{ff19}\u{ff19}\u{ff10}\u{ff10}\u{ff11}\u{ff19}",
        ] {
            assert!(holds_bsn(holds), "{holds}");
        }
        for clean in [
            "casus-2026-0001",
            "casus-2026-000123",
            "999990010",
            "1999990019",
            "medewerker-0042",
            "shv-2026-0042",
            "zorgen om 999\u{e9}990019",
            "Grote zorgen — zie overleg van 2026-12-05",
        ] {
            assert!(!holds_bsn(clean), "{clean}");
        }
    }

    #[test]
    fn case_ids_and_actors_may_not_carry_a_bsn() {
        for (name, value) in [(CASE_ID, "casus-999990019"), (ACTOR, "999990019")] {
            let err = RequestContext::from_headers(&headers(&[(name, value)])).unwrap_err();
            assert_eq!(err.code, ProblemCode::ContextInvalid);
            assert!(!err.detail.contains("999990019"), "not echoed");
        }
        // Nine digits failing the elfproef, or longer runs, are ordinary numbers.
        for value in ["casus-123456789", "2026000012345"] {
            assert!(RequestContext::from_headers(&headers(&[(CASE_ID, value)])).is_ok());
        }
        let h = headers(&[(DATA_SUBJECT, "bsn=999990019"), (CASE_ID, "bad value!")]);
        assert!(RequestContext::from_headers(&h).is_err());
        assert_eq!(declared_subject(&h).unwrap().as_str(), "999990019");
    }
}
