//! `cargo xtask bench`: criterion benchmarks (ours and the Rust peers in the same run), the C
//! peers, and a table of ratios read from criterion's estimates.

use std::path::Path;

use crate::util::{cmd, Result};

/// One comparison: our benchmark, the peer's, and the target the issue set.
struct Pair {
    what: &'static str,
    ours: &'static str,
    peer: &'static str,
    /// Our time over the peer's must be at most this (1.0: no slower).
    target_ratio: f64,
    /// An absolute ceiling on our time per operation, in nanoseconds, if the issue names one.
    target_ns: Option<f64>,
}

const PAIRS: &[Pair] = &[
    Pair {
        what: "timer insert+cancel, 100k live",
        ours: "timers/evcore_insert_cancel/100000",
        peer: "timers/tokio_insert_cancel/100000",
        target_ratio: 1.0,
        target_ns: Some(15.0),
    },
    Pair {
        what: "timer insert+cancel, 1M live",
        ours: "timers/evcore_insert_cancel/1000000",
        peer: "timers/tokio_insert_cancel/1000000",
        target_ratio: 1.0,
        target_ns: None,
    },
    Pair {
        what: "remote schedule, 1 sender (per closure)",
        ours: "remote/evcore_remote/1",
        peer: "remote/std_mpsc_wake/1",
        target_ratio: 1.0,
        target_ns: Some(50.0),
    },
    Pair {
        what: "remote schedule, 2 senders (per closure)",
        ours: "remote/evcore_remote/2",
        peer: "remote/std_mpsc_wake/2",
        target_ratio: 1.0,
        target_ns: Some(50.0),
    },
    Pair {
        what: "non-blocking reactor turn (vs bare epoll_pwait)",
        ours: "reactor/loop_turn_nonblocking",
        peer: "reactor/epoll_wait_nonblocking",
        target_ratio: 1.5,
        target_ns: None,
    },
];

pub(crate) fn run(args: &[String]) -> Result {
    let mut cargo_args = vec!["bench", "--package", "benches", "--"];
    let filter: Vec<&str> = args.iter().map(String::as_str).collect();
    cargo_args.extend_from_slice(&filter);
    cmd("cargo", &cargo_args, &[])?;
    let root = peers::workspace_root().join("target").join("criterion");
    println!("\n| comparison | ours | peer | ours/peer | target | met |");
    println!("|---|---|---|---|---|---|");
    for pair in PAIRS {
        let (Some(ours), Some(peer)) = (median_ns(&root, pair.ours), median_ns(&root, pair.peer))
        else {
            continue;
        };
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
    Ok(())
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
