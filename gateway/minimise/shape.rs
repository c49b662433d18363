//! A partner schema compiled twice: as the `jsonschema` validator (the reference, which
//! knows all of JSON Schema 2020-12) and, when the schema keeps to the keywords partner
//! schemas use, as a `Shape` the streaming minimiser (`super::stream`) checks while it
//! reads the body once.
//!
//! The shape covers the structural keywords (`type`, `properties`, `required`,
//! `additionalProperties: true|false`, `items`, `minItems`, `maxItems`) and the common value
//! checks (`minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `minLength`,
//! `maxLength`, an `enum` of strings, `format: date`). A leaf with any other self-contained
//! keyword (`pattern`, another `format`, `multipleOf`, `const`, …) keeps the streaming path
//! and is checked by a small `jsonschema` validator built from that leaf alone, so its
//! semantics are the crate's. A schema with anything the shape cannot express exactly
//! (references, combinators, `patternProperties`, `prefixItems`, unions with containers, …)
//! has no shape, and its answers take the reference path: parse to a tree, validate it with
//! the crate, rebuild. Either way the same answers are accepted and refused; the property
//! tests in `tests.rs` compare the two paths on generated answers.

use serde_json::{Map, Number, Value};

/// Keywords that only annotate: they never make an instance invalid.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "title",
    "description",
    "examples",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Keywords that reach outside the subschema they stand in: a leaf using one cannot be
/// validated on its own.
const REFERENCES: &[&str] = &[
    "$ref",
    "$dynamicRef",
    "$recursiveRef",
    "$anchor",
    "$dynamicAnchor",
    "$defs",
    "definitions",
];

/// Most properties an object shape tracks (seen and required keys are bit sets).
const MAX_PROPERTIES: usize = 64;

/// The validator options of strict mode: draft 2020-12, formats are assertions.
pub fn validator_options() -> jsonschema::ValidationOptions<'static> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
}

/// One operation schema, compiled once per policy load.
pub struct StrictSchema {
    validator: jsonschema::Validator,
    shape: Option<Shape>,
}

impl std::fmt::Debug for StrictSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StrictSchema")
            .field("streaming", &self.shape.is_some())
            .finish_non_exhaustive()
    }
}

impl StrictSchema {
    /// Compiles `schema`; the error is the crate's reason it is not a usable schema.
    pub fn compile(schema: &Value) -> Result<Self, String> {
        let validator = validator_options()
            .build(schema)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            validator,
            shape: Shape::compile(schema),
        })
    }

    /// Whether `value` is valid (the reference check).
    pub fn is_valid(&self, value: &Value) -> bool {
        self.validator.is_valid(value)
    }

    /// Whether answers can be checked while streaming (else they take the reference path).
    pub fn streams(&self) -> bool {
        self.shape.is_some()
    }

    pub(super) fn shape(&self) -> Option<&Shape> {
        self.shape.as_ref()
    }
}

/// Any value: the shape of an operation without a schema.
pub(super) static ANY: Shape = Shape::Any;

/// What one position in a document may hold.
#[derive(Debug)]
pub(super) enum Shape {
    /// Anything (no schema, `true`, or a schema of annotations only).
    Any,
    Object(ObjectShape),
    Array(ArrayShape),
    Leaf(LeafShape),
}

#[derive(Debug)]
pub(super) struct ObjectShape {
    pub(super) properties: Vec<(String, Shape)>,
    /// Each property's JSON-pointer token (`/name`, RFC 6901 escaped), made once.
    pub(super) tokens: Vec<String>,
    /// Whether each property's name is its own JSON string body (no escapes needed).
    pub(super) plain: Vec<bool>,
    /// Bit i: `properties[i]` is required.
    pub(super) required: u64,
    /// Whether keys outside `properties` are allowed (then with any value).
    pub(super) additional: bool,
}

impl ObjectShape {
    /// If `rest` (the bytes after a key's opening quote) starts with a property name
    /// followed by the closing quote, that name's length. Only names that need no escaping
    /// can match this way, so the bytes are exactly the key.
    pub(super) fn plain_key_at(&self, rest: &[u8]) -> Option<usize> {
        self.properties
            .iter()
            .zip(&self.plain)
            .find_map(|((name, _), &plain)| {
                let n = name.len();
                (plain && rest.get(n) == Some(&b'"') && rest.starts_with(name.as_bytes()))
                    .then_some(n)
            })
    }

    pub(super) fn property(&self, key: &str) -> Option<(usize, &Shape)> {
        self.properties
            .iter()
            .enumerate()
            .find(|(_, (k, _))| k == key)
            .map(|(i, (_, s))| (i, s))
    }
}

