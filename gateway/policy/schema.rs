//! Response and request schemas (JSON Schema 2020-12) as the policy engine uses them: to
//! check that a granted field exists and to know its data category (`x-data-category`).
//!
//! Only the structural keywords matter here (`properties`, `items`, local `$ref` into
//! `$defs`); full validation of partner responses against the schema is the minimisation
//! phase's job.

use super::fieldpath::{FieldPath, Segment};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Categories that need an explicit legal exception (GDPR art. 9 and 10) to be released.
pub const SPECIAL_CATEGORIES: &[&str] = &["health", "criminal", "judicial"];

/// Every data category a schema may tag a field with (`x-data-category`); see
/// `schemas/README.md` and docs/policies.md §7.
pub const DATA_CATEGORIES: &[&str] = &[
    "identifying",
    "financial",
    "employment",
    "health",
    "criminal",
    "judicial",
    "care",
    "contact",
    "family",
    "administrative",
    "other",
];

/// Why releasing `path` whole would release fields nobody checked: an object under it whose
/// schema is open (`additionalProperties` absent or not `false`, `patternProperties`) or
/// built from combinators (`allOf`, `anyOf`, `oneOf`), whose fields the grant cannot see.
/// `None` when everything under `path` is declared.
pub fn open_under(root: &Value, path: &FieldPath) -> Option<String> {
    fn walk(root: &Value, schema: &Value, at: &str, depth: usize) -> Option<String> {
        let schema = deref(root, schema);
        if depth > 32 {
            return None;
        }
        for combinator in ["allOf", "anyOf", "oneOf", "patternProperties"] {
            if schema.get(combinator).is_some() {
                return Some(format!("{at} is described with {combinator}"));
            }
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            if schema.get("additionalProperties") != Some(&Value::Bool(false)) {
                return Some(format!(
                    "{at} is an open object (additionalProperties is not false)"
                ));
            }
            for (k, sub) in props {
                if let Some(open) = walk(root, sub, &format!("{at}.{k}"), depth + 1) {
                    return Some(open);
                }
            }
        } else if schema.get("type").and_then(Value::as_str) == Some("object") {
            return Some(format!("{at} is an object without declared properties"));
        } else if let Some(items) = schema.get("items") {
            return walk(root, items, &format!("{at}[*]"), depth + 1);
        }
        None
    }
    let schema = resolve(root, path)?;
    walk(root, schema, &path.to_string(), 0)
}

/// All schemas of a schema directory, by file name.
#[derive(Debug, Default, Clone)]
pub struct Schemas {
    by_name: BTreeMap<String, Value>,
}

impl Schemas {
    /// Loads every `*.json` file in `dir`. Errors name the file.
    pub fn load(dir: &Path) -> Result<Self, Vec<(std::path::PathBuf, String)>> {
        let mut by_name = BTreeMap::new();
        let mut errors = Vec::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                return Err(vec![(
                    dir.to_path_buf(),
                    format!("cannot read the schema directory: {e}"),
                )])
            }
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<Value>(&bytes)
                        .map_err(|e| format!("invalid JSON: {e}"))
                }) {
                Ok(value) => {
                    by_name.insert(name, value);
                }
                Err(e) => errors.push((path, e)),
            }
        }
        if errors.is_empty() {
            Ok(Self { by_name })
        } else {
            Err(errors)
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.by_name.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// The raw bytes-equivalent content, for the policy version hash.
    pub fn fingerprint_input(&self) -> String {
        self.by_name
            .iter()
            .map(|(k, v)| format!("{k}\n{v}\n"))
            .collect()
    }
}

/// Follows a local `$ref` (`#/$defs/x`) once; other refs are left as they are.
fn deref<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) if r.starts_with("#/") => {
            let pointer = &r[1..];
            root.pointer(pointer).unwrap_or(schema)
        }
        _ => schema,
    }
}

/// The sub-schema at `path`, if the schema describes it.
pub fn resolve<'a>(root: &'a Value, path: &FieldPath) -> Option<&'a Value> {
    let mut current = deref(root, root);
    for segment in &path.0 {
        current = match segment {
            Segment::Key(k) => deref(root, current.get("properties")?.get(k)?),
            Segment::Each => deref(root, current.get("items")?),
        };
    }
    Some(current)
}

/// The part of `pointer` (into an answer described by `root`; array positions already `*`)
/// that the schema declares: the first member it does not name is written `*`, and nothing
/// beneath it is kept. Borrowed when every member is declared.
///
/// Why: a record names fields, and an undeclared member's key is the partner's text, not a
/// field anyone declared (an open object may key members by a diagnosis, or by a BSN written
/// with spaces); and a partner must not make a record grow with thousands of distinct keys.
/// Without a schema no member is declared.
pub fn declared_field<'a>(root: Option<&Value>, pointer: &'a str) -> std::borrow::Cow<'a, str> {
    use std::borrow::Cow;
    let undeclared = |end: usize| -> Cow<'a, str> {
        if pointer.len() == end + 2 && pointer.ends_with("/*") {
            Cow::Borrowed(pointer)
        } else {
            Cow::Owned(format!("{}/*", &pointer[..end]))
        }
    };
    let Some(root) = root else {
        return if pointer.is_empty() {
            Cow::Borrowed(pointer)
        } else {
            undeclared(0)
        };
    };
    let mut schema = deref(root, root);
    // Bytes of `pointer` declared so far.
    let mut end = 0usize;
    for token in pointer.split('/').skip(1) {
        let sub = if token == "*" {
            schema.get("items").filter(|items| items.is_object())
        } else {
            let name: Cow<'_, str> = if token.contains('~') {
                Cow::Owned(token.replace("~1", "/").replace("~0", "~"))
            } else {
                Cow::Borrowed(token)
            };
            schema
                .get("properties")
                .and_then(Value::as_object)
                .and_then(|properties| properties.get(name.as_ref()))
        };
        match sub {
            Some(sub) => {
                schema = deref(root, sub);
                end += 1 + token.len();
            }
            None => return undeclared(end),
        }
    }
    Cow::Borrowed(pointer)
}

