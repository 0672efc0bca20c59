//! Dropping entries at every stage, closing the queue, and dropping its last handle.

mod support;

use reqqueue::{Queue, QueueError};
use std::cell::Cell;
use std::rc::Rc;
use support::{Gate, Probe};

/// Drops a value when dropped, to observe that a running request is cancelled.
struct OnDrop(Rc<Cell<bool>>);
impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

#[test]
fn head_dropped_mid_flight_cancels_it_and_starts_the_next() {
    let q = Queue::new("q");
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let mut head = Probe::new(q.add(move || async move {
        let _guard = OnDrop(d);
        std::future::pending::<()>().await
    }));
    let mut next = Probe::new(q.add(|| async { 2 }));
    head.poll();
    assert!(!next.poll());
    drop(head);
    assert!(dropped.get(), "the running request was dropped");
    assert_eq!(next.wakes(), 1);
    assert!(next.poll());
    assert_eq!(next.out, Some(Ok(2)));
}

#[test]
fn waiting_entry_dropped_keeps_the_order_of_the_rest() {
    let q = Queue::new("q");
    let gate = Gate::default();
    let g = gate.clone();
    let mut head = Probe::new(q.add(move || async move { g.wait().await }));
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let middle = q.add(move || {
        r.set(true);
        async {}
    });
    let mut last = Probe::new(q.add(|| async { "last" }));
    head.poll();
    assert_eq!(q.len(), 3);
    drop(middle);
    assert_eq!(q.len(), 2);
    assert_eq!(last.wakes(), 0, "dropping a waiting entry wakes nobody");
    gate.open();
    assert!(head.poll());
    assert!(last.poll_after_yield());
    assert!(!ran.get(), "a dropped entry never triggers");
}

#[test]
fn close_fails_waiting_entries_and_lets_the_head_finish() {
    let q = Queue::new("q");
    let gate = Gate::default();
    let g = gate.clone();
    let mut head = Probe::new(q.add(move || async move {
        g.wait().await;
        "head"
    }));
    let mut waiting = Probe::new(q.add(|| async { "never" }));
    let mut barrier = Probe::new(q.enter());
    head.poll();
    waiting.poll();
    barrier.poll();
    q.close();
    assert!(q.is_closed());
    assert_eq!(waiting.wakes(), 1, "close wakes waiting entries");
    assert!(waiting.poll());
    assert_eq!(waiting.out, Some(Err(QueueError::Closed)));
    assert!(barrier.poll());
    assert!(matches!(barrier.out, Some(Err(QueueError::Closed))));
    gate.open();
    assert!(head.poll());
    assert_eq!(head.out, Some(Ok("head")), "the running head finishes its work");
    let mut late = Probe::new(q.add(|| async {}));
    assert!(late.poll());
    assert_eq!(late.out, Some(Err(QueueError::Closed)));
    assert!(matches!(q.block(), Err(QueueError::Closed)));
    assert!(q.try_enter().is_none());
}

#[test]
fn dropping_the_last_handle_closes() {
    let q = Queue::new("q");
    let q2 = q.clone();
    let _blocker = q.block().unwrap();
    let mut waiting = Probe::new(q.add(|| async {}));
    waiting.poll();
    drop(q);
    assert!(!waiting.poll(), "another handle still holds the queue open");
    drop(q2);
    assert!(waiting.poll());
    assert_eq!(waiting.out, Some(Err(QueueError::Closed)));
}

#[test]
fn polling_after_completion_is_an_error_not_a_panic() {
    let q = Queue::new("q");
    let mut entry = Box::pin(q.add(|| async { 1 }));
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    assert_eq!(entry.as_mut().poll(&mut cx), std::task::Poll::Ready(Ok(1)));
    assert_eq!(entry.as_mut().poll(&mut cx), std::task::Poll::Ready(Err(QueueError::Finished)));
}

use std::future::Future;
