//! reqqueue against tokio's `Mutex` (the Rust baseline) on the workloads of the libtevent C
//! harness (`benches/c/tevent_bench.c`), which `cargo xtask bench` runs in the same session.

use std::future::ready;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use evcore::Executor;
use futures_util::future::join_all;
use reqqueue::Queue;

const BULK: u64 = 100_000;

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().unwrap()
}

/// Runs `iters` operations in batches of at most `BULK`, timing only `batch`.
fn batched(iters: u64, mut batch: impl FnMut(usize) -> Duration) -> Duration {
    let mut left = iters;
    let mut total = Duration::ZERO;
    while left > 0 {
        let n = left.min(BULK);
        total += batch(n as usize);
        left -= n;
    }
    total
}

fn reqqueue(c: &mut Criterion) {
    let mut group = c.benchmark_group("reqqueue");
    let ex = Executor::new().unwrap();
    let rt = tokio_rt();

    // Bulk: N requests queued at once, each finishing in its trigger, all driven to the end.
    group.bench_function("bulk_reqqueue", |b| {
        b.iter_custom(|iters| {
            batched(iters, |n| {
                let q = Queue::new("bulk");
                let start = Instant::now();
                let entries: Vec<_> = (0..n).map(|i| q.add(move || ready(i))).collect();
                let done = ex.block_on(join_all(entries));
                let el = start.elapsed();
                assert_eq!(done.len(), n);
                el
            })
        })
    });
    group.bench_function("bulk_tokio_mutex", |b| {
        b.iter_custom(|iters| {
            batched(iters, |n| {
                let m = tokio::sync::Mutex::new(0u64);
                let start = Instant::now();
                let done = rt.block_on(join_all((0..n).map(|i| {
                    let m = &m;
                    async move {
                        *m.lock().await += i as u64;
                    }
                })));
                let el = start.elapsed();
                assert_eq!(done.len(), n);
                el
            })
        })
    });

    // One request at a time.
    group.bench_function("one_add_reqqueue", |b| {
        let q = Queue::new("one");
        b.iter_custom(|iters| {
            let start = Instant::now();
            ex.block_on(async {
                for i in 0..iters {
                    black_box(q.add(move || ready(i)).await.unwrap());
                }
            });
            start.elapsed()
        })
    });
    group.bench_function("one_opt_reqqueue", |b| {
        let q = Queue::new("opt");
        b.iter_custom(|iters| {
            let start = Instant::now();
            ex.block_on(async {
                for i in 0..iters {
                    black_box(q.add_optimize_empty(move || ready(i)).await.unwrap());
                }
            });
            start.elapsed()
        })
    });
    group.bench_function("one_lock_tokio_mutex", |b| {
        let m = tokio::sync::Mutex::new(0u64);
        b.iter_custom(|iters| {
            let start = Instant::now();
            rt.block_on(async {
                for i in 0..iters {
                    *m.lock().await += i;
                }
            });
            start.elapsed()
        })
    });

    // The queue as an uncontended lock.
    group.bench_function("try_enter_reqqueue", |b| {
        let q = Queue::new("lock");
        b.iter(|| black_box(q.try_enter()));
    });
    group.bench_function("enter_await_reqqueue", |b| {
        let q = Queue::new("lock");
        b.iter_custom(|iters| {
            let start = Instant::now();
            ex.block_on(async {
                for _ in 0..iters {
                    black_box(q.enter().await.unwrap());
                }
            });
            start.elapsed()
        })
    });
    group.bench_function("try_lock_tokio_mutex", |b| {
        let m = tokio::sync::Mutex::new(0u64);
        b.iter(|| black_box(m.try_lock().is_ok()));
    });
    group.bench_function("lock_await_tokio_mutex", |b| {
        let m = tokio::sync::Mutex::new(0u64);
        b.iter_custom(|iters| {
            let start = Instant::now();
            rt.block_on(async {
                for _ in 0..iters {
                    drop(black_box(m.lock().await));
                }
            });
            start.elapsed()
        })
    });
    group.finish();
}

criterion_group! { name = benches; config = benches::config(); targets = reqqueue }
criterion_main!(benches);
