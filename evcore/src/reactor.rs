//! The `Reactor` trait: the contract every backend keeps, and `dispatch` built on it once.

use std::collections::VecDeque;
use std::io;
use std::mem;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crate::{Dispatch, DispatchError, Event, Interest, Remote, TimerId, Token};

/// The readiness and timer engine that every protocol crate of the workspace is driven by.
///
/// The contract, which every implementation passes the same test suite for:
///
/// - **Readiness is level-triggered.** A descriptor that is still readable (or writable) is
///   reported again on every turn until the condition clears or the interest changes. libcurl's
///   socket interface depends on this: after a partial read the socket must come back.
/// - **`deregister` is idempotent** and accepts a descriptor that is already closed.
/// - **Timers are one-shot** and fire in deadline order, never before their deadline and at most
///   one tick (1 ms) after it; `reset` and `cancel` of a fired timer return `false`.
/// - **Immediates** scheduled during a turn are reported by the next turn, which then does not
///   block.
/// - **Time comes from [`now`](Reactor::now)**, which a mock clock can drive.
/// - **Nothing is global.** Each reactor is a value; its [`Remote`] is how other threads reach it.
pub trait Reactor {
    /// Starts watching `fd` for `interest`, reporting it as `token`.
    ///
    /// The caller keeps owning the descriptor and must deregister it before closing it, as
    /// with epoll; a descriptor closed while registered stops being reported.
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()>;

    /// Changes the token or interest of a registered descriptor.
    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()>;

    /// Stops watching `fd` (`CURL_POLL_REMOVE`). Idempotent; a closed descriptor is fine.
    /// Events for it that a dispatch had not yet delivered are discarded.
    fn deregister(&mut self, fd: RawFd) -> io::Result<()>;

    /// Adds a one-shot timer that reports `token` once `deadline` has passed.
    fn add_timer(&mut self, deadline: Instant, token: Token) -> TimerId;

    /// Moves a timer; `false` if it has already fired or been cancelled.
    fn reset_timer(&mut self, id: TimerId, deadline: Instant) -> bool;

    /// Cancels a timer; `false` if it has already fired or been cancelled.
    fn cancel_timer(&mut self, id: TimerId) -> bool;

    /// The instant by which the next turn must run for timers to fire on time, if any timer is
    /// live. It can be earlier than the earliest deadline (never later): the wheel then re-files
    /// coarse timers without firing them.
    fn next_deadline(&self) -> Option<Instant>;

    /// The reactor's current time, from its clock.
    fn now(&self) -> Instant;

    /// Reports `token` as an [`Event::Immediate`] on the next turn, which will not block.
    fn schedule_immediate(&mut self, token: Token);

    /// A handle for other threads to schedule closures on, wake or stop this reactor.
    fn remote(&self) -> Remote;

    /// Waits up to `timeout` (`None`: no limit) for readiness, a due timer, an immediate or a
    /// remote wake-up, appends what happened to `out`, and returns how many events it appended.
    /// A turn may return no events: on timeout, or when only coarse timers were re-filed.
    fn turn(&mut self, timeout: Option<Duration>, out: &mut Vec<Event>) -> io::Result<usize>;

    /// The bookkeeping [`dispatch`](Reactor::dispatch) keeps in each reactor: events a
    /// non-blocking dispatch has not yet delivered, and the stop request.
    fn dispatch_state(&mut self) -> &mut DispatchState;

    /// Asks a running [`Dispatch::Blocking`] to return once the current handler returns.
    fn stop(&mut self) {
        self.dispatch_state().stop = true;
    }

    /// Runs `handler` for events as `mode` says: corosync's `cpg_dispatch`, for any reactor.
    ///
    /// Returns how many events were handled. The handler gets the reactor back, so it can
    /// register, add timers and stop the loop.
    fn dispatch<H>(&mut self, mode: Dispatch, mut handler: H) -> Result<usize, DispatchError>
    where
        Self: Sized,
        H: FnMut(&mut Self, Event),
    {
        let mut handled = 0;
        match mode {
            Dispatch::OneNonBlocking => {
                if self.dispatch_state().backlog.is_empty() {
                    self.fill_backlog(Some(Duration::ZERO))?;
                }
                let Some(event) = self.dispatch_state().backlog.pop_front() else {
                    return Err(DispatchError::TryAgain);
                };
                handler(self, event);
                handled = 1;
            }
            Dispatch::All => {
                if self.dispatch_state().backlog.is_empty() {
                    self.fill_backlog(Some(Duration::ZERO))?;
                }
                while let Some(event) = self.dispatch_state().backlog.pop_front() {
                    handler(self, event);
                    handled += 1;
                }
            }
            Dispatch::One => {
                while self.dispatch_state().backlog.is_empty() {
                    self.fill_backlog(None)?;
                    let state = self.dispatch_state();
                    if state.backlog.is_empty() && (state.stop || state.stop_after_turn) {
                        state.stop = false;
                        state.stop_after_turn = false;
                        return Ok(0);
                    }
                }
                while let Some(event) = self.dispatch_state().backlog.pop_front() {
                    handler(self, event);
                    handled += 1;
                }
            }
            Dispatch::Blocking => loop {
                let state = self.dispatch_state();
                if mem::take(&mut state.stop) | mem::take(&mut state.stop_after_turn) {
                    break;
                }
                if self.dispatch_state().backlog.is_empty() {
                    self.fill_backlog(None)?;
                }
                while !self.dispatch_state().stop {
                    let Some(event) = self.dispatch_state().backlog.pop_front() else { break };
                    handler(self, event);
                    handled += 1;
                }
            },
        }
        Ok(handled)
    }

    /// One turn into the dispatch backlog. Not for direct use; `dispatch` calls it.
    #[doc(hidden)]
    fn fill_backlog(&mut self, timeout: Option<Duration>) -> io::Result<usize>
    where
        Self: Sized,
    {
        let mut scratch = mem::take(&mut self.dispatch_state().scratch);
        let result = self.turn(timeout, &mut scratch);
        let state = self.dispatch_state();
        state.backlog.extend(scratch.drain(..));
        state.scratch = scratch;
        result
    }
}

/// Per-reactor state for [`Reactor::dispatch`]: undelivered events and the stop request.
#[derive(Debug, Default)]
pub struct DispatchState {
    backlog: VecDeque<Event>,
    scratch: Vec<Event>,
    /// Set by a handler: stop once that handler returns.
    stop: bool,
    /// Set by a remote: stop once the events of the turn that collected it are delivered.
    stop_after_turn: bool,
}

impl DispatchState {
    /// Records a stop request that arrived through a [`Remote`].
    pub(crate) fn request_stop(&mut self) {
        self.stop_after_turn = true;
    }

    /// Drops undelivered readiness events for `token`, whose registration just changed.
    pub(crate) fn forget_io(&mut self, token: Token) {
        if !self.backlog.is_empty() {
            self.backlog.retain(|e| !matches!(e, Event::Io(t, _) if *t == token));
        }
    }

    /// The number of events returned by a turn but not yet delivered.
    pub fn backlog_len(&self) -> usize {
        self.backlog.len()
    }
}
