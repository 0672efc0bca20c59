//! The queue handle: `Queue` (single thread) and `SyncQueue` (any thread).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::entry::{Entry, Stage};
use crate::guard::{Blocker, Enter, Guard};
use crate::shared::sealed::Sealed;
use crate::shared::{Local, Sharing, Threaded};
use crate::state::{EntryState, Kind, State, TracePoint};
use crate::QueueError;

/// A queue that runs one request at a time, in FIFO order: `tevent_queue`. Use it as [`Queue`]
/// (single thread) or [`SyncQueue`] (any thread).
///
/// The type parameter says how it is shared: [`Local`] (`!Send`, a `RefCell` borrow per
/// operation) or [`Threaded`] (a mutex). Cloning gives another handle to the same queue; when
/// the last handle is dropped, the queue closes.
///
/// ```
/// use evcore::Executor;
/// use reqqueue::Queue;
/// use std::cell::RefCell;
/// use std::rc::Rc;
///
/// let ex = Executor::new()?;
/// let queue = Queue::new("writer");
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let tasks: Vec<_> = (0..3)
///     .map(|i| {
///         let log = log.clone();
///         // Each trigger runs only when its entry is at the head: no interleaving.
///         ex.spawn_local(queue.add(move || async move {
///             log.borrow_mut().push(format!("start {i}"));
///             log.borrow_mut().push(format!("end {i}"));
///             i
///         }))
///     })
///     .collect();
/// let results: Vec<_> = ex.block_on(async {
///     let mut out = Vec::new();
///     for t in tasks {
///         out.push(t.await);
///     }
///     out
/// });
/// assert_eq!(results, [Ok(0), Ok(1), Ok(2)]);
/// assert_eq!(log.borrow()[..2], ["start 0".to_string(), "end 0".to_string()]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct QueueHandle<S: Sharing> {
    shared: S,
}

/// The single-thread queue (`!Send`): the cheapest.
pub type Queue = QueueHandle<Local>;

/// The queue whose handles and entries may move between threads (`Send + Sync`).
pub type SyncQueue = QueueHandle<Threaded>;

impl QueueHandle<Local> {
    /// `tevent_queue_create`: a new, running, single-thread queue.
    pub fn new(name: impl Into<String>) -> Queue {
        QueueHandle { shared: Local::new(State::new(name.into())) }
    }
}

impl QueueHandle<Threaded> {
    /// `tevent_queue_create`: a new, running queue usable from any thread.
    pub fn new(name: impl Into<String>) -> SyncQueue {
        QueueHandle { shared: Threaded::new(State::new(name.into())) }
    }
}

impl<S: Sharing> QueueHandle<S> {
    /// `tevent_queue_add`: queues a request. `trigger` is called only when the entry is at the
    /// head of a running queue; the entry leaves the queue when the future it returns completes
    /// or the entry is dropped, and the next head then starts (woken, never polled from here).
    ///
    /// The returned [`Entry`] is a future: await it, or spawn it, or nothing runs.
    pub fn add<F, Fut>(&self, trigger: F) -> Entry<F, Fut, S>
    where
        F: FnOnce() -> Fut,
        Fut: Future,
    {
        let key = self.shared.with(|s| s.push(Kind::Trigger, ""));
        Entry::new(self.shared.clone(), key, Stage::Waiting { trigger: Some(trigger) })
    }

