//! Fuzz target `minimise`: the response minimiser (strict parse → field tree → transforms).
//!
//! Input layout:
//!
//! | byte | meaning |
//! |---|---|
//! | 0 | bits 0-1: number of granted fields − 1; bits 2-3: nesting limit; bits 4-6: content type |
//! | 1 + 2i, 2 + 2i | field i: index into `PATHS`, index into `TRANSFORMS` |
//! | rest | the partner's response body |
//!
//! Invariants (a violation panics, which libFuzzer reports as a crash):
//! * nothing panics;
//! * `FieldTree::build` refuses exactly the field sets in which two paths overlap;
//! * `minimise_response` succeeds exactly when the content type is JSON and the body parses
//!   strictly, and its streaming pass releases the same values with the same pointers as the
//!   reference (tree) path;
//! * on success the reference path's body is JSON (also strictly: no duplicate keys), and it is
//!   byte for byte what an independent reference model of the documented rules produces, with the same
//!   released/withheld pointer lists; `apply` and `minimise_request` agree with it;
//! * every released pointer lies under a granted path and exists in the input; every withheld
//!   pointer exists in the input and lies outside every released value;
//! * when every transform is `exists` or `redact`: no string value of the input longer than
//!   3 characters appears in the output bytes (unless the same bytes are explained by the
//!   output's own structure: a granted key name or the output of the same body with every
//!   string value replaced by "x"), and the output does not depend on string contents at all.
#![no_main]

use doelpoort::minimise::{self, strict, transform, FieldTree, Limits};
use doelpoort::policy::fieldpath::{FieldPath, Segment};
use doelpoort::policy::Transform;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

const PATHS: &[&str] = &[
    "a",
    "a[*].b",
    "b.c",
    "uitkeringen[*].soort",
    "b",
    "a[*]",
    "c[*][*]",
    "b.d",
    "uitkeringen[*].ingangsdatum",
    "x-y_z",
    "a[*].c.d",
    "bsn",
];

const TRANSFORMS: &[&str] = &[
    "keep",
    "exists",
    "mask 2",
    "year",
    "bucket 10 20",
    "pseudonym",
    "redact",
    "age-band",
];

/// Content types and whether the gateway must treat them as JSON.
const CONTENT_TYPES: &[(Option<&str>, bool)] = &[
    (Some("application/json"), true),
    (Some("application/problem+json; charset=utf-8"), true),
    (Some("Application/JSON"), true),
    (Some("text/plain"), false),
    (None, false),
];

const DEPTHS: [usize; 4] = [2, 4, 8, 32];

const PSEUDONYM_KEY: &[u8] = b"doelpoort fuzz pseudonym key 32b";

// ---------------------------------------------------------------------------------------------
// Reference model: the documented release rules, written independently of the gateway's
// streaming writer (values are built, then serialised once).

enum RefNode {
    Fresh,
    Release(Transform),
    Object(Vec<(String, RefNode)>),
    Each(Box<RefNode>),
}

fn ref_insert(node: &mut RefNode, path: &[Segment], t: &Transform) {
    let Some((first, rest)) = path.split_first() else {
        *node = RefNode::Release(t.clone());
        return;
    };
    match first {
        Segment::Key(k) => {
            if matches!(node, RefNode::Fresh) {
                *node = RefNode::Object(Vec::new());
            }
            let RefNode::Object(children) = node else {
                unreachable!("reference tree built from overlapping paths")
            };
            let i = match children.iter().position(|(c, _)| c == k) {
                Some(i) => i,
                None => {
                    children.push((k.clone(), RefNode::Fresh));
                    children.len() - 1
                }
            };
            ref_insert(&mut children[i].1, rest, t);
        }
        Segment::Each => {
            if matches!(node, RefNode::Fresh) {
                *node = RefNode::Each(Box::new(RefNode::Fresh));
            }
            let RefNode::Each(child) = node else {
                unreachable!("reference tree built from overlapping paths")
            };
            ref_insert(child, rest, t);
        }
    }
}

fn pointer_of(tokens: &[String]) -> String {
    if tokens.is_empty() {
        // RFC 6901: the whole document is the empty pointer.
        return String::new();
    }
    let mut p = String::new();
    for t in tokens {
        p.push('/');
        p.push_str(&t.replace('~', "~0").replace('/', "~1"));
    }
    p
}

/// Lists a field once, in the order first met.
fn note(list: &mut Vec<String>, pointer: String) {
    if !list.contains(&pointer) {
        list.push(pointer);
    }
}

struct RefLog {
    tokens: Vec<String>,
    released: Vec<String>,
    withheld: Vec<String>,
}

