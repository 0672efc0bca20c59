//! The fetch farm as a program of its own: `farm [demo options]`, the same as
//! `cargo xtask demo`. Interop runs it built with the `corosync` feature, so that the xtask
//! binary itself is never rebuilt under a running `cargo xtask ci`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo-worker") => farm::worker_main(&args[1..]),
        _ => farm::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("farm: {e}");
            ExitCode::FAILURE
        }
    }
}
