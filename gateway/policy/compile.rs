//! From policy files to a [`PolicySet`]: parse every file, check every rule, and build the
//! indexes the decision uses. All problems are collected (not just the first), each located at
//! `file:line:col` with what was expected and, for unknown names, a "did you mean".
//!
//! The checks are the ones a privacy officer would otherwise have to do by hand: references to
//! consumers, partners, operations and purposes exist; released fields exist in the partner's
//! schema; special categories (health, criminal, judicial) are released only under a purpose
//! that names the legal exception; no two grants decide the same request; nothing is
//! unreachable; expired grants are flagged.

use super::fieldpath::FieldPath;
use super::model::{PolicyFile, RawCondition, RawGrant, RawOperation, RawPurpose, S};
use super::schema::{self, Schemas, SPECIAL_CATEGORIES};
use super::template::PathTemplate;
use super::*;
use crate::diagnostic::{from_yaml_error, Diagnostic};
use crate::minimise::StrictSchema;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::Date;

/// Reads and compiles the policy directory against the schema directory. Returns the set only
/// when there is no error; warnings are returned either way.
pub fn load(dir: &Path, schemas_dir: &Path, today: Date) -> (Option<PolicySet>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let schemas = match Schemas::load(schemas_dir) {
        Ok(s) => s,
        Err(errors) => {
            for (file, message) in errors {
                diagnostics.push(Diagnostic::file_error(&file, message));
            }
            Schemas::default()
        }
    };
    let files = match policy_files(dir) {
        Ok(f) => f,
        Err(e) => {
            diagnostics.push(Diagnostic::file_error(dir, e));
            return (None, diagnostics);
        }
    };
    if files.is_empty() {
        diagnostics.push(Diagnostic::file_error(
            dir,
            "no policy files (*.yaml) found: with no grants every request would be refused",
        ));
    }
    let mut hasher = Sha256::new();
    let mut parsed = Vec::new();
    for path in files {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                diagnostics.push(Diagnostic::file_error(&path, format!("cannot read: {e}")));
                continue;
            }
        };
        let relative = path.strip_prefix(dir).unwrap_or(&path);
        hasher.update(relative.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
        hasher.update([0]);
        match serde_saphyr::from_str::<PolicyFile>(&text) {
            Ok(file) => parsed.push((path, file)),
            Err(e) => diagnostics.push(from_yaml_error(&path, &e)),
        }
    }
    hasher.update(schemas.fingerprint_input().as_bytes());
    let digest = hasher.finalize();
    let version = hex::encode(&digest[..8]);

    let strict_schemas = compile_strict_schemas(schemas_dir, &schemas, &mut diagnostics);
    let mut compiler = Compiler {
        today,
        schemas: &schemas,
        diagnostics: &mut diagnostics,
    };
    let mut set = compiler.compile(parsed, version);
    set.strict_schemas = strict_schemas;
    let ok = !diagnostics.iter().any(Diagnostic::is_error);
    diagnostics.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    (ok.then_some(set), diagnostics)
}

/// Strict-mode checks for every schema (the validator and, where it can be, the streaming
/// shape). Formats (`date`, …) are validated; references are resolved only within the schema
/// itself — a gateway never fetches a schema over the network or from elsewhere on disk at
/// run time.
fn compile_strict_schemas(
    dir: &Path,
    schemas: &Schemas,
    diagnostics: &mut Vec<Diagnostic>,
) -> HashMap<String, Arc<StrictSchema>> {
    let mut out = HashMap::new();
    for name in schemas.names() {
        let Some(schema) = schemas.get(name) else {
            continue;
        };
        match StrictSchema::compile(schema) {
            Ok(v) => {
                out.insert(name.to_string(), Arc::new(v));
            }
            Err(e) => diagnostics.push(Diagnostic::file_error(
                &dir.join(name),
                format!("not a usable JSON Schema (2020-12): {e}"),
            )),
        }
    }
    out
}

