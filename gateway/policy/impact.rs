//! The impact of a policy change: between two policy versions, who gains or loses access to
//! which fields, for which purpose — the report a DPIA (and the privacy officer approving a
//! change) needs. The console's policy history page shows it.
//!
//! Access is compared per consumer, partner operation and purpose: a grant renamed but
//! releasing the same fields is no change to anyone's access, a field whose transform changed
//! (e.g. from `exact` to `year`) is.

use super::tools::{conditions, validity};
use super::{Grant, PolicySet};
use std::collections::{BTreeMap, BTreeSet};

/// What changed for one consumer, on one operation, for one purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessChange {
    pub consumer: String,
    pub operation: String,
    pub purpose: String,
    pub kind: ChangeKind,
    /// Fields released now and not before (path, transform).
    pub gained: Vec<(String, String)>,
    /// Fields released before and not now (path, transform before).
    pub lost: Vec<(String, String)>,
    /// Fields released both times with another transform (path, before, now).
    pub transformed: Vec<(String, String, String)>,
    /// Other changes to the terms: legal basis, conditions, validity, grant id.
    pub terms: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A grant where there was none.
    Granted,
    /// No grant any more.
    Revoked,
    /// Still granted, on other terms.
    Changed,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Granted => "granted",
            ChangeKind::Revoked => "revoked",
            ChangeKind::Changed => "changed",
        }
    }
}

/// Every change in access from `before` to `after`, ordered by consumer, operation, purpose.
pub fn compare(before: &PolicySet, after: &PolicySet) -> Vec<AccessChange> {
    let old = access(before);
    let new = access(after);
    let keys: BTreeSet<&Key> = old.keys().chain(new.keys()).collect();
    let mut changes = Vec::new();
    for key in keys {
        let change = match (old.get(key), new.get(key)) {
            (None, Some(n)) => AccessChange {
                kind: ChangeKind::Granted,
                gained: n
                    .fields
                    .iter()
                    .map(|(p, t)| (p.clone(), t.clone()))
                    .collect(),
                ..AccessChange::new(key)
            },
            (Some(o), None) => AccessChange {
                kind: ChangeKind::Revoked,
                lost: o
                    .fields
                    .iter()
                    .map(|(p, t)| (p.clone(), t.clone()))
                    .collect(),
                ..AccessChange::new(key)
            },
            (Some(o), Some(n)) => {
                let mut c = AccessChange::new(key);
                for (path, transform) in &n.fields {
                    match o.fields.get(path) {
                        None => c.gained.push((path.clone(), transform.clone())),
                        Some(before) if before != transform => {
                            c.transformed
                                .push((path.clone(), before.clone(), transform.clone()))
                        }
                        Some(_) => {}
                    }
                }
                for (path, transform) in &o.fields {
                    if !n.fields.contains_key(path) {
                        c.lost.push((path.clone(), transform.clone()));
                    }
                }
                for (what, before, now) in [
                    ("legal basis", &o.legal_basis, &n.legal_basis),
                    ("conditions", &o.conditions, &n.conditions),
                    ("validity", &o.validity, &n.validity),
                    ("grant", &o.grant, &n.grant),
                ] {
                    if before != now {
                        c.terms.push(format!("{what}: {before} → {now}"));
                    }
                }
                if c.gained.is_empty()
                    && c.lost.is_empty()
                    && c.transformed.is_empty()
                    && c.terms.is_empty()
                {
                    continue;
                }
                c
            }
            (None, None) => continue,
        };
        changes.push(change);
    }
    changes
}

/// (consumer, operation, purpose)
type Key = (String, String, String);

/// One consumer's access on one operation for one purpose, as far as a reader cares.
struct Access {
    fields: BTreeMap<String, String>,
    legal_basis: String,
    conditions: String,
    validity: String,
    grant: String,
}

fn access(set: &PolicySet) -> BTreeMap<Key, Access> {
    let mut out = BTreeMap::new();
    for consumer in set.consumers.keys() {
        for g in set.grants_of(consumer) {
            out.insert(
                (consumer.clone(), g.operation.clone(), g.purpose.clone()),
                Access::of(set, g),
            );
        }
    }
    out
}

impl Access {
    fn of(set: &PolicySet, g: &Grant) -> Self {
        Self {
            fields: g
                .fields
                .iter()
                .map(|f| (f.path.to_string(), f.transform.describe()))
                .collect(),
            legal_basis: set
                .purposes
                .get(&g.purpose)
                .and_then(|p| p.legal_basis_text.clone())
                .unwrap_or_else(|| "-".into()),
            conditions: conditions(g).join("; "),
            validity: validity(g),
            grant: g.id.clone(),
        }
    }
}

impl AccessChange {
    fn new(key: &Key) -> Self {
        Self {
            consumer: key.0.clone(),
            operation: key.1.clone(),
            purpose: key.2.clone(),
            kind: ChangeKind::Changed,
            gained: Vec::new(),
            lost: Vec::new(),
            transformed: Vec::new(),
            terms: Vec::new(),
        }
    }
}
