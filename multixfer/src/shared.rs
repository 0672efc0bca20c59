//! A [`Multi`] shared between its owner and its callbacks, where calling back into the
//! engine from a callback is a typed error (`CURLM_RECURSIVE_API_CALL`) rather than a panic.

use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::Duration;

use evcore::Ready;

use crate::{Done, Easy, Multi, MultiError, XferId};

/// A cloneable handle to one [`Multi`].
///
/// A `&mut Multi` already makes re-entry impossible: a callback cannot reach the engine that
/// is calling it. Code that shares the engine with its callbacks (to add a transfer from a
/// write callback, say) uses this handle instead; a call made while the engine is busy
/// returns [`MultiError::RecursiveApiCall`].
///
/// `Send + Sync` (for `Send` private and socket values): a call from another thread while
/// the engine is busy waits for it, as a mutex does; only a call from the thread already
/// inside the engine (a callback re-entering it) is the typed error.
///
/// ```
/// use multixfer::{Multi, MultiError, SharedMulti};
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// let shared = SharedMulti::new(Multi::<(), ()>::new()?);
/// let inner = shared.clone();
/// let seen = Arc::new(AtomicBool::new(false));
/// let flag = seen.clone();
/// shared.with(|m| m.set_timer_callback(move |_| {
///     let refused = matches!(inner.socket_action_timeout(), Err(MultiError::RecursiveApiCall));
///     flag.store(refused, Ordering::SeqCst);
/// }))?;
/// shared.add(multixfer::Easy::get("http://127.0.0.1:9/"))?;
/// assert!(seen.load(Ordering::SeqCst));
/// # Ok::<(), MultiError>(())
/// ```
#[derive(Debug)]
pub struct SharedMulti<T = (), S = ()>(Arc<Shared<T, S>>);

#[derive(Debug)]
struct Shared<T, S> {
    multi: Mutex<Multi<T, S>>,
    /// The thread inside the engine now, if any.
    holder: Mutex<Option<ThreadId>>,
}

impl<T, S> Clone for SharedMulti<T, S> {
    fn clone(&self) -> Self {
        SharedMulti(self.0.clone())
    }
}

impl<T, S> SharedMulti<T, S> {
    /// Shares `multi`.
    pub fn new(multi: Multi<T, S>) -> SharedMulti<T, S> {
        SharedMulti(Arc::new(Shared { multi: Mutex::new(multi), holder: Mutex::new(None) }))
    }

    /// Runs `f` on the engine: at once if it is free, after the call in progress if another
    /// thread is inside it, and not at all (the typed error) if this thread is.
    pub fn with<U>(&self, f: impl FnOnce(&mut Multi<T, S>) -> U) -> Result<U, MultiError> {
        let me = thread::current().id();
        let holder = |h: Option<ThreadId>| {
            *self.0.holder.lock().unwrap_or_else(|e| e.into_inner()) = h;
        };
        if *self.0.holder.lock().unwrap_or_else(|e| e.into_inner()) == Some(me) {
            return Err(MultiError::RecursiveApiCall);
        }
        // A callback that panicked poisoned the lock; the engine itself is still whole (each
        // call leaves it consistent before it calls out).
        let mut m = self.0.multi.lock().unwrap_or_else(|e| e.into_inner());
        holder(Some(me));
        struct Clear<'a>(&'a Mutex<Option<ThreadId>>);
        impl Drop for Clear<'_> {
            fn drop(&mut self) {
                *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
        }
        let _clear = Clear(&self.0.holder);
        Ok(f(&mut m))
    }

    /// [`Multi::add`].
    pub fn add(&self, easy: Easy<T>) -> Result<XferId, MultiError> {
        self.with(|m| m.add(easy))
    }

    /// [`Multi::remove`].
    pub fn remove(&self, id: XferId) -> Result<T, MultiError> {
        self.with(|m| m.remove(id))?
    }

    /// [`Multi::perform`].
    pub fn perform(&self) -> Result<usize, MultiError> {
        self.with(|m| m.perform())?
    }

    /// [`Multi::socket_action`].
    pub fn socket_action(&self, fd: RawFd, ready: Ready) -> Result<usize, MultiError> {
        self.with(|m| m.socket_action(fd, ready))?
    }

    /// [`Multi::socket_action_timeout`].
    pub fn socket_action_timeout(&self) -> Result<usize, MultiError> {
        self.with(|m| m.socket_action_timeout())?
    }

    /// [`Multi::timeout`].
    pub fn timeout(&self) -> Result<Option<Duration>, MultiError> {
        self.with(|m| m.timeout())
    }

    /// [`Multi::info_read`].
    pub fn info_read(&self) -> Result<Option<(Done<T>, usize)>, MultiError> {
        self.with(|m| m.info_read())
    }

    /// [`Multi::running`].
    pub fn running(&self) -> Result<usize, MultiError> {
        self.with(|m| m.running())
    }
}
