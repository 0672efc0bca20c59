//! The async API: a future per transfer and a stream of completions, usable from any thread
//! and any runtime.
//!
//! A [`Client`] is a handle to one [`Multi`] in perform mode, owned by a driver task on an
//! evcore executor: the one behind a [`Handle`] (this thread's) or an
//! [`Engine`](evcore::Engine) (a thread of its own, for callers on tokio or anything else).
//! The engine's epoll descriptor is registered with that executor's reactor, so the whole
//! engine costs the host loop one registration and one timer, however many sockets it has.
//!
//! The handles share only small queues behind one mutex (transfers to add, transfers to
//! cancel, finished submissions) and a slot per fetch; the engine itself is the driver's
//! alone, so no handle ever waits for a `perform` to finish. The design and its reasons are
//! the same as jobclient's (see its crate docs, "Send handles").

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use evcore::{Async, Handle, Loop, Reactor, Sleep, Spawner};
use futures_core::Stream;

use crate::{Done, Easy, Multi, Options, Response, XferError, XferId};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code that can panic runs under these locks but on a bug; the queues stay usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a fetch's result lands.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    result: Option<Result<Response, XferError>>,
    waker: Option<Waker>,
    id: Option<XferId>,
    /// The fetch was dropped first: its transfer no longer counts as running.
    cancelled: bool,
}

/// A fetch's claim on its slot, carried in the transfer's private value. However the
/// transfer goes (finished, or dropped with the engine) the slot hears of it, so no fetch
/// waits for a transfer that is gone.
struct Deliver(Arc<Slot>);

impl Drop for Deliver {
    fn drop(&mut self) {
        let waker = {
            let mut st = lock(&self.0.state);
            if st.result.is_none() {
                st.result = Some(Err(XferError::Cancelled));
            }
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

enum Private<T> {
    Fetch(Deliver),
    Submit(T),
}

/// What the handles and the driver share.
struct Queues<T> {
    incoming: Vec<Easy<Private<T>>>,
    cancels: Vec<Arc<Slot>>,
    done: VecDeque<Done<T>>,
    done_waker: Option<Waker>,
    driver: Option<Waker>,
    /// Transfers fetched or submitted and neither finished nor cancelled.
    live: usize,
    /// Submitted transfers whose completion the stream has not yet been given.
    submitted: usize,
    /// The last client handle is gone: the driver ends, dropping the engine.
    closed: bool,
}

impl<T> Queues<T> {
    fn kick(&mut self) -> Option<Waker> {
        self.driver.take()
    }
}

type Shared<T> = Arc<Mutex<Queues<T>>>;

/// Closes the queues when the last [`Client`] clone goes, and keeps the engine (an
/// [`Engine`](evcore::Engine) thread, say) running until then.
struct Owner<T, R: Reactor> {
    queues: Shared<T>,
    _spawner: Option<Spawner<R>>,
}

impl<T, R: Reactor> Drop for Owner<T, R> {
    fn drop(&mut self) {
        let w = {
            let mut q = lock(&self.queues);
            q.closed = true;
            q.kick()
        };
        if let Some(w) = w {
            w.wake();
        }
    }
}

/// Transfers as futures. `T` is the private value of transfers [`submit`](Client::submit)ted
/// for the [`completions`](Client::completions) stream.
///
/// `Clone + Send + Sync` (for a `T` that is `Send`), and its futures are `Send`: share one
/// client between the tasks of any runtime. The engine runs on the executor given to
/// [`new`](Client::new): `&handle` for evcore's executor on this thread, `&engine` for an
/// [`Engine`](evcore::Engine) thread. It stops, and every fetch still waiting resolves
/// [`XferError::Cancelled`], when the last clone is dropped. A client keeps its engine
/// running: a clone held by a task on that same engine keeps it running as long as the task.
///
/// ```
/// use evcore::Executor;
/// use multixfer::{client::Client, Easy, Options};
/// # use std::io::{Read, Write};
/// # // A server that answers every request on every connection with "hi".
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let base = format!("http://{}", listener.local_addr()?);
/// # std::thread::spawn(move || {
/// #     for conn in listener.incoming() {
/// #         let mut conn = conn.unwrap();
/// #         std::thread::spawn(move || {
/// #             let mut buf = [0u8; 4096];
/// #             while conn.read(&mut buf).is_ok_and(|n| n > 0) {
/// #                 let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
/// #             }
/// #         });
/// #     }
/// # });
///
/// let ex = Executor::new()?;
/// let client: Client = Client::new(&ex.handle(), Options::default())?;
/// let response = ex.block_on(client.fetch(Easy::get(format!("{base}/ping"))))?;
/// assert_eq!((response.status(), &response.body[..]), (200, &b"hi"[..]));
///
/// // The same from any other thread or runtime, through an engine thread.
/// let engine = evcore::Engine::start()?;
/// let shared: Client = Client::new(&engine, Options::default())?;
/// let fetch = shared.fetch(Easy::get(format!("{base}/ping")));
/// let other = std::thread::spawn(move || Executor::new().unwrap().block_on(fetch));
/// let response = other.join().unwrap()?;
/// assert_eq!(response.status(), 200);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Client<T: 'static = (), R: Reactor + 'static = Loop> {
    queues: Shared<T>,
    _owner: Arc<Owner<T, R>>,
}

impl<T: 'static, R: Reactor + 'static> Clone for Client<T, R> {
    fn clone(&self) -> Self {
        Client { queues: self.queues.clone(), _owner: self._owner.clone() }
    }
}

impl<T: 'static, R: Reactor + 'static> fmt::Debug for Client<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("running", &self.running()).finish_non_exhaustive()
    }
}

