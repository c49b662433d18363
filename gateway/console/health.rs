//! Page 5: the audit log's health — per instance, whether its hash chain verifies (as
//! `doelpoort audit verify` checks it), how many records it holds and its last record;
//! whether this instance can write; and the group commit's write latency from the metrics.

use super::page::{html, Frame};
use super::{Ask, AuditSource, Console};
use crate::audit::{record, segment, verify};
use askama::Template;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use prometheus::core::Metric;
use std::path::Path;

/// One instance's chain.
pub struct Chain {
    pub instance: String,
    /// `None` when it verifies; the first break otherwise.
    pub broken: Option<String>,
    pub records: u64,
    pub last_seq: Option<u64>,
    pub last_hash: String,
    pub last_time: String,
    pub warnings: Vec<String>,
}

#[derive(Template)]
#[template(path = "health.html")]
struct Health {
    f: Frame,
    off: bool,
    chains: Vec<Chain>,
    /// Why the chains could not be read at all.
    unreadable: Option<String>,
    /// `None`: writable; the reason otherwise.
    not_writable: Option<String>,
    commits: u64,
    mean_ms: String,
    p99_ms: String,
}

pub async fn page(console: &Console, ask: &Ask) -> Response<Full<Bytes>> {
    let source = console.audit.clone();
    let instance = console.instance.clone();
    let chains = tokio::task::spawn_blocking(move || chains(&source, &instance))
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    let not_writable = console
        .state
        .audit
        .as_ref()
        .and_then(|log| log.health().check().err());
    let histogram = console.state.metrics.audit_write_duration.metric();
    let h = histogram.get_histogram();
    let commits = h.get_sample_count();
    let mean_ms = if commits > 0 {
        format!("{:.2}", h.get_sample_sum() * 1000.0 / commits as f64)
    } else {
        "-".into()
    };
    // The upper bound of the bucket the 99th percentile falls in.
    let p99_ms = h
        .get_bucket()
        .iter()
        .find(|b| commits > 0 && b.cumulative_count() as f64 >= 0.99 * commits as f64)
        .map(|b| format!("≤ {:.2}", b.upper_bound() * 1000.0))
        .unwrap_or_else(|| "-".into());
    let (chains, unreadable) = match chains {
        Ok(c) => (c, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    html(
        StatusCode::OK,
        &Health {
            f: Frame::new(console, ask, "/audit"),
            off: matches!(console.audit, AuditSource::Off),
            chains,
            unreadable,
            not_writable,
            commits,
            mean_ms,
            p99_ms,
        },
    )
}

fn chains(source: &AuditSource, instance: &str) -> Result<Vec<Chain>, String> {
    match source {
        AuditSource::Off => Ok(Vec::new()),
        AuditSource::Files(dir) => Ok(vec![match verify::verify(dir) {
            Ok(report) => Chain {
                instance: instance.to_string(),
                broken: None,
                records: report.records,
                last_seq: report.last.as_ref().map(|l| l.seq),
                last_hash: report.last.map(|l| l.hash).unwrap_or_default(),
                last_time: last_time(dir).unwrap_or_default(),
                warnings: report.warnings,
            },
            Err(b) => Chain {
                instance: instance.to_string(),
                broken: Some(b.to_string()),
                records: 0,
                last_seq: None,
                last_hash: String::new(),
                last_time: String::new(),
                warnings: Vec::new(),
            },
        }]),
        AuditSource::Postgres(url) => Ok(crate::audit::central::verify(url)
            .map_err(|e| format!("{e:#}"))?
            .into_iter()
            .map(|r| match r {
                Ok(r) => Chain {
                    instance: r.instance,
                    broken: None,
                    records: r.records,
                    last_seq: r.last.as_ref().map(|l| l.seq),
                    last_hash: r.last.map(|l| l.hash).unwrap_or_default(),
                    last_time: String::new(),
                    warnings: r.warnings,
                },
                Err(b) => Chain {
                    instance: b.file.display().to_string(),
                    broken: Some(b.message),
                    records: 0,
                    last_seq: None,
                    last_hash: String::new(),
                    last_time: String::new(),
                    warnings: Vec::new(),
                },
            })
            .collect()),
    }
}

/// The end time of the newest record in a file log.
fn last_time(dir: &Path) -> Option<String> {
    let (_, newest) = segment::list_segments(dir).ok()?.into_iter().last()?;
    let bytes = std::fs::read(newest).ok()?;
    let (_, line) = segment::contents(&bytes).lines.into_iter().last()?;
    let stored = record::parse_line(line).ok()?;
    stored.field("end_time").map(str::to_string)
}
