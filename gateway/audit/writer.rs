//! The audit writer: one thread that owns the log and commits records in groups.
//!
//! Exchanges hand their event to a bounded queue and wait for the receipt. The writer takes
//! everything queued (up to `batch_max`), gives each record its `seq` and `prev_hash`, writes
//! the batch with one `write` and one `fdatasync`, and only then answers each waiting exchange.
//! While one fsync runs, the next batch gathers — that is the group commit: with 16 callers in
//! flight, 16 records share one fsync instead of queueing behind 16.
//!
//! Under load the batches grow further on their own (PostgreSQL's `commit_delay` with
//! `commit_siblings`): exchanges announce themselves while they run ([`super::Upcoming`]),
//! and when at least `commit_siblings` are on their way the writer waits up to `commit_delay`
//! for them before its fsync, ending the wait as soon as none is left. A lone request never
//! waits.
//!
//! Failure is all-or-nothing per batch. If the write or the fsync fails, the file is cut back to
//! the last committed byte and the chain state is rolled back, so the log never holds a record
//! whose exchange was refused for want of it — nor a half line the next batch would bury.

mod gather;
mod postgres;
mod recovery;

pub use recovery::{prune_before, recover};

use super::record::{self, Attributes, ConsumerRef, Record};
use super::segment::{self, ChainPoint};
use super::subject::{SubjectKey, BSN_TYPE};
use crate::exchange::{Concluded, RecordKind};
use crate::metrics::Metrics;
use crate::policy::fields;
use anyhow::{Context as _, Result};
use std::borrow::Cow;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use time::OffsetDateTime;
use tokio::sync::oneshot;

/// The input of one record: a concluded exchange, shared with the metrics and access log
/// (which project from the same value after the record is written).
pub type AuditEvent = Arc<Concluded>;

/// Why a record could not be written; the exchange is refused with `audit-unavailable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("the audit queue is full")]
    QueueFull,
    #[error("the audit writer could not write or sync the record")]
    WriteFailed,
    #[error("the audit writer has stopped")]
    WriterGone,
}

/// How the writer runs (from the `audit` section of the configuration).
#[derive(Debug, Clone)]
pub struct WriterSettings {
    pub dir: PathBuf,
    pub instance: String,
    pub segment_max_bytes: u64,
    pub segment_max_age: Duration,
    pub retention: Option<Duration>,
    pub batch_max: usize,
    /// See [`super::AuditSettings::commit_delay`].
    pub commit_delay: Duration,
    /// See [`super::AuditSettings::commit_siblings`].
    pub commit_siblings: usize,
    /// Write to this PostgreSQL (`audit: {sink: postgres}`) instead of segment files in `dir`.
    pub postgres: Option<String>,
    /// The subject key's file, registered with the PostgreSQL sink (like `manifest.json`).
    pub subject_key_file: PathBuf,
    /// How long a PostgreSQL commit may take before the batch is refused.
    pub store_timeout: Duration,
}

/// The answers of one group commit: each waiting exchange with its seq or the failure.
pub(super) type Receipts = Vec<(
    oneshot::Sender<Result<u64, AuditError>>,
    Result<u64, AuditError>,
)>;

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
    /// The file's length: zeros (durably allocated) from `committed_len` up to here.
    zeroed_len: u64,
    /// A failed batch may have left bytes after `committed_len`.
    dirty: bool,
    /// When the file was last seen to still have a name in the directory.
    link_checked: Instant,
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
    /// Where receipts go (see [`Writer::deliver`]).
    dispatcher: Option<tokio::sync::mpsc::UnboundedSender<Receipts>>,
    /// The PostgreSQL sink, when records go there instead of to segment files.
    postgres: Option<postgres::PostgresSink>,
    /// The rows of the batch being formatted (PostgreSQL sink only).
    rows: Vec<postgres::Row>,
    /// A PostgreSQL commit failed: whether it happened is unknown until the chain's end is
    /// read again (see [`postgres::PostgresSink::reconcile`]).
    resync: bool,
    /// The (seq, hash) of the batch whose commit failed.
    attempted: Vec<(u64, String)>,
    /// Exchanges under way that will hand over a record (see [`super::Upcoming`]).
    upcoming: Arc<AtomicUsize>,
}

