//! Telling the driver what to watch: the socket and timer callbacks, `drain_updates`, or the
//! engine's own poller. Only changes are told, and a Remove always comes before the close.

use std::os::fd::{AsRawFd, RawFd};

use evcore::Reactor;
use std::time::Duration;

use evcore::Interest;

use super::{Multi, TimerTold};

/// What a socket should be watched for: libcurl's `CURL_POLL_IN`, `_OUT`, `_INOUT` and
/// `_REMOVE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SocketPoll {
    /// Readable.
    In,
    /// Writable.
    Out,
    /// Both.
    InOut,
    /// Stop watching: the socket is about to be closed, or is idle.
    Remove,
}

impl SocketPoll {
    /// The interest to register, or `None` for Remove.
    pub fn interest(self) -> Option<Interest> {
        match self {
            SocketPoll::In => Some(Interest::In),
            SocketPoll::Out => Some(Interest::Out),
            SocketPoll::InOut => Some(Interest::InOut),
            SocketPoll::Remove => None,
        }
    }

    fn of(interest: Option<Interest>) -> SocketPoll {
        match interest {
            Some(Interest::In) => SocketPoll::In,
            Some(Interest::Out) => SocketPoll::Out,
            Some(Interest::InOut) => SocketPoll::InOut,
            None => SocketPoll::Remove,
        }
    }
}

/// One change for a driver that pulls them with [`Multi::drain_updates`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Update {
    /// Watch `fd` for `poll`, or stop watching it.
    Socket {
        /// The descriptor.
        fd: RawFd,
        /// What to watch it for.
        poll: SocketPoll,
    },
    /// Set the one timer: `Some(ZERO)` means at once, `None` cancels it.
    Timer(Option<Duration>),
}

impl<T, S> Multi<T, S> {
    /// Marks a connection's wanted interest.
    pub(super) fn set_want(&mut self, ci: usize, want: Option<Interest>) {
        let c = &mut self.conns[ci];
        c.want = want;
        if !c.dirty && c.want != c.told {
            c.dirty = true;
            self.dirty.push(ci);
        }
    }

    /// What the timer should say now.
    pub(super) fn timer_want(&self) -> TimerTold {
        if !self.runnable.is_empty() {
            TimerTold::Now
        } else {
            self.deadlines.first().map_or(TimerTold::Unset, |&(at, _)| TimerTold::At(at))
        }
    }

    /// The timer's change since it was last told, if any.
    pub(super) fn timer_change(&mut self) -> Option<Option<Duration>> {
        let want = self.timer_want();
        if want == self.timer_told {
            return None;
        }
        self.timer_told = want;
        Some(match want {
            TimerTold::Unset | TimerTold::Consumed => None,
            TimerTold::Now => Some(Duration::ZERO),
            TimerTold::At(at) => Some(at.saturating_duration_since(self.now())),
        })
    }

    /// Calls `tell` with every socket change; Removes of closed sockets first. With `defer`,
    /// their descriptors are kept open until the next call (pull mode); otherwise they are
    /// closed as soon as `tell` returns.
    pub(super) fn socket_changes(
        &mut self,
        mut tell: impl FnMut(RawFd, super::SocketPoll, &mut Option<S>),
        defer: bool,
    ) {
        for (fd, owned, mut user) in self.graveyard.drain(..) {
            tell(fd, SocketPoll::Remove, &mut user);
            drop(user);
            if defer {
                self.closing.push(owned);
            }
        }
        for ci in std::mem::take(&mut self.dirty) {
            let Some(c) = self.conns.get_mut(ci) else { continue };
            c.dirty = false;
            if c.want != c.told {
                c.told = c.want;
                tell(c.raw, SocketPoll::of(c.want), &mut c.user);
                if c.want.is_none() {
                    c.user = None;
                }
            }
        }
        let busy = self.resolver.busy();
        if busy != self.signal_told {
            self.signal_told = busy;
            let fd = self.resolver.signal().fd().as_raw_fd();
            tell(fd, if busy { SocketPoll::In } else { SocketPoll::Remove }, &mut None);
        }
    }

    /// Ends an entry point: tells the callbacks or the poller what changed.
    pub(super) fn report(&mut self) {
        if self.perform_mode {
            self.report_to_poller();
            return;
        }
        if let Some(mut cb) = self.socket_cb.take() {
            self.socket_changes(&mut cb, false);
            self.socket_cb = Some(cb);
        }
        if let Some(mut cb) = self.timer_cb.take() {
            if let Some(t) = self.timer_change() {
                cb(t);
            }
            self.timer_cb = Some(cb);
        }
    }

    fn report_to_poller(&mut self) {
        // A failed registration (ENOMEM) would leave a socket unwatched; its transfer still ends
        // by its timeouts, so it is not worth failing the call.
        for (fd, owned, _) in self.graveyard.drain(..) {
            let _ = self.lp.deregister(fd);
            drop(owned);
        }
        for ci in std::mem::take(&mut self.dirty) {
            let Some(c) = self.conns.get_mut(ci) else { continue };
            c.dirty = false;
            if c.want != c.told {
                let _ = change(&mut self.lp, c.raw, c.told, c.want);
                c.told = c.want;
            }
        }
        let busy = self.resolver.busy();
        if busy != self.signal_told {
            let fd = self.resolver.signal().fd().as_raw_fd();
            let (old, new) =
                if busy { (None, Some(Interest::In)) } else { (Some(Interest::In), None) };
            let _ = change(&mut self.lp, fd, old, new);
            self.signal_told = busy;
        }
    }
}

/// One change of interest on the engine's own loop (`None` removes).
fn change(
    lp: &mut evcore::Loop,
    fd: RawFd,
    old: Option<Interest>,
    new: Option<Interest>,
) -> std::io::Result<()> {
    use evcore::Token;
    match (old, new) {
        (None, Some(i)) => lp.register(fd, Token(fd as usize), i),
        (Some(_), Some(i)) => lp.reregister(fd, Token(fd as usize), i),
        (Some(_), None) => lp.deregister(fd),
        (None, None) => Ok(()),
    }
}