impl<T: Send + 'static, R: Reactor + 'static> Client<T, R> {
    /// A client whose engine has `opts`, driven by a task on the executor `spawner` leads to
    /// (`&handle`, `&engine`, or a [`Spawner`]).
    pub fn new(spawner: impl Into<Spawner<R>>, opts: Options) -> io::Result<Client<T, R>> {
        let (multi, fd, queues) = engine(opts)?;
        let spawner = spawner.into();
        let closer = Closer(queues.clone());
        // The Spawned result is not needed: however the driver ends (or never starts, its
        // executor gone), its `Closer` closes the queues and every waiting fetch resolves.
        drop(spawner.spawn(move |handle: &Handle<R>| {
            let task = Async::new(fd, handle).map(|io| DriverTask {
                queues: closer.0.clone(),
                multi,
                wait: EvcoreWait {
                    io,
                    sleep: handle.sleep(std::time::Duration::ZERO),
                    handle: handle.clone(),
                },
                _closer: closer,
            });
            async move {
                if let Ok(task) = task {
                    task.await;
                }
            }
        }));
        let owner = Owner { queues: queues.clone(), _spawner: Some(spawner) };
        Ok(Client { _owner: Arc::new(owner), queues })
    }
}

#[cfg(feature = "tokio")]
impl<T: Send + 'static> Client<T, Loop> {
    /// A client whose engine is driven by a task on a tokio runtime (feature `tokio`): no
    /// thread of its own; the driver is spawned on `runtime` and moves between its workers
    /// like any other task, with the engine's descriptor on tokio's I/O driver.
    ///
    /// # Panics
    ///
    /// If `runtime` was built without its I/O or time driver (`enable_io`, `enable_time`, or
    /// `enable_all`): tokio panics when the descriptor or the timer is registered.
    pub fn on_tokio(runtime: &tokio::runtime::Handle, opts: Options) -> io::Result<Client<T>> {
        let (multi, fd, queues) = engine(opts)?;
        let wait = {
            let _inside = runtime.enter();
            TokioWait {
                fd: crate::tokio_fd::watch(fd)?,
                sleep: Box::pin(tokio::time::sleep(std::time::Duration::ZERO)),
            }
        };
        let closer = Closer(queues.clone());
        runtime.spawn(DriverTask { queues: closer.0.clone(), multi, wait, _closer: closer });
        Ok(Client { _owner: Arc::new(Owner { queues: queues.clone(), _spawner: None }), queues })
    }
}