/// The policy files of a directory, recursively, sorted; `tests/` holds test cases, not policy.
fn policy_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    fn walk(dir: &Path, top: bool, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                if !(top && path.file_name().is_some_and(|n| n == "tests")) {
                    walk(&path, false, out)?;
                }
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, true, &mut out).map_err(|e| format!("cannot read the policy directory: {e}"))?;
    out.sort();
    Ok(out)
}

struct Compiler<'a> {
    today: Date,
    schemas: &'a Schemas,
    diagnostics: &'a mut Vec<Diagnostic>,
}

/// "did you mean …?" for a misspelt reference.
fn suggestion<'k>(wanted: &str, known: impl Iterator<Item = &'k str>) -> String {
    known
        .map(|k| (strsim::levenshtein(wanted, k), k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 4))
        .min()
        .map(|(_, k)| format!("; did you mean '{k}'?"))
        .unwrap_or_default()
}

fn is_policy_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub(super) fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()
}

impl Compiler<'_> {
    fn error(&mut self, file: &Path, at: &S, message: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::at(file, &at.referenced, message.into()));
    }

    fn warning(&mut self, file: &Path, at: &S, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::warning(
            file,
            at.referenced.line(),
            at.referenced.column(),
            message.into(),
        ));
    }

    fn id(&mut self, file: &Path, id: &S, what: &str, seen: &mut HashMap<String, (PathBuf, u64)>) {
        if !is_policy_id(&id.value) {
            self.error(
                file,
                id,
                format!("a {what} id is lowercase letters, digits and '-' (at most 64)"),
            );
        } else if let Some((other, line)) = seen.get(&id.value) {
            let message = format!(
                "{what} '{}' is already defined at {}:{line}",
                id.value,
                other.display()
            );
            self.error(file, id, message);
        } else {
            seen.insert(id.value.clone(), (file.to_path_buf(), id.referenced.line()));
        }
    }

    fn compile(&mut self, files: Vec<(PathBuf, PolicyFile)>, version: String) -> PolicySet {
        let mut consumers = BTreeMap::new();
        let mut seen = HashMap::new();
        for (file, f) in &files {
            for c in &f.consumers {
                self.id(file, &c.id, "consumer", &mut seen);
                consumers.insert(
                    c.id.value.clone(),
                    ConsumerInfo {
                        id: c.id.value.clone(),
                        name: c.name.clone(),
                        description: c.description.clone(),
                    },
                );
            }
        }

        let mut purposes = BTreeMap::new();
        let mut seen = HashMap::new();
        for (file, f) in &files {
            for p in &f.purposes {
                self.id(file, &p.id, "purpose", &mut seen);
                let purpose = self.purpose(file, p);
                purposes.insert(purpose.id.clone(), Arc::new(purpose));
            }
        }
        // References between purposes, once all are known.
        for (file, f) in &files {
            for p in &f.purposes {
                for other in &p.incompatible_with {
                    if !purposes.contains_key(&other.value) {
                        let hint = suggestion(&other.value, purposes.keys().map(String::as_str));
                        self.error(
                            file,
                            other,
                            format!("unknown purpose '{}'{hint}", other.value),
                        );
                    }
                }
            }
        }

        let mut operations: BTreeMap<String, Arc<Operation>> = BTreeMap::new();
        let mut partners = BTreeMap::new();
        let mut seen_partners = HashMap::new();
        for (file, f) in &files {
            for partner in &f.partners {
                self.id(file, &partner.id, "partner", &mut seen_partners);
                let mut seen_ops = HashMap::new();
                let mut ops: Vec<Arc<Operation>> = Vec::new();
                for raw in &partner.operations {
                    self.id(file, &raw.id, "operation", &mut seen_ops);
                    let Some(op) = self.operation(file, &partner.id.value, raw) else {
                        continue;
                    };
                    for earlier in &ops {
                        if earlier.method == op.method && earlier.template.overlaps(&op.template) {
                            let message = format!(
                                "operations '{}' and '{}' overlap: a {} request could match both, making one unreachable",
                                earlier.id, op.id, op.method
                            );
                            self.error(file, &raw.path, message);
                        }
                    }
                    let op = Arc::new(op);
                    operations.insert(op.key.clone(), op.clone());
                    ops.push(op);
                }
                partners.insert(
                    partner.id.value.clone(),
                    PartnerInfo {
                        id: partner.id.value.clone(),
                        name: partner
                            .name
                            .clone()
                            .unwrap_or_else(|| partner.id.value.clone()),
                        operations: ops,
                    },
                );
            }
        }

        let mut grants: Vec<Arc<Grant>> = Vec::new();
        let mut seen = HashMap::new();
        for (file, f) in &files {
            for raw in &f.grants {
                self.id(file, &raw.id, "grant", &mut seen);
                if let Some(grant) = self.grant(file, raw, &consumers, &purposes, &operations) {
                    grants.push(Arc::new(grant));
                }
            }
        }
        self.check_overlaps(&grants);

        let mut index: GrantIndex = HashMap::new();
        for grant in &grants {
            for consumer in &grant.consumers {
                index
                    .entry(consumer.clone())
                    .or_default()
                    .entry(grant.operation.clone())
                    .or_default()
                    .entry(grant.purpose.clone())
                    .or_default()
                    .push(grant.clone());
            }
        }
        let mut routes: HashMap<String, HashMap<http::Method, Vec<Arc<Operation>>>> =
            HashMap::new();
        for op in operations.values() {
            routes
                .entry(op.partner.clone())
                .or_default()
                .entry(op.method.clone())
                .or_default()
                .push(op.clone());
        }
        PolicySet {
            version,
            consumers,
            purposes,
            partners,
            operations,
            grants,
            index,
            routes,
            schemas: self.schemas.clone(),
            strict_schemas: HashMap::new(),
        }
    }

    fn purpose(&mut self, file: &Path, p: &RawPurpose) -> Purpose {
        let legal_basis = match &p.legal_basis {
            Some(lb) => {
                let gdpr = lb
                    .gdpr
                    .value
                    .trim()
                    .trim_start_matches("art.")
                    .trim()
                    .to_string();
                let valid = ["a", "b", "c", "d", "e", "f"]
                    .iter()
                    .any(|l| gdpr == format!("6(1)({l})"));
                if !valid {
                    self.error(
                        file,
                        &lb.gdpr,
                        "expected a GDPR art. 6 ground written as 6(1)(a) … 6(1)(f)",
                    );
                } else if gdpr == "6(1)(a)" {
                    self.warning(
                        file,
                        &lb.gdpr,
                        "consent (6(1)(a)) is not a valid basis between a government body and a citizen: the citizen depends on it (Wams explanatory memorandum §3.2.1)",
                    );
                }
                Some(LegalBasis {
                    gdpr,
                    law: lb.law.clone(),
                    article: lb.article.clone(),
                    note: lb.note.clone(),
                })
            }
            None => {
                if p.refused.is_none() {
                    self.error(
                        file,
                        &p.id,
                        "a purpose needs a legal_basis (gdpr ground and law)",
                    );
                }
                None
            }
        };
        let processing_activity = match &p.processing_activity {
            Some(uri) if uri.value.starts_with("https://") || uri.value.starts_with("urn:") => {
                Some(uri.value.clone())
            }
            Some(uri) => {
                self.error(file, uri, "a processing activity is a URI (https://… or urn:…) into the register of processing activities");
                None
            }
            None => {
                if p.refused.is_none() {
                    self.error(file, &p.id, "a purpose needs a processing_activity URI");
                }
                None
            }
        };
        let mut special_categories = BTreeMap::new();
        for (category, exception) in &p.special_categories {
            if !SPECIAL_CATEGORIES.contains(&category.value.as_str()) {
                self.error(
                    file,
                    category,
                    format!(
                        "'{}' is not a special category; expected one of {}",
                        category.value,
                        SPECIAL_CATEGORIES.join(", ")
                    ),
                );
            } else if exception.trim().is_empty() {
                self.error(
                    file,
                    category,
                    "name the legal exception that allows this category",
                );
            }
            special_categories.insert(category.value.clone(), exception.clone());
        }
        let legal_basis_text = legal_basis.as_ref().map(LegalBasis::summary);
        let header_values = PurposeHeaders {
            purpose: header_text(&p.id.value),
            legal_basis: legal_basis_text.as_deref().map(header_text),
            processing_activity: processing_activity.as_deref().map(header_text),
        };
        Purpose {
            header_values,
            legal_basis_text,
            id: p.id.value.clone(),
            title: p.title.clone(),
            legal_basis,
            processing_activity,
            special_categories,
            retention: p.retention.clone(),
            incompatible_with: p
                .incompatible_with
                .iter()
                .map(|s| s.value.clone())
                .collect(),
            refused: p.refused.clone(),
        }
    }

    fn schema_ref(&mut self, file: &Path, name: &Option<S>) -> Option<String> {
        let name = name.as_ref()?;
        if self.schemas.get(&name.value).is_none() {
            let hint = suggestion(&name.value, self.schemas.names());
            self.error(
                file,
                name,
                format!("no schema '{}' in the schema directory{hint}", name.value),
            );
            return None;
        }
        Some(name.value.clone())
    }

    fn operation(&mut self, file: &Path, partner: &str, raw: &RawOperation) -> Option<Operation> {
        let method = match raw.method.value.as_str() {
            "GET" => http::Method::GET,
            "POST" => http::Method::POST,
            "PUT" => http::Method::PUT,
            "PATCH" => http::Method::PATCH,
            "DELETE" => http::Method::DELETE,
            _ => {
                self.error(
                    file,
                    &raw.method,
                    "expected GET, POST, PUT, PATCH or DELETE",
                );
                return None;
            }
        };
        let template = match PathTemplate::parse(&raw.path.value) {
            Ok(t) => t,
            Err(e) => {
                self.error(file, &raw.path, e);
                return None;
            }
        };
        let words: Vec<&str> = raw.subject.value.split_whitespace().collect();
        let subject = match words.as_slice() {
            ["none"] => SubjectSource::None,
            ["path", param] if template.params().any(|p| p == *param) => {
                SubjectSource::Path((*param).to_string())
            }
            ["path", param] => {
                self.error(
                    file,
                    &raw.subject,
                    format!("the path template has no parameter '{{{param}}}'"),
                );
                return None;
            }
            ["body", field] => match FieldPath::parse(field) {
                Ok(f) => SubjectSource::Body(f),
                Err(e) => {
                    self.error(file, &raw.subject, e);
                    return None;
                }
            },
            _ => {
                self.error(
                    file,
                    &raw.subject,
                    "expected `path <parameter>`, `body <field>` or `none`",
                );
                return None;
            }
        };
        let response_schema = self.schema_ref(file, &raw.response_schema);
        let request_schema = self.schema_ref(file, &raw.request_schema);
        if let (SubjectSource::Body(field), Some(name)) = (&subject, &request_schema) {
            if let Some(schema) = self.schemas.get(name) {
                if schema::resolve(schema, field).is_none() {
                    self.error(
                        file,
                        &raw.subject,
                        format!("field '{field}' is not in {name}"),
                    );
                }
            }
        }
        Some(Operation {
            key: format!("{partner}/{}", raw.id.value),
            partner: partner.to_string(),
            id: raw.id.value.clone(),
            title: raw.title.clone(),
            method,
            template,
            subject,
            response_schema,
            request_schema,
        })
    }

    fn grant(
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
                            let released = schema::categories_under(schema, &parsed);
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
                _ => {
                    self.error(file, r, "expected case_id, actor or involved_partner");
                    ok = false;
                }
            }
        }

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

    fn condition(
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
    fn check_overlaps(&mut self, grants: &[Arc<Grant>]) {
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

use std::collections::BTreeSet;
