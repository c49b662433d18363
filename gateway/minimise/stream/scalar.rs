//! Scalars as the streaming pass reads them, and their checks against a leaf of the schema's
//! shape (type, bounds, length, enumerations, dates).

use super::text::text_of;
use super::{Step, Stop};
use crate::minimise::shape::{self, types, Bound, LeafChecks, LeafShape, NativeChecks, Num, Shape};
use serde_json::Value;

/// A scalar as read: strings and numbers point into the body.
pub(super) enum Scalar<'a> {
    /// The text between the quotes, and whether it holds escapes.
    Str(&'a str, bool),
    Num(&'a str, Num),
    Bool(bool),
    Null,
}

impl Scalar<'_> {
    pub(super) fn to_value(&self) -> Value {
        match self {
            Self::Str(raw, escaped) => Value::String(text_of(raw, *escaped).into_owned()),
            Self::Num(_, Num::Int(i)) => Value::Number((*i).into()),
            Self::Num(_, Num::Other(n)) => Value::Number(n.clone()),
            Self::Bool(b) => Value::Bool(*b),
            Self::Null => Value::Null,
        }
    }
}
pub(super) fn check_leaf(shape: &Shape, scalar: &Scalar<'_>) -> Step {
    let leaf = match shape {
        Shape::Any => return Ok(()),
        Shape::Leaf(leaf) => leaf,
        Shape::Object(_) | Shape::Array(_) => return Err(Stop),
    };
    if !type_fits(leaf, scalar) {
        return Err(Stop);
    }
    let ok = match &leaf.checks {
        LeafChecks::None => true,
        LeafChecks::Native(checks) => native_ok(checks, scalar),
        LeafChecks::Validator(v) => v.is_valid(&scalar.to_value()),
    };
    if ok {
        Ok(())
    } else {
        Err(Stop)
    }
}

fn type_fits(leaf: &LeafShape, scalar: &Scalar<'_>) -> bool {
    let t = leaf.types;
    match scalar {
        Scalar::Null => t & types::NULL != 0,
        Scalar::Bool(_) => t & types::BOOLEAN != 0,
        Scalar::Str(..) => t & types::STRING != 0,
        Scalar::Num(_, n) => t & types::NUMBER != 0 || (t & types::INTEGER != 0 && n.is_integer()),
    }
}

fn native_ok(c: &NativeChecks, scalar: &Scalar<'_>) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    match scalar {
        Scalar::Num(_, n) => {
            let within = |bound: Option<Bound>, allowed: [std::cmp::Ordering; 2]| match bound {
                None => true,
                Some(b) => b.cmp(n).is_some_and(|o| allowed.contains(&o)),
            };
            c.one_of_strings.is_none()
                && within(c.minimum, [Greater, Equal])
                && within(c.maximum, [Less, Equal])
                && within(c.exclusive_minimum, [Greater, Greater])
                && within(c.exclusive_maximum, [Less, Less])
        }
        Scalar::Str(raw, escaped) => {
            let text = text_of(raw, *escaped);
            let needs_length = c.min_length.is_some() || c.max_length.is_some();
            let length = if needs_length {
                text.chars().count() as u64
            } else {
                0
            };
            c.min_length.is_none_or(|m| length >= m)
                && c.max_length.is_none_or(|m| length <= m)
                && c.one_of_strings
                    .as_ref()
                    .is_none_or(|list| list.iter().any(|s| *s == *text))
                && (!c.date || shape::is_valid_date(&text))
        }
        Scalar::Bool(_) | Scalar::Null => c.one_of_strings.is_none(),
    }
}