/// The most records one group commit takes.
pub const BATCH_MAX: usize = 1024;

/// How often an idle writer checks time-based rotation and retention.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);
/// `head.json` is padded to this many bytes so each update is one positional write.
const HEAD_BYTES: usize = 160;

/// Zeros are allocated ahead of the records in steps of this size.
const PREALLOCATE_BYTES: u64 = 1 << 20;

impl OpenSegment {
    /// Makes sure `len` more bytes fit in zero-filled, durably allocated space.
    ///
    /// Why: `fdatasync` after an append must also commit the new file size to the filesystem
    /// journal; after a write into space that already exists it only flushes the data. On the
    /// reference VM that is ~120 µs instead of ~190 µs per group commit. The zeros are written
    /// (not `fallocate`d: unwritten extents would need a journal commit on first write too).
    fn make_room(&mut self, len: u64) -> std::io::Result<()> {
        if self.committed_len + len <= self.zeroed_len {
            return Ok(());
        }
        let target = (self.committed_len + len).max(self.zeroed_len + PREALLOCATE_BYTES);
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        let mut at = self.zeroed_len;
        while at < target {
            let n = (target - at).min(ZEROS.len() as u64) as usize;
            // Anything that fails from here on leaves bytes to cut off.
            self.dirty = true;
            self.file.write_all_at(&ZEROS[..n], at)?;
            at += n as u64;
        }
        self.file.sync_all()?;
        self.zeroed_len = target;
        self.dirty = false;
        Ok(())
    }

    /// A segment removed from under the writer takes acknowledged records with it: writing on
    /// into the nameless file would lose every further record too. Checked at most once a
    /// second, because on the reference VM an `fstat` between group commits makes the next
    /// `fdatasync` ~70 µs slower; the records of that second show up as a gap in `verify`.
    fn check_still_linked(&mut self) -> Result<()> {
        if self.link_checked.elapsed() < Duration::from_secs(1) {
            return Ok(());
        }
        self.link_checked = Instant::now();
        let meta = self.file.metadata()?;
        anyhow::ensure!(meta.nlink() > 0, "the audit segment file was removed");
        Ok(())
    }

    /// Removes whatever a failed batch left after the committed records (durably).
    fn cut_back(&mut self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        self.file.set_len(self.committed_len)?;
        self.file.sync_all()?;
        self.zeroed_len = self.committed_len;
        self.dirty = false;
        Ok(())
    }

    /// Cuts the unused zeros off a segment that will not be written again.
    fn close(self) {
        if self.zeroed_len > self.committed_len || self.dirty {
            let _ = self
                .file
                .set_len(self.committed_len)
                .and_then(|()| self.file.sync_all());
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // A stopped writer (shutdown or panic) writes nothing more: not ready.
        self.writable.store(false, Ordering::Relaxed);
        if let Some(segment) = self.segment.take() {
            segment.close();
        }
        self.mark_postgres_stopped();
    }
}

/// What every writer is made of, before its medium (files or PostgreSQL) is open.
pub(crate) struct Opened {
    pub settings: WriterSettings,
    pub key: SubjectKey,
    pub metrics: Arc<Metrics>,
    pub writable: Arc<AtomicBool>,
    pub dispatcher: Option<tokio::sync::mpsc::UnboundedSender<Receipts>>,
    pub upcoming: Arc<AtomicUsize>,
}

impl Opened {
    /// The writer continuing the chain after `last`, with its head marker written.
    fn writer(
        self,
        last: ChainPoint,
        head: Option<File>,
        postgres: Option<postgres::PostgresSink>,
    ) -> Writer {
        let mut writer = Writer {
            settings: self.settings,
            key: self.key,
            metrics: self.metrics,
            writable: self.writable,
            segment: None,
            last,
            head,
            buf: Vec::with_capacity(64 * 1024),
            dispatcher: self.dispatcher,
            postgres,
            rows: Vec::new(),
            resync: false,
            attempted: Vec::new(),
            upcoming: self.upcoming,
        };
        writer.write_head();
        writer
    }
}

/// Opens (creating it if needed) `head.json` in `dir`, for positional rewrites.
pub(super) fn open_head(dir: &Path) -> Result<File> {
    segment::private_file()
        .truncate(false)
        .open(dir.join(segment::HEAD))
        .with_context(|| format!("cannot write in the audit directory {}", dir.display()))
}

impl Writer {
    /// Recovers the log in `settings.dir` (see [`recover`]) and prepares to continue its chain.
    pub fn open(
        settings: WriterSettings,
        key: SubjectKey,
        metrics: Arc<Metrics>,
        writable: Arc<AtomicBool>,
        dispatcher: Option<tokio::sync::mpsc::UnboundedSender<Receipts>>,
        upcoming: Arc<AtomicUsize>,
    ) -> Result<Self> {
        if settings.postgres.is_some() {
            return Self::open_postgres(Opened {
                settings,
                key,
                metrics,
                writable,
                dispatcher,
                upcoming,
            });
        }
        segment::create_private_dir(&settings.dir).with_context(|| {
            format!(
                "cannot create the audit directory {}",
                settings.dir.display()
            )
        })?;
        let last = recover(&settings.dir)?;
        let head = open_head(&settings.dir)?;
        let parts = Opened {
            settings,
            key,
            metrics,
            writable,
            dispatcher,
            upcoming,
        };
        Ok(parts.writer(last, Some(head), None))
    }

