//! The audit writer: one thread that owns the log and commits records in groups.
//!
//! Exchanges hand their event to a bounded queue and wait for the receipt. The writer takes
//! everything queued (up to `batch_max`), gives each record its `seq` and `prev_hash`, writes
//! the batch with one `write` and one `fdatasync`, and only then answers each waiting exchange.
//! While one fsync runs, the next batch gathers — that is the group commit: with 16 callers in
//! flight, 16 records share one fsync instead of queueing behind 16.
//!
//! Failure is all-or-nothing per batch. If the write or the fsync fails, the file is cut back to
//! the last committed byte and the chain state is rolled back, so the log never holds a record
//! whose exchange was refused for want of it — nor a half line the next batch would bury.

use super::record::{self, Attributes, ConsumerRef, Record};
use super::segment::{self, Anchor, ChainPoint};
use super::subject::{SubjectKey, BSN_TYPE};
use super::{AuditError, AuditEvent};
use crate::metrics::Metrics;
use anyhow::{Context as _, Result};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use time::OffsetDateTime;
use tokio::sync::oneshot;

/// How the writer runs (from the `audit` section of the configuration).
#[derive(Debug, Clone)]
pub struct WriterSettings {
    pub dir: PathBuf,
    pub instance: String,
    pub segment_max_bytes: u64,
    pub segment_max_age: Duration,
    pub retention: Option<Duration>,
    pub batch_max: usize,
}

/// A record waiting for the writer, with the exchange's way to hear back.
pub(super) struct Pending {
    pub event: AuditEvent,
    pub ack: oneshot::Sender<Result<u64, AuditError>>,
}

/// The segment being appended to.
struct OpenSegment {
    file: File,
    path: PathBuf,
    /// Bytes known to be durable; a failed batch is cut back to here.
    committed_len: u64,
    opened: Instant,
}

pub(super) struct Writer {
    settings: WriterSettings,
    key: SubjectKey,
    metrics: Arc<Metrics>,
    writable: Arc<AtomicBool>,
    segment: Option<OpenSegment>,
    /// The last committed record (seq 0 and the genesis hash for an empty log).
    last: ChainPoint,
    head: Option<File>,
    buf: Vec<u8>,
}

/// How often an idle writer checks time-based rotation and retention.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);
/// `head.json` is padded to this many bytes so each update is one positional write.
const HEAD_BYTES: usize = 160;

impl Writer {
    /// Recovers the log in `settings.dir` (see [`recover`]) and prepares to continue its chain.
    pub fn open(
        settings: WriterSettings,
        key: SubjectKey,
        metrics: Arc<Metrics>,
        writable: Arc<AtomicBool>,
    ) -> Result<Self> {
        std::fs::create_dir_all(&settings.dir).with_context(|| {
            format!(
                "cannot create the audit directory {}",
                settings.dir.display()
            )
        })?;
        let last = recover(&settings.dir)?;
        let head = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(settings.dir.join(segment::HEAD))
            .with_context(|| {
                format!(
                    "cannot write in the audit directory {}",
                    settings.dir.display()
                )
            })?;
        let mut writer = Self {
            settings,
            key,
            metrics,
            writable,
            segment: None,
            last,
            head: Some(head),
            buf: Vec::with_capacity(64 * 1024),
        };
        writer.write_head();
        Ok(writer)
    }

