//! `Loop`: the default reactor, on the `polling` crate in level-triggered mode.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use polling::{Events, PollMode, Poller};

use crate::core::Core;
use crate::remote::Wake;
use crate::{Clock, DispatchState, Event, Interest, Reactor, Ready, Remote, TimerId, Token};

/// The default [`Reactor`]: epoll (through `polling`) for readiness, our timing wheel for timers.
///
/// ```
/// use evcore::{Dispatch, Event, Loop, Reactor, Token};
/// use std::time::Duration;
///
/// let mut lp = Loop::new()?;
/// let deadline = lp.now() + Duration::from_millis(5);
/// lp.add_timer(deadline, Token(1));
/// lp.schedule_immediate(Token(2));
/// let mut seen = Vec::new();
/// while seen.len() < 2 {
///     lp.dispatch(Dispatch::One, |_, event| seen.push(event))?;
/// }
/// assert_eq!(seen, [Event::Immediate(Token(2)), Event::Timer(Token(1))]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Loop {
    poller: Arc<Poller>,
    events: Events,
    /// Registrations indexed by descriptor number, which epoll already keeps unique.
    regs: Vec<Option<Registration>>,
    registered: usize,
    core: Core,
    turns: u64,
}

#[derive(Clone, Copy, Debug)]
struct Registration {
    token: Token,
}

struct PollerWake(Arc<Poller>);

impl Wake for PollerWake {
    fn wake(&self) {
        // A failed notify means the eventfd write failed, which only happens when the poller is
        // being torn down; the loop is then gone and nobody is left to wake.
        let _ = self.0.notify();
    }
}

impl Loop {
    /// A loop on the system clock.
    pub fn new() -> io::Result<Loop> {
        Loop::with_clock(Clock::system())
    }

    /// A loop on the given clock; with a mock clock, timers fire only as the test moves time.
    pub fn with_clock(clock: Clock) -> io::Result<Loop> {
        let poller = Arc::new(Poller::new()?);
        let core = Core::new(clock, Box::new(PollerWake(poller.clone())));
        Ok(Loop { poller, events: Events::new(), regs: Vec::new(), registered: 0, core, turns: 0 })
    }

    /// How many turns this loop has taken: a measure of wake-ups, for tests and statistics.
    pub fn turns(&self) -> u64 {
        self.turns
    }

    /// How many descriptors are registered.
    pub fn registered(&self) -> usize {
        self.registered
    }

    /// How many timers are live.
    pub fn timers(&self) -> usize {
        self.core.timer_count()
    }

    fn event_for(fd: RawFd, interest: Interest) -> polling::Event {
        polling::Event::new(fd as usize, interest.is_readable(), interest.is_writable())
    }

    fn slot(&mut self, fd: RawFd) -> io::Result<&mut Option<Registration>> {
        let index = usize::try_from(fd)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "negative descriptor"))?;
        if index >= self.regs.len() {
            self.regs.resize(index + 1, None);
        }
        Ok(&mut self.regs[index])
    }
}

/// Borrows a raw descriptor for one epoll_ctl call.
fn borrow(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: the borrowed descriptor is only handed to epoll_ctl for the duration of one call
    // and never read from, written to or closed. The kernel validates the number: one that is
    // closed yields EBADF or ENOENT, which the callers handle, and no memory is involved. The
    // callers have checked that the number is not negative.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

impl Reactor for Loop {
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let was_registered = self.slot(fd)?.is_some();
        let event = Self::event_for(fd, interest);
        // SAFETY: `polling` asks that a source be deleted before it is dropped, because on some
        // platforms (IOCP) it keeps pointers into the source. On epoll the kernel owns all of the
        // registration's state and drops it itself when the descriptor is closed, so a caller
        // that closes without deregistering can only lose events, never memory safety.
        let added = unsafe { self.poller.add_with_mode(fd, event, PollMode::Level) };
        match added {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::EXIST.raw_os_error()) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "descriptor already registered",
                ));
            }
            Err(e) => return Err(e),
        }
        // A slot can still be marked when its descriptor was closed without a deregister and the
        // number was reused: the kernel accepted the new registration, so the old one is gone.
        if let (true, Some(old)) = (was_registered, *self.slot(fd)?) {
            self.core.dispatch.forget_io(old.token);
        } else {
            self.registered += 1;
        }
        *self.slot(fd)? = Some(Registration { token });
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let Some(old) = *self.slot(fd)? else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "descriptor not registered"));
        };
        self.poller.modify_with_mode(borrow(fd), Self::event_for(fd, interest), PollMode::Level)?;
        self.core.dispatch.forget_io(old.token);
        *self.slot(fd)? = Some(Registration { token });
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let Ok(slot) = self.slot(fd) else { return Ok(()) };
        let Some(old) = slot.take() else { return Ok(()) };
        self.registered -= 1;
        self.core.dispatch.forget_io(old.token);
        match self.poller.delete(borrow(fd)) {
            Ok(()) => Ok(()),
            Err(e)
                if e.raw_os_error() == Some(rustix::io::Errno::BADF.raw_os_error())
                    || e.raw_os_error() == Some(rustix::io::Errno::NOENT.raw_os_error()) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn add_timer(&mut self, deadline: Instant, token: Token) -> TimerId {
        self.core.add_timer(deadline, token)
    }

    fn reset_timer(&mut self, id: TimerId, deadline: Instant) -> bool {
        self.core.reset_timer(id, deadline)
    }

    fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.core.cancel_timer(id)
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.core.next_deadline()
    }

    fn now(&self) -> Instant {
        self.core.now()
    }

    fn schedule_immediate(&mut self, token: Token) {
        self.core.schedule_immediate(token);
    }

    fn remote(&self) -> Remote {
        self.core.remote()
    }

    fn turn(&mut self, timeout: Option<Duration>, out: &mut Vec<Event>) -> io::Result<usize> {
        let start = out.len();
        let timeout = self.core.wait_timeout(timeout);
        self.events.clear();
        self.poller.wait(&mut self.events, timeout)?;
        self.turns += 1;
        for ev in self.events.iter() {
            // An event for a slot emptied since the wait began (by a remote job, say) is stale.
            let Some(Some(reg)) = self.regs.get(ev.key) else { continue };
            let error = ev.is_err().unwrap_or(false);
            let hangup = ev.is_interrupt();
            out.push(Event::Io(reg.token, Ready::new(ev.readable, ev.writable, error, hangup)));
        }
        self.core.after_wait(out);
        Ok(out.len() - start)
    }

    fn dispatch_state(&mut self) -> &mut DispatchState {
        &mut self.core.dispatch
    }
}
