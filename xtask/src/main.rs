//! The workspace's automation, in Rust, run as `cargo xtask <command>` (an alias in
//! `.cargo/config.toml`).
//!
//! - `ci`: everything CI checks, in order, failing fast: the Debian peers installed first (as
//!   root; otherwise it stops naming the `apt-get install` line), tidy (formatting and
//!   forbidden patterns), a check that the default features link no C library, clippy with
//!   warnings as errors on all targets with each feature set, tests and doc tests with each
//!   feature set, rustdoc with warnings as errors, `cargo package` of the five published
//!   crates (each compiled from its tarball), the interop smoke test against the real
//!   peers, ten seconds of fuzzing per decoder, and the demo.
//! - `demo`: the end-to-end showcase on embedded defaults: the fetch farm of `xtask/farm`
//!   (`--urls`, `--workers`, `--parallel`, `--jobs`, `--gearmand HOST:PORT`, `--corosync`).
//! - `bench`: criterion benchmarks plus the C peers, then a table of ratios.
//! - `interop`: installs the Debian peers, starts them on 127.0.0.1 and checks each answers.
//! - `fuzz [--time SECONDS] [TARGET...]`: coverage-guided fuzzing of every decoder
//!   (`fuzz.rs`); ten minutes per target by default.
//!
//! With `CI=true` a peer that cannot be installed or started is a failure; elsewhere too, since
//! a missing peer is never a reason to pass.

mod bench;
mod ci;
mod demo;
mod fuzz;
mod interop;
mod tidy;
mod twonode;
mod util;

use std::process::ExitCode;

const USAGE: &str =
    "usage: cargo xtask <ci | demo | bench [FILTER] | interop | fuzz [--time SECONDS] [TARGET...]>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci::run(),
        Some("demo") => demo::run(&args[1..]),
        // The farm's worker processes (not for direct use).
        Some("demo-worker") => demo::worker(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("interop") => interop::run(),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("tidy") => tidy::run(),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
