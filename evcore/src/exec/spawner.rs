//! `Spawner`: reaching an executor from any thread, and `Engine`: an executor on a thread of
//! its own.
//!
//! The protocol engines of this workspace keep their sockets and timers on one evcore
//! executor (they are `!Send`, as a reactor's registrations are). What a user on tokio, smol or
//! plain threads needs is a `Send + Sync` way in: a [`Spawner`] runs a closure on the
//! executor's thread, where it may make sockets and spawn local tasks, and hands back a `Send`
//! future of the result. Handles built on it ([`jobclient::Client`], for one) keep their
//! shared state behind a mutex and wake the executor's tasks through ordinary wakers, which
//! evcore's are: a wake from another thread queues the task and wakes the reactor.
//!
//! [`jobclient::Client`]: https://docs.rs/jobclient

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::{self, JoinHandle, ThreadId};

use futures_channel::oneshot;

use super::{Executor, Handle, RunQueue};
use crate::{Loop, Reactor};

type LocalJob<R> = Box<dyn FnOnce(&Handle<R>) + Send>;

/// Closures waiting to run on an executor's thread with its handle.
pub(crate) struct SpawnQueue<R: Reactor> {
    jobs: Mutex<SpawnState<R>>,
}

struct SpawnState<R: Reactor> {
    jobs: Vec<LocalJob<R>>,
    closed: bool,
}

impl<R: Reactor> SpawnQueue<R> {
    pub(crate) fn new() -> SpawnQueue<R> {
        SpawnQueue { jobs: Mutex::new(SpawnState { jobs: Vec::new(), closed: false }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SpawnState<R>> {
        // No closure runs under this lock; a poisoned lock holds a consistent vector.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn take(&self) -> Vec<LocalJob<R>> {
        std::mem::take(&mut self.lock().jobs)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().jobs.is_empty()
    }

    /// The executor is gone: drop what was queued (its result senders too, so every
    /// [`Spawned`] resolves) and refuse more.
    pub(crate) fn close(&self) {
        let jobs = {
            let mut state = self.lock();
            state.closed = true;
            std::mem::take(&mut state.jobs)
        };
        drop(jobs);
    }
}

/// A `Send + Sync` handle to an [`Executor`]: runs closures on its thread, from any thread.
///
/// Cheap to clone. Made by [`Handle::spawner`] (the executor lives as long as its owner keeps
/// it) or by [`Engine::start`] (the executor has a thread of its own, which stops when the
/// engine and its last spawner are dropped).
///
/// ```
/// use evcore::Engine;
/// use std::time::Duration;
///
/// let engine = Engine::start()?;
/// let spawner = engine.spawner();
/// // The closure runs on the engine's thread, with its handle; the future it returns may be
/// // `!Send` (sockets, timers) but its output travels back to any thread.
/// let answer = spawner.spawn(|h| {
///     let h = h.clone();
///     async move {
///         h.sleep(Duration::from_millis(1)).await;
///         42
///     }
/// });
/// assert_eq!(futures_executor_block_on(answer), Ok(42));
/// # fn futures_executor_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     evcore::Executor::new().unwrap().block_on(f)
/// # }
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Spawner<R: Reactor = Loop> {
    spawns: Arc<SpawnQueue<R>>,
    run: Arc<RunQueue>,
    life: Option<Arc<Life>>,
}

impl<R: Reactor> Clone for Spawner<R> {
    fn clone(&self) -> Self {
        Spawner { spawns: self.spawns.clone(), run: self.run.clone(), life: self.life.clone() }
    }
}

impl<R: Reactor + 'static> Spawner<R> {
    pub(crate) fn new(spawns: Arc<SpawnQueue<R>>, run: Arc<RunQueue>) -> Spawner<R> {
        Spawner { spawns, run, life: None }
    }

    /// Runs `make` on the executor's thread with its [`Handle`], spawns the future it returns
    /// there, and returns a `Send` future of that future's output.
    ///
    /// The returned [`Spawned`] resolves to `Err(Gone)` if the executor is dropped before
    /// the task finishes. Dropping the `Spawned` does not cancel the task.
    pub fn spawn<F, Fut>(&self, make: F) -> Spawned<Fut::Output>
    where
        F: FnOnce(&Handle<R>) -> Fut + Send + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: LocalJob<R> = Box::new(move |h: &Handle<R>| {
            let fut = make(h);
            h.spawn_local(async move {
                let _ = tx.send(fut.await);
            })
            .detach();
        });
        {
            let mut state = self.spawns.lock();
            if !state.closed {
                state.jobs.push(job);
            }
            // A closed queue drops `job`, and with it the sender: the receiver sees `Gone`.
        }
        self.run.nudge();
        Spawned { rx }
    }

    /// Whether this spawner runs on the current thread's executor.
    pub fn is_local(&self) -> bool {
        self.run.thread == thread::current().id()
    }
}

impl<R: Reactor> fmt::Debug for Spawner<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawner").field("engine", &self.life.is_some()).finish_non_exhaustive()
    }
}

