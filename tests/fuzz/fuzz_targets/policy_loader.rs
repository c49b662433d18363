//! Fuzz target `policy_loader`: `policy::compile::load` on one arbitrary YAML policy file.
//!
//! Each input is written as `policy.yaml` into a fresh directory under the system temp
//! directory, next to an empty `schemas` directory, and loaded with the date 2026-11-24. The
//! directory is removed afterwards (a crash leaves it behind for inspection).
//!
//! Invariants:
//! * nothing panics, whatever the file holds (errors are the expected outcome);
//! * a policy set is returned exactly when there is no error diagnostic;
//! * loading is deterministic: the same file gives the same diagnostics (as a set) and the
//!   same policy version.
#![no_main]

use doelpoort::policy::compile;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "doelpoort-fuzz-policy-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(path.join("policies")).expect("create temp policy dir");
        std::fs::create_dir_all(path.join("schemas")).expect("create temp schema dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = TempDir::new();
    let policies = dir.0.join("policies");
    let schemas = dir.0.join("schemas");
    std::fs::write(policies.join("policy.yaml"), data).expect("write policy file");
    let today = time::macros::date!(2026 - 11 - 24);

    let (set, diagnostics) = compile::load(&policies, &schemas, today);
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    assert_eq!(
        set.is_some(),
        errors == 0,
        "a policy set must be returned exactly when there is no error ({errors} errors)"
    );

    let (again, diagnostics_again) = compile::load(&policies, &schemas, today);
    assert_eq!(again.is_some(), set.is_some(), "loading is not deterministic");
    // Compared as sorted lists: messages at the same place may come in any order.
    let sorted = |d: &[doelpoort::diagnostic::Diagnostic]| {
        let mut v: Vec<String> = d.iter().map(|d| format!("{d:?}")).collect();
        v.sort();
        v
    };
    assert_eq!(
        sorted(&diagnostics),
        sorted(&diagnostics_again),
        "diagnostics differ between two loads of the same file"
    );
    if let (Some(a), Some(b)) = (&set, &again) {
        assert_eq!(a.version, b.version, "policy version differs between two loads");
    }
});
