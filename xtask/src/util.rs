//! Running commands and timing steps.

use std::process::Command;
use std::time::Instant;

/// The error type of xtask: a message for the person running it.
pub(crate) type Result<T = ()> = std::result::Result<T, String>;

/// Runs a command in the workspace root, inheriting output; fails with the command line.
pub(crate) fn cmd(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(peers::workspace_root());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd.status().map_err(|e| format!("{program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

/// Runs one named step, printing its duration.
pub(crate) fn step(name: &str, f: impl FnOnce() -> Result) -> Result {
    println!("\n==> {name}");
    let start = Instant::now();
    let result = f();
    let secs = start.elapsed().as_secs_f64();
    match &result {
        Ok(()) => println!("<== {name}: ok ({secs:.1} s)"),
        Err(e) => println!("<== {name}: FAILED ({secs:.1} s): {e}"),
    }
    result
}

/// Whether this runs under CI (`CI=true`).
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}
