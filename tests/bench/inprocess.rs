//! What the in-process micro-benchmarks (`minimise`, `record`) share: a timing loop bounded by
//! count and time, and the shipped policies. Included by each with `#[path]`.

use std::time::{Duration, Instant};

/// Nanoseconds per call of `f`: median of 5 runs of at most `max_iters` calls or 400 ms.
pub fn measure(max_iters: u64, mut f: impl FnMut()) -> f64 {
    for _ in 0..max_iters.min(50) {
        f(); // warm-up
    }
    let mut runs = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let mut n = 0u64;
        while n < max_iters && start.elapsed() < Duration::from_millis(400) {
            f();
            n += 1;
        }
        runs.push(start.elapsed().as_nanos() as f64 / n as f64);
    }
    runs.sort_by(|a, b| a.total_cmp(b));
    runs[2]
}

/// The repository's `policies/` and `schemas/`, compiled; exits with the diagnostics if they
/// do not load.
pub fn shipped_policies() -> doelpoort::policy::PolicySet {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (set, diagnostics) = doelpoort::policy::compile::load(
        &repo.join("policies"),
        &repo.join("schemas"),
        doelpoort::policy::today(),
    );
    set.unwrap_or_else(|| {
        for d in diagnostics {
            eprintln!("{d}");
        }
        std::process::exit(1);
    })
}

/// The shipped grant both micro-benchmarks minimise with (`wijkteam-uwv-inkomen-onderzoek`:
/// kinds of income and benefit, whether there is income, the year a benefit started), and the
/// UWV income answer's schema.
pub fn investigation_grant(
    set: &doelpoort::policy::PolicySet,
) -> (
    &doelpoort::policy::Grant,
    &doelpoort::minimise::StrictSchema,
) {
    let grant = set
        .grants
        .iter()
        .find(|g| g.id == "wijkteam-uwv-inkomen-onderzoek")
        .expect("shipped grant");
    let schema = set
        .strict_schema("uwv-inkomen.response.schema.json")
        .expect("shipped schema");
    (grant, schema)
}
