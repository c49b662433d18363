//! Decision cost per policy-set size: a program that prints numbers, not a test.
//!
//! Run: `cargo bench --bench decision`
//!
//! Claim under test (policy/mod.rs): a compiled `PolicySet` decides with a few hash lookups
//! (consumer → operation → purpose), so a decision costs the same with 10 or 10,000 grants.
//!
//! For N = 10, 1,000 and 10,000 grants it writes a synthetic policy directory (N consumers, a
//! handful of purposes, the shipped partner operations and schemas, N grants), times
//! `compile::load`, and then times `decide::decide` for a fixed mix of four requests:
//!
//! - allow: the consumer in the middle of the set asks what its grant allows;
//! - not-granted: the same consumer and operation under a purpose it holds no grant for;
//! - purpose-missing: no `Doelbinding-Purpose` header;
//! - subject-mismatch: the path names another person than the declared data subject.
//!
//! Each is measured twice: the decision alone (context parsed once, outside the loop) and
//! `RequestContext::from_headers` + decision (what the proxy does per request). Every
//! measurement is bounded by count and time, after a warm-up; the median of 5 runs is
//! reported.
//!
//! Caveat: every loop repeats one request, so the lookups it touches stay in the CPU cache.
//! That is what "costs the same" is about (no scan over the grants), not about cache misses
//! under a mixed production load.

use doelpoort::context::RequestContext;
use doelpoort::minimise::{Limits, RequestBody};
use doelpoort::policy::compile;
use doelpoort::policy::decide::{self, DecisionRequest};
use doelpoort::problem::ProblemCode;
use http::{HeaderMap, HeaderValue, Method};
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};
use time::Date;

// The same allocator as the `doelpoort` binary, so the numbers are the gateway's (the context
// parser and every denial allocate a few small strings).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The set sizes of the issue: "the same with 10 or 10,000 grants", plus one in between.
const SIZES: [usize; 3] = [10, 1_000, 10_000];

/// Per run: at most this many decisions or this much time, whichever comes first. A decision
/// takes a few hundred nanoseconds, so 100 ms is ~2–5·10^5 decisions per run (plenty for a
/// stable mean), and 3 sizes × 8 measurements × 5 runs stay around 12 s in all.
const MAX_ITERS: u64 = 2_000_000;
const MAX_RUN: Duration = Duration::from_millis(100);
const RUNS: usize = 5;

/// The shipped operations that are about one person named in the path (GET, `subject: path
/// bsn`), each with one released field that is valid against its schema and carries no
/// special category (health, criminal, judicial), so no purpose needs a legal exception.
/// `cjib/opschorting` (POST) is declared (its file is copied) but gets no grants: it would
/// need request_fields and conditions, which is not what this benchmark is about.
const OPERATIONS: [(&str, &str, &str); 4] = [
    // (operation key, partner-side path with {bsn}, released field)
    (
        "uwv/inkomen",
        "/v1/personen/{bsn}/inkomen",
        "inkomsten[*].soort",
    ),
    (
        "svb/kinderbijslag",
        "/v1/personen/{bsn}/kinderbijslag",
        "recht_op_kinderbijslag",
    ),
    (
        "cjib/vorderingen",
        "/v1/personen/{bsn}/vorderingen",
        "vorderingen[*].status",
    ),
    (
        "jeugdhulp/trajecten",
        "/v1/jeugdigen/{bsn}/trajecten",
        "trajecten[*].aanbieder",
    ),
];

/// A handful of purposes. Five (not four) so that grant i's operation (i mod 4) and purpose
/// (i/4 mod 5) vary independently and every consumer × operation × purpose combination occurs.
const PURPOSES: usize = 5;

/// Two BSNs that pass the elfproef: the declared data subject and someone else.
const SUBJECT: &str = "999990019";
const OTHER_PERSON: &str = "999990020";

/// Ids are zero-padded to the same length for every N, so hashing a consumer id costs the same
/// in every set and only the size of the index differs.
fn consumer_id(i: usize) -> String {
    format!("consumer-{i:05}")
}

fn purpose_id(p: usize) -> String {
    format!("doel-{}", p + 1)
}

/// Grant i (0-based): consumer i+1, operation i mod 4, purpose (i/4) mod 5. One grant per
/// consumer, so every consumer/operation/purpose triple is unique (no overlap errors).
fn grant_triple(i: usize) -> (String, usize, usize) {
    (
        consumer_id(i + 1),
        i % OPERATIONS.len(),
        (i / OPERATIONS.len()) % PURPOSES,
    )
}

