//! Strict JSON parsing for bodies that cross the gateway.
//!
//! `serde_json::Value` keeps the *last* of two equal keys; other parsers keep the first. A
//! filter that reads one and a consumer that reads the other is a classic bypass, so a
//! duplicate key anywhere refuses the whole body. Nesting is bounded well below serde_json's
//! own recursion limit so that a deeply nested body costs little before it is refused.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrictError {
    Invalid,
    DuplicateKey,
    TooDeep(usize),
    TrailingData,
}

impl fmt::Display for StrictError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid => f.write_str("not valid JSON"),
            Self::DuplicateKey => f.write_str("an object has a duplicate key"),
            Self::TooDeep(max) => write!(f, "nested deeper than {max} levels"),
            Self::TrailingData => f.write_str("data after the JSON value"),
        }
    }
}

const DUPLICATE: &str = "doelpoort: duplicate key";
const TOO_DEEP: &str = "doelpoort: too deep";

/// Parses one JSON value, refusing duplicate keys and nesting deeper than `max_depth`.
pub fn parse(bytes: &[u8], max_depth: usize) -> Result<Value, StrictError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue {
        depth: 0,
        max_depth,
    }
    .deserialize(&mut de)
    .map_err(|e| {
        let text = e.to_string();
        if text.starts_with(DUPLICATE) {
            StrictError::DuplicateKey
        } else if text.starts_with(TOO_DEEP) || text.contains("recursion limit") {
            StrictError::TooDeep(max_depth)
        } else {
            StrictError::Invalid
        }
    })?;
    de.end().map_err(|_| StrictError::TrailingData)?;
    Ok(value)
}

#[derive(Clone, Copy)]
struct StrictValue {
    depth: usize,
    max_depth: usize,
}

impl StrictValue {
    fn nested<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= self.max_depth {
            return Err(E::custom(TOO_DEEP));
        }
        Ok(Self {
            depth: self.depth + 1,
            ..self
        })
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(inner)?;
            if out.insert(key, value).is_some() {
                return Err(de::Error::custom(DUPLICATE));
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ordinary_json() {
        let v = parse(br#"{"a":[1,2.5,"x",true,null],"b":{"c":-3}}"#, 8).unwrap();
        assert_eq!(v["a"][1], 2.5);
        assert_eq!(v["b"]["c"], -3);
    }

    #[test]
    fn refuses_duplicate_keys_at_any_depth() {
        assert_eq!(
            parse(br#"{"a":1,"a":2}"#, 8),
            Err(StrictError::DuplicateKey)
        );
        assert_eq!(
            parse(br#"{"x":[{"b":1,"c":2,"b":3}]}"#, 8),
            Err(StrictError::DuplicateKey)
        );
        // Different escapes of the same key are the same key.
        assert_eq!(
            parse(br#"{"a":1,"\u0061":2}"#, 8),
            Err(StrictError::DuplicateKey)
        );
    }

    #[test]
    fn refuses_deep_nesting() {
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        assert_eq!(parse(deep.as_bytes(), 32), Err(StrictError::TooDeep(32)));
        let ok = format!("{}{}", "[".repeat(10), "]".repeat(10));
        assert!(parse(ok.as_bytes(), 32).is_ok());
        // Far beyond serde_json's own limit: refused, not a stack overflow.
        let bomb = "[".repeat(100_000);
        assert!(parse(bomb.as_bytes(), 32).is_err());
    }

    #[test]
    fn refuses_invalid_and_trailing_data() {
        assert_eq!(parse(b"{", 8), Err(StrictError::Invalid));
        assert_eq!(parse(b"", 8), Err(StrictError::Invalid));
        assert_eq!(parse(b"{} {}", 8), Err(StrictError::TrailingData));
        assert_eq!(parse(b"[NaN]", 8), Err(StrictError::Invalid));
    }
}