/// The output of a task started by [`Spawner::spawn`]: a `Send` future.
#[must_use = "a Spawned does nothing unless awaited (the task runs regardless)"]
pub struct Spawned<T> {
    rx: oneshot::Receiver<T>,
}

/// The executor was dropped before the task finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the executor is gone")]
pub struct Gone;

impl<T> Future for Spawned<T> {
    type Output = Result<T, Gone>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|r| r.map_err(|_| Gone))
    }
}

impl<T> fmt::Debug for Spawned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawned").finish_non_exhaustive()
    }
}

/// An [`Executor`] on a thread of its own: the way into evcore from tokio, smol or plain
/// threads, as isahc's agent thread or reqwest's blocking client are.
///
/// The thread runs until the engine and every [`Spawner`] made from it are dropped; the last
/// of them stops the executor (dropping its tasks, closing their sockets) and, unless it is
/// dropped on the engine's own thread, waits for the thread to end.
pub struct Engine {
    spawner: Spawner<Loop>,
}

struct Life {
    stop: Arc<Stop>,
    thread: Mutex<Option<JoinHandle<()>>>,
    id: ThreadId,
}

#[derive(Default)]
struct Stop {
    stopped: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Future for &Stop {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut waker = self.waker.lock().unwrap_or_else(|e| e.into_inner());
        if self.stopped.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        *waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Life {
    fn drop(&mut self) {
        {
            let mut waker = self.stop.waker.lock().unwrap_or_else(|e| e.into_inner());
            self.stop.stopped.store(true, Ordering::Release);
            if let Some(w) = waker.take() {
                w.wake();
            }
        }
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            if thread::current().id() != self.id {
                let _ = t.join();
            }
        }
    }
}

impl Engine {
    /// Starts an executor on a new thread named `evcore-engine`.
    pub fn start() -> std::io::Result<Engine> {
        Engine::start_with(Loop::new)
    }

    /// Starts an executor on a new thread on the loop `make` builds there (a [`Loop`] with
    /// [`set_spin`](Loop::set_spin), say).
    pub fn start_with(
        make: impl FnOnce() -> std::io::Result<Loop> + Send + 'static,
    ) -> std::io::Result<Engine> {
        let stop = Arc::new(Stop::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let their_stop = stop.clone();
        let thread = thread::Builder::new().name("evcore-engine".into()).spawn(move || {
            let ex = match make().map(Executor::with_reactor) {
                Ok(ex) => ex,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let _ = tx.send(Ok(ex.handle().spawner()));
            ex.block_on(&*their_stop);
        })?;
        let id = thread.thread().id();
        let mut spawner = match rx.recv() {
            Ok(Ok(spawner)) => spawner,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(std::io::Error::other("the engine thread died at start")),
        };
        spawner.life = Some(Arc::new(Life { stop, thread: Mutex::new(Some(thread)), id }));
        Ok(Engine { spawner })
    }

    /// A spawner for this engine; it keeps the engine running.
    pub fn spawner(&self) -> Spawner<Loop> {
        self.spawner.clone()
    }
}

impl From<&Engine> for Spawner<Loop> {
    fn from(engine: &Engine) -> Self {
        engine.spawner()
    }
}

impl<R: Reactor + 'static> From<&Handle<R>> for Spawner<R> {
    fn from(handle: &Handle<R>) -> Self {
        handle.spawner()
    }
}

impl<R: Reactor> From<&Spawner<R>> for Spawner<R> {
    fn from(spawner: &Spawner<R>) -> Self {
        spawner.clone()
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}
