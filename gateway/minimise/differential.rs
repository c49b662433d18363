//! The streaming pass against the reference path: on the shipped schemas and their example
//! answers, mutated in structure and in bytes, both must accept and refuse the same answers,
//! and release the same values with the same pointers.

use super::*;
use crate::minimise::transform::Transform;
use crate::policy::fieldpath::{FieldPath, Segment};
use proptest::prelude::*;
use serde_json::json;

const SHIPPED: &[(&str, &str)] = &[
    (
        include_str!("../../schemas/uwv-inkomen.response.schema.json"),
        include_str!("../../schemas/examples/uwv-inkomen.999990019.json"),
    ),
    (
        include_str!("../../schemas/cjib-vorderingen.response.schema.json"),
        include_str!("../../schemas/examples/cjib-vorderingen.999990019.json"),
    ),
    (
        include_str!("../../schemas/jeugdhulp-trajecten.response.schema.json"),
        include_str!("../../schemas/examples/jeugdhulp-trajecten.999990019.json"),
    ),
    (
        include_str!("../../schemas/svb-kinderbijslag.response.schema.json"),
        r#"{"bsn":"999990019","recht_op_kinderbijslag":true,"aantal_kinderen":2,
            "kinderen":[{"bsn":"999990032","geboortejaar":2015,"bedrag_per_kwartaal":301.5},
                        {"bsn":"999990044","geboortejaar":2018,"bedrag_per_kwartaal":301}],
            "volgende_betaling":"2027-01-01"}"#,
    ),
];

const TRANSFORMS: &[&str] = &[
    "keep",
    "keep",
    "keep",
    "exists",
    "year",
    "redact",
    "mask 2",
    "age-band",
    "bucket 100 1000",
    "pseudonym",
];

fn ctx() -> transform::Context<'static> {
    transform::Context {
        pseudonym_key: Some(b"differential-test-key"),
        today: time::macros::date!(2026 - 12 - 01),
    }
}

fn json_type() -> http::HeaderValue {
    http::HeaderValue::from_static("application/json")
}

/// Every path of a schema (containers and leaves), for grants to pick from.
fn schema_paths(schema: &Value) -> Vec<FieldPath> {
    fn walk(s: &Value, path: &mut Vec<Segment>, out: &mut Vec<FieldPath>) {
        if !path.is_empty() {
            out.push(FieldPath(path.clone()));
        }
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            for (k, sub) in props {
                path.push(Segment::Key(k.clone()));
                walk(sub, path, out);
                path.pop();
            }
        }
        if let Some(items) = s.get("items") {
            path.push(Segment::Each);
            walk(items, path, out);
            path.pop();
        }
    }
    let mut out = Vec::new();
    walk(schema, &mut Vec::new(), &mut out);
    out
}

/// Runs both paths and compares what they decided and released.
fn same_outcome(
    body: &[u8],
    tree: &FieldTree,
    schema: Option<&StrictSchema>,
) -> Result<(), String> {
    let limits = Limits { max_depth: 12 };
    let fast = minimise_response(body, Some(&json_type()), tree, schema, &ctx(), &limits);
    let slow = reference(body, tree, schema, &ctx(), &limits);
    match (fast, slow) {
        (Err(a), Err(b)) if a.detail == b.detail => Ok(()),
        (Ok(a), Ok(b)) => {
            let va: Value = serde_json::from_slice(&a.body).map_err(|e| e.to_string())?;
            let vb: Value = serde_json::from_slice(&b.body).map_err(|e| e.to_string())?;
            let sorted = |p: &PointerList| {
                let mut v = p.to_vec();
                v.sort();
                v
            };
            if va != vb {
                return Err(format!("bodies differ: {va} vs {vb}"));
            }
            if sorted(&a.released) != sorted(&b.released)
                || sorted(&a.withheld) != sorted(&b.withheld)
            {
                return Err(format!(
                    "pointers differ: {:?}/{:?} vs {:?}/{:?}",
                    a.released, a.withheld, b.released, b.withheld
                ));
            }
            Ok(())
        }
        (a, b) => Err(format!(
            "streaming {:?} vs reference {:?}",
            a.map(|m| String::from_utf8_lossy(&m.body).into_owned())
                .map_err(|p| p.detail),
            b.map(|m| String::from_utf8_lossy(&m.body).into_owned())
                .map_err(|p| p.detail)
        )),
    }
}

