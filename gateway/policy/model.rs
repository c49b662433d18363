//! The policy files as privacy officers write them: plain YAML lists of consumers, purposes,
//! partner operations and grants. Every value that can be wrong carries its position
//! (`Spanned`), so `policy check` can point at the exact line and column.
//!
//! Any `*.yaml` file in the policy directory (not in `tests/`) may hold any of the four
//! sections; the demo keeps one concern per file. Unknown keys are errors: a misspelt
//! `valid_untill` must not silently make a grant eternal.

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::HashMap;

pub type S = Spanned<String>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default)]
    pub consumers: Vec<RawConsumer>,
    #[serde(default)]
    pub purposes: Vec<RawPurpose>,
    #[serde(default)]
    pub partners: Vec<RawPartner>,
    #[serde(default)]
    pub grants: Vec<RawGrant>,
}

/// A calling organisation as the privacy officer knows it. How it is recognised (OIN,
/// certificate) is the operator's configuration; this register says who it is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsumer {
    pub id: S,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPurpose {
    pub id: S,
    pub title: String,
    #[serde(default)]
    pub legal_basis: Option<RawLegalBasis>,
    #[serde(default)]
    pub processing_activity: Option<S>,
    /// Special category → the legal exception that allows it under this purpose.
    #[serde(default)]
    pub special_categories: HashMap<S, RawException>,
    /// How long the case register keeps a closed case served under this purpose: a mapping
    /// (`after_closure: 1 year`, `note`), or free text where no case register is involved.
    #[serde(default)]
    pub retention: Option<RawRetention>,
    #[serde(default)]
    pub incompatible_with: Vec<S>,
    /// Set on purposes that must never be served (e.g. enforcement): the reason is shown to
    /// callers and any grant for the purpose is an error.
    #[serde(default)]
    pub refused: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLegalBasis {
    /// GDPR article 6(1) ground: `6(1)(a)` … `6(1)(f)`.
    pub gdpr: S,
    /// The national law (name as in the source).
    #[serde(default)]
    pub law: Option<String>,
    /// Article or paragraph, only where the source gives one.
    #[serde(default)]
    pub article: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

/// The legal exception that lets a purpose receive one special category, as written. It is
/// read from a mapping (`gdpr`, `law`, …); a bare text (`judicial: ja`) is read as well, so
/// that `policy check` can say what to write instead of failing on a YAML type.
pub enum RawException {
    Structured(RawExceptionFields),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExceptionFields {
    /// The GDPR article that lifts the prohibition: `9(2)(b)` … `9(2)(j)` for health, `10`
    /// for criminal and judicial data.
    pub gdpr: S,
    /// The national law that lays down the exception with its safeguards (GDPR art. 9(2)(g),
    /// art. 10: "authorised by Union or Member State law").
    #[serde(default)]
    pub law: Option<S>,
    /// Article or paragraph, only where the source gives one.
    #[serde(default)]
    pub article: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

impl<'de> Deserialize<'de> for RawException {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ExceptionVisitor;
        impl<'de> serde::de::Visitor<'de> for ExceptionVisitor {
            type Value = RawException;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mapping with gdpr and law")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawException, E> {
                Ok(RawException::Text(v.to_owned()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RawException, E> {
                Ok(RawException::Text(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawException, E> {
                Ok(RawException::Text(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawException, E> {
                Ok(RawException::Text(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<RawException, E> {
                Ok(RawException::Text(v.to_string()))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<RawException, E> {
                Ok(RawException::Text(String::new()))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<RawException, E> {
                Ok(RawException::Text(String::new()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawException, A::Error> {
                RawExceptionFields::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawException::Structured)
            }
        }
        deserializer.deserialize_any(ExceptionVisitor)
    }
}

/// A purpose's retention as written: machine-readable (`after_closure`), or a text, read as
/// such so that `policy check` can say where a duration is needed.
pub enum RawRetention {
    Structured(RawRetentionFields),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetentionFields {
    /// How long after the case is closed its register entry is kept: `6 months`, `1 year`.
    pub after_closure: S,
    #[serde(default)]
    pub note: Option<String>,
}

impl<'de> Deserialize<'de> for RawRetention {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RetentionVisitor;
        impl<'de> serde::de::Visitor<'de> for RetentionVisitor {
            type Value = RawRetention;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mapping with after_closure, or a text")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawRetention, E> {
                Ok(RawRetention::Text(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawRetention, A::Error> {
                RawRetentionFields::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawRetention::Structured)
            }
        }
        deserializer.deserialize_any(RetentionVisitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPartner {
    pub id: S,
    #[serde(default)]
    pub name: Option<String>,
    /// A private party (e.g. a commercial creditor): a time-out is never directed at it
    /// (Verkenning 2019 §3.2.1).
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub operations: Vec<RawOperation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOperation {
    pub id: S,
    #[serde(default)]
    pub title: Option<String>,
    pub method: S,
    /// Path template at the partner, e.g. `/v1/personen/{bsn}/inkomen`.
    pub path: S,
    /// Where the data subject's BSN is: `path bsn` (a template parameter), `body bsn` (a field
    /// of the JSON request body) or `none` (the operation is not about one person).
    pub subject: S,
    #[serde(default)]
    pub response_schema: Option<S>,
    #[serde(default)]
    pub request_schema: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrant {
    pub id: S,
    pub consumers: Vec<S>,
    /// `<partner>/<operation>`.
    pub operation: S,
    pub purpose: S,
    /// Released response fields: path → transform (`keep`, `redact`, `mask 4`, `year`,
    /// `age-band`, `bucket 500 1000 2000`, `pseudonym`, `exists`).
    #[serde(default)]
    pub fields: HashMap<S, S>,
    /// Query parameters the consumer may send.
    #[serde(default)]
    pub query: Vec<S>,
    /// Request body fields the consumer may send (writes).
    #[serde(default)]
    pub request_fields: Vec<S>,
    /// Context the caller must declare: `case_id`, `actor`, `involved_partner`; and what the
    /// case register must hold: `registered_case`, `prior_time_out`.
    #[serde(default)]
    pub requires: Vec<S>,
    /// Conditions on the request body (writes).
    #[serde(default)]
    pub conditions: Vec<RawCondition>,
    /// An approval by someone other than the actor, optionally with a role.
    #[serde(default)]
    pub four_eyes: Option<RawFourEyes>,
    /// The operation suspends collection (a time-out): kept in the case's time-out ledger.
    #[serde(default)]
    pub time_out: Option<RawTimeOut>,
    /// Only for operations with `subject: none`: why a request without one person is allowed.
    #[serde(default)]
    pub without_subject: Option<String>,
    #[serde(default)]
    pub valid_from: Option<S>,
    #[serde(default)]
    pub valid_until: Option<S>,
    /// The legal reasoning, for reviewers and the DPIA.
    pub rationale: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCondition {
    /// A request body field, e.g. `einddatum` or `vorderingen[*].categorie`.
    pub field: S,
    /// Date fields: `4 months ahead`, `30 days ahead`, `today`.
    #[serde(default)]
    pub at_most: Option<S>,
    #[serde(default)]
    pub at_least: Option<S>,
    #[serde(default)]
    pub one_of: Option<Vec<S>>,
    #[serde(default)]
    pub not_one_of: Option<Vec<S>>,
    /// The field must equal the declared data subject's BSN.
    #[serde(default)]
    pub equals_subject: Option<bool>,
    /// What a privacy officer reads in a refusal; defaults to a description of the test.
    #[serde(default)]
    pub message: Option<String>,
}

/// A time-out grant's ledger rule: where the request states the end date and the claims,
/// how long the time-outs of one case at one partner may last together, and who must approve
/// an extension.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeOut {
    /// The request body's date field with the last day of the time-out, e.g. `einddatum`.
    pub ends: S,
    /// The request body's field naming the claims suspended, e.g.
    /// `vorderingen[*].vordering_id`; without it a time-out covers all the person's claims at
    /// the partner.
    #[serde(default)]
    pub claims: Option<S>,
    /// The cumulative term of all time-outs of one case at one partner, e.g. `8 months`.
    pub max_total: S,
    /// An extension (a time-out for claims already suspended) needs an approval with this
    /// role, besides the grant's four eyes.
    #[serde(default)]
    pub extension: Option<RawFourEyes>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFourEyes {
    #[serde(default)]
    pub role: Option<String>,
}
