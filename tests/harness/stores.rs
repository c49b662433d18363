//! Scenarios that run on both stores: the demo's embedded SQLite, and a real PostgreSQL.

/// Where the store (the case register, the ledger) lives in a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one test per scenario and store: `sqlite::NAME` and `postgres::NAME`, each
/// calling the scenario `NAME(Backend)` of the test file (which has `Backend` in scope).
#[allow(unused_macros)] // only the case register's tests use it
macro_rules! on_both_stores {
    ($($scenario:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Backend::Postgres).await
                }
            )+
        }
    };
}
#[allow(unused_imports)] // only the case register's tests use it
pub(crate) use on_both_stores;

use super::postgres::Postgres;
use super::{DemoRun, TestClient};
use doelpoort::config::Config;
use doelpoort::server::RunningGateway;
use doelpoort::store::{StoreLocation, StoreSettings};

/// A gateway of the demo's configuration beside the demo's own: its own instance id, ports
/// and audit directory, on `store`, with `edit` applied to its configuration. The household
/// key stays the demo's, as replicas share it.
pub async fn demo_replica(
    run: &DemoRun,
    name: &str,
    store: StoreLocation,
    edit: impl FnOnce(&mut Config),
) -> RunningGateway {
    let mut config = run.demo.config.clone();
    config.instance = name.into();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    config.audit.dir = run.root.path().join(name).join("audit");
    config.store = StoreSettings::new(store);
    edit(&mut config);
    doelpoort::server::start(&config)
        .await
        .unwrap_or_else(|e| panic!("gateway {name} starts: {e:#}"))
}

/// One scenario's gateway and store: the demo itself (SQLite), or a replica of it on a fresh
/// PostgreSQL with the demo's cases registered there as the demo registers them. Fields drop
/// in order: the replica before its database.
pub struct StoreEnv {
    /// With PostgreSQL: the replica on it (the demo's own gateway keeps its SQLite store).
    pub replica: Option<RunningGateway>,
    pub postgres: Option<Postgres>,
    pub run: DemoRun,
}

impl StoreEnv {
    pub async fn start(backend: Backend) -> StoreEnv {
        let run = super::start_demo().await;
        let (replica, postgres) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres => {
                let postgres = Postgres::start();
                let store = StoreLocation::Postgres(postgres.url());
                let replica = demo_replica(&run, "pg", store, |_| {}).await;
                doelpoort::demo::cases::register(
                    &run.root.path().join("certs-example"),
                    replica.local_addr,
                )
                .await
                .expect("the demo cases register on the PostgreSQL replica");
                (Some(replica), Some(postgres))
            }
        };
        StoreEnv {
            replica,
            postgres,
            run,
        }
    }

    /// The gateway the scenario calls.
    pub fn gateway(&self) -> &RunningGateway {
        self.replica.as_ref().unwrap_or(&self.run.demo.gateway)
    }

    pub fn client(&self, consumer: &str) -> TestClient {
        self.run.client(consumer)
    }
}
