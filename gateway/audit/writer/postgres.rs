//! The PostgreSQL sink of the audit writer (`audit: {sink: postgres}`, SPEC §9).
//!
//! Same records, same chain, another medium: each group commit is one `INSERT` of all its
//! records (one transaction, `synchronous_commit = on`), and an exchange is answered only after
//! that commit returns. Every instance keeps its own chain, keyed by (instance, seq), so
//! replicas write side by side and a second process claiming the same instance id cannot fork
//! a chain: its insert fails and its exchanges are refused.
//!
//! The writer is a plain thread (see [`super::Writer`]); this sink owns a small current-thread
//! runtime and its own connections, so audit commits never wait behind the gateway's other
//! uses of the store.

use super::{Pending, Writer};
use crate::audit::segment::{self, ChainPoint, Head};
use crate::audit::{record, subject};
use anyhow::{Context as _, Result};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::Connection as _;
use std::str::FromStr as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How often the instance's writer lock is confirmed before a commit.
const LOCK_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// The connection holding the advisory lock, and when the lock was last confirmed.
struct WriterLock {
    connection: Option<PgConnection>,
    confirmed: std::time::Instant,
}

/// What a cleanly stopped writer leaves in its audit `dir` (`stopped.json`): the last record
/// it committed, and the batch whose commit it could not confirm, if any. At the next start
/// the store's chain must end exactly there (see [`PostgresSink::reconcile`]): a row added
/// while the gateway was down is refused.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Stopped {
    pub last: ChainPoint,
    pub attempted: Vec<(u64, String)>,
}

pub(super) const STOPPED: &str = "stopped.json";

/// How often a failing sink is probed for the store's return.
pub(super) const PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// What one record adds to its row besides the line itself.
pub(super) struct Row {
    pub seq: u64,
    pub prev_hash: String,
    pub hash: String,
    pub subject_id: Option<String>,
    pub requested_subject_id: Option<String>,
    pub start_time: String,
    /// The record's bytes in the batch buffer (without the newline).
    pub line: std::ops::Range<usize>,
}

/// What opening the sink needs: where, as which instance with which subject key, and what
/// this replica's audit `dir` says it committed (`head.json`, `stopped.json`).
#[derive(Clone, Copy)]
pub(super) struct Opening<'a> {
    pub url: &'a str,
    pub instance: &'a str,
    pub key: &'a subject::SubjectKey,
    pub key_file: &'a std::path::Path,
    pub timeout: Duration,
    pub committed: Option<&'a ChainPoint>,
    pub stopped: Option<&'a Stopped>,
}

pub(super) struct PostgresSink {
    /// Always `Some` but while dropping (see the `Drop` impl).
    runtime: Option<tokio::runtime::Runtime>,
    pool: PgPool,
    /// Holds the instance's advisory lock: one writer per chain. Checked (and taken again
    /// after the server restarted) at most every [`LOCK_CHECK_INTERVAL`] before a commit.
    lock: std::sync::Mutex<WriterLock>,
    options: PgConnectOptions,
    instance: String,
    timeout: Duration,
}

