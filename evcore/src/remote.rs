//! `Remote`: scheduling work onto a loop from any thread (tevent's thread proxy, done right).

use std::fmt;
use std::mem;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::RemoteError;

type Job = Box<dyn FnOnce() + Send>;

/// How a remote wakes its loop; each reactor supplies its own.
pub(crate) trait Wake: Send + Sync {
    fn wake(&self);
}

/// What the senders and the loop share.
pub(crate) struct Shared {
    state: Mutex<State>,
    waker: Box<dyn Wake>,
}

#[derive(Default)]
struct State {
    jobs: Vec<Job>,
    /// The loop is in, or about to enter, a blocking wait: a sender must wake it. While the
    /// loop is awake it collects on its own at the end of the turn, so senders only append.
    sleeping: bool,
    /// A wake-up has been sent since the loop last collected: later senders need not send
    /// another. With `sleeping`, this makes it at most one wake-up per batch.
    signalled: bool,
    wake_requested: bool,
    stop_requested: bool,
    closed: bool,
}

/// What the loop collects from its remotes in one turn.
pub(crate) struct Collected {
    pub(crate) jobs: Vec<Job>,
    pub(crate) woken: bool,
    pub(crate) stop: bool,
}

impl Shared {
    pub(crate) fn new(waker: Box<dyn Wake>) -> Arc<Shared> {
        Arc::new(Shared { state: Mutex::new(State::default()), waker })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A job never runs under this lock, so a poisoned lock only means a sender panicked
        // between two field writes of plain data; the state is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes everything scheduled so far. `spare` is the emptied vector of the previous batch,
    /// handed back so that a steady stream of batches allocates nothing.
    pub(crate) fn collect(&self, spare: Vec<Job>) -> Collected {
        let mut state = self.lock();
        state.sleeping = false;
        state.signalled = false;
        Collected {
            jobs: mem::replace(&mut state.jobs, spare),
            woken: mem::take(&mut state.wake_requested),
            stop: mem::take(&mut state.stop_requested),
        }
    }

    /// Called by the loop just before a wait that may block: returns `false` when work is
    /// already queued (the wait must not block), otherwise marks the loop sleeping so that the
    /// next sender wakes it. Both happen under the lock, so no sender can slip between.
    pub(crate) fn prepare_sleep(&self) -> bool {
        let mut state = self.lock();
        if !state.jobs.is_empty() || state.wake_requested || state.stop_requested {
            return false;
        }
        state.sleeping = true;
        true
    }

    /// Marks the loop gone and drops every job not yet run (outside the lock, since a job's
    /// captures may run arbitrary code when dropped).
    pub(crate) fn close(&self) {
        let jobs = {
            let mut state = self.lock();
            state.closed = true;
            mem::take(&mut state.jobs)
        };
        drop(jobs);
    }

    fn submit(&self, update: impl FnOnce(&mut State)) -> Result<(), RemoteError> {
        let wake = {
            let mut state = self.lock();
            if state.closed {
                return Err(RemoteError::LoopGone);
            }
            update(&mut state);
            let wake = state.sleeping && !state.signalled;
            state.signalled |= wake;
            wake
        };
        if wake {
            self.waker.wake();
        }
        Ok(())
    }
}

/// A handle for other threads to run closures on a loop's thread, wake it, or stop it.
///
/// This is tevent's thread proxy (`tevent_thread_proxy_schedule`), done as its users need:
///
/// - **Strict FIFO.** Closures scheduled from one thread run in the order they were scheduled,
///   and the whole stream is in the order the scheduling calls took the queue's lock. tevent's
///   proxy runs each batch in reverse.
/// - **At most one wake-up per batch.** A sender writes to the loop's wake-up descriptor only
///   when the loop is blocked (or about to block) and nobody has woken it yet; while the loop is
///   awake, senders just append and the loop collects at the end of its turn. tevent writes one
///   pipe byte per message.
/// - **A clear error once the loop is gone**, instead of a write to a closed pipe; closures still
///   queued when the loop is dropped are dropped without running.
///
/// Closures run inside [`Reactor::turn`](crate::Reactor::turn), on the loop's thread, and the turn
/// reports them as one [`Event::Notified`](crate::Event::Notified).
///
/// ```
/// use evcore::{Dispatch, Loop, Reactor};
/// use std::sync::mpsc;
///
/// let mut lp = Loop::new()?;
/// let remote = lp.remote();
/// let (tx, rx) = mpsc::channel();
/// let worker = std::thread::spawn(move || {
///     for i in 0..3 {
///         let tx = tx.clone();
///         remote.schedule(move || tx.send(i).unwrap()).unwrap();
///     }
///     remote.stop().unwrap();
/// });
/// lp.dispatch(Dispatch::Blocking, |_, _| {})?;
/// worker.join().unwrap();
/// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [0, 1, 2]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Remote {
    shared: Arc<Shared>,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote").finish_non_exhaustive()
    }
}

impl Remote {
    pub(crate) fn new(shared: Arc<Shared>) -> Remote {
        Remote { shared }
    }

    /// Runs `job` on the loop's thread during its next turn.
    pub fn schedule(&self, job: impl FnOnce() + Send + 'static) -> Result<(), RemoteError> {
        let job: Job = Box::new(job);
        self.shared.submit(move |state| state.jobs.push(job))
    }

    /// Runs every closure of `jobs` on the loop's thread, in order, with at most one wake-up.
    pub fn schedule_all<I, F>(&self, jobs: I) -> Result<(), RemoteError>
    where
        I: IntoIterator<Item = F>,
        F: FnOnce() + Send + 'static,
    {
        let jobs: Vec<Job> = jobs.into_iter().map(|f| Box::new(f) as Job).collect();
        self.shared.submit(move |state| state.jobs.extend(jobs))
    }

    /// Wakes the loop: its current or next turn returns with [`Event::Notified`](crate::Event::Notified).
    pub fn wake(&self) -> Result<(), RemoteError> {
        self.shared.submit(|state| state.wake_requested = true)
    }

    /// Asks the loop to stop: a [`Dispatch::Blocking`](crate::Dispatch::Blocking) returns once it
    /// has delivered the events of the turn that received the request (this one's closures
    /// included). A request that arrives while nothing dispatches stops the next dispatch.
    pub fn stop(&self) -> Result<(), RemoteError> {
        self.shared.submit(|state| state.stop_requested = true)
    }

    /// Whether both handles lead to the same loop.
    pub fn same_loop(&self, other: &Remote) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}
