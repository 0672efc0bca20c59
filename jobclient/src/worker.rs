//! The worker: register functions, take jobs, report results (`gearman_worker_*`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use evcore::Handle;

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

type Function = Box<dyn FnMut(&mut WorkerJob<'_>) -> Result<Bytes, WorkError>>;

struct Ability {
    function: Function,
    timeout: Option<Duration>,
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
/// ex.block_on(worker.work("127.0.0.1:4730".parse().unwrap(), &h, None))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
pub struct Worker {
    abilities: HashMap<Bytes, Ability>,
    client_id: Option<Bytes>,
    poll_interval: Option<Duration>,
}

/// Stops a running worker gracefully: it finishes the job in hand, tells each server it can do
/// nothing more (`RESET_ABILITIES`), waits until the server has processed that, and returns.
/// Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Stopper {
    inner: Rc<StopInner>,
}

#[derive(Debug, Default)]
struct StopInner {
    stopped: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

impl Stopper {
    /// A stopper that has not fired.
    pub fn new() -> Stopper {
        Stopper::default()
    }

    /// Asks every worker loop holding this stopper to drain and return.
    pub fn stop(&self) {
        self.inner.stopped.set(true);
        for w in self.inner.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.get()
    }

    fn poll_stopped(&self, waker: &Waker) -> bool {
        if self.is_stopped() {
            return true;
        }
        self.inner.waiters.borrow_mut().push(waker.clone());
        false
    }
}

/// What a worker loop shares with the others of one [`Worker::run`].
struct Shared {
    worker: RefCell<Worker>,
    done: Cell<u64>,
    max_jobs: Option<u64>,
    stop: Stopper,
}

impl Shared {
    fn finished(&self) -> bool {
        self.stop.is_stopped() || self.max_jobs.is_some_and(|m| self.done.get() >= m)
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
        self.abilities.insert(name.into(), Ability { function: Box::new(function), timeout: None });
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
        self.abilities
            .insert(name.into(), Ability { function: Box::new(function), timeout: Some(timeout) });
        self
    }

    /// Sets the ID the server shows for this worker (SET_CLIENT_ID).
    pub fn client_id(&mut self, id: impl Into<Bytes>) -> &mut Worker {
        self.client_id = Some(id.into());
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
    /// `stop` fires.
    pub fn run(
        self,
        addrs: &[SocketAddr],
        handle: &Handle,
        max_jobs: Option<u64>,
        stop: Stopper,
    ) -> impl Future<Output = u64> + 'static {
        // Everything is cloned up front so that the future can be spawned.
        let shared =
            Rc::new(Shared { worker: RefCell::new(self), done: Cell::new(0), max_jobs, stop });
        let loops: Vec<_> = addrs
            .iter()
            .map(|&addr| handle.spawn_local(connection_loop(shared.clone(), addr, handle.clone())))
            .collect();
        async move {
            for l in loops {
                l.await;
            }
            shared.done.get()
        }
    }

    /// Connects to one server and works: takes jobs until `max_jobs` have been done (forever
    /// with `None`) or the connection fails. Returns how many jobs it did. For several servers
    /// and reconnection, see [`run`](Self::run).
    pub async fn work(
        &mut self,
        addr: SocketAddr,
        handle: &Handle,
        max_jobs: Option<u64>,
    ) -> Result<u64, Error> {
        let worker = std::mem::take(self);
        let shared = Rc::new(Shared {
            worker: RefCell::new(worker),
            done: Cell::new(0),
            max_jobs,
            stop: Stopper::new(),
        });
        let result = async {
            let mut conn = Conn::connect(addr, handle).await?;
            register(&shared, &mut conn)?;
            serve(&shared, &mut conn, handle).await
        }
        .await;
        *self = shared.worker.replace(Worker::default());
        result.map(|()| shared.done.get())
    }
}

async fn connection_loop(shared: Rc<Shared>, addr: SocketAddr, handle: Handle) {
    let mut backoff = Duration::from_millis(100);
    while !shared.finished() {
        let served = async {
            let mut conn = Conn::connect(addr, &handle).await?;
            register(&shared, &mut conn)?;
            serve(&shared, &mut conn, &handle).await
        }
        .await;
        match served {
            Ok(()) => return,
            Err(Error::Io(_)) if backoff < Duration::from_secs(5) => {}
            Err(_) => backoff = Duration::from_millis(100),
        }
        // Wait before the next attempt, but not past a stop.
        let mut sleep = handle.sleep(backoff);
        poll_fn(|cx| {
            if shared.stop.poll_stopped(cx.waker()) || Pin::new(&mut sleep).poll(cx).is_ready() {
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
    loop {
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
                sleep_until_noop(shared, conn, handle).await?;
            }
            PacketType::JobAssignAll | PacketType::JobAssignUniq | PacketType::JobAssign => {
                shared.worker.borrow_mut().run_job(conn, &p)?;
                shared.done.set(shared.done.get() + 1);
            }
            PacketType::Error => return Err(server_error(&p)),
            _ => {}
        }
    }
}

/// Waits for the server's NOOP without polling it; wakes early for a stop, or on the poll
/// interval if one is set.
async fn sleep_until_noop(shared: &Shared, conn: &mut Conn, handle: &Handle) -> Result<(), Error> {
    let interval = shared.worker.borrow().poll_interval;
    let mut tick = interval.map(|i| handle.sleep(i));
    poll_fn(|cx| loop {
        match conn.poll_packet(cx) {
            Poll::Ready(Ok(p)) => match p.kind() {
                PacketType::Noop => return Poll::Ready(Ok(())),
                PacketType::Error => return Poll::Ready(Err(server_error(&p))),
                _ => continue,
            },
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
        if shared.stop.poll_stopped(cx.waker()) {
            return Poll::Ready(Ok(()));
        }
        if let Some(t) = tick.as_mut() {
            if Pin::new(t).poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
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
        let (handle, function) = (p.arg(0), p.arg(1));
        let (unique, workload) = match p.kind() {
            PacketType::JobAssignAll => (p.arg(2), p.arg(4)),
            PacketType::JobAssignUniq => (p.arg(2), p.arg(3)),
            _ => (Bytes::new(), p.arg(2)),
        };
        let outcome = match self.abilities.get_mut(&function) {
            Some(ability) => {
                let mut job =
                    WorkerJob { conn, handle: handle.clone(), function, unique, workload };
                (ability.function)(&mut job)
            }
            // Assigned a function we never registered: fail it rather than hold it forever.
            None => Err(WorkError::Fail),
        };
        match outcome {
            Ok(result) => conn.queue(PacketType::WorkComplete, &[&handle, &result])?,
            Err(WorkError::Fail) => conn.queue(PacketType::WorkFail, &[&handle])?,
            Err(WorkError::Exception(data)) => {
                conn.queue(PacketType::WorkException, &[&handle, &data])?
            }
        }
        Ok(())
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
