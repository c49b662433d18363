//! Checking grants: references, released fields against the partner's schema and the
//! purpose's special categories, conditions, validity, and overlaps between grants.

use super::{parse_date, suggestion, Compiler};
use crate::diagnostic::Diagnostic;
use crate::policy::fieldpath::FieldPath;
use crate::policy::model::{RawCondition, RawGrant, RawTimeOut, S};
use crate::policy::schema::{self, SPECIAL_CATEGORIES};
use crate::policy::{
    Condition, ConsumerInfo, FourEyes, Grant, Operation, Purpose, RelativeDate, ReleasedField,
    Requirements, Source, SubjectSource, Test, TimeOutRule, Transform,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use time::Date;

impl Compiler<'_> {
    pub(super) fn grant(
        &mut self,
        file: &Path,
        raw: &RawGrant,
        consumers: &BTreeMap<String, ConsumerInfo>,
        purposes: &BTreeMap<String, Arc<Purpose>>,
        operations: &BTreeMap<String, Arc<Operation>>,
    ) -> Option<Grant> {
        let mut ok = true;
        if raw.consumers.is_empty() {
            self.error(file, &raw.id, "a grant names at least one consumer");
            ok = false;
        }
        for c in &raw.consumers {
            if !consumers.contains_key(&c.value) {
                let hint = suggestion(&c.value, consumers.keys().map(String::as_str));
                self.error(file, c, format!("unknown consumer '{}'{hint}", c.value));
                ok = false;
            }
        }
        let operation = operations.get(&raw.operation.value).cloned();
        if operation.is_none() {
            let hint = suggestion(&raw.operation.value, operations.keys().map(String::as_str));
            let message = if raw.operation.value.contains('/') {
                format!("unknown operation '{}'{hint}", raw.operation.value)
            } else {
                format!("expected <partner>/<operation>, e.g. uwv/inkomen{hint}")
            };
            self.error(file, &raw.operation, message);
            ok = false;
        }
        let purpose = purposes.get(&raw.purpose.value).cloned();
        match &purpose {
            None => {
                let hint = suggestion(&raw.purpose.value, purposes.keys().map(String::as_str));
                self.error(
                    file,
                    &raw.purpose,
                    format!("unknown purpose '{}'{hint}", raw.purpose.value),
                );
                ok = false;
            }
            Some(p) if p.refused.is_some() => {
                self.error(
                    file,
                    &raw.purpose,
                    format!(
                        "purpose '{}' is refused by the purpose catalog; it cannot be granted",
                        p.id
                    ),
                );
                ok = false;
            }
            Some(_) => {}
        }
        let response_schema = operation
            .as_ref()
            .and_then(|op| op.response_schema.as_ref())
            .and_then(|n| self.schemas.get(n).cloned());
        let request_schema = operation
            .as_ref()
            .and_then(|op| op.request_schema.as_ref())
            .and_then(|n| self.schemas.get(n).cloned());

        // Released fields, sorted by position so messages come out in file order.
        let mut field_entries: Vec<(&S, &S)> = raw.fields.iter().collect();
        field_entries.sort_by_key(|(k, _)| (k.referenced.line(), k.referenced.column()));
        // Built field by field, in file order, so a contradiction points at its field.
        let mut release = crate::minimise::FieldTree::default();
        let mut fields = Vec::new();
        let mut categories = BTreeSet::new();
        for (path, transform) in field_entries {
            let parsed = match FieldPath::parse(&path.value) {
                Ok(p) => p,
                Err(e) => {
                    self.error(file, path, e);
                    ok = false;
                    continue;
                }
            };
            let transform = match Transform::parse(&transform.value) {
                Ok(t) => t,
                Err(e) => {
                    self.error(file, transform, e);
                    ok = false;
                    continue;
                }
            };
            if let Some(op) = &operation {
                match &response_schema {
                    None => {
                        self.error(
                            file,
                            path,
                            format!("operation '{}' has no response_schema, so released fields cannot be checked", op.key),
                        );
                        ok = false;
                    }
                    Some(schema) => match schema::resolve(schema, &parsed) {
                        None => {
                            let known: Vec<String> = schema::leaves(schema)
                                .iter()
                                .map(|(p, _)| p.to_string())
                                .collect();
                            let hint = suggestion(&path.value, known.iter().map(String::as_str));
                            let name = op.response_schema.as_deref().unwrap_or_default();
                            self.error(
                                file,
                                path,
                                format!("field '{}' is not in {name}{hint}", path.value),
                            );
                            ok = false;
                        }
                        Some(_) => {
                            if let Some(open) = schema::open_under(schema, &parsed) {
                                self.error(
                                    file,
                                    path,
                                    format!(
                                        "releasing '{}' releases everything under it, but {open}: fields nobody declared (a special category among them) would leave unchecked; list the fields, or close the schema",
                                        path.value
                                    ),
                                );
                                ok = false;
                            }
                            let released = schema::categories_under(schema, &parsed);
                            for category in &released {
                                if category == "uncategorised" {
                                    self.error(
                                        file,
                                        path,
                                        format!(
                                            "'{}' releases a field without an x-data-category in its schema: tag every field, so special categories cannot pass untagged",
                                            path.value
                                        ),
                                    );
                                    ok = false;
                                } else if !schema::DATA_CATEGORIES.contains(&category.as_str()) {
                                    let hint = suggestion(
                                        category,
                                        schema::DATA_CATEGORIES.iter().copied(),
                                    );
                                    self.error(
                                        file,
                                        path,
                                        format!(
                                            "'{}' releases a field of unknown data category '{category}' (expected one of {}){hint}",
                                            path.value,
                                            schema::DATA_CATEGORIES.join(", ")
                                        ),
                                    );
                                    ok = false;
                                }
                            }
                            if let Some(purpose) = &purpose {
                                for category in &released {
                                    if SPECIAL_CATEGORIES.contains(&category.as_str())
                                        && !purpose.special_categories.contains_key(category)
                                    {
                                        self.error(
                                            file,
                                            path,
                                            format!(
                                                "releases {category} data, but purpose '{}' names no legal exception for {category} (add it under special_categories, or do not release this field)",
                                                purpose.id
                                            ),
                                        );
                                        ok = false;
                                    }
                                }
                            }
                            categories.extend(released);
                        }
                    },
                }
            }
            if let Err(e) = release.insert(&parsed, &transform) {
                self.error(file, path, e);
                ok = false;
            }
            fields.push(ReleasedField {
                path: parsed,
                transform,
            });
        }
        fields.sort_by(|a, b| a.path.cmp(&b.path));

        let mut query = Vec::new();
        for q in &raw.query {
            if crate::context::is_plain_id(&q.value) {
                query.push(q.value.clone());
            } else {
                self.error(
                    file,
                    q,
                    "a query parameter name is letters, digits and . _ : / -",
                );
                ok = false;
            }
        }
        let mut request_fields = Vec::new();
        for f in &raw.request_fields {
            match FieldPath::parse(&f.value) {
                Ok(p) => {
                    if let Some(schema) = &request_schema {
                        if schema::resolve(schema, &p).is_none() {
                            self.error(
                                file,
                                f,
                                format!("field '{}' is not in the request schema", f.value),
                            );
                            ok = false;
                        }
                    }
                    request_fields.push(p);
                }
                Err(e) => {
                    self.error(file, f, e);
                    ok = false;
                }
            }
        }

        let mut requires = Requirements::default();
        for r in &raw.requires {
            match r.value.as_str() {
                "case_id" => requires.case_id = true,
                "actor" => requires.actor = true,
                "involved_partner" => requires.involved_partner = true,
                "registered_case" => {
                    // A registered case is named by its id.
                    requires.registered_case = true;
                    requires.case_id = true;
                }
                "prior_time_out" => requires.prior_time_out = true,
                _ => {
                    self.error(
                        file,
                        r,
                        "expected case_id, actor, involved_partner, registered_case or prior_time_out",
                    );
                    ok = false;
                }
            }
        }

        if requires.prior_time_out && !requires.registered_case {
            self.error(
                file,
                &raw.id,
                "prior_time_out is looked up in the case register: add registered_case to requires",
            );
            ok = false;
        }
        let time_out = match &raw.time_out {
            None => None,
            Some(t) => {
                let rule = self.time_out_rule(file, t, request_schema.as_ref());
                if !requires.registered_case {
                    self.error(
                        file,
                        &t.ends,
                        "a time-out is kept in the case's time-out ledger: add registered_case to requires",
                    );
                    ok = false;
                }
                if rule.is_none() {
                    ok = false;
                }
                rule
            }
        };

        let mut conditions = Vec::new();
        for c in &raw.conditions {
            match self.condition(file, c, request_schema.as_ref()) {
                Some(condition) => conditions.push(condition),
                None => ok = false,
            }
        }
        if let Some(op) = &operation {
            if !conditions.is_empty() && op.method == http::Method::GET {
                self.warning(file, &raw.id, "conditions apply to request bodies; a GET has none, so every condition will fail");
            }
            match (&op.subject, &raw.without_subject) {
                (SubjectSource::None, None) => {
                    self.error(
                        file,
                        &raw.operation,
                        format!("operation '{}' is not about one data subject: the grant must say why that is allowed (without_subject: …) — no fishing expeditions", op.key),
                    );
                    ok = false;
                }
                (SubjectSource::None, Some(reason)) if reason.trim().is_empty() => {
                    self.error(file, &raw.id, "without_subject needs the reason");
                    ok = false;
                }
                (SubjectSource::Path(_) | SubjectSource::Body(_), Some(_)) => {
                    self.warning(file, &raw.id, format!("without_subject has no effect: operation '{}' is about one data subject", op.key));
                }
                _ => {}
            }
        }

        let mut date = |s: &Option<S>| -> Option<Date> {
            let s = s.as_ref()?;
            let d = parse_date(&s.value);
            if d.is_none() {
                self.error(file, s, "expected a date written as YYYY-MM-DD");
            }
            d
        };
        let valid_from = date(&raw.valid_from);
        let valid_until = date(&raw.valid_until);
        if let (Some(from), Some(until)) = (valid_from, valid_until) {
            if until < from {
                if let Some(at) = &raw.valid_until {
                    self.error(file, at, "unreachable: valid_until lies before valid_from");
                }
                ok = false;
            }
        }
        if let (Some(until), Some(at)) = (valid_until, &raw.valid_until) {
            if until < self.today {
                self.warning(
                    file,
                    at,
                    format!(
                        "grant '{}' has expired: it refuses every request (grant-expired)",
                        raw.id.value
                    ),
                );
            }
        }
        if raw.rationale.trim().is_empty() {
            self.error(
                file,
                &raw.id,
                "every grant needs a rationale: the legal reasoning for reviewers",
            );
            ok = false;
        }

        let keep = Transform::Keep;
        let request_allow = if request_fields.is_empty() {
            None
        } else {
            match crate::minimise::FieldTree::build(request_fields.iter().map(|p| (p, &keep))) {
                Ok(t) => Some(t),
                Err(e) => {
                    self.error(file, &raw.id, format!("request_fields: {e}"));
                    return None;
                }
            }
        };
        if let Some(op) = &operation {
            if matches!(
                op.method,
                http::Method::POST | http::Method::PUT | http::Method::PATCH
            ) && request_allow.is_none()
            {
                self.warning(file, &raw.id, format!("operation '{}' takes a request body, but the grant lists no request_fields: every request with a body will be refused", op.key));
            }
        }
        let (operation, purpose) = match (operation, purpose) {
            (Some(o), Some(p)) if ok => (o, p),
            _ => return None,
        };
        Some(Grant {
            id: raw.id.value.clone(),
            consumers: raw.consumers.iter().map(|c| c.value.clone()).collect(),
            operation: operation.key.clone(),
            purpose: purpose.id.clone(),
            fields,
            categories,
            query,
            request_fields,
            requires,
            conditions,
            four_eyes: raw.four_eyes.as_ref().map(|f| FourEyes {
                role: f.role.clone(),
            }),
            time_out,
            without_subject: raw.without_subject.clone(),
            valid_from,
            valid_until,
            rationale: raw.rationale.trim().to_string(),
            source: Source {
                file: file.to_path_buf(),
                line: raw.id.referenced.line(),
            },
            release,
            request_allow,
        })
    }

    /// A time-out grant's ledger rule: the end date and claims fields must be in the request
    /// schema, the cumulative term a term.
    fn time_out_rule(
        &mut self,
        file: &Path,
        t: &RawTimeOut,
        request_schema: Option<&serde_json::Value>,
    ) -> Option<TimeOutRule> {
        let mut field = |at: &S| -> Option<FieldPath> {
            let path = match FieldPath::parse(&at.value) {
                Ok(p) => p,
                Err(e) => {
                    self.error(file, at, e);
                    return None;
                }
            };
            if request_schema.is_none_or(|schema| schema::resolve(schema, &path).is_none()) {
                self.error(
                    file,
                    at,
                    format!(
                        "field '{}' is not in the operation's request schema",
                        at.value
                    ),
                );
                return None;
            }
            Some(path)
        };
        let ends = field(&t.ends);
        // Every field is checked before giving up, so each mistake is reported at once.
        let claims = t.claims.as_ref().map(&mut field);
        let claims = match claims {
            Some(None) => None,
            Some(Some(path)) => Some(Some(path)),
            None => Some(None),
        };
        let max_total = match RelativeDate::parse_term(&t.max_total.value) {
            Ok(term) => Some(term),
            Err(e) => {
                self.error(file, &t.max_total, e);
                None
            }
        };
        Some(TimeOutRule {
            ends: ends?,
            claims: claims?,
            max_total: max_total?,
            extension_role: t.extension.as_ref().and_then(|e| e.role.clone()),
        })
    }

    pub(super) fn condition(
        &mut self,
        file: &Path,
        c: &RawCondition,
        request_schema: Option<&serde_json::Value>,
    ) -> Option<Condition> {
        let field = match FieldPath::parse(&c.field.value) {
            Ok(f) => f,
            Err(e) => {
                self.error(file, &c.field, e);
                return None;
            }
        };
        if let Some(schema) = request_schema {
            if schema::resolve(schema, &field).is_none() {
                let known: Vec<String> = schema::leaves(schema)
                    .iter()
                    .map(|(p, _)| p.to_string())
                    .collect();
                let hint = suggestion(&c.field.value, known.iter().map(String::as_str));
                self.error(
                    file,
                    &c.field,
                    format!(
                        "field '{}' is not in the request schema{hint}",
                        c.field.value
                    ),
                );
                return None;
            }
        }
        let mut tests = Vec::new();
        if let Some(s) = &c.at_most {
            match RelativeDate::parse(&s.value) {
                Ok(d) => tests.push(Test::AtMost(d)),
                Err(e) => self.error(file, s, e),
            }
        }
        if let Some(s) = &c.at_least {
            match RelativeDate::parse(&s.value) {
                Ok(d) => tests.push(Test::AtLeast(d)),
                Err(e) => self.error(file, s, e),
            }
        }
        if let Some(list) = &c.one_of {
            tests.push(Test::OneOf(list.iter().map(|s| s.value.clone()).collect()));
        }
        if let Some(list) = &c.not_one_of {
            tests.push(Test::NotOneOf(
                list.iter().map(|s| s.value.clone()).collect(),
            ));
        }
        if c.equals_subject == Some(true) {
            tests.push(Test::EqualsSubject);
        }
        if tests.len() != 1 {
            self.error(
                file,
                &c.field,
                "a condition has exactly one test: at_most, at_least, one_of, not_one_of or equals_subject",
            );
            return None;
        }
        let test = tests.pop()?;
        let message = c.message.clone().unwrap_or_else(|| test.describe(&field));
        Some(Condition {
            field,
            test,
            message,
        })
    }

    /// Two grants for the same consumer, operation and purpose whose validity overlaps would
    /// make the decision depend on file order.
    pub(super) fn check_overlaps(&mut self, grants: &[Arc<Grant>]) {
        let mut by_key: HashMap<(&str, &str, &str), Vec<&Arc<Grant>>> = HashMap::new();
        for g in grants {
            for c in &g.consumers {
                by_key
                    .entry((c.as_str(), g.operation.as_str(), g.purpose.as_str()))
                    .or_default()
                    .push(g);
            }
        }
        let mut reported = HashSet::new();
        let mut keys: Vec<_> = by_key.keys().copied().collect();
        keys.sort();
        for key in keys {
            let list = &by_key[&key];
            for (i, a) in list.iter().enumerate() {
                for b in &list[i + 1..] {
                    // Validity windows; an open end is unbounded. `Option::max` treats None as
                    // smaller than any date, which is what an open `valid_from` means.
                    let lo = a.valid_from.max(b.valid_from);
                    let hi = match (a.valid_until, b.valid_until) {
                        (Some(x), Some(y)) => Some(x.min(y)),
                        (x, None) | (None, x) => x,
                    };
                    let overlap = match (lo, hi) {
                        (Some(lo), Some(hi)) => lo <= hi,
                        _ => true,
                    };
                    if overlap && reported.insert((a.id.clone(), b.id.clone())) {
                        self.diagnostics.push(Diagnostic::error(
                            &b.source.file,
                            b.source.line,
                            1,
                            format!(
                                "grant '{}' overlaps grant '{}' ({}:{}) for consumer '{}', operation '{}', purpose '{}': which one decides would be ambiguous",
                                b.id, a.id, a.source.file.display(), a.source.line, key.0, key.1, key.2
                            ),
                        ));
                    }
                }
            }
        }
    }
}