    pub fn run(mut self, queue: Receiver<Pending>) {
        let mut batch: Vec<Pending> = Vec::with_capacity(self.settings.batch_max);
        loop {
            match queue.recv_timeout(MAINTENANCE_INTERVAL) {
                Ok(first) => batch.push(first),
                Err(RecvTimeoutError::Timeout) => {
                    self.maintain();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while batch.len() < self.settings.batch_max {
                match queue.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            self.metrics.audit_queue_depth.sub(batch.len() as i64);
            let started = Instant::now();
            let outcome = self.commit(&batch);
            self.metrics
                .audit_write_duration
                .observe(started.elapsed().as_secs_f64());
            match outcome {
                Ok(first_seq) => {
                    self.writable.store(true, Ordering::Relaxed);
                    for (i, pending) in batch.drain(..).enumerate() {
                        let _ = pending.ack.send(Ok(first_seq + i as u64));
                    }
                }
                Err(e) => {
                    if self.writable.swap(false, Ordering::Relaxed) {
                        tracing::error!(error = %format!("{e:#}"), "the audit log cannot be written; exchanges are refused until it can");
                    }
                    for pending in batch.drain(..) {
                        let _ = pending.ack.send(Err(AuditError::WriteFailed));
                    }
                }
            }
        }
    }

    /// Writes and syncs one batch; returns the seq of its first record.
    fn commit(&mut self, batch: &[Pending]) -> Result<u64> {
        self.rotate_if_due()?;
        let first_seq = self.last.seq + 1;
        self.buf.clear();
        let mut prev = self.last.hash.clone();
        for (i, pending) in batch.iter().enumerate() {
            prev = self.format(&pending.event, first_seq + i as u64, &prev);
        }
        let segment = self
            .segment
            .as_mut()
            .expect("rotate_if_due opened a segment");
        let written = segment
            .file
            .write_all(&self.buf)
            .and_then(|()| segment.file.sync_data())
            .context("audit write or fsync failed")
            .and_then(|()| {
                // A segment removed from under us takes acknowledged records with it.
                let meta = segment.file.metadata()?;
                anyhow::ensure!(meta.nlink() > 0, "the audit segment file was removed");
                Ok(())
            });
        match written {
            Ok(()) => {
                segment.committed_len += self.buf.len() as u64;
                self.last = ChainPoint {
                    seq: first_seq + batch.len() as u64 - 1,
                    hash: prev,
                };
                self.write_head();
                Ok(first_seq)
            }
            Err(e) => {
                // `self.last` still names the last committed record; cut the file back to it.
                let cut = segment.file.set_len(segment.committed_len);
                if cut.is_err() || segment.file.metadata().map_or(true, |m| m.nlink() == 0) {
                    // The file can no longer be trusted to end at a record boundary (or is
                    // gone): the next batch starts a new segment from the committed chain.
                    self.segment = None;
                }
                Err(e)
            }
        }
    }

    /// Formats one record into the batch buffer; returns its hash.
    fn format(&mut self, event: &AuditEvent, seq: u64, prev_hash: &str) -> String {
        let start = rfc3339(event.start_time);
        let end = rfc3339(event.end_time);
        let trace_id = hex::encode(event.trace.trace_id);
        let span_id = hex::encode(event.trace.span_id);
        let parent = event.trace.parent_span_id.map(hex::encode);
        let transaction_id = event.transaction_id.hyphenated().to_string();
        let subject_id = event
            .subject
            .as_ref()
            .map(|b| self.key.subject_id(b.as_str()));
        let legal_basis = event
            .purpose
            .as_ref()
            .and_then(|p| p.legal_basis.as_ref())
            .map(|l| l.summary());
        let released: Vec<&str> = event.fields_released.iter().collect();
        let categories: Vec<&str> = match (&event.grant, released.is_empty()) {
            (Some(grant), false) => grant.categories.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        let record = Record {
            attributes: Attributes {
                actor: event.actor.as_deref(),
                case_id: event.case_id.as_deref(),
                consumer: event.consumer.as_ref().map(|c| ConsumerRef {
                    id: &c.id,
                    name: &c.name,
                    oin: c.oin.as_ref().map(|o| o.as_str()),
                }),
                data_categories: categories,
                decision: event.decision.as_str(),
                fields_released: released,
                fields_withheld: event.fields_withheld.iter().collect(),
                grant: event.grant.as_ref().map(|g| g.id.as_str()),
                instance: &self.settings.instance,
                legal_basis: legal_basis.as_deref(),
                partner: event.partner.as_ref().map(|p| p.id.as_str()),
                policy_version: event.policy.as_ref().map(|p| p.version.as_str()),
                purpose: event.purpose.as_ref().map(|p| p.id.as_str()),
                reason: event.reason.map(|r| r.as_str()),
                transaction_id: &transaction_id,
                upstream_status: event.upstream_status,
                data_subject_id: subject_id.as_deref(),
                data_subject_id_type: subject_id.as_ref().map(|_| BSN_TYPE),
                processor: event
                    .partner
                    .as_ref()
                    .and_then(|p| p.oin.as_ref())
                    .map(|o| o.as_str()),
                processing_activity_id: event
                    .purpose
                    .as_ref()
                    .and_then(|p| p.processing_activity.as_deref()),
            },
            end_time: &end,
            name: event
                .operation
                .as_ref()
                .map_or("unknown", |o| o.key.as_str()),
            parent_span_id: parent.as_deref(),
            prev_hash,
            seq,
            span_id: &span_id,
            start_time: &start,
            status: if event.decision == crate::proxy::Decision::Allow {
                "ok"
            } else {
                "error"
            },
            trace_id: &trace_id,
        };
        record::write_line(&record, &mut self.buf)
    }

    /// Opens a new segment when there is none, or the current one is full or old.
    fn rotate_if_due(&mut self) -> Result<()> {
        let due = match &self.segment {
            None => true,
            Some(s) => {
                s.committed_len >= self.settings.segment_max_bytes
                    || s.opened.elapsed() >= self.settings.segment_max_age
            }
        };
        if !due {
            return Ok(());
        }
        let first_seq = self.last.seq + 1;
        let path = self.settings.dir.join(segment::segment_name(first_seq));
        // A segment of that name can only exist empty or torn-and-repaired from a crash
        // before its first commit; it holds no committed record, so it is replaced.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot create audit segment {}", path.display()))?;
        segment::sync_dir(&self.settings.dir)?;
        let rotated = self.segment.is_some();
        self.segment = Some(OpenSegment {
            file,
            path,
            committed_len: 0,
            opened: Instant::now(),
        });
        if rotated {
            self.prune();
        }
        Ok(())
    }

    /// Idle housekeeping: close an old segment, prune expired ones.
    fn maintain(&mut self) {
        if let Some(s) = &self.segment {
            if s.opened.elapsed() >= self.settings.segment_max_age && s.committed_len > 0 {
                // The next batch opens a fresh segment; this one is complete.
                self.segment = None;
            }
        }
        self.prune();
    }

    /// Deletes whole segments whose newest record is past the retention period, oldest first,
    /// after moving `anchor.json` to the last record deleted.
    fn prune(&mut self) {
        let Some(retention) = self.settings.retention else {
            return;
        };
        let cutoff = rfc3339(SystemTime::now() - retention);
        if let Err(e) = prune_before(&self.settings.dir, &cutoff, self.current_path()) {
            tracing::error!(error = %format!("{e:#}"), "audit retention pruning failed");
        }
    }

    fn current_path(&self) -> Option<&Path> {
        self.segment.as_ref().map(|s| s.path.as_path())
    }

    fn write_head(&mut self) {
        let Some(head) = &self.head else { return };
        let mut text = serde_json::to_string(&self.last).unwrap_or_default();
        if text.len() < HEAD_BYTES - 1 {
            text.extend(std::iter::repeat_n(' ', HEAD_BYTES - 1 - text.len()));
        }
        text.push('\n');
        if head.write_all_at(text.as_bytes(), 0).is_err() {
            // Only a verification aid; the log itself was committed.
            tracing::warn!("cannot update the audit head marker");
        }
    }
}

/// RFC 3339 UTC with microseconds, e.g. `2026-11-24T10:15:00.123456Z`: fixed width, so records
/// and bounds compare as strings.
pub fn rfc3339(t: SystemTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    OffsetDateTime::from(t)
        .format(FORMAT)
        .unwrap_or_else(|_| "0000-00-00T00:00:00.000000Z".into())
}

/// Prepares `dir` to continue its chain after a stop or a crash; returns the last record.
///
/// Only the newest segment can end in a torn line (the writer appends nowhere else). Its
/// bytes after the last newline belong to a batch whose fsync never completed, so no exchange
/// was answered on it: they are moved to `torn/` for inspection and cut from the segment. The
/// last complete record must then verify against its own hash — if it does not, the log was
/// damaged in a way recovery must not paper over, and the gateway refuses to start.
pub fn recover(dir: &Path) -> Result<ChainPoint> {
    let segments = segment::list_segments(dir)?;
    for (_, path) in segments.iter().rev() {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let (lines, tail) = segment::split_lines(&bytes);
        if !tail.is_empty() {
            quarantine_torn(dir, path, bytes.len() - tail.len(), tail)?;
            let file = std::fs::OpenOptions::new().write(true).open(path)?;
            file.set_len((bytes.len() - tail.len()) as u64)?;
            file.sync_all()?;
            tracing::warn!(
                segment = %path.display(),
                bytes = tail.len(),
                "the audit log ended in a torn record (a crash during a write); it was never acknowledged and was moved to torn/"
            );
        }
        let Some(&(line_no, line)) = lines.last() else {
            // An empty segment (created just before a crash) holds nothing; look further back.
            continue;
        };
        let stored = record::parse_line(line).map_err(|e| {
            anyhow::anyhow!(
                "{}:{line_no}: the last audit record is damaged ({e}); run `doelpoort audit verify {}`",
                path.display(),
                dir.display()
            )
        })?;
        anyhow::ensure!(
            stored.hash_matches,
            "{}:{line_no}: the last audit record does not match its hash; run `doelpoort audit verify {}`",
            path.display(),
            dir.display()
        );
        return Ok(ChainPoint {
            seq: stored.seq,
            hash: stored.hash,
        });
    }
    // No records: a fresh log, or one pruned to nothing (continue from the anchor).
    Ok(
        match segment::read_json::<Anchor>(&dir.join(segment::ANCHOR))? {
            Some(anchor) => ChainPoint {
                seq: anchor.seq,
                hash: anchor.hash,
            },
            None => ChainPoint {
                seq: 0,
                hash: record::GENESIS_HASH.into(),
            },
        },
    )
}

fn quarantine_torn(dir: &Path, segment: &Path, offset: usize, bytes: &[u8]) -> Result<()> {
    let torn = dir.join(segment::TORN_DIR);
    std::fs::create_dir_all(&torn)?;
    let name = format!(
        "{}.{offset}.partial",
        segment
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("segment")
    );
    let mut file = File::create(torn.join(name))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Deletes segments (never `current`) whose last record ended before `cutoff`, oldest first.
pub fn prune_before(dir: &Path, cutoff: &str, current: Option<&Path>) -> Result<u64> {
    let mut pruned = 0;
    let mut anchor = segment::read_json::<Anchor>(&dir.join(segment::ANCHOR))?;
    for (_, path) in segment::list_segments(dir)? {
        if Some(path.as_path()) == current {
            break;
        }
        let bytes = std::fs::read(&path)?;
        let (lines, _) = segment::split_lines(&bytes);
        let Some(&(_, line)) = lines.last() else {
            break;
        };
        let last =
            record::parse_line(line).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let ended = last.field("end_time").unwrap_or_default().to_string();
        if ended.as_str() >= cutoff {
            break;
        }
        let next = Anchor {
            seq: last.seq,
            hash: last.hash.clone(),
            pruned_until: ended,
            pruned_segments: anchor.as_ref().map_or(0, |a| a.pruned_segments) + 1,
        };
        // The anchor moves first: a crash between the two steps leaves an anchor pointing at
        // a record that still exists, which verification accepts.
        segment::write_atomically(
            &dir.join(segment::ANCHOR),
            (serde_json::to_string_pretty(&next)? + "\n").as_bytes(),
        )?;
        std::fs::remove_file(&path)?;
        segment::sync_dir(dir)?;
        tracing::info!(segment = %path.display(), "pruned an audit segment past its retention period");
        anchor = Some(next);
        pruned += 1;
    }
    Ok(pruned)
}
