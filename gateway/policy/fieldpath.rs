//! Field paths as privacy officers write them: `uitkeringen[*].soort`, `bsn`,
//! `kinderen[*].geboortejaar`. Dots step into objects, `[*]` steps into every element of an
//! array. Nothing else (no indexes, no wildcards on keys): a grant names fields, it does not
//! compute them.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    Key(String),
    Each,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    pub fn parse(s: &str) -> Result<Self, String> {
        let expected = "expected a field path such as `uitkeringen[*].soort`";
        if s.is_empty() {
            return Err(format!("empty field path; {expected}"));
        }
        let mut segments = Vec::new();
        for part in s.split('.') {
            let (name, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(format!("'{s}' is not a field path; {expected}"));
            }
            segments.push(Segment::Key(name.to_string()));
            while !rest.is_empty() {
                rest = rest.strip_prefix("[*]").ok_or_else(|| {
                    format!("'{s}': only [*] may follow a field name; {expected}")
                })?;
                segments.push(Segment::Each);
            }
        }
        Ok(Self(segments))
    }

    /// Collects every value at this path (`[*]` fans out). Missing keys yield nothing.
    pub fn values<'v>(&self, root: &'v serde_json::Value) -> Vec<&'v serde_json::Value> {
        let mut current = vec![root];
        for segment in &self.0 {
            let mut next = Vec::new();
            for value in current {
                match (segment, value) {
                    (Segment::Key(k), serde_json::Value::Object(map)) => {
                        if let Some(v) = map.get(k) {
                            next.push(v);
                        }
                    }
                    (Segment::Each, serde_json::Value::Array(items)) => next.extend(items.iter()),
                    _ => {}
                }
            }
            current = next;
        }
        current
    }

    /// Every value at this path, or `None` as soon as one branch lacks it: a key missing from
    /// an object, a value that is not the object or array the path steps into. For checks that
    /// must hold for every element (`[*]`): an element without the field fails the check
    /// instead of being skipped.
    pub fn every_value<'v>(
        &self,
        root: &'v serde_json::Value,
    ) -> Option<Vec<&'v serde_json::Value>> {
        let mut current = vec![root];
        for segment in &self.0 {
            let mut next = Vec::new();
            for value in current {
                match (segment, value) {
                    (Segment::Key(k), serde_json::Value::Object(map)) => next.push(map.get(k)?),
                    (Segment::Each, serde_json::Value::Array(items)) => next.extend(items.iter()),
                    _ => return None,
                }
            }
            current = next;
        }
        Some(current)
    }

    /// Whether `self` is `other` or lies beneath it (releasing `other` releases `self`).
    pub fn is_within(&self, other: &FieldPath) -> bool {
        self.0.starts_with(&other.0)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for segment in &self.0 {
            match segment {
                Segment::Key(k) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Segment::Each => f.write_str("[*]")?,
            }
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_prints() {
        for p in ["bsn", "uitkeringen[*].soort", "a[*][*].b", "a.b.c"] {
            assert_eq!(FieldPath::parse(p).unwrap().to_string(), p);
        }
        for bad in ["", "a..b", "a[0]", "a[*]x", ".a", "a.", "a b", "$.a"] {
            assert!(FieldPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn collects_values() {
        let doc = json!({"v": [{"c": "x"}, {"c": "y"}, {"d": 1}], "bsn": "1"});
        let values = FieldPath::parse("v[*].c").unwrap().values(&doc);
        assert_eq!(values, [&json!("x"), &json!("y")]);
        assert!(FieldPath::parse("nope").unwrap().values(&doc).is_empty());
        assert!(FieldPath::parse("bsn[*]").unwrap().values(&doc).is_empty());
    }

    #[test]
    fn every_value_fails_on_a_gap() {
        let doc = json!({"v": [{"c": "x"}, {"c": "y"}, {"d": 1}], "w": [{"c": "x"}]});
        assert_eq!(FieldPath::parse("v[*].c").unwrap().every_value(&doc), None);
        assert_eq!(
            FieldPath::parse("w[*].c").unwrap().every_value(&doc),
            Some(vec![&json!("x")])
        );
        assert_eq!(FieldPath::parse("nope").unwrap().every_value(&doc), None);
        assert_eq!(
            FieldPath::parse("w[*]")
                .unwrap()
                .every_value(&json!({"w": {}})),
            None
        );
        // An empty array holds no element to check: the path is there, with no values.
        assert_eq!(
            FieldPath::parse("w[*].c")
                .unwrap()
                .every_value(&json!({"w": []})),
            Some(vec![])
        );
    }

    #[test]
    fn containment() {
        let a = FieldPath::parse("a[*].b").unwrap();
        assert!(FieldPath::parse("a[*].b.c").unwrap().is_within(&a));
        assert!(!FieldPath::parse("a[*].bc").unwrap().is_within(&a));
    }
}