impl PostgresSink {
    /// Connects, checks (or registers) the subject key this instance writes with, and reads
    /// where its chain ends. Runs on a thread of its own: the gateway opens its audit log from
    /// inside its runtime, where blocking on another runtime is not allowed.
    pub fn open(opening: &Opening<'_>) -> Result<(Self, ChainPoint)> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| Self::open_here(opening))
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("opening the audit store panicked")))
        })
    }

    fn open_here(opening: &Opening<'_>) -> Result<(Self, ChainPoint)> {
        let Opening {
            url,
            instance,
            key,
            key_file,
            timeout,
            committed,
            stopped,
        } = *opening;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the audit sink's runtime")?;
        // The server cancels a commit that takes longer than the timeout, so a refused
        // exchange does not get a record committed after its refusal (a lock wait, a stall).
        let statement_timeout = format!("{}", timeout.as_millis().max(1));
        let options = PgConnectOptions::from_str(url)
            .context("not a usable PostgreSQL URL")?
            .application_name("doelpoort-audit")
            // Durable before the exchange is answered, whatever the server's default.
            .options([
                ("synchronous_commit", "on"),
                ("statement_timeout", statement_timeout.as_str()),
            ]);
        let pool = runtime
            .block_on(
                PgPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(timeout)
                    .connect_with(options.clone()),
            )
            .context("cannot connect to the audit store")?;
        let sink = Self {
            runtime: Some(runtime),
            pool,
            lock: std::sync::Mutex::new(WriterLock {
                connection: None,
                confirmed: std::time::Instant::now(),
            }),
            options,
            instance: instance.to_string(),
            timeout,
        };
        // One writer per chain: a second process claiming this instance id is refused here
        // instead of racing the first for every seq.
        sink.take_lock()?;
        sink.register_key(key, key_file)?;
        let mut last = sink.last()?;
        if let Some(stopped) = stopped {
            // Stopped cleanly: the chain must end where this writer left it.
            last = sink
                .reconcile(&stopped.last, &stopped.attempted)
                .context("the audit store's chain changed while this replica was stopped")?;
        } else if let Some(committed) = committed {
            // What this replica committed (its head.json) must still be there: the store's
            // chain may have grown past it (a commit whose answer was lost), never less.
            let there = if committed.seq == 0 {
                Some(committed.hash.clone())
            } else {
                sink.hash_at(committed.seq)?
            };
            anyhow::ensure!(
                !committed.leads(&last) && there.as_deref() == Some(committed.hash.as_str()),
                "this replica committed instance '{instance}' up to seq {} ({}), but the audit store's chain ends at seq {} \
                 or holds another record there: records were removed or replaced; run `doelpoort audit verify --store`",
                committed.seq,
                committed.hash,
                last.seq
            );
            // Not stopped cleanly: the last batch may have committed after head.json was
            // written. More than one batch past it cannot be this writer's.
            let beyond = last.seq - committed.seq;
            anyhow::ensure!(
                beyond <= super::BATCH_MAX as u64,
                "the audit store holds {beyond} records of instance '{instance}' after the last one this replica committed (seq {}): \
                 they were not written by it; run `doelpoort audit verify --store`",
                committed.seq
            );
            if beyond > 0 {
                tracing::warn!(
                    instance,
                    from = committed.seq + 1,
                    to = last.seq,
                    "continuing after audit records committed just before the gateway stopped (its head marker lagged)"
                );
            }
        }
        Ok((sink, last))
    }

    /// Takes (or confirms) the instance's advisory lock on the lock connection, connecting
    /// again if the server restarted since.
    fn take_lock(&self) -> Result<()> {
        let mut lock = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let key = format!("doelpoort-audit/{}", self.instance);
        let options = self.options.clone();
        let connection = lock.connection.take();
        let (connection, locked) = self.block_on(async {
            async fn try_lock(connection: &mut PgConnection, key: &str) -> sqlx::Result<bool> {
                sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                    .bind(key)
                    .fetch_one(connection)
                    .await
            }
            let mut connection = match connection {
                Some(c) => c,
                None => PgConnection::connect_with(&options).await?,
            };
            match try_lock(&mut connection, &key).await {
                Ok(locked) => anyhow::Ok((connection, locked)),
                // The connection died (a server restart): the lock went with it.
                Err(_) => {
                    let mut fresh = PgConnection::connect_with(&options).await?;
                    let locked = try_lock(&mut fresh, &key).await?;
                    Ok((fresh, locked))
                }
            }
        })?;
        lock.connection = Some(connection);
        anyhow::ensure!(
            locked,
            "another gateway process writes the audit chain of instance '{}' in this store: \
             give every replica its own `instance`",
            self.instance
        );
        lock.confirmed = std::time::Instant::now();
        Ok(())
    }

    /// Before a commit: the lock is still this writer's (checked every few seconds).
    fn confirm_lock(&self) -> Result<()> {
        let due = {
            let lock = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            lock.connection.is_none() || lock.confirmed.elapsed() >= LOCK_CHECK_INTERVAL
        };
        if due {
            self.take_lock()?;
        }
        Ok(())
    }

    fn register_key(&self, key: &subject::SubjectKey, key_file: &std::path::Path) -> Result<()> {
        let key_file = std::path::absolute(key_file)?
            .to_string_lossy()
            .into_owned();
        // INSERT and SELECT only: the gateway's role needs no UPDATE anywhere.
        let registered: String = self
            .block_on(async {
                sqlx::query(
                    "INSERT INTO audit_instances (instance, subject_key_id, subject_key_file) \
                     VALUES ($1, $2, $3) ON CONFLICT (instance) DO NOTHING",
                )
                .bind(&self.instance)
                .bind(key.id())
                .bind(&key_file)
                .execute(&self.pool)
                .await?;
                sqlx::query_scalar("SELECT subject_key_id FROM audit_instances WHERE instance = $1")
                    .bind(&self.instance)
                    .fetch_one(&self.pool)
                    .await
            })
            .context("cannot register this instance in the audit store")?;
        anyhow::ensure!(
            registered == key.id(),
            "instance '{}' wrote its audit records with subject key id {registered}, not {} ({key_file}): \
             restore the original key (a new key would hide every earlier record from a citizen's query)",
            self.instance,
            key.id(),
        );
        // One key for all replicas: a citizen's query with one key must find every record.
        let others: Vec<(String, String)> = self
            .block_on(
                sqlx::query_as(
                    "SELECT instance, subject_key_id FROM audit_instances \
                     WHERE instance <> $1 AND subject_key_id <> $2 ORDER BY 1",
                )
                .bind(&self.instance)
                .bind(key.id())
                .fetch_all(&self.pool),
            )
            .context("cannot read the instances of the audit store")?;
        if let Some((other, other_key)) = others.first() {
            anyhow::bail!(
                "instance '{other}' writes to this audit store with subject key id {other_key}, this one has {}: \
                 every replica needs the same audit.subject_key, or a citizen's query misses records",
                key.id()
            );
        }
        Ok(())
    }

    /// The hash of this instance's record `seq`, if the store holds it.
    pub fn hash_at(&self, seq: u64) -> Result<Option<String>> {
        let query =
            sqlx::query_scalar("SELECT hash FROM audit_records WHERE instance = $1 AND seq = $2")
                .bind(&self.instance)
                .bind(i64::try_from(seq).context("seq out of range")?)
                .fetch_optional(&self.pool);
        self.within(self.timeout, query)
            .context("cannot read this instance's audit chain")
    }

    /// After a failed commit: where the chain really ends. The batch either committed whole
    /// (the answer was lost) or not at all; anything else in the store after `last` was not
    /// written by this writer, and is refused rather than continued from.
    pub fn reconcile(&self, last: &ChainPoint, attempted: &[(u64, String)]) -> Result<ChainPoint> {
        let from = last.seq.max(1);
        let query = sqlx::query_as(
            "SELECT seq, hash FROM audit_records WHERE instance = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
        )
        .bind(&self.instance)
        .bind(i64::try_from(from).context("seq out of range")?)
        .bind(i64::try_from(attempted.len() + 2).unwrap_or(i64::MAX))
        .fetch_all(&self.pool);
        let rows: Vec<(i64, String)> = self
            .within(self.timeout, query)
            .context("cannot read the end of this instance's audit chain")?;
        let mut rows = rows
            .into_iter()
            .map(|(seq, hash)| (u64::try_from(seq).unwrap_or(u64::MAX), hash));
        if last.seq > 0 {
            anyhow::ensure!(
                rows.next().as_ref() == Some(&(last.seq, last.hash.clone())),
                "record seq {} of instance '{}' is no longer the one this gateway committed: the audit store was changed",
                last.seq,
                self.instance
            );
        }
        let after: Vec<(u64, String)> = rows.collect();
        if after.is_empty() {
            return Ok(last.clone());
        }
        anyhow::ensure!(
            after == attempted,
            "instance '{}' has records after seq {} that this gateway did not write: the audit store was changed; \
             run `doelpoort audit verify --store`",
            self.instance,
            last.seq
        );
        let (seq, hash) = after.last().cloned().expect("not empty");
        Ok(ChainPoint { seq, hash })
    }

    /// The last committed record of this instance's chain (the genesis before the first).
    pub fn last(&self) -> Result<ChainPoint> {
        let query = sqlx::query_as(
            "SELECT seq, hash FROM audit_records WHERE instance = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(&self.instance)
        .fetch_optional(&self.pool);
        let row: Option<(i64, String)> = self
            .within(self.timeout, query)
            .context("cannot read the end of this instance's audit chain")?;
        Ok(match row {
            Some((seq, hash)) => ChainPoint {
                seq: u64::try_from(seq).context("negative seq in the audit store")?,
                hash,
            },
            None => ChainPoint {
                seq: 0,
                hash: record::GENESIS_HASH.into(),
            },
        })
    }

    /// Commits one batch: all rows or none. An error may hide a commit that happened (the
    /// connection broke after the server committed); the writer then reads the chain's end
    /// again before its next batch ([`Self::reconcile`]), so the chain continues either way.
    pub fn commit(&self, rows: &[Row], buf: &[u8]) -> Result<()> {
        self.confirm_lock()?;
        let mut seqs = Vec::with_capacity(rows.len());
        let mut prev = Vec::with_capacity(rows.len());
        let mut hashes = Vec::with_capacity(rows.len());
        let mut subjects = Vec::with_capacity(rows.len());
        let mut requested = Vec::with_capacity(rows.len());
        let mut starts = Vec::with_capacity(rows.len());
        let mut lines = Vec::with_capacity(rows.len());
        for row in rows {
            seqs.push(i64::try_from(row.seq).context("seq out of range")?);
            prev.push(row.prev_hash.as_str());
            hashes.push(row.hash.as_str());
            subjects.push(row.subject_id.as_deref());
            requested.push(row.requested_subject_id.as_deref());
            starts.push(row.start_time.as_str());
            lines.push(std::str::from_utf8(&buf[row.line.clone()]).context("record is not UTF-8")?);
        }
        let insert = sqlx::query(
            "INSERT INTO audit_records \
               (instance, seq, prev_hash, hash, subject_id, requested_subject_id, start_time, record) \
             SELECT $1, * FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])",
        )
        .bind(&self.instance)
        .bind(&seqs)
        .bind(&prev)
        .bind(&hashes)
        .bind(&subjects)
        .bind(&requested)
        .bind(&starts)
        .bind(&lines)
        .execute(&self.pool);
        // The server's statement_timeout ends a slow commit; this bound only covers a server
        // that does not answer at all.
        self.within(self.timeout + Duration::from_secs(2), insert)
            .context("the audit store refused the batch")?;
        Ok(())
    }
}

