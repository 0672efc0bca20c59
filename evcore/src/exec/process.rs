//! A child process's exit as a future, through a `pidfd` (Linux 5.3): no SIGCHLD handler, no
//! reaper thread, and nothing process-wide to set up.

use std::io;
use std::os::fd::OwnedFd;
use std::process::{self, ExitStatus};

use rustix::process::{pidfd_open, Pid, PidfdFlags};

use super::{Async, Handle};
use crate::{Loop, Reactor};

/// A [`std::process::Child`] whose exit an executor can await.
///
/// The child's pidfd becomes readable when it exits; [`wait`](Child::wait) then reaps it with
/// std's own `try_wait`, so the status is the one std reports and `std::process::Child` stays
/// usable ([`get_mut`](Child::get_mut): `kill`, its pipes). While this value holds the
/// unreaped child its pid cannot be reused, so the pidfd names the right process.
///
/// ```
/// use evcore::{Child, Executor};
/// use std::process::Command;
///
/// let ex = Executor::new()?;
/// let mut child = Child::new(Command::new("sh").args(["-c", "exit 3"]).spawn()?, &ex.handle())?;
/// let status = ex.block_on(child.wait())?;
/// assert_eq!(status.code(), Some(3));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Child<R: Reactor = Loop> {
    child: process::Child,
    pidfd: Async<OwnedFd, R>,
}

impl<R: Reactor + 'static> Child<R> {
    /// Watches `child` on the executor behind `handle`.
    pub fn new(child: process::Child, handle: &Handle<R>) -> io::Result<Child<R>> {
        let fd = pidfd_open(Pid::from_child(&child), PidfdFlags::NONBLOCK)?;
        Ok(Child { child, pidfd: Async::new(fd, handle)? })
    }

    /// Waits for the child to exit and reaps it; its status. Called again, it gives the same
    /// status at once.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            self.pidfd.readable().await?;
        }
    }

    /// The child's pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child, for its pipes and `kill`.
    pub fn get_mut(&mut self) -> &mut process::Child {
        &mut self.child
    }

    /// Gives the child back, unwatched.
    pub fn into_inner(self) -> process::Child {
        self.child
    }
}
