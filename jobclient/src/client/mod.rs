//! The client: submit jobs and follow them (`gearman_client_*`).

mod driver;
mod state;

use std::fmt;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use evcore::{Handle, Spawner};

use crate::addr::{Resolver, ServerAddr};
use crate::conn::Conn;
use crate::proto::{PacketType, MAX_FUNCTION, MAX_UNIQUE};
use crate::Error;
use state::{Delivery, State};

/// A job's priority in the server's queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Priority {
    /// Before every normal and low job, of any function.
    High,
    /// The default.
    #[default]
    Normal,
    /// After every high and normal job.
    Low,
}

/// A job to submit: function, unique ID, workload, and how to run it.
#[derive(Clone, Debug)]
pub struct Job {
    function: Bytes,
    unique: Bytes,
    workload: Bytes,
    priority: Priority,
    epoch: Option<u64>,
    timeout: Option<Duration>,
}

impl Job {
    /// A normal-priority job with no unique ID (the server makes one up).
    pub fn new(function: impl Into<Bytes>, workload: impl Into<Bytes>) -> Job {
        Job {
            function: function.into(),
            unique: Bytes::new(),
            workload: workload.into(),
            priority: Priority::Normal,
            epoch: None,
            timeout: None,
        }
    }

    /// Sets the unique ID: jobs with the same unique are coalesced by the server into one run,
    /// whose results every submitter receives.
    #[must_use]
    pub fn unique(mut self, unique: impl Into<Bytes>) -> Job {
        self.unique = unique.into();
        self
    }

    /// Sets the priority.
    #[must_use]
    pub fn priority(mut self, priority: Priority) -> Job {
        self.priority = priority;
        self
    }

    /// Runs the job (in the background) at this Unix time: `SUBMIT_JOB_EPOCH`.
    #[must_use]
    pub fn at_epoch(mut self, epoch: u64) -> Job {
        self.epoch = Some(epoch);
        self
    }

    /// A client-side deadline: if the job has not ended this long after submission, waiting
    /// on it fails with [`Error::TimedOut`], whether or not any worker exists.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Job {
        self.timeout = Some(timeout);
        self
    }

    fn check(&self) -> Result<(), Error> {
        if self.function.is_empty()
            || self.function.contains(&0)
            || self.function.len() > MAX_FUNCTION
        {
            return Err(Error::InvalidArgument("function name: 1 to 512 bytes, no NUL"));
        }
        if self.unique.contains(&0) || self.unique.len() > MAX_UNIQUE {
            return Err(Error::InvalidArgument("unique ID: at most 64 bytes, no NUL"));
        }
        Ok(())
    }

    fn packet_type(&self, background: bool) -> PacketType {
        use PacketType as T;
        match (self.priority, background) {
            (Priority::Normal, false) => T::SubmitJob,
            (Priority::Normal, true) => T::SubmitJobBg,
            (Priority::High, false) => T::SubmitJobHigh,
            (Priority::High, true) => T::SubmitJobHighBg,
            (Priority::Low, false) => T::SubmitJobLow,
            (Priority::Low, true) => T::SubmitJobLowBg,
        }
    }
}

/// What a foreground job reports, in order: any number of `Data`, `Warning` and `Status`, then
/// exactly one of `Complete`, `Fail` or `Exception`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobEvent {
    /// A chunk of the result (WORK_DATA).
    Data(Bytes),
    /// A warning (WORK_WARNING).
    Warning(Bytes),
    /// Progress (WORK_STATUS).
    Status {
        /// Done so far.
        numerator: u64,
        /// Out of.
        denominator: u64,
    },
    /// Success, with the final payload (WORK_COMPLETE).
    Complete(Bytes),
    /// Failure (WORK_FAIL).
    Fail,
    /// Failure with data (WORK_EXCEPTION; needs [`Client::enable_exceptions`] on gearmand).
    Exception(Bytes),
}

