//! `doelpoort audit query`: every exchange about one person (GDPR art. 15), or one case, or
//! one consumer, in a time window — as a table, JSON or CSV.
//!
//! The subject is found by computing its HMAC with the log's subject key, so the log is
//! searched without ever holding a BSN. The chain is checked on the way; a break is reported
//! with the answer (an art. 15 answer from a damaged log must say so).

use super::record::{self, StoredRecord};
use super::segment;
use super::subject::SubjectKey;
use super::writer::rfc3339;
use anyhow::{Context as _, Result};
use serde::Serialize;
use std::path::Path;
use std::time::SystemTime;
use time::OffsetDateTime;

/// Which records to report.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// `dpl.core.data_subject_id` (the HMAC), not the BSN.
    pub subject_id: Option<String>,
    pub case_id: Option<String>,
    pub consumer: Option<String>,
    /// Inclusive bounds on `start_time`, in the records' own format (see [`bound`]).
    pub from: Option<String>,
    pub to: Option<String>,
}

impl Filter {
    /// A filter for one person, by BSN.
    pub fn subject(key: &SubjectKey, bsn: &crate::context::Bsn) -> Self {
        Self {
            subject_id: Some(key.subject_id(bsn.as_str())),
            ..Self::default()
        }
    }

    fn matches(&self, r: &StoredRecord) -> bool {
        let start = r.field("start_time").unwrap_or_default();
        self.subject_id.as_deref().is_none_or(|s| {
            r.attribute("dpl.core.data_subject_id") == Some(s)
                || r.attribute("doelpoort.requested_subject_id") == Some(s)
        }) && self
            .case_id
            .as_deref()
            .is_none_or(|c| r.attribute("doelpoort.case_id") == Some(c))
            && self
                .consumer
                .as_deref()
                .is_none_or(|c| consumer_id(r) == Some(c))
            && self.from.as_deref().is_none_or(|f| start >= f)
            && self.to.as_deref().is_none_or(|t| start <= t)
    }
}

fn consumer_id(r: &StoredRecord) -> Option<&str> {
    r.value
        .get("attributes")?
        .get("doelpoort.consumer")?
        .get("id")?
        .as_str()
}

/// A time bound from the command line: `YYYY-MM-DD` (UTC; the start of the day for `--from`,
/// its end for `--to`) or RFC 3339 with an offset.
pub fn bound(text: &str, end_of_day: bool) -> Result<String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = time::Date::parse(text, format) {
        let time = if end_of_day {
            time::Time::from_hms_micro(23, 59, 59, 999_999)?
        } else {
            time::Time::MIDNIGHT
        };
        return Ok(rfc3339(SystemTime::from(date.with_time(time).assume_utc())));
    }
    let at = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| {
            format!(
                "'{text}' is not a date (YYYY-MM-DD) or an RFC 3339 time (2026-11-24T10:00:00Z)"
            )
        })?;
    Ok(rfc3339(SystemTime::from(at)))
}

/// One exchange in the answer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Row {
    pub time: String,
    pub consumer: String,
    pub consumer_oin: String,
    pub purpose: String,
    pub legal_basis: String,
    pub partner: String,
    pub operation: String,
    pub decision: String,
    pub reason: String,
    pub case_id: String,
    /// Who approved the exchange (four eyes), as `id (role)`.
    pub approvals: Vec<String>,
    pub fields_released: Vec<String>,
    pub transaction_id: String,
    /// In an answer about one person: `declared` when the exchange declared them, `requested`
    /// when it was about them while another person was declared (`subject-mismatch`).
    pub subject_role: String,
    /// Whether this row comes from an intent record (see [`crate::exchange::RecordKind`]).
    #[serde(skip)]
    intent: bool,
}