/// Writes the policy directory for `n` grants and the schema directory under `root`.
fn write_policies(root: &Path, n: usize) -> std::io::Result<()> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let policies = root.join("policies");
    let schemas = root.join("schemas");
    std::fs::create_dir_all(policies.join("partners"))?;
    std::fs::create_dir_all(&schemas)?;

    // The shipped partner operations and schemas, unchanged: the benchmark decides against
    // the real operation templates and checks fields against the real schemas.
    for entry in std::fs::read_dir(repo.join("policies/partners"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(
                &path,
                policies.join("partners").join(path.file_name().unwrap()),
            )?;
        }
    }
    for entry in std::fs::read_dir(repo.join("schemas"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            std::fs::copy(&path, schemas.join(path.file_name().unwrap()))?;
        }
    }

    let mut consumers = String::from("consumers:\n");
    for i in 1..=n {
        let _ = writeln!(
            consumers,
            "  - id: {}\n    name: Synthetische afnemer {i}",
            consumer_id(i)
        );
    }
    std::fs::write(policies.join("consumers.yaml"), consumers)?;

    // Valid purposes: a GDPR ground, a law and a processing-activity URI are all required.
    let mut purposes = String::from("purposes:\n");
    for p in 0..PURPOSES {
        let id = purpose_id(p);
        let _ = writeln!(
            purposes,
            "  - id: {id}\n    title: Synthetisch doel {id}\n    legal_basis:\n      gdpr: 6(1)(e)\n      law: Benchmarkwet\n    processing_activity: urn:bench:{id}"
        );
    }
    std::fs::write(policies.join("purposes.yaml"), purposes)?;

    // `requires: [case_id]` as in the shipped grants, so the decision runs its context check.
    // No validity window: the grants are valid on any day the benchmark runs.
    let mut grants = String::from("grants:\n");
    for i in 0..n {
        let (consumer, op, purpose) = grant_triple(i);
        let (operation, _, field) = OPERATIONS[op];
        let _ = writeln!(
            grants,
            "  - id: grant-{i:05}\n    consumers: [{consumer}]\n    operation: {operation}\n    purpose: {}\n    requires: [case_id]\n    fields:\n      {field}: keep\n    rationale: Synthetische grant voor de benchmark.",
            purpose_id(purpose)
        );
    }
    std::fs::write(policies.join("grants.yaml"), grants)?;
    Ok(())
}

/// Nanoseconds per call of `f`: median of `RUNS` runs of at most `MAX_ITERS` calls or
/// `MAX_RUN`. The warm-up fills caches and lets the CPU clock settle; the median discards a
/// run disturbed by another process.
fn measure(mut f: impl FnMut()) -> f64 {
    let warm_up = Instant::now();
    while warm_up.elapsed() < Duration::from_millis(20) {
        f();
    }
    let mut runs = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        let mut n = 0u64;
        // Checking the clock costs ~20 ns; checking it every 64 calls keeps it out of the
        // number while still bounding the run in time.
        while n < MAX_ITERS && (!n.is_multiple_of(64) || start.elapsed() < MAX_RUN) {
            f();
            n += 1;
        }
        runs.push(start.elapsed().as_nanos() as f64 / n as f64);
    }
    runs.sort_by(|a, b| a.total_cmp(b));
    runs[RUNS / 2]
}

/// One request of the mix: what the decision sees besides the policy set.
struct Case {
    name: &'static str,
    consumer: String,
    partner: &'static str,
    path: String,
    headers: HeaderMap,
    expect: Result<(), ProblemCode>,
}

fn headers(purpose: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(p) = purpose {
        h.insert("doelbinding-purpose", HeaderValue::from_str(p).unwrap());
    }
    h.insert(
        "doelbinding-case-id",
        HeaderValue::from_static("casus-2026-0001"),
    );
    h.insert(
        "doelbinding-data-subject",
        HeaderValue::from_str(&format!("bsn={SUBJECT}")).unwrap(),
    );
    h
}

/// The fixed mix, all for the consumer in the middle of the set (so nothing is first or last
/// in any file or map order).
fn cases(n: usize) -> Vec<Case> {
    let (consumer, op, purpose) = grant_triple(n / 2);
    let (key, template, _) = OPERATIONS[op];
    let partner = key.split('/').next().unwrap();
    let path_for = |bsn: &str| template.replace("{bsn}", bsn);
    let granted = purpose_id(purpose);
    let not_granted = purpose_id((purpose + 1) % PURPOSES);
    vec![
        Case {
            name: "allow",
            consumer: consumer.clone(),
            partner,
            path: path_for(SUBJECT),
            headers: headers(Some(&granted)),
            expect: Ok(()),
        },
        Case {
            name: "not-granted",
            consumer: consumer.clone(),
            partner,
            path: path_for(SUBJECT),
            headers: headers(Some(&not_granted)),
            expect: Err(ProblemCode::NotGranted),
        },
        Case {
            name: "purpose-missing",
            consumer: consumer.clone(),
            partner,
            path: path_for(SUBJECT),
            headers: headers(None),
            expect: Err(ProblemCode::PurposeMissing),
        },
        Case {
            name: "subject-mismatch",
            consumer,
            partner,
            path: path_for(OTHER_PERSON),
            headers: headers(Some(&granted)),
            expect: Err(ProblemCode::SubjectMismatch),
        },
    ]
}

