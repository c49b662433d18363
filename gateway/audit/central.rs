//! The central audit log in PostgreSQL, read side: `audit verify --store`, `audit query
//! --store` and `audit import DIR --store` (SPEC §9). The write side is the writer's
//! PostgreSQL sink (`writer/postgres.rs`).
//!
//! The table holds each record's canonical line exactly as it was hashed, so verifying and
//! answering use the same parser and checks as for segment files; a query answers across every
//! instance (replica) that writes there.

use super::query::{Answer, Collector, Filter};
use super::record::{self, GENESIS_HASH};
use super::segment::{self, ChainPoint};
use super::subject::{Manifest, SubjectKey};
use super::verify::{Break, Chain};
use anyhow::{Context as _, Result};
use futures_util::TryStreamExt as _;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Row as _;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;

/// One instance's verified chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceReport {
    pub instance: String,
    pub records: u64,
    pub last: Option<ChainPoint>,
    pub warnings: Vec<String>,
}

/// Connects for a command (one connection, bounded wait). Only `import` (which writes)
/// applies the store's migrations; `verify` and `query` change nothing, so an auditor's
/// read-only role is enough, and a database without Doelpoort's tables is an error rather
/// than an empty answer.
async fn connect(url: &str, migrate: bool) -> Result<PgPool> {
    let location = crate::store::StoreLocation::parse(url).map_err(|e| anyhow::anyhow!(e))?;
    let crate::store::StoreLocation::Postgres(url) = location else {
        anyhow::bail!("--store takes a postgres://… URL (the SQLite store holds no audit log)");
    };
    let settings =
        crate::store::StoreSettings::new(crate::store::StoreLocation::Postgres(url.clone()));
    if migrate {
        crate::store::Store::open(
            &settings,
            "doelpoort-cli",
            crate::metrics::Metrics::new().store(),
        )
        .await?;
    }
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(settings.timeout)
        .connect_with(PgConnectOptions::from_str(&url)?.application_name("doelpoort-audit-cli"))
        .await
        .context("cannot connect to the audit store")?;
    let has_tables: bool = sqlx::query_scalar(
        "SELECT to_regclass('audit_records') IS NOT NULL AND to_regclass('audit_instances') IS NOT NULL",
    )
    .fetch_one(&pool)
    .await?;
    anyhow::ensure!(
        has_tables,
        "{} holds no Doelpoort audit log (no audit_records table): is this the right database?",
        settings.location.describe()
    );
    Ok(pool)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")
}

/// Where a break was found: the instance's chain and the seq (shown as `file:line`).
fn broken(instance: &str, seq: u64, message: impl Into<String>) -> Break {
    Break {
        file: PathBuf::from(format!("instance {instance}, seq")),
        line: seq as usize,
        message: message.into(),
    }
}

/// Verifies every instance's chain in the store: each instance's report, or where its chain
/// breaks.
pub fn verify(url: &str) -> Result<Vec<std::result::Result<InstanceReport, Break>>> {
    runtime()?.block_on(async {
        let pool = connect(url, false).await?;
        let instances: Vec<(String, bool)> = sqlx::query_as(
            "SELECT instance, bool_or(registered) FROM ( \
               SELECT instance, true AS registered FROM audit_instances \
               UNION ALL SELECT DISTINCT instance, false FROM audit_records) i \
             GROUP BY instance ORDER BY instance",
        )
        .fetch_all(&pool)
        .await?;
        let mut reports = Vec::new();
        for (instance, registered) in instances {
            let mut report = verify_instance(&pool, &instance).await?;
            match &mut report {
                Ok(r) if r.records == 0 && registered => r.warnings.push(format!(
                    "instance {instance} is registered (it wrote here) but holds no records: were they removed?"
                )),
                Ok(r) if !registered => r.warnings.push(format!(
                    "instance {instance} has records but no registered subject key"
                )),
                _ => {}
            }
            reports.push(report);
        }
        Ok(reports)
    })
}

