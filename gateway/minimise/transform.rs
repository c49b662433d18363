//! Transforms coarsen a released value so a purpose gets the least that serves it.
//!
//! | transform | input | output |
//! |---|---|---|
//! | `keep` | anything | unchanged |
//! | `redact` | anything | `null` (the field is known to exist, its value is not) |
//! | `mask n` | string or number | all but the last n characters replaced by `*` |
//! | `year` | `YYYY-MM-DD…` | the year, as a number |
//! | `age-band` | a birth date | `"0-11"`, `"12-17"`, `"18-26"`, `"27-44"`, `"45-66"` or `"67+"` |
//! | `bucket b1 b2 …` | a number | `"<b1"`, `"b1-b2"`, …, `">=bn"` |
//! | `pseudonym` | anything | HMAC-SHA256 under the consumer's key, 32 hex digits |
//! | `exists` | anything | `true` unless null, empty string, empty array or empty object |
//!
//! A value a transform cannot read (a `year` of something that is not a date) becomes `null`:
//! the transform never passes an unexpected value through unchanged.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use time::Date;

/// How a released field is coarsened before it leaves the gateway.
#[derive(Debug, Clone, PartialEq)]
pub enum Transform {
    Keep,
    Redact,
    /// Keep the last n characters.
    Mask(usize),
    /// A date → its year.
    Year,
    /// A birth date → an age band.
    AgeBand,
    /// A number → the range it falls in, between the given bounds.
    Bucket(Vec<f64>),
    /// A keyed HMAC per consumer: linkable within one consumer, not across.
    Pseudonym,
    /// Any value → whether it is present and non-empty.
    Exists,
}

impl Transform {
    pub fn parse(s: &str) -> Result<Self, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let expected = "expected keep, redact, mask <n>, year, age-band, bucket <bounds…>, pseudonym or exists";
        Ok(match words.as_slice() {
            ["keep"] => Self::Keep,
            ["redact"] => Self::Redact,
            ["mask", n] => {
                Self::Mask(n.parse().map_err(|_| {
                    format!("mask takes a number of characters to keep; {expected}")
                })?)
            }
            ["year"] => Self::Year,
            ["age-band"] => Self::AgeBand,
            ["bucket", bounds @ ..] if !bounds.is_empty() => {
                let bounds: Vec<f64> = bounds
                    .iter()
                    .map(|b| b.parse::<f64>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| {
                        format!(
                            "bucket takes ascending numbers, e.g. bucket 500 1000 2000; {expected}"
                        )
                    })?;
                if bounds.windows(2).any(|w| w[0] >= w[1]) {
                    return Err("bucket bounds must be ascending".into());
                }
                Self::Bucket(bounds)
            }
            ["pseudonym"] => Self::Pseudonym,
            ["exists"] => Self::Exists,
            _ => return Err(format!("'{s}' is not a transform; {expected}")),
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Keep => "keep".into(),
            Self::Redact => "redact".into(),
            Self::Mask(n) => format!("mask {n}"),
            Self::Year => "year".into(),
            Self::AgeBand => "age-band".into(),
            Self::Bucket(b) => format!(
                "bucket {}",
                b.iter().map(f64::to_string).collect::<Vec<_>>().join(" ")
            ),
            Self::Pseudonym => "pseudonym".into(),
            Self::Exists => "exists".into(),
        }
    }
}

/// What transforms need besides the value.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The key pseudonyms are made with: specific to the calling consumer, so pseudonyms link
    /// within one consumer's records and not across consumers.
    pub pseudonym_key: Option<&'a [u8]>,
    pub today: Date,
}

impl Context<'static> {
    /// For request bodies: no transforms other than `keep` apply there.
    pub fn none() -> Self {
        Self {
            pseudonym_key: None,
            today: Date::MIN,
        }
    }
}

/// A consumer's pseudonym key, derived from the gateway's secret so that no per-consumer
/// key has to be stored.
pub fn consumer_key(secret: &[u8], consumer: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"doelpoort pseudonym key\0");
    mac.update(consumer.as_bytes());
    mac.finalize().into_bytes().into()
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn date_of(value: &Value) -> Option<Date> {
    date_of_text(value.as_str()?)
}

