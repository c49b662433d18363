//! Purpose-bound policies (*doelbinding*): who may call which partner operation, for which
//! purpose, on which lawful basis, and which fields that purpose may see.
//!
//! - [`model`]: the YAML files as privacy officers write them.
//! - [`compile`]: checks them (with `file:line:col` diagnostics) and builds a [`PolicySet`].
//! - [`decide`]: phase *decide*: request → [`decide::Permit`] or a denial. Deny by default.
//! - [`store`]: the live set behind an atomic pointer, hot reload on SIGHUP and file change.
//! - [`tools`]: `policy explain`, `policy test`, `policy matrix`.
//! - [`schema`] and [`fields`]: what the response schemas declare, and so which fields an
//!   audit record states as released and withheld.
//!
//! A `PolicySet` is immutable. A decision is a few hash lookups (consumer → operation →
//! purpose), so it costs the same with 10 or 10,000 grants.

pub mod case_rules;
pub mod cases;
pub mod compile;
pub mod decide;
pub mod fieldpath;
pub mod fields;
pub mod four_eyes;
pub mod impact;
pub mod model;
pub mod permit;
pub mod schema;
pub mod simulated_case;
pub mod store;
pub mod template;
pub mod time_out;
pub mod tools;

/// How a released field is coarsened (defined with the transforms themselves).
pub use crate::minimise::transform::Transform;

use fieldpath::FieldPath;
use schema::Schemas;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use template::PathTemplate;
use time::Date;

/// A matched operation and its path parameters (name, value) in template order.
pub type OperationMatch<'s, 'p> = (&'s Arc<Operation>, Vec<(&'s str, &'p str)>);

/// consumer → operation key → purpose → grants (normally one; overlap is a check error).
type GrantIndex = HashMap<String, HashMap<String, HashMap<String, Vec<Arc<Grant>>>>>;

/// A compiled, checked, immutable policy set.
pub struct PolicySet {
    /// Content hash of the policy files and schemas (hex, 16 digits).
    pub version: String,
    pub consumers: BTreeMap<String, ConsumerInfo>,
    pub purposes: BTreeMap<String, Arc<Purpose>>,
    pub partners: BTreeMap<String, PartnerInfo>,
    /// By key `<partner>/<operation>`.
    pub operations: BTreeMap<String, Arc<Operation>>,
    /// All grants in file order.
    pub grants: Vec<Arc<Grant>>,
    index: GrantIndex,
    /// partner → method → operations (matched by template).
    routes: HashMap<String, HashMap<http::Method, Vec<Arc<Operation>>>>,
    pub schemas: Schemas,
    /// Strict-mode schema checks, by schema file name (compiled once per load).
    strict_schemas: HashMap<String, Arc<crate::minimise::StrictSchema>>,
}

impl std::fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySet")
            .field("version", &self.version)
            .field("grants", &self.grants.len())
            .finish_non_exhaustive()
    }
}