fn request<'a>(
    case: &'a Case,
    context: &'a RequestContext,
    body: &'a RequestBody<'a>,
    today: Date,
) -> DecisionRequest<'a> {
    DecisionRequest {
        consumer: &case.consumer,
        partner: case.partner,
        method: &Method::GET,
        path: &case.path,
        context,
        body,
        approvals: &[],
        today,
    }
}

struct Row {
    n: usize,
    compile_ms: f64,
    /// ns per decision, per case, without and with context parsing.
    decide: Vec<f64>,
    with_context: Vec<f64>,
}

fn bench(n: usize, today: Date) -> Row {
    let dir = tempfile::tempdir().expect("tempdir");
    write_policies(dir.path(), n).expect("write policies");

    // One load, as at start-up or on reload: read + parse YAML + check + build indexes +
    // compile schema validators. Timed once; it is milliseconds to seconds, not nanoseconds.
    let start = Instant::now();
    let (set, diagnostics) = compile::load(
        &dir.path().join("policies"),
        &dir.path().join("schemas"),
        today,
    );
    let compile_ms = start.elapsed().as_secs_f64() * 1e3;
    let Some(set) = set else {
        eprintln!("N = {n}: the synthetic policy set does not compile:");
        for d in diagnostics {
            eprintln!("{d}");
        }
        std::process::exit(1);
    };
    // Warnings would mean the generator writes something a privacy officer would be told to
    // fix; show them, but they do not stop the benchmark.
    for d in &diagnostics {
        eprintln!("N = {n}: {d}");
    }
    assert_eq!(set.grants.len(), n, "every generated grant compiles");

    let mut decide_ns = Vec::new();
    let mut with_context_ns = Vec::new();
    let no_body = RequestBody::new(&[], &Limits::default());
    for case in cases(n) {
        // Check the outcome first: a benchmark of the wrong path would measure nothing useful.
        let context = RequestContext::from_headers(&case.headers).expect("valid context");
        let outcome = decide::decide(&set, &request(&case, &context, &no_body, today));
        let got = outcome.as_ref().map(|_| ()).map_err(|d| d.problem.code);
        assert_eq!(got, case.expect, "N = {n}, case {}", case.name);

        // Decision alone. black_box on the inputs keeps the compiler from hoisting lookups
        // out of the loop; on the output, from dropping the work.
        decide_ns.push(measure(|| {
            black_box(decide::decide(
                black_box(&set),
                black_box(&request(&case, &context, &no_body, today)),
            ))
            .ok();
        }));
        // Context parsing + decision, as the proxy does per request.
        with_context_ns.push(measure(|| {
            let context = RequestContext::from_headers(black_box(&case.headers)).unwrap();
            black_box(decide::decide(
                black_box(&set),
                black_box(&request(&case, &context, &no_body, today)),
            ))
            .ok();
        }));
    }
    Row {
        n,
        compile_ms,
        decide: decide_ns,
        with_context: with_context_ns,
    }
}

fn main() {
    // One fixed day for compile and decide, so validity checks agree with each other.
    let today = doelpoort::policy::today();
    let rows: Vec<Row> = SIZES.iter().map(|&n| bench(n, today)).collect();

    println!("# decision cost per policy-set size (ns per decision, median of {RUNS} runs)");
    println!();
    println!("| grants | measured | compile ms | allow | not-granted | purpose-missing | subject-mismatch |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for row in &rows {
        for (what, values) in [
            ("decide", &row.decide),
            ("context + decide", &row.with_context),
        ] {
            let cells: Vec<String> = values.iter().map(|v| format!("{v:.0}")).collect();
            println!(
                "| {} | {what} | {:.1} | {} |",
                row.n,
                row.compile_ms,
                cells.join(" | ")
            );
        }
    }
    println!();
    let (small, large) = (&rows[0], &rows[rows.len() - 1]);
    println!(
        "allow, {} vs {} grants: decide {:.2}×, context + decide {:.2}×",
        large.n,
        small.n,
        large.decide[0] / small.decide[0],
        large.with_context[0] / small.with_context[0]
    );
}