impl Row {
    fn of(r: &StoredRecord) -> Self {
        let consumer = r
            .value
            .get("attributes")
            .and_then(|a| a.get("doelpoort.consumer"));
        let text = |name: &str| r.attribute(name).unwrap_or_default().to_string();
        Self {
            time: r.field("start_time").unwrap_or_default().to_string(),
            consumer: consumer
                .and_then(|c| c.get("name"))
                .and_then(|n| n.as_str())
                .unwrap_or("(unknown organisation)")
                .to_string(),
            consumer_oin: consumer
                .and_then(|c| c.get("oin"))
                .and_then(|n| n.as_str())
                .unwrap_or_default()
                .to_string(),
            purpose: text("doelpoort.purpose"),
            legal_basis: text("doelpoort.legal_basis"),
            partner: text("doelpoort.partner"),
            operation: r.field("name").unwrap_or_default().to_string(),
            decision: text("doelpoort.decision"),
            reason: text("doelpoort.reason"),
            case_id: text("doelpoort.case_id"),
            approvals: r
                .value
                .get("attributes")
                .and_then(|a| a.get("doelpoort.approvals"))
                .and_then(|a| a.as_array())
                .map(|list| {
                    list.iter()
                        .map(|a| {
                            let by = a.get("by").and_then(|v| v.as_str()).unwrap_or("?");
                            match a.get("role").and_then(|v| v.as_str()) {
                                Some(role) => format!("{by} ({role})"),
                                None => by.to_string(),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default(),
            fields_released: r
                .attribute_list("doelpoort.fields_released")
                .into_iter()
                .map(str::to_string)
                .collect(),
            transaction_id: text("doelpoort.transaction_id"),
            subject_role: String::new(),
            intent: r.is_intent(),
        }
    }

    /// The row in an answer about the person whose keyed id is `subject_id`.
    fn about(r: &StoredRecord, subject_id: Option<&str>) -> Self {
        let mut row = Self::of(r);
        if let Some(id) = subject_id {
            row.subject_role = if r.attribute("doelpoort.requested_subject_id") == Some(id)
                && r.attribute("dpl.core.data_subject_id") != Some(id)
            {
                "requested".into()
            } else {
                "declared".into()
            };
        }
        row
    }
}

/// The answer: matching rows (oldest first) and anything the reader should know about the log.
#[derive(Debug, Default)]
pub struct Answer {
    pub rows: Vec<Row>,
    pub warnings: Vec<String>,
}

/// Reads every segment in `dir` and returns the records `filter` selects.
pub fn query(dir: &Path, filter: &Filter) -> Result<Answer> {
    let mut collector = Collector::default();
    if let Err(b) = super::verify::verify(dir) {
        collector.warn(format!(
            "the audit chain is broken, this answer may be incomplete: {b}"
        ));
    }
    for (_, path) in segment::list_segments(dir)? {
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        for (line_no, line) in segment::contents(&bytes).lines {
            collector.take(&format!("{}:{line_no}", path.display()), line, filter);
        }
    }
    Ok(collector.finish())
}

/// Gathers a query's answer from record lines, wherever they are stored (segment files, or
/// the central store: [`super::central`]).
#[derive(Default)]
pub struct Collector {
    answer: Answer,
    outcomes: std::collections::HashSet<String>,
}

impl Collector {
    pub fn warn(&mut self, warning: String) {
        self.answer.warnings.push(warning);
    }

    /// One stored line; `place` names it in a warning if it is not a record.
    pub fn take(&mut self, place: &str, line: &[u8], filter: &Filter) {
        match record::parse_line(line) {
            Ok(r) if filter.matches(&r) => {
                let row = Row::about(&r, filter.subject_id.as_deref());
                if !row.intent {
                    self.outcomes.insert(row.transaction_id.clone());
                }
                self.answer.rows.push(row);
            }
            Ok(_) => {}
            Err(e) => self.warn(format!("{place}: skipped: {e}")),
        }
    }

    /// The answer. An intent is shown only when its exchange has no outcome record: the
    /// gateway stopped while the partner was called, and whether the partner acted is not
    /// known.
    pub fn finish(mut self) -> Answer {
        let outcomes = self.outcomes;
        self.answer
            .rows
            .retain(|row| !row.intent || !outcomes.contains(&row.transaction_id));
        for row in self.answer.rows.iter_mut().filter(|row| row.intent) {
            row.decision = "outcome unknown".into();
            row.reason = "the gateway stopped while the partner was called".into();
        }
        self.answer
    }
}

/// Output format of `audit query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// Array positions are not interesting to a citizen: `/uitkeringen/*/soort` (how records state
/// fields since 2026-12), `/uitkeringen/0/soort` and `/uitkeringen/1/soort` (older records) are
/// all "uitkeringen[*].soort".
pub fn field_names(pointers: &[String]) -> Vec<String> {
    let mut names: Vec<String> = pointers
        .iter()
        .map(|p| {
            let mut name = String::new();
            for segment in p.split('/').skip(1) {
                if segment == "*"
                    || (segment.bytes().all(|b| b.is_ascii_digit()) && !segment.is_empty())
                {
                    name.push_str("[*]");
                } else {
                    if !name.is_empty() {
                        name.push('.');
                    }
                    name.push_str(&segment.replace("~1", "/").replace("~0", "~"));
                }
            }
            if name.is_empty() {
                "(whole document)".into()
            } else {
                name
            }
        })
        .collect();
    names.dedup();
    names.sort();
    names.dedup();
    names
}

pub fn render(rows: &[Row], format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(rows).unwrap_or_default() + "\n",
        Format::Csv => {
            let mut out = String::from(
                "time,consumer,consumer_oin,purpose,legal_basis,partner,operation,decision,reason,case_id,approvals,fields_released,transaction_id,subject_role\n",
            );
            for r in rows {
                let fields = field_names(&r.fields_released).join(" ");
                let approvals = r.approvals.join(" ");
                let cells = [
                    &r.time,
                    &r.consumer,
                    &r.consumer_oin,
                    &r.purpose,
                    &r.legal_basis,
                    &r.partner,
                    &r.operation,
                    &r.decision,
                    &r.reason,
                    &r.case_id,
                    &approvals,
                    &fields,
                    &r.transaction_id,
                    &r.subject_role,
                ];
                let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
                out.push_str(&line.join(","));
                out.push('\n');
            }
            out
        }
        Format::Table => {
            let header = [
                "time (UTC)",
                "consumer",
                "purpose",
                "legal basis",
                "partner",
                "operation",
                "decision",
                "released fields",
            ];
            let body: Vec<[String; 8]> = rows
                .iter()
                .map(|r| {
                    let mut decision = if r.reason.is_empty() {
                        r.decision.clone()
                    } else {
                        format!("{} ({})", r.decision, r.reason)
                    };
                    if r.subject_role == "requested" {
                        decision.push_str("; asked about this person under another's name");
                    }
                    [
                        r.time.get(..19).unwrap_or(&r.time).replace('T', " "),
                        r.consumer.clone(),
                        r.purpose.clone(),
                        r.legal_basis.clone(),
                        r.partner.clone(),
                        r.operation.clone(),
                        decision,
                        field_names(&r.fields_released).join(", "),
                    ]
                })
                .collect();
            let mut widths = header.map(|h| h.chars().count());
            for row in &body {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            let line = |cells: &[String]| {
                let padded: Vec<String> = cells
                    .iter()
                    .zip(widths)
                    .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
                    .collect();
                padded.join("  ").trim_end().to_string() + "\n"
            };
            let mut out = line(&header.map(String::from));
            out.push_str(&line(&widths.map(|w| "-".repeat(w))));
            for row in &body {
                out.push_str(&line(row));
            }
            out.push_str(&format!("{} exchange(s)\n", rows.len()));
            out
        }
    }
}

fn csv_cell(text: &str) -> String {
    // A cell a spreadsheet would run as a formula is defused with a leading apostrophe.
    if text.starts_with(['=', '+', '-', '@']) {
        return csv_cell(&format!("'{text}"));
    }
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_become_field_names() {
        let pointers = [
            "/uitkeringen/0/soort".to_string(),
            "/uitkeringen/1/soort".to_string(),
            "/uitkeringen/*/soort".to_string(),
            "/heeft_inkomen".to_string(),
            "/a~1b".to_string(),
        ];
        assert_eq!(
            field_names(&pointers),
            ["a/b", "heeft_inkomen", "uitkeringen[*].soort"]
        );
        assert_eq!(field_names(&[String::new()]), ["(whole document)"]);
    }

    #[test]
    fn bounds_accept_dates_and_times() {
        assert_eq!(
            bound("2026-11-24", false).unwrap(),
            "2026-11-24T00:00:00.000000Z"
        );
        assert_eq!(
            bound("2026-11-24", true).unwrap(),
            "2026-11-24T23:59:59.999999Z"
        );
        assert_eq!(
            bound("2026-11-24T10:00:00+01:00", false).unwrap(),
            "2026-11-24T09:00:00.000000Z"
        );
        assert!(bound("24-11-2026", false).is_err());
    }

    #[test]
    fn csv_cells_are_quoted_when_needed() {
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"x\""), "\"say \"\"x\"\"\"");
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }
}
