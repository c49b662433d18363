//! `doelpoort check`: validate a configuration and everything it refers to, as the gateway
//! would at start, and warn on certificates that expire soon.

use crate::config::Config;
use crate::diagnostic::Diagnostic;
use crate::tls;
use std::path::Path;
use std::process::ExitCode;

/// Consumers and partners are configured by the operator (identity, connection) and named by
/// the privacy officer (register, operations); the ids must agree.
fn check_parties(
    config: &Config,
    policies: &crate::policy::PolicySet,
    source: &Path,
    out: &mut Vec<Diagnostic>,
) {
    for consumer in &config.consumers {
        if !policies.consumers.contains_key(consumer.id.as_str()) {
            out.push(Diagnostic::file_warning(source, format!(
                    "consumer '{}' is configured but not in the policies' consumer register: it can call nothing",
                    consumer.id
                ),
            ));
        }
    }
    for partner in policies.partners.keys() {
        if config.partner(partner).is_none() {
            out.push(Diagnostic::file_warning(source, format!("the policies describe partner '{partner}', but no connection to it is configured: its operations answer unknown-route"),
            ));
        }
    }
    for partner in &config.partners {
        if !policies.partners.contains_key(partner.id.as_str()) {
            out.push(Diagnostic::file_warning(source, format!(
                    "partner '{}' is configured but the policies describe no operations for it: nothing is forwarded to it",
                    partner.id
                ),
            ));
        }
    }
}

/// At an inway: a grant of the provider's release profile that leaves out a field its
/// response schema requires makes the answer invalid against that schema — and an outway that
/// checks answers against the same schema refuses them whole (`minimisation-failed`). Either
/// the consumers' side's schema marks the field optional, or the profile releases it.
fn check_release_profile(policies: &crate::policy::PolicySet, out: &mut Vec<Diagnostic>) {
    use crate::policy::schema::required_paths;
    for grant in &policies.grants {
        let schema = policies
            .operations
            .get(&grant.operation)
            .and_then(|op| op.response_schema.as_deref())
            .and_then(|name| policies.schemas.get(name));
        let Some(schema) = schema else {
            continue;
        };
        // A field is present when a released path lies within it or it within a released one.
        let present = |path: &crate::policy::fieldpath::FieldPath| {
            path.0.is_empty()
                || grant
                    .fields
                    .iter()
                    .any(|f| path.is_within(&f.path) || f.path.is_within(path))
        };
        for required in required_paths(schema) {
            let parent =
                crate::policy::fieldpath::FieldPath(required.0[..required.0.len() - 1].to_vec());
            if present(&parent) && !present(&required) {
                out.push(Diagnostic::warning(
                    &grant.source.file,
                    grant.source.line,
                    1,
                    format!(
                        "grant '{}' withholds '{required}', which the response schema requires: an outway that checks the answer against the same schema refuses it whole (minimisation-failed); release it, or mark it optional in the schema the consumers' side uses",
                        grant.id
                    ),
                ));
            }
        }
    }
}

/// Days before expiry at which `check` starts to warn.
const EXPIRY_WARNING_DAYS: i64 = 30;

pub(super) fn check(path: &Path) -> ExitCode {
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    match Config::load(path) {
        Err(errors) => diagnostics.extend(errors.0),
        Ok(config) => {
            if let crate::store::StoreLocation::Postgres(url) = &config.store.location {
                if crate::config::store::carries_password(url) {
                    diagnostics.push(Diagnostic::file_warning(
                        path,
                        "the store URL carries a password: anyone who reads the configuration has it; use PGPASSWORD or a passfile (docs/deployment.md)",
                    ));
                }
            }
            check_material(&config, path, &mut diagnostics)
        }
    }
    for d in &diagnostics {
        println!("{d}");
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    if errors > 0 {
        println!(
            "{}: {errors} error(s), {warnings} warning(s)",
            path.display()
        );
        ExitCode::from(1)
    } else {
        println!("{}: ok ({warnings} warning(s))", path.display());
        ExitCode::SUCCESS
    }
}

/// Loads every certificate, key, policy and schema the configuration names, as the gateway
/// would at start, and checks that configuration and policies name the same parties.
fn check_material(config: &Config, source: &Path, out: &mut Vec<Diagnostic>) {
    let (policies, diagnostics) =
        crate::policy::compile::load(&config.policies, &config.schemas, crate::policy::today());
    out.extend(diagnostics);
    if let Some(policies) = policies {
        check_parties(config, &policies, source, out);
        if config.role == crate::config::Role::Inway {
            check_release_profile(&policies, out);
        }
    }
    if let Err(e) = tls::server_config(config) {
        out.push(Diagnostic::file_error(
            source,
            format!("listener TLS: {e:#}"),
        ));
    }
    if let Err(e) = tls::admin_server_config(config) {
        out.push(Diagnostic::file_error(
            source,
            format!("admin listener TLS: {e:#}"),
        ));
    }
    for partner in &config.partners {
        if let Err(e) = tls::partner_client_config(partner) {
            out.push(Diagnostic::file_error(
                source,
                format!("partner '{}' TLS: {e:#}", partner.id),
            ));
        }
    }
    let now = crate::clock::unix_now();
    let mut files: Vec<&Path> = config
        .certificate_files()
        .into_iter()
        .map(|(_, f)| f)
        .collect();
    files.sort();
    files.dedup();
    for file in files {
        let Ok(validity) = tls::certificate_validity(file) else {
            continue; // already reported above
        };
        for v in validity {
            let days_left = (v.not_after - now) / 86_400;
            if v.not_after <= now {
                out.push(Diagnostic::file_error(
                    file,
                    format!("certificate '{}' has expired", v.subject),
                ));
            } else if v.not_before > now {
                out.push(Diagnostic::file_error(
                    file,
                    format!("certificate '{}' is not valid yet", v.subject),
                ));
            } else if days_left < EXPIRY_WARNING_DAYS {
                out.push(Diagnostic::file_warning(
                    file,
                    format!("certificate '{}' expires in {days_left} day(s)", v.subject),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped youth-care profile releases everything its schema requires; leaving out
    /// one required field is warned about, at the grant.
    #[test]
    fn a_release_profile_that_withholds_a_required_field_is_warned_about() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().unwrap();
        for file in [
            "consumers.yaml",
            "purposes.yaml",
            "grants.yaml",
            "partners/jeugdhulp.yaml",
        ] {
            let to = dir.path().join(file);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(root.join("policies/providers/jeugdhulp").join(file), to).unwrap();
        }
        let load = || {
            let (set, diagnostics) = crate::policy::compile::load(
                dir.path(),
                &root.join("schemas"),
                crate::policy::today(),
            );
            assert!(diagnostics.iter().all(|d| !d.is_error()), "{diagnostics:?}");
            let mut out = Vec::new();
            check_release_profile(&set.unwrap(), &mut out);
            out
        };
        assert!(load().is_empty(), "the shipped profile is clean");
        let grants = dir.path().join("grants.yaml");
        let text = std::fs::read_to_string(&grants).unwrap();
        std::fs::write(
            &grants,
            text.replace("      trajecten[*].startdatum: keep\n", ""),
        )
        .unwrap();
        let warnings = load();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let text = warnings[0].to_string();
        assert!(text.contains("grants.yaml:3:"), "{text}");
        assert!(
            text.contains("withholds 'trajecten[*].startdatum'"),
            "{text}"
        );
    }
}
