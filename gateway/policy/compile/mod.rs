//! From policy files to a [`PolicySet`]: parse every file, check every rule, and build the
//! indexes the decision uses. All problems are collected (not just the first), each located at
//! `file:line:col` with what was expected and, for unknown names, a "did you mean".
//!
//! The checks are the ones a privacy officer would otherwise have to do by hand: references to
//! consumers, partners, operations and purposes exist; released fields exist in the partner's
//! schema; special categories (health, criminal, judicial) are released only under a purpose
//! that names the legal exception; no two grants decide the same request; nothing is
//! unreachable; expired grants are flagged.

mod grants;
mod operations;
mod purposes;

use super::model::{PolicyFile, S};
use super::schema::Schemas;
use super::*;
use crate::diagnostic::{from_yaml_error, Diagnostic};
use crate::minimise::StrictSchema;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
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
                // `tests/` holds policy tests; `providers/` the release profiles of providers'
                // inways (SPEC §10), each a policy directory of its own.
                if !(top
                    && path
                        .file_name()
                        .is_some_and(|n| n == "tests" || n == "providers"))
                {
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

pub fn parse_date(s: &str) -> Option<Date> {
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
        if !crate::id::Id::is_valid(&id.value) {
            self.error(file, id, format!("a {what} id is {}", crate::id::Id::FORM));
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
                        private: partner.private,
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
                    if grant.time_out.is_some() {
                        let partner = grant.operation.split('/').next().unwrap_or_default();
                        if partners.get(partner).is_some_and(|p| p.private) {
                            self.error(
                                file,
                                &raw.operation,
                                format!("partner '{partner}' is a private party: a time-out is never directed at a private creditor (Verkenning 2019 §3.2.1)"),
                            );
                            continue;
                        }
                    }
                    grants.push(Arc::new(grant));
                }
            }
        }
        self.check_overlaps(&grants);
        // A purpose served under a registered case needs a retention the register can act on.
        for (file, f) in &files {
            for p in &f.purposes {
                let Some(purpose) = purposes.get(&p.id.value) else {
                    continue;
                };
                // A term that could not be read is reported where it is written.
                let unreadable_term = matches!(
                    &p.retention,
                    Some(crate::policy::model::RawRetention::Structured(_))
                );
                if purpose.retention_after_closure.is_some() || unreadable_term {
                    continue;
                }
                if let Some(grant) = grants
                    .iter()
                    .find(|g| g.purpose == purpose.id && g.requires.registered_case)
                {
                    let found = match &purpose.retention {
                        Some(text) => format!("the free text {text:?}"),
                        None => "nothing".to_string(),
                    };
                    self.error(
                        file,
                        &p.id,
                        format!("purpose '{}' is served under a registered case (grant '{}'), so its retention must be a term after closure, e.g. retention: {{after_closure: 1 year, note: ...}}; found {found}", purpose.id, grant.id),
                    );
                }
            }
        }

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
}