impl JobEvent {
    /// Whether this event ends the job.
    pub fn is_terminal(&self) -> bool {
        matches!(self, JobEvent::Complete(_) | JobEvent::Fail | JobEvent::Exception(_))
    }
}

/// What the server knows of a job (`GET_STATUS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobStatus {
    /// Whether the server knows the handle (an unknown or finished job is `false`).
    pub known: bool,
    /// Whether a worker is running it.
    pub running: bool,
    /// Progress numerator.
    pub numerator: u64,
    /// Progress denominator.
    pub denominator: u64,
    /// Clients waiting on it (`GET_STATUS_UNIQUE` only; 0 otherwise).
    pub waiting: u64,
}

/// How a client spreads jobs over several servers and reconnects.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Send a job with a unique ID to the server its hash picks (then fail over from there),
    /// so coalescing works across servers. Jobs without a unique ID, and every job when this
    /// is off, go to the first server that is up, in the order given.
    pub hash_by_unique: bool,
    /// The wait before retrying a server after its first failed connect; doubled per failure.
    pub backoff_initial: Duration,
    /// The longest wait between retries.
    pub backoff_max: Duration,
    /// Speak TLS to every server (`gearman -S`); `None`, plaintext. A server that does not
    /// answer TLS fails the connect: there is no fallback.
    #[cfg(feature = "rustls")]
    pub tls: Option<crate::ClientTls>,
    /// How host names are looked up (at every connect, so a moved server is found on the
    /// next reconnect); `None`, the system's resolver (which workers use).
    pub resolver: Option<Resolver>,
    /// How long one connect may take, lookup and TLS handshake included; default
    /// [`DEFAULT_CONNECT_TIMEOUT`](crate::DEFAULT_CONNECT_TIMEOUT), 10 s.
    pub connect_timeout: Duration,
}

impl ClientOptions {
    /// The TLS settings, as the connection code takes them.
    fn connector(&self) -> Option<crate::tls::Connector> {
        #[cfg(feature = "rustls")]
        return self.tls.clone();
        #[cfg(not(feature = "rustls"))]
        None
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            hash_by_unique: false,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            #[cfg(feature = "rustls")]
            tls: None,
            resolver: None,
            connect_timeout: crate::DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// A background job's handle and the server that holds it (handles are tied to their server).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JobRef {
    /// The handle the server assigned.
    pub handle: Bytes,
    /// The server it was submitted to.
    pub server: SocketAddr,
}

/// Connections to one or more job servers, shared by all the jobs they carry.
///
/// `Clone + Send + Sync`, cheap to clone, and its futures are `Send`: hold it in an `Arc` or
/// in a tokio service's state and submit from any task on any thread. The connections live on
/// an evcore executor (the one behind the [`Handle`](evcore::Handle) or
/// [`Engine`](evcore::Engine) it was made with) and close when the last clone is dropped.
/// Many jobs may be in flight at once (a task set, `gearman_client_run_tasks`): each
/// [`JobHandle`] receives its own events. A connection that fails fails the jobs in flight on
/// it ([`Error::Disconnected`]: the client cannot know whether they ran); the next submission
/// reconnects, or fails over to the next server while that one backs off.
///
/// On evcore's own executor:
///
/// ```no_run
/// use evcore::Executor;
/// use jobclient::Client;
///
/// let ex = Executor::new()?;
/// let h = ex.handle();
/// ex.block_on(async {
///     let client = Client::connect("127.0.0.1:4730".parse().unwrap(), &h).await?;
///     let reversed = client.do_job("reverse", "", "hello").await?;
///     println!("{}", String::from_utf8_lossy(&reversed));
///     Ok::<(), jobclient::Error>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// From any other runtime, with an engine thread (see the crate docs, "Send handles"):
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let engine = evcore::Engine::start()?;
/// let client = jobclient::Client::connect("127.0.0.1:4730".parse()?, &engine).await?;
/// let tasks: Vec<_> = (0..100)
///     .map(|i| {
///         let client = client.clone();
///         // e.g. tokio::spawn(async move { ... })
///         async move { client.do_job("reverse", "", format!("job {i}")).await }
///     })
///     .collect();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// One connection's bookkeeping, shared by its driver task and the handles.
pub(crate) type Shared = Mutex<State>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks except on a bug; the state stays usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Inner {
    spawner: Spawner,
    options: ClientOptions,
    servers: Mutex<Vec<ServerSlot>>,
}

struct ServerSlot {
    /// Where the server is: an address, or a name looked up at each connect.
    target: ServerAddr,
    /// The address of the live (or last) connection.
    addr: Option<SocketAddr>,
    state: Option<Arc<Shared>>,
    connecting: bool,
    /// Connect attempts so far, so that a caller knows when the one it waited on has ended.
    attempts: u64,
    /// How the last attempt failed.
    /// The last connect's failure: its kind, its text, and whether it was TLS's.
    last_error: Option<(std::io::ErrorKind, String, bool)>,
    waiters: Vec<Waker>,
    failures: u32,
    retry_at: Option<Instant>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let servers = std::mem::take(self.servers.get_mut().unwrap_or_else(|e| e.into_inner()));
        for slot in servers {
            if let Some(state) = slot.state {
                let driver = {
                    let mut st = lock(&state);
                    st.handles = 0;
                    st.driver.take()
                };
                if let Some(w) = driver {
                    w.wake();
                }
            }
        }
    }
}

