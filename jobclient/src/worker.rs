//! The worker: register functions, take jobs, report results (`gearman_worker_*`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use evcore::{Handle, Sleep};

use crate::addr::{Resolver, ServerAddr};
use crate::conn::Conn;
use crate::proto::{Packet, PacketType, MAX_FUNCTION};
use crate::Error;

/// How a job ended badly, as the worker reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkError {
    /// WORK_FAIL.
    Fail,
    /// WORK_EXCEPTION with data (clients see it only with the exceptions option; otherwise
    /// gearmand turns it into a failure).
    Exception(Bytes),
}

/// A job assigned to this worker, as its function sees it.
pub struct WorkerJob<'a> {
    conn: &'a mut Conn,
    handle: Bytes,
    function: Bytes,
    unique: Bytes,
    workload: Bytes,
}

impl WorkerJob<'_> {
    /// The server's handle for the job.
    pub fn handle(&self) -> &Bytes {
        &self.handle
    }

    /// The function name.
    pub fn function(&self) -> &Bytes {
        &self.function
    }

    /// The client's unique ID.
    pub fn unique(&self) -> &Bytes {
        &self.unique
    }

    /// The workload.
    pub fn workload(&self) -> &Bytes {
        &self.workload
    }

    /// Sends a chunk of the result to the client (WORK_DATA). The only failure is a chunk too
    /// large for a packet (4 GiB), which fails the job.
    pub fn send_data(&mut self, data: &[u8]) -> Result<(), WorkError> {
        self.conn.queue(PacketType::WorkData, &[&self.handle, data]).map_err(|_| WorkError::Fail)
    }

    /// Sends a warning (WORK_WARNING).
    pub fn send_warning(&mut self, data: &[u8]) -> Result<(), WorkError> {
        self.conn.queue(PacketType::WorkWarning, &[&self.handle, data]).map_err(|_| WorkError::Fail)
    }

    /// Reports progress (WORK_STATUS).
    pub fn send_status(&mut self, numerator: u64, denominator: u64) -> Result<(), WorkError> {
        let (n, d) = (numerator.to_string(), denominator.to_string());
        self.conn
            .queue(PacketType::WorkStatus, &[&self.handle, n.as_bytes(), d.as_bytes()])
            .map_err(|_| WorkError::Fail)
    }
}

impl fmt::Debug for WorkerJob<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerJob")
            .field("handle", &String::from_utf8_lossy(&self.handle))
            .field("function", &String::from_utf8_lossy(&self.function))
            .field("workload_len", &self.workload.len())
            .finish()
    }
}

