//! `cargo xtask ci`: what CI runs, and what a developer runs before committing.

use crate::util::{cmd, step, Result};

/// Feature sets each crate is checked with: off (the defaults) and every feature on. Features
/// are additive, so these two bracket every combination that can change behaviour.
const FEATURE_SETS: &[(&str, &[&str])] =
    &[("default features", &[]), ("all features", &["--all-features"])];

/// The library crates. Each is also linted on its own: cargo unifies features across one
/// workspace invocation, so a crate that another member uses with a feature (the benches use
/// `jobclient/server`) is never built without it in a workspace-wide run.
const CRATES: &[&str] = &["evcore", "reqqueue", "jobclient", "groupmsg", "multixfer"];

pub(crate) fn run() -> Result {
    step("tidy", crate::tidy::run)?;
    step("clippy, each crate alone with its defaults", || {
        for krate in CRATES {
            cmd(
                "cargo",
                &["clippy", "--package", krate, "--all-targets", "--quiet", "--", "-D", "warnings"],
                &[],
            )?;
        }
        Ok(())
    })?;
    for (name, flags) in FEATURE_SETS {
        step(&format!("clippy, {name}"), || {
            let mut args = vec!["clippy", "--workspace", "--all-targets", "--quiet"];
            args.extend_from_slice(flags);
            args.extend_from_slice(&["--", "-D", "warnings"]);
            cmd("cargo", &args, &[])
        })?;
    }
    for (name, flags) in FEATURE_SETS {
        step(&format!("tests and doc tests, {name}"), || {
            let mut args = vec!["test", "--workspace"];
            args.extend_from_slice(flags);
            cmd("cargo", &args, &[])
        })?;
    }
    step("rustdoc, warnings as errors", || {
        cmd(
            "cargo",
            &["doc", "--workspace", "--no-deps", "--all-features", "--quiet"],
            &[("RUSTDOCFLAGS", "-D warnings")],
        )
    })?;
    step("interop with the real peers", crate::interop::run)?;
    // The fetch farm at a small size: its own checks fail the run if anything is lost or wrong.
    let small: Vec<String> = ["--urls", "400", "--workers", "2"].map(String::from).to_vec();
    step("demo", || crate::demo::run(&small))?;
    println!("\nci: all steps passed");
    Ok(())
}
