//! `doelpoort policy`: the privacy officers' tools (check, explain, test, matrix).

use super::{MatrixFormat, PolicyCommand, PolicyDirs};
use std::process::ExitCode;

fn policy_day(dirs: &PolicyDirs) -> Result<time::Date, String> {
    match &dirs.today {
        None => Ok(crate::policy::today()),
        Some(d) => time::Date::parse(d, time::macros::format_description!("[year]-[month]-[day]"))
            .map_err(|_| format!("--today {d}: expected YYYY-MM-DD")),
    }
}

/// Loads a policy set for a tool, printing diagnostics; None when it has errors.
fn load_policies(dirs: &PolicyDirs, print_warnings: bool) -> Option<crate::policy::PolicySet> {
    let schemas = dirs
        .schemas
        .clone()
        .unwrap_or_else(|| dirs.dir.join("..").join("schemas"));
    let today = match policy_day(dirs) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("doelpoort: {e}");
            return None;
        }
    };
    let (set, diagnostics) = crate::policy::compile::load(&dirs.dir, &schemas, today);
    for d in &diagnostics {
        if d.is_error() || print_warnings {
            println!("{d}");
        }
    }
    set
}

pub(super) fn policy(command: PolicyCommand) -> ExitCode {
    match command {
        PolicyCommand::Check { dirs } => match load_policies(&dirs, true) {
            Some(set) => {
                println!(
                    "{}: ok — policy version {}, {} purposes, {} operations, {} grants",
                    dirs.dir.display(),
                    set.version,
                    set.purposes.len(),
                    set.operations.len(),
                    set.grants.len()
                );
                ExitCode::SUCCESS
            }
            None => {
                println!("{}: policy set has errors", dirs.dir.display());
                ExitCode::from(1)
            }
        },
        PolicyCommand::Explain {
            dirs,
            consumer,
            request,
            headers,
            body,
            response,
        } => {
            let Some(set) = load_policies(&dirs, false) else {
                return ExitCode::from(1);
            };
            let Some((method, path)) = request.split_once(' ') else {
                eprintln!("doelpoort: --request is written as \"METHOD /partner/path\"");
                return ExitCode::from(2);
            };
            let Ok(method) = http::Method::from_bytes(method.as_bytes()) else {
                eprintln!("doelpoort: unknown method {method}");
                return ExitCode::from(2);
            };
            let mut parsed = Vec::new();
            for h in headers {
                let Some((name, value)) = h.split_once(':') else {
                    eprintln!("doelpoort: -H takes \"Name: value\"");
                    return ExitCode::from(2);
                };
                parsed.push((name.trim().to_string(), value.trim().to_string()));
            }
            let body = match body.map(std::fs::read).transpose() {
                Ok(b) => b.unwrap_or_default(),
                Err(e) => {
                    eprintln!("doelpoort: cannot read the body file: {e}");
                    return ExitCode::from(2);
                }
            };
            let today = policy_day(&dirs).unwrap_or_else(|_| crate::policy::today());
            let request = crate::policy::tools::SimulatedRequest {
                consumer,
                method,
                path: path.trim().to_string(),
                headers: parsed,
                body,
                approvals: Vec::new(),
                today,
            };
            let sample = match response.map(std::fs::read).transpose() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("doelpoort: cannot read the response file: {e}");
                    return ExitCode::from(2);
                }
            };
            super::emit(&crate::policy::tools::explain(
                &set,
                &request,
                sample.as_deref(),
            ));
            ExitCode::SUCCESS
        }
        PolicyCommand::Test { dirs, coverage } => {
            let Some(set) = load_policies(&dirs, false) else {
                return ExitCode::from(1);
            };
            let files = crate::policy::cases::test_files(&dirs.dir);
            let today = policy_day(&dirs).unwrap_or_else(|_| crate::policy::today());
            let report = crate::policy::cases::run_tests(&set, &files, today);
            for line in &report.lines {
                println!("{line}");
            }
            for e in &report.errors {
                println!("{e}");
            }
            if report.passed + report.failed == 0 {
                println!(
                    "no test cases found in {}/tests: a policy without tests is not tested",
                    dirs.dir.display()
                );
            }
            println!("{} passed, {} failed", report.passed, report.failed);
            let uncovered = if coverage {
                report.uncovered()
            } else {
                Vec::new()
            };
            if coverage {
                if uncovered.is_empty() {
                    println!(
                        "coverage: every grant has an allowed and a refused case ({} grants)",
                        report.coverage.len()
                    );
                } else {
                    println!("coverage: grants without an allowed and a refused case:");
                    for line in &uncovered {
                        println!("  {line}");
                    }
                }
            }
            if report.success() && uncovered.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        PolicyCommand::Matrix { dirs, format } => {
            let Some(set) = load_policies(&dirs, false) else {
                return ExitCode::from(1);
            };
            match format {
                MatrixFormat::Markdown => super::emit(&crate::policy::tools::matrix_markdown(&set)),
                MatrixFormat::Html => super::emit(&crate::policy::tools::matrix_html(&set)),
            }
            ExitCode::SUCCESS
        }
    }
}
