//! A small single-threaded executor on any [`Reactor`]: `block_on`, `spawn_local`, sockets and
//! timers as futures.
//!
//! Tasks are `async-task` tasks (the smol-rs crate that `async-executor` is built on: it saves
//! us the reference-counted task cell, its waker vtable and the join handle, about 1,000 lines
//! of unsafe code, and adds nothing else to the tree). The run queue is shared with wakers,
//! which may be called from any thread; a wake from another thread also wakes the reactor
//! through its [`Remote`](crate::Remote).

mod io;
mod net;
mod park;
mod process;
// The one module that calls libc directly (signalfd and the signal mask, which rustix does
// not wrap); each unsafe block says why it is sound.
#[allow(unsafe_code)]
mod signals;
mod spawner;
mod timer;

pub use io::Async;
pub use park::block_on;
pub use process::Child;
pub use signals::{block_signals, signal, Signals};
pub use spawner::{Engine, Gone, Spawned, Spawner};
pub use timer::{yield_now, Sleep};

use std::cell::{RefCell, RefMut};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use async_task::{Runnable, Task};
use slab::Slab;

use crate::{Event, Loop, Reactor, Remote};

/// How many tasks run between two looks at the reactor, so that a task that keeps waking
/// itself cannot starve I/O and timers.
const BUDGET: usize = 256;

/// A single-threaded executor driving futures on a reactor.
///
/// ```
/// use evcore::Executor;
/// use std::time::Duration;
///
/// let ex = Executor::new()?;
/// let handle = ex.handle();
/// let task = ex.spawn_local(async move {
///     handle.sleep(Duration::from_millis(2)).await;
///     21
/// });
/// assert_eq!(ex.block_on(async { task.await * 2 }), 42);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Executor<R: Reactor = Loop> {
    handle: Handle<R>,
}

/// A cloneable, thread-local handle to an [`Executor`]: spawns tasks, makes timers and sockets.
pub struct Handle<R: Reactor = Loop> {
    shared: Rc<Shared<R>>,
}

pub(crate) struct Shared<R: Reactor> {
    reactor: RefCell<R>,
    io: RefCell<Slab<io::IoState>>,
    timers: RefCell<Slab<timer::TimerState>>,
    run: Arc<RunQueue>,
    spawns: Arc<spawner::SpawnQueue<R>>,
    /// A waker for every task not yet finished. A task can be parked with its waker held
    /// only by another task's state (a list of connections to wake, say) while holding that
    /// state itself: a cycle no drop would ever break. The executor's drop wakes them all, so
    /// that each is dropped (as async-executor does). The price, as there: a detached task
    /// whose every other waker is gone without waking it stays until the executor goes,
    /// where async-task alone would have dropped it at once.
    active: RefCell<Slab<Waker>>,
}

pub(crate) struct RunQueue {
    queue: Mutex<VecDeque<Runnable>>,
    /// The executor is gone. A task woken after that (its last waker dropped with the socket
    /// or timer that held it, which async-task answers by scheduling it once more so that its
    /// future is dropped) is dropped at once on the executor's thread instead of queued where
    /// nothing would ever take it, which would keep its sockets open for good.
    closed: AtomicBool,
    remote: Remote,
    thread: ThreadId,
}

impl RunQueue {
    fn push(&self, runnable: Runnable) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        // Read under the queue's lock, which the executor's drop holds to set it: a push
        // either lands before the drop takes the queue, or sees it closed.
        if self.closed.load(Ordering::Acquire) {
            drop(queue);
            if thread::current().id() == self.thread {
                drop(runnable);
            } else {
                // A local task's future may only be dropped on its own thread (async-task
                // panics otherwise); from elsewhere, after the executor is gone, it is leaked.
                std::mem::forget(runnable);
            }
            return;
        }
        queue.push_back(runnable);
        drop(queue);
        self.nudge();
    }

    /// Wakes the reactor when called from another thread; on the executor's own thread the
    /// run queue is checked before every blocking wait, so no wake-up is needed.
    fn nudge(&self) {
        if thread::current().id() != self.thread {
            // The loop being gone means the executor is gone: nothing is left to run the task.
            let _ = self.remote.wake();
        }
    }

    fn take(&self, into: &mut VecDeque<Runnable>) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let n = queue.len().min(BUDGET);
        into.extend(queue.drain(..n));
    }

    fn is_empty(&self) -> bool {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }
}

