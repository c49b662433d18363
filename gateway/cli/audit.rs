//! `doelpoort audit`: verify the hash chain of an audit log, and answer a citizen's request
//! (GDPR art. 15) from it.

use super::AuditCommand;
use anyhow::Result;
use std::process::ExitCode;

pub(super) fn audit(command: AuditCommand) -> ExitCode {
    use crate::audit::{query, verify};
    match command {
        AuditCommand::Verify {
            store: Some(url), ..
        } => verify_store(&url),
        AuditCommand::Join {
            consumer_side,
            provider_side,
            transaction_id,
            format,
        } => match crate::audit::join::join(
            &consumer_side,
            &provider_side,
            transaction_id.as_deref(),
        ) {
            Ok(joined) => {
                match format {
                    super::JoinFormat::Json => {
                        print!("{}", crate::audit::join::json_lines(&joined))
                    }
                    super::JoinFormat::Table => print!("{}", crate::audit::join::table(&joined)),
                }
                // Exchanges whose records do not fit together are worth an auditor's look.
                if joined.iter().any(|j| !j.findings.is_empty()) {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("doelpoort audit join: {e:#}");
                ExitCode::from(2)
            }
        },
        AuditCommand::Import { dir, store } => match crate::audit::central::import(&dir, &store) {
            Ok(imported) => {
                println!(
                    "imported {} records of instance '{}' ({} new); its chain in the store verifies",
                    imported.records, imported.instance, imported.new
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("doelpoort audit import: {e:#}");
                ExitCode::from(2)
            }
        },
        AuditCommand::Verify { dir, .. } => {
            match verify::verify(dir.as_deref().unwrap_or(std::path::Path::new("."))) {
                Ok(report) => {
                    for w in &report.warnings {
                        eprintln!("warning: {w}");
                    }
                    match &report.last {
                        Some(last) => println!(
                            "audit log OK: {} records in {} segment(s), seq {}–{}, last hash {}",
                            report.records,
                            report.segments,
                            report.first_seq.unwrap_or(1),
                            last.seq,
                            last.hash
                        ),
                        None => println!("audit log OK: no records yet"),
                    }
                    ExitCode::SUCCESS
                }
                Err(broken) => {
                    eprintln!("audit log BROKEN: {broken}");
                    ExitCode::from(1)
                }
            }
        }
        AuditCommand::Query {
            dir,
            store,
            subject,
            case_id,
            consumer,
            from,
            to,
            format,
            key_file,
            household_key,
            register,
        } => {
            let run = || -> Result<query::Answer> {
                anyhow::ensure!(
                    subject.is_some() || case_id.is_some() || consumer.is_some(),
                    "say whom to look for: --subject BSN, --case ID or --consumer ID"
                );
                let mut filter = query::Filter {
                    case_id,
                    consumer,
                    from: from
                        .as_deref()
                        .map(|f| query::bound(f, false))
                        .transpose()?,
                    to: to.as_deref().map(|t| query::bound(t, true)).transpose()?,
                    ..Default::default()
                };
                if let Some(bsn) = &subject {
                    // The BSN itself is never echoed, not even in an error.
                    let bsn = crate::context::Bsn::parse(bsn)
                        .map_err(|why| anyhow::anyhow!("--subject: {why}"))?;
                    let key = match (&store, &dir) {
                        (Some(url), _) => {
                            crate::audit::central::key_for_query(url, key_file.as_deref())?
                        }
                        (None, Some(dir)) => {
                            crate::audit::subject::key_for_query(dir, key_file.as_deref())?
                        }
                        (None, None) => anyhow::bail!("name the audit directory or --store"),
                    };
                    filter.subject_id = query::Filter::subject(&key, &bsn).subject_id;
                }
                match (&store, &dir) {
                    (Some(url), _) => crate::audit::central::query(url, &filter),
                    (None, Some(dir)) => query::query(dir, &filter),
                    (None, None) => anyhow::bail!("name the audit directory or --store"),
                }
            };
            match run() {
                Ok(answer) => {
                    for w in &answer.warnings {
                        eprintln!("warning: {w}");
                    }
                    let mut report = query::render(&answer.rows, format);
                    // The human report also names the person's cases and their agreed scope.
                    if let (Some(bsn), query::Format::Table) = (&subject, format) {
                        report.push_str(&case_section(
                            bsn,
                            register.as_deref().or(store.as_deref()),
                            dir.as_deref(),
                            household_key.as_deref(),
                        ));
                    }
                    super::emit(&report);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("doelpoort audit query: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// `audit verify --store`: every instance's chain in the central store; exit 1 if any is
/// broken (each broken one is named).
fn verify_store(url: &str) -> ExitCode {
    match crate::audit::central::verify(url) {
        Ok(reports) => {
            if reports.is_empty() {
                println!("audit store OK: no records yet");
            }
            let mut broken_any = false;
            for report in &reports {
                match report {
                    Ok(report) => {
                        for w in &report.warnings {
                            eprintln!("warning: {w}");
                        }
                        match &report.last {
                            Some(last) => println!(
                                "instance {}: OK, {} records, seq 1–{}, last hash {}",
                                report.instance, report.records, last.seq, last.hash
                            ),
                            None => println!("instance {}: OK, no records yet", report.instance),
                        }
                    }
                    Err(broken) => {
                        broken_any = true;
                        eprintln!("audit store BROKEN: {broken}");
                    }
                }
            }
            if broken_any {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("doelpoort audit verify: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The cases section of a person's art. 15 report: from the central store (`--store`), or the
/// SQLite store next to the audit directory; the household key as given, or next to the
/// audit directory. Empty when there is no register to ask.
fn case_section(
    bsn: &str,
    store: Option<&str>,
    dir: Option<&std::path::Path>,
    household_key: Option<&std::path::Path>,
) -> String {
    let Ok(bsn) = crate::context::Bsn::parse(bsn) else {
        return String::new();
    };
    let beside = |name: &str| dir.and_then(|d| d.parent()).map(|p| p.join(name));
    let store = match (store, beside("store.sqlite")) {
        (Some(url), _) => url.to_string(),
        (None, Some(path)) if path.exists() => format!("sqlite:{}", path.display()),
        _ => {
            return "\nThe case register was not asked: name its store with --register to list this person's cases.\n"
                .into()
        }
    };
    let Some(key) = household_key
        .map(std::path::Path::to_path_buf)
        .or_else(|| beside("household.key").filter(|p| p.exists()))
    else {
        return "\nThe case register was not asked: give --household-key to name this person's cases.\n"
            .into();
    };
    match super::case::cases_for_report(&store, &key, &bsn) {
        Ok(section) => section,
        Err(e) => format!("\nThe case register could not be asked: {e:#}\n"),
    }
}