/// The date a text starts with (`YYYY-MM-DD…`, four-digit year).
pub(super) fn date_of_text(s: &str) -> Option<Date> {
    let b = s.as_bytes().get(..10)?;
    if b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let number = |digits: &[u8]| {
        digits.iter().try_fold(0u16, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u16::from(c - b'0'))
        })
    };
    let month = time::Month::try_from(u8::try_from(number(&b[5..7])?).ok()?).ok()?;
    let day = u8::try_from(number(&b[8..10])?).ok()?;
    Date::from_calendar_date(i32::from(number(&b[..4])?), month, day).ok()
}

fn age_on(birth: Date, today: Date) -> i32 {
    let mut age = today.year() - birth.year();
    if (today.month() as u8, today.day()) < (birth.month() as u8, birth.day()) {
        age -= 1;
    }
    age
}

fn format_bound(b: f64) -> String {
    if b.fract() == 0.0 && b.abs() < 1e15 {
        format!("{}", b as i64)
    } else {
        b.to_string()
    }
}

/// The `year` transform of a string, without building a value: `None` becomes `null`.
pub fn year_of_text(text: &str) -> Option<i32> {
    date_of_text(text).map(|d| d.year())
}

pub fn apply(transform: &Transform, value: &Value, context: &Context<'_>) -> Value {
    match transform {
        Transform::Keep => value.clone(),
        Transform::Redact => Value::Null,
        Transform::Mask(keep) => match text_of(value) {
            Some(text) => {
                let chars: Vec<char> = text.chars().collect();
                let visible = (*keep).min(chars.len());
                let masked: String = std::iter::repeat_n('*', chars.len() - visible)
                    .chain(chars[chars.len() - visible..].iter().copied())
                    .collect();
                Value::String(masked)
            }
            None => Value::Null,
        },
        Transform::Year => date_of(value).map_or(Value::Null, |d| Value::from(d.year())),
        Transform::AgeBand => date_of(value).map_or(Value::Null, |birth| {
            let band = match age_on(birth, context.today) {
                a if a < 0 => return Value::Null,
                0..=11 => "0-11",
                12..=17 => "12-17",
                18..=26 => "18-26",
                27..=44 => "27-44",
                45..=66 => "45-66",
                _ => "67+",
            };
            Value::from(band)
        }),
        Transform::Bucket(bounds) => match value.as_f64() {
            Some(n) => {
                let label = match bounds.iter().position(|b| n < *b) {
                    Some(0) => format!("<{}", format_bound(bounds[0])),
                    Some(i) => format!(
                        "{}-{}",
                        format_bound(bounds[i - 1]),
                        format_bound(bounds[i])
                    ),
                    None => format!(">={}", format_bound(bounds[bounds.len() - 1])),
                };
                Value::String(label)
            }
            None => Value::Null,
        },
        Transform::Pseudonym => match (context.pseudonym_key, text_of(value)) {
            (Some(key), Some(text)) => {
                let mut mac =
                    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
                mac.update(text.as_bytes());
                let digest = mac.finalize().into_bytes();
                Value::String(hex::encode(&digest[..16]))
            }
            // Without a key there is no safe pseudonym: release nothing rather than the value.
            _ => Value::Null,
        },
        Transform::Exists => Value::Bool(match value {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            _ => true,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::date;

    fn ctx(key: Option<&[u8]>) -> Context<'_> {
        Context {
            pseudonym_key: key,
            today: date!(2026 - 11 - 24),
        }
    }

    fn t(s: &str) -> Transform {
        Transform::parse(s).unwrap()
    }

    #[test]
    fn keep_and_redact() {
        assert_eq!(
            apply(&t("keep"), &json!({"a": 1}), &ctx(None)),
            json!({"a": 1})
        );
        assert_eq!(
            apply(&t("redact"), &json!("geheim"), &ctx(None)),
            Value::Null
        );
    }

    #[test]
    fn mask_keeps_the_last_characters() {
        assert_eq!(
            apply(&t("mask 4"), &json!("NL91ABNA0417164300"), &ctx(None)),
            json!("**************4300")
        );
        assert_eq!(apply(&t("mask 4"), &json!("abc"), &ctx(None)), json!("abc"));
        assert_eq!(apply(&t("mask 0"), &json!("abc"), &ctx(None)), json!("***"));
        assert_eq!(
            apply(&t("mask 2"), &json!(123456), &ctx(None)),
            json!("****56")
        );
        assert_eq!(apply(&t("mask 2"), &json!("ëïö"), &ctx(None)), json!("*ïö"));
        assert_eq!(
            apply(&t("mask 2"), &json!({"a": 1}), &ctx(None)),
            Value::Null
        );
    }

    #[test]
    fn year_of_a_date() {
        assert_eq!(
            apply(&t("year"), &json!("2024-06-01"), &ctx(None)),
            json!(2024)
        );
        assert_eq!(
            apply(&t("year"), &json!("2024-06-01T10:00:00Z"), &ctx(None)),
            json!(2024)
        );
        assert_eq!(
            apply(&t("year"), &json!("juni 2024"), &ctx(None)),
            Value::Null
        );
        assert_eq!(apply(&t("year"), &json!(2024), &ctx(None)), Value::Null);
    }

    #[test]
    fn age_bands() {
        assert_eq!(
            apply(&t("age-band"), &json!("2020-01-01"), &ctx(None)),
            json!("0-11")
        );
        assert_eq!(
            apply(&t("age-band"), &json!("2014-11-24"), &ctx(None)),
            json!("12-17")
        );
        // The day before the 18th birthday is still 12-17; on the birthday 18-26.
        assert_eq!(
            apply(&t("age-band"), &json!("2008-11-25"), &ctx(None)),
            json!("12-17")
        );
        assert_eq!(
            apply(&t("age-band"), &json!("2008-11-24"), &ctx(None)),
            json!("18-26")
        );
        assert_eq!(
            apply(&t("age-band"), &json!("1950-01-01"), &ctx(None)),
            json!("67+")
        );
        assert_eq!(
            apply(&t("age-band"), &json!("2030-01-01"), &ctx(None)),
            Value::Null
        );
    }

    #[test]
    fn buckets() {
        let b = t("bucket 500 1000 2000");
        assert_eq!(apply(&b, &json!(12.5), &ctx(None)), json!("<500"));
        assert_eq!(apply(&b, &json!(500), &ctx(None)), json!("500-1000"));
        assert_eq!(apply(&b, &json!(1999.99), &ctx(None)), json!("1000-2000"));
        assert_eq!(apply(&b, &json!(2000), &ctx(None)), json!(">=2000"));
        assert_eq!(apply(&b, &json!("veel"), &ctx(None)), Value::Null);
        assert_eq!(
            apply(&t("bucket 0.5"), &json!(0.7), &ctx(None)),
            json!(">=0.5")
        );
    }

    #[test]
    fn pseudonyms_link_within_a_consumer_only() {
        let secret = b"a test secret of enough length!!";
        let a = consumer_key(secret, "wijkteam-rotterdam");
        let b = consumer_key(secret, "schuldhulp-utrecht");
        let p = |key: &[u8]| apply(&t("pseudonym"), &json!("999990019"), &ctx(Some(key)));
        assert_eq!(p(&a), p(&a));
        assert_ne!(p(&a), p(&b));
        assert_eq!(p(&a).as_str().unwrap().len(), 32);
        assert!(!p(&a).as_str().unwrap().contains("999990019"));
        // No key: nothing, rather than the value.
        assert_eq!(
            apply(&t("pseudonym"), &json!("999990019"), &ctx(None)),
            Value::Null
        );
    }

    #[test]
    fn exists() {
        for (v, e) in [
            (json!(null), false),
            (json!(""), false),
            (json!([]), false),
            (json!({}), false),
            (json!(0), true),
            (json!(false), true),
            (json!("x"), true),
            (json!([1]), true),
        ] {
            assert_eq!(apply(&t("exists"), &v, &ctx(None)), json!(e), "{v}");
        }
    }
}
