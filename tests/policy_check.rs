//! `doelpoort policy check` against seeded broken fixtures: each test starts from a copy of the
//! shipped `policies/` and `schemas/` (which check clean), seeds exactly one defect by editing
//! one file's text, runs the real binary and asserts that the defect is reported as
//! `file:line:col: error: …` at the exact place, computed from the edited text. A last group
//! covers `doelpoort policy test` failing on a wrong expectation and on a missing test suite.

mod harness;

use harness::{copy_dir, repo_root, run_doelpoort};
use std::path::{Path, PathBuf};

/// The day every check decides on: inside the validity of all shipped grants.
const TODAY: &str = "2026-11-24";

const WIJKTEAM: &str = "grants/wijkteam-rotterdam.yaml";
const SCHULDHULP: &str = "grants/schuldhulp-utrecht.yaml";
const UWV: &str = "partners/uwv.yaml";
const SVB: &str = "partners/svb.yaml";

/// A private copy of the shipped policies and schemas, to seed defects into.
struct Fixture {
    root: tempfile::TempDir,
}

impl Fixture {
    fn shipped() -> Self {
        let root = tempfile::tempdir().unwrap();
        for dir in ["policies", "schemas"] {
            copy_dir(&repo_root().join(dir), &root.path().join(dir));
        }
        Self { root }
    }

    fn policies(&self) -> PathBuf {
        self.root.path().join("policies")
    }

    fn schemas(&self) -> PathBuf {
        self.root.path().join("schemas")
    }

    /// A file under the policy directory, as `policy check` names it in its output.
    fn file(&self, relative: &str) -> PathBuf {
        self.policies().join(relative)
    }

    fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.file(relative)).unwrap()
    }

    /// Replaces `from` (which must occur exactly once) by `to` in one policy file and returns
    /// the edited text.
    fn seed(&self, relative: &str, from: &str, to: &str) -> String {
        let text = self.read(relative);
        assert_eq!(
            text.matches(from).count(),
            1,
            "the seed text must occur exactly once in {relative}: {from:?}"
        );
        let edited = text.replacen(from, to, 1);
        std::fs::write(self.file(relative), &edited).unwrap();
        edited
    }

    /// Runs `doelpoort policy <command> <tmp>/policies --schemas <tmp>/schemas --today DAY`.
    fn run(&self, command: &str, today: &str) -> (i32, String) {
        self.run_with(command, today, &[])
    }

    /// [`Self::run`] with further arguments.
    fn run_with(&self, command: &str, today: &str, extra: &[&str]) -> (i32, String) {
        let (policies, schemas) = (self.policies(), self.schemas());
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "policy".as_ref(),
            command.as_ref(),
            policies.as_os_str(),
            "--schemas".as_ref(),
            schemas.as_os_str(),
            "--today".as_ref(),
            today.as_ref(),
        ];
        args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
        run_doelpoort(args)
    }

    fn check(&self) -> (i32, String) {
        self.run("check", TODAY)
    }
}

/// The 1-based line and column of `token` inside `context`, where `context` occurs exactly once
/// in `text` (so a token that occurs several times in a file can still be pinned down).
fn locate(text: &str, context: &str, token: &str) -> (usize, usize) {
    assert_eq!(
        text.matches(context).count(),
        1,
        "the context must occur exactly once: {context:?}"
    );
    let start = text.find(context).unwrap()
        + context
            .find(token)
            .unwrap_or_else(|| panic!("{token:?} is not in {context:?}"));
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..start].chars().count() + 1;
    (line, column)
}

/// Asserts a diagnostic `file:line:col: severity: …message…` in the output.
fn assert_reported(
    out: &str,
    file: &Path,
    (line, column): (usize, usize),
    severity: &str,
    message: &str,
) {
    let prefix = format!("{}:{line}:{column}: {severity}: ", file.display());
    assert!(
        out.lines()
            .any(|l| l.starts_with(&prefix) && l.contains(message)),
        "expected a line starting with {prefix:?} and containing {message:?}; got:\n{out}"
    );
}

fn error_lines(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.contains(": error: ")).collect()
}

// ---- the shipped set ------------------------------------------------------------------------

