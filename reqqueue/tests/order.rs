//! Strict FIFO, one head at a time, and the next head woken (not polled) when the head ends.

mod support;

use evcore::Executor;
use reqqueue::{Queue, QueueError};
use std::cell::RefCell;
use std::rc::Rc;
use support::{Gate, Probe};

#[test]
fn triggers_run_only_at_the_head_in_fifo_order() {
    let q = Queue::new("q");
    let started = Rc::new(RefCell::new(Vec::new()));
    let gates: Vec<Gate> = (0..3).map(|_| Gate::default()).collect();
    let mut probes: Vec<_> = (0..3)
        .map(|i| {
            let (started, gate) = (started.clone(), gates[i].clone());
            Probe::new(q.add(move || async move {
                started.borrow_mut().push(i);
                gate.wait().await;
                i
            }))
        })
        .collect();
    assert_eq!(q.len(), 3);
    // Poll the last ones first: only the head may start.
    for p in probes.iter_mut().rev() {
        p.poll();
    }
    assert_eq!(*started.borrow(), [0]);
    gates[0].open();
    assert!(probes[0].poll(), "head completes once its gate opens");
    assert_eq!(probes[0].out, Some(Ok(0)));
    assert_eq!(probes[1].wakes(), 1, "the next head is woken");
    assert!(started.borrow().len() == 1, "but not run from inside the completion");
    assert_eq!(probes[2].wakes(), 0, "entries behind it are not woken");
    probes[1].poll();
    assert_eq!(*started.borrow(), [0, 1]);
    assert_eq!(q.len(), 2, "len counts the running head");
    gates[1].open();
    gates[2].open();
    assert!(probes[1].poll());
    assert!(probes[2].poll());
    assert_eq!(*started.borrow(), [0, 1, 2]);
    assert!(q.is_empty());
}

#[test]
fn thousand_spawned_entries_run_in_order_on_the_executor() {
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    let q = Queue::new("q");
    let active = Rc::new(RefCell::new((0usize, 0usize, Vec::new())));
    // Spawn in reverse so the executor's own order cannot explain a FIFO result.
    let entries: Vec<_> = (0..1000)
        .map(|i| {
            let (active, h) = (active.clone(), h.clone());
            q.add(move || async move {
                {
                    let mut a = active.borrow_mut();
                    a.0 += 1;
                    a.1 = a.1.max(a.0);
                    a.2.push(i);
                }
                if i % 7 == 0 {
                    h.sleep(std::time::Duration::from_micros(100)).await;
                }
                active.borrow_mut().0 -= 1;
                i
            })
        })
        .collect();
    let tasks: Vec<_> = entries.into_iter().rev().map(|e| ex.spawn_local(e)).collect();
    let results: Vec<Result<usize, QueueError>> = ex.block_on(async {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await);
        }
        out
    });
    assert!(results.iter().all(Result::is_ok));
    let a = active.borrow();
    assert_eq!(a.1, 1, "two requests were active at once");
    assert_eq!(a.2, (0..1000).collect::<Vec<_>>());
    assert_eq!(q.slots_allocated(), 1000);
}

#[test]
fn steady_state_allocates_no_new_slots() {
    let q = Queue::new("q");
    for round in 0..100 {
        let mut a = Probe::new(q.add(|| async { 1 }));
        let mut b = Probe::new(q.add(|| async { 2 }));
        assert!(a.poll(), "round {round}");
        // b became head before it was ever polled: it yields once (see the next test).
        assert!(b.poll_after_yield(), "round {round}");
    }
    assert_eq!(q.slots_allocated(), 2);
}

/// tevent starts every head from an immediate event, one per loop turn, so two queues whose
/// requests finish at once take turns. Here the entries of both queues are spawned queue by
/// queue, which puts all of A's ahead of B's in the run queue: without the head's one yield
/// (an entry whose predecessor left before it was ever polled) A would run back to back.
#[test]
fn two_queues_take_turns_on_one_executor() {
    let ex = Executor::new().unwrap();
    let (a, b) = (Queue::new("a"), Queue::new("b"));
    let log = Rc::new(RefCell::new(Vec::new()));
    let mut tasks = Vec::new();
    for (name, q) in [("a", &a), ("b", &b)] {
        for i in 0..5 {
            let log = log.clone();
            tasks.push(ex.spawn_local(q.add(move || {
                log.borrow_mut().push(format!("{name}{i}"));
                std::future::ready(())
            })));
        }
    }
    ex.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });
    let expected: Vec<String> = (0..5).flat_map(|i| [format!("a{i}"), format!("b{i}")]).collect();
    assert_eq!(*log.borrow(), expected);
}

/// The same on tokio's current-thread runtime, with the `Send` queue: the yield goes through
/// the waker, so any executor that runs woken tasks in order interleaves the same way.
#[test]
fn two_sync_queues_take_turns_on_tokio() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let (a, b) = (reqqueue::SyncQueue::new("a"), reqqueue::SyncQueue::new("b"));
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    rt.block_on(async {
        let mut tasks = Vec::new();
        for (name, q) in [("a", &a), ("b", &b)] {
            for i in 0..5 {
                let log = log.clone();
                tasks.push(tokio::spawn(q.add(move || {
                    log.lock().unwrap().push(format!("{name}{i}"));
                    std::future::ready(())
                })));
            }
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    });
    let expected: Vec<String> = (0..5).flat_map(|i| [format!("a{i}"), format!("b{i}")]).collect();
    assert_eq!(*log.lock().unwrap(), expected);
}
