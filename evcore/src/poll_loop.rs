//! `Loop`: the default reactor, on Linux epoll in level-triggered mode.
//!
//! One `epoll_pwait2` per turn and nothing else: no timerfd to re-arm (the timeout goes to the
//! wait itself, in nanoseconds), and the cross-thread wake-up is an eventfd that is written only
//! when the loop is actually asleep (see [`Remote`](crate::Remote)). The `polling` crate, which DESIGN.md first
//! named here, arms a timerfd and re-arms its epoll registration on every wait: measured on
//! this machine class, a non-blocking turn cost 1.44 µs through it against 135 ns for the bare
//! syscall, which every crate on this reactor would pay per turn. rustix gives safe wrappers
//! for all of epoll and eventfd, so this backend needs unsafe code only to borrow the raw
//! descriptors callers register.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::{EventfdFlags, Timespec};
use rustix::io::Errno;

use crate::core::Core;
use crate::remote::Wake;
use crate::{Clock, Event, Interest, Reactor, Ready, Token};

/// The epoll data of the loop's own eventfd; descriptors use their number, which is smaller.
const WAKE_KEY: u64 = u64::MAX;
/// How many events one turn takes from the kernel at most; more wait for the next turn.
const EVENTS_PER_TURN: usize = 1024;

/// The default [`Reactor`]: Linux epoll (level-triggered) for readiness, our timing wheel for
/// timers. Requires Linux 5.11 or later (`epoll_pwait2`).
///
/// The loop's epoll descriptor is itself pollable ([`AsFd`]): another event loop can watch it
/// and call [`turn`](Reactor::turn) with a zero timeout when it is readable, which is how this
/// loop embeds in someone else's.
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
pub struct Loop {
    epoll: OwnedFd,
    wake: Arc<OwnedFd>,
    events: EventBuf,
    /// Registrations indexed by descriptor number, which the kernel already keeps unique.
    regs: Vec<Option<Registration>>,
    registered: usize,
    core: Core,
    turns: u64,
    /// How long a wait polls without blocking before it sleeps (0: it sleeps at once).
    spin: Duration,
}

/// The buffer the kernel fills with events. rustix's `epoll::Event` holds its user data as a
/// union with a pointer member, which makes it `!Send`; we only ever store and read plain
/// integers (tokens) there, so the buffer is data and may move with its loop to another
/// thread (a `Multi` owning a `Loop` is handed to the thread that drives it).
struct EventBuf(Vec<epoll::Event>);

// SAFETY: the events hold only `u64` tokens we wrote (`EventData::new_u64`), never pointers;
// nothing in them refers to memory of the thread that filled them, and the vector is only
// touched through `&mut Loop`, so moving it between threads is as safe as moving a `Vec<u64>`.
#[allow(unsafe_code)]
unsafe impl Send for EventBuf {}

#[derive(Clone, Copy, Debug)]
struct Registration {
    token: Token,
}

impl std::fmt::Debug for Loop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loop")
            .field("epoll", &self.epoll)
            .field("registered", &self.registered)
            .field("core", &self.core)
            .field("turns", &self.turns)
            .finish_non_exhaustive()
    }
}

struct EventfdWake(Arc<OwnedFd>);

impl Wake for EventfdWake {
    fn wake(&self) {
        // EAGAIN means the counter is saturated, so a wake-up is pending anyway; any other
        // failure means the loop is being torn down and nobody is left to wake.
        let _ = rustix::io::write(&*self.0, &1u64.to_ne_bytes());
    }
}

impl Loop {
    /// A loop on the system clock.
    pub fn new() -> io::Result<Loop> {
        Loop::with_clock(Clock::system())
    }

