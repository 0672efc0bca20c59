//! Building the C harnesses that benchmarks compare against, with Debian's libraries.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::workspace_root;

/// Compiles one C file with `cc -O2` against the pkg-config packages named, into
/// `target/c-harness/NAME`, and returns the binary's path. Rebuilds only when the source is
/// newer than the binary.
pub fn build_c(source: &Path, name: &str, pkg_config: &[&str]) -> io::Result<PathBuf> {
    let out_dir = workspace_root().join("target").join("c-harness");
    std::fs::create_dir_all(&out_dir)?;
    let out = out_dir.join(name);
    let fresh = match (std::fs::metadata(source), std::fs::metadata(&out)) {
        (Ok(src), Ok(bin)) => bin.modified()? >= src.modified()?,
        _ => false,
    };
    if fresh {
        return Ok(out);
    }
    let flags = if pkg_config.is_empty() {
        String::new()
    } else {
        let o =
            Command::new("pkg-config").arg("--cflags").arg("--libs").args(pkg_config).output()?;
        if !o.status.success() {
            return Err(io::Error::other(format!(
                "pkg-config {}: {}",
                pkg_config.join(" "),
                String::from_utf8_lossy(&o.stderr)
            )));
        }
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let status = Command::new("cc")
        .args(["-O2", "-Wall", "-o"])
        .arg(&out)
        .arg(source)
        .args(flags.split_whitespace())
        .arg("-lpthread")
        .status()?;
    if status.success() {
        Ok(out)
    } else {
        Err(io::Error::other(format!("cc failed for {}", source.display())))
    }
}
