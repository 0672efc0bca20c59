//! Tidy checks: formatting, and patterns that hide unfinished or unfailable work.

use std::path::{Path, PathBuf};

use crate::util::{cmd, Result};

/// Source directories the checks walk.
const CRATES: &[&str] =
    &["evcore", "jobclient", "groupmsg", "reqqueue", "multixfer", "benches", "xtask"];

pub(crate) fn run() -> Result {
    cmd("cargo", &["fmt", "--all", "--", "--check"], &[])?;
    let root = peers::workspace_root();
    let mut problems = Vec::new();
    // Spelled in pieces so that this file does not match itself.
    let forbidden = [
        ["#[ig", "nore]"].concat(),
        ["to", "do!("].concat(),
        ["unimpl", "emented!("].concat(),
        ["db", "g!("].concat(),
        ["should", "_panic"].concat(),
    ];
    for file in rust_files(&root) {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        for (n, line) in text.lines().enumerate() {
            for pattern in &forbidden {
                if line.contains(pattern.as_str()) {
                    problems.push(format!("{}:{}: `{pattern}`", rel(&root, &file), n + 1));
                }
            }
        }
    }
    for krate in ["evcore", "jobclient", "groupmsg", "reqqueue", "multixfer"] {
        let lib = root.join(krate).join("src").join("lib.rs");
        let text = std::fs::read_to_string(&lib).map_err(|e| format!("{}: {e}", lib.display()))?;
        if !text.contains("#![forbid(unsafe_code)]") && !text.contains("#![deny(unsafe_code)]") {
            problems
                .push(format!("{krate}/src/lib.rs: no #![forbid(unsafe_code)] (or deny, for FFI)"));
        }
        if !text.starts_with("//!") {
            problems.push(format!("{krate}/src/lib.rs: does not start with crate docs"));
        }
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap_or_default();
    for command in ["cargo xtask demo", "cargo xtask ci"] {
        if !readme.contains(command) {
            problems.push(format!("README.md does not give `{command}`"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("tidy found:\n  {}", problems.join("\n  ")))
    }
}

fn rel(root: &Path, file: &Path) -> String {
    file.strip_prefix(root).unwrap_or(file).display().to_string()
}

fn rust_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = CRATES.iter().map(|c| root.join(c)).collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
