//! Per-entry deadlines on evcore timers, while waiting and while running (mock clock).

use evcore::{Clock, Executor, Loop};
use reqqueue::{Queue, QueueError};
use std::time::Duration;

const MS: Duration = Duration::from_millis(1);

/// Runs `scenario` on an executor whose clock a driver task moves 1 ms at a time.
fn with_mock_time<T>(scenario: impl FnOnce(&evcore::Handle) -> Vec<evcore::Task<T>>) -> Vec<T> {
    let (clock, mock) = Clock::mock();
    let ex = Executor::with_reactor(Loop::with_clock(clock).unwrap());
    let h = ex.handle();
    let tasks = scenario(&h);
    ex.block_on(async move {
        let mut out = Vec::new();
        for t in tasks {
            // Move time until this task finishes; each step yields so timers fire and tasks run.
            let mut t = std::pin::pin!(t);
            loop {
                let polled =
                    std::future::poll_fn(|cx| std::task::Poll::Ready(t.as_mut().poll(cx))).await;
                if let std::task::Poll::Ready(v) = polled {
                    out.push(v);
                    break;
                }
                mock.advance(MS);
                evcore::yield_now().await;
            }
        }
        out
    })
}

use std::future::Future;

#[test]
fn deadline_while_waiting_and_while_running() {
    let q = Queue::new("q");
    let results = with_mock_time(|h| {
        let start = h.now();
        let h2 = h.clone();
        // The head runs for 50 ms; its deadline is 100 ms: it finishes.
        let head = q
            .add(move || async move {
                h2.sleep(MS * 50).await;
                "head"
            })
            .deadline(start + MS * 100, h);
        // Queued behind the head with a 20 ms deadline: times out while waiting.
        let waiter = q.add(|| async { "waiter" }).deadline(start + MS * 20, h);
        // Runs after the head (at 50 ms) for 100 ms, deadline 80 ms: times out while running.
        let h3 = h.clone();
        let slow = q
            .add(move || async move {
                h3.sleep(MS * 100).await;
                "slow"
            })
            .deadline(start + MS * 80, h);
        let after = q.add(|| async { "after" });
        vec![h.spawn_local(head), h.spawn_local(waiter), h.spawn_local(slow), h.spawn_local(after)]
    });
    assert_eq!(
        results,
        [Ok("head"), Err(QueueError::TimedOut), Err(QueueError::TimedOut), Ok("after")]
    );
    assert!(q.is_empty());
}
