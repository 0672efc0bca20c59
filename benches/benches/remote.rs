//! Scheduling closures onto a loop from other threads: `evcore::Remote` against
//! `std::sync::mpsc` plus a wake of the poller, in one run. Reported per closure.

use std::cell::Cell;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use evcore::{Dispatch, Loop, Reactor};

const BATCH: usize = 20_000;

thread_local! {
    /// What the closures do: add the value they carry to a counter on the loop's thread. Each
    /// closure captures 8 bytes, so each is a real allocation, as scheduled work is; nothing
    /// shared is touched, so the figures are the cost of moving the closure, not of the work.
    static SUM: Cell<u64> = const { Cell::new(0) };
    static RAN: Cell<usize> = const { Cell::new(0) };
}

fn job(value: u64) -> impl FnOnce() + Send + 'static {
    move || {
        SUM.with(|s| s.set(s.get().wrapping_add(value)));
        RAN.with(|r| r.set(r.get() + 1));
    }
}

fn ran() -> usize {
    RAN.with(Cell::get)
}

/// Sends `iters` closures split across `senders` threads and runs them on an evcore loop.
fn evcore_remote(iters: u64, senders: usize) -> Duration {
    let mut lp = Loop::new().unwrap();
    let per = (iters as usize).div_ceil(senders);
    let total = ran() + per * senders;
    let start = Instant::now();
    let threads: Vec<_> = (0..senders)
        .map(|_| {
            let remote = lp.remote();
            thread::spawn(move || {
                for i in 0..per {
                    remote.schedule(job(i as u64)).unwrap();
                }
            })
        })
        .collect();
    while ran() < total {
        lp.dispatch(Dispatch::One, |_, _| {}).unwrap();
    }
    let elapsed = start.elapsed();
    for t in threads {
        t.join().unwrap();
    }
    elapsed.mul_f64(iters as f64 / (per * senders) as f64)
}

type Job = Box<dyn FnOnce() + Send>;

/// The same with the obvious hand-written alternative: an mpsc channel of boxed closures, and
/// a poller notification after each send so the loop wakes (polling coalesces notifications
/// that arrive while one is pending, as any eventfd-based wake does).
fn std_mpsc_wake(iters: u64, senders: usize) -> Duration {
    let poller = Arc::new(polling::Poller::new().unwrap());
    let (tx, rx) = mpsc::channel::<Job>();
    let per = (iters as usize).div_ceil(senders);
    let total = ran() + per * senders;
    let start = Instant::now();
    let threads: Vec<_> = (0..senders)
        .map(|_| {
            let (tx, poller) = (tx.clone(), poller.clone());
            thread::spawn(move || {
                for i in 0..per {
                    tx.send(Box::new(job(i as u64))).unwrap();
                    poller.notify().unwrap();
                }
            })
        })
        .collect();
    let mut events = polling::Events::new();
    while ran() < total {
        events.clear();
        poller.wait(&mut events, None).unwrap();
        while let Ok(job) = rx.try_recv() {
            job();
        }
    }
    let elapsed = start.elapsed();
    for t in threads {
        t.join().unwrap();
    }
    elapsed.mul_f64(iters as f64 / (per * senders) as f64)
}

fn remote(c: &mut Criterion) {
    let mut group = c.benchmark_group("remote");
    for senders in [1usize, 2] {
        group.bench_with_input(BenchmarkId::new("evcore_remote", senders), &senders, |b, &s| {
            b.iter_custom(|iters| {
                evcore_remote(iters.max(BATCH as u64), s)
                    .mul_f64(iters as f64 / iters.max(BATCH as u64) as f64)
            })
        });
        group.bench_with_input(BenchmarkId::new("std_mpsc_wake", senders), &senders, |b, &s| {
            b.iter_custom(|iters| {
                std_mpsc_wake(iters.max(BATCH as u64), s)
                    .mul_f64(iters as f64 / iters.max(BATCH as u64) as f64)
            })
        });
    }
    group.finish();
}

criterion_group! { name = benches; config = benches::config(); targets = remote }
criterion_main!(benches);