    pub fn run(mut self, queue: Receiver<Pending>) {
        let mut batch: Vec<Pending> = Vec::with_capacity(self.settings.batch_max);
        let mut last_batch = 0usize;
        loop {
            // A failing PostgreSQL sink is probed every few seconds, so readiness returns
            // when the store does, without waiting for an exchange to try.
            let wait = if self.postgres.is_some() && !self.writable.load(Ordering::Relaxed) {
                postgres::PROBE_INTERVAL
            } else {
                MAINTENANCE_INTERVAL
            };
            match queue.recv_timeout(wait) {
                Ok(first) => batch.push(first),
                Err(RecvTimeoutError::Timeout) => {
                    if self.postgres.is_some() {
                        self.probe_postgres();
                    }
                    self.maintain();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.take_queued(&queue, &mut batch);
            // Under concurrent load (the previous batch had company), give the core away once
            // before the fsync: where the writer shares a core with the gateway (a one-CPU
            // container, or issue 8's pinned layout), the gateway then hands over the records
            // it is producing, and one fsync — whose own CPU is what limits throughput there —
            // serves them all. On a core of its own `sched_yield` returns at once.
            if last_batch > 1 {
                std::thread::yield_now();
                self.take_queued(&queue, &mut batch);
            }
            self.wait_for_siblings(&queue, &mut batch);
            last_batch = batch.len();
            self.metrics.audit_batch_records.observe(batch.len() as f64);
            self.metrics.audit_queue_depth.sub(batch.len() as i64);
            let started = Instant::now();
            let outcome = self.commit(&batch);
            self.metrics
                .audit_write_duration
                .observe(started.elapsed().as_secs_f64());
            let receipts: Receipts = match outcome {
                Ok(first_seq) => {
                    self.writable.store(true, Ordering::Relaxed);
                    batch
                        .drain(..)
                        .enumerate()
                        .map(|(i, pending)| (pending.ack, Ok(first_seq + i as u64)))
                        .collect()
                }
                Err(e) => {
                    if self.writable.swap(false, Ordering::Relaxed) {
                        tracing::error!(error = %format!("{e:#}"), "the audit log cannot be written; exchanges are refused until it can");
                    }
                    batch
                        .drain(..)
                        .map(|pending| (pending.ack, Err(AuditError::WriteFailed)))
                        .collect()
                }
            };
            self.deliver(receipts);
        }
    }

    /// Answers the exchanges of one batch. Through the dispatcher task (one cross-thread wake
    /// for the whole batch; the task then wakes each exchange on its own runtime), or directly
    /// when there is none.
    fn deliver(&self, receipts: Receipts) {
        let receipts = match &self.dispatcher {
            Some(dispatcher) => match dispatcher.send(receipts) {
                Ok(()) => return,
                // The runtime is gone (shutdown): answer directly.
                Err(tokio::sync::mpsc::error::SendError(receipts)) => receipts,
            },
            None => receipts,
        };
        for (ack, result) in receipts {
            let _ = ack.send(result);
        }
    }

    /// Writes and syncs one batch; returns the seq of its first record.
    fn commit(&mut self, batch: &[Pending]) -> Result<u64> {
        if self.postgres.is_some() {
            return self.commit_to_postgres(batch);
        }
        if let Some(segment) = self.segment.as_mut() {
            // A failed batch whose bytes could not be cut off blocks the log until they are:
            // appending after them would bury them inside the chain.
            segment
                .cut_back()
                .context("cannot remove a failed audit batch")?;
        }
        self.rotate_if_due()?;
        let (first_seq, prev) = self.format_batch(batch);
        let segment = self
            .segment
            .as_mut()
            .expect("rotate_if_due opened a segment");
        // Positional writes: the file offset never decides where a record lands.
        let written = segment
            .make_room(self.buf.len() as u64)
            .and_then(|()| segment.file.write_all_at(&self.buf, segment.committed_len))
            .and_then(|()| segment.file.sync_data())
            .context("audit write or fsync failed")
            .and_then(|()| segment.check_still_linked());
        match written {
            Ok(()) => {
                segment.committed_len += self.buf.len() as u64;
                Ok(self.committed(first_seq, batch.len(), prev))
            }
            Err(e) => {
                // `self.last` still names the last committed record. A segment that is gone
                // is left behind (the next batch starts a new one, and verify will show the
                // loss); otherwise the failed batch is cut off before anything else is written.
                if segment.file.metadata().map_or(true, |m| m.nlink() == 0) {
                    self.segment = None;
                } else {
                    segment.dirty = true;
                    let _ = segment.cut_back();
                }
                Err(e)
            }
        }
    }

    /// Formats `batch` into the batch buffer (and, for the PostgreSQL sink, its rows), chained
    /// after the last committed record; returns the first seq and the last hash.
    fn format_batch(&mut self, batch: &[Pending]) -> (u64, String) {
        let first_seq = self.last.seq + 1;
        self.buf.clear();
        self.rows.clear();
        let mut prev = self.last.hash.clone();
        for (i, pending) in batch.iter().enumerate() {
            prev = self.format(&pending.event, first_seq + i as u64, &prev);
        }
        (first_seq, prev)
    }

    /// A batch is durable (in either sink): the chain now ends with its last record.
    fn committed(&mut self, first_seq: u64, records: usize, last_hash: String) -> u64 {
        self.last = ChainPoint {
            seq: first_seq + records as u64 - 1,
            hash: last_hash,
        };
        self.write_head();
        first_seq
    }

    /// Formats one record into the batch buffer; returns its hash.
    fn format(&mut self, event: &AuditEvent, seq: u64, prev_hash: &str) -> String {
        let line_start = self.buf.len();
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
        let requested_id = event
            .requested_subject
            .as_ref()
            .map(|b| self.key.subject_id(b.as_str()));
        // Fields, not elements or the answer's own keys (SPEC §5; see `fields`).
        let schema = event.response_schema();
        let released = fields::stated(event.fields_released.iter(), schema);
        let withheld = fields::stated(event.fields_withheld.iter(), schema);
        let provider = event.provider_fields.as_ref().map(|p| {
            (
                fields::stated(p.released.iter().map(String::as_str), schema),
                fields::stated(p.withheld.iter().map(String::as_str), schema),
            )
        });
        let categories: Vec<&str> = match (&event.grant, released.is_empty()) {
            (Some(grant), false) => grant.categories.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        let status = record::status(
            event.kind == RecordKind::Intent,
            event.decision.as_str(),
            event.reason.map(|r| r.as_str()),
        );
        let exception = event.reason.filter(|_| status == "Error");
        let record = Record {
            attributes: Attributes {
                exception_message: exception.map(|r| r.title()),
                exception_type: exception.map(|r| r.as_str()),
                actor: event.actor.as_deref(),
                approvals: event
                    .approvals
                    .iter()
                    .map(|a| record::ApprovalRef {
                        by: &a.by,
                        role: a.role.as_deref(),
                    })
                    .collect(),
                assertion_jti: event.assertion_jti.as_deref(),
                fsc: event.fsc.as_ref().map(record::FscRef::of),
                fsc_error_code: event.fsc_error_code.as_deref(),
                provider_fields_released: provider.as_ref().map(|(r, _)| strs(r)),
                provider_fields_withheld: provider.as_ref().map(|(_, w)| strs(w)),
                requester: event.requester.as_deref(),
                role: event.role,
                case_id: event.case_id.as_deref(),
                case_change: event.register_change.as_deref(),
                consumer: event.consumer.as_ref().map(|c| ConsumerRef {
                    id: &c.id,
                    name: &c.name,
                    oin: c.oin.as_ref().map(|o| o.as_str()),
                }),
                data_categories: categories,
                decision: event.decision.as_str(),
                fields_released: released.iter().map(|p| p.as_ref()).collect(),
                fields_withheld: withheld.iter().map(|p| p.as_ref()).collect(),
                grant: event.grant.as_ref().map(|g| g.id.as_str()),
                instance: &self.settings.instance,
                legal_basis: event
                    .purpose
                    .as_ref()
                    .and_then(|p| p.legal_basis_text.as_deref()),
                partner: event.partner.as_ref().map(|p| p.id.as_str()).or(event
                    .register_operation
                    .map(|_| crate::cases::api::PARTNER_ID)),
                partner_oin: event
                    .partner
                    .as_ref()
                    .and_then(|p| p.oin.as_ref())
                    .map(|o| o.as_str()),
                policy_version: event.policy.as_ref().map(|p| p.version.as_str()),
                purpose: event.purpose.as_ref().map(|p| p.id.as_str()),
                reason: event.reason.map(|r| r.as_str()),
                requested_subject_id: requested_id.as_deref(),
                record: (event.kind == RecordKind::Intent).then_some("intent"),
                token_issuer: event.token_issuer.as_deref(),
                transaction_id: &transaction_id,
                upstream_status: event.upstream_status.map(|s| s.as_u16()),
                data_subject_id: subject_id.as_deref(),
                data_subject_id_type: subject_id.as_ref().map(|_| BSN_TYPE),
                processor: event.consumer.as_ref().and_then(|c| c.processor.as_deref()),
                processing_activity_id: event
                    .purpose
                    .as_ref()
                    .and_then(|p| p.processing_activity.as_deref()),
            },
            end_time: &end,
            name: event
                .operation
                .as_ref()
                .map(|o| o.key.as_str())
                .or(event.register_operation)
                .unwrap_or("unknown"),
            parent_span_id: parent.as_deref(),
            prev_hash,
            seq,
            span_id: &span_id,
            start_time: &start,
            status,
            trace_id: &trace_id,
        };
        let hash = record::write_line(&record, &mut self.buf);
        if self.postgres.is_some() {
            self.rows.push(postgres::Row {
                seq,
                prev_hash: prev_hash.to_string(),
                hash: hash.clone(),
                subject_id: subject_id.clone(),
                requested_subject_id: requested_id.clone(),
                start_time: start.clone(),
                // write_line ends the record with a newline.
                line: line_start..self.buf.len() - 1,
            });
        }
        hash
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
        let file = segment::private_file()
            .truncate(true)
            .open(&path)
            .with_context(|| format!("cannot create audit segment {}", path.display()))?;
        segment::sync_dir(&self.settings.dir)?;
        let rotated = self.segment.is_some();
        // (The old segment is closed below, after the new one exists.)
        if let Some(old) = self.segment.take() {
            old.close();
        }
        self.segment = Some(OpenSegment {
            file,
            path,
            committed_len: 0,
            zeroed_len: 0,
            dirty: false,
            link_checked: Instant::now(),
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
                if let Some(old) = self.segment.take() {
                    old.close();
                }
            }
        }
        self.prune();
    }

    /// Deletes whole segments whose newest record is past the retention period, oldest first,
    /// after moving `anchor.json` to the last record deleted.
    fn prune(&mut self) {
        let Some(retention) = self.settings.retention.filter(|_| self.postgres.is_none()) else {
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

fn strs<'a>(list: &'a [Cow<'_, str>]) -> Vec<&'a str> {
    list.iter().map(|s| s.as_ref()).collect()
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
