//! `TokioReactor`: the [`Reactor`] contract on a tokio runtime (feature `tokio`).
//!
//! tokio reports readiness once per edge and caches it until the user clears it. The contract
//! here is level-triggered, so each turn confirms every readiness tokio has cached with a
//! zero-timeout `poll(2)` on the descriptor: readiness that still holds is reported again (and
//! stays cached), readiness that no longer holds is cleared so that tokio waits for the next
//! edge. Timers, immediates and remotes are the same code as [`Loop`](crate::Loop)'s.

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};
use tokio::io::unix::AsyncFd;
use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::Notify;

use crate::core::Core;
use crate::remote::Wake;
use crate::{Clock, Event, Interest, Reactor, Ready, Token};

/// The [`Reactor`] contract driven by tokio's I/O driver.
///
/// Own a current-thread runtime with [`TokioReactor::new`], or borrow the I/O driver of an
/// existing multi-threaded runtime with [`TokioReactor::with_handle`]. Inside a tokio task, use
/// [`turn_async`](TokioReactor::turn_async) instead of the blocking [`Reactor::turn`].
///
/// ```
/// use evcore::{Dispatch, Event, Reactor, TokioReactor, Token};
///
/// let mut reactor = TokioReactor::new()?;
/// reactor.schedule_immediate(Token(3));
/// let mut seen = Vec::new();
/// reactor.dispatch(Dispatch::All, |_, e| seen.push(e))?;
/// assert_eq!(seen, [Event::Immediate(Token(3))]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TokioReactor {
    // Registrations first: they must be dropped while the runtime still exists.
    regs: Vec<Option<Registration>>,
    registered: usize,
    core: Core,
    notify: Arc<Notify>,
    handle: Handle,
    runtime: Option<Runtime>,
    turns: u64,
}

#[derive(Debug)]
struct Registration {
    fd: AsyncFd<Fd>,
    token: Token,
    interest: Interest,
}

