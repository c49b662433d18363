//! Fuzz target `strict_json`: `minimise::strict::parse` on arbitrary bytes.
//!
//! Input layout: byte 0 selects the nesting limit (0–15), the rest is the body.
//!
//! Invariants:
//! * never panics (also not on nesting far beyond the limit);
//! * `Ok(v)` ⇒ `serde_json::from_slice::<Value>` accepts the input and yields the same `v`,
//!   and `v` nests no deeper than the limit;
//! * when `serde_json` accepts the input, the only refusals are `DuplicateKey` and `TooDeep`
//!   (never `Invalid` or `TrailingData`), and a value that nests deeper than the limit is
//!   refused.
#![no_main]

use doelpoort::minimise::strict::{self, StrictError};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Nesting of containers: a scalar is 0, `[]` is 1, `[[]]` is 2.
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, body)) = data.split_first() else {
        return;
    };
    let max_depth = usize::from(control % 16);
    let strict = strict::parse(body, max_depth);
    let loose = serde_json::from_slice::<Value>(body);
    match (&strict, &loose) {
        (Ok(s), Ok(l)) => {
            assert_eq!(s, l, "strict and serde_json parse the same input differently");
            assert!(
                depth(s) <= max_depth,
                "accepted a value nested {} deep with limit {max_depth}",
                depth(s)
            );
        }
        (Ok(s), Err(e)) => panic!("strict::parse accepted {s:?}, serde_json refuses it: {e}"),
        (Err(StrictError::DuplicateKey | StrictError::TooDeep(_)), Ok(_)) => {}
        (Err(e), Ok(l)) => {
            panic!("strict::parse refused valid JSON with {e:?} ({e}); serde_json read {l:?}")
        }
        (Err(_), Err(_)) => {}
    }
    if let (Err(StrictError::TooDeep(limit)), _) = (&strict, &loose) {
        assert_eq!(*limit, max_depth);
    }
    if let Ok(l) = &loose {
        if depth(l) > max_depth {
            assert!(strict.is_err(), "value nested deeper than {max_depth} accepted");
        }
    }
});