/// A connect under way on the executor's thread. However it ends (connected, failed, or
/// dropped unrun because the executor is gone) its slot hears of it, so no caller waits on a
/// connect that will never finish.
struct Attempt {
    inner: Arc<Inner>,
    idx: usize,
    done: bool,
}

impl Attempt {
    /// Runs on the executor's thread: a connected socket gets its driver task there.
    fn finish(mut self, connected: std::io::Result<(Conn, SocketAddr)>, handle: &Handle) {
        self.done = true;
        let mut servers = lock(&self.inner.servers);
        let Some(slot) = servers.get_mut(self.idx) else { return };
        slot.connecting = false;
        let waiters = std::mem::take(&mut slot.waiters);
        match connected {
            Ok((conn, addr)) => {
                slot.addr = Some(addr);
                let mut st = State::new();
                // Options set on the old connection carry over to the new one.
                if let Some(old) = &slot.state {
                    let options = lock(old).options.clone();
                    for o in &options {
                        if let Ok(key) = st.request(PacketType::OptionReq, &[o], false, None) {
                            st.release(key);
                        }
                    }
                    st.options = options;
                }
                let state = Arc::new(Mutex::new(st));
                handle.spawn_local(driver::drive(conn, state.clone(), handle.clone())).detach();
                slot.state = Some(state);
                slot.failures = 0;
                slot.retry_at = None;
                slot.last_error = None;
            }
            Err(e) => self.failed(slot, &e),
        }
        drop(servers);
        for w in waiters {
            w.wake();
        }
    }

    fn failed(&self, slot: &mut ServerSlot, e: &std::io::Error) {
        slot.connecting = false;
        slot.failures += 1;
        let o = &self.inner.options;
        let backoff =
            o.backoff_initial.saturating_mul(1 << (slot.failures - 1).min(16)).min(o.backoff_max);
        // A backoff too long to add to the clock (a `Duration::MAX` maximum) waits 100 years.
        let now = Instant::now();
        let far = Duration::from_secs(100 * 365 * 24 * 3600);
        slot.retry_at = now.checked_add(backoff).or_else(|| now.checked_add(far));
        slot.last_error = Some(match crate::tls::tls_failure(e) {
            Some(text) => (e.kind(), text, true),
            None => (e.kind(), e.to_string(), false),
        });
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let e = std::io::Error::other("the client's executor is gone");
        let waiters = {
            let mut servers = lock(&self.inner.servers);
            let Some(slot) = servers.get_mut(self.idx) else { return };
            self.failed(slot, &e);
            std::mem::take(&mut slot.waiters)
        };
        for w in waiters {
            w.wake();
        }
    }
}

