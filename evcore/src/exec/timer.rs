//! `Sleep`: a future on the reactor's timing wheel.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use super::{Handle, Shared};
use crate::{Loop, Reactor, TimerId, Token};

pub(crate) struct TimerState {
    waker: Option<Waker>,
    fired: bool,
}

pub(crate) fn deliver<R: Reactor>(shared: &Shared<R>, key: usize) {
    let waker = {
        let mut timers = shared.timers.borrow_mut();
        let Some(state) = timers.get_mut(key) else { return };
        state.fired = true;
        state.waker.take()
    };
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// A future that completes at a deadline on the reactor's clock (a mock clock included).
///
/// It takes a place on the timing wheel only once it is polled and the deadline has not yet
/// passed, and gives it back when it completes or is dropped, so the common case of a timeout
/// that never fires costs one insert and one cancel.
pub struct Sleep<R: Reactor = Loop> {
    handle: Handle<R>,
    deadline: Instant,
    timer: Option<(usize, TimerId)>,
}

impl<R: Reactor + 'static> Sleep<R> {
    pub(crate) fn new(handle: Handle<R>, deadline: Instant) -> Sleep<R> {
        Sleep { handle, deadline, timer: None }
    }

    /// The deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Moves the deadline; the future can be awaited again afterwards.
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        if let Some((key, id)) = self.timer {
            let moved = self.handle.shared.reactor().reset_timer(id, deadline);
            if !moved {
                // Already fired: forget the slot, and the next poll files a new timer.
                self.handle.shared.timers.borrow_mut().try_remove(key);
                self.timer = None;
            }
        }
    }

    fn release(&mut self) {
        if let Some((key, id)) = self.timer.take() {
            if let Ok(mut reactor) = self.handle.shared.reactor.try_borrow_mut() {
                reactor.cancel_timer(id);
            }
            self.handle.shared.timers.borrow_mut().try_remove(key);
        }
    }
}

impl<R: Reactor + 'static> Future for Sleep<R> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let shared = &this.handle.shared;
        if let Some((key, _)) = this.timer {
            let mut timers = shared.timers.borrow_mut();
            match timers.get_mut(key) {
                Some(state) if !state.fired => {
                    if !state.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        state.waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                _ => {
                    drop(timers);
                    this.release();
                    return Poll::Ready(());
                }
            }
        }
        if shared.reactor().now() >= this.deadline {
            return Poll::Ready(());
        }
        let key = shared
            .timers
            .borrow_mut()
            .insert(TimerState { waker: Some(cx.waker().clone()), fired: false });
        let id = shared.reactor().add_timer(this.deadline, Token(key));
        this.timer = Some((key, id));
        Poll::Pending
    }
}

impl<R: Reactor> Drop for Sleep<R> {
    fn drop(&mut self) {
        if let Some((key, id)) = self.timer.take() {
            // The executor may be tearing down (its tables already taken), so nothing here may
            // assume the slot or the reactor borrow is still available.
            if let Ok(mut reactor) = self.handle.shared.reactor.try_borrow_mut() {
                reactor.cancel_timer(id);
            }
            if let Ok(mut timers) = self.handle.shared.timers.try_borrow_mut() {
                timers.try_remove(key);
            }
        }
    }
}

impl<R: Reactor> fmt::Debug for Sleep<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep").field("deadline", &self.deadline).finish_non_exhaustive()
    }
}

/// Gives the other tasks (and the reactor) a turn: pending once, having woken itself, then
/// ready. A task that could go on working for a long time awaits it now and then, so that it
/// does not keep its executor's thread from the others.
///
/// ```
/// let ex = evcore::Executor::new()?;
/// ex.block_on(evcore::yield_now());
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}
