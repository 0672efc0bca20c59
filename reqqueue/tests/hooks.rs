//! Trace hooks (`tevent_set_trace_queue_callback`), `idle()` and the bounded `try_add`.

mod support;

use std::sync::{Arc, Mutex};

use reqqueue::{Queue, QueueError, SyncQueue, TracePoint};
use support::{Gate, Probe};

type Log = Arc<Mutex<Vec<(TracePoint, &'static str)>>>;

fn traced(log: &Log) -> Vec<(TracePoint, &'static str)> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[test]
fn hooks_fire_in_order_with_the_tags() {
    use TracePoint::{Attach, Detach, Trigger};
    let q = Queue::new("q");
    let log: Log = Arc::default();
    let l = log.clone();
    q.set_trace(move |point, tag| l.lock().unwrap().push((point, tag)));
    let gate = Gate::default();
    let g = gate.clone();
    let mut a = Probe::new(q.add_tagged("a", move || async move { g.wait().await }));
    // Tagged after adding: its attach has no tag yet, its trigger and detach have it.
    let mut b = Probe::new(q.add(|| async {}).tag("b"));
    assert_eq!(traced(&log), [(Attach, "a"), (Attach, "")]);
    b.poll();
    a.poll();
    assert_eq!(traced(&log), [(Trigger, "a")]);
    gate.open();
    assert!(a.poll());
    assert_eq!(traced(&log), [(Detach, "a")]);
    assert!(b.poll());
    assert_eq!(traced(&log), [(Trigger, "b"), (Detach, "b")]);
    // A dropped waiting entry detaches too; a cleared hook hears nothing.
    let c = q.add_tagged("c", || async {});
    drop(c);
    assert_eq!(traced(&log), [(Attach, "c"), (Detach, "c")]);
    q.clear_trace();
    drop(q.add_tagged("d", || async {}));
    assert!(traced(&log).is_empty());
}

/// The hook runs once the queue's state is released, so it may use the queue: under the lock
/// the thread-safe queue would deadlock here.
#[test]
fn a_hook_may_use_its_sync_queue() {
    let q = SyncQueue::new("sync");
    let seen: Arc<Mutex<Vec<usize>>> = Arc::default();
    let (s, q2) = (seen.clone(), q.clone());
    q.set_trace(move |_, _| s.lock().unwrap().push(q2.len()));
    let mut p = Probe::new(q.add(|| async {}));
    assert!(p.poll());
    // Attach and trigger saw the entry; detach, the queue empty.
    assert_eq!(*seen.lock().unwrap(), [1, 1, 0]);
    q.clear_trace();
}

thread_local! {
    static LOCAL: std::cell::RefCell<Option<Queue>> = const { std::cell::RefCell::new(None) };
}

/// The same on the single-thread queue (its hook must be `Send + Sync`, so it reaches the
/// queue through a thread-local): a re-entrant borrow of the state would panic.
#[test]
fn a_hook_may_use_its_local_queue() {
    let q = Queue::new("local");
    LOCAL.with(|l| *l.borrow_mut() = Some(q.clone()));
    let seen: Arc<Mutex<Vec<usize>>> = Arc::default();
    let s = seen.clone();
    q.set_trace(move |_, _| {
        let len = LOCAL.with(|l| l.borrow().as_ref().map(|q| q.len()));
        s.lock().unwrap().push(len.unwrap());
    });
    let mut p = Probe::new(q.add(|| async {}));
    assert!(p.poll());
    assert_eq!(*seen.lock().unwrap(), [1, 1, 0]);
    LOCAL.with(|l| l.borrow_mut().take());
}

#[test]
fn idle_resolves_when_the_queue_empties() {
    let q = Queue::new("q");
    let mut now = Probe::new(q.idle());
    assert!(now.poll(), "an empty queue is idle at once");
    let gate = Gate::default();
    let g = gate.clone();
    let mut a = Probe::new(q.add(move || async move { g.wait().await }));
    let mut b = Probe::new(q.add(|| async {}));
    let mut idle = Probe::new(q.idle());
    assert!(!idle.poll());
    a.poll();
    gate.open();
    assert!(a.poll());
    assert!(!idle.poll(), "b still waits");
    assert_eq!(idle.wakes(), 0);
    assert!(b.poll_after_yield());
    assert_eq!(idle.wakes(), 1, "the last entry leaving wakes it");
    assert!(idle.poll());
}

#[test]
fn try_add_refuses_past_its_limit_and_takes_again_when_there_is_room() {
    let q = Queue::new("q");
    let gate = Gate::default();
    let g = gate.clone();
    let mut first = Probe::new(q.try_add(2, move || async move { g.wait().await }).unwrap());
    let second = q.try_add(2, || async {}).unwrap();
    assert!(matches!(q.try_add(2, || async {}), Err(QueueError::AtLimit)));
    assert_eq!(q.len(), 2, "a refused entry queued nothing");
    first.poll();
    gate.open();
    assert!(first.poll());
    let third = q.try_add(2, || async {});
    assert!(third.is_ok());
    drop((second, third));
    // A closed queue refuses as `add` does, whatever the limit.
    q.close();
    let mut late = Probe::new(q.try_add(0, || async {}).unwrap());
    assert!(late.poll());
    assert!(matches!(late.out, Some(Err(QueueError::Closed))));
}