struct MainWaker {
    woken: AtomicBool,
    run: Arc<RunQueue>,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.run.nudge();
    }
}

impl Executor<Loop> {
    /// An executor on a new [`Loop`].
    pub fn new() -> std::io::Result<Executor<Loop>> {
        Ok(Executor::with_reactor(Loop::new()?))
    }
}

impl<R: Reactor + 'static> Executor<R> {
    /// An executor on the given reactor.
    pub fn with_reactor(reactor: R) -> Executor<R> {
        let run = Arc::new(RunQueue {
            queue: Mutex::new(VecDeque::new()),
            closed: AtomicBool::new(false),
            remote: reactor.remote(),
            thread: thread::current().id(),
        });
        let shared = Shared {
            reactor: RefCell::new(reactor),
            io: RefCell::new(Slab::new()),
            timers: RefCell::new(Slab::new()),
            run,
            spawns: Arc::new(spawner::SpawnQueue::new()),
            active: RefCell::new(Slab::new()),
        };
        Executor { handle: Handle { shared: Rc::new(shared) } }
    }

    /// A handle for futures to reach this executor.
    pub fn handle(&self) -> Handle<R> {
        self.handle.clone()
    }

    /// Spawns a task; see [`Handle::spawn_local`].
    pub fn spawn_local<T: 'static>(&self, future: impl Future<Output = T> + 'static) -> Task<T> {
        self.handle.spawn_local(future)
    }

    /// Runs `future` to completion, running spawned tasks, I/O and timers meanwhile.
    ///
    /// # Panics
    ///
    /// If waiting on the reactor fails (epoll itself failing), which leaves nothing to run on.
    pub fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        let shared = &self.handle.shared;
        let main = Arc::new(MainWaker { woken: AtomicBool::new(true), run: shared.run.clone() });
        let waker = Waker::from(main.clone());
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        let mut batch = VecDeque::new();
        let mut events = Vec::new();
        loop {
            if main.woken.swap(false, Ordering::AcqRel) {
                if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                    return out;
                }
            }
            for job in shared.spawns.take() {
                job(&self.handle);
            }
            shared.run.take(&mut batch);
            for runnable in batch.drain(..) {
                runnable.run();
            }
            let busy = main.woken.load(Ordering::Acquire)
                || !shared.run.is_empty()
                || !shared.spawns.is_empty();
            let timeout = if busy { Some(Duration::ZERO) } else { None };
            shared
                .reactor
                .borrow_mut()
                .turn(timeout, &mut events)
                .expect("evcore executor: waiting on the reactor failed");
            for event in events.drain(..) {
                shared.deliver(event);
            }
        }
    }
}

impl<R: Reactor> Drop for Executor<R> {
    fn drop(&mut self) {
        let shared = &self.handle.shared;
        shared.spawns.close();
        // Tasks still queued, or parked in a waker held by a socket or timer, are dropped here
        // on the executor's thread. Each table is taken out before it is dropped, because a
        // task's future may deregister from the same table as it is dropped.
        let queued: VecDeque<Runnable> = {
            let mut queue = shared.run.queue.lock().unwrap_or_else(|e| e.into_inner());
            shared.run.closed.store(true, Ordering::Release);
            std::mem::take(&mut *queue)
        };
        drop(queued);
        // Every task still alive, wherever its waker is held: woken now, it is scheduled on a
        // closed queue, which drops it here, its future with it.
        let active = std::mem::take(&mut *shared.active.borrow_mut());
        for (_, waker) in active {
            waker.wake();
        }
        let io = std::mem::take(&mut *shared.io.borrow_mut());
        drop(io);
        let timers = std::mem::take(&mut *shared.timers.borrow_mut());
        drop(timers);
    }
}

impl<R: Reactor> Clone for Handle<R> {
    fn clone(&self) -> Self {
        Handle { shared: self.shared.clone() }
    }
}

