//! The fields a record states as released and withheld (SPEC §5): which *fields* of the
//! partner's answer left the gateway or were held back, never the answer's own text.
//!
//! The minimiser lists them already as fields (array positions `*`, each once: see
//! [`crate::minimise::PointerList`]). Here each is held against the operation's response
//! schema ([`declared_field`]: a member the schema does not declare is `*`, with nothing
//! beneath it), runs of nine or more digits are scrubbed ([`scrub`]), and what became the same
//! field is listed once. The audit record, the inway's `Doelbinding-Fields-*` report (and the
//! provider's report the outway records) and `policy explain` state fields through this module,
//! which lives with the schemas because the schema says what a field is.

use super::schema::declared_field;
use serde_json::Value;
use std::borrow::Cow;

/// A JSON pointer as the log may hold it. Pointers name member keys of the partner's answer,
/// and a partner keying a map by BSN would put one in a pointer: every run of nine or more
/// digits is replaced by `#` (array positions are far shorter).
pub fn scrub(pointer: &str) -> Cow<'_, str> {
    // The common case (no such run) in one pass over the bytes, borrowing: this runs for every
    // released and withheld pointer of every record (2 % of the gateway's CPU as a chunked scan).
    let mut digits = 0usize;
    let long_run = pointer.bytes().any(|b| {
        digits = if b.is_ascii_digit() { digits + 1 } else { 0 };
        digits >= 9
    });
    if !long_run {
        return Cow::Borrowed(pointer);
    }
    let mut out = String::with_capacity(pointer.len());
    for run in pointer
        .as_bytes()
        .chunk_by(|a, b| a.is_ascii_digit() == b.is_ascii_digit())
    {
        if run.len() >= 9 && run[0].is_ascii_digit() {
            out.push('#');
        } else {
            // Runs split only between ASCII digits and other bytes: always on a char boundary.
            out.push_str(std::str::from_utf8(run).unwrap_or("?"));
        }
    }
    Cow::Owned(out)
}

/// Each pointer as the record states it, each field once, in the order first met. `schema` is
/// the operation's response schema (none: no member is declared).
pub fn stated<'a>(
    pointers: impl Iterator<Item = &'a str>,
    schema: Option<&Value>,
) -> Vec<Cow<'a, str>> {
    let mut kept: Vec<Cow<'a, str>> = Vec::new();
    // Undeclared keys become the same `*` field here, so the list is made distinct again.
    let mut distinct = crate::minimise::Distinct::default();
    for pointer in pointers {
        let field = match declared_field(schema, pointer) {
            Cow::Borrowed(declared) => scrub(declared),
            Cow::Owned(declared) => Cow::Owned(scrub(&declared).into_owned()),
        };
        if distinct.is_new(&field, kept.iter().map(|k| k.as_ref())) {
            kept.push(field);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object", "additionalProperties": false,
            "properties": {
                "bsn": {"type": "string"},
                "a/b": {"type": "string"},
                "cijfers": {"type": "object", "properties": {"0": {}, "2024": {}}},
                "open": {"type": "object", "properties": {"soort": {"type": "string"}}},
                "u": {"type": "array", "items": {"$ref": "#/$defs/u"}}
            },
            "$defs": {"u": {"type": "object", "properties": {"soort": {}, "bedrag": {}}}}
        })
    }

    fn stated_list(pointers: &[&str], schema: Option<&Value>) -> Vec<String> {
        stated(pointers.iter().copied(), schema)
            .into_iter()
            .map(Cow::into_owned)
            .collect()
    }

    #[test]
    fn declared_fields_are_stated_as_they_are() {
        let schema = schema();
        let pointers = [
            "/bsn",
            "/u/*/soort",
            "/u/*/bedrag",
            "/a~1b",
            "/cijfers/0",
            "/cijfers/2024",
            "",
        ];
        assert_eq!(stated_list(&pointers, Some(&schema)), pointers);
        assert!(matches!(
            declared_field(Some(&schema), "/u/*/soort"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn an_undeclared_member_is_a_star_with_nothing_beneath() {
        let schema = schema();
        // An open object's members keyed by a diagnosis, a BSN with spaces or in full-width
        // digits, a control character: none of the partner's text reaches the record.
        let hostile = [
            "/open/Fictieve diagnose depressie",
            "/open/999 990 019",
            "/open/９９９９９００１９",
            "/open/\u{0}",
            "/open/x/y/z",
            "/u/*/diag-depressie",
            "/onbekend",
            "/cijfers/1",
        ];
        assert_eq!(
            stated_list(&hostile, Some(&schema)),
            ["/open/*", "/u/*/*", "/*", "/cijfers/*"]
        );
        // Without a schema nothing is declared.
        assert_eq!(stated_list(&["/a", "/b/c", ""], None), ["/*", ""]);
    }

    #[test]
    fn thousands_of_keys_make_one_field() {
        let schema = schema();
        let keys: Vec<String> = (0..5000).map(|k| format!("/open/k{k}")).collect();
        let mut pointers: Vec<&str> = keys.iter().map(String::as_str).collect();
        pointers.push("/open/soort");
        assert_eq!(
            stated_list(&pointers, Some(&schema)),
            ["/open/*", "/open/soort"]
        );
    }

    #[test]
    fn pointers_lose_long_digit_runs() {
        assert_eq!(scrub("/uitkeringen/12/soort"), "/uitkeringen/12/soort");
        assert_eq!(scrub("/personen/999990019/naam"), "/personen/#/naam");
        assert_eq!(scrub("/x999990019y/é/1234567890"), "/x#y/é/#");
    }

    #[test]
    fn long_digit_runs_in_declared_names_are_scrubbed() {
        let schema = json!({"type": "object", "properties": {"p999990019": {}}});
        assert_eq!(stated_list(&["/p999990019"], Some(&schema)), ["/p#"]);
    }
}