fn ref_walk(
    node: &RefNode,
    value: &Value,
    ctx: &transform::Context<'_>,
    log: &mut RefLog,
) -> Option<Value> {
    match node {
        RefNode::Fresh => unreachable!("every path ends in a release"),
        RefNode::Release(t) => {
            note(&mut log.released, pointer_of(&log.tokens));
            Some(match t {
                Transform::Keep => value.clone(),
                t => transform::apply(t, value, ctx),
            })
        }
        RefNode::Object(children) => {
            let Value::Object(map) = value else {
                note(&mut log.withheld, pointer_of(&log.tokens));
                return None;
            };
            let mut out = Map::new();
            for (k, v) in map {
                log.tokens.push(k.clone());
                match children.iter().find(|(c, _)| c == k) {
                    Some((_, child)) => {
                        if let Some(x) = ref_walk(child, v, ctx, log) {
                            out.insert(k.clone(), x);
                        }
                    }
                    None => note(&mut log.withheld, pointer_of(&log.tokens)),
                }
                log.tokens.pop();
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        RefNode::Each(child) => {
            let Value::Array(items) = value else {
                note(&mut log.withheld, pointer_of(&log.tokens));
                return None;
            };
            let mut out = Vec::new();
            for item in items {
                // Records name fields, not elements: every position is `*` (SPEC §5).
                log.tokens.push("*".to_string());
                if let Some(x) = ref_walk(child, item, ctx, log) {
                    out.push(x);
                }
                log.tokens.pop();
            }
            Some(Value::Array(out))
        }
    }
}

/// Two paths overlap when one is a prefix of the other (or equal), or when they part ways
/// with one stepping into an object and the other into an array at the same place.
fn overlap(a: &[Segment], b: &[Segment]) -> bool {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return matches!(
                (x, y),
                (Segment::Key(_), Segment::Each) | (Segment::Each, Segment::Key(_))
            );
        }
    }
    true
}

// ---------------------------------------------------------------------------------------------
// Pointer helpers.

fn decode_pointer(p: &str) -> Vec<String> {
    p.split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// Whether the field `p` is in the input: a `*` is any element of a list.
fn resolves(root: &Value, p: &str) -> bool {
    // RFC 6901: "" is the whole document, "/" the member with key "".
    fn walk(value: &Value, tokens: &[String]) -> bool {
        let Some((first, rest)) = tokens.split_first() else {
            return true;
        };
        match value {
            Value::Array(items) if first == "*" => items.iter().any(|v| walk(v, rest)),
            Value::Object(map) => map.get(first).is_some_and(|v| walk(v, rest)),
            _ => false,
        }
    }
    walk(root, &decode_pointer(p))
}

/// Whether `tokens` lies at or beneath `path`.
fn under(tokens: &[String], path: &[Segment]) -> bool {
    tokens.len() >= path.len()
        && path.iter().zip(tokens).all(|(s, t)| match s {
            Segment::Key(k) => k == t,
            Segment::Each => t == "*",
        })
}

fn strings_of(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings_of(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings_of(v, out)),
        _ => {}
    }
}

