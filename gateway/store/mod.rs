//! The store: state that must hold across replicas and restarts (SPEC §9).
//!
//! One engine per deployment, chosen by the `store` key of the configuration:
//! - **SQLite**, embedded, in a file next to the audit log (the default; `doelpoort demo` and a
//!   single node need nothing but the binary);
//! - **PostgreSQL** (`store: postgres://…`), shared by replicas behind a load balancer; it can
//!   also hold the central audit log (`audit: {sink: postgres}`, see
//!   [`crate::audit::writer`]).
//!
//! What lives here: spent four-eyes approvals (an approval spent on one replica is refused on
//! every other, and after a restart), and the case register with its time-out ledger
//! ([`cases`]; the rules themselves are in [`crate::cases`]).
//!
//! Reads never wait for the store on the hot path: a replica keeps what it needs in memory and
//! only *writes* that decide between replicas go to the store, as one atomic statement each.
//! A store that cannot be reached refuses the exchanges that need it (fail closed).
//!
//! Migrations are versioned SQL files in `gateway/store/migrations/<engine>/`, embedded in the
//! binary and applied at start (sqlx's migrator, with its lock, so replicas starting together
//! apply each migration once).

/// Runs `$body` with `$p` bound to whichever pool the store has: one statement, written
/// once, for both engines (their pools and results are different types).
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
        }
    };
}

pub mod cases;

use anyhow::{Context as _, Result};
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::SqlSafeStr as _;
use std::str::FromStr as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::config::store::{StoreLocation, StoreSettings};

/// The store's metric families (from [`crate::metrics::Metrics`]: `store_duration`,
/// `store_errors`), handed in so that the store does not depend on the metrics module.
#[derive(Clone)]
pub struct StoreMetrics {
    pub duration: prometheus::HistogramVec,
    pub errors: prometheus::IntCounterVec,
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The open store: a connection pool with its migrations applied. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    location: StoreLocation,
    instance: Arc<str>,
    metrics: StoreMetrics,
    /// The last round trip (or health probe) succeeded; `/readyz` reports it.
    reachable: Arc<AtomicBool>,
}

/// Why the store could not answer. The exchange that needed it is refused.
#[derive(Debug, thiserror::Error)]
#[error("the store cannot be reached: {0}")]
pub struct StoreUnavailable(#[source] sqlx::Error);

/// One approval being spent: who issued it, its id, and when it expires (unix seconds).
pub struct ApprovalSpend<'a> {
    pub issuer: &'a str,
    pub jti: &'a str,
    pub expires_at: u64,
}

