//! A condition tasks can wait on: whoever changes the shared state calls `notify`, waiters
//! re-check their predicate.

use std::cell::RefCell;
use std::future::Future;
use std::task::{Poll, Waker};

#[derive(Default)]
pub(crate) struct Watch {
    wakers: RefCell<Vec<Waker>>,
}

impl Watch {
    pub(crate) fn notify(&self) {
        for w in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Resolves once `ready` returns true, checking again after each `notify`.
    pub(crate) fn until<'a>(
        &'a self,
        mut ready: impl FnMut() -> bool + 'a,
    ) -> impl Future<Output = ()> + 'a {
        futures_util::future::poll_fn(move |cx| {
            if ready() {
                return Poll::Ready(());
            }
            self.wakers.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
    }
}