impl PolicySet {
    /// The operation a request addresses, with its path parameters.
    pub fn match_operation<'p>(
        &self,
        partner: &str,
        method: &http::Method,
        path: &'p str,
    ) -> Option<OperationMatch<'_, 'p>> {
        // HEAD is a GET without a body.
        let method = if method == http::Method::HEAD {
            &http::Method::GET
        } else {
            method
        };
        self.routes
            .get(partner)?
            .get(method)?
            .iter()
            .find_map(|op| op.template.matches(path).map(|params| (op, params)))
    }

    /// The methods some operation of `partner` serves at `path` (HEAD wherever GET is), in a
    /// fixed order: for the `Allow` header of a refusal with `method-not-allowed`.
    pub fn methods_at(&self, partner: &str, path: &str) -> Vec<http::Method> {
        let Some(routes) = self.routes.get(partner) else {
            return Vec::new();
        };
        let mut methods: Vec<http::Method> = routes
            .iter()
            .filter(|(_, ops)| ops.iter().any(|op| op.template.matches(path).is_some()))
            .map(|(method, _)| method.clone())
            .collect();
        if methods.contains(&http::Method::GET) {
            methods.push(http::Method::HEAD);
        }
        methods.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        methods
    }

    /// The grants a consumer holds for an operation and purpose.
    pub fn grants_for(&self, consumer: &str, operation: &str, purpose: &str) -> &[Arc<Grant>] {
        self.index
            .get(consumer)
            .and_then(|ops| ops.get(operation))
            .and_then(|purposes| purposes.get(purpose))
            .map_or(&[], Vec::as_slice)
    }

    /// The compiled strict-mode check of a schema.
    pub fn strict_schema(&self, schema: &str) -> Option<&crate::minimise::StrictSchema> {
        self.strict_schemas.get(schema).map(Arc::as_ref)
    }

    /// Every grant naming this consumer, in file order.
    pub fn grants_of<'a>(&'a self, consumer: &'a str) -> impl Iterator<Item = &'a Arc<Grant>> + 'a {
        self.grants
            .iter()
            .filter(move |g| g.consumers.iter().any(|c| c == consumer))
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerInfo {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LegalBasis {
    /// `6(1)(e)` etc.
    pub gdpr: String,
    pub law: Option<String>,
    pub article: Option<String>,
    pub note: Option<String>,
}

impl LegalBasis {
    /// One line for headers, audit records and reports, e.g.
    /// `AVG art. 6(1)(e); Wmo 2015 (Wams), paragraaf onderzoek`.
    pub fn summary(&self) -> String {
        let mut s = format!("AVG art. {}", self.gdpr);
        if let Some(law) = &self.law {
            s.push_str("; ");
            s.push_str(law);
            if let Some(article) = &self.article {
                s.push_str(", ");
                s.push_str(article);
            }
        }
        s
    }
}

/// The legal exception that lifts the prohibition on one special category for a purpose:
/// the GDPR article (`9(2)(b)` … `9(2)(j)`, or `10`) and the national law that lays it down.
#[derive(Debug, Clone)]
pub struct SpecialException {
    pub gdpr: String,
    pub law: String,
    pub article: Option<String>,
    pub note: Option<String>,
}

impl SpecialException {
    /// One line, as `policy explain` shows it: `AVG art. 10; Wet …, art. …`.
    pub fn summary(&self) -> String {
        let mut s = format!("AVG art. {}; {}", self.gdpr, self.law);
        if let Some(article) = &self.article {
            s.push_str(", ");
            s.push_str(article);
        }
        s
    }
}

#[derive(Debug, Clone)]
pub struct Purpose {
    pub id: String,
    pub title: String,
    pub legal_basis: Option<LegalBasis>,
    /// `legal_basis` as one line ([`LegalBasis::summary`]), made once at load: it goes into
    /// every assertion, audit record and report.
    pub legal_basis_text: Option<String>,
    pub processing_activity: Option<String>,
    /// Special category → the legal exception allowing it under this purpose.
    pub special_categories: BTreeMap<String, SpecialException>,
    /// The retention as a text for readers (`policy explain`, reports).
    pub retention: Option<String>,
    /// How long a closed case served under this purpose stays in the case register.
    pub retention_after_closure: Option<RelativeDate>,
    pub incompatible_with: Vec<String>,
    /// Never served; the reason is given to callers.
    pub refused: Option<String>,
    /// Ready-made header values for forwarding (computed once at load).
    pub header_values: PurposeHeaders,
}

/// The `Doelbinding-*` header values a purpose adds to forwarded requests.
#[derive(Debug, Clone)]
pub struct PurposeHeaders {
    pub purpose: http::HeaderValue,
    pub legal_basis: Option<http::HeaderValue>,
    pub processing_activity: Option<http::HeaderValue>,
}

/// A header value for free text: visible ASCII is kept, everything else (e.g. the `ö` of
/// `coördinatie`) is percent-encoded as UTF-8, so the value survives every HTTP stack.
pub fn header_text(s: &str) -> http::HeaderValue {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == ' ' || (c.is_ascii_graphic() && c != '%') {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    http::HeaderValue::from_str(&out).unwrap_or_else(|_| http::HeaderValue::from_static("invalid"))
}

#[derive(Debug, Clone)]
pub struct PartnerInfo {
    pub id: String,
    pub name: String,
    /// A private party: never the subject of a time-out.
    pub private: bool,
    pub operations: Vec<Arc<Operation>>,
}

/// Where an operation's data subject is identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectSource {
    /// A path template parameter, e.g. `{bsn}`.
    Path(String),
    /// A field of the JSON request body.
    Body(FieldPath),
    /// Not about one person; needs `without_subject` in the grant.
    None,
}

#[derive(Debug, Clone)]
pub struct Operation {
    /// `<partner>/<id>`.
    pub key: String,
    pub partner: String,
    pub id: String,
    pub title: Option<String>,
    pub method: http::Method,
    pub template: PathTemplate,
    pub subject: SubjectSource,
    pub response_schema: Option<String>,
    pub request_schema: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ReleasedField {
    pub path: FieldPath,
    pub transform: Transform,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirements {
    pub case_id: bool,
    pub actor: bool,
    /// The partner must be among the partners already involved in the case.
    pub involved_partner: bool,
    /// The case must be in the case register and admit this exchange (SPEC §8).
    pub registered_case: bool,
    /// The case's time-out ledger must hold a time-out granted before (escalation follows a
    /// local time-out).
    pub prior_time_out: bool,
}

/// A time-out grant's ledger rule (see [`crate::cases::ledger`]).
#[derive(Debug, Clone)]
pub struct TimeOutRule {
    /// The request body's date field with the time-out's last day.
    pub ends: FieldPath,
    /// The request body's field with the claims suspended; `None`: all the person's claims.
    pub claims: Option<FieldPath>,
    /// The cumulative term of all time-outs of one case at one partner.
    pub max_total: RelativeDate,
    /// The role an extension's approver must have, besides the grant's four eyes.
    pub extension_role: Option<String>,
}

/// A date relative to the day of the request: `today`, `4 months ahead`, `30 days ago`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelativeDate {
    pub days: i64,
    pub months: i32,
}

impl RelativeDate {
    pub fn parse(s: &str) -> Result<Self, String> {
        let expected = "expected `today`, `<n> days ahead`, `<n> months ahead`, `<n> days ago` or `<n> months ago`";
        let words: Vec<&str> = s.split_whitespace().collect();
        let (n, unit, dir) = match words.as_slice() {
            ["today"] => return Ok(Self { days: 0, months: 0 }),
            [n, unit, dir] => (n, *unit, *dir),
            _ => return Err(expected.into()),
        };
        let n: i32 = n.parse().map_err(|_| expected.to_string())?;
        let sign = match dir {
            "ahead" => 1,
            "ago" => -1,
            _ => return Err(expected.into()),
        };
        match unit {
            "day" | "days" => Ok(Self {
                days: i64::from(sign * n),
                months: 0,
            }),
            "month" | "months" => Ok(Self {
                days: 0,
                months: sign * n,
            }),
            _ => Err(expected.into()),
        }
    }

    /// The calendar date this denotes, seen from `today`. Adding months keeps the day of the
    /// month where it exists and otherwise takes the month's last day (31 Oct + 4 months =
    /// 28/29 Feb).
    pub fn resolve(&self, today: Date) -> Date {
        let total = today.year() * 12 + (today.month() as i32 - 1) + self.months;
        let (year, month0) = (total.div_euclid(12), total.rem_euclid(12));
        let month = time::Month::try_from(month0 as u8 + 1).unwrap_or(time::Month::January);
        let day = today.day().min(month.length(year));
        let date = Date::from_calendar_date(year, month, day).unwrap_or(today);
        date.checked_add(time::Duration::days(self.days))
            .unwrap_or(date)
    }

    /// A term as a privacy officer writes it: `30 days`, `6 weeks`, `4 months`, `1 year`.
    pub fn parse_term(s: &str) -> Result<Self, String> {
        let expected = "expected a term such as `30 days`, `6 weeks`, `4 months` or `1 year`";
        let words: Vec<&str> = s.split_whitespace().collect();
        let [n, unit] = words.as_slice() else {
            return Err(expected.into());
        };
        let n: i32 = n
            .parse()
            .ok()
            .filter(|n| (1..=1200).contains(n))
            .ok_or_else(|| expected.to_string())?;
        let (days, months) = match *unit {
            "day" | "days" => (i64::from(n), 0),
            "week" | "weeks" => (i64::from(n) * 7, 0),
            "month" | "months" => (0, n),
            "year" | "years" => (0, n * 12),
            _ => return Err(expected.into()),
        };
        Ok(Self { days, months })
    }

    /// A term, as [`Self::parse_term`] reads it.
    pub fn describe_term(&self) -> String {
        match (self.days, self.months) {
            (d, 0) => format!("{d} days"),
            (0, m) if m % 12 == 0 => format!("{} years", m / 12),
            (_, m) => format!("{m} months"),
        }
    }

    pub fn describe(&self) -> String {
        match (self.days, self.months) {
            (0, 0) => "today".into(),
            (d, 0) if d > 0 => format!("{d} days ahead"),
            (d, 0) => format!("{} days ago", -d),
            (_, m) if m > 0 => format!("{m} months ahead"),
            (_, m) => format!("{} months ago", -m),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    AtMost(RelativeDate),
    AtLeast(RelativeDate),
    OneOf(Vec<String>),
    NotOneOf(Vec<String>),
    EqualsSubject,
}

impl Test {
    fn describe(&self, field: &FieldPath) -> String {
        match self {
            Self::AtMost(d) => format!("{field} must be at most {}", d.describe()),
            Self::AtLeast(d) => format!("{field} must be at least {}", d.describe()),
            Self::OneOf(v) => format!("{field} must be one of: {}", v.join(", ")),
            Self::NotOneOf(v) => format!("{field} must not be: {}", v.join(", ")),
            Self::EqualsSubject => format!("{field} must be the declared data subject"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub field: FieldPath,
    pub test: Test,
    /// Shown in refusals; never contains request values.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FourEyes {
    pub role: Option<String>,
}

/// Where a grant is written, for messages and reports.
#[derive(Debug, Clone)]
pub struct Source {
    pub file: PathBuf,
    pub line: u64,
}

#[derive(Debug, Clone)]
pub struct Grant {
    pub id: String,
    pub consumers: Vec<String>,
    /// Operation key `<partner>/<operation>`.
    pub operation: String,
    pub purpose: String,
    /// Released response fields, sorted by path.
    pub fields: Vec<ReleasedField>,
    /// Data categories the released fields carry (from the schema).
    pub categories: BTreeSet<String>,
    pub query: Vec<String>,
    pub request_fields: Vec<FieldPath>,
    pub requires: Requirements,
    pub conditions: Vec<Condition>,
    pub four_eyes: Option<FourEyes>,
    pub time_out: Option<TimeOutRule>,
    pub without_subject: Option<String>,
    pub valid_from: Option<Date>,
    pub valid_until: Option<Date>,
    pub rationale: String,
    pub source: Source,
    /// `fields` compiled for the minimiser.
    pub release: crate::minimise::FieldTree,
    /// `request_fields` compiled for the minimiser (`None`: no request body allowed).
    pub request_allow: Option<crate::minimise::FieldTree>,
}

impl Operation {
    /// `uwv/inkomen — GET /v1/personen/{bsn}/inkomen (title)`, as the tools and the console
    /// name an operation to a reader.
    pub fn label(&self) -> String {
        format!(
            "{} — {} {}{}",
            self.key,
            self.method,
            self.template.as_str(),
            self.title
                .as_ref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default()
        )
    }
}

impl Grant {
    pub fn is_valid_on(&self, day: Date) -> bool {
        self.valid_from.is_none_or(|from| from <= day)
            && self.valid_until.is_none_or(|until| day <= until)
    }
}

/// Today's date in UTC (grant validity and date conditions are calendar dates).
pub fn today() -> Date {
    time::OffsetDateTime::now_utc().date()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn transforms_parse() {
        assert_eq!(Transform::parse("mask 4").unwrap(), Transform::Mask(4));
        assert_eq!(
            Transform::parse("bucket 500 1000").unwrap(),
            Transform::Bucket(vec![500.0, 1000.0])
        );
        for bad in ["", "mask", "mask x", "bucket", "bucket 2 1", "hash"] {
            assert!(Transform::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relative_dates() {
        let d = RelativeDate::parse("4 months ahead").unwrap();
        assert_eq!(d.resolve(date!(2026 - 11 - 24)), date!(2027 - 03 - 24));
        assert_eq!(d.resolve(date!(2026 - 10 - 31)), date!(2027 - 02 - 28));
        assert_eq!(
            RelativeDate::parse("30 days ago")
                .unwrap()
                .resolve(date!(2026 - 03 - 01)),
            date!(2026 - 01 - 30)
        );
        assert_eq!(
            RelativeDate::parse("today")
                .unwrap()
                .resolve(date!(2026 - 01 - 01)),
            date!(2026 - 01 - 01)
        );
        for bad in ["soon", "4 months", "four months ahead", "4 weeks ahead"] {
            assert!(RelativeDate::parse(bad).is_err(), "{bad}");
        }
    }
}
