//! `Spawner` and `Engine`: reaching an executor from other threads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use evcore::{Engine, Executor, Gone, Spawned, Spawner};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}

#[test]
fn spawner_and_engine_are_send_and_sync() {
    send_sync::<Spawner>();
    send_sync::<Engine>();
    send::<Spawned<u64>>();
}

#[test]
fn closures_run_on_the_executor_thread_and_results_come_back() {
    let engine = Engine::start().unwrap();
    let me = thread::current().id();
    let ex = Executor::new().unwrap();
    let spawner = engine.spawner();
    let (ran_on, slept) = ex
        .block_on(spawner.spawn(|h| {
            let h = h.clone();
            async move {
                // A timer on the engine's own reactor: only possible on its thread.
                h.sleep(Duration::from_millis(1)).await;
                (thread::current().id(), true)
            }
        }))
        .unwrap();
    assert_ne!(ran_on, me);
    assert!(slept);
    assert!(!spawner.is_local());
}

#[test]
fn many_threads_spawn_at_once_and_every_result_arrives() {
    let engine = Engine::start().unwrap();
    let sum = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let spawner = engine.spawner();
            let sum = sum.clone();
            thread::spawn(move || {
                let ex = Executor::new().unwrap();
                let mut total = 0;
                for i in 0..500u64 {
                    let n = t * 1000 + i;
                    total += ex.block_on(spawner.spawn(move |_| async move { n })).unwrap();
                }
                sum.fetch_add(total, Ordering::Relaxed);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let expected: u64 = (0..8u64).flat_map(|t| (0..500u64).map(move |i| t * 1000 + i)).sum();
    assert_eq!(sum.load(Ordering::Relaxed), expected);
}

#[test]
fn a_local_spawner_runs_inside_block_on() {
    let ex = Executor::new().unwrap();
    let spawner = ex.handle().spawner();
    assert!(spawner.is_local());
    let out = ex.block_on(spawner.spawn(|_| async { 7 }));
    assert_eq!(out, Ok(7));
}

#[test]
fn a_dropped_executor_resolves_every_spawned_future_as_gone() {
    let ex = Executor::new().unwrap();
    let spawner = ex.handle().spawner();
    // Queued but never run: the executor never enters block_on again.
    let queued = spawner.spawn(|_| async { 1 });
    // Started but never finished: parked on a timer that never fires.
    let started = spawner.spawn(|h| {
        let h = h.clone();
        async move {
            h.sleep(Duration::from_secs(3600)).await;
            2
        }
    });
    ex.block_on(async {});
    drop(ex);
    let other = Executor::new().unwrap();
    assert_eq!(other.block_on(queued), Err(Gone));
    assert_eq!(other.block_on(started), Err(Gone));
    // Spawning after the executor is gone resolves at once too.
    assert_eq!(other.block_on(spawner.spawn(|_| async { 3 })), Err(Gone));
}

struct SetOnDrop(Arc<AtomicBool>);
impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn the_last_spawner_stops_the_engine_and_drops_its_tasks() {
    let engine = Engine::start().unwrap();
    let spawner = engine.spawner();
    let dropped = Arc::new(AtomicBool::new(false));
    let guard = SetOnDrop(dropped.clone());
    let ex = Executor::new().unwrap();
    let started = Arc::new(AtomicBool::new(false));
    let s2 = started.clone();
    // A task parked on an hour-long timer of the engine's reactor, holding the guard.
    drop(spawner.spawn(move |h| {
        let h = h.clone();
        async move {
            let _guard = guard;
            s2.store(true, Ordering::SeqCst);
            h.sleep(Duration::from_secs(3600)).await;
        }
    }));
    // Wait until it runs: a second spawn is ordered after the first.
    ex.block_on(spawner.spawn(|_| async {})).unwrap();
    assert!(started.load(Ordering::SeqCst));
    drop(engine);
    assert!(!dropped.load(Ordering::SeqCst), "a spawner still holds the engine");
    drop(spawner);
    // The drop joined the thread: the task's guard is gone by now, without waiting.
    assert!(dropped.load(Ordering::SeqCst));
}
