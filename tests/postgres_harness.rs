//! The PostgreSQL harness itself (tests/harness/postgres.rs): a private cluster keeps its data
//! across stop and restart, `start()` gives each test its own empty database, and a dropped
//! cluster leaves no server and no directory behind.

mod harness;

use harness::postgres::Postgres;
use std::net::TcpStream;
use std::time::Instant;

fn port_of(url: &str) -> u16 {
    let authority = url.split('/').nth(2).unwrap();
    authority.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn a_private_cluster_keeps_its_data_across_stop_and_restart() {
    let started = Instant::now();
    let pg = Postgres::private();
    eprintln!("private cluster ready in {:?}", started.elapsed());
    let url = pg.url();
    assert!(
        url.starts_with("postgres://doelpoort@127.0.0.1:") && url.ends_with("/doelpoort"),
        "{url}"
    );
    assert_eq!(
        pg.psql("SELECT current_database(), current_user"),
        "doelpoort|doelpoort\n"
    );

    pg.psql(
        "CREATE TABLE grants (id int PRIMARY KEY, purpose text NOT NULL);
         INSERT INTO grants VALUES (1, 'wams-onderzoek'), (2, 'schuldhulp');",
    );
    assert_eq!(
        pg.psql("SELECT id, purpose FROM grants ORDER BY id"),
        "1|wams-onderzoek\n2|schuldhulp\n"
    );

    let stopping = Instant::now();
    pg.stop();
    eprintln!("stopped in {:?}", stopping.elapsed());
    let refused = pg.try_psql("SELECT 1").expect_err("the server is stopped");
    assert!(refused.contains("Connection refused"), "{refused}");
    pg.stop(); // stopping a stopped server does nothing

    let restarting = Instant::now();
    pg.restart();
    eprintln!("restarted in {:?}", restarting.elapsed());
    assert_eq!(pg.url(), url, "same port, same database");
    assert_eq!(
        pg.psql("SELECT purpose FROM grants WHERE id = 2"),
        "schuldhulp\n"
    );

    // restart() on a running server stops it first.
    pg.restart();
    assert_eq!(pg.psql("SELECT count(*) FROM grants"), "2\n");
    assert!(pg
        .server_log()
        .contains("database system is ready to accept connections"));
}

#[test]
fn a_failing_statement_panics_with_the_error() {
    let pg = Postgres::start();
    let err = pg
        .try_psql("SELECT 1; SELECT * FROM nowhere; SELECT 2")
        .unwrap_err();
    assert!(
        err.contains(r#"relation "nowhere" does not exist"#),
        "{err}"
    );
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pg.psql("SELEC 1")))
        .expect_err("psql panics on an error");
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains("syntax error"), "{message}");
}

#[test]
fn start_gives_each_test_its_own_empty_database() {
    let a = Postgres::start();
    let b = Postgres::start();
    assert_ne!(a.url(), b.url());
    let tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'";
    assert_eq!(a.psql(tables), "0\n");
    a.psql("CREATE TABLE only_in_a (x int)");
    assert_eq!(a.psql(tables), "1\n");
    assert_eq!(b.psql(tables), "0\n");
}

#[test]
fn a_dropped_cluster_leaves_nothing_behind() {
    let pg = Postgres::private();
    let port = port_of(&pg.url());
    let dir = pg.dir().to_path_buf();
    assert!(dir.join("data/PG_VERSION").is_file());
    drop(pg);
    assert!(!dir.exists(), "{} is removed", dir.display());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} is closed"
    );
}
