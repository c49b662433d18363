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

/// One exchange as both logs tell it (outcome records; intent records are left out), and what
/// does not fit: more than one record on a side, or sides that disagree about the assertion,
/// the organisation, the purpose or the case.
pub struct Joined {
    pub transaction_id: String,
    pub consumer_side: Vec<Value>,
    pub provider_side: Vec<Value>,
    pub findings: Vec<&'static str>,
}

/// Every outcome record of a verified log, by transaction id (all of them: a caller that
/// reuses an id must not be able to hide a record behind another).
fn outcomes(dir: &Path) -> Result<BTreeMap<String, Vec<Value>>> {
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
                out.entry(tx.to_string())
                    .or_insert_with(Vec::new)
                    .push(record.value.clone());
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
    let same = std::fs::canonicalize(consumer_dir)
        .ok()
        .zip(std::fs::canonicalize(provider_dir).ok())
        .is_some_and(|(c, p)| c == p);
    anyhow::ensure!(
        !same,
        "{} is named for both sides: give the consumer side's log and the provider's",
        consumer_dir.display()
    );
    let mut consumer = outcomes(consumer_dir)?;
    let mut provider = outcomes(provider_dir)?;
    let mut ids: Vec<String> = consumer.keys().chain(provider.keys()).cloned().collect();
    ids.sort();
    ids.dedup();
    Ok(ids
        .into_iter()
        .filter(|id| transaction_id.is_none_or(|t| t == id))
        .map(|id| {
            let consumer_side = consumer.remove(&id).unwrap_or_default();
            let provider_side = provider.remove(&id).unwrap_or_default();
            Joined {
                findings: findings(&consumer_side, &provider_side),
                consumer_side,
                provider_side,
                transaction_id: id,
            }
        })
        .collect())
}

/// What does not fit in one exchange's records.
fn findings(consumer: &[Value], provider: &[Value]) -> Vec<&'static str> {
    let mut out = Vec::new();
    if consumer.len() > 1 {
        out.push("the consumer side has more than one record of this transaction id");
    }
    if provider.len() > 1 {
        out.push("the provider side has more than one record of this transaction id");
    }
    let attribute = |r: &Value, name: &str| r["attributes"][name].clone();
    for c in consumer {
        for p in provider {
            if attribute(c, "doelpoort.assertion_jti") != attribute(p, "doelpoort.assertion_jti") {
                out.push("the sides name different assertions (jti)");
            }
            if c["attributes"]["doelpoort.consumer"]["oin"] != attribute(p, "doelpoort.requester") {
                out.push("the provider side names another organisation than the consumer side");
            }
            for (name, what) in [
                ("doelpoort.purpose", "the sides name different purposes"),
                ("doelpoort.case_id", "the sides name different cases"),
            ] {
                // (Subjects are keyed HMACs under each log's own key: not comparable.)
                if attribute(c, name) != attribute(p, name) {
                    out.push(what);
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
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

/// The join as JSON lines: `{"transaction_id", "consumer_side": [...], "provider_side":
/// [...], "findings": [...]}`.
pub fn json_lines(joined: &[Joined]) -> String {
    let mut out = String::new();
    for j in joined {
        out.push_str(
            &json!({
                "transaction_id": j.transaction_id,
                "consumer_side": j.consumer_side.iter().map(side).collect::<Vec<_>>(),
                "provider_side": j.provider_side.iter().map(side).collect::<Vec<_>>(),
                "findings": j.findings,
            })
            .to_string(),
        );
        out.push('\n');
    }
    out
}

/// The join as a table for people: one block per exchange, findings marked `!`.
pub fn table(joined: &[Joined]) -> String {
    let mut out = String::new();
    for j in joined {
        out.push_str(&format!("exchange {}\n", j.transaction_id));
        for (label, records) in [
            ("consumer side", &j.consumer_side),
            ("provider side", &j.provider_side),
        ] {
            if records.is_empty() {
                out.push_str(&format!("  {label:<14} (not in this log)\n"));
            }
            for record in records {
                out.push_str(&table_side(label, &side(record)));
            }
        }
        for finding in &j.findings {
            out.push_str(&format!("  ! {finding}\n"));
        }
    }
    if joined.is_empty() {
        out.push_str("no exchanges\n");
    }
    out
}

/// One side's lines. Values come from other organisations' statements (an assertion's
/// claims): control characters are escaped, so no value can draw lines of its own.
fn table_side(label: &str, s: &Value) -> String {
    let text = |v: &Value| match v {
        Value::Null => "—".to_string(),
        Value::String(s) => escape(s),
        Value::Array(items) if items.is_empty() => "(none)".to_string(),
        Value::Array(items) => items
            .iter()
            .map(|i| escape(i.as_str().unwrap_or("?")))
            .collect::<Vec<_>>()
            .join(", "),
        other => escape(&other.to_string()),
    };
    let who = if s["requester"].is_null() {
        &s["consumer"]
    } else {
        &s["requester"]
    };
    format!(
        "  {label:<14} {} {} by {} for {} — {}{}\n  {:<14} released: {}\n  {:<14} withheld: {}\n",
        text(&s["time"]),
        text(&s["operation"]),
        text(who),
        text(&s["purpose"]),
        text(&s["decision"]),
        s["reason"]
            .as_str()
            .map(|r| format!(" ({})", escape(r)))
            .unwrap_or_default(),
        "",
        text(&s["fields_released"]),
        "",
        text(&s["fields_withheld"]),
    )
}

/// A value with its control characters escaped (`\n`, `\u{1b}`, …).
fn escape(s: &str) -> String {
    if s.chars().any(char::is_control) {
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        s.to_string()
    }
}