    /// A loop on the given clock; with a mock clock, timers fire only as the test moves time.
    pub fn with_clock(clock: Clock) -> io::Result<Loop> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let wake =
            Arc::new(rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?);
        epoll::add(&epoll, &*wake, EventData::new_u64(WAKE_KEY), EventFlags::IN)?;
        let core = Core::new(clock, Box::new(EventfdWake(wake.clone())));
        Ok(Loop {
            epoll,
            wake,
            events: EventBuf(Vec::with_capacity(EVENTS_PER_TURN)),
            regs: Vec::new(),
            registered: 0,
            core,
            turns: 0,
            spin: Duration::ZERO,
        })
    }

    /// Polls for up to `spin` before a wait blocks: each poll is a non-blocking
    /// `epoll_pwait2`, with a `sched_yield` between two, until an event comes (or a remote
    /// wakes the loop, or a timer is due); then the wait blocks for what is left. A
    /// request-reply peer on another core answers within a few microseconds, and a loop that
    /// is still polling takes the answer without the tens of microseconds a sleeping thread
    /// needs to be woken and scheduled. The yield gives the core to any other thread that is
    /// ready to run, so a busy machine loses little to the polling. 0 (the default) never
    /// polls.
    ///
    /// ```
    /// let mut lp = evcore::Loop::new()?;
    /// lp.set_spin(std::time::Duration::from_micros(50));
    /// assert_eq!(lp.spin(), std::time::Duration::from_micros(50));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// How long a wait polls before it blocks; see [`set_spin`](Loop::set_spin).
    pub fn spin(&self) -> Duration {
        self.spin
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

    fn flags(interest: Interest) -> EventFlags {
        // RDHUP comes with read interest so that a peer's half-close is reported as hang-up,
        // which libcurl-style engines use to retire a kept-alive connection.
        match interest {
            Interest::In => EventFlags::IN | EventFlags::RDHUP,
            Interest::Out => EventFlags::OUT,
            Interest::InOut => EventFlags::IN | EventFlags::RDHUP | EventFlags::OUT,
        }
    }

    fn slot(&mut self, fd: RawFd) -> io::Result<&mut Option<Registration>> {
        let index = usize::try_from(fd)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "negative descriptor"))?;
        if index >= self.regs.len() {
            self.regs.resize(index + 1, None);
        }
        Ok(&mut self.regs[index])
    }

    fn drain_wake(&self) {
        let mut buf = [0u8; 8];
        // Reading resets the counter; EAGAIN means another turn already did.
        let _ = rustix::io::read(&*self.wake, &mut buf);
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

impl AsFd for Loop {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}

impl AsRawFd for Loop {
    fn as_raw_fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }
}

impl Reactor for Loop {
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let was_registered = self.slot(fd)?.is_some();
        match epoll::add(
            &self.epoll,
            borrow(fd),
            EventData::new_u64(fd as u64),
            Self::flags(interest),
        ) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "descriptor already registered",
                ));
            }
            Err(e) => return Err(e.into()),
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
        epoll::modify(
            &self.epoll,
            borrow(fd),
            EventData::new_u64(fd as u64),
            Self::flags(interest),
        )?;
        self.core.dispatch.forget_io(old.token);
        *self.slot(fd)? = Some(Registration { token });
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let Ok(slot) = self.slot(fd) else { return Ok(()) };
        let Some(old) = slot.take() else { return Ok(()) };
        self.registered -= 1;
        self.core.dispatch.forget_io(old.token);
        match epoll::delete(&self.epoll, borrow(fd)) {
            Ok(()) | Err(Errno::BADF | Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    crate::core::delegate_to_core!();

    fn turn(&mut self, timeout: Option<Duration>, out: &mut Vec<Event>) -> io::Result<usize> {
        let start = out.len();
        let timeout = self.core.wait_timeout(timeout).map(|d| Timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        self.events.0.clear();
        let zero = Timespec { tv_sec: 0, tv_nsec: 0 };
        let mut timeout = timeout;
        let blocking = timeout.as_ref().is_none_or(|t| t.tv_sec > 0 || t.tv_nsec > 0);
        if blocking && !self.spin.is_zero() {
            // Poll first; the loop is already marked sleeping for its remotes, so a wake from
            // another thread arrives as an event here too.
            let limit = timeout.as_ref().map_or(self.spin, |t| {
                self.spin.min(Duration::new(t.tv_sec as u64, t.tv_nsec as u32))
            });
            let began = std::time::Instant::now();
            loop {
                match epoll::wait(
                    &self.epoll,
                    rustix::buffer::spare_capacity(&mut self.events.0),
                    Some(&zero),
                ) {
                    Ok(_) | Err(Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
                let spent = began.elapsed();
                if !self.events.0.is_empty() {
                    timeout = Some(zero);
                    break;
                }
                if spent >= limit {
                    timeout = timeout.map(|t| {
                        let left =
                            Duration::new(t.tv_sec as u64, t.tv_nsec as u32).saturating_sub(spent);
                        Timespec {
                            tv_sec: left.as_secs() as i64,
                            tv_nsec: i64::from(left.subsec_nanos()),
                        }
                    });
                    break;
                }
                std::thread::yield_now();
            }
        }
        if self.events.0.is_empty() {
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut self.events.0),
                timeout.as_ref(),
            ) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.turns += 1;
        for ev in &self.events.0 {
            let key = ev.data.u64();
            if key == WAKE_KEY {
                self.drain_wake();
                continue;
            }
            // An event for a slot emptied since the wait began (by a remote job, say) is stale.
            let Some(Some(reg)) = self.regs.get(key as usize) else { continue };
            let f = ev.flags;
            let ready = Ready::new(
                f.intersects(EventFlags::IN | EventFlags::RDHUP),
                f.contains(EventFlags::OUT),
                f.contains(EventFlags::ERR),
                f.intersects(EventFlags::HUP | EventFlags::RDHUP),
            );
            out.push(Event::Io(reg.token, ready));
        }
        self.core.after_wait(out);
        Ok(out.len() - start)
    }
}
