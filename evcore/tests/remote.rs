//! `Remote`: exactly once, FIFO per thread, one wake-up per batch, an error once the loop is gone.

mod support;

use evcore::{Clock, Dispatch, Event, Reactor, RemoteError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;
use support::poll_now;

fn four_threads_exactly_once_in_order<R: Reactor>(make: fn(Clock) -> R) {
    const THREADS: usize = 4;
    const EACH: usize = 5_000;
    let mut r = make(Clock::system());
    let seen = Arc::new(Mutex::new(Vec::with_capacity(THREADS * EACH)));
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let remote = r.remote();
            let seen = seen.clone();
            thread::spawn(move || {
                for i in 0..EACH {
                    let seen = seen.clone();
                    remote.schedule(move || seen.lock().unwrap().push((t, i))).unwrap();
                }
            })
        })
        .collect();
    while seen.lock().unwrap().len() < THREADS * EACH {
        r.dispatch(Dispatch::One, |_, _| {}).unwrap();
    }
    for s in senders {
        s.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), THREADS * EACH, "a closure ran twice");
    for t in 0..THREADS {
        let order: Vec<usize> = seen.iter().filter(|(th, _)| *th == t).map(|&(_, i)| i).collect();
        assert_eq!(order, (0..EACH).collect::<Vec<_>>(), "thread {t} out of order or lost");
    }
}

fn a_batch_is_one_notification<R: Reactor>(make: fn(Clock) -> R) {
    let mut r = make(Clock::system());
    let ran = Arc::new(AtomicUsize::new(0));
    let remote = r.remote();
    let ran2 = ran.clone();
    thread::spawn(move || {
        for _ in 0..1000 {
            let ran = ran2.clone();
            remote
                .schedule(move || {
                    ran.fetch_add(1, Ordering::Relaxed);
                })
                .unwrap();
        }
    })
    .join()
    .unwrap();
    let mut out = Vec::new();
    r.turn(Some(Duration::from_secs(5)), &mut out).unwrap();
    assert_eq!(ran.load(Ordering::Relaxed), 1000, "the whole batch runs in one turn");
    assert_eq!(out.iter().filter(|e| **e == Event::Notified).count(), 1);
    assert!(!poll_now(&mut r).contains(&Event::Notified), "a batch left a second wake-up behind");
}

fn schedule_after_drop_is_an_error<R: Reactor>(make: fn(Clock) -> R) {
    struct CountDrop(Arc<AtomicUsize>);
    impl Drop for CountDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    let r = make(Clock::system());
    let remote = r.remote();
    let dropped = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let (guard, ran2) = (CountDrop(dropped.clone()), ran.clone());
    remote
        .schedule(move || {
            let _keep = guard;
            ran2.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
    drop(r);
    assert_eq!(dropped.load(Ordering::Relaxed), 1, "pending closure dropped with the loop");
    assert_eq!(ran.load(Ordering::Relaxed), 0, "pending closure must not run");
    assert_eq!(remote.schedule(|| {}), Err(RemoteError::LoopGone));
    assert_eq!(remote.wake(), Err(RemoteError::LoopGone));
    assert_eq!(remote.stop(), Err(RemoteError::LoopGone));
}

fn wake_and_same_loop<R: Reactor>(make: fn(Clock) -> R) {
    let mut r = make(Clock::system());
    let a = r.remote();
    let b = r.remote();
    let other = make(Clock::system()).remote();
    assert!(a.same_loop(&b));
    assert!(!a.same_loop(&other));
    thread::spawn(move || a.wake().unwrap()).join().unwrap();
    let mut out = Vec::new();
    r.turn(Some(Duration::from_secs(5)), &mut out).unwrap();
    assert_eq!(out, [Event::Notified]);
}

each_reactor!(
    four_threads_exactly_once_in_order,
    a_batch_is_one_notification,
    schedule_after_drop_is_an_error,
    wake_and_same_loop,
);
