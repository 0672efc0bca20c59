//! `EventStream`: a handle's events as an async `Stream`, on the evcore executor.

use std::collections::VecDeque;
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use evcore::{Async, Dispatch, Handle};
use futures_core::Stream;

use crate::{Collect, Cpg, CpgEvent, CsError};

/// A [`Cpg`] whose events are awaited rather than dispatched: each `next()` yields the next
/// delivery or membership change, in the group's order, waiting on the handle's descriptor
/// without blocking the executor.
///
/// ```
/// use evcore::Executor;
/// use futures_util::StreamExt;
/// use groupmsg::{Backend, Collect, Cpg, CpgEvent, EventStream, GroupName, LocalBus};
///
/// let ex = Executor::new()?;
/// let h = ex.handle();
/// let cpg = Cpg::initialize(Backend::Local(LocalBus::new()), Collect::default())?;
/// let mut events = EventStream::new(cpg, &h)?;
/// events.cpg_mut().join(&GroupName::new("g")?)?;
/// let first = ex.block_on(events.next());
/// assert!(matches!(first, Some(Ok(CpgEvent::ConfChg { .. }))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EventStream {
    cpg: Cpg<Collect>,
    ready: Async<OwnedFd>,
    buffered: VecDeque<CpgEvent>,
}

impl EventStream {
    /// Wraps a handle; its descriptor is watched through the executor behind `handle`.
    pub fn new(cpg: Cpg<Collect>, handle: &Handle) -> Result<EventStream, CsError> {
        let fd = cpg.as_fd().try_clone_to_owned().map_err(|_| CsError::Library)?;
        let ready = Async::new(fd, handle).map_err(|_| CsError::Library)?;
        Ok(EventStream { cpg, ready, buffered: VecDeque::new() })
    }

    /// The handle, to join, leave and multicast.
    pub fn cpg_mut(&mut self) -> &mut Cpg<Collect> {
        &mut self.cpg
    }

    /// The handle back.
    pub fn into_inner(self) -> Cpg<Collect> {
        self.cpg
    }
}

impl Stream for EventStream {
    type Item = Result<CpgEvent, CsError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(e) = this.buffered.pop_front() {
                return Poll::Ready(Some(Ok(e)));
            }
            match this.cpg.dispatch(Dispatch::All) {
                Ok(0) => {}
                Ok(_) => {
                    this.buffered.extend(this.cpg.handler_mut().events.drain(..));
                    continue;
                }
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
            match this.ready.poll_readable(cx) {
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(_)) => return Poll::Ready(Some(Err(CsError::Library))),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("cpg", &self.cpg)
            .field("buffered", &self.buffered.len())
            .finish()
    }
}
