//! The `doelpoort` binary; everything lives in the library (see `lib.rs`).
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    doelpoort::cli::main(doelpoort::cli::Cli::parse())
}
