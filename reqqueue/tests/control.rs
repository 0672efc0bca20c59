//! start, stop, untrigger, optimize_empty and try_enter, each against tevent's rules.

mod support;

use reqqueue::{Queue, QueueError};
use std::cell::Cell;
use std::rc::Rc;
use support::{Gate, Probe};

#[test]
fn stop_lets_the_running_head_finish_and_holds_the_rest() {
    let q = Queue::new("q");
    let gate = Gate::default();
    let g = gate.clone();
    let mut head = Probe::new(q.add(move || async move { g.wait().await }));
    let mut next = Probe::new(q.add(|| async { "next" }));
    head.poll();
    q.stop();
    assert!(!q.is_running());
    gate.open();
    assert!(head.poll(), "the running head keeps working after stop");
    assert_eq!(next.wakes(), 0, "a stopped queue wakes nobody");
    assert!(!next.poll());
    q.start();
    assert_eq!(next.wakes(), 1, "start wakes the idle head");
    assert!(next.poll());
    assert_eq!(next.out, Some(Ok("next")));
}

#[test]
fn added_while_stopped_waits_for_start() {
    let q = Queue::new("q");
    q.stop();
    let mut e = Probe::new(q.add(|| async { 5 }));
    assert!(!e.poll());
    q.start();
    assert!(e.poll());
    q.start();
    assert!(q.is_running(), "start on a running queue is a no-op");
}

#[test]
fn untrigger_is_refused_on_a_running_queue() {
    let q = Queue::new("q");
    let mut guard = q.try_enter().expect("empty queue");
    assert_eq!(guard.untrigger(), Err(QueueError::NotStopped));
}

#[test]
fn start_retriggers_an_untriggered_head_and_only_then_the_rest() {
    let q = Queue::new("q");
    let mut guard = q.try_enter().expect("empty queue");
    let mut behind = Probe::new(q.enter());
    assert!(!behind.poll());
    q.stop();
    assert_eq!(guard.untrigger(), Ok(()));
    let mut again = Probe::new(async move {
        let r = guard.retriggered().await;
        (r, guard)
    });
    assert!(!again.poll(), "an untriggered head waits for start");
    q.start();
    assert_eq!(again.wakes(), 1, "start wakes the untriggered head");
    assert!(again.poll());
    let (r, guard) = again.out.take().unwrap();
    assert_eq!(r, Ok(()));
    assert!(!behind.poll(), "the re-triggered head still holds the queue");
    drop(guard);
    assert_eq!(behind.wakes(), 1);
    assert!(behind.poll());
    assert!(matches!(behind.out, Some(Ok(_))));
}

#[test]
fn optimize_empty_on_empty_non_empty_and_stopped() {
    // (queue state before the add, whether the trigger must run inside add)
    let cases: [(&str, bool); 3] = [("empty", true), ("non-empty", false), ("stopped", false)];
    for (case, direct) in cases {
        let q = Queue::new(case);
        let _blocker = (case == "non-empty").then(|| q.block().unwrap());
        if case == "stopped" {
            q.stop();
        }
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let entry = q.add_optimize_empty(move || {
            r.set(true);
            async { 1 }
        });
        assert_eq!(ran.get(), direct, "{case}: trigger ran inside add_optimize_empty");
        let tried = q.try_enter().is_some();
        assert!(!tried, "{case}: try_enter on a queue holding an entry must fail");
        drop(entry);
    }
    let q = Queue::new("q");
    assert!(q.try_enter().is_some(), "try_enter on an empty running queue");
    q.stop();
    assert!(q.try_enter().is_none(), "try_enter on a stopped queue");
}