// The functions need not be `Send`: a worker lives on one executor's thread, and one started
// from elsewhere ([`Worker::spawn`]) is built there, so it may capture that thread's handles.
type SyncFunction = Box<dyn FnMut(&mut WorkerJob<'_>) -> Result<Bytes, WorkError>>;
type JobFuture = Pin<Box<dyn Future<Output = Result<Bytes, WorkError>>>>;
type AsyncFunction = Box<dyn Fn(AsyncJob) -> JobFuture>;

enum Function {
    /// Runs to completion when assigned, on the worker's thread.
    Sync(SyncFunction),
    /// Runs as a future, alongside others up to [`Worker::max_concurrent`].
    Async(AsyncFunction),
}

struct Ability {
    function: Function,
    timeout: Option<Duration>,
}

/// Where a running async job's data, warnings and status go: appended here, moved into the
/// connection by the worker loop, which the job wakes.
#[derive(Default)]
struct JobOut {
    buf: RefCell<BytesMut>,
    waker: RefCell<Option<Waker>>,
}

/// A job assigned to an async function ([`Worker::register_async`]): owned, so it can live
/// across awaits.
pub struct AsyncJob {
    handle: Bytes,
    function: Bytes,
    unique: Bytes,
    workload: Bytes,
    out: Rc<JobOut>,
    executor: Handle,
}

impl AsyncJob {
    /// The executor the job runs on, for its timers and sockets.
    pub fn executor(&self) -> &Handle {
        &self.executor
    }

    /// The server's handle for the job.
    pub fn handle(&self) -> &Bytes {
        &self.handle
    }

    /// The function name.
    pub fn function(&self) -> &Bytes {
        &self.function
    }

    /// The client's unique ID.
    pub fn unique(&self) -> &Bytes {
        &self.unique
    }

    /// The workload.
    pub fn workload(&self) -> &Bytes {
        &self.workload
    }

    /// Sends a chunk of the result to the client (WORK_DATA).
    pub fn send_data(&self, data: &[u8]) -> Result<(), WorkError> {
        self.send(PacketType::WorkData, &[&self.handle, data])
    }

    /// Sends a warning (WORK_WARNING).
    pub fn send_warning(&self, data: &[u8]) -> Result<(), WorkError> {
        self.send(PacketType::WorkWarning, &[&self.handle, data])
    }

    /// Reports progress (WORK_STATUS).
    pub fn send_status(&self, numerator: u64, denominator: u64) -> Result<(), WorkError> {
        let (n, d) = (numerator.to_string(), denominator.to_string());
        self.send(PacketType::WorkStatus, &[&self.handle, n.as_bytes(), d.as_bytes()])
    }

    fn send(&self, kind: PacketType, args: &[&[u8]]) -> Result<(), WorkError> {
        crate::proto::encode(&mut self.out.buf.borrow_mut(), crate::proto::Magic::Req, kind, args)
            .map_err(|_| WorkError::Fail)?;
        if let Some(w) = self.out.waker.borrow_mut().take() {
            w.wake();
        }
        Ok(())
    }
}

impl fmt::Debug for AsyncJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncJob")
            .field("handle", &String::from_utf8_lossy(&self.handle))
            .field("function", &String::from_utf8_lossy(&self.function))
            .finish_non_exhaustive()
    }
}

/// A worker: functions registered by name, run one job at a time.
///
/// It asks for work with `GRAB_JOB_ALL`; when there is none it sends `PRE_SLEEP` and waits for
/// the server's `NOOP` without polling, so an idle worker costs nothing.
///
/// ```no_run
/// use evcore::Executor;
/// use jobclient::Worker;
///
/// let ex = Executor::new()?;
/// let h = ex.handle();
/// let mut worker = Worker::new();
/// worker.register("reverse", |job| Ok(job.workload().iter().rev().copied().collect::<Vec<u8>>().into()));
/// ex.block_on(worker.work("127.0.0.1:4730".parse::<jobclient::ServerAddr>()?, &h, None))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
pub struct Worker {
    abilities: HashMap<Bytes, Ability>,
    client_id: Option<Bytes>,
    tls: Option<crate::tls::Connector>,
    poll_interval: Option<Duration>,
    max_concurrent: usize,
}

/// Stops a running worker gracefully: it finishes the job in hand, tells each server it can do
/// nothing more (`RESET_ABILITIES`), waits until the server has processed that, and returns.
/// Cheap to clone.
/// `Send + Sync`: stop a worker from any thread.
#[derive(Clone, Debug, Default)]
pub struct Stopper {
    inner: Arc<StopInner>,
}

#[derive(Debug, Default)]
struct StopInner {
    stopped: AtomicBool,
    waiters: Mutex<Vec<Waker>>,
}

impl Stopper {
    /// A stopper that has not fired.
    pub fn new() -> Stopper {
        Stopper::default()
    }

    /// Asks every worker loop holding this stopper to drain and return.
    pub fn stop(&self) {
        let waiters = {
            let mut waiters = crate::client::lock(&self.inner.waiters);
            self.inner.stopped.store(true, Ordering::Release);
            std::mem::take(&mut *waiters)
        };
        for w in waiters {
            w.wake();
        }
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::Acquire)
    }

    fn poll_stopped(&self, waker: &Waker) -> bool {
        // Checked under the lock that `stop` takes, so a stop cannot slip in between.
        let mut waiters = crate::client::lock(&self.inner.waiters);
        if self.is_stopped() {
            return true;
        }
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            waiters.push(waker.clone());
        }
        false
    }
}

