//! The `doelpoort` command line: one subcommand per task a user has.
//!
//! Exit codes: 0 success, 1 the input was checked and has errors, 2 usage errors (clap's
//! default) or the command could not run at all.

mod audit;
mod case;
mod check;
mod policy;

use crate::config::Config;
use crate::demo::{self, DemoOptions};
use crate::pki::{self, ExamplePki};
use crate::server;
use anyhow::{Context, Result};
use audit::audit;
use case::case;
use check::check;
use clap::{Parser, Subcommand, ValueEnum};
use policy::policy;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "doelpoort",
    version,
    about = "Purpose-bound mTLS gateway between municipalities and chain partners"
)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Log filter (tracing syntax), e.g. `info` or `doelpoort=debug`. DOELPOORT_LOG overrides.
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Start the gateway with the example PKI and built-in mock partners, all on loopback.
    Demo {
        /// Data listener.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// Admin listener (/healthz, /readyz, /metrics).
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin_listen: SocketAddr,
        /// The privacy officers' console (mTLS with the example officer's certificate).
        #[arg(long, default_value = "127.0.0.1:9443")]
        console_listen: SocketAddr,
        /// Where the demo keeps its audit log (DIR/audit).
        #[arg(long, default_value = "./demo-data")]
        data_dir: PathBuf,
        /// Repository root holding certs-example/, policies/ and schemas/.
        #[arg(long, default_value = ".")]
        root: PathBuf,
        /// Shared state (spent approvals): postgres://… to run demo gateways as replicas of
        /// one deployment [default: sqlite in DATA_DIR].
        #[arg(long)]
        store: Option<String>,
        /// This gateway's instance id; replicas need different ones.
        #[arg(long, default_value = "demo")]
        instance: String,
        /// Write the audit log to the store's PostgreSQL instead of DATA_DIR/audit.
        #[arg(long, requires = "store")]
        audit_to_store: bool,
    },
    /// Run the gateway.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate a configuration and everything it refers to; warn on certificates expiring
    /// within 30 days.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Policy tools for privacy officers.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Audit log tools: verify the hash chain, answer a citizen's request (GDPR art. 15).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The case register (SPEC §8), read from the store the gateways share.
    Case {
        #[command(subcommand)]
        command: CaseCommand,
    },
    /// Sign a caller token with the demo identity provider (example keys in certs-example/),
    /// to try tokens and four-eyes approvals against `doelpoort demo`. Prints the JWT.
    Token(TokenArgs),
    /// Certificate tools.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
}

