//! A real PostgreSQL for integration tests, never skipped.
//!
//! [`Postgres::start`] gives a test a fresh, empty database: in the server named by the
//! environment variable `DOELPOORT_TEST_POSTGRES` (a URL; the harness creates a uniquely named
//! database there with `CREATE DATABASE` and drops it afterwards), or else in a private
//! throwaway cluster. [`Postgres::private`] always starts a private cluster; only those can be
//! stopped and restarted ([`Postgres::stop`], [`Postgres::restart`]).
//!
//! A private cluster is a copy of a data directory that `initdb` made once per test process
//! (trust authentication, superuser `doelpoort`, UTF-8, C locale, `--no-sync`, 1 MB WAL
//! segments, and the empty database `doelpoort` the URL names), in a new temporary directory;
//! then `postgres` runs as a child process listening only on 127.0.0.1 on a free port, with
//! its Unix socket directory and its log (`server.log`) in the same directory, and
//! `max_connections=100`. `fsync` stays on (the server default): measured, it makes no
//! difference to a cluster's start and costs about 0.05 ms per commit here, and a test of what
//! survives a restart should not run on settings no deployment uses.
//! Each call gets its own cluster, so tests in one binary and many binaries may run at once; a
//! port taken between choosing it and the server binding it is retried.
//!
//! The binaries come from the newest `/usr/lib/postgresql/*/bin` (Debian's layout) or else
//! from `PATH`. When they are missing the harness panics: `tests/run` installs them.
//!
//! `initdb` refuses to run as root. When the tests run as root, `initdb`, `postgres` and the
//! copy run as the user `nobody` (the standard library's `Command::uid`/`gid`, which also drops
//! the supplementary groups), and the temporary directories belong to `nobody`. psql runs as
//! the tester and connects over TCP.
//!
//! Clean-up: dropping a [`Postgres`] stops its cluster (immediate shutdown) and removes the
//! directory, or drops the tester's database. If the test process dies without dropping it
//! (killed, aborted, or a `Postgres` kept in a `static`), a small watchdog shell, whose standard
//! input is a pipe only the test process holds, sees the pipe close and does the same; one such
//! shell also removes the initdb template when the process ends.

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The environment variable naming a PostgreSQL server the tester provides (a URL).
pub const EXTERNAL_ENV: &str = "DOELPOORT_TEST_POSTGRES";
/// The superuser of a private cluster, and the name of its test database.
pub const USER: &str = "doelpoort";
/// How long a server may take to accept connections or to shut down.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How often a server start is tried again when its port was taken in the meantime.
const PORT_ATTEMPTS: u32 = 5;

const MISSING: &str = "PostgreSQL's server binaries (initdb, postgres) were found neither in \
     /usr/lib/postgresql/*/bin nor on PATH. Run the tests with `tests/run`, which installs them \
     on Debian, or `apt-get install postgresql`. These tests are never skipped.";

/// A PostgreSQL database for one test; see the module documentation.
pub struct Postgres {
    kind: Kind,
}

enum Kind {
    Private(Private),
    External(External),
}

struct Private {
    bin: PathBuf,
    psql: PathBuf,
    /// `Some((uid, gid))` of `nobody` when the tests run as root.
    run_as: Option<(u32, u32)>,
    port: u16,
    /// The running server (None while stopped).
    server: Mutex<Option<Running>>,
    /// Dropped after [`Postgres`]'s `Drop` has stopped the server.
    dir: tempfile::TempDir,
}

struct Running {
    postmaster: Child,
    watchdog: Watchdog,
}

struct External {
    psql: PathBuf,
    /// The tester's URL with the maintenance database (for CREATE and DROP DATABASE).
    admin_url: String,
    /// The same server with this test's database.
    url: String,
    database: String,
}

impl Postgres {
    /// A fresh, empty database: in the server `DOELPOORT_TEST_POSTGRES` names, if set, or else
    /// in a private cluster ([`Postgres::private`]).
    pub fn start() -> Postgres {
        match std::env::var(EXTERNAL_ENV) {
            Ok(url) if !url.trim().is_empty() => Postgres {
                kind: Kind::External(External::create(url.trim())),
            },
            _ => Postgres::private(),
        }
    }