#[derive(Debug)]
pub(super) struct ArrayShape {
    pub(super) items: Box<Shape>,
    pub(super) min_items: u64,
    pub(super) max_items: u64,
}

/// Bit set of the JSON types a leaf accepts.
pub(super) mod types {
    pub const NULL: u8 = 1;
    pub const BOOLEAN: u8 = 2;
    pub const INTEGER: u8 = 4;
    /// Any number (includes integers).
    pub const NUMBER: u8 = 8;
    pub const STRING: u8 = 16;
}

#[derive(Debug)]
pub(super) struct LeafShape {
    pub(super) types: u8,
    pub(super) checks: LeafChecks,
}

/// How a leaf's value is checked beyond its type.
pub(super) enum LeafChecks {
    /// Only the type.
    None,
    /// Checks the streaming pass makes itself.
    Native(Box<NativeChecks>),
    /// The crate's validator of this leaf's schema (it checks the type too).
    Validator(Box<jsonschema::Validator>),
}

impl std::fmt::Debug for LeafChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Native(n) => n.fmt(f),
            Self::Validator(_) => f.write_str("Validator"),
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct NativeChecks {
    pub(super) minimum: Option<Bound>,
    pub(super) maximum: Option<Bound>,
    pub(super) exclusive_minimum: Option<Bound>,
    pub(super) exclusive_maximum: Option<Bound>,
    pub(super) min_length: Option<u64>,
    pub(super) max_length: Option<u64>,
    pub(super) one_of_strings: Option<Vec<String>>,
    pub(super) date: bool,
}

/// A numeric bound, kept exactly when it is an integer.
#[derive(Debug, Clone, Copy)]
pub(super) enum Bound {
    Int(i64),
    Float(f64),
}

impl Bound {
    fn of(value: &Value) -> Option<Self> {
        let n = value.as_number()?;
        Some(match n.as_i64() {
            Some(i) => Self::Int(i),
            None => Self::Float(n.as_f64()?),
        })
    }

    /// `value` compared with the bound.
    pub(super) fn cmp(self, value: &Num) -> Option<std::cmp::Ordering> {
        match (value, self) {
            (Num::Int(v), Bound::Int(b)) => Some(v.cmp(&b)),
            (Num::Int(v), Bound::Float(b)) => (*v as f64).partial_cmp(&b),
            (Num::Other(n), b) => {
                let v = n.as_f64()?;
                match b {
                    Bound::Int(b) => match (n.as_i64(), n.as_u64()) {
                        (Some(v), _) => Some(v.cmp(&b)),
                        // Above every i64.
                        (None, Some(_)) => Some(std::cmp::Ordering::Greater),
                        _ => v.partial_cmp(&(b as f64)),
                    },
                    Bound::Float(b) => v.partial_cmp(&b),
                }
            }
        }
    }
}

/// A number as the streaming pass holds it: small integers without the general parser.
#[derive(Debug)]
pub(super) enum Num {
    Int(i64),
    Other(Number),
}

impl Num {
    pub(super) fn is_integer(&self) -> bool {
        match self {
            Self::Int(_) => true,
            Self::Other(n) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
        }
    }
}

impl Shape {
    /// The shape of a schema, or `None` when the schema uses what a shape cannot express.
    pub(super) fn compile(schema: &Value) -> Option<Self> {
        match schema {
            Value::Bool(true) => Some(Self::Any),
            Value::Object(map) => Self::compile_object(map),
            _ => None,
        }
    }

    fn compile_object(map: &Map<String, Value>) -> Option<Self> {
        let keywords = || {
            map.keys()
                .map(String::as_str)
                .filter(|k| !ANNOTATIONS.contains(k) && !k.starts_with("x-"))
        };
        match map.get("type") {
            None if keywords().next().is_none() => Some(Self::Any),
            None => None,
            Some(Value::String(t)) if t == "object" => {
                if keywords().any(|k| {
                    !["type", "properties", "required", "additionalProperties"].contains(&k)
                }) {
                    return None;
                }
                Self::compile_properties(map)
            }
            Some(Value::String(t)) if t == "array" => {
                if keywords().any(|k| !["type", "items", "minItems", "maxItems"].contains(&k)) {
                    return None;
                }
                let items = match map.get("items") {
                    None => Self::Any,
                    Some(items) => Self::compile(items)?,
                };
                let count = |k: &str, default: u64| match map.get(k) {
                    None => Some(default),
                    Some(v) => v.as_u64(),
                };
                Some(Self::Array(ArrayShape {
                    items: Box::new(items),
                    min_items: count("minItems", 0)?,
                    max_items: count("maxItems", u64::MAX)?,
                }))
            }
            Some(t) => {
                let types = leaf_types(t)?;
                if keywords().any(|k| REFERENCES.contains(&k)) {
                    return None;
                }
                let checks = if keywords().all(|k| k == "type") {
                    LeafChecks::None
                } else if let Some(native) = native_checks(map, keywords()) {
                    LeafChecks::Native(Box::new(native))
                } else {
                    let leaf = validator_options()
                        .build(&Value::Object(map.clone()))
                        .ok()?;
                    LeafChecks::Validator(Box::new(leaf))
                };
                Some(Self::Leaf(LeafShape { types, checks }))
            }
        }
    }

