//! `enter` waits for everything queued before it and holds everything after; blockers hold
//! their place.

mod support;

use reqqueue::{EntryState, Queue};
use support::{Gate, Probe};

#[test]
fn enter_waits_for_all_earlier_entries_and_holds_later_ones() {
    let q = Queue::new("q");
    let gates: Vec<Gate> = (0..2).map(|_| Gate::default()).collect();
    let mut earlier: Vec<_> = gates
        .iter()
        .map(|g| {
            let g = g.clone();
            Probe::new(q.add(move || async move { g.wait().await }))
        })
        .collect();
    let mut barrier = Probe::new(q.enter());
    let mut later = Probe::new(q.add(|| async { "later" }));
    earlier[0].poll();
    assert!(!barrier.poll());
    gates[0].open();
    assert!(earlier[0].poll());
    earlier[1].poll();
    assert!(!barrier.poll(), "one earlier entry still runs");
    gates[1].open();
    assert!(earlier[1].poll());
    assert_eq!(barrier.wakes(), 1);
    assert!(barrier.poll(), "all earlier entries done: the barrier is entered");
    let guard = barrier.out.take().unwrap().unwrap();
    assert!(!later.poll(), "the guard holds the queue");
    assert_eq!(
        q.snapshot().iter().map(|e| e.1).collect::<Vec<_>>(),
        [EntryState::Triggered, EntryState::Waiting]
    );
    drop(guard);
    assert_eq!(later.wakes(), 1);
    assert!(later.poll());
}

#[test]
fn a_blocker_holds_its_place_until_dropped() {
    let q = Queue::new("q");
    let mut first = Probe::new(q.add(|| async { 1 }));
    let blocker = q.block().unwrap();
    let mut second = Probe::new(q.add(|| async { 2 }));
    assert!(first.poll());
    assert!(!second.poll(), "the blocker is now the head");
    assert_eq!(q.snapshot()[0].1, EntryState::Blocker);
    drop(blocker);
    assert_eq!(second.wakes(), 1);
    assert!(second.poll());
    assert!(q.is_empty());
}

#[test]
fn tags_show_in_the_snapshot() {
    let q = Queue::new("q");
    let _a = q.add(|| async {}).tag("write-1");
    let _b = q.add(|| async {}).tag("write-2");
    let tags: Vec<&str> = q.snapshot().iter().map(|e| e.0).collect();
    assert_eq!(tags, ["write-1", "write-2"]);
}