/// A new engine, its descriptor for the driver's reactor, and the queues the handles share.
#[allow(clippy::type_complexity)]
fn engine<T>(opts: Options) -> io::Result<(Multi<Private<T>>, OwnedFd, Shared<T>)> {
    let mut multi: Multi<Private<T>> = Multi::with_options(opts)?;
    let fd: OwnedFd =
        multi.poll_fd().map_err(|e| io::Error::other(e.to_string()))?.try_clone_to_owned()?;
    let queues = Arc::new(Mutex::new(Queues {
        incoming: Vec::new(),
        cancels: Vec::new(),
        done: VecDeque::new(),
        done_waker: None,
        driver: None,
        live: 0,
        submitted: 0,
        closed: false,
    }));
    Ok((multi, fd, queues))
}

/// How a driver waits: for the engine's descriptor to be readable, or for its next timeout.
trait Wait {
    /// Ready while the engine's descriptor is readable (level, as the engine needs).
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<()>;
    /// Ready once `after` has passed since this call armed it.
    fn poll_timer(&mut self, cx: &mut Context<'_>, after: std::time::Duration) -> Poll<()>;
}

/// Waiting on an evcore executor's reactor.
struct EvcoreWait<R: Reactor + 'static> {
    io: Async<OwnedFd, R>,
    sleep: Sleep<R>,
    handle: Handle<R>,
}

impl<R: Reactor + 'static> Wait for EvcoreWait<R> {
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.io.poll_readable(cx).map(drop)
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>, after: std::time::Duration) -> Poll<()> {
        // A timeout too far to put on the clock never fires.
        let Some(deadline) = self.handle.now().checked_add(after) else { return Poll::Pending };
        self.sleep.reset(deadline);
        Pin::new(&mut self.sleep).poll(cx)
    }
}

/// Waiting on tokio's I/O driver and timer. tokio reports readiness by edges and caches it,
/// so a report is checked with a zero-timeout `poll(2)`: a stale one is cleared (and tokio
/// asked again), a true one is kept, which gives the level the engine relies on.
#[cfg(feature = "tokio")]
struct TokioWait {
    fd: tokio::io::unix::AsyncFd<OwnedFd>,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

#[cfg(feature = "tokio")]
impl Wait for TokioWait {
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let mut guard = match self.fd.poll_read_ready(cx) {
                Poll::Ready(Ok(guard)) => guard,
                // The descriptor cannot be watched (tokio shutting down): the transfers end
                // by their own timeouts.
                Poll::Ready(Err(_)) | Poll::Pending => return Poll::Pending,
            };
            let mut fds =
                [rustix::event::PollFd::new(guard.get_inner(), rustix::event::PollFlags::IN)];
            let now = rustix::event::poll(&mut fds, Some(&rustix::event::Timespec::default()));
            // Readable, or `poll(2)` itself failed: say ready (one `perform` too many costs
            // nothing; a readiness thrown away might never be reported again).
            if !matches!(now, Ok(0)) {
                return Poll::Ready(());
            }
            guard.clear_ready();
        }
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>, after: std::time::Duration) -> Poll<()> {
        // A timeout too far to put on the clock never fires.
        let Some(deadline) = tokio::time::Instant::now().checked_add(after) else {
            return Poll::Pending;
        };
        self.sleep.as_mut().reset(deadline);
        self.sleep.as_mut().poll(cx)
    }
}