impl Client {
    /// Connects to one server now (an unreachable server is an error here). The connection
    /// lives on the executor that `spawner` leads to: `&handle` for evcore's executor on this
    /// thread, `&engine` for an [`Engine`](evcore::Engine) thread (from tokio or any runtime).
    pub async fn connect(addr: SocketAddr, spawner: impl Into<Spawner>) -> Result<Client, Error> {
        Client::connect_with(addr, spawner, ClientOptions::default()).await
    }

    /// Connects to one server now with `options` (over TLS with
    /// [`ClientOptions::tls`](ClientOptions)): an unreachable server, or a certificate
    /// refused, is an error here.
    pub async fn connect_with(
        addr: SocketAddr,
        spawner: impl Into<Spawner>,
        options: ClientOptions,
    ) -> Result<Client, Error> {
        let client = Client::with_servers(&[addr], spawner, options);
        client.server_for(b"").await?;
        Ok(client)
    }

    /// A client for several servers (`gearman_client_add_server` for each): addresses, or
    /// [`ServerAddr`]s whose host names are looked up at every connect. Connections are
    /// made when first needed.
    pub fn with_servers<A: Clone + Into<ServerAddr>>(
        servers: &[A],
        spawner: impl Into<Spawner>,
        options: ClientOptions,
    ) -> Client {
        let servers = servers
            .iter()
            .map(|s| ServerSlot {
                target: s.clone().into(),
                addr: None,
                state: None,
                connecting: false,
                attempts: 0,
                last_error: None,
                waiters: Vec::new(),
                failures: 0,
                retry_at: None,
            })
            .collect();
        Client {
            inner: Arc::new(Inner {
                spawner: spawner.into(),
                options,
                servers: Mutex::new(servers),
            }),
        }
    }

    /// `gearman_client_do`: runs a job to completion and returns its result: every WORK_DATA
    /// chunk and the WORK_COMPLETE payload, concatenated, as libgearman 1.x does.
    pub async fn do_job(
        &self,
        function: impl Into<Bytes>,
        unique: impl Into<Bytes>,
        workload: impl Into<Bytes>,
    ) -> Result<Bytes, Error> {
        let mut job = self.submit(Job::new(function, workload).unique(unique)).await?;
        job.result().await
    }

    /// Submits a foreground job and returns once the server has accepted it (JOB_CREATED).
    pub async fn submit(&self, job: Job) -> Result<JobHandle, Error> {
        job.check()?;
        let (state, addr) = self.server_for(&job.unique).await?;
        let key = submit_request(&state, &job, false)?;
        let mut jh = JobHandle { state, key, handle: Bytes::new(), server: addr, ended: false };
        match jh.next_delivery().await {
            Delivery::Created(h) => {
                jh.handle = h;
                if job.epoch.is_some() {
                    jh.ended = true;
                }
                Ok(jh)
            }
            Delivery::Failed(e) => Err(e),
            other => Err(unexpected(other)),
        }
    }

    /// Submits a background job (`SUBMIT_JOB_BG` and its priorities, or `SUBMIT_JOB_EPOCH`)
    /// and returns its handle and server; follow it with [`status`](Self::status).
    pub async fn submit_background(&self, job: Job) -> Result<JobRef, Error> {
        job.check()?;
        let (state, server) = self.server_for(&job.unique).await?;
        let key = submit_request(&state, &job, true)?;
        match reply(&state, key).await? {
            Delivery::Created(handle) => Ok(JobRef { handle, server }),
            other => Err(unexpected(other)),
        }
    }

