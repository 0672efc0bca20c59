//! `EventStream`: a handle's events as an async `Stream`, on the evcore executor.

use std::collections::VecDeque;
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use std::future::Future;
use std::io::IoSlice;

use evcore::{Async, Dispatch, Handle};
use futures_core::Stream;

use crate::flow::Backoff;
use crate::{Collect, Cpg, CpgEvent, CsError, FlowControl, Guarantee};

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
    handle: Handle,
}

impl EventStream {
    /// Wraps a handle; its descriptor is watched through the executor behind `handle`.
    pub fn new(cpg: Cpg<Collect>, handle: &Handle) -> Result<EventStream, CsError> {
        let fd = cpg.as_fd().try_clone_to_owned().map_err(|_| CsError::Library)?;
        let ready = Async::new(fd, handle).map_err(|_| CsError::Library)?;
        Ok(EventStream { cpg, ready, buffered: VecDeque::new(), handle: handle.clone() })
    }

    /// `cpg_mcast_joined` that waits out flow control: while the answer is retryable
    /// ([`CsError::is_retryable`]), waits until the handle's descriptor is readable (the local
    /// bus and `groupd` make it so when flow control clears) or a pause has passed (100 µs
    /// doubling to 50 ms: corosync sends no such notice), then tries again. Events that
    /// arrive meanwhile are kept for [`next`](futures_core::Stream), in order. Any other
    /// error is returned at once. Dropping the future gives up; nothing was sent then.
    ///
    /// ```
    /// use evcore::Executor;
    /// use futures_util::StreamExt;
    /// use groupmsg::{Backend, Collect, Cpg, CpgEvent, EventStream, GroupName, Guarantee, LocalBus};
    /// use std::io::IoSlice;
    ///
    /// let ex = Executor::new()?;
    /// let cpg = Cpg::initialize(Backend::Local(LocalBus::new()), Collect::default())?;
    /// let mut events = EventStream::new(cpg, &ex.handle())?;
    /// events.cpg_mut().join(&GroupName::new("g")?)?;
    /// ex.block_on(async {
    ///     events.mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"hi")]).await?;
    ///     let _join = events.next().await;
    ///     let hi = events.next().await;
    ///     assert!(matches!(hi, Some(Ok(CpgEvent::Deliver { msg, .. })) if msg == b"hi"));
    ///     Ok::<(), groupmsg::CsError>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn mcast_joined(
        &mut self,
        guarantee: Guarantee,
        iov: &[IoSlice<'_>],
    ) -> Result<(), CsError> {
        let mut backoff = Backoff::new();
        loop {
            // Never waiting inside the call: a wait there would stall the whole executor. Only
            // once the pauses are at their longest does an attempt ask `groupd` for its flow
            // state (one round trip), in case a notice never came.
            let attempt = if backoff.at_max() {
                self.cpg.mcast_joined(guarantee, iov)
            } else {
                self.cpg.try_mcast_joined(guarantee, iov)
            };
            match attempt {
                Err(e) if e.is_retryable() => {}
                other => return other,
            }
            // Take in what is waiting, so that the descriptor's level says only what comes
            // after; a wake-up that came meanwhile may have cleared flow control already.
            self.take_pending()?;
            if self.cpg.flow_control_state() == FlowControl::Enabled || backoff.started() {
                let mut pause = self.handle.sleep(backoff.next());
                let ready = &self.ready;
                std::future::poll_fn(|cx| {
                    if ready.poll_readable(cx).is_ready()
                        || Pin::new(&mut pause).poll(cx).is_ready()
                    {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
            } else {
                backoff.next();
            }
        }
    }

    /// Dispatches what is pending into the buffer.
    fn take_pending(&mut self) -> Result<(), CsError> {
        if self.cpg.dispatch(Dispatch::All)? > 0 {
            self.buffered.extend(self.cpg.handler_mut().events.drain(..));
        }
        Ok(())
    }

    /// The handle, to join, leave and multicast.
    pub fn cpg_mut(&mut self) -> &mut Cpg<Collect> {
        &mut self.cpg
    }

    /// [`Cpg::reinitialize`], watching the new connection's descriptor from then on (events
    /// already taken in are still yielded first).
    pub fn reinitialize(&mut self) -> Result<(), CsError> {
        self.cpg.reinitialize()?;
        let fd = self.cpg.as_fd().try_clone_to_owned().map_err(|_| CsError::Library)?;
        self.ready = Async::new(fd, &self.handle).map_err(|_| CsError::Library)?;
        Ok(())
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
