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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }

    /// The shipped policies, with `edit` applied to one grant file's text.
    fn shipped_with(edit: impl Fn(String) -> String) -> PolicySet {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().unwrap();
        let policies: PathBuf = dir.path().join("policies");
        copy(&root.join("policies"), &policies);
        let grants = policies.join("grants").join("wijkteam-rotterdam.yaml");
        let text = std::fs::read_to_string(&grants).unwrap();
        let edited = edit(text.clone());
        std::fs::write(&grants, edited).unwrap();
        let (set, diagnostics) = crate::policy::compile::load(
            &policies,
            &root.join("schemas"),
            time::macros::date!(2026 - 12 - 05),
        );
        set.unwrap_or_else(|| panic!("{diagnostics:?}"))
    }

    fn replace(from: &'static str, to: &'static str) -> impl Fn(String) -> String {
        move |text| {
            assert!(text.contains(from), "{from}");
            text.replacen(from, to, 1)
        }
    }

    const INGANGSDATUM: &str =
        "      uitkeringen[*].ingangsdatum: year        # since when, to the year\n";

    #[test]
    fn the_same_policies_change_nothing() {
        let set = shipped_with(|t| t);
        assert_eq!(compare(&set, &shipped_with(|t| t)), Vec::new());
    }

    #[test]
    fn a_field_removed_is_lost_and_put_back_is_gained() {
        let before = shipped_with(|t| t);
        let after = shipped_with(replace(INGANGSDATUM, ""));
        let changes = compare(&before, &after);
        assert_eq!(changes.len(), 1, "{changes:?}");
        let c = &changes[0];
        assert_eq!(
            (
                c.consumer.as_str(),
                c.operation.as_str(),
                c.purpose.as_str(),
                c.kind
            ),
            (
                "wijkteam-rotterdam",
                "uwv/inkomen",
                "wams-onderzoek",
                ChangeKind::Changed
            )
        );
        assert_eq!(
            c.lost,
            [(
                "uitkeringen[*].ingangsdatum".to_string(),
                "year".to_string()
            )]
        );
        assert!(c.gained.is_empty() && c.transformed.is_empty() && c.terms.is_empty());
        let back = compare(&after, &before);
        assert_eq!(back[0].gained, c.lost);
        assert!(back[0].lost.is_empty());
    }

    #[test]
    fn a_finer_transform_is_a_change_of_its_own() {
        let before = shipped_with(|t| t);
        let after = shipped_with(replace(
            INGANGSDATUM,
            "      uitkeringen[*].ingangsdatum: keep\n",
        ));
        let changes = compare(&before, &after);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].transformed.len(), 1);
        let (_, was, now) = &changes[0].transformed[0];
        assert_eq!((was.as_str(), now.as_str()), ("year", "keep"));
        assert!(changes[0].gained.is_empty() && changes[0].lost.is_empty());
    }

    #[test]
    fn a_grant_withdrawn_revokes_all_its_fields_and_its_terms_show() {
        let before = shipped_with(|t| t);
        let after = shipped_with(replace(
            "valid_until: 2027-12-31",
            "valid_until: 2026-12-31",
        ));
        let changes = compare(&before, &after);
        assert!(
            changes.iter().all(|c| c.kind == ChangeKind::Changed
                && c.terms.iter().any(|t| t.starts_with("validity:"))),
            "{changes:?}"
        );
        // A grant that is no longer there at all.
        let without = shipped_with(|t| {
            let start = t.find("  - id: wijkteam-uwv-inkomen-onderzoek").unwrap();
            let end = t[start + 4..].find("  - id: ").unwrap() + start + 4;
            format!("{}{}", &t[..start], &t[end..])
        });
        let changes = compare(&before, &without);
        let revoked: Vec<_> = changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Revoked)
            .collect();
        assert_eq!(revoked.len(), 1, "{changes:?}");
        assert_eq!(revoked[0].operation, "uwv/inkomen");
        assert_eq!(revoked[0].lost.len(), 4);
        let granted = compare(&without, &before);
        assert_eq!(granted[0].kind, ChangeKind::Granted);
        assert_eq!(granted[0].gained, revoked[0].lost);
    }
}
