//! Build script: the source revision for `doelpoort_build_info{revision}` and `/version`.
//!
//! From `DOELPOORT_REVISION` when the build sets it (a release pipeline building from a
//! tarball), else from git, else `unknown`. Never fails the build.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=DOELPOORT_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let revision = std::env::var("DOELPOORT_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .filter(|r| {
            r.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=DOELPOORT_REVISION={revision}");
}