/// What a worker loop shares with the others of one [`Worker::run`].
struct Shared {
    worker: RefCell<Worker>,
    done: Cell<u64>,
    max_jobs: Option<u64>,
    stop: Stopper,
    /// Fired when `max_jobs` are done: the other connections, asleep waiting for a NOOP
    /// that may never come, wake and return too.
    all_done: Stopper,
}

impl Shared {
    fn new(worker: Worker, max_jobs: Option<u64>, stop: Stopper) -> Shared {
        Shared {
            worker: RefCell::new(worker),
            done: Cell::new(0),
            max_jobs,
            stop,
            all_done: Stopper::new(),
        }
    }

    fn finished(&self) -> bool {
        self.stop.is_stopped() || self.max_jobs.is_some_and(|m| self.done.get() >= m)
    }

    /// One more job done; the last of `max_jobs` wakes every connection of the worker.
    fn job_done(&self) {
        self.done.set(self.done.get() + 1);
        if self.max_jobs.is_some_and(|m| self.done.get() >= m) {
            self.all_done.stop();
        }
    }

    /// Whether the worker should stop: asked to, or done. Registers `waker` with both.
    fn poll_finished(&self, waker: &Waker) -> bool {
        let stopped = self.stop.poll_stopped(waker);
        let done = self.all_done.poll_stopped(waker);
        stopped || done
    }
}

impl Worker {
    /// A worker with no functions.
    pub fn new() -> Worker {
        Worker::default()
    }