async fn verify_instance(
    pool: &PgPool,
    instance: &str,
) -> Result<std::result::Result<InstanceReport, Break>> {
    let mut rows = sqlx::query(
        "SELECT seq, prev_hash, hash, subject_id, requested_subject_id, record \
         FROM audit_records WHERE instance = $1 ORDER BY seq",
    )
    .bind(instance)
    .fetch(pool);
    // Held to the same rules as a file log; central chains are never pruned.
    let mut chain = Chain::new(ChainPoint {
        seq: 0,
        hash: GENESIS_HASH.into(),
    });
    let mut report = InstanceReport {
        instance: instance.to_string(),
        records: 0,
        last: None,
        warnings: Vec::new(),
    };
    while let Some(row) = rows.try_next().await? {
        let seq = u64::try_from(row.try_get::<i64, _>("seq")?).unwrap_or(u64::MAX);
        let line: String = row.try_get("record")?;
        let stored = match record::parse_line(line.as_bytes()) {
            Ok(s) => s,
            Err(e) => return Ok(Err(broken(instance, seq, e.to_string()))),
        };
        let attributes = &stored.value["attributes"];
        // The columns a query filters on must say what the record says: a row re-filed under
        // another person would vanish from the first person's art. 15 report.
        let columns_agree = row.try_get::<Option<String>, _>("subject_id")?.as_deref()
            == attributes["dpl.core.data_subject_id"].as_str()
            && row
                .try_get::<Option<String>, _>("requested_subject_id")?
                .as_deref()
                == attributes["doelpoort.requested_subject_id"].as_str();
        if stored.seq != seq
            || stored.hash != row.try_get::<String, _>("hash")?
            || stored.prev_hash != row.try_get::<String, _>("prev_hash")?
            || !columns_agree
        {
            return Ok(Err(broken(
                instance,
                seq,
                "the row's seq, hashes or subject columns differ from the record it holds: the row was changed",
            )));
        }
        if let Err(message) = chain.follow(&stored) {
            return Ok(Err(broken(instance, seq, message)));
        }
        report.records += 1;
    }
    for tx in chain.open_intents() {
        report.warnings.push(format!(
            "instance {instance}: exchange {tx}: intent recorded, outcome unknown (the gateway stopped while the partner was called)"
        ));
    }
    report.last = (chain.expected.seq > 0).then(|| chain.expected.clone());
    Ok(Ok(report))
}

/// The subject key a query needs: the one the store says its records were written with
/// (`--key-file` overrides the file, and must be the same key).
pub fn key_for_query(url: &str, explicit: Option<&Path>) -> Result<SubjectKey> {
    let registered: Vec<(String, String)> = runtime()?.block_on(async {
        let pool = connect(url, false).await?;
        anyhow::Ok(
            sqlx::query_as(
                "SELECT DISTINCT subject_key_id, subject_key_file FROM audit_instances ORDER BY 1",
            )
            .fetch_all(&pool)
            .await?,
        )
    })?;
    let path = match (explicit, registered.first()) {
        (Some(path), _) => path.to_path_buf(),
        (None, Some((_, file))) => PathBuf::from(file),
        (None, None) => anyhow::bail!("the store names no subject key yet; pass --key-file"),
    };
    let key = SubjectKey::load(&path)?;
    if !registered.is_empty() {
        anyhow::ensure!(
            registered.iter().any(|(id, _)| *id == key.id()),
            "{} is not a key the store's records were written with (key id {})",
            path.display(),
            key.id()
        );
    }
    anyhow::ensure!(
        registered.iter().all(|(id, _)| *id == key.id()),
        "the store's instances were written with different subject keys ({}): a query with one key would miss \
         the records of the others",
        registered
            .iter()
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(key)
}

/// `audit query --store`: the records `filter` selects, from every instance, oldest first.
pub fn query(url: &str, filter: &Filter) -> Result<Answer> {
    runtime()?.block_on(async {
        let pool = connect(url, false).await?;
        let mut collector = Collector::default();
        for broken in verify_all(&pool).await? {
            collector.warn(format!(
                "the audit chain is broken, this answer may be incomplete: {broken}"
            ));
        }
        // A subject query reads only that person's rows (indexed); others read everything.
        let mut rows = match &filter.subject_id {
            Some(id) => sqlx::query(
                "SELECT instance, seq, record FROM audit_records \
                 WHERE subject_id = $1 OR requested_subject_id = $1 \
                 ORDER BY start_time, instance, seq",
            )
            .bind(id.clone())
            .fetch(&pool),
            None => sqlx::query(
                "SELECT instance, seq, record FROM audit_records ORDER BY start_time, instance, seq",
            )
            .fetch(&pool),
        };
        while let Some(row) = rows.try_next().await? {
            let instance: String = row.try_get("instance")?;
            let seq: i64 = row.try_get("seq")?;
            let line: String = row.try_get("record")?;
            collector.take(
                &format!("instance {instance}, seq {seq}"),
                line.as_bytes(),
                filter,
            );
        }
        Ok(collector.finish())
    })
}

/// Every break in every instance's chain.
async fn verify_all(pool: &PgPool) -> Result<Vec<Break>> {
    let instances: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT instance FROM audit_records ORDER BY 1")
            .fetch_all(pool)
            .await?;
    let mut breaks = Vec::new();
    for instance in instances {
        if let Err(b) = verify_instance(pool, &instance).await? {
            breaks.push(b);
        }
    }
    Ok(breaks)
}

/// What `audit import` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub instance: String,
    pub records: u64,
    pub new: u64,
}

