//! `cargo xtask bench`: criterion benchmarks (ours and the Rust peers in the same run), the C
//! peers, and a table of ratios read from criterion's estimates; then the tables of the
//! benchmarks that run against live servers (`benches/benches/gearman.rs`).

use std::path::{Path, PathBuf};

use crate::util::{cmd, Result};

/// Where a peer's figure comes from.
enum Peer {
    /// A criterion benchmark of the same run.
    Criterion(&'static str),
    /// A C harness of ours over a Debian library: `(harness, workload, operations per round)`.
    C(&'static str, &'static str, u64),
}

/// One comparison: our benchmark, the peer's, and the target the issue set.
struct Pair {
    what: &'static str,
    ours: &'static str,
    peer: Peer,
    /// Our time over the peer's must be at most this (1.0: no slower).
    target_ratio: f64,
    /// An absolute ceiling on our time per operation, in nanoseconds, if the issue names one.
    target_ns: Option<f64>,
}

/// The C harnesses: name, source under `benches/c/`, pkg-config packages.
const HARNESSES: &[(&str, &str, &[&str])] = &[("tevent_bench", "tevent_bench.c", &["tevent"])];

/// Rounds per C workload per run; the harness prints the median.
const C_ROUNDS: u32 = 5;

const PAIRS: &[Pair] = &[
    Pair {
        what: "timer insert+cancel, 100k live (vs tokio)",
        ours: "timers/evcore_insert_cancel/100000",
        peer: Peer::Criterion("timers/tokio_insert_cancel/100000"),
        target_ratio: 1.0,
        target_ns: Some(15.0),
    },
    Pair {
        what: "timer insert+cancel, 1M live (vs tokio)",
        ours: "timers/evcore_insert_cancel/1000000",
        peer: Peer::Criterion("timers/tokio_insert_cancel/1000000"),
        target_ratio: 1.0,
        target_ns: None,
    },
    Pair {
        what: "remote schedule, 1 sender (vs mpsc + eventfd)",
        ours: "remote/evcore_remote/1",
        peer: Peer::Criterion("remote/std_mpsc_wake/1"),
        target_ratio: 1.0,
        target_ns: Some(50.0),
    },
    Pair {
        what: "remote schedule, 2 senders (vs mpsc + eventfd)",
        ours: "remote/evcore_remote/2",
        peer: Peer::Criterion("remote/std_mpsc_wake/2"),
        target_ratio: 1.0,
        target_ns: Some(50.0),
    },
    Pair {
        what: "non-blocking reactor turn (vs bare epoll_pwait)",
        ours: "reactor/loop_turn_nonblocking",
        peer: Peer::Criterion("reactor/epoll_wait_nonblocking"),
        target_ratio: 1.5,
        target_ns: None,
    },
    Pair {
        what: "queue bulk, 100k at once (vs libtevent)",
        ours: "reqqueue/bulk_reqqueue",
        peer: Peer::C("tevent_bench", "bulk", 100_000),
        target_ratio: 0.25,
        target_ns: None,
    },
    Pair {
        what: "queue bulk, 100k at once (vs tokio Mutex)",
        ours: "reqqueue/bulk_reqqueue",
        peer: Peer::Criterion("reqqueue/bulk_tokio_mutex"),
        target_ratio: 1.0,
        target_ns: None,
    },
    Pair {
        what: "queue one at a time, add (vs libtevent)",
        ours: "reqqueue/one_add_reqqueue",
        peer: Peer::C("tevent_bench", "one_add", 100_000),
        target_ratio: 1.0,
        target_ns: None,
    },
    Pair {
        what: "queue one at a time, optimize_empty (vs libtevent)",
        ours: "reqqueue/one_opt_reqqueue",
        peer: Peer::C("tevent_bench", "one_opt", 100_000),
        target_ratio: 1.0,
        target_ns: None,
    },
    Pair {
        what: "queue one at a time (vs tokio Mutex)",
        ours: "reqqueue/one_add_reqqueue",
        peer: Peer::Criterion("reqqueue/one_lock_tokio_mutex"),
        target_ratio: 1.0,
        target_ns: None,
    },
    Pair {
        what: "uncontended enter+release (vs tevent_queue_wait)",
        ours: "reqqueue/try_enter_reqqueue",
        peer: Peer::C("tevent_bench", "enter", 100_000),
        target_ratio: 1.0,
        target_ns: Some(15.0),
    },
    Pair {
        what: "uncontended enter().await+release (vs tokio lock().await)",
        ours: "reqqueue/enter_await_reqqueue",
        peer: Peer::Criterion("reqqueue/lock_await_tokio_mutex"),
        target_ratio: 1.0,
        target_ns: None,
    },
    Pair {
        what: "cross-thread schedule (vs tevent_thread_proxy)",
        ours: "remote/evcore_remote/1",
        peer: Peer::C("tevent_bench", "proxy", 100_000),
        target_ratio: 0.1,
        target_ns: None,
    },
    Pair {
        what: "cross-thread round trip (vs tevent_thread_proxy)",
        ours: "remote/pingpong_evcore",
        peer: Peer::C("tevent_bench", "pingpong", 20_000),
        target_ratio: 1.0,
        target_ns: None,
    },
];

pub(crate) fn run(args: &[String]) -> Result {
    peers::ensure_packages(peers::PEER_PACKAGES).map_err(|e| e.to_string())?;
    let root = peers::workspace_root();
    let mut binaries = std::collections::HashMap::new();
    for (name, source, pkgs) in HARNESSES {
        let bin = peers::build_c(&root.join("benches").join("c").join(source), name, pkgs)
            .map_err(|e| e.to_string())?;
        binaries.insert(*name, bin);
    }
    // The C peers run before and after criterion; each figure is the mean of the two medians,
    // so drift in a noisy machine over the run shows rather than hides.
    let before = run_c(&binaries)?;
    let mut cargo_args =
        vec!["bench", "--package", "benches", "--features", "corosync,rust-peers,tls", "--"];
    let filter: Vec<&str> = args.iter().map(String::as_str).collect();
    cargo_args.extend_from_slice(&filter);
    cmd("cargo", &cargo_args, &[])?;
    let after = run_c(&binaries)?;
    let criterion = root.join("target").join("criterion");
    println!("\n| comparison | ours | peer | ours/peer | target | met |");
    println!("|---|---|---|---|---|---|");
    for pair in PAIRS {
        let Some(ours) = median_ns(&criterion, pair.ours) else { continue };
        let peer = match pair.peer {
            Peer::Criterion(id) => median_ns(&criterion, id),
            Peer::C(h, w, _) => {
                let key = format!("{h}/{w}");
                match (before.get(&key), after.get(&key)) {
                    (Some(a), Some(b)) => Some((a + b) / 2.0),
                    _ => None,
                }
            }
        };
        let Some(peer) = peer else { continue };
        let ratio = ours / peer;
        let mut met = ratio <= pair.target_ratio;
        let mut target = format!("≤ {:.2}x", pair.target_ratio);
        if let Some(ns) = pair.target_ns {
            met &= ours <= ns;
            target.push_str(&format!(" and ≤ {ns} ns"));
        }
        println!(
            "| {} | {} | {} | {ratio:.3} | {target} | {} |",
            pair.what,
            fmt_ns(ours),
            fmt_ns(peer),
            if met { "yes" } else { "no" }
        );
    }
    // Benchmarks against live servers (not criterion) write their own tables.
    let results = root.join("target").join("peer-results");
    if let Ok(entries) = std::fs::read_dir(&results) {
        let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "md")) {
            println!("\n{}", std::fs::read_to_string(f).unwrap_or_default());
        }
    }
    Ok(())
}

/// Runs every C workload named in `PAIRS` once: `harness/workload` to median ns per op.
fn run_c(
    binaries: &std::collections::HashMap<&str, PathBuf>,
) -> Result<std::collections::HashMap<String, f64>> {
    let mut out = std::collections::HashMap::new();
    for pair in PAIRS {
        let Peer::C(h, w, n) = pair.peer else { continue };
        let key = format!("{h}/{w}");
        if out.contains_key(&key) {
            continue;
        }
        let bin = &binaries[h];
        let o = std::process::Command::new(bin)
            .args([w, &n.to_string(), &C_ROUNDS.to_string()])
            .output()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let text = String::from_utf8_lossy(&o.stdout);
        let ns: f64 =
            text.split_whitespace().nth(1).and_then(|v| v.parse().ok()).ok_or_else(|| {
                format!("{key}: unexpected output {text:?} {}", String::from_utf8_lossy(&o.stderr))
            })?;
        println!("C peer {key}: {}", fmt_ns(ns));
        out.insert(key, ns);
    }
    Ok(out)
}

/// The median time per iteration, in nanoseconds, of one criterion benchmark.
fn median_ns(root: &Path, id: &str) -> Option<f64> {
    let path = root.join(id).join("new").join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}