    /// Registers `function` (CAN_DO). Its closure returns the result payload, or how it failed.
    pub fn register(
        &mut self,
        name: impl Into<Bytes>,
        function: impl FnMut(&mut WorkerJob<'_>) -> Result<Bytes, WorkError> + 'static,
    ) -> &mut Worker {
        self.abilities.insert(
            name.into(),
            Ability { function: Function::Sync(Box::new(function)), timeout: None },
        );
        self
    }

    /// Registers an async function: its future runs alongside other jobs on the same
    /// connection, up to [`max_concurrent`](Self::max_concurrent) at once.
    pub fn register_async<F, Fut>(&mut self, name: impl Into<Bytes>, function: F) -> &mut Worker
    where
        F: Fn(AsyncJob) -> Fut + 'static,
        Fut: Future<Output = Result<Bytes, WorkError>> + 'static,
    {
        let boxed: AsyncFunction = Box::new(move |job| Box::pin(function(job)));
        self.abilities
            .insert(name.into(), Ability { function: Function::Async(boxed), timeout: None });
        self
    }

    /// How many jobs one connection runs at once (default 1). Above 1, the worker grabs more
    /// work while async jobs are running.
    pub fn max_concurrent(&mut self, jobs: usize) -> &mut Worker {
        self.max_concurrent = jobs.max(1);
        self
    }

    /// Registers with a timeout (CAN_DO_TIMEOUT, in milliseconds): the server fails the job if
    /// it runs longer.
    pub fn register_with_timeout(
        &mut self,
        name: impl Into<Bytes>,
        timeout: Duration,
        function: impl FnMut(&mut WorkerJob<'_>) -> Result<Bytes, WorkError> + 'static,
    ) -> &mut Worker {
        self.abilities.insert(
            name.into(),
            Ability { function: Function::Sync(Box::new(function)), timeout: Some(timeout) },
        );
        self
    }

    /// Sets the ID the server shows for this worker (SET_CLIENT_ID).
    pub fn client_id(&mut self, id: impl Into<Bytes>) -> &mut Worker {
        self.client_id = Some(id.into());
        self
    }

    /// Speaks TLS to every server (`gearman -w -S`); there is no fallback to plaintext.
    #[cfg(feature = "rustls")]
    pub fn tls(&mut self, tls: crate::ClientTls) -> &mut Worker {
        self.tls = Some(tls);
        self
    }

    /// While asleep, also ask for work every `interval`, in case a server's NOOP never comes.
    pub fn poll_interval(&mut self, interval: Duration) -> &mut Worker {
        self.poll_interval = Some(interval);
        self
    }

    /// Works for several servers at once (one connection each), reconnecting with backoff
    /// (100 ms doubling to 5 s) when a connection fails and registering again (SET_CLIENT_ID,
    /// CAN_DO) each time. Returns the number of jobs done, once `max_jobs` are done in all or
    /// `stop` fires. A server named by host ([`ServerAddr::Name`]) is looked up again at each
    /// reconnect.
    pub fn run<A: Clone + Into<ServerAddr>>(
        self,
        addrs: &[A],
        handle: &Handle,
        max_jobs: Option<u64>,
        stop: Stopper,
    ) -> impl Future<Output = u64> + 'static {
        // Everything is cloned up front so that the future can be spawned.
        let shared = Rc::new(Shared::new(self, max_jobs, stop));
        let loops: Vec<_> = addrs
            .iter()
            .map(|addr| {
                let target = addr.clone().into();
                handle.spawn_local(connection_loop(shared.clone(), target, handle.clone()))
            })
            .collect();
        async move {
            for l in loops {
                l.await;
            }
            shared.done.get()
        }
    }

    /// Starts a worker on the executor `spawner` leads to (an [`Engine`](evcore::Engine)
    /// thread, say) from any thread or runtime: `make` runs there and builds the worker, so
    /// its functions may capture that executor's handles; then it [`run`](Self::run)s. The
    /// returned future is `Send` and resolves to the number of jobs done, or
    /// [`Gone`](evcore::Gone) if the executor ended first. Stop it with `stop`, from anywhere.
    pub fn spawn<A: Clone + Into<ServerAddr>>(
        spawner: impl Into<evcore::Spawner>,
        addrs: &[A],
        max_jobs: Option<u64>,
        stop: Stopper,
        make: impl FnOnce(&Handle) -> Worker + Send + 'static,
    ) -> evcore::Spawned<u64> {
        let addrs: Vec<ServerAddr> = addrs.iter().map(|a| a.clone().into()).collect();
        spawner.into().spawn(move |h| make(h).run(&addrs, h, max_jobs, stop))
    }

    /// Connects to one server and works: takes jobs until `max_jobs` have been done (forever
    /// with `None`) or the connection fails. Returns how many jobs it did. For several servers
    /// and reconnection, see [`run`](Self::run).
    pub async fn work(
        &mut self,
        addr: impl Into<ServerAddr>,
        handle: &Handle,
        max_jobs: Option<u64>,
    ) -> Result<u64, Error> {
        let target = addr.into();
        let worker = std::mem::take(self);
        let shared = Rc::new(Shared::new(worker, max_jobs, Stopper::new()));
        let result = async {
            let tls = shared.worker.borrow().tls.clone();
            let timeout = crate::DEFAULT_CONNECT_TIMEOUT;
            let (mut conn, _) =
                Conn::connect_any(&target, &Resolver::system(), tls.as_ref(), timeout, handle)
                    .await?;
            register(&shared, &mut conn)?;
            serve(&shared, &mut conn, handle).await
        }
        .await;
        *self = shared.worker.replace(Worker::default());
        result.map(|()| shared.done.get())
    }
}

async fn connection_loop(shared: Rc<Shared>, addr: ServerAddr, handle: Handle) {
    let resolver = Resolver::system();
    let mut backoff = Duration::from_millis(100);
    while !shared.finished() {
        let served = async {
            let tls = shared.worker.borrow().tls.clone();
            let timeout = crate::DEFAULT_CONNECT_TIMEOUT;
            let (mut conn, _) =
                Conn::connect_any(&addr, &resolver, tls.as_ref(), timeout, &handle).await?;
            register(&shared, &mut conn)?;
            serve(&shared, &mut conn, &handle).await
        }
        .await;
        match served {
            Ok(()) => return,
            // A refused certificate is refused again: it backs off as a refused connect does,
            // and is logged, since nobody else hears of it.
            Err(Error::Tls(e)) => log::warn!("worker connection to {addr}: TLS failed: {e}"),
            Err(Error::Io(_)) if backoff < Duration::from_secs(5) => {}
            Err(_) => backoff = Duration::from_millis(100),
        }
        // Wait before the next attempt, but not past a stop.
        let mut sleep = handle.sleep(backoff);
        poll_fn(|cx| {
            if shared.poll_finished(cx.waker()) || Pin::new(&mut sleep).poll(cx).is_ready() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// SET_CLIENT_ID and one CAN_DO (or CAN_DO_TIMEOUT) per function.
fn register(shared: &Shared, conn: &mut Conn) -> Result<(), Error> {
    let worker = shared.worker.borrow();
    if let Some(id) = &worker.client_id {
        conn.queue(PacketType::SetClientId, &[id])?;
    }
    for (name, ability) in &worker.abilities {
        if name.is_empty() || name.contains(&0) || name.len() > MAX_FUNCTION {
            return Err(Error::InvalidArgument("function name: 1 to 512 bytes, no NUL"));
        }
        match ability.timeout {
            Some(t) => {
                let ms = t.as_millis().to_string();
                conn.queue(PacketType::CanDoTimeout, &[name, ms.as_bytes()])?;
            }
            None => conn.queue(PacketType::CanDo, &[name])?,
        }
    }
    Ok(())
}

/// Takes and runs jobs on one connection until the worker is finished or the connection fails.
async fn serve(shared: &Shared, conn: &mut Conn, handle: &Handle) -> Result<(), Error> {
    let concurrent = {
        let w = shared.worker.borrow();
        w.max_concurrent > 1
            || w.abilities.values().any(|a| matches!(a.function, Function::Async(_)))
    };
    if concurrent {
        serve_concurrent(shared, conn, handle).await?;
        return finish(shared, conn).await;
    }
    // Whether the job just run was the one that ended a sleep (NO_JOB, PRE_SLEEP, NOOP). Then
    // the queue was empty before it came and most likely is again: the result goes out with
    // PRE_SLEEP instead of a GRAB_JOB_ALL that would only hear NO_JOB. The server answers
    // PRE_SLEEP with NOOP at once when a job is queued (gearmand and ours): a worker saves a
    // round trip and a wake-up on each job that comes to it asleep, and pays one round trip
    // more when jobs were already queued behind the one that woke it.
    let (mut slept, mut woken_by_job) = (false, false);
    loop {
        if std::mem::take(&mut woken_by_job) && !shared.finished() {
            conn.queue(PacketType::PreSleep, &[])?;
            conn.flush().await?;
            let _ = sleep_until_noop(shared, conn, handle).await?;
            // Not counted as a sleep: the NOOP may have come at once, because jobs are queued,
            // and a busy worker must go back to grabbing after each job rather than paying a
            // PRE_SLEEP round trip on every one. (A strictly sequential load so saves the
            // NO_JOB on every other job.)
        }
        if shared.finished() {
            if shared.stop.is_stopped() {
                // Unregister, and return only once the server has processed it: the echo's
                // answer comes after the reset on the same connection.
                conn.queue(PacketType::ResetAbilities, &[])?;
                conn.queue(PacketType::EchoReq, &[b"drained"])?;
                conn.flush().await?;
                while conn.packet().await?.kind() != PacketType::EchoRes {}
            } else {
                conn.flush().await?;
            }
            return Ok(());
        }
        conn.queue(PacketType::GrabJobAll, &[])?;
        conn.flush().await?;
        let p = next_reply(conn).await?;
        match p.kind() {
            PacketType::NoJob => {
                conn.queue(PacketType::PreSleep, &[])?;
                conn.flush().await?;
                // Only a NOOP says a job came; a poll-interval tick (a server that never sends
                // NOOP) says nothing about the queue.
                slept = sleep_until_noop(shared, conn, handle).await?;
            }
            PacketType::JobAssignAll | PacketType::JobAssignUniq | PacketType::JobAssign => {
                shared.worker.borrow_mut().run_job(conn, &p)?;
                shared.job_done();
                woken_by_job = std::mem::take(&mut slept);
            }
            PacketType::Error => return Err(server_error(&p)),
            _ => {}
        }
    }
}

/// The end of a connection's work: on a stop, unregister and wait until the server has
/// processed it (the echo's answer comes after the reset on the same connection).
async fn finish(shared: &Shared, conn: &mut Conn) -> Result<(), Error> {
    if shared.stop.is_stopped() {
        conn.queue(PacketType::ResetAbilities, &[])?;
        conn.queue(PacketType::EchoReq, &[b"drained"])?;
        conn.flush().await?;
        while conn.packet().await?.kind() != PacketType::EchoRes {}
    } else {
        conn.flush().await?;
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Grab {
    /// Free to ask for a job.
    Idle,
    /// Asked; the answer has not come.
    Asked,
    /// Told there is none and sent PRE_SLEEP; waiting for NOOP (or a job of ours to end).
    Asleep,
}

/// Runs up to `max_concurrent` jobs at once on one connection, until the worker is finished
/// and every running job has ended.
async fn serve_concurrent(shared: &Shared, conn: &mut Conn, handle: &Handle) -> Result<(), Error> {
    let (limit, interval) = {
        let w = shared.worker.borrow();
        (w.max_concurrent.max(1), w.poll_interval)
    };
    let out = Rc::new(JobOut::default());
    let mut running: Vec<(Bytes, JobFuture)> = Vec::new();
    let mut grab = Grab::Idle;
    let mut tick: Option<Sleep> = None;
    poll_fn(|cx| loop {
        let mut progressed = false;
        *out.waker.borrow_mut() = Some(cx.waker().clone());
        let mut i = 0;
        while i < running.len() {
            match running[i].1.as_mut().poll(cx) {
                Poll::Ready(result) => {
                    let (h, _) = running.swap_remove(i);
                    // What the job sent while running goes out before its result.
                    conn.wbuf.unsplit(out.buf.borrow_mut().split());
                    queue_result(conn, &h, result)?;
                    shared.job_done();
                    if grab == Grab::Asleep {
                        grab = Grab::Idle;
                    }
                    progressed = true;
                }
                Poll::Pending => i += 1,
            }
        }
        conn.wbuf.unsplit(out.buf.borrow_mut().split());
        let finished = shared.finished();
        if finished && running.is_empty() {
            return Poll::Ready(Ok(()));
        }
        if !finished && grab == Grab::Idle && running.len() < limit {
            conn.queue(PacketType::GrabJobAll, &[])?;
            grab = Grab::Asked;
        }
        if let Poll::Ready(Err(e)) = conn.poll_flush(cx) {
            return Poll::Ready(Err(e.into()));
        }
        match conn.poll_packet(cx) {
            Poll::Ready(Ok(p)) => {
                progressed = true;
                match p.kind() {
                    PacketType::NoJob => {
                        conn.queue(PacketType::PreSleep, &[])?;
                        grab = Grab::Asleep;
                        tick = interval.map(|i| handle.sleep(i));
                    }
                    PacketType::Noop if grab == Grab::Asleep => grab = Grab::Idle,
                    PacketType::JobAssignAll
                    | PacketType::JobAssignUniq
                    | PacketType::JobAssign => {
                        grab = Grab::Idle;
                        let mut worker = shared.worker.borrow_mut();
                        let (h, function, unique, workload) = assignment(&p);
                        match worker.abilities.get_mut(&function).map(|a| &mut a.function) {
                            Some(Function::Async(f)) => {
                                let job = AsyncJob {
                                    handle: h.clone(),
                                    function,
                                    unique,
                                    workload,
                                    out: out.clone(),
                                    executor: handle.clone(),
                                };
                                running.push((h, f(job)));
                            }
                            _ => {
                                drop(worker);
                                shared.worker.borrow_mut().run_job(conn, &p)?;
                                shared.job_done();
                            }
                        }
                    }
                    PacketType::Error => return Poll::Ready(Err(server_error(&p))),
                    _ => {}
                }
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
        if grab == Grab::Asleep {
            if let Some(t) = tick.as_mut() {
                if Pin::new(t).poll(cx).is_ready() {
                    grab = Grab::Idle;
                    tick = None;
                    progressed = true;
                }
            }
        }
        if !progressed {
            if shared.poll_finished(cx.waker()) {
                continue;
            }
            return Poll::Pending;
        }
    })
    .await
}

/// Handle, function, unique and workload of a JOB_ASSIGN of any flavour.
fn assignment(p: &Packet) -> (Bytes, Bytes, Bytes, Bytes) {
    let (unique, workload) = match p.kind() {
        PacketType::JobAssignAll => (p.arg(2), p.arg(4)),
        PacketType::JobAssignUniq => (p.arg(2), p.arg(3)),
        _ => (Bytes::new(), p.arg(2)),
    };
    (p.arg(0), p.arg(1), unique, workload)
}

fn queue_result(
    conn: &mut Conn,
    handle: &Bytes,
    result: Result<Bytes, WorkError>,
) -> Result<(), Error> {
    match result {
        Ok(data) => conn.queue(PacketType::WorkComplete, &[handle, &data])?,
        Err(WorkError::Fail) => conn.queue(PacketType::WorkFail, &[handle])?,
        Err(WorkError::Exception(data)) => {
            conn.queue(PacketType::WorkException, &[handle, &data])?
        }
    }
    Ok(())
}

/// Waits for the server's NOOP without polling it; wakes early for a stop, or on the poll
/// interval if one is set. True when a NOOP ended it.
async fn sleep_until_noop(
    shared: &Shared,
    conn: &mut Conn,
    handle: &Handle,
) -> Result<bool, Error> {
    let interval = shared.worker.borrow().poll_interval;
    let mut tick = interval.map(|i| handle.sleep(i));
    poll_fn(|cx| loop {
        match conn.poll_packet(cx) {
            Poll::Ready(Ok(p)) => match p.kind() {
                PacketType::Noop => return Poll::Ready(Ok(true)),
                PacketType::Error => return Poll::Ready(Err(server_error(&p))),
                _ => continue,
            },
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
        if shared.poll_finished(cx.waker()) {
            return Poll::Ready(Ok(false));
        }
        if let Some(t) = tick.as_mut() {
            if Pin::new(t).poll(cx).is_ready() {
                return Poll::Ready(Ok(false));
            }
        }
        return Poll::Pending;
    })
    .await
}

/// The next answer to a GRAB: NOOPs that crossed with the request are skipped.
async fn next_reply(conn: &mut Conn) -> Result<Packet, Error> {
    loop {
        let p = conn.packet().await?;
        if p.kind() != PacketType::Noop {
            return Ok(p);
        }
    }
}

impl Worker {
    fn run_job(&mut self, conn: &mut Conn, p: &Packet) -> Result<(), Error> {
        let (handle, function, unique, workload) = assignment(p);
        let outcome = match self.abilities.get_mut(&function).map(|a| &mut a.function) {
            Some(Function::Sync(f)) => {
                let mut job =
                    WorkerJob { conn, handle: handle.clone(), function, unique, workload };
                f(&mut job)
            }
            // An async function outside the concurrent loop cannot happen (its presence selects
            // that loop); a function we never registered is failed rather than held forever.
            _ => Err(WorkError::Fail),
        };
        queue_result(conn, &handle, outcome)
    }
}

fn server_error(p: &Packet) -> Error {
    Error::Server {
        code: String::from_utf8_lossy(p.arg_ref(0)).into_owned(),
        text: String::from_utf8_lossy(p.arg_ref(1)).into_owned(),
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> =
            self.abilities.keys().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
        f.debug_struct("Worker").field("functions", &names).finish()
    }
}
