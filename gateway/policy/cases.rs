//! `doelpoort policy test`: the privacy officer's test cases (YAML under `tests/`), each a
//! simulated request and the decision expected of it, run against the policy set exactly as
//! the gateway would decide; and their coverage of the grants.

use super::decide::Approval;
use super::simulated_case::{self, SimulatedCase};
use super::tools::{simulate, Outcome, SimulatedRequest};
use super::PolicySet;
use crate::diagnostic::{from_yaml_error, Diagnostic};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use time::Date;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    cases: Vec<TestCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCase {
    name: String,
    consumer: String,
    /// `GET /uwv/v1/personen/999990019/inkomen`
    request: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    approvals: Vec<TestApproval>,
    /// The day the request is decided on (YYYY-MM-DD); default: today.
    #[serde(default)]
    today: Option<String>,
    /// The case as the register holds it: grants with `registered_case` are then checked
    /// against it (see [`super::simulated_case`]).
    #[serde(default)]
    case: Option<SimulatedCase>,
    expect: Expectation,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestApproval {
    by: String,
    #[serde(default)]
    role: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectation {
    decision: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    grant: Option<String>,
    /// Exactly the released field paths (as written in the grant).
    #[serde(default)]
    released: Option<Vec<String>>,
}

/// The result of running a directory of test cases.
pub struct TestReport {
    pub lines: Vec<String>,
    pub passed: usize,
    pub failed: usize,
    pub errors: Vec<Diagnostic>,
    /// Per grant of the set: whether some case was allowed under it, and whether some case
    /// reached it and was refused (`policy test --coverage`).
    pub coverage: std::collections::BTreeMap<String, (bool, bool)>,
}

impl TestReport {
    /// Grants without at least one allowed and one refused case, with what they lack.
    pub fn uncovered(&self) -> Vec<String> {
        self.coverage
            .iter()
            .filter(|(_, (allowed, denied))| !(allowed & denied))
            .map(|(grant, (allowed, denied))| {
                let missing = match (allowed, denied) {
                    (false, false) => "no case at all",
                    (false, true) => "no allowed case",
                    _ => "no refused case",
                };
                format!("{grant}: {missing}")
            })
            .collect()
    }
}

impl TestReport {
    /// Whether every case passed and there was at least one.
    pub fn success(&self) -> bool {
        self.failed == 0 && self.errors.is_empty() && self.passed > 0
    }
}

/// The test case files of a policy directory: `tests/*.yaml`.
pub fn test_files(policy_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(policy_dir.join("tests"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

pub fn run_tests(set: &PolicySet, files: &[PathBuf], default_today: Date) -> TestReport {
    let mut report = TestReport {
        lines: Vec::new(),
        passed: 0,
        failed: 0,
        errors: Vec::new(),
        coverage: set
            .grants
            .iter()
            .map(|g| (g.id.clone(), (false, false)))
            .collect(),
    };
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                report
                    .errors
                    .push(Diagnostic::file_error(file, format!("cannot read: {e}")));
                continue;
            }
        };
        let parsed: TestFile = match serde_saphyr::from_str(&text) {
            Ok(p) => p,
            Err(e) => {
                report.errors.push(from_yaml_error(file, &e));
                continue;
            }
        };
        for case in parsed.cases {
            let (result, reached) = run_case(set, &case, default_today);
            if let Some((grant, allowed)) = reached {
                if let Some((a, d)) = report.coverage.get_mut(&grant) {
                    if allowed {
                        *a = true;
                    } else {
                        *d = true;
                    }
                }
            }
            match result {
                Ok(()) => {
                    report.passed += 1;
                    report.lines.push(format!("ok    {}", case.name));
                }
                Err(why) => {
                    report.failed += 1;
                    report
                        .lines
                        .push(format!("FAIL  {} ({}): {why}", case.name, file.display()));
                }
            }
        }
    }
    report
}

/// Runs one case: whether it met its expectation, and which grant it reached (allowed or not).
fn run_case(
    set: &PolicySet,
    case: &TestCase,
    default_today: Date,
) -> (Result<(), String>, Option<(String, bool)>) {
    let Some((method, path)) = case.request.split_once(' ') else {
        return (
            Err("request is written as `METHOD /partner/path`".into()),
            None,
        );
    };
    let Ok(method) = http::Method::from_bytes(method.as_bytes()) else {
        return (Err("unknown method".into()), None);
    };
    let today = match &case.today {
        Some(d) => match super::compile::parse_date(d) {
            Some(d) => d,
            None => return (Err("today is written as YYYY-MM-DD".into()), None),
        },
        None => default_today,
    };
    let request = SimulatedRequest {
        consumer: case.consumer.clone(),
        method,
        path: path.trim().to_string(),
        headers: case
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        body: case
            .body
            .as_ref()
            .map(|b| serde_json::to_vec(b).unwrap_or_default())
            .unwrap_or_default(),
        approvals: case
            .approvals
            .iter()
            .map(|a| Approval {
                by: a.by.clone(),
                role: a.role.clone(),
            })
            .collect(),
        today,
    };
    let (decision, code, grant) = match simulate(set, &request) {
        Outcome::Allow(p) => match register_check(set, case, &request, &p) {
            Err(e) => return (Err(e), None),
            Ok(Err(problem)) => ("deny", Some(problem.code.as_str()), Some(p.grant().clone())),
            Ok(Ok(())) => ("allow", None, Some(p.grant().clone())),
        },
        Outcome::Deny(d) => ("deny", Some(d.problem.code.as_str()), d.grant),
    };
    let reached = grant.as_ref().map(|g| (g.id.clone(), decision == "allow"));
    let mut problems = Vec::new();
    if case.expect.decision != decision {
        problems.push(format!(
            "expected decision {}, got {decision}{}",
            case.expect.decision,
            code.map(|c| format!(" ({c})")).unwrap_or_default()
        ));
    }
    if let Some(expected) = &case.expect.code {
        if code != Some(expected.as_str()) {
            problems.push(format!(
                "expected code {expected}, got {}",
                code.unwrap_or("none")
            ));
        }
    }
    if let Some(expected) = &case.expect.grant {
        let got = grant.as_ref().map(|g| g.id.as_str());
        if got != Some(expected.as_str()) {
            problems.push(format!(
                "expected grant {expected}, got {}",
                got.unwrap_or("none")
            ));
        }
    }
    if let Some(expected) = &case.expect.released {
        let mut got: Vec<String> = if decision == "allow" {
            grant
                .as_ref()
                .map(|g| g.fields.iter().map(|f| f.path.to_string()).collect())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut expected = expected.clone();
        got.sort();
        expected.sort();
        if got != expected {
            problems.push(format!("expected released {expected:?}, got {got:?}"));
        }
    }
    let result = if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    };
    (result, reached)
}

/// The case register's answer, where the test names a case (see [`simulated_case`]).
fn register_check(
    set: &PolicySet,
    case: &TestCase,
    request: &SimulatedRequest,
    permit: &super::decide::Permit,
) -> Result<Result<(), crate::problem::Problem>, String> {
    let Some(simulated) = &case.case else {
        return Ok(Ok(()));
    };
    let header = |name: &str| {
        case.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let subject = header(crate::context::DATA_SUBJECT)
        .and_then(|s| crate::context::DataSubject::parse(s).ok());
    simulated.check(
        set,
        permit,
        &simulated_case::Exchange {
            consumer: &case.consumer,
            subject: subject.as_ref(),
            actor: header(crate::context::ACTOR),
            body: case.body.as_ref(),
            approvals: &request.approvals,
            today: request.today,
        },
    )
}
