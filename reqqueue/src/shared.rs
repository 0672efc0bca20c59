//! How a queue's state is shared between its handle and its entries: `Rc<RefCell>` for the
//! single-thread [`Queue`](crate::Queue), `Arc<Mutex>` for [`SyncQueue`](crate::SyncQueue).
//! The rest of the crate is written once against [`Sharing`].
//!
//! `Sharing` is sealed: its methods live on a supertrait in a private module and take the
//! crate-private state, which the `private_interfaces` and `private_bounds` lints report. That is the intent here,
//! so the lint is allowed for this module only.
#![allow(private_interfaces, private_bounds)]

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use crate::state::State;

pub(crate) mod sealed {
    use crate::state::State;

    /// The methods of [`Sharing`](super::Sharing), in a trait nobody outside can name or
    /// implement. The state type is private to the crate, which is the point.
    #[allow(unreachable_pub)]
    pub trait Sealed {
        fn new(state: State) -> Self;
        /// Runs `f` on the state. `f` never calls user code (wakers are returned and called
        /// after), so this cannot re-enter; what the operation leaves for user code (trace
        /// hooks, `idle()` wakers) runs once the state is released.
        fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R;
    }
}

/// How a queue's state is shared. Implemented by [`Local`] and [`Threaded`] only.
pub trait Sharing: Clone + Unpin + sealed::Sealed {}

impl Sharing for Local {}
impl Sharing for Threaded {}

/// Single-thread sharing (`!Send`), the cheapest: a `RefCell` borrow per operation.
#[derive(Clone)]
pub struct Local(Rc<RefCell<State>>);

/// Thread-safe sharing (`Send + Sync`): a mutex per operation.
#[derive(Clone)]
pub struct Threaded(Arc<Mutex<State>>);

impl sealed::Sealed for Local {
    fn new(state: State) -> Self {
        Local(Rc::new(RefCell::new(state)))
    }

    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut s = self.0.borrow_mut();
        let r = f(&mut s);
        if s.has_after {
            local_after(s);
        }
        r
    }
}

impl sealed::Sealed for Threaded {
    fn new(state: State) -> Self {
        Threaded(Arc::new(Mutex::new(state)))
    }

    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // The state is plain data updated without calling user code, so a panic elsewhere that
        // poisoned the lock cannot have left it half-updated.
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let r = f(&mut s);
        if s.has_after {
            threaded_after(s);
        }
        r
    }
}

/// The rare path, out of line so that `with` stays small enough to inline: trace hooks and
/// `idle()` wakers, run once the state is released.
#[cold]
#[inline(never)]
fn local_after(mut s: std::cell::RefMut<'_, State>) {
    let after = s.take_after();
    drop(s);
    after.run();
}

/// The same for the thread-safe queue.
#[cold]
#[inline(never)]
fn threaded_after(mut s: std::sync::MutexGuard<'_, State>) {
    let after = s.take_after();
    drop(s);
    after.run();
}

impl fmt::Debug for Local {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Local").field(&self.0.try_borrow().map(|s| s.len()).ok()).finish()
    }
}

impl fmt::Debug for Threaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Threaded").field(&self.0.try_lock().map(|s| s.len()).ok()).finish()
    }
}
