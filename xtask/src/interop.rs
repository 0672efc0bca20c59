//! `cargo xtask interop`: install the Debian peers, start each on 127.0.0.1, check it answers.
//!
//! The crates' own interop tests start the peers they need through the `peers` crate; this
//! command is the quick proof that a machine can run them, and the first thing to run when an
//! interop test fails for a reason that looks like the environment. It also runs the one check
//! that needs more than a test can set up: two corosync nodes in network namespaces
//! (`twonode.rs`).

use std::io::Write;
use std::process::{Command, Stdio};

use crate::util::{in_ci, Result};

pub(crate) fn run() -> Result {
    peers::ensure_packages(peers::PEER_PACKAGES).map_err(|e| e.to_string())?;
    let mut failures = Vec::new();
    for (name, check) in [
        ("gearmand and the gearman CLI", gearman as fn() -> Result<String>),
        ("nginx", nginx),
        ("corosync", corosync),
        ("corosync, two nodes (groupmsg)", two_nodes),
        ("the fetch farm on gearmand and corosync", farm_on_real_peers),
    ] {
        match check() {
            Ok(what) => println!("  {name}: {what}"),
            Err(e) => {
                println!("  {name}: FAILED: {e}");
                failures.push(name);
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else if in_ci() {
        Err(format!("peers that could not start or answer: {}", failures.join(", ")))
    } else {
        Err(format!(
            "peers that could not start or answer: {} (a missing peer is a failure)",
            failures.join(", ")
        ))
    }
}

fn gearman() -> Result<String> {
    let server = peers::Gearmand::start(&[]).map_err(|e| e.to_string())?;
    let version = server.version().map_err(|e| e.to_string())?;
    if !version.starts_with("OK 1.1.") {
        return Err(format!("unexpected version answer {version:?}"));
    }
    let gearman = peers::require_binary("gearman", "gearman-tools").map_err(|e| e.to_string())?;
    let port = server.port().to_string();
    // A real round trip through the CLI: a worker that runs `tr`, and a client job.
    let mut worker = Command::new(&gearman)
        .args(["-w", "-h", "127.0.0.1", "-p", &port, "-f", "upper", "--", "tr", "a-z", "A-Z"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut client = Command::new(&gearman)
        .args(["-h", "127.0.0.1", "-p", &port, "-f", "upper"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    client.stdin.take().expect("piped").write_all(b"interop").map_err(|e| e.to_string())?;
    let out = client.wait_with_output().map_err(|e| e.to_string())?;
    let _ = worker.kill();
    let _ = worker.wait();
    let got = String::from_utf8_lossy(&out.stdout);
    if got.trim() != "INTEROP" {
        return Err(format!(
            "gearman CLI round trip returned {got:?} (stderr {:?})",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(format!("{version} on port {port}; CLI worker and client round trip ok"))
}

/// The demo's options for real servers: the farm with its jobs on gearmand and its group on
/// corosync. It runs as the `farm` program built with the `corosync` feature, which the
/// default xtask leaves out so that `cargo xtask demo` needs no libcpg (and a separate program,
/// so that the running xtask binary is not rebuilt under itself).
fn farm_on_real_peers() -> Result<String> {
    let gearmand = peers::Gearmand::start(&[]).map_err(|e| e.to_string())?;
    let _corosync = peers::Corosync::start().map_err(|e| e.to_string())?;
    let addr = gearmand.addr().to_string();
    let out = Command::new("cargo")
        .args(["run", "--quiet", "--package", "farm", "--features", "corosync", "--"])
        .args(["--urls", "300", "--workers", "2", "--gearmand", &addr, "--corosync"])
        .current_dir(peers::workspace_root())
        .output()
        .map_err(|e| e.to_string())?;
    let report = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !report.contains("check       OK") {
        return Err(format!("{report}{}", String::from_utf8_lossy(&out.stderr)));
    }
    let requeue = report.lines().find(|l| l.contains("requeue")).unwrap_or_default();
    let requeue = requeue.trim().trim_start_matches("requeue").trim();
    Ok(format!("checks passed; {requeue}"))
}

fn nginx() -> Result<String> {
    let server = peers::Nginx::start(&peers::NginxConfig::default()).map_err(|e| e.to_string())?;
    let (status, body) = server.get("/ping").map_err(|e| e.to_string())?;
    if !status.contains(" 200 ") || body != b"pong" {
        return Err(format!("GET /ping answered {status:?} with {} bytes", body.len()));
    }
    Ok(format!("{status} on port {}", server.port()))
}

fn corosync() -> Result<String> {
    let daemon = peers::Corosync::start().map_err(|e| e.to_string())?;
    Ok(format!("single node on 127.0.0.1 (pid {}), CPG service answering", daemon.pid()))
}

fn two_nodes() -> Result<String> {
    if !rustix_is_root() {
        return Err("needs root (network and mount namespaces)".into());
    }
    crate::twonode::run()
}

fn rustix_is_root() -> bool {
    // Running as root is what creating namespaces needs; `id -u` answers without a dependency.
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