/// Visits every property and array item of a schema, with its path, its (dereferenced)
/// schema and whether its object requires it. Depth-bounded: recursive schemas are not
/// expected, and a walk stops rather than loops.
fn walk(root: &Value, visit: &mut impl FnMut(&[Segment], &Value, bool)) {
    fn go(
        root: &Value,
        schema: &Value,
        prefix: &mut Vec<Segment>,
        visit: &mut impl FnMut(&[Segment], &Value, bool),
        depth: usize,
    ) {
        let schema = deref(root, schema);
        if depth > 32 {
            return;
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            let required = schema.get("required").and_then(Value::as_array);
            for (k, sub) in props {
                prefix.push(Segment::Key(k.clone()));
                let is_required = required.is_some_and(|r| r.iter().any(|n| n.as_str() == Some(k)));
                visit(prefix, deref(root, sub), is_required);
                go(root, sub, prefix, visit, depth + 1);
                prefix.pop();
            }
        } else if let Some(items) = schema.get("items") {
            prefix.push(Segment::Each);
            visit(prefix, deref(root, items), false);
            go(root, items, prefix, visit, depth + 1);
            prefix.pop();
        }
    }
    go(root, root, &mut Vec::new(), visit, 0);
}

/// Every leaf (non-object, non-array) path of a schema with its category (or `uncategorised`).
pub fn leaves(root: &Value) -> Vec<(FieldPath, String)> {
    let mut out = Vec::new();
    walk(root, &mut |path, schema, _| {
        if schema.get("properties").is_none() && schema.get("items").is_none() {
            let category = schema
                .get("x-data-category")
                .and_then(Value::as_str)
                .unwrap_or("uncategorised")
                .to_string();
            out.push((FieldPath(path.to_vec()), category));
        }
    });
    out
}

/// Every path a schema requires where its parent is present: each member of an object's
/// `required` list, below the properties and array items that lead to it.
pub fn required_paths(root: &Value) -> Vec<FieldPath> {
    let mut out = Vec::new();
    walk(root, &mut |path, _, required| {
        if required {
            out.push(FieldPath(path.to_vec()));
        }
    });
    out
}

/// The data categories released by releasing `path` (the leaf's own, or every leaf beneath).
pub fn categories_under(root: &Value, path: &FieldPath) -> BTreeSet<String> {
    leaves(root)
        .into_iter()
        .filter(|(leaf, _)| leaf.is_within(path))
        .map(|(_, c)| c)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "bsn": {"type": "string", "x-data-category": "identifying"},
                "uitkeringen": {"type": "array", "items": {"$ref": "#/$defs/uitkering"}}
            },
            "$defs": {"uitkering": {"type": "object", "properties": {
                "soort": {"type": "string", "x-data-category": "financial"},
                "medische_reden": {"type": "string", "x-data-category": "health"}
            }}}
        })
    }

    #[test]
    fn resolves_paths_through_refs() {
        let s = schema();
        assert!(resolve(&s, &FieldPath::parse("uitkeringen[*].soort").unwrap()).is_some());
        assert!(resolve(&s, &FieldPath::parse("uitkeringen.soort").unwrap()).is_none());
        assert!(resolve(&s, &FieldPath::parse("nope").unwrap()).is_none());
    }

    #[test]
    fn lists_required_paths_below_their_parents() {
        let s = json!({
            "type": "object",
            "required": ["bsn", "trajecten"],
            "properties": {
                "bsn": {"type": "string"},
                "trajecten": {"type": "array", "items": {"type": "object",
                    "required": ["aanbieder"],
                    "properties": {"aanbieder": {"type": "string"}, "zorginhoud": {"type": "string"}}}},
                "extra": {"type": "string"}
            }
        });
        let required: Vec<String> = required_paths(&s).iter().map(|p| p.to_string()).collect();
        assert_eq!(required, ["bsn", "trajecten", "trajecten[*].aanbieder"]);
    }

    #[test]
    fn lists_leaves_and_categories() {
        let s = schema();
        let leaves: Vec<String> = leaves(&s).iter().map(|(p, c)| format!("{p}={c}")).collect();
        assert_eq!(
            leaves,
            [
                "bsn=identifying",
                "uitkeringen[*].medische_reden=health",
                "uitkeringen[*].soort=financial"
            ]
        );
        let cats = categories_under(&s, &FieldPath::parse("uitkeringen").unwrap());
        assert!(cats.contains("health") && cats.contains("financial"));
    }
}
