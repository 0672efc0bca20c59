//! A [`Multi`] shared between its owner and its callbacks, where calling back into the
//! engine from a callback is a typed error (`CURLM_RECURSIVE_API_CALL`) rather than a panic.

use std::cell::RefCell;
use std::os::fd::RawFd;
use std::rc::Rc;
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
/// ```
/// use multixfer::{Multi, MultiError, SharedMulti};
///
/// let shared = SharedMulti::new(Multi::<(), ()>::new()?);
/// let inner = shared.clone();
/// let seen = std::rc::Rc::new(std::cell::Cell::new(false));
/// let flag = seen.clone();
/// shared.with(|m| m.set_timer_callback(move |_| {
///     flag.set(matches!(inner.socket_action_timeout(), Err(MultiError::RecursiveApiCall)));
/// }))?;
/// shared.add(multixfer::Easy::get("http://127.0.0.1:9/"))?;
/// assert!(seen.get());
/// # Ok::<(), MultiError>(())
/// ```
#[derive(Debug)]
pub struct SharedMulti<T = (), S = ()>(Rc<RefCell<Multi<T, S>>>);

impl<T, S> Clone for SharedMulti<T, S> {
    fn clone(&self) -> Self {
        SharedMulti(self.0.clone())
    }
}

impl<T, S> SharedMulti<T, S> {
    /// Shares `multi`.
    pub fn new(multi: Multi<T, S>) -> SharedMulti<T, S> {
        SharedMulti(Rc::new(RefCell::new(multi)))
    }

    /// Runs `f` on the engine, unless it is busy.
    pub fn with<U>(&self, f: impl FnOnce(&mut Multi<T, S>) -> U) -> Result<U, MultiError> {
        let mut m = self.0.try_borrow_mut().map_err(|_| MultiError::RecursiveApiCall)?;
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
