//! Phase *record*: the lawful-basis audit log (SPEC §5).
//!
//! Every exchange that reaches the pipeline — allowed, denied or failed — leaves exactly one
//! record, and its response is released only after that record is on disk. The record is a
//! projection of the [`Concluded`](crate::exchange::Concluded) exchange: who asked (consumer, actor), about
//! whom (the data subject as a keyed HMAC), for what (purpose, legal basis, processing
//! activity, case), under which policy version and grant, what was decided and which fields
//! were released or withheld. It never holds a payload value.
//!
//! ```text
//!  exchange ──event──► bounded queue ──► writer thread ──► segment file (write + fdatasync)
//!     ▲                                      │  seq, prev_hash, hash (chain)
//!     └────────── receipt (seq) or error ◄───┘  one fsync per batch (group commit)
//! ```
//!
//! Modules: [`record`] (shape, canonical form, hash; the fields it states as released and
//! withheld are [`crate::policy::fields`]), [`writer`] (group commit, rotation,
//! recovery, retention), [`segment`] (files on disk), [`subject`] (the HMAC key), [`verify`]
//! and [`query`] (the `doelpoort audit` commands), [`central`] (the same commands on the
//! central log in PostgreSQL, and `audit import`).

pub mod central;
pub mod join;
pub mod query;
pub mod record;
pub mod segment;
pub mod subject;
pub mod verify;
pub mod writer;

#[cfg(test)]
mod tests;

pub use crate::config::AuditSettings;
use crate::metrics::Metrics;
use anyhow::{Context as _, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use subject::{Manifest, SubjectKey};
pub use writer::{AuditError, AuditEvent, WriterSettings};

/// Readiness of the audit log, shared with the admin listener.
#[derive(Clone)]
pub struct AuditHealth {
    writable: Arc<AtomicBool>,
    /// The directory of a file log (probed); `None` for the PostgreSQL sink.
    dir: Option<PathBuf>,
}

impl AuditHealth {
    /// `Err(reason)` when exchanges would be (or are being) refused for want of a record: the
    /// last group commit failed, or a file can no longer be created in the directory (checked
    /// with a probe file, so an idle gateway notices too).
    pub fn check(&self) -> Result<(), String> {
        if !self.writable.load(Ordering::Relaxed) {
            return Err("the last audit write failed".into());
        }
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let probe = dir.join(".readyz-probe");
        std::fs::write(&probe, b"ok")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| format!("the audit directory is not writable ({})", e.kind()))
    }
}

/// An exchange on its way to the writer, from its start until it hands over its record (drop
/// it then, or when the exchange ends without one). The writer's adaptive commit delay
/// (`commit_delay`, `commit_siblings`) waits for these, never for an empty gateway.
#[must_use = "the exchange counts as upcoming only while the guard lives"]
pub struct Upcoming(Arc<AtomicUsize>);

impl Drop for Upcoming {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The handle exchanges record through; cheap to share.
pub struct AuditLog {
    /// `None` only while dropping.
    queue: Option<SyncSender<writer::Pending>>,
    /// Exchanges under way that will hand the writer a record (see [`Upcoming`]).
    upcoming: Arc<AtomicUsize>,
    writer: Option<std::thread::JoinHandle<()>>,
    writable: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    dir: PathBuf,
    /// Records go to the store's PostgreSQL, not to files in `dir`.
    to_postgres: bool,
}

impl AuditLog {
    /// Opens (and if needed recovers) a file log and starts its writer thread.
    pub fn open(settings: &AuditSettings, instance: &str, metrics: Arc<Metrics>) -> Result<Self> {
        Self::open_with(settings, instance, metrics, None)
    }