impl Store {
    /// Connects (bounded by `settings.timeout`), applies the migrations, and starts the
    /// health probe. An SQLite file and its directory are created if missing.
    pub async fn open(
        settings: &StoreSettings,
        instance: &str,
        metrics: StoreMetrics,
    ) -> Result<Self> {
        let described = settings.location.describe();
        let pool = match &settings.location {
            StoreLocation::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).with_context(|| {
                        format!("cannot create the store's directory {}", dir.display())
                    })?;
                }
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    // WAL with synchronous FULL: a spent approval survives a power cut.
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(settings.timeout);
                Pool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(settings.max_connections)
                        .acquire_timeout(settings.timeout)
                        .connect_with(options)
                        .await
                        .with_context(|| format!("cannot open the store {described}"))?,
                )
            }
            StoreLocation::Postgres(url) => {
                let options = PgConnectOptions::from_str(url)
                    .with_context(|| format!("not a usable PostgreSQL URL: {described}"))?
                    .application_name("doelpoort");
                Pool::Postgres(
                    PgPoolOptions::new()
                        .max_connections(settings.max_connections)
                        .acquire_timeout(settings.timeout)
                        .connect_with(options)
                        .await
                        .with_context(|| format!("cannot connect to the store {described}"))?,
                )
            }
        };
        if let StoreLocation::Sqlite(path) = &settings.location {
            // Spent approvals are the gateway's own state: not for other local users.
            use std::os::unix::fs::PermissionsExt as _;
            for suffix in ["", "-wal", "-shm"] {
                let mut file = path.clone().into_os_string();
                file.push(suffix);
                let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
            }
        }
        let migrated = match &pool {
            Pool::Sqlite(p) => migrator(Engine::Sqlite).await?.run(p).await,
            // A replica's role may lack the right to change the schema (docs/deployment.md):
            // when every migration is already applied, as its owner applied them, none runs.
            Pool::Postgres(p) if all_applied(p).await => Ok(()),
            Pool::Postgres(p) => migrator(Engine::Postgres).await?.run(p).await,
        };
        migrated.with_context(|| format!("cannot apply the store's migrations to {described}"))?;
        tracing::info!(store = %described, "store open");
        Ok(Self {
            pool,
            location: settings.location.clone(),
            instance: instance.into(),
            metrics,
            reachable: Arc::new(AtomicBool::new(true)),
        })
    }

    /// Whether the last round trip or probe reached the store (for `/readyz`).
    pub fn reachable(&self) -> Arc<AtomicBool> {
        self.reachable.clone()
    }

    /// Spends an approval: `Ok(true)` if this exchange got it, `Ok(false)` if it was already
    /// spent (here or on another replica). One atomic statement: of two replicas spending the
    /// same approval at once, exactly one inserts the row.
    pub async fn spend_approval(
        &self,
        spend: &ApprovalSpend<'_>,
    ) -> Result<bool, StoreUnavailable> {
        let now = crate::clock::unix_now();
        let expires_at = i64::try_from(spend.expires_at).unwrap_or(i64::MAX);
        let inserted = self
            .timed("spend_approval", async {
                const SQL: &str =
                    "INSERT INTO spent_approvals (issuer, jti, expires_at, spent_at, instance) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (issuer, jti) DO NOTHING";
                on_pool!(&self.pool, p => sqlx::query(SQL)
                    .bind(spend.issuer)
                    .bind(spend.jti)
                    .bind(expires_at)
                    .bind(now)
                    .bind(&*self.instance)
                    .execute(p)
                    .await
                    .map(|r| r.rows_affected()))
            })
            .await?;
        Ok(inserted == 1)
    }

    /// Forgets spent approvals whose keeping time (`expires_at`: the token's `exp` plus a day,
    /// see [`crate::policy::four_eyes`]) ended before `before` (unix seconds): an expired
    /// approval is refused on its `exp` anyway.
    pub async fn prune_approvals(&self, before: u64) -> Result<u64, StoreUnavailable> {
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        self.timed("prune", async {
            const SQL: &str = "DELETE FROM spent_approvals WHERE expires_at < $1";
            on_pool!(&self.pool, p => sqlx::query(SQL)
                .bind(before)
                .execute(p)
                .await
                .map(|r| r.rows_affected()))
        })
        .await
    }

    /// One cheap round trip; updates [`Self::reachable`].
    pub async fn ping(&self) -> bool {
        self.timed("ping", async {
            on_pool!(&self.pool, p => sqlx::query("SELECT 1").execute(p).await.map(drop))
        })
        .await
        .is_ok()
    }

    /// Probes the store every `every` and prunes approvals past their keeping time now and
    /// then, for the life of the runtime. Readiness then tells a load balancer about a lost
    /// store even when no exchange needed it.
    pub fn spawn_upkeep(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut ticks: u64 = 0;
            loop {
                tokio::time::sleep(every).await;
                if store.ping().await && ticks.is_multiple_of(60) {
                    let now = u64::try_from(crate::clock::unix_now()).unwrap_or(0);
                    let _ = store.prune_approvals(now).await;
                }
                ticks += 1;
            }
        })
    }

    /// Runs one round trip with its metrics and reachability.
    pub(crate) async fn timed<T>(
        &self,
        operation: &'static str,
        work: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreUnavailable> {
        let started = Instant::now();
        let result = work.await;
        self.metrics
            .duration
            .with_label_values(&[operation])
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(value) => {
                self.reachable.store(true, Ordering::Relaxed);
                Ok(value)
            }
            Err(e) => {
                self.metrics.errors.with_label_values(&[operation]).inc();
                if self.reachable.swap(false, Ordering::Relaxed) {
                    tracing::error!(error = %e, store = %self.location.describe(), operation, "the store cannot be reached; exchanges that need it are refused");
                }
                Err(StoreUnavailable(e))
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Engine {
    Sqlite,
    Postgres,
}

/// The migrations of one engine, embedded in the binary.
#[derive(Debug)]
struct Embedded(Engine);

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "spent approvals",
        include_str!("migrations/sqlite/0001_spent_approvals.sql"),
    ),
    (
        2,
        "case register",
        include_str!("migrations/sqlite/0002_case_register.sql"),
    ),
];

const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "spent approvals",
        include_str!("migrations/postgres/0001_spent_approvals.sql"),
    ),
    (
        2,
        "audit records",
        include_str!("migrations/postgres/0002_audit_records.sql"),
    ),
    (
        3,
        "audit records are not deleted",
        include_str!("migrations/postgres/0003_audit_no_delete.sql"),
    ),
    (
        4,
        "case register",
        include_str!("migrations/postgres/0004_case_register.sql"),
    ),
];

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> futures_util::future::BoxFuture<
        'static,
        Result<Vec<Migration>, Box<dyn std::error::Error + Send + Sync>>,
    > {
        let list = match self.0 {
            Engine::Sqlite => SQLITE_MIGRATIONS,
            Engine::Postgres => POSTGRES_MIGRATIONS,
        };
        let migrations = list
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    (*description).into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect();
        Box::pin(async move { Ok(migrations) })
    }
}

async fn migrator(engine: Engine) -> Result<Migrator> {
    Migrator::new(Embedded(engine))
        .await
        .context("the embedded migrations are unreadable")
}

/// Whether every embedded PostgreSQL migration is applied, with the same text (checksum).
async fn all_applied(pool: &PgPool) -> bool {
    let applied: Vec<(i64, Vec<u8>)> =
        match sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
        {
            Ok(rows) => rows,
            Err(_) => return false,
        };
    let Ok(embedded) = Embedded(Engine::Postgres).resolve().await else {
        return false;
    };
    embedded.iter().all(|m| {
        applied
            .iter()
            .any(|(version, checksum)| *version == m.version && checksum[..] == m.checksum[..])
    })
}
