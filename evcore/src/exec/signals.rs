//! Signals as a stream, through `signalfd(2)`; see [`Signals`] for the mask this needs.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{FromRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_core::Stream;

use super::{Async, Handle};
use crate::{Loop, Reactor};

/// Signal numbers for [`Signals`], as the C headers number them on Linux.
pub mod signal {
    /// Hangup: by custom, "reload your configuration".
    pub const HUP: i32 = libc::SIGHUP;
    /// Interrupt: Ctrl-C at a terminal.
    pub const INT: i32 = libc::SIGINT;
    /// Quit: Ctrl-\ at a terminal.
    pub const QUIT: i32 = libc::SIGQUIT;
    /// Terminate: what `kill` and service managers send to stop a program.
    pub const TERM: i32 = libc::SIGTERM;
    /// User-defined signal 1.
    pub const USR1: i32 = libc::SIGUSR1;
    /// User-defined signal 2.
    pub const USR2: i32 = libc::SIGUSR2;
    /// A child process stopped or ended.
    pub const CHLD: i32 = libc::SIGCHLD;
    /// Write to a pipe with no reader.
    pub const PIPE: i32 = libc::SIGPIPE;
}

/// Builds the kernel's signal set from numbers, refusing what cannot be caught or does not
/// exist (SIGKILL, SIGSTOP, 0, numbers past the real-time range).
fn sigset(signals: &[i32]) -> io::Result<libc::sigset_t> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `sigemptyset` initialises the whole set it is given; `set` is valid for writes.
    let mut set = unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        set.assume_init()
    };
    for &sig in signals {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("signal {sig} cannot be caught, blocked or read"),
            ));
        }
        // SAFETY: `set` is an initialised set; `sigaddset` checks `sig` and fails with EINVAL
        // for a number that is not a signal, which is reported.
        if unsafe { libc::sigaddset(&mut set, sig) } != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{sig} is not a signal number"),
            ));
        }
    }
    Ok(set)
}

fn block(set: &libc::sigset_t) -> io::Result<()> {
    // SAFETY: `set` is an initialised signal set; the old mask is not asked for (null).
    // `pthread_sigmask` changes only the calling thread's mask and returns an error number.
    match unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, set, std::ptr::null_mut()) } {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Blocks `signals` in the calling thread, and so in every thread it starts from now on.
/// Call it first in `main`, before any thread exists, for the signals a [`Signals`] will read;
/// see [`Signals`] for why every thread must block them.
///
/// ```
/// use evcore::signal;
/// evcore::block_signals(&[signal::USR2])?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn block_signals(signals: &[i32]) -> io::Result<()> {
    block(&sigset(signals)?)
}

/// A stream of the signals asked for, read on an executor's reactor through a `signalfd`.
///
/// A signal reaches a `signalfd` only while it is *blocked*: otherwise the kernel runs its
/// disposition (for SIGTERM, the default is to end the process) before any descriptor sees
/// it. And a process-directed signal (what `kill(1)` and systemd send) goes to any one thread
/// that does not block it. So the signals a program waits for must be blocked in **every**
/// thread: call [`block_signals`] at the top of `main`, before any thread is started (threads
/// inherit the mask), and then make [`Signals`] on whichever loop should hear them.
/// [`Signals::new`] blocks them in the calling thread too, which is enough for a program that
/// has one thread, but not for one whose other threads already run.
///
/// Nothing here installs a handler or touches dispositions, so it composes with code that does
/// (a signal blocked everywhere never reaches a handler). The mask is left blocked when a
/// [`Signals`] is dropped: unblocking would deliver what is pending with its default action.
///
/// One signal reaches one reader: several `Signals` asking for the same signal on different
/// loops compete for each delivery, and a loop that did not ask for a signal never sees it.
/// A signal sent while another of the same kind is pending is merged into it, as for any
/// standard signal.
///
/// ```
/// use evcore::{signal, Executor, Signals};
///
/// evcore::block_signals(&[signal::USR1])?;
/// let ex = Executor::new()?;
/// let signals = Signals::new(&[signal::USR1], &ex.handle())?;
/// // A signal to this thread (a process-wide one goes to any thread that does not block it).
/// // SAFETY: pthread_kill on our own thread with a valid signal number touches no memory.
/// unsafe { libc::pthread_kill(libc::pthread_self(), signal::USR1) };
/// assert_eq!(ex.block_on(signals.recv())?, signal::USR1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Signals<R: Reactor = Loop> {
    fd: Async<OwnedFd, R>,
}

impl<R: Reactor + 'static> Signals<R> {
    /// Reads `signals` on the executor behind `handle`. Blocks them in the calling thread (see
    /// [`block_signals`] for the other threads). Fails with `InvalidInput` for SIGKILL, SIGSTOP
    /// or a number that is not a signal.
    pub fn new(signals: &[i32], handle: &Handle<R>) -> io::Result<Signals<R>> {
        let set = sigset(signals)?;
        block(&set)?;
        // SAFETY: `set` is an initialised signal set; -1 asks for a new descriptor, returned
        // as a non-negative number that nothing else owns, or -1 with errno set.
        let raw = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor just created for us alone, so it may be owned.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Signals { fd: Async::new(fd, handle)? })
    }

    /// The next signal, by number.
    pub async fn recv(&self) -> io::Result<i32> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next signal; see [`recv`](Self::recv).
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<io::Result<i32>> {
        loop {
            // One `struct signalfd_siginfo` (128 bytes) per signal; the number is its first
            // field, a native-endian u32.
            let mut info = [0u8; 128];
            match rustix::io::read(self.fd.get_ref(), &mut info) {
                Ok(n) if n >= 4 => {
                    let signo = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]);
                    return Poll::Ready(Ok(signo as i32));
                }
                Ok(n) => {
                    return Poll::Ready(Err(io::Error::other(format!(
                        "signalfd returned {n} bytes, not a signalfd_siginfo"
                    ))))
                }
                Err(rustix::io::Errno::AGAIN) => ready!(self.fd.poll_readable(cx))?,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
    }
}

impl<R: Reactor + 'static> Stream for Signals<R> {
    type Item = io::Result<i32>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<i32>>> {
        self.poll_recv(cx).map(Some)
    }
}