    /// Opens the log its settings name: segment files, or (`sink: postgres`) the store's
    /// PostgreSQL, whose connection `store` gives.
    pub fn open_with(
        settings: &AuditSettings,
        instance: &str,
        metrics: Arc<Metrics>,
        store: Option<&crate::store::StoreSettings>,
    ) -> Result<Self> {
        let postgres = match (settings.sink, store.map(|s| &s.location)) {
            (crate::config::AuditSink::Files, _) => None,
            (
                crate::config::AuditSink::Postgres,
                Some(crate::store::StoreLocation::Postgres(url)),
            ) => Some(url.clone()),
            (crate::config::AuditSink::Postgres, _) => {
                anyhow::bail!("the audit sink postgres needs store: postgres://…")
            }
        };
        let existing = match postgres {
            Some(_) => None,
            None => Manifest::read(&settings.dir).ok(),
        };
        if let Some(m) = &existing {
            anyhow::ensure!(
                settings.subject_key.exists(),
                "the audit subject key {} is missing, but this audit log was written with key id {}: \
                 restore the key file (a new key would hide every earlier record from a citizen's query)",
                settings.subject_key.display(),
                m.subject_key_id
            );
        }
        let key = SubjectKey::load_or_create(&settings.subject_key)?;
        if let Some(existing) = existing {
            // A different key (e.g. a missing key file silently replaced by a new one) would
            // hide every earlier record from a citizen's query.
            anyhow::ensure!(
                existing.subject_key_id == key.id(),
                "{} is not the subject key this audit log was written with (key id {} ≠ {} in {}); \
                 restore the original key, or move manifest.json aside to start using a new one deliberately",
                settings.subject_key.display(),
                key.id(),
                existing.subject_key_id,
                settings.dir.join(subject::MANIFEST).display()
            );
        }
        let writable = Arc::new(AtomicBool::new(true));
        let upcoming = Arc::new(AtomicUsize::new(0));
        // Receipts of a group commit travel to the runtime as one message; a task there
        // answers each exchange (waking tasks from a foreign thread costs a syscall each).
        let dispatcher = tokio::runtime::Handle::try_current().ok().map(|runtime| {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<writer::Receipts>();
            runtime.spawn(async move {
                while let Some(receipts) = rx.recv().await {
                    for (ack, result) in receipts {
                        let _ = ack.send(result);
                    }
                }
            });
            tx
        });
        let writer = writer::Writer::open(
            WriterSettings {
                dir: settings.dir.clone(),
                instance: instance.to_string(),
                segment_max_bytes: settings.segment_max_bytes,
                segment_max_age: settings.segment_max_age,
                retention: settings.retention,
                batch_max: writer::BATCH_MAX,
                commit_delay: settings.commit_delay,
                commit_siblings: settings.commit_siblings,
                postgres: postgres.clone(),
                subject_key_file: settings.subject_key.clone(),
                // Exchanges wait this long at most for a commit to an unreachable store
                // before they are refused.
                store_timeout: store.map_or(std::time::Duration::from_secs(2), |s| s.timeout),
            },
            key.clone(),
            metrics.clone(),
            writable.clone(),
            dispatcher,
            upcoming.clone(),
        )?;
        if postgres.is_none() {
            Manifest {
                format: subject::FORMAT.into(),
                instance: instance.to_string(),
                subject_key_file: std::path::absolute(&settings.subject_key)?,
                subject_key_id: key.id(),
            }
            .store(&settings.dir)?;
        }
        let (queue, receiver) = std::sync::mpsc::sync_channel(settings.queue_capacity.max(1));
        let writer = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(receiver))
            .context("cannot start the audit writer thread")?;
        Ok(Self {
            queue: Some(queue),
            upcoming,
            writer: Some(writer),
            writable,
            metrics,
            dir: settings.dir.clone(),
            to_postgres: postgres.is_some(),
        })
    }

    /// Announces an exchange that will hand over a record: the writer's commit delay waits
    /// only while such exchanges exist (see [`Upcoming`]).
    pub fn upcoming(&self) -> Upcoming {
        self.upcoming.fetch_add(1, Ordering::Relaxed);
        Upcoming(self.upcoming.clone())
    }

    /// Queues the record and waits until it is durably written; returns its `seq`.
    pub async fn record(&self, event: AuditEvent) -> Result<u64, AuditError> {
        let (ack, receipt) = tokio::sync::oneshot::channel();
        let Some(queue) = &self.queue else {
            return Err(AuditError::WriterGone);
        };
        self.metrics.audit_queue_depth.inc();
        if let Err(e) = queue.try_send(writer::Pending { event, ack }) {
            self.metrics.audit_queue_depth.dec();
            return Err(match e {
                TrySendError::Full(_) => AuditError::QueueFull,
                TrySendError::Disconnected(_) => AuditError::WriterGone,
            });
        }
        receipt.await.unwrap_or(Err(AuditError::WriterGone))
    }

    /// Whether the last group commit succeeded.
    pub fn is_writable(&self) -> bool {
        self.writable.load(Ordering::Relaxed)
    }

    /// What `/readyz` asks about this log.
    pub fn health(&self) -> AuditHealth {
        AuditHealth {
            writable: self.writable.clone(),
            dir: (!self.to_postgres).then(|| self.dir.clone()),
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

impl Drop for AuditLog {
    /// Lets the writer finish what is queued and close its segment (dropping the unused
    /// preallocated space) before the log is considered closed.
    fn drop(&mut self) {
        self.queue = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}