#[test]
fn the_shipped_policies_check_clean_and_their_tests_pass() {
    let fx = Fixture::shipped();
    let (code, out) = fx.check();
    assert_eq!(code, 0, "{out}");
    assert!(error_lines(&out).is_empty(), "{out}");
    assert!(!out.contains("warning:"), "{out}");
    assert!(out.contains(": ok — policy version "), "{out}");

    let (code, out) = fx.run("test", TODAY);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(" passed, 0 failed"), "{out}");

    // Every shipped grant has an allowed and a refused case.
    let (code, out) = fx.run_with("test", TODAY, &["--coverage"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("coverage: every grant has an allowed and a refused case"),
        "{out}"
    );
}

#[test]
fn policy_test_coverage_names_a_grant_without_a_refused_case() {
    let fx = Fixture::shipped();
    // The only refused case of the CJIB claims grant is the last one: take it out.
    let text = fx.read("tests/demo.yaml");
    let cut = text
        .find("  - name: CJIB-vorderingen zonder casus")
        .expect("the shipped case");
    std::fs::write(fx.file("tests/demo.yaml"), &text[..cut]).unwrap();
    let (code, out) = fx.run_with("test", TODAY, &["--coverage"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(" passed, 0 failed"), "{out}");
    assert!(
        out.contains("  schuldhulp-cjib-vorderingen: no refused case"),
        "{out}"
    );
}

/// A UWV operation whose template overlaps `GET /v1/personen/{bsn}/inkomen` ("zoeken" matches
/// `{bsn}`), appended after the shipped `inkomen` operation.
const OVERLAPPING_OPERATION: &str = "
      - id: inkomen-zoeken
        title: Inkomen zoeken
        method: GET
        path: /v1/personen/zoeken/inkomen
        subject: none
        response_schema: uwv-inkomen.response.schema.json
";

// ---- one seeded defect per test -------------------------------------------------------------

#[test]
fn an_unknown_key_is_reported_at_the_key() {
    let fx = Fixture::shipped();
    let context = "valid_until: 2027-12-31\n    rationale: >\n      Voor het onderzoek";
    let text = fx.seed(
        WIJKTEAM,
        context,
        &context.replace("valid_until", "valid_untill"),
    );
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    assert_reported(
        &out,
        &fx.file(WIJKTEAM),
        locate(&text, "valid_untill:", "valid_untill"),
        "error",
        "unknown field `valid_untill`",
    );
}

#[test]
fn an_unknown_consumer_is_reported_with_a_suggestion() {
    let fx = Fixture::shipped();
    let context = "consumers: [wijkteam-rotterdam]\n    operation: uwv/inkomen";
    let text = fx.seed(
        WIJKTEAM,
        context,
        &context.replace("wijkteam-rotterdam", "wijkteam-rotterdm"),
    );
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    assert_reported(
        &out,
        &fx.file(WIJKTEAM),
        locate(&text, "[wijkteam-rotterdm]", "wijkteam-rotterdm"),
        "error",
        "unknown consumer 'wijkteam-rotterdm'; did you mean 'wijkteam-rotterdam'?",
    );
}

#[test]
fn an_unknown_partner_operation_is_reported_with_a_suggestion() {
    let fx = Fixture::shipped();
    let text = fx.seed(
        SCHULDHULP,
        "operation: uwv/inkomen",
        "operation: uwv/inkomsten",
    );
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    assert_reported(
        &out,
        &fx.file(SCHULDHULP),
        locate(&text, "operation: uwv/inkomsten", "uwv/inkomsten"),
        "error",
        "unknown operation 'uwv/inkomsten'; did you mean 'uwv/inkomen'?",
    );
}

#[test]
fn an_unknown_purpose_in_a_grant_is_reported() {
    let fx = Fixture::shipped();
    let text = fx.seed(
        WIJKTEAM,
        "purpose: wams-coordinatie",
        "purpose: armoedebestrijding",
    );
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    assert_reported(
        &out,
        &fx.file(WIJKTEAM),
        locate(&text, "purpose: armoedebestrijding", "armoedebestrijding"),
        "error",
        "unknown purpose 'armoedebestrijding'",
    );
}

#[test]
fn a_released_field_not_in_the_response_schema_is_reported() {
    let fx = Fixture::shipped();
    let text = fx.seed(
        WIJKTEAM,
        "      uitkeringen[*].ingangsdatum: year",
        "      uitkeringen[*].startdatum: year",
    );
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    assert_reported(
        &out,
        &fx.file(WIJKTEAM),
        locate(&text, "uitkeringen[*].startdatum:", "uitkeringen"),
        "error",
        "field 'uitkeringen[*].startdatum' is not in uwv-inkomen.response.schema.json",
    );
}

#[test]
fn a_special_category_without_a_legal_exception_is_reported() {
    let fx = Fixture::shipped();
    // wams-onderzoek names no exception for health; medische_reden is health data.
    let anchor = "      uitkeringen[*].ingangsdatum: year        # since when, to the year\n";
    let text = fx.seed(
        WIJKTEAM,
        anchor,
        &format!("{anchor}      uitkeringen[*].medische_reden: keep\n"),
    );
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    assert_reported(
        &out,
        &fx.file(WIJKTEAM),
        locate(&text, "uitkeringen[*].medische_reden:", "uitkeringen"),
        "error",
        "releases health data, but purpose 'wams-onderzoek' names no legal exception for health",
    );
}

#[test]
fn overlapping_grants_are_reported_at_the_later_grant() {
    let fx = Fixture::shipped();
    let original = fx.read(WIJKTEAM);
    let start = original
        .find("  - id: wijkteam-svb-kinderbijslag-onderzoek\n")
        .unwrap();
    let end = original
        .find("  - id: wijkteam-jeugdhulp-trajecten-coordinatie\n")
        .unwrap();
    // Same consumer, operation and purpose under a new id, appended at the end of the file.
    let duplicate = original[start..end].replace(
        "id: wijkteam-svb-kinderbijslag-onderzoek\n",
        "id: wijkteam-svb-kinderbijslag-onderzoek-bis\n",
    );
    let last = "beroepsgeheim van de aanbieder en wordt niet verstrekt.\n";
    let text = fx.seed(WIJKTEAM, last, &format!("{last}\n{duplicate}"));
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    let (first_line, _) = locate(&text, "id: wijkteam-svb-kinderbijslag-onderzoek\n", "id:");
    let (dup_line, _) = locate(&text, "id: wijkteam-svb-kinderbijslag-onderzoek-bis", "id:");
    let file = fx.file(WIJKTEAM);
    assert_reported(
        &out,
        &file,
        (dup_line, 1),
        "error",
        &format!(
            "grant 'wijkteam-svb-kinderbijslag-onderzoek-bis' overlaps grant \
             'wijkteam-svb-kinderbijslag-onderzoek' ({}:{first_line})",
            file.display()
        ),
    );
    assert!(
        out.contains(
            "for consumer 'wijkteam-rotterdam', operation 'svb/kinderbijslag', purpose 'wams-onderzoek'"
        ),
        "{out}"
    );
}

#[test]
fn an_unreachable_grant_is_reported_at_valid_until() {
    let fx = Fixture::shipped();
    let context = "valid_until: 2027-12-31\n    rationale: >\n      Voor een schuldenregeling";
    let text = fx.seed(
        SCHULDHULP,
        context,
        &context.replace("2027-12-31", "2025-12-31"),
    );
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    assert_reported(
        &out,
        &fx.file(SCHULDHULP),
        locate(&text, "valid_until: 2025-12-31", "2025-12-31"),
        "error",
        "unreachable: valid_until lies before valid_from",
    );
}

#[test]
fn overlapping_operations_are_reported_at_the_later_path() {
    let fx = Fixture::shipped();
    let anchor = "        response_schema: uwv-inkomen.response.schema.json\n";
    let text = fx.seed(UWV, anchor, &format!("{anchor}{OVERLAPPING_OPERATION}"));
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    assert_reported(
        &out,
        &fx.file(UWV),
        locate(
            &text,
            "path: /v1/personen/zoeken/inkomen",
            "/v1/personen/zoeken",
        ),
        "error",
        "operations 'inkomen' and 'inkomen-zoeken' overlap: a GET request could match both",
    );
}

#[test]
fn an_expired_grant_is_a_warning_not_an_error() {
    let fx = Fixture::shipped();
    let context = "valid_until: 2027-12-31\n    rationale: >\n      Het recht op kinderbijslag";
    let text = fx.seed(
        WIJKTEAM,
        context,
        &context.replace("2027-12-31", "2026-06-30"),
    );
    let (code, out) = fx.check();
    assert_eq!(code, 0, "{out}");
    assert!(error_lines(&out).is_empty(), "{out}");
    assert_reported(
        &out,
        &fx.file(WIJKTEAM),
        locate(&text, "valid_until: 2026-06-30", "2026-06-30"),
        "warning",
        "grant 'wijkteam-svb-kinderbijslag-onderzoek' has expired: it refuses every request (grant-expired)",
    );
    assert_eq!(out.matches("warning:").count(), 1, "{out}");
    assert!(out.contains(": ok — policy version "), "{out}");
}

#[test]
fn a_grant_for_the_refused_purpose_is_reported() {
    let fx = Fixture::shipped();
    let text = fx.seed(WIJKTEAM, "purpose: wams-coordinatie", "purpose: handhaving");
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    assert_reported(
        &out,
        &fx.file(WIJKTEAM),
        locate(&text, "purpose: handhaving", "handhaving"),
        "error",
        "purpose 'handhaving' is refused by the purpose catalog; it cannot be granted",
    );
}

#[test]
fn a_yaml_syntax_error_is_located_not_a_panic() {
    let fx = Fixture::shipped();
    let text = fx.seed(
        WIJKTEAM,
        "purpose: wams-coordinatie",
        "purpose: wams: coordinatie",
    );
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    // The second ':' on the line is the offending indicator.
    assert_reported(
        &out,
        &fx.file(WIJKTEAM),
        locate(&text, "purpose: wams: coordinatie", ": coordinatie"),
        "error",
        "mapping values are not allowed",
    );
}

#[test]
fn an_operation_without_a_subject_needs_a_reason_in_the_grant() {
    let fx = Fixture::shipped();
    let context = "path: /v1/personen/{bsn}/kinderbijslag\n        subject: path bsn";
    fx.seed(
        SVB,
        context,
        &context.replace("subject: path bsn", "subject: none"),
    );
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    // Reported at the grant that uses the operation, not at the operation.
    let grants = fx.read(WIJKTEAM);
    assert_reported(
        &out,
        &fx.file(WIJKTEAM),
        locate(&grants, "operation: svb/kinderbijslag", "svb/kinderbijslag"),
        "error",
        "operation 'svb/kinderbijslag' is not about one data subject: the grant must say why \
         that is allowed (without_subject: …) — no fishing expeditions",
    );
}

#[test]
fn a_condition_field_not_in_the_request_schema_is_reported() {
    let fx = Fixture::shipped();
    // The CJIB time-out's category condition (the only one on `vorderingen`).
    let context = "- field: vorderingen[*].categorie";
    let text = fx.seed(SCHULDHULP, context, "- field: vorderingen[*].categorei");
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    assert_reported(
        &out,
        &fx.file(SCHULDHULP),
        locate(&text, "field: vorderingen[*].categorei", "vorderingen"),
        "error",
        "field 'vorderingen[*].categorei' is not in the request schema; did you mean 'vorderingen[*].categorie'?",
    );
}

#[test]
fn defects_in_different_files_are_all_reported() {
    let fx = Fixture::shipped();
    let schuldhulp = fx.seed(
        SCHULDHULP,
        "operation: uwv/inkomen",
        "operation: uwv/inkomsten",
    );
    let anchor = "      uitkeringen[*].ingangsdatum: year        # since when, to the year\n";
    let wijkteam = fx.seed(
        WIJKTEAM,
        anchor,
        &format!("{anchor}      uitkeringen[*].medische_reden: keep\n"),
    );
    let anchor = "        response_schema: uwv-inkomen.response.schema.json\n";
    let uwv = fx.seed(UWV, anchor, &format!("{anchor}{OVERLAPPING_OPERATION}"));
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    assert_reported(
        &out,
        &fx.file(SCHULDHULP),
        locate(&schuldhulp, "operation: uwv/inkomsten", "uwv/inkomsten"),
        "error",
        "unknown operation 'uwv/inkomsten'",
    );
    assert_reported(
        &out,
        &fx.file(WIJKTEAM),
        locate(&wijkteam, "uitkeringen[*].medische_reden:", "uitkeringen"),
        "error",
        "releases health data",
    );
    assert_reported(
        &out,
        &fx.file(UWV),
        locate(&uwv, "path: /v1/personen/zoeken/inkomen", "/v1/"),
        "error",
        "operations 'inkomen' and 'inkomen-zoeken' overlap",
    );
    // Each defect once, and nothing else: one problem does not hide or cascade into another.
    assert_eq!(error_lines(&out).len(), 3, "{out}");
}

// ---- policy test ----------------------------------------------------------------------------

#[test]
fn policy_test_fails_on_a_wrong_expectation() {
    let fx = Fixture::shipped();
    let context = "decision: allow\n      grant: wijkteam-uwv-inkomen-onderzoek";
    fx.seed(
        "tests/demo.yaml",
        context,
        &context.replace(
            "wijkteam-uwv-inkomen-onderzoek",
            "wijkteam-svb-kinderbijslag-onderzoek",
        ),
    );
    let (code, out) = fx.run("test", TODAY);
    assert_eq!(code, 1, "{out}");
    let failures: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert_eq!(failures.len(), 1, "{out}");
    assert!(
        failures[0].contains(
            "expected grant wijkteam-svb-kinderbijslag-onderzoek, got wijkteam-uwv-inkomen-onderzoek"
        ),
        "{out}"
    );
    assert!(out.contains(" passed, 1 failed"), "{out}");
}

#[test]
fn policy_test_fails_when_there_are_no_test_cases() {
    let fx = Fixture::shipped();
    // Every shipped suite (demo.yaml, casusregister.yaml, …) goes.
    let suites: Vec<PathBuf> = std::fs::read_dir(fx.file("tests"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert!(!suites.is_empty(), "the shipped set has test suites");
    for suite in &suites {
        std::fs::remove_file(suite).unwrap();
    }
    let (code, out) = fx.run("test", TODAY);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no test cases found in"), "{out}");
    assert!(out.contains("0 passed, 0 failed"), "{out}");

    // An explicitly empty suite is no better.
    std::fs::write(fx.file("tests/empty.yaml"), "cases: []\n").unwrap();
    let (code, out) = fx.run("test", TODAY);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no test cases found in"), "{out}");
}

// ---- lawful basis and data categories (issue 17) ---------------------------------------------

const PURPOSES: &str = "purposes.yaml";

#[test]
fn consent_and_legitimate_interests_are_refused_as_a_basis_for_a_public_body() {
    for (ground, message) in [
        ("6(1)(a)", "consent (6(1)(a)) is not a valid basis"),
        (
            "6(1)(f)",
            "legitimate interests (6(1)(f)) do not apply to a public body",
        ),
    ] {
        let fx = Fixture::shipped();
        let text = fx.seed(
            PURPOSES,
            "      gdpr: 6(1)(e)          # taak van algemeen belang (MvT Wams §3.3)",
            &format!("      gdpr: {ground}          # taak van algemeen belang (MvT Wams §3.3)"),
        );
        let (code, out) = fx.check();
        assert_eq!(code, 1, "{ground}: {out}");
        assert_reported(
            &out,
            &fx.file(PURPOSES),
            locate(&text, &format!("gdpr: {ground}          #"), ground),
            "error",
            message,
        );
    }
}

#[test]
fn a_public_task_without_its_law_is_reported() {
    let fx = Fixture::shipped();
    let text = fx.seed(
        PURPOSES,
        "      gdpr: 6(1)(e)\n      law: Wet gemeentelijke schuldhulpverlening\n",
        "      gdpr: 6(1)(e)          # schuldhulpverlening, law left out\n",
    );
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    assert_reported(
        &out,
        &fx.file(PURPOSES),
        locate(
            &text,
            "gdpr: 6(1)(e)          # schuldhulpverlening",
            "6(1)(e)",
        ),
        "error",
        "needs the national law that lays it down",
    );
}

/// Edits one schema file's text (the seed must occur once).
fn seed_schema(fx: &Fixture, name: &str, from: &str, to: &str) {
    let path = fx.schemas().join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches(from).count(), 1, "{name}: {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn a_released_field_without_a_known_data_category_is_reported() {
    for (to, message) in [
        ("", "without an x-data-category"),
        (
            r#""x-data-category": "medisch""#,
            "unknown data category 'medisch'",
        ),
    ] {
        let fx = Fixture::shipped();
        // `inkomsten[*].soort` (released to the district team) loses its category.
        seed_schema(
            &fx,
            "uwv-inkomen.response.schema.json",
            "\"description\": \"Soort inkomsten uit arbeid, bijv. 'loon'.\",\n            \"x-data-category\": \"employment\"",
            &format!(
                "\"description\": \"Soort inkomsten uit arbeid, bijv. 'loon'.\"{}",
                if to.is_empty() {
                    String::new()
                } else {
                    format!(",\n            {to}")
                }
            ),
        );
        let (code, out) = fx.check();
        assert_eq!(code, 1, "{out}");
        let text = fx.read(WIJKTEAM);
        assert_reported(
            &out,
            &fx.file(WIJKTEAM),
            locate(&text, "inkomsten[*].soort: keep", "inkomsten"),
            "error",
            message,
        );
    }
}

#[test]
fn releasing_a_whole_object_with_an_open_schema_is_reported() {
    let fx = Fixture::shipped();
    // The income entries' schema is opened, and the district team gets them whole.
    seed_schema(
        &fx,
        "uwv-inkomen.response.schema.json",
        "\"soort\",\n          \"bedrag_per_maand\"\n        ],\n        \"additionalProperties\": false",
        "\"soort\",\n          \"bedrag_per_maand\"\n        ]",
    );
    let text = fx.seed(
        WIJKTEAM,
        "      inkomsten[*].soort: keep                 # kind of income (loon, …)\n",
        "      inkomsten[*]: keep\n",
    );
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    assert_reported(
        &out,
        &fx.file(WIJKTEAM),
        locate(&text, "inkomsten[*]: keep", "inkomsten"),
        "error",
        "is an open object (additionalProperties is not false)",
    );
}

/// The whole `judicial` exception of the shipped `schuldhulpverlening` purpose (up to its
/// `retention`), as a seed to replace.
fn debt_judicial_exception(fx: &Fixture) -> String {
    let text = fx.read(PURPOSES);
    let start = text
        .find("      judicial:\n        gdpr: \"10\"\n        law: Wet gemeentelijke schuldhulpverlening\n")
        .expect("the shipped schuldhulpverlening exception");
    let end = start + text[start..].find("    retention:").unwrap();
    text[start..end].to_string()
}

#[test]
fn a_special_category_exception_must_name_its_gdpr_article_and_law() {
    for (exception, token, message) in [
        (
            "      judicial: ja\n",
            "judicial",
            "the exception for judicial is the text \"ja\"; write it as a mapping with gdpr: 10 and law:",
        ),
        (
            "      judicial:\n        gdpr: 9(2)(h)\n        law: Wet gemeentelijke schuldhulpverlening\n",
            "9(2)(h)",
            "judicial data (criminal convictions, offences, measures) falls under GDPR art. 10, not art. 9",
        ),
        (
            "      judicial:\n        gdpr: \"10\"\n        note: law left out\n",
            "judicial",
            "the exception for judicial needs law: the national law",
        ),
        (
            "      judicial:\n        gdpr: \"10\"\n        law: AVG art. 10\n",
            "AVG art. 10",
            "\"AVG art. 10\" does not name a national law",
        ),
        (
            "      judicial:\n        gdpr: \"10\"\n        law: ja\n",
            "ja",
            "\"ja\" does not name a national law",
        ),
        (
            "      health:\n        gdpr: 9(2)(a)\n        law: Jeugdwet\n",
            "9(2)(a)",
            "explicit consent (9(2)(a)) is no ground between a government body and a citizen",
        ),
    ] {
        let fx = Fixture::shipped();
        let text = fx.seed(PURPOSES, &debt_judicial_exception(&fx), exception);
        let (code, out) = fx.check();
        assert_eq!(code, 1, "{exception}: {out}");
        assert_reported(
            &out,
            &fx.file(PURPOSES),
            locate(&text, exception, token),
            "error",
            message,
        );
    }
}

#[test]
fn a_structured_health_exception_lets_a_purpose_release_health_data() {
    // The counterpart of the refusals above: the check is not a blanket refusal. A purpose
    // naming a 9(2) exception and its law may release a health field.
    let fx = Fixture::shipped();
    fx.seed(
        PURPOSES,
        "    processing_activity: https://register.voorbeeldstad.example/verwerkingen/wams-onderzoek\n",
        "    processing_activity: https://register.voorbeeldstad.example/verwerkingen/wams-onderzoek\n    special_categories:\n      health:\n        gdpr: 9(2)(h)\n        law: Wet maatschappelijke ondersteuning 2015\n",
    );
    let anchor = "      uitkeringen[*].ingangsdatum: year        # since when, to the year\n";
    fx.seed(
        WIJKTEAM,
        anchor,
        &format!("{anchor}      uitkeringen[*].medische_reden: keep\n"),
    );
    let (code, out) = fx.check();
    assert_eq!(code, 0, "{out}");
    let (code, out) = fx.run_with(
        "explain",
        TODAY,
        &[
            "--consumer",
            "wijkteam-rotterdam",
            "--request",
            "GET /uwv/v1/personen/999990019/inkomen",
            "-H",
            "Doelbinding-Purpose: wams-onderzoek",
            "-H",
            "Doelbinding-Case-Id: zaak-1",
            "-H",
            "Doelbinding-Actor: mw-a",
            "-H",
            "Doelbinding-Data-Subject: bsn=999990019",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "health data under: AVG art. 9(2)(h); Wet maatschappelijke ondersteuning 2015"
        ),
        "{out}"
    );
}

// ---- the case register and time-outs ----------------------------------------------------------

/// The one debt-counselling grant on UWV income, `requires: [case_id]` in the shipped set.
const UWV_INCOME_REQUIRES: &str =
    "purpose: schuldhulpverlening\n    requires: [case_id]\n    fields:\n      inkomsten";
/// The shipped free-text retention of `schuldhulpverlening`.
const DEBT_RETENTION: &str =
    "    retention: Tot afsluiting van het schuldhulptraject (termijn vast te leggen).\n";
/// The UWV time-out grant, from its operation to the end of its `time_out` block.
const UWV_TIME_OUT: &str = "operation: uwv/opschorting\n    purpose: time-out\n    requires: [registered_case, actor, involved_partner]\n    four_eyes:\n      role: teamleider\n    time_out:\n      ends: einddatum\n      max_total: 8 months\n      extension:\n        role: afdelingshoofd\n";
/// How `RelativeDate::parse_term` says what a term looks like.
const TERM_FORM: &str = "expected a term such as `30 days`, `6 weeks`, `4 months` or `1 year`";

#[test]
fn a_purpose_served_under_a_registered_case_needs_a_retention_after_closure() {
    // The debt-counselling income grant now needs a registered case; its purpose keeps the
    // shipped free-text retention, which the register cannot act on.
    let fx = Fixture::shipped();
    fx.seed(
        SCHULDHULP,
        UWV_INCOME_REQUIRES,
        &UWV_INCOME_REQUIRES.replace("[case_id]", "[registered_case]"),
    );
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    let purposes = fx.read(PURPOSES);
    let at = locate(
        &purposes,
        "  - id: schuldhulpverlening\n",
        "schuldhulpverlening",
    );
    assert_reported(
        &out,
        &fx.file(PURPOSES),
        at,
        "error",
        "purpose 'schuldhulpverlening' is served under a registered case (grant \
         'schuldhulp-uwv-inkomen'), so its retention must be a term after closure, e.g. \
         retention: {after_closure: 1 year",
    );
    assert_reported(
        &out,
        &fx.file(PURPOSES),
        at,
        "error",
        "found the free text \"Tot afsluiting van het schuldhulptraject (termijn vast te leggen).\"",
    );
    assert_eq!(error_lines(&out).len(), 1, "{out}");

    // No retention at all is no better.
    let text = fx.seed(PURPOSES, DEBT_RETENTION, "");
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    assert_reported(
        &out,
        &fx.file(PURPOSES),
        locate(
            &text,
            "  - id: schuldhulpverlening\n",
            "schuldhulpverlening",
        ),
        "error",
        "(grant 'schuldhulp-uwv-inkomen'), so its retention must be a term after closure",
    );
    assert!(out.contains("; found nothing"), "{out}");
    assert_eq!(error_lines(&out).len(), 1, "{out}");

    // The same purpose with a term after closure checks clean.
    let fx = Fixture::shipped();
    fx.seed(
        SCHULDHULP,
        UWV_INCOME_REQUIRES,
        &UWV_INCOME_REQUIRES.replace("[case_id]", "[registered_case]"),
    );
    fx.seed(
        PURPOSES,
        DEBT_RETENTION,
        "    retention: {after_closure: 1 year}\n",
    );
    let (code, out) = fx.check();
    assert_eq!(code, 0, "{out}");
    assert!(error_lines(&out).is_empty(), "{out}");
    assert!(out.contains(": ok — policy version "), "{out}");
}

#[test]
fn a_retention_after_closure_that_is_no_term_is_reported_at_its_value() {
    let fx = Fixture::shipped();
    let text = fx.seed(
        PURPOSES,
        DEBT_RETENTION,
        "    retention: {after_closure: soon}\n",
    );
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    assert_reported(
        &out,
        &fx.file(PURPOSES),
        locate(&text, "retention: {after_closure: soon}", "soon"),
        "error",
        TERM_FORM,
    );
    assert_eq!(error_lines(&out).len(), 1, "{out}");
}

#[test]
fn a_retention_that_is_no_term_under_a_registered_case_is_reported_once() {
    // The time-out purpose is served under a registered case: its unreadable term is the
    // one defect, not also "no retention" at the purpose.
    let fx = Fixture::shipped();
    let context = "      after_closure: 2 years\n      note: >\n        Het grootboek";
    let text = fx.seed(PURPOSES, context, &context.replace("2 years", "twee jaar"));
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    assert_reported(
        &out,
        &fx.file(PURPOSES),
        locate(&text, "after_closure: twee jaar", "twee jaar"),
        "error",
        TERM_FORM,
    );
    assert!(
        !out.contains("; found nothing"),
        "the purpose has a retention (its term is unreadable, reported at the term), yet a \
         second error says it has none:\n{out}"
    );
    assert_eq!(error_lines(&out).len(), 1, "{out}");
}

#[test]
fn a_time_out_grant_without_a_registered_case_is_reported() {
    let fx = Fixture::shipped();
    let edited = UWV_TIME_OUT.replace(
        "requires: [registered_case, actor, involved_partner]",
        "requires: [actor, involved_partner]",
    );
    let text = fx.seed(SCHULDHULP, UWV_TIME_OUT, &edited);
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    assert_reported(
        &out,
        &fx.file(SCHULDHULP),
        locate(&text, &edited, "einddatum"),
        "error",
        "a time-out is kept in the case's time-out ledger: add registered_case to requires",
    );
    assert_eq!(error_lines(&out).len(), 1, "{out}");
}

#[test]
fn a_prior_time_out_without_a_registered_case_is_reported() {
    let fx = Fixture::shipped();
    let text = fx.seed(
        SCHULDHULP,
        "requires: [registered_case, prior_time_out, actor]",
        "requires: [prior_time_out, actor]",
    );
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    assert_reported(
        &out,
        &fx.file(SCHULDHULP),
        locate(
            &text,
            "  - id: schuldhulp-escalatie\n",
            "schuldhulp-escalatie",
        ),
        "error",
        "prior_time_out is looked up in the case register: add registered_case to requires",
    );
    assert_eq!(error_lines(&out).len(), 1, "{out}");
}

#[test]
fn a_time_out_end_field_not_in_the_request_schema_is_reported() {
    let fx = Fixture::shipped();
    let edited = UWV_TIME_OUT.replace(
        "    time_out:\n      ends: einddatum\n      max_total: 8 months\n      extension:\n        role: afdelingshoofd\n",
        "    time_out: {ends: no_such_field, max_total: 8 months}\n",
    );
    let text = fx.seed(SCHULDHULP, UWV_TIME_OUT, &edited);
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    assert_reported(
        &out,
        &fx.file(SCHULDHULP),
        locate(&text, "{ends: no_such_field,", "no_such_field"),
        "error",
        "field 'no_such_field' is not in the operation's request schema",
    );
    assert_eq!(error_lines(&out).len(), 1, "{out}");
}

#[test]
fn a_time_out_max_total_that_is_no_term_is_reported_with_the_form() {
    let fx = Fixture::shipped();
    let context = "claims: vorderingen[*].vordering_id\n      max_total: 8 months";
    let text = fx.seed(SCHULDHULP, context, &context.replace("8 months", "forever"));
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    assert_reported(
        &out,
        &fx.file(SCHULDHULP),
        locate(&text, "max_total: forever", "forever"),
        "error",
        TERM_FORM,
    );
    assert_eq!(error_lines(&out).len(), 1, "{out}");
}

#[test]
fn an_unknown_requirement_is_reported_with_the_valid_ones() {
    let fx = Fixture::shipped();
    let text = fx.seed(
        SCHULDHULP,
        UWV_INCOME_REQUIRES,
        &UWV_INCOME_REQUIRES.replace("[case_id]", "[registerd_case]"),
    );
    let (code, out) = fx.check();
    assert_eq!(code, 1, "{out}");
    assert_reported(
        &out,
        &fx.file(SCHULDHULP),
        locate(&text, "requires: [registerd_case]", "registerd_case"),
        "error",
        "expected case_id, actor, involved_partner, registered_case or prior_time_out",
    );
    assert_eq!(error_lines(&out).len(), 1, "{out}");
}