/// Values that sit on an edge of JSON, of a type, or of a schema keyword.
const EDGE_VALUES: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-0",
    "1",
    "-1",
    "1.0",
    "1.5",
    "-0.0",
    "1e2",
    "1E-2",
    "100",
    "101",
    "-3",
    "12345678901234567890",
    "123456789012345678",
    "9.999e307",
    "\"\"",
    "\"x\"",
    "\"2024-02-29\"",
    "\"2023-02-29\"",
    "\"2026-13-01\"",
    "\"999990019\"",
    "\"99999001\"",
    "\"OPS-0123456789AB\"",
    "\"open\"",
    "\"betaald\"",
    "\"a\\u0062c\"",
    "\"\\ud83d\\ude00\"",
    "[]",
    "{}",
    "[1]",
    "{\"a\":1}",
];

/// Text that, put anywhere, stresses the parser.
const EDGE_BYTES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    " ",
    "\n",
    "\u{1}",
    "0",
    "-",
    ".",
    "e",
    "1e400",
    "\\u0061",
    "\\ud800",
    "\\udc00",
    "\\x",
    "é",
    "\u{7f}",
    "tru",
    "nul",
    "\"bsn\":\"999990019\",",
    "\"a\":1,",
    ",\"a\":1",
];

#[derive(Debug, Clone)]
enum Mutation {
    /// Remove the member with this index (pre-order over all members).
    Remove(prop::sample::Index),
    /// Replace the value at this node with an edge value.
    Replace(prop::sample::Index, prop::sample::Index),
    /// Add a member named like a sibling property or a new one.
    Add(prop::sample::Index, bool),
    /// Repeat an array element.
    Repeat(prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Mutation::Remove),
        (any::<prop::sample::Index>(), any::<prop::sample::Index>())
            .prop_map(|(a, b)| Mutation::Replace(a, b)),
        (any::<prop::sample::Index>(), any::<bool>()).prop_map(|(a, b)| Mutation::Add(a, b)),
        any::<prop::sample::Index>().prop_map(Mutation::Repeat),
    ]
}

