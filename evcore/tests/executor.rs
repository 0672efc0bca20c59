//! The executor: many tasks sleeping and doing socket I/O, cross-thread wake-ups, mock time.

mod support;

use evcore::{Async, Clock, Executor, Handle, Reactor};
use futures_util::{AsyncReadExt, AsyncWriteExt};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

/// A counting semaphore for one thread, to bound how many sockets are open at once.
#[derive(Clone)]
struct Limit(Rc<RefCell<(usize, VecDeque<Waker>)>>);

impl Limit {
    fn new(n: usize) -> Limit {
        Limit(Rc::new(RefCell::new((n, VecDeque::new()))))
    }

    async fn acquire(&self) {
        poll_fn(|cx| {
            let mut s = self.0.borrow_mut();
            if s.0 > 0 {
                s.0 -= 1;
                Poll::Ready(())
            } else {
                s.1.push_back(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    fn release(&self) {
        let mut s = self.0.borrow_mut();
        s.0 += 1;
        if let Some(w) = s.1.pop_front() {
            w.wake();
        }
    }
}

fn ten_thousand_tasks_sleep_and_do_io<R: Reactor + 'static>(make: fn(Clock) -> R) {
    const TASKS: u32 = 10_000;
    let ex = Executor::with_reactor(make(Clock::system()));
    let h: Handle<R> = ex.handle();
    let total = ex.block_on(async {
        let listener = Async::<TcpListener, R>::bind("127.0.0.1:0".parse().unwrap(), &h).unwrap();
        let addr = listener.get_ref().local_addr().unwrap();
        let server_h = h.clone();
        let server = h.spawn_local(async move {
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                server_h
                    .spawn_local(async move {
                        let mut buf = [0u8; 4];
                        conn.read_exact(&mut buf).await.unwrap();
                        let n = u32::from_be_bytes(buf);
                        conn.write_all(&(n * 2).to_be_bytes()).await.unwrap();
                        // The server closes first, so client ports never sit in TIME_WAIT.
                    })
                    .detach();
            }
        });
        let limit = Limit::new(500);
        let tasks: Vec<_> = (0..TASKS)
            .map(|i| {
                let (h, limit) = (h.clone(), limit.clone());
                h.clone().spawn_local(async move {
                    h.sleep(Duration::from_millis(u64::from(i % 40))).await;
                    limit.acquire().await;
                    let mut c = Async::<TcpStream, R>::connect(addr, &h).await.unwrap();
                    c.write_all(&i.to_be_bytes()).await.unwrap();
                    let mut reply = Vec::new();
                    c.read_to_end(&mut reply).await.unwrap();
                    drop(c);
                    limit.release();
                    assert_eq!(reply, (i * 2).to_be_bytes(), "task {i}");
                    u64::from(i)
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await;
        }
        drop(server);
        total
    });
    assert_eq!(total, u64::from(TASKS) * u64::from(TASKS - 1) / 2);
}

fn wake_from_another_thread<R: Reactor + 'static>(make: fn(Clock) -> R) {
    let ex = Executor::with_reactor(make(Clock::system()));
    let slot: Arc<Mutex<Option<Waker>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let (slot2, done2) = (slot.clone(), done.clone());
    let helper = std::thread::spawn(move || loop {
        // Hand-off through the slot: the waker appears once the task has parked.
        if let Some(w) = slot2.lock().unwrap().take() {
            done2.store(true, Ordering::Release);
            w.wake();
            return;
        }
        std::thread::yield_now();
    });
    ex.block_on(poll_fn(|cx| {
        if done.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            *slot.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }));
    helper.join().unwrap();
}

fn sleep_follows_the_mock_clock<R: Reactor + 'static>(make: fn(Clock) -> R) {
    let (clock, mock) = Clock::mock();
    let ex = Executor::with_reactor(make(clock));
    let h = ex.handle();
    let start = h.now();
    let order = Rc::new(RefCell::new(Vec::new()));
    for (i, ms) in [(0, 300u64), (1, 100), (2, 200)] {
        let (h2, order) = (h.clone(), order.clone());
        h.spawn_local(async move {
            h2.sleep_until(start + Duration::from_millis(ms)).await;
            order.borrow_mut().push((i, (h2.now() - start).as_millis()));
        })
        .detach();
    }
    ex.block_on(async move {
        // Move mock time one millisecond per step. The first yield lets a turn fire due timers;
        // the second lets the woken sleepers run before time moves again.
        while order.borrow().len() < 3 {
            mock.advance(Duration::from_millis(1));
            evcore::yield_now().await;
            evcore::yield_now().await;
        }
        assert_eq!(*order.borrow(), [(1, 100), (2, 200), (0, 300)]);
    });
}

fn dropping_a_sleep_cancels_its_timer<R: Reactor + 'static>(make: fn(Clock) -> R) {
    let ex = Executor::with_reactor(make(Clock::system()));
    let h = ex.handle();
    ex.block_on(async {
        let long = h.sleep(Duration::from_secs(3600));
        let mut long = std::pin::pin!(long);
        // Poll once so that it takes a place on the wheel, then drop it.
        poll_fn(|cx| {
            assert!(long.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
    });
    assert_eq!(h.with_reactor(|r| r.next_deadline()), None, "the timer outlived its future");
}

each_reactor!(
    ten_thousand_tasks_sleep_and_do_io,
    wake_from_another_thread,
    sleep_follows_the_mock_clock,
    dropping_a_sleep_cancels_its_timer,
);

/// A task parked with its waker held only in state it holds itself (a cycle no drop breaks,
/// as a server's list of connections to wake is) is still dropped with its executor: its
/// resources (a lock file, a socket) must not outlive the executor.
#[test]
fn a_task_parked_in_a_cycle_is_dropped_with_its_executor() {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    #[derive(Default)]
    struct State {
        waker: Option<std::task::Waker>,
    }
    let dropped = Arc::new(AtomicBool::new(false));
    let ex = evcore::Executor::new().unwrap();
    let state = Rc::new(RefCell::new(State::default()));
    let (mine, guard) = (state.clone(), SetOnDrop(dropped.clone()));
    ex.spawn_local(async move {
        let _guard = guard;
        std::future::poll_fn(|cx| {
            // The task's waker goes into the state the task holds: a cycle.
            mine.borrow_mut().waker = Some(cx.waker().clone());
            std::task::Poll::<()>::Pending
        })
        .await;
    })
    .detach();
    // Yield once, so that the spawned task runs and parks.
    let mut yielded = false;
    ex.block_on(std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }));
    assert!(state.borrow().waker.is_some(), "the task ran and parked");
    drop(state);
    assert!(!dropped.load(Ordering::SeqCst));
    drop(ex);
    assert!(dropped.load(Ordering::SeqCst), "the parked task was leaked");
}