#[derive(Debug)]
struct Fd(RawFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

struct NotifyWake(Arc<Notify>);

impl Wake for NotifyWake {
    fn wake(&self) {
        self.0.notify_one();
    }
}

impl TokioReactor {
    /// A reactor that owns a current-thread tokio runtime.
    pub fn new() -> io::Result<TokioReactor> {
        TokioReactor::with_clock(Clock::system())
    }

    /// A reactor that owns a current-thread runtime, on the given clock.
    pub fn with_clock(clock: Clock) -> io::Result<TokioReactor> {
        let runtime = Builder::new_current_thread().enable_io().enable_time().build()?;
        let handle = runtime.handle().clone();
        Ok(TokioReactor::build(handle, Some(runtime), clock))
    }

    /// A reactor on the I/O driver of an existing runtime. The blocking [`Reactor::turn`] must then
    /// be called from outside that runtime's threads (tokio forbids blocking inside them), and
    /// the runtime must be multi-threaded so that its own threads drive I/O; inside a task, use
    /// [`turn_async`](Self::turn_async).
    pub fn with_handle(handle: Handle, clock: Clock) -> TokioReactor {
        TokioReactor::build(handle, None, clock)
    }

    fn build(handle: Handle, runtime: Option<Runtime>, clock: Clock) -> TokioReactor {
        let notify = Arc::new(Notify::new());
        let core = Core::new(clock, Box::new(NotifyWake(notify.clone())));
        TokioReactor { regs: Vec::new(), registered: 0, core, notify, handle, runtime, turns: 0 }
    }

    /// How many turns this reactor has taken.
    pub fn turns(&self) -> u64 {
        self.turns
    }

    /// One turn, awaited inside a tokio task: see [`Reactor::turn`].
    pub async fn turn_async(
        &mut self,
        timeout: Option<Duration>,
        out: &mut Vec<Event>,
    ) -> io::Result<usize> {
        let start = out.len();
        let timeout = self.core.wait_timeout(timeout);
        let notified = self.notify.notified();
        tokio::pin!(notified);
        let regs = &self.regs;
        let wait = std::future::poll_fn(|cx| {
            let mut found = false;
            for reg in regs.iter().flatten() {
                let ready = level_ready(reg, cx);
                if !ready.is_empty() {
                    out.push(Event::Io(reg.token, ready));
                    found = true;
                }
            }
            if notified.as_mut().poll(cx).is_ready() {
                found = true;
            }
            if found {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        match timeout {
            None => wait.await,
            Some(limit) if limit.is_zero() => {
                // tokio's timers round up to its 1 ms tick, so a zero timeout through them would
                // sleep. Yielding instead lets the runtime poll its I/O driver without blocking;
                // then one look at the readiness it gathered.
                tokio::task::yield_now().await;
                let mut wait = std::pin::pin!(wait);
                std::future::poll_fn(|cx| {
                    let _ = wait.as_mut().poll(cx);
                    Poll::Ready(())
                })
                .await;
            }
            Some(limit) => {
                let _ = tokio::time::timeout(limit, wait).await;
            }
        }
        self.turns += 1;
        self.core.after_wait(out);
        Ok(out.len() - start)
    }

    fn index(fd: RawFd) -> io::Result<usize> {
        usize::try_from(fd)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "negative descriptor"))
    }

    /// Registers `fd` with tokio's driver; the caller has entered the runtime.
    fn watch(fd: RawFd, interest: Interest) -> io::Result<AsyncFd<Fd>> {
        // SAFETY: tokio asks that the descriptor stay open and the same for the life of the
        // AsyncFd. That is the Reactor contract the caller accepted: the descriptor is
        // deregistered (and this AsyncFd dropped) before it is closed. A caller that breaks it
        // can only make tokio's epoll bookkeeping act on a reused number (lost or spurious
        // events); tokio keys its own state by its token, not by the number, so no memory is
        // at stake.
        unsafe { AsyncFd::register_with_interest(Fd(fd), Self::tokio_interest(interest)) }
            .map_err(|e| e.into_parts().1)
    }

    fn tokio_interest(interest: Interest) -> tokio::io::Interest {
        match interest {
            Interest::In => tokio::io::Interest::READABLE,
            Interest::Out => tokio::io::Interest::WRITABLE,
            Interest::InOut => tokio::io::Interest::READABLE | tokio::io::Interest::WRITABLE,
        }
    }
}

/// What a registration is ready for right now, by tokio's cache confirmed with `poll(2)`.
fn level_ready(reg: &Registration, cx: &mut std::task::Context<'_>) -> Ready {
    let mut ready = Ready::EMPTY;
    if reg.interest.is_readable() {
        ready = ready.union(confirm(
            reg,
            PollFlags::IN,
            |fd| fd.poll_read_ready(cx),
            Ready::is_readable,
        ));
    }
    if reg.interest.is_writable() {
        ready = ready.union(confirm(
            reg,
            PollFlags::OUT,
            |fd| fd.poll_write_ready(cx),
            Ready::is_writable,
        ));
    }
    ready
}

/// One direction: while tokio says ready, ask `poll(2)`; readiness that no longer holds is
/// cleared so that tokio waits for the next edge, readiness that holds is reported (and stays
/// cached, so the next turn reports it again: level semantics).
fn confirm<'a>(
    reg: &'a Registration,
    flags: PollFlags,
    mut poll_ready: impl FnMut(
        &'a AsyncFd<Fd>,
    ) -> Poll<io::Result<tokio::io::unix::AsyncFdReadyGuard<'a, Fd>>>,
    holds: fn(Ready) -> bool,
) -> Ready {
    loop {
        match poll_ready(&reg.fd) {
            Poll::Ready(Ok(mut guard)) => {
                let now = poll_now(reg.fd.get_ref().0, flags);
                if holds(now) || now.is_error() || now.is_hangup() {
                    return now;
                }
                guard.clear_ready();
            }
            Poll::Ready(Err(_)) => return Ready::new(false, false, true, false),
            Poll::Pending => return Ready::EMPTY,
        }
    }
}

/// A zero-timeout `poll(2)` of one descriptor.
fn poll_now(fd: RawFd, flags: PollFlags) -> Ready {
    // SAFETY: the descriptor is registered with this reactor, so the caller keeps it open until it
    // deregisters; it is only handed to poll(2) for the duration of this call.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut fds = [PollFd::from_borrowed_fd(borrowed, flags)];
    let zero = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
    match rustix::event::poll(&mut fds, Some(&zero)) {
        Ok(0) | Err(_) => Ready::EMPTY,
        Ok(_) => {
            let got = fds[0].revents();
            Ready::new(
                got.contains(PollFlags::IN),
                got.contains(PollFlags::OUT),
                got.contains(PollFlags::ERR) || got.contains(PollFlags::NVAL),
                got.contains(PollFlags::HUP),
            )
        }
    }
}

impl Reactor for TokioReactor {
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let index = Self::index(fd)?;
        if self.regs.get(index).is_some_and(Option::is_some) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "descriptor already registered",
            ));
        }
        let _guard = self.handle.enter();
        let afd = Self::watch(fd, interest)?;
        if index >= self.regs.len() {
            self.regs.resize_with(index + 1, || None);
        }
        self.regs[index] = Some(Registration { fd: afd, token, interest });
        self.registered += 1;
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let index = Self::index(fd)?;
        let Some(old) = self.regs.get_mut(index).and_then(Option::take) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "descriptor not registered"));
        };
        self.core.dispatch.forget_io(old.token);
        // tokio fixes the interest at registration, so a change of interest is a new one.
        let afd = if old.interest == interest {
            old.fd
        } else {
            drop(old.fd);
            let _guard = self.handle.enter();
            match Self::watch(fd, interest) {
                Ok(afd) => afd,
                Err(e) => {
                    self.registered -= 1;
                    return Err(e);
                }
            }
        };
        self.regs[index] = Some(Registration { fd: afd, token, interest });
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let Ok(index) = Self::index(fd) else { return Ok(()) };
        if let Some(old) = self.regs.get_mut(index).and_then(Option::take) {
            self.registered -= 1;
            self.core.dispatch.forget_io(old.token);
            // Dropping the AsyncFd deregisters from tokio's epoll; tokio ignores a closed fd.
            let _guard = self.handle.enter();
            drop(old);
        }
        Ok(())
    }

    crate::core::delegate_to_core!();

    fn turn(&mut self, timeout: Option<Duration>, out: &mut Vec<Event>) -> io::Result<usize> {
        match self.runtime.take() {
            Some(runtime) => {
                let result = runtime.block_on(self.turn_async(timeout, out));
                self.runtime = Some(runtime);
                result
            }
            None => {
                let handle = self.handle.clone();
                handle.block_on(self.turn_async(timeout, out))
            }
        }
    }
}

impl Drop for TokioReactor {
    fn drop(&mut self) {
        let _guard = self.handle.enter();
        self.regs.clear();
    }
}