/// Pointers to every node, pre-order.
fn nodes(value: &Value, pointer: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                nodes(v, format!("{pointer}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                nodes(v, format!("{pointer}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(pointer);
}

fn apply_mutation(doc: &mut Value, m: &Mutation) {
    let mut all = Vec::new();
    nodes(doc, String::new(), &mut all);
    let parent_and_last = |p: &str| {
        p.rsplit_once('/')
            .map(|(a, b)| (a.to_string(), b.to_string()))
    };
    match m {
        Mutation::Remove(i) => {
            let p = all[i.index(all.len())].clone();
            if let Some((parent, last)) = parent_and_last(&p) {
                match doc.pointer_mut(&parent) {
                    Some(Value::Object(map)) => {
                        map.remove(&last);
                    }
                    Some(Value::Array(items)) => {
                        if let Ok(n) = last.parse::<usize>() {
                            if n < items.len() {
                                items.remove(n);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Mutation::Replace(i, v) => {
            let p = all[i.index(all.len())].clone();
            let edge = EDGE_VALUES[v.index(EDGE_VALUES.len())];
            if let (Some(slot), Ok(value)) = (doc.pointer_mut(&p), serde_json::from_str(edge)) {
                *slot = value;
            }
        }
        Mutation::Add(i, known) => {
            let p = all[i.index(all.len())].clone();
            if let Some(Value::Object(map)) = doc.pointer_mut(&p) {
                let key = if *known {
                    map.keys()
                        .next()
                        .map(|k| format!("{k}_"))
                        .unwrap_or_else(|| "a".into())
                } else {
                    "extra".to_string()
                };
                map.insert(key, json!("leak"));
            }
        }
        Mutation::Repeat(i) => {
            let p = all[i.index(all.len())].clone();
            if let Some(Value::Array(items)) = doc.pointer_mut(&p) {
                if let Some(first) = items.first().cloned() {
                    items.push(first);
                }
            }
        }
    }
}

/// Byte edits: where, and which of [`EDGE_BYTES`].
type ByteEdits = Vec<(prop::sample::Index, prop::sample::Index)>;

/// Which shipped answer, its mutations, the grant's (path, transform) picks, byte
/// replacements and insertions, and whether to pretty-print.
type Case = (
    usize,
    Vec<Mutation>,
    Vec<(usize, usize)>,
    ByteEdits,
    ByteEdits,
    bool,
);

fn case() -> impl Strategy<Value = Case> {
    (
        0..SHIPPED.len(),
        prop::collection::vec(mutation(), 0..3),
        prop::collection::vec((0..64usize, 0..TRANSFORMS.len()), 0..5),
        // byte edits: (position, replacement) and (position, insertion)
        prop::collection::vec(
            (any::<prop::sample::Index>(), any::<prop::sample::Index>()),
            0..2,
        ),
        prop::collection::vec(
            (any::<prop::sample::Index>(), any::<prop::sample::Index>()),
            0..2,
        ),
        any::<bool>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn streaming_and_reference_paths_agree(
        (which, mutations, picks, replaces, inserts, pretty) in case()
    ) {
        let (schema_text, example) = SHIPPED[which];
        let schema_value: Value = serde_json::from_str(schema_text).unwrap();
        let schema = StrictSchema::compile(&schema_value).unwrap();
        prop_assert!(schema.streams(), "shipped schemas stream");
        let mut doc: Value = serde_json::from_str(example).unwrap();
        for m in &mutations {
            apply_mutation(&mut doc, m);
        }
        let mut text = if pretty {
            serde_json::to_string_pretty(&doc).unwrap()
        } else {
            serde_json::to_string(&doc).unwrap()
        }
        .into_bytes();
        for (at, with) in &replaces {
            let at = at.index(text.len());
            let edit = EDGE_BYTES[with.index(EDGE_BYTES.len())].as_bytes();
            text.splice(at..at + 1, edit.iter().copied());
        }
        for (at, with) in &inserts {
            let at = at.index(text.len() + 1);
            let edit = EDGE_BYTES[with.index(EDGE_BYTES.len())].as_bytes();
            text.splice(at..at, edit.iter().copied());
        }
        let paths = schema_paths(&schema_value);
        let mut tree = FieldTree::default();
        for (p, t) in &picks {
            let transform = Transform::parse(TRANSFORMS[*t]).unwrap();
            let _ = tree.insert(&paths[p % paths.len()], &transform);
        }
        if let Err(e) = same_outcome(&text, &tree, Some(&schema)) {
            return Err(TestCaseError::fail(format!("{e}\nbody: {}", String::from_utf8_lossy(&text))));
        }
        // The same bytes without a schema: only strictness applies.
        if let Err(e) = same_outcome(&text, &tree, None) {
            return Err(TestCaseError::fail(format!("(no schema) {e}\nbody: {}", String::from_utf8_lossy(&text))));
        }
    }

    #[test]
    fn streaming_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let tree = FieldTree::build([(&FieldPath::parse("a").unwrap(), &Transform::Keep)]).unwrap();
        prop_assert!(same_outcome(&bytes, &tree, None).is_ok());
    }
}

#[test]
fn edge_cases_agree() {
    let schema = StrictSchema::compile(&json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["n"],
        "properties": {
            "n": {"type": "integer", "minimum": 0, "maximum": 100},
            "x": {"type": ["number", "null"], "exclusiveMinimum": 1.5},
            "s": {"type": "string", "minLength": 2, "maxLength": 3, "enum": ["ab", "abc", "é€"]},
            "p": {"type": "string", "pattern": "^[0-9]{3}$"},
            "d": {"type": "string", "format": "date"},
            "list": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "boolean"}},
            "open": {"type": "object", "properties": {"k": {"type": "string"}}}
        }
    }))
    .unwrap();
    assert!(schema.streams());
    let tree = FieldTree::build(
        [
            ("n", "keep"),
            ("x", "keep"),
            ("s", "keep"),
            ("p", "mask 1"),
            ("d", "year"),
            ("list", "keep"),
            ("open", "keep"),
        ]
        .iter()
        .map(|(p, t)| (FieldPath::parse(p).unwrap(), Transform::parse(t).unwrap()))
        .collect::<Vec<_>>()
        .iter()
        .map(|(p, t)| (p, t)),
    )
    .unwrap();
    for body in [
        r#"{"n":5}"#,
        r#"{"n":5.0}"#,
        r#"{"n":5.5}"#,
        r#"{"n":-0}"#,
        r#"{"n":101}"#,
        r#"{"n":100,"x":null}"#,
        r#"{"n":1,"x":1.5}"#,
        r#"{"n":1,"x":1.50001}"#,
        r#"{"n":1,"s":"ab"}"#,
        r#"{"n":1,"s":"a\u0062"}"#,
        r#"{"n":1,"s":"é€"}"#,
        r#"{"n":1,"s":"abcd"}"#,
        r#"{"n":1,"p":"123"}"#,
        r#"{"n":1,"p":"1234"}"#,
        r#"{"n":1,"d":"2024-02-29"}"#,
        r#"{"n":1,"d":"2023-02-29"}"#,
        r#"{"n":1,"list":[]}"#,
        r#"{"n":1,"list":[true,false]}"#,
        r#"{"n":1,"list":[true,false,true]}"#,
        r#"{"n":1,"open":{"k":"v","other":[1,{"z":null}]}}"#,
        r#"{"n":1,"open":{"k":"v","other":1,"other":2}}"#,
        r#"{"n":1,"open":{"k":"v","\u006b":"w"}}"#,
        r#"{"n":1,"\u006e":2}"#,
        r#"{"n":1e400}"#,
        r#"{"n":12345678901234567890}"#,
        r#"{"n":1}   "#,
        r#"{"n":1} x"#,
        "{\"n\":1,\"s\":\"a\u{1}\"}",
        r#"{"n":1,"s":"\ud800"}"#,
        r#"{"n":1,"s":"\ud83d\ude00x"}"#,
        r#"{"n":01}"#,
        r#"{"n":1,}"#,
        r#"[{"n":1}]"#,
    ] {
        if let Err(e) = same_outcome(body.as_bytes(), &tree, Some(&schema)) {
            panic!("{body}: {e}");
        }
    }
}

#[test]
fn schemas_the_shape_cannot_express_take_the_reference_path() {
    for schema in [
        json!({"$defs": {"a": {"type": "string"}}, "type": "object", "properties": {"a": {"$ref": "#/$defs/a"}}}),
        json!({"type": "object", "anyOf": [{"required": ["a"]}, {"required": ["b"]}]}),
        json!({"type": "object", "patternProperties": {"^x": {"type": "string"}}}),
        json!({"type": ["object", "null"]}),
    ] {
        let compiled = StrictSchema::compile(&schema).unwrap();
        assert!(!compiled.streams(), "{schema}");
        let tree = FieldTree::build([(&FieldPath::parse("a").unwrap(), &Transform::Keep)]).unwrap();
        same_outcome(br#"{"a":"x"}"#, &tree, Some(&compiled)).unwrap();
    }
}

#[test]
fn many_unknown_keys_stay_linear() {
    // Thousands of distinct keys in an open object: the duplicate check must not go
    // quadratic (a hostile partner's cheap attack).
    let mut body = String::from("{");
    for i in 0..20_000 {
        body.push_str(&format!("\"k{i}\":{i},"));
    }
    body.push_str("\"k0\":0}");
    let tree = FieldTree::build([(&FieldPath::parse("a").unwrap(), &Transform::Keep)]).unwrap();
    let err = minimise_response(
        body.as_bytes(),
        Some(&json_type()),
        &tree,
        None,
        &ctx(),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(err.detail.contains("duplicate"), "{}", err.detail);
}
