//! `doelpoort case`: the case register for operators, read from (and, for `close` and
//! `purge`, written to) the store the gateways share. Running gateways see a change within a
//! quarter of a second.
//!
//! - `case list [--subject BSN]`: every case (or a person's cases, for an art. 15 request);
//! - `case show ID`: one case, its household as a count;
//! - `case close ID`: closes a case (an operator may close any case);
//! - `case purge [--as-of DATE]`: purges the closed cases whose retention ended before DATE
//!   (default: now), as the gateways do every minute.

use super::CaseCommand;
use crate::cases::{CaseRegister, HouseholdKey};
use crate::store::cases::{CaseStatus, Changed};
use crate::store::{Store, StoreLocation, StoreSettings};
use anyhow::{Context as _, Result};
use std::path::Path;
use std::process::ExitCode;

pub(super) fn case(command: CaseCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("doelpoort case: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("doelpoort case: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn open(store: &str) -> Result<Store> {
    let location = StoreLocation::parse(store).map_err(|e| anyhow::anyhow!("--store: {e}"))?;
    Store::open(
        &StoreSettings::new(location),
        "cli",
        crate::metrics::Metrics::new().store(),
    )
    .await
}

async fn run(command: CaseCommand) -> Result<ExitCode> {
    match command {
        CaseCommand::List {
            store,
            subject,
            household_key,
        } => {
            let store = open(&store).await?;
            let cases = match subject {
                None => store.load_cases(-1).await?,
                Some(bsn) => {
                    // The BSN itself is never echoed, not even in an error.
                    let bsn = crate::context::Bsn::parse(&bsn)
                        .map_err(|why| anyhow::anyhow!("--subject: {why}"))?;
                    let key = household_key.context(
                        "--subject needs --household-key: the register knows people only by their keyed HMAC",
                    )?;
                    let register =
                        CaseRegister::open(store, HouseholdKey::load_or_create(&key)?).await?;
                    register
                        .cases_of(&bsn)
                        .iter()
                        .map(|c| c.as_ref().clone())
                        .collect()
                }
            };
            let list: Vec<serde_json::Value> = cases
                .iter()
                .filter(|c| c.status != CaseStatus::Purged)
                .map(crate::cases::api::view)
                .collect();
            super::emit(&(serde_json::to_string_pretty(&list)? + "\n"));
            Ok(ExitCode::SUCCESS)
        }
        CaseCommand::Show {
            store,
            case_id,
            owner,
        } => {
            let store = open(&store).await?;
            let cases = store.load_cases(-1).await?;
            let found: Vec<serde_json::Value> = cases
                .iter()
                .filter(|c| c.id == case_id && c.status != CaseStatus::Purged)
                .filter(|c| owner.as_deref().is_none_or(|o| c.owner == o))
                .map(crate::cases::api::view)
                .collect();
            if found.is_empty() {
                eprintln!("no case with that id in the register");
                return Ok(ExitCode::from(1));
            }
            // Each consumer has its own case ids: the same id may be several cases.
            super::emit(&(serde_json::to_string_pretty(&found)? + "\n"));
            Ok(ExitCode::SUCCESS)
        }
        CaseCommand::Close {
            store,
            case_id,
            owner,
            policies,
            schemas,
        } => {
            let set = load_policies(&policies, &schemas)?;
            let store = open(&store).await?;
            let owners: Vec<String> = store
                .load_cases(-1)
                .await?
                .into_iter()
                .filter(|c| c.id == case_id && c.status != CaseStatus::Purged)
                .map(|c| c.owner)
                .filter(|o| owner.as_deref().is_none_or(|wanted| o == wanted))
                .collect();
            let owner = match owners.as_slice() {
                [one] => one.clone(),
                [] => {
                    eprintln!("no case with that id in the register");
                    return Ok(ExitCode::from(1));
                }
                _ => {
                    eprintln!(
                        "{} consumers have a case with that id: say whose with --owner",
                        owners.len()
                    );
                    return Ok(ExitCode::from(1));
                }
            };
            let now = crate::clock::unix_now();
            let key = crate::store::cases::case_key(&owner, &case_id);
            let changed = store
                .change_case("case_close", &key, now, |current, now| {
                    crate::cases::api::close_rule(current, now, "", &set)
                })
                .await?;
            match changed {
                Changed::Committed(_) => {
                    tracing::info!("case closed by an operator");
                    println!("case closed; it is purged after the retention of its purposes");
                    Ok(ExitCode::SUCCESS)
                }
                Changed::Refused(problem) => {
                    eprintln!("{}", problem.detail);
                    Ok(ExitCode::from(1))
                }
            }
        }
        CaseCommand::Purge { store, as_of } => {
            let now = match as_of {
                None => crate::clock::unix_now(),
                Some(day) => crate::policy::compile::parse_date(&day)
                    .context("--as-of: expected a date written as YYYY-MM-DD")?
                    .midnight()
                    .assume_utc()
                    .unix_timestamp(),
            };
            let store = open(&store).await?;
            let purged = crate::cases::purge_due(&store, now).await?;
            println!("{purged} closed case(s) purged after their retention");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load_policies(dir: &Path, schemas: &Path) -> Result<crate::policy::PolicySet> {
    let (set, diagnostics) = crate::policy::compile::load(dir, schemas, crate::policy::today());
    set.ok_or_else(|| {
        let errors: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        anyhow::anyhow!(
            "the policy set does not check, so the retention of the case's purposes is unknown:\n{}",
            errors.join("\n")
        )
    })
}

/// The art. 15 report's case section: the cases a person belongs to, with their agreed
/// scope, from the register in `store` (`None` when there is no register there to ask).
pub(super) fn cases_for_report(
    store: &str,
    household_key: &Path,
    bsn: &crate::context::Bsn,
) -> Result<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = open(store).await?;
        let register =
            CaseRegister::open(store, HouseholdKey::load_or_create(household_key)?).await?;
        let cases = register.cases_of(bsn);
        let mut out = String::from("\nCases in the case register this person belongs to:\n");
        if cases.is_empty() {
            out.push_str("  (none)\n");
        }
        for case in cases {
            let overrides: Vec<String> = case
                .overrides
                .iter()
                .map(|o| format!("{} (override: {})", o.partner, o.reason))
                .collect();
            let agreed: Vec<&str> = case.partners.iter().map(|(p, _)| p.as_str()).collect();
            out.push_str(&format!(
                "  {} ({}), owner {}: purposes {}; agreed partners {}; objections {}{}\n",
                case.id,
                case.status.as_str(),
                case.owner,
                case.purposes.join(", "),
                if agreed.is_empty() {
                    "none".to_string()
                } else {
                    agreed.join(", ")
                },
                if case.objections.is_empty() {
                    "none".to_string()
                } else {
                    case.objections.join(", ")
                },
                if overrides.is_empty() {
                    String::new()
                } else {
                    format!("; {}", overrides.join(", "))
                },
            ));
        }
        Ok(out)
    })
}
