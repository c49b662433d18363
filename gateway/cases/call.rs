//! What a call to the case register brings (the consumer, its connection, the body) and what
//! its audit record keeps, with the checks every call shares: the acting employee, strict
//! bodies that never quote the caller, ids from the policy set, and how a case is shown.

use super::Case;
use crate::context::{holds_bsn, is_plain_id};
use crate::identity::{Connection, Consumer};
use crate::policy::PolicySet;
use crate::problem::{Problem, ProblemCode};
use crate::token::{Approval, TokenIssuers};
use http::{HeaderMap, Method};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The reserved partner id the register's API lives under.
pub const PARTNER_ID: &str = "doelpoort";

/// The operation an override's approvals must name (`approves.operation` in the token).
pub const OVERRIDE_OPERATION: &str = "doelpoort/case-override";

/// What the pipeline records about a register call.
#[derive(Debug, Default, Clone)]
pub struct RegisterFacts {
    /// `doelpoort/cases.put`, `…get`, `…override`, `…close`: the audit record's `name`.
    pub operation: Option<&'static str>,
    pub case_id: Option<String>,
    pub actor: Option<String>,
    /// What changed, for the audit record: ids and counts only, never a BSN.
    pub change: Option<String>,
    pub approvals: Vec<Approval>,
}

/// One call to the API.
pub struct RegisterCall<'a> {
    pub consumer: &'a Consumer,
    pub connection: &'a Connection,
    pub method: &'a Method,
    /// The path after `/doelpoort`.
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub policy: &'a PolicySet,
    pub tokens: Option<&'a TokenIssuers>,
}

pub fn invalid(detail: impl Into<std::borrow::Cow<'static, str>>) -> Problem {
    Problem::new(ProblemCode::RequestInvalid, detail)
}

pub fn unknown_case() -> Problem {
    Problem::new(
        ProblemCode::CaseUnknown,
        "no case with this id is registered for this consumer",
    )
}

pub fn unavailable() -> Problem {
    super::admission::store_unavailable()
}

/// The acting employee, from `Doelbinding-Actor` (optional, but well-formed when given).
pub fn actor(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let mut values = headers.get_all(crate::context::ACTOR).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Problem::new(
            ProblemCode::ContextInvalid,
            "Doelbinding-Actor is sent more than once",
        ));
    }
    value
        .to_str()
        .ok()
        .filter(|a| is_plain_id(a) && !holds_bsn(a))
        .map(|a| Some(a.to_string()))
        .ok_or_else(|| {
            Problem::new(
                ProblemCode::ContextInvalid,
                "Doelbinding-Actor is a plain pseudonymous id and never holds a BSN",
            )
        })
}

pub fn parse<'de, T: Deserialize<'de>>(body: &'de [u8], form: &str) -> Result<T, Problem> {
    serde_json::from_slice(body).map_err(|e| {
        // serde's message may quote the caller's keys and values (a name, a mistyped BSN):
        // only where it failed is said, never what was there.
        let what = match e.classify() {
            serde_json::error::Category::Data => {
                "a key is unknown or missing, or a value has the wrong type"
            }
            _ => "it is not valid JSON",
        };
        invalid(format!(
            "the body is not {form}: {what} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// A list of ids from the policy set, without duplicates.
pub fn known_ids(
    list: &[String],
    what: &str,
    known: impl Fn(&str) -> bool,
) -> Result<Vec<String>, Problem> {
    let mut seen = BTreeSet::new();
    for id in list {
        if !is_plain_id(id) || holds_bsn(id) || !known(id) {
            return Err(invalid(format!(
                "{what} lists an id that is not in the policy set"
            )));
        }
        if !seen.insert(id.clone()) {
            return Err(invalid(format!("{what} lists an id twice")));
        }
    }
    Ok(seen.into_iter().collect())
}

/// The moment a partner joins a case now: `now`, or just after the latest time-out of the
/// case when that started in this same second. Register writes are serialised, so this keeps
/// their order at a resolution of seconds: a partner added after a time-out started is never
/// taken for one that was in view before it.
pub fn joined_at(case: Option<&Case>, now: i64) -> i64 {
    case.into_iter()
        .flat_map(|c| c.time_outs.iter())
        .map(|t| t.created_at + 1)
        .fold(now, i64::max)
}

/// A case as the API and `doelpoort case show` present it: the household as a count.
pub fn view(case: &Case) -> Value {
    let time = |t: i64| {
        time::OffsetDateTime::from_unix_timestamp(t)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
    };
    json!({
        "case_id": case.id,
        "owner": case.owner,
        "status": case.status.as_str(),
        "purposes": case.purposes,
        "household": case.household.len(),
        "agreed_partners": case.partners.iter().map(|(p, since)| json!({"partner": p, "since": time(*since)})).collect::<Vec<_>>(),
        "objections": case.objections,
        "overrides": case.overrides.iter().map(|o| json!({
            "partner": o.partner,
            "reason": o.reason,
            "actor": o.actor,
            "approvers": o.approvers,
            "granted_at": time(o.granted_at),
        })).collect::<Vec<_>>(),
        "served_purposes": case.served,
        "time_outs": case.time_outs.iter().map(|t| json!({
            "partner": t.partner,
            "claims": t.claims.len(),
            "starts_on": t.starts_on,
            "ends_on": t.ends_on,
            "state": if t.pending { "pending" } else { "granted" },
        })).collect::<Vec<_>>(),
        "created_at": time(case.created_at),
        "updated_at": time(case.updated_at),
        "closed_at": case.closed_at.and_then(time),
        "purge_after": case.purge_after.filter(|t| *t < i64::MAX).and_then(time),
    })
}