    /// A private throwaway cluster with an empty database `doelpoort`, whatever the environment
    /// says. Tests that stop and restart the server need this.
    pub fn private() -> Postgres {
        Postgres {
            kind: Kind::Private(Private::start()),
        }
    }

    /// `postgres://USER@127.0.0.1:PORT/DBNAME` (for a tester's server: its URL with this test's
    /// database).
    pub fn url(&self) -> String {
        match &self.kind {
            Kind::Private(p) => p.url(USER),
            Kind::External(e) => e.url.clone(),
        }
    }

    /// Runs SQL (any number of statements) with `psql -X -q -A -t -v ON_ERROR_STOP=1` on this
    /// test's database and returns what it printed: one line per row, columns separated by `|`.
    /// Panics with psql's error output when a statement fails.
    pub fn psql(&self, sql: &str) -> String {
        self.try_psql(sql)
            .unwrap_or_else(|e| panic!("psql failed on {}: {e}\nSQL: {sql}", self.url()))
    }

    /// [`Postgres::psql`] that returns psql's error output instead of panicking (for example to
    /// show that the server is down).
    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        match &self.kind {
            Kind::Private(p) => run_psql(&p.psql, &p.url(USER), sql, true),
            Kind::External(e) => run_psql(&e.psql, &e.url, sql, false),
        }
    }

    /// Stops a private cluster (fast shutdown: open sessions are ended, then a checkpoint) and
    /// waits until the server has exited. Does nothing when it is already stopped.
    pub fn stop(&self) {
        let p = self.private_only("stop");
        let mut server = p.lock();
        if let Some(running) = server.take() {
            p.shut_down(running, libc::SIGINT, "fast");
        }
    }

    /// Starts a private cluster again on the same port and data directory (stopping it first if
    /// it runs) and waits until it accepts connections.
    pub fn restart(&self) {
        let p = self.private_only("restart");
        let mut server = p.lock();
        if let Some(running) = server.take() {
            p.shut_down(running, libc::SIGINT, "fast");
        }
        *server = Some(p.spawn_same_port());
    }

    /// The private cluster's temporary directory (`data/`, `socket/`, `server.log`).
    pub fn dir(&self) -> &Path {
        self.private_only("dir").dir.path()
    }

    /// The private cluster's server log so far.
    pub fn server_log(&self) -> String {
        self.private_only("server_log").log()
    }

    fn private_only(&self, what: &str) -> &Private {
        match &self.kind {
            Kind::Private(p) => p,
            Kind::External(_) => panic!(
                "Postgres::{what} works only on a private cluster, and this one is the server \
                 {EXTERNAL_ENV} names: use Postgres::private() in this test"
            ),
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        match &self.kind {
            Kind::Private(p) => {
                if let Some(running) = p.lock().take() {
                    p.shut_down(running, libc::SIGQUIT, "immediate");
                }
            }
            Kind::External(e) => e.drop_database(),
        }
    }
}