impl Handle<Loop> {
    /// Sets how long this executor's [`Loop`] polls before a wait blocks; see
    /// [`Loop::set_spin`]. For request-reply work (a Gearman worker waiting for its next job,
    /// a client waiting for a result) a few tens of microseconds save a wake-up per reply.
    ///
    /// ```
    /// let ex = evcore::Executor::new()?;
    /// ex.handle().set_spin(std::time::Duration::from_micros(50));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_spin(&self, spin: Duration) {
        self.shared.reactor().set_spin(spin);
    }
}

impl<R: Reactor + 'static> Handle<R> {
    /// Spawns a task onto the executor. It runs while the executor is in
    /// [`block_on`](Executor::block_on); drop the returned [`Task`] to cancel it, or
    /// [`detach`](Task::detach) it to let it run on its own.
    pub fn spawn_local<T: 'static>(&self, future: impl Future<Output = T> + 'static) -> Task<T> {
        let run = self.shared.run.clone();
        let mut active = self.shared.active.borrow_mut();
        let entry = active.vacant_entry();
        let key = entry.key();
        let leave = Leave { shared: Rc::downgrade(&self.shared), key };
        let future = async move {
            let _leave = leave;
            future.await
        };
        let (runnable, task) = async_task::spawn_local(future, move |r| run.push(r));
        entry.insert(runnable.waker());
        drop(active);
        runnable.schedule();
        task
    }

    /// A future that completes once `duration` has passed on the reactor's clock.
    pub fn sleep(&self, duration: Duration) -> Sleep<R> {
        let deadline = self.now() + duration;
        Sleep::new(self.clone(), deadline)
    }

    /// A future that completes at `deadline` on the reactor's clock.
    pub fn sleep_until(&self, deadline: Instant) -> Sleep<R> {
        Sleep::new(self.clone(), deadline)
    }

    /// The reactor's current time.
    pub fn now(&self) -> Instant {
        self.shared.reactor.borrow().now()
    }

    /// A `Send + Sync` [`Spawner`] for other threads to start tasks on this executor.
    pub fn spawner(&self) -> Spawner<R> {
        Spawner::new(self.shared.spawns.clone(), self.shared.run.clone())
    }

    /// A [`Remote`] for other threads to reach this executor's reactor.
    pub fn remote(&self) -> Remote {
        self.shared.reactor.borrow().remote()
    }

    /// Direct access to the reactor, for registrations this executor does not manage.
    ///
    /// Events for such registrations are not delivered anywhere by the executor: use it for
    /// timers and settings, or drive the reactor yourself instead.
    pub fn with_reactor<T>(&self, f: impl FnOnce(&mut R) -> T) -> T {
        f(&mut self.shared.reactor.borrow_mut())
    }
}

/// Takes a task out of the executor's table of live tasks when the task's future is dropped,
/// finished or not.
struct Leave<R: Reactor> {
    shared: std::rc::Weak<Shared<R>>,
    key: usize,
}

impl<R: Reactor> Drop for Leave<R> {
    fn drop(&mut self) {
        // After the executor's drop has emptied the table, `try_remove` finds nothing (or,
        // the key taken again, a later task's entry, which that drop has already woken).
        if let Some(shared) = self.shared.upgrade() {
            if let Ok(mut active) = shared.active.try_borrow_mut() {
                active.try_remove(self.key);
            }
        }
    }
}

impl<R: Reactor> Shared<R> {
    fn reactor(&self) -> RefMut<'_, R> {
        self.reactor.borrow_mut()
    }

    fn deliver(&self, event: Event) {
        match event {
            Event::Io(token, ready) => io::deliver(self, token.0, ready),
            Event::Timer(token) => timer::deliver(self, token.0),
            Event::Immediate(_) | Event::Notified => {}
        }
    }
}

impl<R: Reactor> fmt::Debug for Executor<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor").finish_non_exhaustive()
    }
}

impl<R: Reactor> fmt::Debug for Handle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("sources", &self.shared.io.borrow().len())
            .field("timers", &self.shared.timers.borrow().len())
            .finish_non_exhaustive()
    }
}
