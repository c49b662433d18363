//! Fuzz target `context_headers`: `RequestContext::from_headers`, `Bsn::parse`,
//! `DataSubject::parse`.
//!
//! Input layout: the bytes are split at `\n` into at most 8 chunks. Chunk i (i < 8) is one
//! header: its first byte picks the name (the five `Doelbinding-*` headers or an unrelated
//! one), the rest is the value (chunks whose value `http` refuses are skipped). The whole input,
//! read as (lossy) UTF-8, is also given to `Bsn::parse` and `DataSubject::parse`.
//!
//! Invariants:
//! * nothing panics;
//! * `Bsn::parse` accepts exactly the nine-digit strings that pass the elfproef (recomputed
//!   here) and are not all zeros, and keeps the digits;
//! * `DataSubject::parse("bsn=<x>")` agrees with `Bsn::parse(x.trim())`;
//! * `from_headers` refuses a `Doelbinding-*` header sent twice; when it succeeds, every field
//!   is the trimmed header value, ids are plain ids, and a data subject passes the elfproef;
//! * a refusal's detail never echoes a run of five or more digits from a header value (a BSN or
//!   case number), nor a whole value with characters no refusal text contains.
#![no_main]

use doelpoort::context::{self, Bsn, DataSubject, RequestContext};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 6] = [
    context::PURPOSE,
    context::CASE_ID,
    context::DATA_SUBJECT,
    context::ACTOR,
    context::CASE_PARTNERS,
    "x-unrelated",
];

/// The elfproef, written out: 9·d1 + 8·d2 + … + 2·d8 − d9 ≡ 0 (mod 11), not all zeros.
fn elfproef(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 9 || !b.iter().all(u8::is_ascii_digit) || b.iter().all(|&d| d == b'0') {
        return false;
    }
    let mut sum: i64 = 0;
    for (i, &d) in b.iter().enumerate() {
        let d = i64::from(d - b'0');
        sum += if i == 8 { -d } else { d * (9 - i as i64) };
    }
    sum.rem_euclid(11) == 0
}

fn plain_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:_/-".contains(&b))
}

fn check_bsn(s: &str) {
    match Bsn::parse(s) {
        Ok(b) => {
            assert!(elfproef(s), "Bsn::parse accepted {s:?}, which fails the elfproef");
            assert_eq!(b.as_str(), s);
            assert!(!format!("{b:?}").contains(s), "Bsn's Debug shows the number");
        }
        Err(_) => assert!(!elfproef(s), "Bsn::parse refused {s:?}, which passes the elfproef"),
    }
}

fn check_subject(s: &str) {
    let parsed = DataSubject::parse(s);
    match s.split_once('=') {
        Some((kind, value)) if kind.trim() == "bsn" => {
            let expected = Bsn::parse(value.trim());
            assert_eq!(parsed.is_ok(), expected.is_ok(), "DataSubject::parse({s:?})");
            if let Ok(DataSubject::Bsn(b)) = &parsed {
                assert!(elfproef(b.as_str()));
                assert_eq!(b.as_str(), value.trim());
            }
        }
        _ => assert!(parsed.is_err(), "DataSubject::parse accepted {s:?}"),
    }
}

/// Runs of at least five digits: what a BSN or a case number would leave in a message.
fn digit_runs(s: &str) -> Vec<&str> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|r| r.len() >= 5)
        .collect()
}

fn unusual(s: &str) -> bool {
    s.chars()
        .any(|c| !(c.is_ascii_alphanumeric() || " .,_:/<>=-()'".contains(c)))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check_bsn(&text);
    check_bsn(text.trim());
    check_subject(&text);
    if let Some(rest) = text.strip_prefix("bsn=") {
        check_bsn(rest);
    }

    let mut headers = HeaderMap::new();
    let mut sent: Vec<(&str, String)> = Vec::new();
    for chunk in data.split(|&b| b == b'\n').take(8) {
        let Some((&which, value)) = chunk.split_first() else {
            continue;
        };
        let name = NAMES[usize::from(which) % NAMES.len()];
        let Ok(value) = HeaderValue::from_bytes(value) else {
            continue;
        };
        if let Ok(v) = value.to_str() {
            check_subject(v);
            check_bsn(v.trim());
        }
        sent.push((name, String::from_utf8_lossy(value.as_bytes()).into_owned()));
        headers.append(HeaderName::from_static(name), value);
    }

    let values_of = |name: &str| -> Vec<&str> {
        sent.iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let single = |name: &str| -> Option<String> {
        values_of(name)
            .first()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };

    match RequestContext::from_headers(&headers) {
        Ok(ctx) => {
            for name in &NAMES[..5] {
                assert!(values_of(name).len() <= 1, "{name} sent twice was accepted");
            }
            assert_eq!(ctx.purpose, single(context::PURPOSE));
            assert_eq!(ctx.case_id, single(context::CASE_ID));
            assert_eq!(ctx.actor, single(context::ACTOR));
            for id in [&ctx.purpose, &ctx.case_id, &ctx.actor].into_iter().flatten() {
                assert!(plain_id(id), "accepted id {id:?}");
            }
            for p in &ctx.case_partners {
                assert!(plain_id(p), "accepted case partner {p:?}");
            }
            let partners: Vec<String> = single(context::CASE_PARTNERS)
                .map(|l| {
                    l.split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(ctx.case_partners, partners);
            match (&ctx.data_subject, single(context::DATA_SUBJECT)) {
                (Some(DataSubject::Bsn(b)), Some(header)) => {
                    assert!(elfproef(b.as_str()), "accepted a BSN that fails the elfproef");
                    assert!(header.ends_with(b.as_str()));
                }
                (None, None) => {}
                (s, h) => panic!("data subject {s:?} from header {h:?}"),
            }
        }
        Err(problem) => {
            for (_, v) in &sent {
                for run in digit_runs(v) {
                    assert!(
                        !problem.detail.contains(run),
                        "refusal echoes {run:?}: {}",
                        problem.detail
                    );
                }
                let v = v.trim();
                if v.len() >= 4 && unusual(v) {
                    assert!(
                        !problem.detail.contains(v),
                        "refusal echoes {v:?}: {}",
                        problem.detail
                    );
                }
            }
        }
    }
});
