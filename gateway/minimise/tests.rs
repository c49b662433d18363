use super::*;
use crate::minimise::transform::Transform;
use crate::policy::fieldpath::{FieldPath, Segment};
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeSet;

fn tree(fields: &[(&str, &str)]) -> FieldTree {
    let parsed: Vec<(FieldPath, Transform)> = fields
        .iter()
        .map(|(p, t)| (FieldPath::parse(p).unwrap(), Transform::parse(t).unwrap()))
        .collect();
    FieldTree::build(parsed.iter().map(|(p, t)| (p, t))).unwrap()
}

fn ctx() -> transform::Context<'static> {
    transform::Context {
        pseudonym_key: None,
        today: time::macros::date!(2026 - 11 - 24),
    }
}

fn json_type() -> http::HeaderValue {
    http::HeaderValue::from_static("application/json; charset=utf-8")
}

const UWV: &str = r#"{"bsn":"999990019",
  "inkomsten":[{"soort":"loon","werkgever":"Voorbeeld Schoonmaak BV","bedrag_per_maand":1245.5}],
  "uitkeringen":[{"soort":"WIA","bedrag_per_maand":987.25,"ingangsdatum":"2024-06-01",
                  "medische_reden":"Fictieve testdiagnose"}]}"#;

#[test]
fn releases_only_granted_fields_with_their_transforms() {
    let t = tree(&[
        ("inkomsten[*].soort", "keep"),
        ("inkomsten[*].bedrag_per_maand", "exists"),
        ("uitkeringen[*].soort", "keep"),
        ("uitkeringen[*].ingangsdatum", "year"),
    ]);
    let out = minimise_response(
        UWV.as_bytes(),
        Some(&json_type()),
        &t,
        None,
        &ctx(),
        &Limits::default(),
    )
    .unwrap();
    let body: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(
        body,
        json!({"inkomsten":[{"soort":"loon","bedrag_per_maand":true}],
               "uitkeringen":[{"soort":"WIA","ingangsdatum":2024}]})
    );
    let text = String::from_utf8(out.body).unwrap();
    for secret in [
        "999990019",
        "Voorbeeld Schoonmaak",
        "1245.5",
        "987.25",
        "Fictieve",
    ] {
        assert!(!text.contains(secret), "{secret} leaked");
    }
    let released: BTreeSet<&str> = out.released.iter().collect();
    let expected: BTreeSet<&str> = [
        "/inkomsten/*/soort",
        "/inkomsten/*/bedrag_per_maand",
        "/uitkeringen/*/soort",
        "/uitkeringen/*/ingangsdatum",
    ]
    .into();
    assert_eq!(released, expected);
    for p in [
        "/bsn",
        "/inkomsten/*/werkgever",
        "/uitkeringen/*/medische_reden",
        "/uitkeringen/*/bedrag_per_maand",
    ] {
        assert!(
            out.withheld.contains(p),
            "{p} not recorded as withheld: {:?}",
            out.withheld
        );
    }
}

