//! The engine's own epoll, used only when the caller drives it with `perform`/`wait`/`poll`
//! (libcurl's `curl_multi_perform` and `curl_multi_poll`), and the thread-safe wake-up.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use evcore::{Interest, Ready};
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::Timespec;
use rustix::io::Errno;

use crate::resolve::Signal;

/// The key of the wake-up descriptor in the epoll set (never a descriptor number).
const WAKE_KEY: u64 = u64::MAX;

pub(crate) struct Poller {
    epoll: OwnedFd,
    wake: Arc<Signal>,
    events: Vec<epoll::Event>,
}

fn flags(interest: Interest) -> EventFlags {
    match interest {
        Interest::In => EventFlags::IN | EventFlags::RDHUP,
        Interest::Out => EventFlags::OUT,
        Interest::InOut => EventFlags::IN | EventFlags::RDHUP | EventFlags::OUT,
    }
}

impl Poller {
    pub(crate) fn new(wake: Arc<Signal>) -> io::Result<Poller> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(&epoll, wake.fd(), EventData::new_u64(WAKE_KEY), EventFlags::IN)?;
        Ok(Poller { epoll, wake, events: Vec::with_capacity(256) })
    }

    /// Applies one change of interest (`None` removes).
    pub(crate) fn change(
        &mut self,
        fd: BorrowedFd<'_>,
        old: Option<Interest>,
        new: Option<Interest>,
    ) -> io::Result<()> {
        let data = EventData::new_u64(fd.as_raw_fd() as u64);
        match (old, new) {
            (None, Some(i)) => epoll::add(&self.epoll, fd, data, flags(i))?,
            (Some(_), Some(i)) => epoll::modify(&self.epoll, fd, data, flags(i))?,
            (Some(_), None) => match epoll::delete(&self.epoll, fd) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            },
            (None, None) => {}
        }
        Ok(())
    }

    /// Waits up to `timeout` and appends what is ready; returns whether the wake-up fired.
    pub(crate) fn wait(
        &mut self,
        timeout: Option<Duration>,
        out: &mut Vec<(RawFd, Ready)>,
    ) -> io::Result<bool> {
        let ts = timeout.map(|d| Timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        self.events.clear();
        match epoll::wait(
            &self.epoll,
            rustix::buffer::spare_capacity(&mut self.events),
            ts.as_ref(),
        ) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let mut woken = false;
        for ev in &self.events {
            let key = ev.data.u64();
            if key == WAKE_KEY {
                woken |= self.wake.clear();
                continue;
            }
            let f = ev.flags;
            out.push((
                key as RawFd,
                Ready::new(
                    f.intersects(EventFlags::IN | EventFlags::RDHUP),
                    f.contains(EventFlags::OUT),
                    f.contains(EventFlags::ERR),
                    f.intersects(EventFlags::HUP | EventFlags::RDHUP),
                ),
            ));
        }
        Ok(woken)
    }
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller").field("epoll", &self.epoll).finish_non_exhaustive()
    }
}

impl AsFd for Poller {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}

/// Wakes a [`Multi`](crate::Multi) blocked in [`poll`](crate::Multi::poll) from any thread
/// (`curl_multi_wakeup`). Cheap to clone; waking an engine that is gone does nothing.
#[derive(Clone, Debug)]
pub struct MultiWaker(pub(crate) Arc<Signal>);

impl MultiWaker {
    /// Makes the current or next `poll` return at once.
    pub fn wakeup(&self) {
        self.0.raise();
    }
}
