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

/// The same with the obvious hand-written alternative: an mpsc channel of boxed closures and
/// an eventfd in an epoll set to wake the loop, written only when the loop has not already
/// been woken (the flag is cleared by the loop before it drains), so wake-ups coalesce as ours
/// do.
fn std_mpsc_wake(iters: u64, senders: usize) -> Duration {
    use rustix::event::{epoll, eventfd, EventfdFlags};
    use std::sync::atomic::{AtomicBool, Ordering};
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
    let efd = Arc::new(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).unwrap());
    epoll::add(&ep, &*efd, epoll::EventData::new_u64(0), epoll::EventFlags::IN).unwrap();
    let woken = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Job>();
    let per = (iters as usize).div_ceil(senders);
    let total = ran() + per * senders;
    let start = Instant::now();
    let threads: Vec<_> = (0..senders)
        .map(|_| {
            let (tx, efd, woken) = (tx.clone(), efd.clone(), woken.clone());
            thread::spawn(move || {
                for i in 0..per {
                    tx.send(Box::new(job(i as u64))).unwrap();
                    if !woken.swap(true, Ordering::AcqRel) {
                        rustix::io::write(&*efd, &1u64.to_ne_bytes()).unwrap();
                    }
                }
            })
        })
        .collect();
    let mut events = Vec::with_capacity(8);
    let mut buf = [0u8; 8];
    while ran() < total {
        events.clear();
        epoll::wait(&ep, rustix::buffer::spare_capacity(&mut events), None).unwrap();
        let _ = rustix::io::read(&*efd, &mut buf);
        woken.store(false, Ordering::Release);
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

/// Round trips between two loops on two threads, each message a closure through a `Remote`:
/// the loop on this thread sends a closure to the other loop, which sends one back.
fn pingpong(iters: u64) -> Duration {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let mut here = Loop::new().unwrap();
    let back = here.remote();
    let pongs = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let stop2 = stop.clone();
    let other = thread::spawn(move || {
        let mut there = Loop::new().unwrap();
        tx.send(there.remote()).unwrap();
        while !stop2.load(Ordering::Acquire) {
            there.dispatch(Dispatch::One, |_, _| {}).unwrap();
        }
    });
    let to_other = rx.recv().unwrap();
    let start = Instant::now();
    for i in 0..iters {
        let (back, counter) = (back.clone(), pongs.clone());
        to_other
            .schedule(move || {
                back.schedule(move || {
                    counter.fetch_add(1, Ordering::Release);
                })
                .unwrap();
            })
            .unwrap();
        while pongs.load(Ordering::Acquire) <= i {
            here.dispatch(Dispatch::One, |_, _| {}).unwrap();
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Release);
    to_other.wake().unwrap();
    other.join().unwrap();
    elapsed
}

fn remote(c: &mut Criterion) {
    let mut group = c.benchmark_group("remote");
    group.bench_function("pingpong_evcore", |b| b.iter_custom(pingpong));
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