    fn compile_properties(map: &Map<String, Value>) -> Option<Self> {
        let mut properties = Vec::new();
        if let Some(props) = map.get("properties") {
            for (key, sub) in props.as_object()? {
                properties.push((key.clone(), Self::compile(sub)?));
            }
        }
        if properties.len() > MAX_PROPERTIES {
            return None;
        }
        let mut required = 0u64;
        if let Some(names) = map.get("required") {
            for name in names.as_array()? {
                // A required key outside `properties` would need tracking of extra keys.
                let i = properties
                    .iter()
                    .position(|(k, _)| Some(k.as_str()) == name.as_str())?;
                required |= 1 << i;
            }
        }
        let additional = match map.get("additionalProperties") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return None,
        };
        let tokens = properties
            .iter()
            .map(|(key, _)| {
                let mut token = String::new();
                super::tree::push_token(&mut token, key);
                token
            })
            .collect();
        let plain = properties.iter().map(|(name, _)| is_plain(name)).collect();
        Some(Self::Object(ObjectShape {
            properties,
            tokens,
            plain,
            required,
            additional,
        }))
    }
}

/// Whether a name is its own JSON string body (no quote, backslash or control character).
fn is_plain(name: &str) -> bool {
    !name.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

/// The types of a leaf `type` keyword; `None` if it names a container or is malformed.
fn leaf_types(t: &Value) -> Option<u8> {
    let one = |name: &str| match name {
        "null" => Some(types::NULL),
        "boolean" => Some(types::BOOLEAN),
        "integer" => Some(types::INTEGER),
        "number" => Some(types::NUMBER),
        "string" => Some(types::STRING),
        _ => None,
    };
    match t {
        Value::String(name) => one(name),
        Value::Array(names) if !names.is_empty() => names
            .iter()
            .try_fold(0u8, |acc, n| Some(acc | one(n.as_str()?)?)),
        _ => None,
    }
}

/// The native form of a leaf's keywords, when every one of them has one.
fn native_checks<'a>(
    map: &Map<String, Value>,
    keywords: impl Iterator<Item = &'a str>,
) -> Option<NativeChecks> {
    let mut n = NativeChecks::default();
    for k in keywords {
        let v = &map[k];
        match k {
            "type" => {}
            "minimum" => n.minimum = Some(Bound::of(v)?),
            "maximum" => n.maximum = Some(Bound::of(v)?),
            "exclusiveMinimum" => n.exclusive_minimum = Some(Bound::of(v)?),
            "exclusiveMaximum" => n.exclusive_maximum = Some(Bound::of(v)?),
            "minLength" => n.min_length = Some(v.as_u64()?),
            "maxLength" => n.max_length = Some(v.as_u64()?),
            "enum" => {
                let strings = v
                    .as_array()?
                    .iter()
                    .map(|s| s.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()?;
                n.one_of_strings = Some(strings);
            }
            "format" if v == "date" => n.date = true,
            _ => return None,
        }
    }
    Some(n)
}

/// RFC 3339 `full-date`, as JSON Schema's `date` format (and the `jsonschema` crate) read it:
/// exactly `YYYY-MM-DD`, a real calendar day. The `year` transform reads dates the same way.
pub(super) fn is_valid_date(s: &str) -> bool {
    s.len() == 10 && super::transform::date_of_text(s).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_read_as_the_jsonschema_crate_reads_them() {
        let date = validator_options()
            .build(&serde_json::json!({"type": "string", "format": "date"}))
            .unwrap();
        for s in [
            "2024-02-29",
            "2023-02-29",
            "1900-02-29",
            "2000-02-29",
            "0000-02-29",
            "0000-01-01",
            "9999-12-31",
            "2024-04-31",
            "2024-00-10",
            "2024-13-01",
            "2024-06-00",
            "2024-6-01",
            "2024-06-1x",
            "+024-06-01",
            "2024-06-01T",
            "2024/06/01",
            "",
            "２０２４-06-01",
        ] {
            assert_eq!(
                is_valid_date(s),
                date.is_valid(&serde_json::json!(s)),
                "{s:?}"
            );
        }
    }
}
