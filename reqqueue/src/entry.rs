//! `Entry`: one queued request, as a future.

use std::fmt;
use std::future::{Future, Pending};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use evcore::{Handle, Reactor, Sleep};
use pin_project::{pin_project, pinned_drop};

use crate::shared::{Local, Sharing};
use crate::state::{Turn, NIL};
use crate::QueueError;

#[pin_project(project = StageProj)]
pub(crate) enum Stage<F, Fut> {
    Waiting {
        trigger: Option<F>,
    },
    Running {
        #[pin]
        fut: Fut,
    },
    Done,
}

/// A queued request: a future that waits for its turn, runs the trigger's future, and resolves
/// to its output. Returned by [`Queue::add`](crate::QueueHandle::add).
///
/// Dropping it before it completes removes it from the queue in O(1): a waiting entry just
/// leaves its place (the order of the rest is kept); a running one is cancelled, and the next
/// head starts.
#[pin_project(PinnedDrop)]
pub struct Entry<F, Fut, S: Sharing = Local, D = Pending<()>> {
    shared: S,
    key: u32,
    /// Set when the entry could not even be queued (the queue was closed).
    refused: Option<QueueError>,
    #[pin]
    stage: Stage<F, Fut>,
    #[pin]
    timer: D,
    has_timer: bool,
}

impl<F, Fut, S: Sharing> Entry<F, Fut, S> {
    pub(crate) fn new(shared: S, key: Result<u32, QueueError>, stage: Stage<F, Fut>) -> Self {
        let (key, refused) = match key {
            Ok(key) => (key, None),
            Err(e) => (NIL, Some(e)),
        };
        Entry { shared, key, refused, stage, timer: std::future::pending(), has_timer: false }
    }
}

impl<F, Fut, S: Sharing, D> Entry<F, Fut, S, D> {
    /// Gives the entry a deadline: if `timer` completes first, whether the entry is still
    /// waiting or already running, the entry leaves the queue (a running request is dropped)
    /// and resolves to [`QueueError::TimedOut`]. This is `tevent_req_set_endtime`.
    pub fn timeout<D2: Future<Output = ()>>(mut self, timer: D2) -> Entry<F, Fut, S, D2> {
        let key = std::mem::replace(&mut self.key, NIL);
        let stage = std::mem::replace(&mut self.stage, Stage::Done);
        Entry {
            shared: self.shared.clone(),
            key,
            refused: self.refused.take(),
            stage,
            timer,
            has_timer: true,
        }
    }

    /// A deadline on an evcore timer: [`timeout`](Self::timeout) with `handle.sleep_until(at)`.
    pub fn deadline<R: Reactor + 'static>(
        self,
        at: Instant,
        handle: &Handle<R>,
    ) -> Entry<F, Fut, S, Sleep<R>> {
        self.timeout(handle.sleep_until(at))
    }

    /// Labels the entry in [`Queue::snapshot`](crate::QueueHandle::snapshot).
    pub fn tag(self, tag: &'static str) -> Self {
        if self.key != NIL {
            self.shared.with(|s| s.set_tag(self.key, tag));
        }
        self
    }
}

impl<F, Fut, S, D> Future for Entry<F, Fut, S, D>
where
    F: FnOnce() -> Fut,
    Fut: Future,
    S: Sharing,
    D: Future<Output = ()>,
{
    type Output = Result<Fut::Output, QueueError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(e) = this.refused.take() {
            this.stage.set(Stage::Done);
            return Poll::Ready(Err(e));
        }
        loop {
            match this.stage.as_mut().project() {
                StageProj::Waiting { trigger } => {
                    let key = *this.key;
                    match this.shared.with(|s| s.poll_turn(key, cx.waker())) {
                        Turn::Start => {
                            let trigger =
                                trigger.take().expect("a waiting entry keeps its trigger");
                            this.stage.set(Stage::Running { fut: trigger() });
                        }
                        Turn::Closed => {
                            leave(this.shared, this.key);
                            this.stage.set(Stage::Done);
                            return Poll::Ready(Err(QueueError::Closed));
                        }
                        Turn::Wait => break,
                        Turn::Yield => {
                            cx.waker().wake_by_ref();
                            break;
                        }
                    }
                }
                StageProj::Running { fut } => {
                    if let Poll::Ready(out) = fut.poll(cx) {
                        leave(this.shared, this.key);
                        this.stage.set(Stage::Done);
                        return Poll::Ready(Ok(out));
                    }
                    break;
                }
                StageProj::Done => return Poll::Ready(Err(QueueError::Finished)),
            }
        }
        if *this.has_timer && this.timer.poll(cx).is_ready() {
            // Dropping the stage first cancels a running request before the next head starts.
            this.stage.set(Stage::Done);
            leave(this.shared, this.key);
            return Poll::Ready(Err(QueueError::TimedOut));
        }
        Poll::Pending
    }
}

/// Takes the entry out of the queue (once) and wakes the next head if its turn came.
pub(crate) fn leave<S: Sharing>(shared: &S, key: &mut u32) {
    if *key == NIL {
        return;
    }
    let k = std::mem::replace(key, NIL);
    if let Some(waker) = shared.with(|s| s.remove(k)) {
        waker.wake();
    }
}

#[pinned_drop]
impl<F, Fut, S: Sharing, D> PinnedDrop for Entry<F, Fut, S, D> {
    fn drop(self: Pin<&mut Self>) {
        let mut this = self.project();
        // A running request is dropped before the next head is woken.
        this.stage.set(Stage::Done);
        leave(this.shared, this.key);
    }
}

impl<F, Fut, S: Sharing, D> fmt::Debug for Entry<F, Fut, S, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match self.stage {
            Stage::Waiting { .. } => "waiting",
            Stage::Running { .. } => "running",
            Stage::Done => "done",
        };
        f.debug_struct("Entry").field("stage", &stage).field("deadline", &self.has_timer).finish()
    }
}
