//! The canonical form of a JSON value (RFC 8785, JCS): object members sorted by their UTF-16
//! code units, no insignificant whitespace. Two things are hashed over it: an audit record
//! (its chain hash, see [`crate::audit::record`]) and a request body a colleague approved (see
//! [`crate::policy::four_eyes`]), so that the same value always gives the same digest however
//! it was written.
//!
//! Strings and integers are written exactly as JCS writes them; a non-integral number is
//! written as serde_json writes it (shortest round-trip form), which can differ from JCS's
//! ECMAScript form for very large or very small magnitudes. Audit records hold no such numbers,
//! and an approving identity provider should hash bodies with integers and strings only.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// RFC 8785 canonical bytes of `value` (sorted members, compact). Floats are written as
/// serde_json writes them; records hold none.
pub fn canonical_bytes(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push(b'{');
            for (i, (key, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key).expect("a string serialises");
                out.push(b':');
                canonical_bytes(member, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_bytes(item, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("a scalar serialises"),
    }
}

/// SHA-256 of the canonical form, lowercase hex: what an approval names as
/// `request_sha256`.
pub fn digest(value: &Value) -> String {
    let mut bytes = Vec::new();
    canonical_bytes(value, &mut bytes);
    hex::encode(Sha256::digest(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_same_value_however_written_has_one_digest() {
        let a: Value =
            serde_json::from_str(r#"{"b": [1, "x"], "a": {"d": true, "c": null}}"#).unwrap();
        let b = json!({"a": {"c": null, "d": true}, "b": [1, "x"]});
        assert_eq!(digest(&a), digest(&b));
        let mut out = Vec::new();
        canonical_bytes(&a, &mut out);
        assert_eq!(out, br#"{"a":{"c":null,"d":true},"b":[1,"x"]}"#);
        assert_ne!(
            digest(&a),
            digest(&json!({"a": {"c": null, "d": false}, "b": [1, "x"]}))
        );
    }
}