impl PostgresSink {
    /// Runs one round trip on the sink's runtime, bounded by `bound`.
    fn within<T>(
        &self,
        bound: Duration,
        work: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T> {
        // The timer is made inside the runtime (it needs its clock).
        self.block_on(async { tokio::time::timeout(bound, work).await })
            .map_err(|_| anyhow::anyhow!("the audit store did not answer within {bound:?}"))?
            .map_err(anyhow::Error::from)
    }

    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the sink")
            .block_on(future)
    }
}

impl Drop for PostgresSink {
    /// Without waiting: the sink may be dropped inside the gateway's runtime (a failed start),
    /// where a blocking shutdown is not allowed.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Writer {
    /// A writer whose records go to PostgreSQL. With an audit `dir` configured, the replica
    /// also keeps its `head.json` there: the last record it committed. A store whose chain
    /// for this instance ends before it (records removed), or holds another record at that
    /// seq, is refused at start, as a file log would be.
    pub(super) fn open_postgres(opened: super::Opened) -> Result<Self> {
        let settings = &opened.settings;
        let key = &opened.key;
        let url = settings.postgres.clone().unwrap_or_default();
        let local_dir = !settings.dir.as_os_str().is_empty();
        if local_dir {
            segment::create_private_dir(&settings.dir).with_context(|| {
                format!(
                    "cannot create the audit directory {}",
                    settings.dir.display()
                )
            })?;
        }
        let committed = match local_dir.then(|| segment::read_head(&settings.dir)) {
            Some(Head::At(point)) => Some(point),
            _ => None,
        };
        let stopped_path = settings.dir.join(STOPPED);
        let stopped: Option<Stopped> = if local_dir {
            segment::read_json(&stopped_path)?
        } else {
            None
        };
        let (sink, last) = PostgresSink::open(&Opening {
            url: &url,
            instance: &settings.instance,
            key,
            key_file: &settings.subject_key_file,
            timeout: settings.store_timeout,
            committed: committed.as_ref(),
            stopped: stopped.as_ref(),
        })?;
        if stopped.is_some() {
            // Running again: until the next clean stop, a crash is what a restart must assume.
            std::fs::remove_file(&stopped_path)
                .and_then(|()| segment::sync_dir(&settings.dir).map_err(std::io::Error::other))
                .with_context(|| format!("cannot remove {}", stopped_path.display()))?;
        }
        let head = local_dir
            .then(|| super::open_head(&settings.dir))
            .transpose()?;
        Ok(opened.writer(last, head, Some(sink)))
    }