    /// `GET_STATUS`, asked of the server that holds the job. An unknown handle is not an
    /// error: gearmand answers `known: false` and zeros.
    pub async fn status(&self, job: &JobRef) -> Result<JobStatus, Error> {
        let state = self.server_at(job.server).await?;
        status_on(&state, &job.handle).await
    }

    /// `GET_STATUS` of a bare handle (from another program, say), asked of the first server up.
    pub async fn status_handle(&self, handle: &[u8]) -> Result<JobStatus, Error> {
        let (state, _) = self.server_for(b"").await?;
        status_on(&state, handle).await
    }

    /// `GET_STATUS_UNIQUE`: status by unique ID, with the number of waiting clients, asked of
    /// the server the unique ID maps to.
    pub async fn status_unique(&self, unique: &[u8]) -> Result<JobStatus, Error> {
        let (state, _) = self.server_for(unique).await?;
        let key = request(&state, PacketType::GetStatusUnique, &[unique], false, None)?;
        match reply(&state, key).await? {
            Delivery::Reply(p) => Ok(parse_status(&p, true)),
            other => Err(unexpected(other)),
        }
    }

    /// `ECHO_REQ`: the server sends `data` back.
    pub async fn echo(&self, data: &[u8]) -> Result<Bytes, Error> {
        let (state, _) = self.server_for(b"").await?;
        let key = request(&state, PacketType::EchoReq, &[data], false, None)?;
        match reply(&state, key).await? {
            Delivery::Reply(p) => Ok(p.arg(0)),
            other => Err(unexpected(other)),
        }
    }

    /// `OPTION_REQ "exceptions"` on every connected server: the server forwards
    /// WORK_EXCEPTION instead of turning it into WORK_FAIL. Connections made later get it too.
    pub async fn enable_exceptions(&self) -> Result<(), Error> {
        self.set_option(b"exceptions").await
    }

