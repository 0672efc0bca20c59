//! `cargo xtask ci`: what CI runs, and what a developer runs before committing.

use crate::util::{cmd, step, Result};

/// Feature sets each crate is checked with: off (the defaults) and every feature on. Features
/// are additive, so these two bracket every combination that can change behaviour.
const FEATURE_SETS: &[(&str, &[&str])] =
    &[("default features", &[]), ("all features", &["--all-features"])];

/// The library crates. Each is also linted on its own: cargo unifies features across one
/// workspace invocation, so a crate that another member uses with a feature (the benches use
/// `jobclient/server`) is never built without it in a workspace-wide run. These are also the
/// packages `cargo package` checks (`evstack-core` is the package of the `evcore` library:
/// that name on crates.io belongs to another project).
const CRATES: &[&str] = &["evstack-core", "reqqueue", "jobclient", "groupmsg", "multixfer"];

pub(crate) fn run() -> Result {
    // The free disk, first: a run that dies of a full disk says so in the middle of a
    // compiler error, and this line tells what it started with.
    let _ = cmd("df", &["-h", "."], &[]);
    // Before anything builds: the all-features builds link Debian's libcpg, and the interop
    // tests need the real peers. Installed as root; anyone else is told the one command to run.
    step("the Debian peers and C libraries", || {
        peers::ensure_packages(peers::PEER_PACKAGES).map_err(|e| e.to_string())
    })?;
    step("tidy", crate::tidy::run)?;
    step("default features need no C library", default_resolve_links_no_c)?;
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
    step("cargo package, the published crates", || {
        // Each crate's tarball is built and compiled on its own, against the others' tarballs:
        // what crates.io would take. (Dirty is allowed: CI's checkout may hold build files.)
        // Cargo takes a registry crate of a given version for immutable, so sources unpacked
        // and artifacts built by an earlier run would be used again: both go first, and the
        // tarballs build in a target directory of their own.
        forget_packaged_sources()?;
        let target = peers::workspace_root().join("target").join("package-verify");
        if target.exists() {
            std::fs::remove_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
        }
        let target = target.to_string_lossy().into_owned();
        let mut args = vec!["package", "--allow-dirty", "--quiet", "--target-dir", &target];
        for krate in CRATES {
            args.extend_from_slice(&["--package", krate]);
        }
        cmd("cargo", &args, &[])
    })?;
    step("interop with the real peers", crate::interop::run)?;
    // Every decoder under libFuzzer for a little while; `cargo xtask fuzz` runs it for long.
    let short: Vec<String> = ["--time", "10"].map(String::from).to_vec();
    step("fuzz, short", || crate::fuzz::run(&short))?;
    // The fetch farm at a small size: its own checks fail the run if anything is lost or wrong.
    let small: Vec<String> = ["--urls", "400", "--workers", "2"].map(String::from).to_vec();
    step("demo", || crate::demo::run(&small))?;
    println!("\nci: all steps passed");
    Ok(())
}

/// Features that link a C library: none may be on in the workspace's default resolve, so that
/// `cargo build --workspace` and `cargo test --workspace` work on a machine without them.
/// Cargo unpacks the tarballs of `cargo package`'s temporary registry under
/// `$CARGO_HOME/registry/src/-HASH/NAME-VERSION` and reuses what it finds there, so a second
/// run with the same version would verify against the first run's sources. Those copies go.
fn forget_packaged_sources() -> Result {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")));
    let Some(src) = home.map(|h| h.join("registry").join("src")) else { return Ok(()) };
    let Ok(registries) = std::fs::read_dir(&src) else { return Ok(()) };
    for registry in registries.flatten() {
        // The temporary registry has no host in its name: `-HASH`.
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        for krate in CRATES {
            let dir = registry.path().join(format!("{krate}-{}", env!("CARGO_PKG_VERSION")));
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
        }
    }
    Ok(())
}

const C_FEATURES: &[(&str, &str)] = &[("groupmsg", "corosync")];

/// Checks with `cargo tree -e features` that the default resolve of the whole workspace turns
/// on no feature that links C (the benches once turned on `groupmsg/corosync` for everyone).
fn default_resolve_links_no_c() -> Result {
    let mut on = Vec::new();
    for (krate, feature) in C_FEATURES {
        let out = std::process::Command::new("cargo")
            .args(["tree", "--workspace", "--edges", "features", "--prefix", "none", "--quiet"])
            .args(["--invert", krate])
            .current_dir(peers::workspace_root())
            .output()
            .map_err(|e| format!("cargo tree: {e}"))?;
        if !out.status.success() {
            return Err(format!("cargo tree failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let tree = String::from_utf8_lossy(&out.stdout);
        let needle = format!("{krate} feature \"{feature}\"");
        if tree.lines().any(|l| l.starts_with(&needle)) {
            on.push(format!("{krate}/{feature}"));
        }
    }
    if on.is_empty() {
        Ok(())
    } else {
        Err(format!("the default workspace build turns on C-linking features: {}", on.join(", ")))
    }
}
