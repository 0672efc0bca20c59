//! The vocabulary shared by every reactor: tokens, interests, readiness, events and dispatch modes.

use std::fmt;

/// A caller-chosen number that names a registration, a timer or an immediate in the events
/// a reactor returns.
///
/// The reactor never interprets it; several registrations may share one token when the caller
/// wants that (libcurl's per-socket pointer and tevent's private data are both this).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(pub usize);

/// Which readiness a registration asks for.
///
/// These are libcurl's `CURL_POLL_IN`, `CURL_POLL_OUT` and `CURL_POLL_INOUT`; its `CURL_POLL_REMOVE`
/// is [`Reactor::deregister`](crate::Reactor::deregister).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Interest {
    /// Readable (or at end of stream, or in error).
    In,
    /// Writable (or in error).
    Out,
    /// Both.
    InOut,
}

impl Interest {
    /// Whether this interest includes readability.
    pub const fn is_readable(self) -> bool {
        matches!(self, Interest::In | Interest::InOut)
    }

    /// Whether this interest includes writability.
    pub const fn is_writable(self) -> bool {
        matches!(self, Interest::Out | Interest::InOut)
    }

    /// The interest with both directions given as flags, or `None` when neither is asked for.
    pub const fn from_flags(readable: bool, writable: bool) -> Option<Interest> {
        match (readable, writable) {
            (true, true) => Some(Interest::InOut),
            (true, false) => Some(Interest::In),
            (false, true) => Some(Interest::Out),
            (false, false) => None,
        }
    }
}

/// What a file descriptor is ready for: libcurl's `CURL_CSELECT_IN`, `_OUT` and `_ERR` bits plus
/// hang-up.
///
/// Error and hang-up are reported whatever the interest, as `poll(2)` does, because a caller that
/// waits only for writability still has to learn that the peer is gone.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Ready {
    bits: u8,
}

impl Ready {
    const READABLE: u8 = 1;
    const WRITABLE: u8 = 2;
    const ERROR: u8 = 4;
    const HANGUP: u8 = 8;

    /// No readiness at all.
    pub const EMPTY: Ready = Ready { bits: 0 };
    /// Readable only.
    pub const READABLE_ONLY: Ready = Ready { bits: Self::READABLE };
    /// Writable only.
    pub const WRITABLE_ONLY: Ready = Ready { bits: Self::WRITABLE };

    /// Builds a readiness from its four flags.
    pub const fn new(readable: bool, writable: bool, error: bool, hangup: bool) -> Ready {
        let mut bits = 0;
        if readable {
            bits |= Self::READABLE;
        }
        if writable {
            bits |= Self::WRITABLE;
        }
        if error {
            bits |= Self::ERROR;
        }
        if hangup {
            bits |= Self::HANGUP;
        }
        Ready { bits }
    }

    /// Readable, or at end of stream.
    pub const fn is_readable(self) -> bool {
        self.bits & Self::READABLE != 0
    }

    /// Writable.
    pub const fn is_writable(self) -> bool {
        self.bits & Self::WRITABLE != 0
    }

    /// An error is pending on the descriptor (`EPOLLERR`, `CURL_CSELECT_ERR`).
    pub const fn is_error(self) -> bool {
        self.bits & Self::ERROR != 0
    }

    /// The peer hung up (`EPOLLHUP`).
    pub const fn is_hangup(self) -> bool {
        self.bits & Self::HANGUP != 0
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.bits == 0
    }

    /// The union of two readinesses.
    #[must_use]
    pub const fn union(self, other: Ready) -> Ready {
        Ready { bits: self.bits | other.bits }
    }
}

impl fmt::Debug for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut set = f.debug_set();
        for (on, name) in [
            (self.is_readable(), "readable"),
            (self.is_writable(), "writable"),
            (self.is_error(), "error"),
            (self.is_hangup(), "hangup"),
        ] {
            if on {
                set.entry(&format_args!("{name}"));
            }
        }
        set.finish()
    }
}

/// One thing that happened during a [`Reactor::turn`](crate::Reactor::turn).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A registered descriptor is ready. Readiness is level-triggered: it is reported again on
    /// every turn for as long as the condition holds and the registration asks for it.
    Io(Token, Ready),
    /// A timer reached its deadline. Timers are one-shot: it is gone once reported.
    Timer(Token),
    /// An immediate scheduled before this turn began.
    Immediate(Token),
    /// Another thread woke the loop through a [`Remote`](crate::Remote); any closures it scheduled
    /// have already run, in the order they were scheduled.
    Notified,
}

/// How much a dispatch call runs: the four modes of corosync's `cpg_dispatch`, for every reactor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dispatch {
    /// `CS_DISPATCH_ONE`: block until at least one event is available, then handle what one turn
    /// of the reactor produced.
    One,
    /// `CS_DISPATCH_ALL`: handle everything pending now, never block.
    All,
    /// `CS_DISPATCH_BLOCKING`: handle events until the loop is stopped, from a handler with
    /// [`Reactor::stop`](crate::Reactor::stop) or from another thread with
    /// [`Remote::stop`](crate::Remote::stop).
    Blocking,
    /// `CS_DISPATCH_ONE_NONBLOCKING`: handle at most one event without blocking; when nothing
    /// is pending the call fails with [`DispatchError::TryAgain`](crate::DispatchError::TryAgain).
    OneNonBlocking,
}
