//! `doelpoort audit join`: one exchange from both ends (SPEC §10).
//!
//! The consumer side's gateway (outway) and the provider's inway each keep their own
//! hash-chained log; both record the same `Fsc-Transaction-Id`. Joining the two logs on it
//! shows, per exchange, who asked for what on which grounds (the consumer side's record) next
//! to what the provider decided and released (the inway's record) — two-level logging, per
//! user at the consumer and per organisation at the source. Both chains are verified first: a
//! join of a log that does not verify is refused.

use super::record::{parse_line, StoredRecord};
use super::segment::{contents, list_segments};
use anyhow::{Context as _, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// One exchange as both logs tell it (outcome records; intent records are counted).
pub struct Joined {
    pub transaction_id: String,
    pub consumer_side: Option<Value>,
    pub provider_side: Option<Value>,
}

/// Every outcome record of a verified log, by transaction id.
fn outcomes(dir: &Path) -> Result<BTreeMap<String, Value>> {
    super::verify::verify(dir).map_err(|broken| {
        anyhow::anyhow!("{}: the audit log does not verify: {broken}", dir.display())
    })?;
    let mut out = BTreeMap::new();
    for (_, path) in list_segments(dir)? {
        let bytes = std::fs::read(&path).with_context(|| path.display().to_string())?;
        for (_, line) in contents(&bytes).lines {
            let record: StoredRecord =
                parse_line(line).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            if record.is_intent() {
                continue;
            }
            if let Some(tx) = record.attribute("doelpoort.transaction_id") {
                out.insert(tx.to_string(), record.value.clone());
            }
        }
    }
    Ok(out)
}

/// Joins the consumer side's log with the provider's on the transaction id; only
/// `transaction_id` if given. Exchanges only one side knows are included (a refusal at the
/// outway never reached the inway; a caller the inway refused may not be an outway's).
pub fn join(
    consumer_dir: &Path,
    provider_dir: &Path,
    transaction_id: Option<&str>,
) -> Result<Vec<Joined>> {
    let mut consumer = outcomes(consumer_dir)?;
    let mut provider = outcomes(provider_dir)?;
    let mut ids: Vec<String> = consumer.keys().chain(provider.keys()).cloned().collect();
    ids.sort();
    ids.dedup();
    Ok(ids
        .into_iter()
        .filter(|id| transaction_id.is_none_or(|t| t == id))
        .map(|id| Joined {
            consumer_side: consumer.remove(&id),
            provider_side: provider.remove(&id),
            transaction_id: id,
        })
        .collect())
}

fn side(record: &Value) -> Value {
    let a = &record["attributes"];
    json!({
        "time": record["start_time"],
        "operation": record["name"],
        "consumer": a["doelpoort.consumer"]["id"],
        "requester": a["doelpoort.requester"],
        "purpose": a["doelpoort.purpose"],
        "legal_basis": a["doelpoort.legal_basis"],
        "grant": a["doelpoort.grant"],
        "decision": a["doelpoort.decision"],
        "reason": a["doelpoort.reason"],
        "fields_released": a["doelpoort.fields_released"],
        "fields_withheld": a["doelpoort.fields_withheld"],
        "assertion_jti": a["doelpoort.assertion_jti"],
        "fsc": a["doelpoort.fsc"],
        "instance": a["doelpoort.instance"],
        "seq": record["seq"],
    })
}

/// The join as JSON lines: `{"transaction_id", "consumer_side", "provider_side",
/// "same_assertion"}`.
pub fn json_lines(joined: &[Joined]) -> String {
    let mut out = String::new();
    for j in joined {
        let same = match (&j.consumer_side, &j.provider_side) {
            (Some(c), Some(p)) => Value::Bool(
                c["attributes"]["doelpoort.assertion_jti"]
                    == p["attributes"]["doelpoort.assertion_jti"],
            ),
            _ => Value::Null,
        };
        out.push_str(
            &json!({
                "transaction_id": j.transaction_id,
                "consumer_side": j.consumer_side.as_ref().map(side),
                "provider_side": j.provider_side.as_ref().map(side),
                "same_assertion": same,
            })
            .to_string(),
        );
        out.push('\n');
    }
    out
}

/// The join as a table for people: one block per exchange.
pub fn table(joined: &[Joined]) -> String {
    let mut out = String::new();
    let text = |v: &Value| match v {
        Value::Null => "—".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "(none)".to_string(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().unwrap_or("?").to_string())
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    };
    for j in joined {
        out.push_str(&format!("exchange {}\n", j.transaction_id));
        for (label, record) in [
            ("consumer side", &j.consumer_side),
            ("provider side", &j.provider_side),
        ] {
            let Some(record) = record else {
                out.push_str(&format!("  {label:<14} (not in this log)\n"));
                continue;
            };
            let s = side(record);
            let who = if s["requester"].is_null() {
                &s["consumer"]
            } else {
                &s["requester"]
            };
            out.push_str(&format!(
                "  {label:<14} {} {} by {} for {} — {}{}\n",
                text(&s["time"]),
                text(&s["operation"]),
                text(who),
                text(&s["purpose"]),
                text(&s["decision"]),
                s["reason"]
                    .as_str()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
            ));
            out.push_str(&format!(
                "  {:<14} released: {}\n",
                "",
                text(&s["fields_released"])
            ));
            out.push_str(&format!(
                "  {:<14} withheld: {}\n",
                "",
                text(&s["fields_withheld"])
            ));
        }
    }
    if joined.is_empty() {
        out.push_str("no exchanges\n");
    }
    out
}
