//! `cargo xtask fuzz [--time SECONDS] [TARGET...]`: coverage-guided fuzzing of every decoder
//! with cargo-fuzz and libFuzzer (`--sanitizer none`, so it runs on the stable toolchain).
//!
//! The targets are `xtask/fuzz/fuzz_targets/*.rs`; their bodies are in `xtask/fuzzers`, which
//! plain `cargo test` also runs on seeded inputs. Each target runs for `--time` seconds
//! (default 600; `cargo xtask ci` runs 10). The corpus grows under `target/fuzz-corpus/NAME`
//! and starts from `xtask/fuzzers/regressions/NAME`. A crash leaves its input under
//! `xtask/fuzz/artifacts/NAME/`: fix the bug, and copy the input into
//! `xtask/fuzzers/regressions/NAME/` so that `cargo test` replays it for ever.
//!
//! cargo-fuzz is installed with `cargo install cargo-fuzz --locked` when missing.

use crate::util::{cmd, Result};

/// The targets, as `xtask/fuzzers` names them.
const TARGETS: &[&str] =
    &["gearman_packets", "gearman_server", "journal", "groupd_frames", "http_response", "url_glob"];

pub(crate) fn run(args: &[String]) -> Result {
    let mut seconds = 600u64;
    let mut chosen: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--time" => {
                seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--time needs a number of seconds")?;
            }
            name => match TARGETS.iter().find(|t| **t == name) {
                Some(t) => chosen.push(t),
                None => {
                    return Err(format!(
                        "unknown fuzz target {name} (targets: {})",
                        TARGETS.join(", ")
                    ))
                }
            },
        }
    }
    if chosen.is_empty() {
        chosen = TARGETS.to_vec();
    }
    ensure_cargo_fuzz()?;
    let root = peers::workspace_root();
    let fuzz_dir = root.join("xtask").join("fuzz");
    let fuzz_dir = fuzz_dir.to_str().ok_or("non-UTF-8 path")?;
    cmd("cargo", &["fuzz", "build", "--fuzz-dir", fuzz_dir, "--sanitizer", "none", "-O"], &[])?;
    for target in chosen {
        let corpus = root.join("target").join("fuzz-corpus").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        let seeds = root.join("xtask").join("fuzzers").join("regressions").join(target);
        let mut args = vec![
            "fuzz".to_string(),
            "run".into(),
            "--fuzz-dir".into(),
            fuzz_dir.into(),
            "--sanitizer".into(),
            "none".into(),
            "-O".into(),
            target.into(),
            corpus.display().to_string(),
        ];
        if seeds.is_dir() {
            args.push(seeds.display().to_string());
        }
        args.extend([
            "--".into(),
            format!("-max_total_time={seconds}"),
            // A glob may legitimately name ten million URLs; anything past this is a leak.
            "-rss_limit_mb=3072".into(),
            "-print_final_stats=1".into(),
        ]);
        println!("fuzz: {target} for {seconds} s");
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        cmd("cargo", &argv, &[]).map_err(|e| {
            format!(
                "{e}\nfuzz target {target} failed: its input is under xtask/fuzz/artifacts/{target}/; \
                 once fixed, copy it into xtask/fuzzers/regressions/{target}/"
            )
        })?;
    }
    Ok(())
}

fn ensure_cargo_fuzz() -> Result {
    let present = std::process::Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    println!("fuzz: installing cargo-fuzz (cargo install cargo-fuzz --locked)");
    cmd("cargo", &["install", "cargo-fuzz", "--locked", "--quiet"], &[])
}
