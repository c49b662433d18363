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
