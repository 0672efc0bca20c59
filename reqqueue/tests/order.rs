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
        assert!(a.poll() && b.poll(), "round {round}");
    }
    assert_eq!(q.slots_allocated(), 2);
}