/// The same value with every non-empty string replaced by "x" (emptiness kept: `exists`
/// depends on it).
fn scrub(value: &Value) -> Value {
    match value {
        Value::String(s) if !s.is_empty() => Value::String("x".into()),
        Value::Array(items) => Value::Array(items.iter().map(scrub).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), scrub(v))).collect()),
        v => v.clone(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let n_fields = usize::from(control & 0b11) + 1;
    let depth = DEPTHS[usize::from((control >> 2) & 0b11)];
    let (content_type, ct_is_json) = CONTENT_TYPES[usize::from(control >> 4) % CONTENT_TYPES.len()];
    if rest.len() < 2 * n_fields {
        return;
    }
    let (selectors, body) = rest.split_at(2 * n_fields);

    let mut fields: Vec<(FieldPath, Transform)> = Vec::new();
    for pair in selectors.chunks_exact(2) {
        let path = PATHS[usize::from(pair[0]) % PATHS.len()];
        let t = TRANSFORMS[usize::from(pair[1]) % TRANSFORMS.len()];
        let path = FieldPath::parse(path).expect("fixed field paths parse");
        assert_eq!(path.to_string(), PATHS[usize::from(pair[0]) % PATHS.len()]);
        let t = Transform::parse(t).expect("fixed transforms parse");
        assert_eq!(Transform::parse(&t.describe()).as_ref(), Ok(&t));
        fields.push((path, t));
    }

    let overlapping = fields
        .iter()
        .enumerate()
        .any(|(i, (a, _))| fields[i + 1..].iter().any(|(b, _)| overlap(&a.0, &b.0)));
    let tree = FieldTree::build(fields.iter().map(|(p, t)| (p, t)));
    assert_eq!(
        tree.is_err(),
        overlapping,
        "FieldTree::build disagrees about overlap: {:?}",
        fields.iter().map(|(p, t)| format!("{p}: {}", t.describe())).collect::<Vec<_>>()
    );
    let Ok(tree) = tree else {
        return;
    };

    let header = content_type.map(|c| http::HeaderValue::from_str(c).expect("fixed content type"));
    assert_eq!(minimise::is_json_content_type(header.as_ref()), ct_is_json);
    let ctx = transform::Context {
        pseudonym_key: Some(PSEUDONYM_KEY),
        today: time::macros::date!(2026 - 11 - 24),
    };
    let limits = Limits { max_depth: depth };

    let result = minimise::minimise_response(body, header.as_ref(), &tree, None, &ctx, &limits);
    let parsed = strict::parse(body, depth);
    assert_eq!(
        result.is_ok(),
        ct_is_json && parsed.is_ok(),
        "minimise_response: unexpected outcome {:?} (strict parse: {:?})",
        result.as_ref().err(),
        parsed.as_ref().err()
    );
    let Ok(streamed) = result else {
        return;
    };
    let value = parsed.expect("checked above");
    // The gateway minimises in one streaming pass; the tree path is the reference it must
    // agree with (members in document order there, sorted here; pointers likewise).
    let m = minimise::reference(body, &tree, None, &ctx, &limits)
        .expect("the reference path accepts what the streaming pass accepted");
    let as_value = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).ok();
    assert_eq!(
        as_value(&streamed.body),
        as_value(&m.body),
        "the streaming pass released other values than the reference path"
    );
    let sorted = |p: &minimise::PointerList| {
        let mut v = p.to_vec();
        v.sort();
        v
    };
    assert_eq!(sorted(&streamed.released), sorted(&m.released), "released pointers differ between the paths");
    assert_eq!(sorted(&streamed.withheld), sorted(&m.withheld), "withheld pointers differ between the paths");

    // The output is JSON, and strictly so.
    let out: Value = serde_json::from_slice(&m.body).unwrap_or_else(|e| {
        panic!(
            "minimised body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&m.body)
        )
    });
    assert!(
        strict::parse(&m.body, 64).is_ok(),
        "minimised body has a duplicate key: {:?}",
        String::from_utf8_lossy(&m.body)
    );
    assert!(out.is_object() || m.body == b"{}");

    // Byte for byte what the reference model says, with the same pointer lists.
    let mut reference = RefNode::Object(Vec::new());
    for (p, t) in &fields {
        ref_insert(&mut reference, &p.0, t);
    }
    let mut log = RefLog {
        tokens: Vec::new(),
        released: Vec::new(),
        withheld: Vec::new(),
    };
    let expected = match ref_walk(&reference, &value, &ctx, &mut log) {
        Some(v) => serde_json::to_vec(&v).expect("a Value serialises"),
        None => b"{}".to_vec(),
    };
    assert_eq!(
        String::from_utf8_lossy(&m.body),
        String::from_utf8_lossy(&expected),
        "minimised body differs from the reference model"
    );
    let released: Vec<String> = m.released.iter().map(|p| p.to_string()).collect();
    let withheld: Vec<String> = m.withheld.iter().map(|p| p.to_string()).collect();
    assert_eq!(released, log.released, "released pointers differ from the reference model");
    assert_eq!(withheld, log.withheld, "withheld pointers differ from the reference model");

    // Released pointers: under a granted path, present in the input.
    for p in &released {
        let tokens = decode_pointer(p);
        assert!(
            fields.iter().any(|(path, _)| under(&tokens, &path.0)),
            "released pointer {p:?} is not under any granted path"
        );
        assert!(resolves(&value, p), "released pointer {p:?} is not in the input");
    }
    // Withheld pointers: present in the input, never at or beneath a released value.
    for w in &withheld {
        assert!(resolves(&value, w), "withheld pointer {w:?} is not in the input");
        let wt = decode_pointer(w);
        for r in &released {
            let rt = decode_pointer(r);
            assert!(
                !(wt.len() >= rt.len() && wt[..rt.len()] == rt[..]),
                "withheld pointer {w:?} lies within released {r:?}"
            );
        }
    }

    // Determinism, and the same walk through the other entry points.
    assert_eq!(minimise::apply(&value, &tree, &ctx), m);
    let request = minimise::minimise_request(&minimise::RequestBody::new(body, &limits), &tree)
        .expect("a body that parses for the response also parses for the request");
    assert_eq!(
        request,
        minimise::apply(&value, &tree, &transform::Context::none())
    );

    // exists/redact release no string content.
    if fields
        .iter()
        .all(|(_, t)| matches!(t, Transform::Exists | Transform::Redact))
    {
        let scrubbed_out = minimise::apply(&scrub(&value), &tree, &ctx).body;
        let granted_keys: Vec<&str> = fields
            .iter()
            .flat_map(|(p, _)| p.0.iter())
            .filter_map(|s| match s {
                Segment::Key(k) => Some(k.as_str()),
                Segment::Each => None,
            })
            .collect();
        let mut strings = Vec::new();
        strings_of(&value, &mut strings);
        for s in strings.iter().filter(|s| s.chars().count() > 3) {
            let escaped = serde_json::to_string(s).expect("a string serialises");
            let escaped = &escaped[1..escaped.len() - 1];
            for needle in [s.as_str(), escaped] {
                if contains(&m.body, needle.as_bytes())
                    && !contains(&scrubbed_out, needle.as_bytes())
                    && !granted_keys.iter().any(|k| k.contains(needle))
                {
                    panic!(
                        "string value {s:?} leaked through exists/redact: {:?}",
                        String::from_utf8_lossy(&m.body)
                    );
                }
            }
        }
        assert_eq!(
            String::from_utf8_lossy(&m.body),
            String::from_utf8_lossy(&scrubbed_out),
            "exists/redact output depends on string contents"
        );
    }
});
