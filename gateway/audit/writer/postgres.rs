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

use crate::audit::segment::ChainPoint;
use crate::audit::{record, subject};
use anyhow::{Context as _, Result};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr as _;
use std::time::Duration;

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

pub(super) struct PostgresSink {
    /// Always `Some` but while dropping (see the `Drop` impl).
    runtime: Option<tokio::runtime::Runtime>,
    pool: PgPool,
    instance: String,
    timeout: Duration,
}

impl PostgresSink {
    /// Connects, checks (or registers) the subject key this instance writes with, and reads
    /// where its chain ends. Runs on a thread of its own: the gateway opens its audit log from
    /// inside its runtime, where blocking on another runtime is not allowed.
    pub fn open(
        url: &str,
        instance: &str,
        key: &subject::SubjectKey,
        key_file: &std::path::Path,
        timeout: Duration,
    ) -> Result<(Self, ChainPoint)> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| Self::open_here(url, instance, key, key_file, timeout))
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("opening the audit store panicked")))
        })
    }

    fn open_here(
        url: &str,
        instance: &str,
        key: &subject::SubjectKey,
        key_file: &std::path::Path,
        timeout: Duration,
    ) -> Result<(Self, ChainPoint)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the audit sink's runtime")?;
        let options = PgConnectOptions::from_str(url)
            .context("not a usable PostgreSQL URL")?
            .application_name("doelpoort-audit")
            // Durable before the exchange is answered, whatever the server's default.
            .options([("synchronous_commit", "on")]);
        let pool = runtime
            .block_on(
                PgPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(timeout)
                    .connect_with(options),
            )
            .context("cannot connect to the audit store")?;
        let sink = Self {
            runtime: Some(runtime),
            pool,
            instance: instance.to_string(),
            timeout,
        };
        sink.register_key(key, key_file)?;
        let last = sink.last()?;
        Ok((sink, last))
    }

    fn register_key(&self, key: &subject::SubjectKey, key_file: &std::path::Path) -> Result<()> {
        let key_file = std::path::absolute(key_file)?
            .to_string_lossy()
            .into_owned();
        let registered: String = self.block_on(
                sqlx::query_scalar(
                    "INSERT INTO audit_instances (instance, subject_key_id, subject_key_file) \
                     VALUES ($1, $2, $3) ON CONFLICT (instance) DO UPDATE SET instance = EXCLUDED.instance \
                     RETURNING subject_key_id",
                )
                .bind(&self.instance)
                .bind(key.id())
                .bind(&key_file)
                .fetch_one(&self.pool),
            )
            .context("cannot register this instance in the audit store")?;
        anyhow::ensure!(
            registered == key.id(),
            "instance '{}' wrote its audit records with subject key id {registered}, not {} ({key_file}): \
             restore the original key (a new key would hide every earlier record from a citizen's query)",
            self.instance,
            key.id(),
        );
        Ok(())
    }

    /// The last committed record of this instance's chain (the genesis before the first).
    pub fn last(&self) -> Result<ChainPoint> {
        let query = sqlx::query_as(
            "SELECT seq, hash FROM audit_records WHERE instance = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(&self.instance)
        .fetch_optional(&self.pool);
        let row: Option<(i64, String)> = self
            .block_on(async { tokio::time::timeout(self.timeout, query).await })
            .map_err(|_| {
                anyhow::anyhow!("the audit store did not answer within {:?}", self.timeout)
            })?
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
    /// connection broke after the server committed); the writer then re-reads the chain's end
    /// before its next batch ([`Self::last`]), so the chain continues either way.
    pub fn commit(&self, rows: &[Row], buf: &[u8]) -> Result<()> {
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
        self.block_on(async { tokio::time::timeout(self.timeout, insert).await })
            .map_err(|_| {
                anyhow::anyhow!("the audit store did not commit within {:?}", self.timeout)
            })?
            .context("the audit store refused the batch")?;
        Ok(())
    }
}

impl PostgresSink {
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