    /// One batch to the PostgreSQL sink: formatted exactly as for a file, then one insert.
    pub(super) fn commit_to_postgres(&mut self, batch: &[Pending]) -> Result<u64> {
        self.reconcile_if_needed()?;
        let (first_seq, prev) = self.format_batch(batch);
        let sink = self.postgres.as_ref().expect("a PostgreSQL writer");
        match sink.commit(&self.rows, &self.buf) {
            Ok(()) => Ok(self.committed(first_seq, batch.len(), prev)),
            Err(e) => {
                self.resync = true;
                self.attempted = self.rows.iter().map(|r| (r.seq, r.hash.clone())).collect();
                Err(e)
            }
        }
    }

    /// After a failed commit, find out whether it happened (see [`PostgresSink::reconcile`]).
    fn reconcile_if_needed(&mut self) -> Result<()> {
        if self.resync {
            let sink = self.postgres.as_ref().expect("a PostgreSQL writer");
            self.last = sink.reconcile(&self.last, &self.attempted)?;
            self.write_head();
            self.resync = false;
            self.attempted.clear();
        }
        Ok(())
    }

    /// While the sink is failing and no exchange comes: try the store again, so readiness
    /// returns with it.
    pub(super) fn probe_postgres(&mut self) {
        if self.writable.load(Ordering::Relaxed) {
            return;
        }
        let probed = self.reconcile_if_needed().and_then(|()| {
            self.postgres
                .as_ref()
                .expect("a PostgreSQL writer")
                .hash_at(self.last.seq.max(1))
                .map(drop)
        });
        match probed {
            Ok(()) => {
                self.writable.store(true, Ordering::Relaxed);
                tracing::info!("the audit store answers again");
            }
            Err(e) => tracing::debug!(error = %format!("{e:#}"), "the audit store still fails"),
        }
    }
}

impl Writer {
    /// At a clean stop: leave `stopped.json` (see [`Stopped`]) beside `head.json`.
    pub(super) fn mark_postgres_stopped(&self) {
        if self.postgres.is_none() || self.settings.dir.as_os_str().is_empty() {
            return;
        }
        let stopped = Stopped {
            last: self.last.clone(),
            attempted: if self.resync {
                self.attempted.clone()
            } else {
                Vec::new()
            },
        };
        let written = serde_json::to_vec(&stopped)
            .map_err(anyhow::Error::from)
            .and_then(|bytes| segment::write_atomically(&self.settings.dir.join(STOPPED), &bytes));
        if let Err(e) = written {
            tracing::warn!(error = %format!("{e:#}"), "cannot leave the audit stop marker");
        }
    }
}
