//! The cost of one non-blocking turn of the reactor, against a bare `epoll_pwait` of the same
//! epoll set size: what the reactor adds per turn on top of the one syscall it must make.

use std::hint::black_box;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use evcore::{Interest, Loop, Reactor, Token};
use rustix::event::epoll;

fn reactor(c: &mut Criterion) {
    let mut group = c.benchmark_group("reactor");
    let (_a, b) = UnixStream::pair().unwrap();
    group.bench_function("loop_turn_nonblocking", |bench| {
        let mut lp = Loop::new().unwrap();
        lp.register(b.as_raw_fd(), Token(1), Interest::In).unwrap();
        let mut out = Vec::new();
        bench.iter(|| {
            out.clear();
            black_box(lp.turn(Some(Duration::ZERO), &mut out).unwrap());
        });
        lp.deregister(b.as_raw_fd()).unwrap();
    });
    group.bench_function("epoll_wait_nonblocking", |bench| {
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
        epoll::add(&ep, &b, epoll::EventData::new_u64(1), epoll::EventFlags::IN).unwrap();
        let mut events = Vec::with_capacity(64);
        let zero = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
        bench.iter(|| {
            events.clear();
            black_box(
                epoll::wait(&ep, rustix::buffer::spare_capacity(&mut events), Some(&zero)).unwrap(),
            );
        });
    });
    group.finish();
}

criterion_group! { name = benches; config = benches::config(); targets = reactor }
criterion_main!(benches);