impl<T: 'static, R: Reactor + 'static> Client<T, R> {
    /// Runs one transfer; the future resolves to its response. Dropping the future cancels
    /// the transfer.
    pub fn fetch<U>(&self, easy: Easy<U>) -> Fetch<T> {
        let slot = Arc::new(Slot::default());
        let easy = easy.private(Private::Fetch(Deliver(slot.clone())));
        let w = {
            let mut q = lock(&self.queues);
            if q.closed {
                // Dropping `easy` delivers `Cancelled` to the slot.
                drop(easy);
            } else {
                q.incoming.push(easy);
                q.live += 1;
            }
            q.kick()
        };
        if let Some(w) = w {
            w.wake();
        }
        Fetch { slot, queues: self.queues.clone() }
    }

    /// Starts a transfer whose outcome comes through [`completions`](Client::completions),
    /// with its private value.
    pub fn submit(&self, easy: Easy<T>) {
        let w = {
            let mut q = lock(&self.queues);
            if q.closed {
                // The engine is gone: nothing will run it (the stream has ended).
                return;
            }
            q.incoming.push(easy.map_private(Private::Submit));
            q.live += 1;
            q.submitted += 1;
            q.kick()
        };
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Finished submitted transfers, in the order they finished. The stream ends when nothing
    /// submitted is left to finish.
    pub fn completions(&self) -> Completions<'_, T> {
        Completions { queues: &self.queues }
    }

    /// Transfers fetched or submitted that have neither finished nor been cancelled.
    pub fn running(&self) -> usize {
        lock(&self.queues).live
    }
}

/// One transfer's outcome, from [`Client::fetch`].
#[must_use = "a fetch does nothing unless awaited, and is cancelled when dropped"]
pub struct Fetch<T: 'static> {
    slot: Arc<Slot>,
    queues: Shared<T>,
}

impl<T> fmt::Debug for Fetch<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetch").field("id", &lock(&self.slot.state).id).finish_non_exhaustive()
    }
}

impl<T> Future for Fetch<T> {
    type Output = Result<Response, XferError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = lock(&self.slot.state);
        if let Some(result) = st.result.take() {
            // Taken: the fetch is over, and a later drop has nothing to cancel.
            st.cancelled = true;
            return Poll::Ready(result);
        }
        if st.cancelled {
            return Poll::Ready(Err(XferError::Cancelled));
        }
        if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            st.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl<T> Drop for Fetch<T> {
    fn drop(&mut self) {
        let w = {
            let mut q = lock(&self.queues);
            let mut st = lock(&self.slot.state);
            if st.result.is_some() || st.cancelled {
                return;
            }
            st.cancelled = true;
            drop(st);
            q.live = q.live.saturating_sub(1);
            // Not yet handed to the engine: taken back here. Otherwise the driver removes it.
            let slot = &self.slot;
            let before = q.incoming.len();
            q.incoming.retain(|e| match &e.private {
                Private::Fetch(d) => !Arc::ptr_eq(&d.0, slot),
                Private::Submit(_) => true,
            });
            // Closed, the engine is gone with the transfer: nothing is left to cancel.
            if q.incoming.len() == before && !q.closed {
                q.cancels.push(self.slot.clone());
            }
            q.kick()
        };
        if let Some(w) = w {
            w.wake();
        }
    }
}

/// The stream of [`Client::completions`]. One consumer at a time: a second stream polled
/// meanwhile takes the wake-up over.
pub struct Completions<'a, T: 'static> {
    queues: &'a Shared<T>,
}

impl<T> fmt::Debug for Completions<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completions").finish_non_exhaustive()
    }
}