/// `audit import DIR --store URL`: copies a replica's file log into the store, under the
/// instance its manifest names. Idempotent: records already there are skipped, but only if
/// they are the same records (same hash); the directory is verified first and the instance's
/// chain in the store afterwards.
pub fn import(dir: &Path, url: &str) -> Result<Imported> {
    let report = super::verify::verify(dir)
        .map_err(|b| anyhow::anyhow!("{} does not verify, nothing imported: {b}", dir.display()))?;
    let manifest = Manifest::read(dir)
        .with_context(|| format!("{} has no manifest.json naming its instance", dir.display()))?;
    anyhow::ensure!(
        report.first_seq.unwrap_or(1) == 1,
        "{} was pruned (it starts at seq {}): the store's chain for '{}' would not start at the beginning",
        dir.display(),
        report.first_seq.unwrap_or(1),
        manifest.instance
    );
    // Every record must belong to the manifest's instance before anything is written: a
    // refused import leaves nothing behind (not even a registered, empty instance).
    for (_, path) in segment::list_segments(dir)? {
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        for (line_no, line) in segment::contents(&bytes).lines {
            let stored = record::parse_line(line)
                .map_err(|e| anyhow::anyhow!("{}:{line_no}: {e}", path.display()))?;
            let instance = &stored.value["attributes"]["doelpoort.instance"];
            anyhow::ensure!(
                instance.as_str() == Some(manifest.instance.as_str()),
                "{}:{line_no}: the record belongs to instance {instance}, the manifest says '{}': nothing was imported",
                path.display(),
                manifest.instance
            );
        }
    }
    runtime()?.block_on(async {
        let pool = connect(url, true).await?;
        // One subject key per store, as for a replica writing here (see the writer's sink).
        let other_keys: Vec<(String, String)> = sqlx::query_as(
            "SELECT instance, subject_key_id FROM audit_instances \
             WHERE instance <> $1 AND subject_key_id <> $2 ORDER BY 1",
        )
        .bind(&manifest.instance)
        .bind(&manifest.subject_key_id)
        .fetch_all(&pool)
        .await?;
        if let Some((other, other_key)) = other_keys.first() {
            anyhow::bail!(
                "this log was written with subject key id {}, instance '{other}' in the store with {other_key}: \
                 one store holds records of one subject key (a citizen's query would miss the others); nothing was imported",
                manifest.subject_key_id
            );
        }
        sqlx::query(
            "INSERT INTO audit_instances (instance, subject_key_id, subject_key_file) VALUES ($1, $2, $3) \
             ON CONFLICT (instance) DO NOTHING",
        )
        .bind(&manifest.instance)
        .bind(&manifest.subject_key_id)
        .bind(manifest.subject_key_file.to_string_lossy().as_ref())
        .execute(&pool)
        .await?;
        let registered: String =
            sqlx::query_scalar("SELECT subject_key_id FROM audit_instances WHERE instance = $1")
                .bind(&manifest.instance)
                .fetch_one(&pool)
                .await?;
        anyhow::ensure!(
            registered == manifest.subject_key_id,
            "instance '{}' is in the store with subject key id {registered}, this log was written with {}",
            manifest.instance,
            manifest.subject_key_id
        );
        let mut imported = Imported {
            instance: manifest.instance.clone(),
            records: 0,
            new: 0,
        };
        for (_, path) in segment::list_segments(dir)? {
            let bytes = std::fs::read(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let mut tx = pool.begin().await?;
            for (line_no, line) in segment::contents(&bytes).lines {
                let stored = record::parse_line(line)
                    .map_err(|e| anyhow::anyhow!("{}:{line_no}: {e}", path.display()))?;
                let attributes = &stored.value["attributes"];
                let text = std::str::from_utf8(line)?;
                let inserted = sqlx::query(
                    "INSERT INTO audit_records \
                       (instance, seq, prev_hash, hash, subject_id, requested_subject_id, start_time, record) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (instance, seq) DO NOTHING",
                )
                .bind(&manifest.instance)
                .bind(i64::try_from(stored.seq)?)
                .bind(&stored.prev_hash)
                .bind(&stored.hash)
                .bind(attributes["dpl.core.data_subject_id"].as_str())
                .bind(attributes["doelpoort.requested_subject_id"].as_str())
                .bind(stored.value["start_time"].as_str().unwrap_or(""))
                .bind(text)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    let there: String = sqlx::query_scalar(
                        "SELECT hash FROM audit_records WHERE instance = $1 AND seq = $2",
                    )
                    .bind(&manifest.instance)
                    .bind(i64::try_from(stored.seq)?)
                    .fetch_one(&mut *tx)
                    .await?;
                    anyhow::ensure!(
                        there == stored.hash,
                        "{}:{line_no}: the store already holds another record seq {} for instance '{}': nothing of this segment was imported",
                        path.display(),
                        stored.seq,
                        manifest.instance
                    );
                }
                imported.records += 1;
                imported.new += inserted;
            }
            tx.commit().await?;
        }
        if let Err(b) = verify_instance(&pool, &manifest.instance).await? {
            anyhow::bail!("after the import, the store's chain for '{}' is broken: {b}", manifest.instance);
        }
        Ok(imported)
    })
}