    /// `OPTION_REQ`: sets a connection option; an unknown one is an [`Error::Server`].
    pub async fn set_option(&self, name: &[u8]) -> Result<(), Error> {
        let (state, _) = self.server_for(b"").await?;
        lock(&state).options.push(Bytes::copy_from_slice(name));
        let key = request(&state, PacketType::OptionReq, &[name], false, None)?;
        match reply(&state, key).await? {
            Delivery::Reply(_) => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// The connection to use for a job with this unique ID: hashed or first up, failing over
    /// in order, connecting (or reconnecting) when needed.
    async fn server_for(&self, unique: &[u8]) -> Result<(Arc<Shared>, SocketAddr), Error> {
        let n = lock(&self.inner.servers).len();
        if n == 0 {
            return Err(Error::InvalidArgument("no servers"));
        }
        let start = if self.inner.options.hash_by_unique && !unique.is_empty() {
            fnv1a(unique) as usize % n
        } else {
            0
        };
        let mut last = Error::Disconnected;
        for i in 0..n {
            let idx = (start + i) % n;
            match self.connection(idx).await {
                Ok(found) => return Ok(found),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// A client for the servers `GEARMAN_SERVERS` names (`host[:port],host[:port]`), as a
    /// libgearman client takes them when it is created; [`Error::InvalidArgument`] when the
    /// variable is unset or holds no valid list. Connections are made when first needed.
    pub fn from_env(spawner: impl Into<Spawner>, options: ClientOptions) -> Result<Client, Error> {
        let servers = ServerAddr::from_env()
            .unwrap_or(Err(Error::InvalidArgument("GEARMAN_SERVERS is not set")))?;
        Ok(Client::with_servers(&servers, spawner, options))
    }

    async fn server_at(&self, addr: SocketAddr) -> Result<Arc<Shared>, Error> {
        let idx = lock(&self.inner.servers)
            .iter()
            .position(|s| s.addr == Some(addr) || s.target == ServerAddr::Ip(addr));
        match idx {
            Some(idx) => self.connection(idx).await.map(|(s, _)| s),
            None => Err(Error::InvalidArgument("that server is not one of this client's")),
        }
    }

    /// The live connection to server `idx`, connecting if it has none and is not backing off.
    /// Callers that arrive while a connect is under way wait for it rather than start another.
    /// The connect itself runs on the executor's thread, so a caller that gives up waiting
    /// (its future dropped) leaves nothing half done.
    async fn connection(&self, idx: usize) -> Result<(Arc<Shared>, SocketAddr), Error> {
        let mut waited: Option<u64> = None;
        poll_fn(|cx| {
            let mut servers = lock(&self.inner.servers);
            let slot = &mut servers[idx];
            if let Some(st) = &slot.state {
                if !lock(st).dead {
                    if let Some(addr) = slot.addr {
                        return Poll::Ready(Ok((st.clone(), addr)));
                    }
                }
            }
            if slot.connecting {
                waited = Some(slot.attempts);
                if !slot.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    slot.waiters.push(cx.waker().clone());
                }
                return Poll::Pending;
            }
            if waited == Some(slot.attempts) {
                if let Some((kind, text, tls)) = &slot.last_error {
                    return Poll::Ready(Err(if *tls {
                        Error::Tls(text.clone())
                    } else {
                        Error::Io(std::io::Error::new(*kind, text.clone()))
                    }));
                }
            }
            if slot.retry_at.is_some_and(|t| Instant::now() < t) {
                return Poll::Ready(Err(Error::Disconnected));
            }
            slot.connecting = true;
            slot.attempts += 1;
            waited = Some(slot.attempts);
            slot.waiters.push(cx.waker().clone());
            let target = slot.target.clone();
            let resolver = self.inner.options.resolver.clone().unwrap_or_default();
            let timeout = self.inner.options.connect_timeout;
            let tls = self.inner.options.connector();
            let attempt = Attempt { inner: self.inner.clone(), idx, done: false };
            drop(servers);
            // The Spawned result is not needed: the attempt reports through its slot.
            drop(self.inner.spawner.spawn(move |h| {
                let h = h.clone();
                async move {
                    let connected =
                        Conn::connect_any(&target, &resolver, tls.as_ref(), timeout, &h).await;
                    attempt.finish(connected, &h);
                }
            }));
            Poll::Pending
        })
        .await
    }
}

/// 32-bit FNV-1a, for picking a server by unique ID: stable across runs and processes, so
/// every client sends a unique ID to the same server.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

fn request(
    state: &Shared,
    kind: PacketType,
    args: &[&[u8]],
    foreground: bool,
    timeout: Option<Duration>,
) -> Result<usize, Error> {
    let (key, driver) = {
        let mut st = lock(state);
        let key = st.request(kind, args, foreground, timeout)?;
        (key, st.driver.clone())
    };
    if let Some(w) = driver {
        w.wake();
    }
    Ok(key)
}

/// Queues the SUBMIT_JOB* packet for `job`. An epoch job is a background job whatever was
/// asked: SUBMIT_JOB_EPOCH has no foreground form, so there are no events to follow.
fn submit_request(state: &Shared, job: &Job, background: bool) -> Result<usize, Error> {
    match job.epoch {
        Some(epoch) => {
            let e = epoch.to_string();
            request(
                state,
                PacketType::SubmitJobEpoch,
                &[&job.function, &job.unique, e.as_bytes(), &job.workload],
                false,
                job.timeout,
            )
        }
        None => request(
            state,
            job.packet_type(background),
            &[&job.function, &job.unique, &job.workload],
            !background,
            job.timeout,
        ),
    }
}

/// Waits for a direct reply, then frees the slot.
async fn reply(state: &Shared, key: usize) -> Result<Delivery, Error> {
    // Released however the wait ends, a dropped future included.
    struct Release<'a>(&'a Shared, usize);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            lock(self.0).release(self.1);
        }
    }
    let _release = Release(state, key);
    let d = poll_fn(|cx| match lock(state).poll_slot(key, cx.waker()) {
        Some(d) => Poll::Ready(d),
        None => Poll::Pending,
    })
    .await;
    match d {
        Delivery::Failed(e) => Err(e),
        d => Ok(d),
    }
}

async fn status_on(state: &Shared, handle: &[u8]) -> Result<JobStatus, Error> {
    let key = request(state, PacketType::GetStatus, &[handle], false, None)?;
    match reply(state, key).await? {
        Delivery::Reply(p) => Ok(parse_status(&p, false)),
        other => Err(unexpected(other)),
    }
}

/// STATUS_RES (handle, known, running, numerator, denominator) and STATUS_RES_UNIQUE (the
/// same, then the number of waiting clients).
fn parse_status(p: &crate::proto::Packet, with_waiting: bool) -> JobStatus {
    JobStatus {
        known: p.arg_ref(1) == b"1",
        running: p.arg_ref(2) == b"1",
        numerator: p.number(3, "numerator").unwrap_or(0),
        denominator: p.number(4, "denominator").unwrap_or(0),
        waiting: if with_waiting { p.number(5, "waiting").unwrap_or(0) } else { 0 },
    }
}

fn unexpected(d: Delivery) -> Error {
    match d {
        Delivery::Failed(e) => e,
        _ => Error::Protocol(crate::proto::ProtoError::BadNumber { what: "reply out of order" }),
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let servers: Vec<String> =
            lock(&self.inner.servers).iter().map(|s| s.target.to_string()).collect();
        f.debug_struct("Client").field("servers", &servers).finish_non_exhaustive()
    }
}

/// A submitted foreground job: its handle and its stream of events.
pub struct JobHandle {
    state: Arc<Shared>,
    key: usize,
    handle: Bytes,
    server: SocketAddr,
    ended: bool,
}

impl JobHandle {
    /// The handle the server assigned (e.g. `H:host:42`).
    pub fn handle(&self) -> &Bytes {
        &self.handle
    }