impl Private {
    fn start() -> Private {
        let (bin, psql) = binaries();
        let run_as = if unsafe { libc::geteuid() } == 0 {
            Some(nobody())
        } else {
            None
        };
        let dir = cluster_dir(run_as);
        let socket = dir.path().join("socket");
        std::fs::create_dir(&socket).unwrap();
        own(&socket, run_as);
        // initdb once per test process (a second or more), then a copy per cluster (a tenth).
        let mut cp = Command::new("cp");
        cp.arg("-a")
            .arg(template(&bin, run_as))
            .arg(dir.path().join("data"));
        run_to_end(
            as_server_user(&mut cp, dir.path(), run_as),
            "copy the initdb template",
            "",
        );
        let mut private = Private {
            bin,
            psql,
            run_as,
            port: 0,
            server: Mutex::new(None),
            dir,
        };
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            private.port = free_port();
            match private.spawn() {
                Ok(running) => {
                    *private.lock() = Some(running);
                    return private;
                }
                Err(log) => last = log,
            }
        }
        panic!("PostgreSQL found no free port in {PORT_ATTEMPTS} attempts; server log:\n{last}");
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    fn lock(&self) -> MutexGuard<'_, Option<Running>> {
        // A test that panicked while holding the lock must still have its server stopped.
        self.server.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Restart on the port the cluster has: another process may hold it for a moment (a
    /// client socket, another test's server trying it), so a few tries over a few seconds.
    fn spawn_same_port(&self) -> Running {
        let mut last = String::new();
        for attempt in 0..PORT_ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(500 * attempt as u64));
            }
            match self.spawn() {
                Ok(running) => return running,
                Err(log) => last = log,
            }
        }
        panic!(
            "PostgreSQL could not listen on port {} again in {PORT_ATTEMPTS} attempts; server \
             log:\n{last}",
            self.port
        );
    }

    /// Starts `postgres` and waits until it accepts connections. Err(this start's log) when it
    /// could not bind its port (the caller tries again); any other failure panics.
    fn spawn(&self) -> Result<Running, String> {
        let log_path = self.log_path();
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("server log");
        let from = log.seek(SeekFrom::End(0)).unwrap();
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.dir.path().join("socket"))
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "max_connections=100"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        let mut postmaster = as_server_user(&mut cmd, self.dir.path(), self.run_as)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.join("postgres").display()));
        let watchdog = watchdog(Some(postmaster.id()), self.dir.path());
        let this_start = || {
            let mut text = String::new();
            if let Ok(mut f) = std::fs::File::open(&log_path) {
                let _ = f.seek(SeekFrom::Start(from));
                let _ = f.read_to_string(&mut text);
            }
            text
        };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = postmaster.try_wait().unwrap() {
                drop(watchdog);
                let text = this_start();
                if text.contains("could not create any TCP/IP sockets")
                    || text.contains("Address already in use")
                {
                    return Err(text);
                }
                panic!("PostgreSQL exited ({status}) while starting; server log:\n{text}");
            }
            if self.is_ready(postmaster.id()) {
                return Ok(Running {
                    postmaster,
                    watchdog,
                });
            }
            if Instant::now() > deadline {
                let running = Running {
                    postmaster,
                    watchdog,
                };
                self.shut_down(running, libc::SIGQUIT, "immediate");
                panic!(
                    "PostgreSQL did not accept connections on 127.0.0.1:{} within {TIMEOUT:?}; \
                     server log:\n{}",
                    self.port,
                    this_start()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Ready as `pg_ctl -w` sees it: `postmaster.pid` names this process and says `ready`
    /// (written once the server accepts connections), and the port answers.
    fn is_ready(&self, pid: u32) -> bool {
        let Ok(text) = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid")) else {
            return false;
        };
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        lines.first() == Some(&pid.to_string().as_str())
            && lines.get(7) == Some(&"ready")
            && TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok()
    }

    /// Signals the postmaster (SIGINT: fast shutdown, SIGQUIT: immediate) and waits for it to
    /// exit; a server that does not is killed. Never panics (it runs in Drop).
    fn shut_down(&self, running: Running, signal: libc::c_int, mode: &str) {
        // The watchdog goes first, so it can never signal a process id that was reused.
        drop(running.watchdog);
        let mut postmaster = running.postmaster;
        unsafe { libc::kill(postmaster.id() as libc::pid_t, signal) };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match postmaster.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() > deadline => {
                    eprintln!(
                        "PostgreSQL on port {} ignored {mode} shutdown for {TIMEOUT:?}: killed",
                        self.port
                    );
                    let _ = postmaster.kill();
                    let _ = postmaster.wait();
                    return;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

/// A shell that waits for its standard input to close. It closes when the test process ends;
/// if the process ends without dropping what the shell guards (a [`Postgres`] kept in a
/// `static`, a killed test), the shell shuts the server `pid` down (immediate), if any, and
/// removes `dir`. Ctrl-C and SIGTERM do not stop it early.
fn watchdog(pid: Option<u32>, dir: &Path) -> Watchdog {
    const SCRIPT: &str = r#"trap '' INT TERM HUP
read -r _
if [ -n "$1" ]; then
  kill -QUIT "$1" 2>/dev/null
  i=0
  while kill -0 "$1" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done
fi
rm -rf "$2""#;
    let shell = Command::new("/bin/sh")
        .args(["-c", SCRIPT, "doelpoort-pg-watchdog"])
        .arg(pid.map(|p| p.to_string()).unwrap_or_default())
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    Watchdog(shell.expect("spawn the PostgreSQL watchdog (/bin/sh)"))
}

/// A [`watchdog`] shell; it holds the write end of the shell's standard input. Dropping it
/// ends the shell without letting it act: the owner has cleaned up itself.
struct Watchdog(Child);

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The data directory `initdb` made, once per test process; each private cluster starts from
/// a copy. A static is never dropped: its watchdog removes it when the process ends.
fn template(bin: &Path, run_as: Option<(u32, u32)>) -> PathBuf {
    struct Template {
        dir: tempfile::TempDir,
        _watchdog: Watchdog,
    }
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    let template = TEMPLATE.get_or_init(|| {
        let dir = cluster_dir(run_as);
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["--auth=trust", "-U", USER, "--encoding=UTF8", "--no-locale"])
            // 1 MB WAL segments instead of 16: a third less to copy per cluster.
            .args(["--wal-segsize=1", "--no-sync"]);
        run_to_end(
            as_server_user(&mut initdb, dir.path(), run_as),
            "initdb",
            "",
        );
        // The test's database is part of the template (single-user mode: no server, no port).
        let mut single = Command::new(bin.join("postgres"));
        single
            .args(["--single", "-D"])
            .arg(dir.path().join("data"))
            .args(["-c", "log_min_messages=warning", "template1"]);
        let out = run_to_end(
            as_server_user(&mut single, dir.path(), run_as),
            "create the test database",
            &format!("CREATE DATABASE {USER};\n"),
        );
        if out.contains("ERROR") {
            panic!("create the test database failed:\n{out}");
        }
        Template {
            _watchdog: watchdog(None, dir.path()),
            dir,
        }
    });
    template.dir.path().join("data")
}

/// A new temporary directory for a cluster (or the template), owned by the server's user.
fn cluster_dir(run_as: Option<(u32, u32)>) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("doelpoort-pg-")
        .tempdir_in(temp_base(run_as.is_some()))
        .expect("temporary directory for a PostgreSQL cluster");
    own(dir.path(), run_as);
    dir
}

fn own(path: &Path, run_as: Option<(u32, u32)>) {
    if let Some((uid, gid)) = run_as {
        chown(path, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {} to nobody: {e}", path.display()));
    }
}

/// Runs `cmd` to its end with `input` on its standard input; panics with its output when it
/// fails, else returns it (standard output, then standard error).
fn run_to_end(cmd: &mut Command, what: &str, input: &str) -> String {
    let out = run_with_input(cmd, input)
        .unwrap_or_else(|e| panic!("{what}: cannot run {:?}: {e}", cmd.get_program()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        panic!("{what} failed ({}):\n{text}", out.status);
    }
    text
}

/// Runs `cmd` with `input` on its standard input and collects its output.
fn run_with_input(cmd: &mut Command, input: &str) -> std::io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    // Written from another thread: the child may print before it has read everything.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output();
    let _ = writer.join();
    out
}

impl External {
    fn create(url: &str) -> External {
        let psql = find_psql().unwrap_or_else(|| {
            panic!(
                "{EXTERNAL_ENV} is set, but there is no psql: run tests/run or apt-get install \
                 postgresql-client"
            )
        });
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let database = format!(
            "doelpoort_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let (base, db, query) = split_url(url);
        let admin_url = format!("{base}/{}{query}", db.unwrap_or("postgres"));
        let url = format!("{base}/{database}{query}");
        run_psql(
            &psql,
            &admin_url,
            &format!("CREATE DATABASE {database}"),
            false,
        )
        .unwrap_or_else(|e| panic!("CREATE DATABASE {database} in {EXTERNAL_ENV}: {e}"));
        External {
            psql,
            admin_url,
            url,
            database,
        }
    }

    fn drop_database(&self) {
        let name = &self.database;
        let forced = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        if run_psql(&self.psql, &self.admin_url, &forced, false).is_err() {
            // Servers before 13 have no FORCE.
            let plain = format!("DROP DATABASE IF EXISTS {name}");
            if let Err(e) = run_psql(&self.psql, &self.admin_url, &plain, false) {
                eprintln!("could not drop test database {name}: {e}");
            }
        }
    }
}

/// (scheme and authority, database if the URL names one, `?query` or "").
fn split_url(url: &str) -> (&str, Option<&str>, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let (rest, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    match rest[after_scheme..].find('/') {
        Some(slash) => {
            let (base, path) = rest.split_at(after_scheme + slash);
            let db = &path[1..];
            (base, (!db.is_empty()).then_some(db), query)
        }
        None => (rest, None, query),
    }
}

/// (the server's bin directory, psql).
fn binaries() -> (PathBuf, PathBuf) {
    let bin = debian_bin_dirs()
        .into_iter()
        .chain(path_dirs())
        .find(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
        .unwrap_or_else(|| panic!("{MISSING}"));
    let psql = if bin.join("psql").is_file() {
        bin.join("psql")
    } else {
        find_psql().unwrap_or_else(|| panic!("{MISSING}"))
    };
    (bin, psql)
}

fn find_psql() -> Option<PathBuf> {
    debian_bin_dirs()
        .into_iter()
        .chain(path_dirs())
        .map(|d| d.join("psql"))
        .find(|p| p.is_file())
}

/// `/usr/lib/postgresql/*/bin`, newest version first.
fn debian_bin_dirs() -> Vec<PathBuf> {
    let version = |p: &PathBuf| -> Vec<u64> {
        let name = p
            .parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str());
        name.unwrap_or("")
            .split('.')
            .map(|n| n.parse().unwrap_or(0))
            .collect()
    };
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort_by_key(|p| std::cmp::Reverse(version(p)));
    dirs
}

fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

/// The uid and gid of `nobody`, who runs the server when the tests run as root.
fn nobody() -> (u32, u32) {
    let pw = unsafe { libc::getpwnam(c"nobody".as_ptr()) };
    if pw.is_null() {
        panic!(
            "the tests run as root and initdb refuses root, but there is no user `nobody` to run \
             PostgreSQL as: add one or run the tests as another user"
        );
    }
    unsafe { ((*pw).pw_uid, (*pw).pw_gid) }
}

/// Where the cluster's directory goes: the usual temporary directory, unless `nobody` could
/// not reach it (when running as root) or the socket path would be too long; then /tmp.
fn temp_base(for_nobody: bool) -> PathBuf {
    let base = std::env::temp_dir();
    let reachable = base
        .ancestors()
        .all(|a| std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 != 0));
    if base.as_os_str().len() > 60 || (for_nobody && !reachable) {
        PathBuf::from("/tmp")
    } else {
        base
    }
}

/// A port that was free a moment ago (the server start retries when it was taken since).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// `initdb` and `postgres` run in the cluster's directory, in the C locale, as `nobody` when
/// the tests run as root.
fn as_server_user<'a>(
    cmd: &'a mut Command,
    dir: &Path,
    run_as: Option<(u32, u32)>,
) -> &'a mut Command {
    cmd.current_dir(dir).env("LC_ALL", "C").env_remove("PGDATA");
    if let Some((uid, gid)) = run_as {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// Runs `sql` through psql on `url`. For a private cluster (`clean_env`) the tester's PG*
/// variables (PGSSLMODE, PGOPTIONS, ...) are left out; a tester's server may need them.
fn run_psql(psql: &Path, url: &str, sql: &str, clean_env: bool) -> Result<String, String> {
    let mut cmd = Command::new(psql);
    if clean_env {
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                cmd.env_remove(key);
            }
        }
    }
    cmd.args([
        "-X",
        "-q",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-f",
        "-",
        "-d",
    ])
    .arg(url)
    .env("PGCONNECT_TIMEOUT", "10")
    .env("PGCLIENTENCODING", "UTF8");
    let out =
        run_with_input(&mut cmd, sql).map_err(|e| format!("cannot run {}: {e}", psql.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
