//! The case register's API on the data listener (SPEC §8), under the reserved partner id
//! `doelpoort`:
//!
//! | call | what it does |
//! |---|---|
//! | `PUT /doelpoort/v1/cases/{id}` | create or replace a case (201 created, 200 replaced) |
//! | `GET /doelpoort/v1/cases/{id}` | the case as stored, its household as a count |
//! | `POST /doelpoort/v1/cases/{id}/overrides` | a motivated exception for one partner, approved by two colleagues |
//! | `POST /doelpoort/v1/cases/{id}/close` | close the case; it is purged after its purposes' retention |
//!
//! Only consumers configured with `case_admin: true` may call it, and only for cases they own:
//! another consumer's case is answered as unknown (`case-unknown`), never revealed. Every call
//! is an audit record in the same chain (the pipeline records it), naming the case, the actor
//! and what changed, never a BSN. Bodies are checked strictly: unknown keys, unknown purposes or
//! partners, a BSN that fails the elfproef, all refuse with `request-invalid`.

use super::call::{actor, invalid, joined_at, known_ids, parse, unavailable, unknown_case};
pub use super::call::{view, RegisterCall, RegisterFacts, OVERRIDE_OPERATION, PARTNER_ID};
use super::{CaseRegister, ChangeError};
use crate::context::{holds_bsn, is_plain_id, Bsn};
pub(super) use crate::headers::json_answer as json_response;
use crate::policy::PolicySet;
use crate::problem::{Problem, ProblemCode};
use crate::store::cases::{CaseHead, CaseStatus, CaseWrite};
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;

/// At most this many members in one household.
const MAX_HOUSEHOLD: usize = 64;

/// Which call a path and method are.
enum Route<'p> {
    Case(&'p str),
    Overrides(&'p str),
    Close(&'p str),
}

fn route<'p>(method: &Method, path: &'p str) -> Result<Route<'p>, Problem> {
    let rest = path.strip_prefix("/v1/cases/").ok_or_else(|| {
        Problem::new(
            ProblemCode::UnknownRoute,
            "the case register answers at /doelpoort/v1/cases/{case_id}",
        )
    })?;
    let mut parts = rest.split('/');
    let id = parts.next().unwrap_or_default();
    let (route, allowed) = match (parts.next(), parts.next()) {
        (None, _) => (Route::Case(id), [Method::GET, Method::PUT].as_slice()),
        (Some("overrides"), None) => (Route::Overrides(id), [Method::POST].as_slice()),
        (Some("close"), None) => (Route::Close(id), [Method::POST].as_slice()),
        _ => {
            return Err(Problem::new(
                ProblemCode::UnknownRoute,
                "no such resource in the case register",
            ))
        }
    };
    let head_of_get = *method == Method::HEAD && allowed.contains(&Method::GET);
    if !allowed.contains(method) && !head_of_get {
        let mut allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
        if allowed.contains(&Method::GET) {
            allow.push("HEAD");
        }
        return Err(Problem::method_not_allowed(
            "this resource of the case register is not served with this method",
            allow.join(", "),
        ));
    }
    Ok(route)
}