    /// [`add`](Self::add) with the entry's tag given at once, so that the trace hook's
    /// [`Attach`](TracePoint::Attach) carries it ([`Entry::tag`] comes too late for that).
    pub fn add_tagged<F, Fut>(&self, tag: &'static str, trigger: F) -> Entry<F, Fut, S>
    where
        F: FnOnce() -> Fut,
        Fut: Future,
    {
        let key = self.shared.with(|s| s.push(Kind::Trigger, tag));
        Entry::new(self.shared.clone(), key, Stage::Waiting { trigger: Some(trigger) })
    }

    /// [`add`](Self::add), bounded: refused with [`QueueError::AtLimit`] (the trigger not
    /// called, nothing queued) when the queue already holds `limit` entries, the running head
    /// included. For back-pressure: a producer learns at once that it is ahead.
    pub fn try_add<F, Fut>(&self, limit: usize, trigger: F) -> Result<Entry<F, Fut, S>, QueueError>
    where
        F: FnOnce() -> Fut,
        Fut: Future,
    {
        let key = self.shared.with(|s| {
            if s.len() >= limit && !s.is_closed() {
                return Err(QueueError::AtLimit);
            }
            Ok(s.push(Kind::Trigger, ""))
        })?;
        Ok(Entry::new(self.shared.clone(), key, Stage::Waiting { trigger: Some(trigger) }))
    }

    /// A future that resolves once the queue holds no entry: at once if it is empty now,
    /// else when the last entry leaves (entries added meanwhile are waited for too).
    pub fn idle(&self) -> Idle<S> {
        let ticket = self.shared.with(State::idle_ticket);
        Idle { shared: self.shared.clone(), ticket }
    }

    /// `tevent_set_trace_queue_callback`: `hook` is called with the tag of each entry as it
    /// joins the queue, as its turn comes, and as it leaves ([`TracePoint`]). It runs after
    /// the operation that caused it has released the queue's state, so it may use the queue.
    /// One hook per queue; a new one replaces the old. A hook that holds a handle of its
    /// own queue keeps the queue open until [`clear_trace`](Self::clear_trace).
    pub fn set_trace(&self, hook: impl Fn(TracePoint, &'static str) + Send + Sync + 'static) {
        let old = self.shared.with(|s| s.replace_trace(Some(Arc::new(hook))));
        // Dropped with the state released: it may hold a handle of this queue.
        drop(old);
    }

    /// Removes the trace hook.
    pub fn clear_trace(&self) {
        let old = self.shared.with(|s| s.replace_trace(None));
        drop(old);
    }

    /// `tevent_queue_add_optimize_empty`: like [`add`](Self::add), but when the queue is empty and
    /// running the trigger is called right here, saving the trip through the executor.
    pub fn add_optimize_empty<F, Fut>(&self, trigger: F) -> Entry<F, Fut, S>
    where
        F: FnOnce() -> Fut,
        Fut: Future,
    {
        let pushed = self
            .shared
            .with(|s| s.push(Kind::Trigger, "").map(|key| (key, s.trigger_if_head(key))));
        match pushed {
            Ok((key, true)) => {
                Entry::new(self.shared.clone(), Ok(key), Stage::Running { fut: trigger() })
            }
            Ok((key, false)) => {
                Entry::new(self.shared.clone(), Ok(key), Stage::Waiting { trigger: Some(trigger) })
            }
            Err(e) => {
                Entry::new(self.shared.clone(), Err(e), Stage::Waiting { trigger: Some(trigger) })
            }
        }
    }

    /// `tevent_queue_wait_send`: waits until every entry queued before this one has finished,
    /// then holds the queue until the [`Guard`] is dropped. Used as a barrier, or as an async
    /// lock that keeps FIFO order.
    pub fn enter(&self) -> Enter<S> {
        let key = self.shared.with(|s| s.push(Kind::Barrier, ""));
        Enter::new(self.shared.clone(), key)
    }

    /// Enters at once if the queue is empty and running (`tevent_queue_wait` with
    /// `_optimize_empty`); `None` otherwise, leaving the queue untouched.
    pub fn try_enter(&self) -> Option<Guard<S>> {
        let key = self.shared.with(|s| {
            if s.is_closed() || s.len() != 0 || !s.is_running() {
                return None;
            }
            let key = s.push(Kind::Barrier, "").ok()?;
            s.trigger_if_head(key);
            Some(key)
        })?;
        Some(Guard::new(self.shared.clone(), key))
    }

    /// `tevent_queue_add` with a NULL trigger: an entry that holds its place, and the queue
    /// behind it, until dropped.
    pub fn block(&self) -> Result<Blocker<S>, QueueError> {
        let key = self.shared.with(|s| s.push(Kind::Blocker, ""))?;
        Ok(Blocker::new(self.shared.clone(), key))
    }

    /// `tevent_queue_start`: lets the head start (again, if it was untriggered).
    pub fn start(&self) {
        if let Some(waker) = self.shared.with(State::start) {
            waker.wake();
        }
    }

    /// `tevent_queue_stop`: nothing new starts; a head already running keeps working.
    pub fn stop(&self) {
        self.shared.with(State::stop);
    }

    /// `tevent_queue_length`: the number of entries, the running head included.
    pub fn len(&self) -> usize {
        self.shared.with(|s| s.len())
    }

    /// Whether the queue holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `tevent_queue_running`.
    pub fn is_running(&self) -> bool {
        self.shared.with(|s| s.is_running())
    }

    /// The queue's name.
    pub fn name(&self) -> String {
        self.shared.with(|s| s.name().to_string())
    }

    /// Closes the queue: entries not yet triggered resolve to [`QueueError::Closed`], and
    /// later additions fail the same way. A head already running finishes its work.
    /// Dropping the last handle does the same (tevent's `talloc_free` of the queue, except that
    /// tevent leaves the pending requests hanging).
    pub fn close(&self) {
        for waker in self.shared.with(State::close) {
            waker.wake();
        }
    }

    /// Whether the queue has been closed.
    pub fn is_closed(&self) -> bool {
        self.shared.with(|s| s.is_closed())
    }

    /// The tag and state of every entry, head first: for logs and debugging.
    pub fn snapshot(&self) -> Vec<(&'static str, EntryState)> {
        self.shared.with(|s| s.snapshot())
    }

    /// How many entry slots the queue has allocated: the most entries it ever held at once.
    /// It does not grow in a steady state.
    pub fn slots_allocated(&self) -> usize {
        self.shared.with(|s| s.capacity())
    }
}

/// Resolves once its queue is empty; returned by [`idle`](QueueHandle::idle).
#[must_use = "futures do nothing unless polled"]
pub struct Idle<S: Sharing> {
    shared: S,
    ticket: u64,
}

impl<S: Sharing> Future for Idle<S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let ticket = self.ticket;
        if self.shared.with(|s| s.poll_idle(ticket, cx.waker())) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl<S: Sharing> Drop for Idle<S> {
    fn drop(&mut self) {
        let ticket = self.ticket;
        self.shared.with(|s| s.forget_idle(ticket));
    }
}

impl<S: Sharing> fmt::Debug for Idle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idle").finish_non_exhaustive()
    }
}

impl<S: Sharing> Clone for QueueHandle<S> {
    fn clone(&self) -> Self {
        self.shared.with(|s| s.handles += 1);
        QueueHandle { shared: self.shared.clone() }
    }
}

impl<S: Sharing> Drop for QueueHandle<S> {
    fn drop(&mut self) {
        let last = self.shared.with(|s| {
            s.handles -= 1;
            s.handles == 0
        });
        if last {
            self.close();
        }
    }
}

impl<S: Sharing> fmt::Debug for QueueHandle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.with(|s| {
            f.debug_struct("QueueHandle")
                .field("name", &s.name())
                .field("len", &s.len())
                .field("running", &s.is_running())
                .field("closed", &s.is_closed())
                .finish()
        })
    }
}
