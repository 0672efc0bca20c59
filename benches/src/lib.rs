//! Benchmarks of the workspace, run by `cargo xtask bench`, which reads criterion's estimates
//! and prints each comparison as a ratio against its peer measured in the same run.
//!
//! - `timers`: insert+cancel on the reactor's timing wheel with 100,000 and 1,000,000 timers
//!   live, against tokio's timer (a `Sleep` registered by one poll, then dropped).
//! - `remote`: closures scheduled onto a loop from one and two threads through
//!   `evcore::Remote`, against `std::sync::mpsc` plus an eventfd wake into epoll, coalesced.
//! - `reactor`: one non-blocking turn of `Loop`, against a bare `epoll_pwait` on the same set.
//! - `reqqueue`: reqqueue against tokio's `Mutex`; `cargo xtask bench` runs the libtevent C
//!   harness (`c/tevent_bench.c`) on the same workloads.
//! - `gearman` (not criterion): jobclient and our server against libgearman and gearmand, on
//!   live servers, three alternating rounds per workload (`c/gearman_bench.c`).
//!
//! - `groupmsg` (not criterion; feature `corosync`, since it links libcpg): the corosync backend
//!   against a libcpg C harness, the local backend in-process and through `groupd`.
//!
//! `cargo xtask bench` runs them all as
//! `cargo bench --package benches --features corosync,rust-peers` (plus the C harnesses); one
//! alone is `cargo bench --package benches --features corosync,rust-peers --bench NAME`.
//! Without `corosync`, the benches crate links no C library, so that `cargo test --workspace`
//! needs none; without `rust-peers` it builds none of the Rust crates we compare with
//! (rustygear, for the shared Gearman client).
//!
//! Shared helpers for the bench files live here.

use std::time::Duration;

use criterion::Criterion;

/// Criterion settings for this machine class: short enough that the whole suite runs in a few
/// minutes on 2 cores, long enough for stable medians.
pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .without_plots()
}
