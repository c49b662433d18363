//! The `doelpoort` binary; everything lives in the library (see `lib.rs`).
#![forbid(unsafe_code)]

use clap::Parser;

// mimalloc: JSON parsing and minimisation allocate many small strings and maps per exchange;
// measured ~20 % faster minimisation than the system allocator (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    doelpoort::cli::main(doelpoort::cli::Cli::parse())
}