#[derive(clap::Args)]
pub struct PolicyDirs {
    /// The policy directory.
    pub dir: PathBuf,
    /// The schema directory [default: DIR/../schemas].
    #[arg(long)]
    pub schemas: Option<PathBuf>,
    /// Decide as on this day (YYYY-MM-DD) [default: today].
    #[arg(long)]
    pub today: Option<String>,
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Check policies against the schemas; every problem as file:line:col: message.
    Check {
        #[command(flatten)]
        dirs: PolicyDirs,
    },
    /// Dry run: the decision for one request, the deciding grant, and the fields it releases.
    Explain {
        #[command(flatten)]
        dirs: PolicyDirs,
        /// The calling consumer id.
        #[arg(long)]
        consumer: String,
        /// The request, e.g. "GET /uwv/v1/personen/999990019/inkomen".
        #[arg(long)]
        request: String,
        /// A request header, "Name: value" (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// A file with the JSON request body.
        #[arg(long)]
        body: Option<PathBuf>,
        /// A file with a sample partner response (JSON): show what would be released from it.
        #[arg(long)]
        response: Option<PathBuf>,
    },
    /// Run the YAML test cases in DIR/tests; exit 1 on any failure (or when there are none).
    Test {
        #[command(flatten)]
        dirs: PolicyDirs,
        /// Also list grants without at least one allowed and one refused case (exit 1 if any).
        #[arg(long)]
        coverage: bool,
    },
    /// Who may see what: consumers × operations × purposes × fields, for the DPIA.
    Matrix {
        #[command(flatten)]
        dirs: PolicyDirs,
        #[arg(long, value_enum, default_value_t = MatrixFormat::Markdown)]
        format: MatrixFormat,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum MatrixFormat {
    Markdown,
    Html,
}

#[derive(clap::Args)]
pub struct TokenArgs {
    /// The consumer whose example certificate the token is bound to.
    #[arg(long)]
    consumer: String,
    /// The employee acting (`sub`).
    #[arg(long)]
    actor: String,
    #[arg(long)]
    purpose: Option<String>,
    #[arg(long = "case")]
    case_id: Option<String>,
    /// The person's BSN (`data_subject`).
    #[arg(long)]
    subject: Option<String>,
    /// A colleague who approved the exchange (four eyes).
    #[arg(long)]
    approved_by: Option<String>,
    #[arg(long, default_value = "teamleider")]
    approver_role: String,
    /// The partner ids the client agreed to involve (comma-separated).
    #[arg(long, value_delimiter = ',')]
    case_partners: Vec<String>,
    /// With --approved-by: the operation approved, as `<partner>/<operation>`.
    #[arg(long)]
    operation: Option<String>,
    /// With --approved-by: the request body approved (JSON, exactly as it will be sent;
    /// the token names its canonical SHA-256).
    #[arg(long)]
    body: Option<String>,
    /// Lifetime (a token with an approval may live at most 5 minutes).
    #[arg(long, default_value = "5m")]
    valid_for: humantime::Duration,
    /// Repository root holding certs-example/.
    #[arg(long, default_value = ".")]
    root: PathBuf,
}

impl TokenArgs {
    fn sign(self) -> Result<String> {
        demo::tokens::demo_token(
            &self.root.join("certs-example"),
            &demo::tokens::TokenRequest {
                consumer: self.consumer,
                actor: self.actor,
                purpose: self.purpose,
                case_id: self.case_id,
                subject: self.subject,
                approved_by: self.approved_by,
                approver_role: Some(self.approver_role),
                case_partners: self.case_partners,
                approves_operation: self.operation,
                approves_body: self
                    .body
                    .as_deref()
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("--body is not JSON: {e}"))?,
                valid_for: self.valid_for.into(),
            },
        )
    }
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain; exit 1 naming the first broken record (file:line, or instance
    /// and seq in the store).
    Verify {
        /// The audit directory.
        #[arg(required_unless_present = "store", conflicts_with = "store")]
        dir: Option<PathBuf>,
        /// Verify every instance's chain in the central store instead (postgres://…).
        #[arg(long)]
        store: Option<String>,
    },
    /// Every exchange about one person (or case, or consumer): when, which organisation, which
    /// purpose and legal basis, which fields were released.
    Query {
        /// The audit directory.
        #[arg(required_unless_present = "store", conflicts_with = "store")]
        dir: Option<PathBuf>,
        /// Answer from the central store instead (postgres://…), across every instance.
        #[arg(long)]
        store: Option<String>,
        /// The person's BSN (it is turned into the log's keyed HMAC, never stored).
        #[arg(long)]
        subject: Option<String>,
        /// Only this case id.
        #[arg(long = "case")]
        case_id: Option<String>,
        /// Only this consumer id.
        #[arg(long)]
        consumer: Option<String>,
        /// From this day (YYYY-MM-DD, UTC) or time (RFC 3339), inclusive.
        #[arg(long)]
        from: Option<String>,
        /// Up to this day (inclusive) or time.
        #[arg(long)]
        to: Option<String>,
        #[arg(long, value_enum, default_value_t = crate::audit::query::Format::Table)]
        format: crate::audit::query::Format,
        /// The subject key file [default: the one the directory's manifest.json (or the
        /// store) names].
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// The case register's household key, to name the person's cases in the report
        /// [default: household.key next to the audit directory].
        #[arg(long)]
        household_key: Option<PathBuf>,
        /// The store holding the case register (sqlite:PATH or postgres://…) [default: the
        /// --store given, or store.sqlite next to the audit directory].
        #[arg(long)]
        register: Option<String>,
    },
    /// One exchange from both ends (SPEC §10): the consumer side's log joined with a provider
    /// inway's on `Fsc-Transaction-Id`. Both chains are verified first.
    Join {
        /// The consumer side's (outway's) audit directory.
        consumer_side: PathBuf,
        /// The provider's inway's audit directory.
        provider_side: PathBuf,
        /// Only this exchange.
        #[arg(long)]
        transaction_id: Option<String>,
        /// `table` for people, `json` (one line per exchange) for tools.
        #[arg(long, value_enum, default_value_t = JoinFormat::Table)]
        format: JoinFormat,
    },
    /// Copy a replica's file log into the central store (idempotent; verified before and after).
    Import {
        /// The audit directory.
        dir: PathBuf,
        /// The central store (postgres://…).
        #[arg(long)]
        store: String,
    },
}

/// Output of `audit join`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JoinFormat {
    Table,
    Json,
}

#[derive(Subcommand)]
pub enum CaseCommand {
    /// Every case in the register (JSON), or the cases a person belongs to.
    List {
        /// The store: sqlite:PATH or postgres://…
        #[arg(long)]
        store: String,
        /// Only the cases whose household holds this BSN (it is turned into the register's
        /// keyed HMAC, never stored).
        #[arg(long)]
        subject: Option<String>,
        /// The household key file the gateways use (needed with --subject).
        #[arg(long)]
        household_key: Option<PathBuf>,
    },
    /// The cases with this id (JSON; each consumer has its own ids); households as counts.
    Show {
        #[arg(long)]
        store: String,
        case_id: String,
        /// Only the case of this consumer.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Close a case: every exchange for it is refused from then on (case-closed), and it is
    /// purged after the retention of its purposes.
    Close {
        #[arg(long)]
        store: String,
        case_id: String,
        /// The consumer whose case it is (needed when several have a case with this id).
        #[arg(long)]
        owner: Option<String>,
        /// The policy directory (for the purposes' retention).
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        #[arg(long, default_value = "schemas")]
        schemas: PathBuf,
    },
    /// Purge the closed cases whose retention has ended (the gateways do this every minute).
    Purge {
        #[arg(long)]
        store: String,
        /// Purge as if it were this day (YYYY-MM-DD, 00:00 UTC) instead of now.
        #[arg(long)]
        as_of: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum CertsCommand {
    /// (Re)generate a complete example PKI like certs-example/ (never for production).
    Generate {
        dir: PathBuf,
        /// Validity of the leaf certificates in days.
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
}

/// Writes a command's answer to standard output. A reader that stopped early (`| head`) is
/// not an error: the rest is dropped quietly instead of a panic on the broken pipe.
pub(crate) fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("doelpoort: cannot write the answer: {e}");
        }
    }
}

pub fn init_logging(format: LogFormat, level: &str) {
    let filter = std::env::var("DOELPOORT_LOG").unwrap_or_else(|_| level.to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

pub fn main(cli: Cli) -> ExitCode {
    init_logging(cli.log_format, &cli.log_level);
    let result = match cli.command {
        Command::Demo {
            listen,
            admin_listen,
            console_listen,
            data_dir,
            root,
            store,
            instance,
            audit_to_store,
        } => runtime().and_then(|rt| {
            let store = store
                .map(|s| crate::store::StoreLocation::parse(&s))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--store: {e}"))?;
            rt.block_on(run_demo(DemoOptions {
                root,
                listen,
                admin_listen,
                console_listen: Some(console_listen),
                data_dir,
                store,
                instance: Some(instance),
                audit_sink: if audit_to_store {
                    crate::config::AuditSink::Postgres
                } else {
                    crate::config::AuditSink::Files
                },
            }))
        }),
        Command::Run { config } => runtime().and_then(|rt| rt.block_on(run(&config))),
        Command::Check { config } => return check(&config),
        Command::Policy { command } => return policy(command),
        Command::Audit { command } => return audit(command),
        Command::Case { command } => return case(command),
        Command::Token(args) => args.sign().map(|token| println!("{token}")),
        Command::Certs {
            command: CertsCommand::Generate { dir, days },
        } => generate_certs(&dir, days),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("doelpoort: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn termination() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn run(path: &Path) -> Result<()> {
    let config = Config::load(path).map_err(|d| anyhow::anyhow!("invalid configuration:\n{d}"))?;
    let gateway = server::start(&config).await?;
    termination().await;
    tracing::info!("termination signal received");
    gateway.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn run_demo(options: DemoOptions) -> Result<()> {
    let demo = demo::start(&options).await?;
    let addr = demo.gateway.local_addr;
    println!("Doelpoort demo is running.");
    println!(
        "  data listener:  https://{addr} (mTLS; certificates in {}/certs-example)",
        options.root.display()
    );
    if let Some(admin) = demo.gateway.admin_addr {
        println!("  admin listener: http://{admin}  (/healthz /readyz /metrics)");
    }
    if let Some(console) = demo.gateway.console_addr {
        let officer = demo::catalog().officers[0].id.clone();
        let certs = options.root.join("certs-example");
        println!(
            "  console:        https://{console}/  (privacy officers; open it with the example officer's certificate:"
        );
        println!(
            "                  import {} into your browser, password {}, or:",
            certs
                .join("officers")
                .join(format!("{officer}.p12"))
                .display(),
            crate::pki::OFFICER_P12_PASSWORD
        );
        println!(
            "                  curl --cacert {ca} --cert {crt} --key {key} https://{console}/ )",
            ca = certs.join("ca.crt").display(),
            crt = demo::officer_certificate(&certs, &officer).display(),
            key = certs
                .join("officers")
                .join(format!("{officer}.key"))
                .display(),
        );
    }
    for p in &demo.partners {
        println!("  mock partner:   https://{}", p.addr);
    }
    for (partner, inway) in &demo.inways {
        let fsc = if demo::inway::FSC_PARTNERS.contains(&partner.as_str()) {
            "; FSC"
        } else {
            ""
        };
        println!(
            "  inway:          https://{} in front of {partner} (its own release profile: policies/providers/{partner}/{fsc})",
            inway.local_addr
        );
    }
    println!(
        "  audit log dir:  {}",
        options.data_dir.join("audit").display()
    );
    println!(
        "  store:          {} (instance {})",
        demo.config.store.location.describe(),
        demo.config.instance
    );
    println!();
    println!("Try these calls (from {}):", options.root.display());
    println!();
    print!(
        "{}",
        demo::format_example_calls(&demo::example_calls(&options.root, addr))
    );
    let root = options.root.display();
    println!(
        "The first call's answer as UWV sent it, and as the district team receives it (minimised):"
    );
    println!();
    println!("cat {root}/schemas/examples/uwv-inkomen.999990019.json");
    println!(
        "doelpoort policy explain {root}/policies --consumer wijkteam-rotterdam --request 'GET /uwv/v1/personen/999990019/inkomen' -H 'Doelbinding-Purpose: wams-onderzoek' -H 'Doelbinding-Case-Id: casus-2026-0001' -H 'Doelbinding-Data-Subject: bsn=999990019' --response {root}/schemas/examples/uwv-inkomen.999990019.json"
    );
    println!();
    // Where the log is: the data directory, or the store's PostgreSQL (--audit-to-store).
    let audit = match (&options.audit_sink, &demo.config.store.location) {
        (crate::config::AuditSink::Postgres, crate::store::StoreLocation::Postgres(url)) => {
            // Without a password: give it in PGPASSWORD when you run the commands.
            format!("--store '{}'", crate::config::store::without_password(url))
        }
        _ => options.data_dir.join("audit").display().to_string(),
    };
    println!("Every call above, allowed or refused, leaves one record in the audit log. Then:");
    println!();
    println!("# check the hash chain of the audit log");
    println!("doelpoort audit verify {audit}");
    println!();
    println!("# youth care and UWV answer through their own inways, which minimise at the source:");
    println!("# care content and health data never leave the provider. Each exchange from both");
    println!("# ends, joined on the Fsc-Transaction-Id (e.g. the youth-care call above that");
    println!("# answered 200):");
    for partner in demo::inway::INWAY_PARTNERS {
        println!(
            "doelpoort audit join {} {}",
            options.data_dir.join("audit").display(),
            options
                .data_dir
                .join(format!("inway-{partner}"))
                .join("audit")
                .display()
        );
    }
    println!("# what happened with the data of test person 999990019 (GDPR art. 15)");
    println!("doelpoort audit query {audit} --subject 999990019");
    println!();
    println!("Press Ctrl-C to stop.");
    termination().await;
    println!("stopping…");
    demo.gateway.shutdown().await;
    Ok(())
}

fn generate_certs(dir: &Path, days: u32) -> Result<()> {
    let cat = demo::catalog();
    let earliest = pki::generate_example(
        dir,
        &ExamplePki {
            gateway: &cat.gateway,
            consumers: &cat.consumers,
            partners: &cat.partners,
            officers: &cat.officers,
            days,
        },
    )?;
    let expires = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(earliest.max(0) as u64),
    );
    println!(
        "wrote an example PKI to {} (leaf certificates valid until {expires})",
        dir.display()
    );
    Ok(())
}