    /// The server running the job.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The next event. After the terminal event, [`Error::Finished`]; after the job's deadline,
    /// [`Error::TimedOut`]; if the connection drops, [`Error::Disconnected`].
    pub async fn next_event(&mut self) -> Result<JobEvent, Error> {
        if self.ended {
            return Err(Error::Finished);
        }
        match self.next_delivery().await {
            Delivery::Event(e) => {
                if e.is_terminal() {
                    self.ended = true;
                }
                Ok(e)
            }
            Delivery::Failed(e) => {
                self.ended = true;
                Err(e)
            }
            other => Err(unexpected(other)),
        }
    }

    /// Follows the job to its end: data chunks and the final payload concatenated (as
    /// `gearman_client_do`); failure and exception as errors.
    pub async fn result(&mut self) -> Result<Bytes, Error> {
        let mut out = BytesMut::new();
        loop {
            match self.next_event().await? {
                JobEvent::Data(d) => out.extend_from_slice(&d),
                JobEvent::Complete(d) => {
                    if out.is_empty() {
                        return Ok(d);
                    }
                    out.extend_from_slice(&d);
                    return Ok(out.freeze());
                }
                JobEvent::Fail => return Err(Error::JobFailed),
                JobEvent::Exception(d) => return Err(Error::JobException(d)),
                JobEvent::Warning(_) | JobEvent::Status { .. } => {}
            }
        }
    }

    async fn next_delivery(&mut self) -> Delivery {
        let key = self.key;
        let state = &self.state;
        poll_fn(|cx| match lock(state).poll_slot(key, cx.waker()) {
            Some(d) => Poll::Ready(d),
            None => Poll::Pending,
        })
        .await
    }
}

impl Drop for JobHandle {
    fn drop(&mut self) {
        lock(&self.state).release(self.key);
    }
}

impl fmt::Debug for JobHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle")
            .field("handle", &String::from_utf8_lossy(&self.handle))
            .field("ended", &self.ended)
            .finish()
    }
}
