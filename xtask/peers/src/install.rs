//! Finding peer binaries, and installing Debian's packages when they are missing.

use std::io;
use std::path::PathBuf;
use std::process::Command;

/// Every Debian package the workspace's tests and benchmarks use.
pub const PEER_PACKAGES: &[&str] = &[
    "gearman-job-server",
    "gearman-tools",
    "libgearman-dev",
    "corosync",
    "libcpg-dev",
    "libcorosync-common-dev",
    "libqb-dev",
    "libtevent-dev",
    "libtalloc-dev",
    "libcurl4-openssl-dev",
    "nginx",
    // A server that speaks only HTTP/2 (nghttpd), for multixfer's HTTP/2.
    "nghttp2-server",
    "pkg-config",
    "curl",
    // `openssl s_client`: a TLS client we did not write, for jobd's TLS port.
    "openssl",
    // A TLS front we did not write, for gearmand (whose `--ssl` speaks plaintext).
    "socat",
    // `promtool check metrics`: Prometheus's own reading of jobd's /metrics.
    "prometheus",
    // A real browser for jobd's status page, driven through WebDriver.
    "chromium",
    "chromium-driver",
    // `ip` for the two-node namespaces, `ss` for the keepalive checks.
    "iproute2",
];

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Installs whichever of `packages` are missing (as root, with `apt-get`); fails naming them
/// when not root.
pub fn ensure_packages(packages: &[&str]) -> io::Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "missing Debian packages: {}; install them as root with: \
                 apt-get update && apt-get install -y --no-install-recommends {}",
                missing.join(" "),
                missing.join(" ")
            ),
        ));
    }
    let update = Command::new("apt-get").args(["update", "-qq"]).status()?;
    if !update.success() {
        return Err(io::Error::other("apt-get update failed"));
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("apt-get install {} failed", missing.join(" "))))
    }
}

/// The path of `binary` (searched in PATH and the sbin directories), installing `package`
/// first if it is missing.
pub fn require_binary(binary: &str, package: &str) -> io::Result<PathBuf> {
    if let Some(path) = find(binary) {
        return Ok(path);
    }
    ensure_packages(&[package])?;
    find(binary).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{binary} not found after installing {package}"),
        )
    })
}

fn find(binary: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"])
        .map(|dir| PathBuf::from(dir).join(binary))
        .find(|p| p.is_file());
    found
}