#[test]
fn fails_closed_on_anything_it_cannot_check() {
    let t = tree(&[("a", "keep")]);
    let limits = Limits::default();
    let cases: Vec<(&[u8], Option<http::HeaderValue>)> = vec![
        (
            br#"{"a":1}"#,
            Some(http::HeaderValue::from_static("text/html")),
        ),
        (br#"{"a":1}"#, None),
        (b"{\"a\":", Some(json_type())),
        (br#"{"a":1,"a":2}"#, Some(json_type())),
        (b"", Some(json_type())),
    ];
    for (body, content_type) in cases {
        let err =
            minimise_response(body, content_type.as_ref(), &t, None, &ctx(), &limits).unwrap_err();
        assert_eq!(err.code, ProblemCode::MinimisationFailed);
        assert!(!err.detail.contains("\"a\""), "{}", err.detail);
    }
    let deep = format!("{{\"a\":{}{}}}", "[".repeat(40), "]".repeat(40));
    let err = minimise_response(
        deep.as_bytes(),
        Some(&json_type()),
        &t,
        None,
        &ctx(),
        &limits,
    )
    .unwrap_err();
    assert!(err.detail.contains("nested deeper"), "{}", err.detail);
}

#[test]
fn strict_mode_refuses_a_body_that_does_not_match_the_schema() {
    let schema = json!({
        "type": "object", "additionalProperties": false, "required": ["a"],
        "properties": {"a": {"type": "string"}, "b": {"type": "string", "format": "date"}}
    });
    let validator = StrictSchema::compile(&schema).unwrap();
    assert!(validator.streams());
    let t = tree(&[("a", "keep")]);
    let ok = minimise_response(
        br#"{"a":"x","b":"2026-01-01"}"#,
        Some(&json_type()),
        &t,
        Some(&validator),
        &ctx(),
        &Limits::default(),
    );
    assert!(ok.is_ok());
    for bad in [
        r#"{"a":"x","extra":"leak"}"#,
        r#"{"a":1}"#,
        r#"{"b":"2026-01-01"}"#,
        r#"{"a":"x","b":"gisteren"}"#,
    ] {
        let err = minimise_response(
            bad.as_bytes(),
            Some(&json_type()),
            &t,
            Some(&validator),
            &ctx(),
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(err.code, ProblemCode::MinimisationFailed, "{bad}");
    }
}

#[test]
fn request_bodies_keep_only_allowed_fields() {
    let t = tree(&[
        ("bsn", "keep"),
        ("vorderingen", "keep"),
        ("einddatum", "keep"),
    ]);
    let body = br#"{"bsn":"999990019","vorderingen":[{"vordering_id":"x","categorie":"y"}],"einddatum":"2027-01-01","notitie":"intern"}"#;
    let out = minimise_request(&RequestBody::new(body, &Limits::default()), &t).unwrap();
    let body: Value = serde_json::from_slice(&out.body).unwrap();
    assert!(body.get("notitie").is_none());
    assert_eq!(body["vorderingen"][0]["categorie"], "y");
    assert_eq!(out.withheld.to_vec(), ["/notitie"]);
    let duplicate = RequestBody::new(b"{\"bsn\":1,\"bsn\":2}", &Limits::default());
    let err = minimise_request(&duplicate, &t).unwrap_err();
    assert_eq!(err.code, ProblemCode::ContextInvalid);
}

#[test]
fn contradictory_paths_are_refused() {
    let a = FieldPath::parse("a").unwrap();
    let ab = FieldPath::parse("a.b").unwrap();
    let each = FieldPath::parse("a[*]").unwrap();
    let keep = Transform::Keep;
    assert!(FieldTree::build([(&a, &keep), (&ab, &keep)]).is_err());
    assert!(FieldTree::build([(&ab, &keep), (&a, &keep)]).is_err());
    assert!(FieldTree::build([(&ab, &keep), (&each, &keep)]).is_err());
    assert!(FieldTree::build([(&a, &keep), (&a, &keep)]).is_err());
    let ac = FieldPath::parse("a.c").unwrap();
    assert!(FieldTree::build([(&ab, &keep), (&ac, &keep)]).is_ok());
}

#[test]
fn pointers_escape_special_characters() {
    let t = tree(&[("a", "keep")]);
    let out = apply(&json!({"a": 1, "x/y~z": 2}), &t, &ctx());
    assert_eq!(out.withheld.to_vec(), ["/x~1y~0z"]);
}

#[test]
fn fields_are_listed_once_however_many_elements_hold_them() {
    // Ten benefits: each released and withheld field is listed once, every value counted.
    let t = tree(&[("u[*].soort", "keep")]);
    let items: Vec<Value> = (0..10)
        .map(|i| json!({"soort": "WIA", "bedrag": i, "reden": "x"}))
        .collect();
    let out = apply(&json!({"bsn": "999990019", "u": items}), &t, &ctx());
    assert_eq!(out.released.to_vec(), ["/u/*/soort"]);
    assert_eq!(out.released.values(), 10);
    assert_eq!(out.withheld.to_vec(), ["/bsn", "/u/*/bedrag", "/u/*/reden"]);
    assert_eq!(out.withheld.values(), 21);
    // Past the scan's few fields the list keeps an index: an object of many distinct keys,
    // in every element, is still one entry per key.
    let wide: serde_json::Map<String, Value> =
        (0..100).map(|k| (format!("k{k}"), json!(k))).collect();
    let items = vec![Value::Object(wide.clone()), Value::Object(wide)];
    let out = apply(&json!({"u": items}), &t, &ctx());
    let expected: Vec<String> = (0..100).map(|k| format!("/u/*/k{k}")).collect();
    let mut got = out.withheld.to_vec();
    got.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(out.withheld.values(), 200);
}

#[test]
fn nulls_and_empty_elements_where_structure_is_granted_are_withheld() {
    // Found by the property below: a null (or an element with nothing granted) must not
    // appear in the output, because even that tells the element exists.
    let t = tree(&[("a[*].b", "keep")]);
    let out = apply(&json!({"a": [null, {"c": 1}, {"b": 2}]}), &t, &ctx());
    assert_eq!(
        serde_json::from_slice::<Value>(&out.body).unwrap(),
        json!({"a": [{"b": 2}]})
    );
    // Fields, not elements: the list says which fields were withheld, and how many values.
    assert_eq!(out.withheld.to_vec(), ["/a/*", "/a/*/c"]);
    assert_eq!(out.withheld.values(), 2);
}

#[test]
fn the_whole_document_and_an_empty_key_have_different_pointers() {
    let whole = apply(&json!([1, 2]), &tree(&[("a", "keep")]), &ctx());
    assert_eq!(whole.withheld.to_vec(), [""]);
    let empty_key = apply(&json!({"": 1, "a": 2}), &tree(&[("a", "keep")]), &ctx());
    assert_eq!(empty_key.withheld.to_vec(), ["/"]);
}

#[test]
fn content_types() {
    for (ct, ok) in [
        ("application/json", true),
        ("Application/JSON; charset=utf-8", true),
        ("application/problem+json", true),
        ("application/vnd.uwv.v1+json", true),
        ("text/json", false),
        ("application/jsonp", false),
        ("text/html", false),
    ] {
        assert_eq!(
            is_json_content_type(Some(&http::HeaderValue::from_static(ct))),
            ok,
            "{ct}"
        );
    }
}

// ---- properties ------------------------------------------------------------------------------

/// Arbitrary JSON made of a few keys, arrays and string leaves.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::String(String::new())),
        Just(Value::Null),
        any::<i32>().prop_map(Value::from)
    ];
    leaf.prop_recursive(4, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec!["a", "b", "c", "d"]),
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

/// Replaces every string leaf with a unique token, so leaks can be searched for.
fn tokenise(value: &mut Value, next: &mut usize) {
    match value {
        Value::String(s) => {
            *s = format!("tok{next}x");
            *next += 1;
        }
        Value::Array(items) => items.iter_mut().for_each(|v| tokenise(v, next)),
        Value::Object(map) => map.values_mut().for_each(|v| tokenise(v, next)),
        _ => {}
    }
}

/// Every (schema-style path, leaf value) of a document. Empty arrays and objects are
/// structure, not values.
fn leaves(value: &Value, path: &mut Vec<Segment>, out: &mut Vec<(FieldPath, Value)>) {
    match value {
        Value::Array(items) => {
            path.push(Segment::Each);
            items.iter().for_each(|v| leaves(v, path, out));
            path.pop();
        }
        Value::Object(map) => {
            for (k, v) in map {
                path.push(Segment::Key(k.clone()));
                leaves(v, path, out);
                path.pop();
            }
        }
        _ if !path.is_empty() => out.push((FieldPath(path.clone()), value.clone())),
        _ => {}
    }
}

proptest! {
    // No regression files: the repository layout is fixed, and the cases these properties
    // found (nulls and empty containers where structure was expected) are unit tests above.
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn output_paths_are_granted_and_nothing_withheld_leaks(
        mut value in json_value(),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        use_exists in any::<bool>(),
    ) {
        let mut next = 0;
        tokenise(&mut value, &mut next);
        let mut all = Vec::new();
        leaves(&value, &mut Vec::new(), &mut all);
        let paths: BTreeSet<FieldPath> = all.iter().map(|(p, _)| p.clone()).collect();
        let paths: Vec<FieldPath> = paths.into_iter().collect();
        prop_assume!(!paths.is_empty());
        let granted: BTreeSet<FieldPath> = picks.iter().map(|i| paths[i.index(paths.len())].clone()).collect();
        let transform = if use_exists { Transform::Exists } else { Transform::Keep };
        let tree = FieldTree::build(granted.iter().map(|p| (p, &transform)));
        // Documents mixing an array of scalars and of objects under one path give
        // contradictory grants; those are refused at policy load, so skip them here.
        prop_assume!(tree.is_ok());
        let out = apply(&value, &tree.unwrap(), &ctx());
        let released: Value = serde_json::from_slice(&out.body).unwrap();

        // Granting a path releases everything beneath it.
        let covered = |path: &FieldPath| granted.iter().any(|g| path.is_within(g));
        // 1. Every leaf in the output lies within a granted path.
        let mut out_leaves = Vec::new();
        leaves(&released, &mut Vec::new(), &mut out_leaves);
        for (path, _) in &out_leaves {
            prop_assert!(covered(path), "released {} which was not granted", path);
        }
        // 2. No value at a path outside the grant appears anywhere in the output bytes (and
        //    with `exists`, no value at all).
        let text = String::from_utf8(out.body.clone()).unwrap();
        for (path, leaf) in &all {
            if let Value::String(token) = leaf {
                if !covered(path) || use_exists {
                    prop_assert!(!text.contains(token.as_str()), "withheld {} leaked at {}", token, path);
                }
            }
        }
    }

    #[test]
    fn strict_parsing_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = strict::parse(&bytes, 8);
    }
}