impl<T> Stream for Completions<'_, T> {
    type Item = Done<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Done<T>>> {
        let mut q = lock(self.queues);
        if let Some(done) = q.done.pop_front() {
            q.submitted -= 1;
            return Poll::Ready(Some(done));
        }
        if q.submitted == 0 || q.closed {
            return Poll::Ready(None);
        }
        q.done_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Runs the engine: adds what was submitted, performs, routes completions, and sleeps on the
/// engine's epoll descriptor and its next timeout. It owns the engine; the handles reach it
/// only through the queues.
struct DriverTask<T, W> {
    queues: Shared<T>,
    multi: Multi<Private<T>>,
    wait: W,
    /// Dropped after the engine (fields drop in order): the transfers in flight resolve
    /// first, then those never handed to it.
    _closer: Closer<T>,
}

/// Closes the queues when the driver ends, however it ends: transfers never handed to the
/// engine are dropped (each waiting fetch resolves `Cancelled`), the completions stream ends,
/// and later fetches resolve at once.
struct Closer<T>(Shared<T>);

impl<T> Drop for Closer<T> {
    fn drop(&mut self) {
        let (incoming, wake) = {
            let mut q = lock(&self.0);
            q.closed = true;
            q.live = 0;
            q.cancels.clear();
            (std::mem::take(&mut q.incoming), q.done_waker.take())
        };
        // Outside the lock: each fetch's `Deliver` locks its slot and wakes it.
        drop(incoming);
        if let Some(w) = wake {
            w.wake();
        }
    }
}

// Nothing in the driver is pinned in place (its fields are polled through `&mut`), whatever
// the private type.
impl<T, W> Unpin for DriverTask<T, W> {}

impl<T, W: Wait> Future for DriverTask<T, W> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            let (incoming, cancels) = {
                let mut q = lock(&this.queues);
                if q.closed {
                    return Poll::Ready(());
                }
                // No waker while the driver works: a fetch made meanwhile is found by the
                // check before it sleeps, and needs no wake-up (which would cost the
                // executor a reschedule and another pass, or a cross-thread nudge).
                q.driver = None;
                (std::mem::take(&mut q.incoming), std::mem::take(&mut q.cancels))
            };
            for easy in incoming {
                let slot = match &easy.private {
                    Private::Fetch(d) => Some(d.0.clone()),
                    Private::Submit(_) => None,
                };
                let id = this.multi.add(easy);
                if let Some(slot) = slot {
                    lock(&slot.state).id = Some(id);
                }
            }
            for slot in cancels {
                let id = lock(&slot.state).id;
                if let Some(id) = id {
                    let _ = this.multi.remove(id);
                }
            }
            // Only epoll itself failing can make perform fail; the transfers then end by
            // their own timeouts, so the driver keeps going rather than stranding them.
            let _ = this.multi.perform();
            let mut finished = Vec::new();
            while let Some((done, _)) = this.multi.info_read() {
                finished.push(done);
            }
            if !finished.is_empty() {
                let mut wake = Vec::new();
                {
                    let mut q = lock(&this.queues);
                    for done in finished {
                        match done.private {
                            Private::Fetch(deliver) => {
                                let mut st = lock(&deliver.0.state);
                                if !st.cancelled {
                                    q.live = q.live.saturating_sub(1);
                                    st.result = Some(done.result);
                                    wake.extend(st.waker.take());
                                }
                                // `deliver` drops after this, finding the result set.
                            }
                            Private::Submit(private) => {
                                q.live = q.live.saturating_sub(1);
                                q.done.push_back(Done {
                                    id: done.id,
                                    result: done.result,
                                    private,
                                });
                                wake.extend(q.done_waker.take());
                            }
                        }
                    }
                }
                for w in wake {
                    w.wake();
                }
            }
            let timeout = this.multi.timeout();
            if this.wait.poll_readable(cx).is_ready() {
                continue;
            }
            match timeout {
                Some(t) if t.is_zero() => continue,
                Some(t) if this.wait.poll_timer(cx, t).is_ready() => continue,
                _ => {}
            }
            // The waker goes in under the same lock as the last look at the queues: what a
            // handle queued before it is seen here, what it queues after finds the waker.
            let mut q = lock(&this.queues);
            if !q.incoming.is_empty() || !q.cancels.is_empty() || q.closed {
                continue;
            }
            q.driver = Some(cx.waker().clone());
            return Poll::Pending;
        }
    }
}
