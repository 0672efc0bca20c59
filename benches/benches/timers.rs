//! Timer insert+cancel with many timers live: evcore's wheel against tokio's, in one run.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Waker};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use evcore::{Loop, Reactor, Token};

/// Spreads deadlines over a minute, as connection and request timeouts are.
fn spread(i: usize) -> Duration {
    Duration::from_micros(((i * 7919) % 60_000_000) as u64 + 1_000)
}

fn timers(c: &mut Criterion) {
    let mut group = c.benchmark_group("timers");
    for live in [100_000usize, 1_000_000] {
        group.bench_with_input(
            BenchmarkId::new("evcore_insert_cancel", live),
            &live,
            |b, &live| {
                let mut lp = Loop::new().unwrap();
                let now = lp.now();
                for i in 0..live {
                    lp.add_timer(now + spread(i), Token(i));
                }
                let mut i = live;
                b.iter(|| {
                    i += 1;
                    let id = lp.add_timer(now + spread(i), Token(i));
                    black_box(lp.cancel_timer(id));
                });
            },
        );
        group.bench_with_input(BenchmarkId::new("wheel_insert_cancel", live), &live, |b, &live| {
            // The wheel alone, in ticks: the part of the cost that is the data structure.
            let mut wheel = evcore::TimerWheel::new();
            for i in 0..live {
                wheel.insert(spread(i).as_millis() as u64, Token(i));
            }
            let mut i = live;
            b.iter(|| {
                i += 1;
                let id = wheel.insert(spread(i).as_millis() as u64, Token(i));
                black_box(wheel.cancel(id));
            });
        });
        group.bench_with_input(BenchmarkId::new("tokio_insert_cancel", live), &live, |b, &live| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
            let _guard = rt.enter();
            let waker = Waker::noop();
            let mut cx = Context::from_waker(waker);
            let now = tokio::time::Instant::now();
            // Live timers: registered with the driver by one poll each.
            let mut keep: Vec<Pin<Box<tokio::time::Sleep>>> = (0..live)
                .map(|i| {
                    let mut s = Box::pin(tokio::time::sleep_until(now + spread(i)));
                    let _ = s.as_mut().poll(&mut cx);
                    s
                })
                .collect();
            let mut i = live;
            b.iter(|| {
                i += 1;
                // What a tokio user pays for a timeout that does not fire: create, register
                // (first poll), cancel (drop).
                let mut s = Box::pin(tokio::time::sleep_until(now + spread(i)));
                black_box(s.as_mut().poll(&mut cx).is_pending());
                drop(s);
            });
            keep.clear();
        });
    }
    group.finish();
}

criterion_group! { name = benches; config = benches::config(); targets = timers }
criterion_main!(benches);