/// Serves one call. `facts` is filled in as far as the call gets, for its audit record.
pub async fn serve(
    register: &CaseRegister,
    call: &RegisterCall<'_>,
    facts: &mut RegisterFacts,
) -> Result<Response<Full<Bytes>>, Problem> {
    let route = route(call.method, call.path)?;
    let (operation, id) = match &route {
        Route::Case(id) if *call.method == Method::PUT => ("doelpoort/cases.put", *id),
        Route::Case(id) => ("doelpoort/cases.get", *id),
        Route::Overrides(id) => ("doelpoort/cases.override", *id),
        Route::Close(id) => ("doelpoort/cases.close", *id),
    };
    facts.operation = Some(operation);
    if !is_plain_id(id) || holds_bsn(id) {
        return Err(Problem::new(
            ProblemCode::ContextInvalid,
            "a case id is a plain id (letters, digits, '.', '_', ':', '/', '-'; at most 64) and never holds a BSN",
        ));
    }
    facts.case_id = Some(id.to_string());
    facts.actor = actor(call.headers)?;
    // A caller token, where the consumer presents one, vouches for the actor like on any
    // exchange, and must agree with the call.
    if let Some(token) = crate::token::TokenVerifier::check(
        call.tokens,
        call.consumer,
        call.connection.fingerprint.as_ref(),
        call.headers,
    )? {
        if facts.actor.as_deref().is_some_and(|a| a != token.actor) {
            return Err(Problem::new(
                ProblemCode::TokenMismatch,
                "Doelbinding-Actor differs from the actor (sub) in the signed token",
            ));
        }
        if token.case_id.as_deref().is_some_and(|c| c != id) {
            return Err(Problem::new(
                ProblemCode::TokenMismatch,
                "the case in the signed token is not the case of this call",
            ));
        }
        facts.actor = Some(token.actor);
    }
    if !call.consumer.case_admin {
        return Err(Problem::new(
            ProblemCode::NotGranted,
            "this consumer may not keep cases in the case register (case_admin is not set)",
        ));
    }
    // Every change is attributed to an employee (an override's to the actor its approvals
    // name): who changed what is in the record.
    let changes = !matches!(route, Route::Case(_)) || *call.method == Method::PUT;
    if changes && facts.actor.is_none() && !matches!(route, Route::Overrides(_)) {
        return Err(Problem::new(
            ProblemCode::ContextInvalid,
            "a change to the case register is attributed to the employee who makes it: name them in Doelbinding-Actor (or a signed caller token)",
        ));
    }
    match route {
        Route::Case(_) if *call.method == Method::PUT => put(register, call, id, facts).await,
        Route::Case(_) => {
            // A read of the register (the copy this replica holds, which follows the store).
            let case = register
                .get(call.consumer.id.as_str(), id)
                .ok_or_else(unknown_case)?;
            Ok(json_response(StatusCode::OK, &view(&case)))
        }
        Route::Overrides(_) => super::overrides::add_override(register, call, id, facts).await,
        Route::Close(_) => close(register, call, id, facts).await,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseBody {
    purposes: Vec<String>,
    household: Vec<String>,
    #[serde(default)]
    agreed_partners: Vec<String>,
    #[serde(default)]
    objections: Vec<String>,
    #[serde(default)]
    status: Option<String>,
}

async fn put(
    register: &CaseRegister,
    call: &RegisterCall<'_>,
    id: &str,
    facts: &mut RegisterFacts,
) -> Result<Response<Full<Bytes>>, Problem> {
    let body: CaseBody = parse(
        call.body,
        "a case: {\"purposes\": [..], \"household\": [\"<bsn>\", ..], \"agreed_partners\": [..], \"objections\": [..], \"status\": \"open\"}",
    )?;
    let set = call.policy;
    if body.purposes.is_empty() {
        return Err(invalid("a case serves at least one purpose"));
    }
    if body
        .purposes
        .iter()
        .any(|p| set.purposes.get(p).is_some_and(|p| p.refused.is_some()))
    {
        return Err(invalid(
            "purposes lists a purpose that is never served through this gateway",
        ));
    }
    let purposes = known_ids(&body.purposes, "purposes", |p| set.purposes.contains_key(p))?;
    for a in &purposes {
        for b in &purposes {
            if set.purposes[a].incompatible_with.contains(b) {
                return Err(invalid(format!(
                    "purposes '{a}' and '{b}' must never be combined in one case"
                )));
            }
        }
    }
    let partner_known = |p: &str| p != PARTNER_ID && set.partners.contains_key(p);
    let agreed = known_ids(&body.agreed_partners, "agreed_partners", partner_known)?;
    let objections = known_ids(&body.objections, "objections", partner_known)?;
    if agreed.iter().any(|p| objections.contains(p)) {
        return Err(invalid(
            "a partner is both agreed to and objected to; the client's objection is leading, list it once",
        ));
    }
    if body.household.is_empty() || body.household.len() > MAX_HOUSEHOLD {
        return Err(invalid(format!(
            "a household has 1 to {MAX_HOUSEHOLD} members"
        )));
    }
    let mut household = BTreeSet::new();
    for member in &body.household {
        // The message never repeats the value.
        let bsn = Bsn::parse(member)
            .map_err(|why| invalid(format!("a household member is not a valid BSN: {why}")))?;
        if !household.insert(register.key().member(&bsn)) {
            return Err(invalid("the household lists a member twice"));
        }
    }
    let closing = match body.status.as_deref() {
        None | Some("open") => false,
        Some("closed") => true,
        Some(_) => return Err(invalid("status is \"open\" or \"closed\"")),
    };
    let owner = call.consumer.id.as_str().to_string();
    // The client's objection is leading: withdrawing one is named in the record, and only
    // an identified employee may do it.
    // Objections are the client's, not one case's: those the owner's other open cases record
    // for a member of this household stand here too, so a second case is no way round them
    // (they are withdrawn where they are recorded).
    let elsewhere: Vec<String> = register
        .objections_for(&owner, id, &household)
        .into_iter()
        .filter(|p| !objections.contains(p))
        .collect();
    if !elsewhere.is_empty() {
        return Err(invalid(format!(
            "a member of this household objected to {} in another of your cases; list it under objections here, or withdraw it in that case",
            elsewhere.join(", ")
        )));
    }
    let withdrawn: Vec<String> = register
        .get(&owner, id)
        .map(|c| {
            c.objections
                .iter()
                .filter(|p| !objections.contains(p))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    facts.change = Some(format!(
        "status={}; purposes={}; agreed_partners={}; objections={}; household_members={}{}",
        if closing { "closed" } else { "open" },
        purposes.join(","),
        agreed.join(","),
        objections.join(","),
        household.len(),
        if withdrawn.is_empty() {
            String::new()
        } else {
            format!("; objections_withdrawn={}", withdrawn.join(","))
        }
    ));
    let mut created = false;
    let mut lapsed: Vec<String> = Vec::new();
    let changed = register
        .change("case_put", &owner, id, |current, now| {
            if let Some(current) = current {
                // A purged case stays closed too: its id is not given out again.
                if current.status != CaseStatus::Open {
                    return Err(Problem::new(
                        ProblemCode::CaseClosed,
                        "the case is closed and cannot be changed or reopened; register a new case",
                    ));
                }
                // Checked again in the transaction (another replica may have changed it).
                let dropped = current.objections.iter().any(|p| !objections.contains(p));
                if dropped && withdrawn.is_empty() {
                    return Err(Problem::new(
                        ProblemCode::ContextInvalid,
                        "the case's objections changed meanwhile; read the case and try again",
                    ));
                }
            }
            created = current.is_none();
            // An override was approved for the household as it was and against the client's
            // objections as they were: it lapses when a member joins, or when the client
            // objects to its partner anew.
            let grew = current.is_some_and(|c| {
                household
                    .iter()
                    .any(|m| c.household.binary_search(m).is_err())
            });
            lapsed = current
                .map(|c| {
                    c.overrides
                        .iter()
                        .filter(|o| {
                            grew || (objections.contains(&o.partner)
                                && !c.objections.contains(&o.partner))
                        })
                        .map(|o| o.partner.clone())
                        .collect()
                })
                .unwrap_or_default();
            // A partner keeps the moment it was first registered (time-outs depend on it).
            let joined = joined_at(current, now);
            let partners = agreed
                .iter()
                .map(|p| {
                    let since = current
                        .and_then(|c| c.partners.iter().find(|(q, _)| q == p))
                        .map_or(joined, |(_, since)| *since);
                    (p.clone(), since)
                })
                .collect();
            let mut writes: Vec<CaseWrite> = lapsed
                .iter()
                .map(|partner| CaseWrite::DropOverride {
                    partner: partner.clone(),
                })
                .collect();
            writes.push(CaseWrite::Put {
                head: CaseHead {
                    owner: owner.clone(),
                    status: if closing {
                        CaseStatus::Closed
                    } else {
                        CaseStatus::Open
                    },
                    purposes: purposes.clone(),
                    objections: objections.clone(),
                    created_at: current.map_or(now, |c| c.created_at),
                    updated_at: now,
                    closed_at: closing.then_some(now),
                    purge_after: closing.then(|| {
                        let served = current.map(|c| c.served.as_slice()).unwrap_or_default();
                        purge_after(now, retention_of(set, purposes.iter().chain(served)))
                    }),
                },
                partners,
                household: household.iter().cloned().collect(),
            });
            Ok(writes)
        })
        .await;
    if !lapsed.is_empty() {
        if let Some(change) = &mut facts.change {
            change.push_str(&format!("; overrides_lapsed={}", lapsed.join(",")));
        }
    }
    let case = match changed {
        Ok(case) => case,
        Err(ChangeError::Refused(problem)) => return Err(problem),
        Err(ChangeError::Unavailable(_)) => return Err(unavailable()),
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_response(status, &view(&case)))
}

/// The longest retention among the purposes (as a term), if every one has one.
/// The purposes the case was served under count too: the time-out ledger is kept as long as
/// the time-out's retention says, even if the case's purposes changed since.
fn retention_of<'p>(
    set: &PolicySet,
    purposes: impl IntoIterator<Item = &'p String>,
) -> Option<crate::policy::RelativeDate> {
    let terms: Vec<_> = purposes
        .into_iter()
        .filter_map(|p| set.purposes.get(p))
        .map(|p| p.retention_after_closure)
        .collect();
    // A purpose without a term keeps the case until an operator purges it.
    if terms.iter().any(Option::is_none) {
        return None;
    }
    let probe = time::OffsetDateTime::now_utc().date();
    terms.into_iter().flatten().max_by_key(|t| t.resolve(probe))
}

/// When a case closed at `closed_at` is purged: after the longest retention of its purposes
/// (without one, never automatically: `i64::MAX`).
pub fn purge_after(closed_at: i64, retention: Option<crate::policy::RelativeDate>) -> i64 {
    let Some(term) = retention else {
        return i64::MAX;
    };
    let Ok(closed) = time::OffsetDateTime::from_unix_timestamp(closed_at) else {
        return i64::MAX;
    };
    let until = term.resolve(closed.date());
    closed.replace_date(until).unix_timestamp()
}

async fn close(
    register: &CaseRegister,
    call: &RegisterCall<'_>,
    id: &str,
    facts: &mut RegisterFacts,
) -> Result<Response<Full<Bytes>>, Problem> {
    if !call.body.is_empty() && call.body.iter().any(|b| !b.is_ascii_whitespace()) {
        let _: serde_json::Map<String, Value> = parse(call.body, "empty or {}")?;
    }
    facts.change = Some("status=closed".into());
    let owner = call.consumer.id.as_str().to_string();
    let set = call.policy;
    let changed = register
        .change("case_close", &owner, id, |current, now| {
            close_rule(current, now, &owner, set)
        })
        .await;
    match changed {
        Ok(case) => Ok(json_response(StatusCode::OK, &view(&case))),
        Err(ChangeError::Refused(problem)) => Err(problem),
        Err(ChangeError::Unavailable(_)) => Err(unavailable()),
    }
}

/// Closing a case (also for `doelpoort case close`): the owner's own, open case. `owner`
/// empty: an operator, who may close any case.
pub fn close_rule(
    current: Option<&super::Case>,
    now: i64,
    owner: &str,
    set: &PolicySet,
) -> Result<Vec<CaseWrite>, Problem> {
    let case = current
        .filter(|c| c.status != CaseStatus::Purged && (owner.is_empty() || c.owner == owner))
        .ok_or_else(unknown_case)?;
    if case.status == CaseStatus::Closed {
        return Err(Problem::new(
            ProblemCode::CaseClosed,
            "the case is already closed",
        ));
    }
    let retention = retention_of(set, case.purposes.iter().chain(&case.served));
    Ok(vec![CaseWrite::Put {
        head: CaseHead {
            owner: case.owner.clone(),
            status: CaseStatus::Closed,
            purposes: case.purposes.clone(),
            objections: case.objections.clone(),
            created_at: case.created_at,
            updated_at: now,
            closed_at: Some(now),
            purge_after: Some(purge_after(now, retention)),
        },
        partners: case.partners.clone(),
        household: case.household.clone(),
    }])
}
