//! The embedded job server (feature `server`): gearmand's protocol for clients and workers,
//! priorities, coalescing, background jobs, requeue of a dying worker's jobs, and the admin
//! protocol with `shutdown` and `shutdown graceful`; gearmand's scheduling flags as a
//! [`Policy`].
//!
//! The state machine (`core.rs`) does no I/O; this module runs it on an evcore executor with
//! one task per connection. A connection that sends bytes which are not the protocol (bad
//! magic, unknown type, oversized length, a response packet) is closed with its reason
//! logged; the others keep being served.
//!
//! # Limits and defaults
//!
//! Every limit below is a field of [`Limits`] (set with [`Server::limits`]; `jobd` flags in
//! brackets) or a protocol constant.
//!
//! | what | default | past it |
//! |---|---|---|
//! | connections at once (`--max-connections`) | 65,536 | accepted and closed at once, logged; the others go on |
//! | descriptors run out (EMFILE) | the process limit | a reserve descriptor is given up to take the pending connection and close it, so a level-triggered listener cannot spin |
//! | packet body | 64 MiB ([`Decoder::DEFAULT_MAX_BODY`](crate::proto::Decoder::DEFAULT_MAX_BODY)) | the connection is closed; at most 64 KiB is reserved ahead of what has arrived, whatever a header announces |
//! | admin line | 4,096 bytes ([`MAX_LINE`](crate::proto::MAX_LINE)) | the connection is closed |
//! | function / unique / handle / client ID | 512 / 64 / 64 / 255 bytes | the connection is closed |
//! | functions one connection registers | 4,096 | the connection is closed |
//! | unread output of one connection | 129 MiB | the connection is closed as if it died: its running jobs are requeued, its foreground jobs lose that waiter |
//! | output waiting with no progress at all | 60 s | the connection is closed the same way; a slow reader that makes progress is not |
//! | output queued before input is decoded further | 256 KiB | decoding that connection pauses until its output is written |
//! | submissions coalesced onto one job | 1,024 | `ERROR QUEUE_ERROR`; each accepted one still gets every `WORK_*` once, as gearmand sends it |
//! | foreground submissions one connection waits on | 100,000 | `ERROR QUEUE_ERROR` |
//! | a partial packet or line with no further byte | 30 s | the connection is closed; a connection with nothing partial (a sleeping worker) has no deadline |
//! | `shutdown`, `cancel job`, `maxqueue`, `create function`, `drop function` (`--admin-from`) | loopback only | `ERR PERMISSION_DENIED`; read-only commands are open to all |
//! | `SUBMIT_JOB_EPOCH` | at most 100 years ahead | `ERROR INVALID_EPOCH` (gearmand 1.1.20 drops the packet without a reply, and sometimes the connection) |
//! | `CAN_DO_TIMEOUT` | 1 ms to 100 years | 0 or more is no timeout |
//!
//! An idle connection keeps no read or write buffer: both are given back once empty, so it
//! costs its state and its task only.
//!
//! # Threads
//!
//! `jobd -t N` ([`Server::io_threads`]) serves on N event loops: the server's own, which
//! accepts, runs the timers and writes the durable queue, and N - 1 more on threads of their
//! own ([`evcore::Engine`]s). Accepted connections are handed to the loops in turn (even
//! spread, unlike `SO_REUSEPORT`'s hash; one listener to close on a graceful shutdown). Each
//! loop reads, decodes, encodes and writes its own connections: the syscalls, which are most
//! of a job's cost. The job state (the core) is one, behind one lock that a connection takes
//! for the few microseconds of handing it a batch of packets and taking its output; a
//! connection whose output the core grew is woken on its own loop. Why one state and not
//! shards: priorities are global across functions and coalescing spans connections, so a
//! job's fate depends on state that any connection can touch; sharding by function would
//! break "any high job before any normal one" for a worker of several functions, and a
//! channel to a core thread would add two thread hops to every packet. The core and its
//! model test are the same for one loop and for many; `tests/multiloop.rs` checks the real
//! server over four loops against the same invariants. One cost of the single state: the
//! durable queue's write and `fdatasync` happen under the lock, so with `-q` every loop
//! waits out each sync (group commit keeps that to one per batch). Writing outside the lock
//! needs the records' order in the file kept across loops; not done yet. Across connections, the order in
//! which packets are served follows the loops' timing, as in gearmand with several threads:
//! a client that needs an order waits for its answer (`JOB_CREATED`).
//!
//! # Timers
//!
//! Job slots and connection ids are reused, so a timer (an epoch job's time, a
//! `CAN_DO_TIMEOUT` deadline) names its job by slot *and* by a serial that is never reused:
//! the job's own, or the assignment's. Each job holds the key of its one live timer, which goes
//! when the job is assigned, requeued, finished or cancelled. A stale timer can therefore never
//! requeue or queue a later job in the same slot.

pub(crate) mod admin;
mod connection;
mod core;
mod durable;
pub(crate) mod fuzz;
mod http;
mod journal;
mod limits;
mod metrics;
mod policy;
mod stats;

use std::fmt;
use std::future::poll_fn;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use evcore::{Async, Handle};

use self::core::Core;

pub use admin::VERSION;
pub use durable::QueueSync;
pub use limits::Limits;
pub use policy::Policy;

pub(crate) struct Shared {
    core: Core,
    wakers: Vec<Option<Waker>>,
    shutdown: bool,
    /// `run` has returned: connection tasks that end from now on leave the core as it is.
    stopped: bool,
    /// The deadline of a graceful shutdown under way (the core is draining).
    drain_deadline: Option<std::time::Instant>,
    /// How long a graceful shutdown waits for running jobs.
    shutdown_timeout: std::time::Duration,
    /// `run`, waiting for running jobs and their replies during a graceful shutdown.
    drain_waker: Option<Waker>,
    accept_waker: Option<Waker>,
    timer_waker: Option<Waker>,
    /// The durable queue's file, appended to after each batch of packets.
    journal_file: Option<std::fs::File>,
    /// Held for the server's life: the exclusive lock on the durable queue.
    journal_lock: Option<std::fs::File>,
    /// The length of the durable queue's file after the last whole write.
    journal_len: u64,
    /// Where the durable queue lives, for online compaction.
    journal_path: Option<std::path::PathBuf>,
    /// The file length below which no compaction is tried again (after one failed).
    compact_at: u64,
    queue_sync: QueueSync,
    /// A descriptor held in reserve, given up to refuse a connection when none are left.
    reserve_fd: Option<std::fs::File>,
    /// Bytes through the connections, counted without this lock.
    io: Arc<stats::IoCounters>,
}

impl Shared {
    /// What an operator must hear of (a refused or closed connection and why, the durable
    /// queue's troubles), through the `log` facade at warning level, target
    /// `jobclient::server`.
    fn log(&mut self, msg: &str) {
        log::warn!("{msg}");
    }

    /// Begins a graceful shutdown: nothing more is accepted or handed out, running jobs may
    /// finish for up to the shutdown timeout. A second request changes nothing.
    pub(crate) fn drain(&mut self) {
        if self.shutdown || self.drain_deadline.is_some() {
            return;
        }
        self.core.draining = true;
        self.drain_deadline = Some(far_or(self.shutdown_timeout));
        log::info!(
            "graceful shutdown: {} jobs running, waiting up to {:?} for them",
            self.core.running_jobs(),
            self.shutdown_timeout
        );
        self.wake_stoppers();
    }

    /// Stops at once (admin `shutdown`, a second signal): running jobs are not waited for.
    pub(crate) fn stop_now(&mut self) {
        self.shutdown = true;
        self.wake_stoppers();
    }

    fn wake_stoppers(&mut self) {
        for w in [self.accept_waker.take(), self.drain_waker.take(), self.timer_waker.take()]
            .into_iter()
            .flatten()
        {
            w.wake();
        }
    }

    /// Wakes every connection that has output waiting, and the timer task when the core may
    /// have a new earliest deadline. The journal is written first, so that a client hears
    /// JOB_CREATED only for a background job already in the file.
    fn flush_dirty(&mut self) {
        self.sync_journal();
        if let Some(w) = self.timer_waker.take() {
            w.wake();
        }
        for id in std::mem::take(&mut self.core.dirty) {
            if let Some(Some(w)) = self.wakers.get_mut(id).map(Option::take) {
                w.wake();
            }
        }
        if self.core.draining {
            if let Some(w) = self.drain_waker.take() {
                w.wake();
            }
        }
    }
}

/// How long a graceful shutdown waits for running jobs by default (`jobd --shutdown-timeout`).
pub const DEFAULT_SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Now plus a configured deadline; a deadline too long to represent is a year away, which
/// is never in practice (a configured `Duration::MAX` must not panic).
pub(crate) fn far_or(limit: std::time::Duration) -> std::time::Instant {
    let now = std::time::Instant::now();
    now.checked_add(limit).unwrap_or_else(|| now + std::time::Duration::from_secs(365 * 24 * 3600))
}

/// The server's state, shared by the connection tasks of every event loop (`jobd -t N`):
/// each locks it for the few microseconds of handing its packets to the core and taking its
/// output, and does its reading, writing and waiting outside it.
pub(crate) struct Locked(Mutex<Shared>);

impl Locked {
    /// The state, for a short while. Named as `RefCell`'s was: the single-loop server held
    /// it in one, and no path takes it twice. A panic while it is held (a bug) leaves it
    /// usable; the core itself aborts on one.
    pub(crate) fn borrow_mut(&self) -> MutexGuard<'_, Shared> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The same, for reading.
    pub(crate) fn borrow(&self) -> MutexGuard<'_, Shared> {
        self.borrow_mut()
    }
}

/// A job server listening on one address or more ([`listen`](Server::listen)), each in
/// plaintext or TLS-only (feature `rustls`).
///
/// ```no_run
/// use evcore::Executor;
/// use jobclient::Server;
///
/// let ex = Executor::new()?;
/// let h = ex.handle();
/// let server = Server::bind("127.0.0.1:4730".parse().unwrap(), &h)?;
/// ex.block_on(server.run())?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Server {
    /// Where it listens: the address it was bound to first, then any added, each plain or
    /// TLS (`jobd --ssl-port` beside `-p`, so that a fleet can move over).
    listeners: Vec<Listener>,
    handle: Handle,
    shared: Arc<Locked>,
    /// The other event loops (`jobd -t N`), each on a thread of its own: accepted
    /// connections are handed out in turn to this loop and to them.
    loops: Vec<evcore::Engine>,
    next_loop: std::cell::Cell<usize>,
    /// How long the other loops poll before they sleep.
    spin: std::time::Duration,
    /// `jobd --http`: metrics, JSON and the status page.
    http: Option<Async<TcpListener>>,
    /// Host names the HTTP side answers besides addresses and `localhost`.
    http_hosts: Vec<String>,
}

/// One listening socket, and the TLS its connections speak (none: plaintext).
struct Listener {
    sock: Async<TcpListener>,
    tls: Option<crate::tls::Acceptor>,
}

impl Server {
    /// Binds the listening socket (loopback is the sensible default for tests and demos).
    pub fn bind(addr: SocketAddr, handle: &Handle) -> io::Result<Server> {
        Server::bind_with(addr, None, handle)
    }

    /// Binds a listening socket whose connections speak TLS only (`jobd --ssl`): a client
    /// that does not is refused, never served in plaintext.
    #[cfg(feature = "rustls")]
    pub fn bind_tls(
        addr: SocketAddr,
        tls: crate::ServerTls,
        handle: &Handle,
    ) -> io::Result<Server> {
        Server::bind_with(addr, Some(tls), handle)
    }

    /// Listens on another address too, in plaintext; returns the address bound.
    pub fn listen(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        self.listen_with(addr, None)
    }

    /// Listens on another address too, TLS only (`jobd --ssl-port`, beside a plain `-p`);
    /// returns the address bound.
    #[cfg(feature = "rustls")]
    pub fn listen_tls(
        &mut self,
        addr: SocketAddr,
        tls: crate::ServerTls,
    ) -> io::Result<SocketAddr> {
        self.listen_with(addr, Some(tls))
    }

    fn listen_with(
        &mut self,
        addr: SocketAddr,
        tls: Option<crate::tls::Acceptor>,
    ) -> io::Result<SocketAddr> {
        let sock = Async::<TcpListener>::bind(addr, &self.handle)?;
        let bound = sock.get_ref().local_addr()?;
        self.listeners.push(Listener { sock, tls });
        Ok(bound)
    }

    fn bind_with(
        addr: SocketAddr,
        tls: Option<crate::tls::Acceptor>,
        handle: &Handle,
    ) -> io::Result<Server> {
        let sock = Async::<TcpListener>::bind(addr, handle)?;
        let host = hostname();
        let shared = Shared {
            core: Core::new(&host),
            wakers: Vec::new(),
            shutdown: false,
            stopped: false,
            drain_deadline: None,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            drain_waker: None,
            accept_waker: None,
            timer_waker: None,
            journal_file: None,
            journal_lock: None,
            journal_len: 0,
            journal_path: None,
            compact_at: 0,
            queue_sync: QueueSync::Batch,
            reserve_fd: std::fs::File::open("/dev/null").ok(),
            io: Arc::default(),
        };
        Ok(Server {
            listeners: vec![Listener { sock, tls }],
            handle: handle.clone(),
            shared: Arc::new(Locked(Mutex::new(shared))),
            loops: Vec::new(),
            next_loop: std::cell::Cell::new(0),
            spin: std::time::Duration::ZERO,
            http: None,
            http_hosts: Vec::new(),
        })
    }

    /// Sets the limits (connections, buffered output, coalescing, deadlines, the admin
    /// policy); see [`Limits`]. Takes effect for connections accepted from now on.
    pub fn limits(&self, limits: Limits) {
        self.shared.borrow_mut().core.limits = limits;
    }

    /// Serves on `n` event loops in all (`jobd -t N`): this one, which accepts, keeps the
    /// timers and the durable queue, and `n - 1` more on threads of their own. Accepted
    /// connections go to the loops in turn; each loop reads, decodes, encodes and writes its
    /// own connections, and all of them share one job state behind a lock (see the module
    /// docs, "Threads"). Call before [`run`](Server::run); 0 and 1 are the one loop.
    pub fn io_threads(&mut self, n: usize) -> io::Result<()> {
        while self.loops.len() + 1 < n {
            let spin = self.spin;
            self.loops.push(evcore::Engine::start_with(move || {
                let mut lp = evcore::Loop::new()?;
                lp.set_spin(spin);
                Ok(lp)
            })?);
        }
        Ok(())
    }

    /// How long the loops that [`io_threads`](Server::io_threads) starts from now on poll
    /// before they sleep (`jobd --busy-poll`); see [`evcore::Loop::set_spin`]. The loop the
    /// server was bound on is the caller's: set it there. Default 0.
    pub fn busy_poll(&mut self, spin: std::time::Duration) {
        self.spin = spin;
    }

    /// Sets how jobs are handed out and dead peers found (`-j`, `-w`, `-R`, `--keepalive*`);
    /// see [`Policy`]. Takes effect at once (keepalive: for connections accepted from now on).
    pub fn policy(&self, policy: Policy) {
        self.shared.borrow_mut().core.policy = policy;
    }

    /// How long a graceful shutdown waits for running jobs (`jobd --shutdown-timeout`);
    /// default [`DEFAULT_SHUTDOWN_TIMEOUT`], 30 s.
    pub fn shutdown_timeout(&self, timeout: std::time::Duration) {
        self.shared.borrow_mut().shutdown_timeout = timeout;
    }

    /// A handle that stops this server from another task of its executor: what `jobd` calls
    /// on SIGTERM, SIGINT and SIGUSR1.
    pub fn stopper(&self) -> ServerStopper {
        ServerStopper { shared: Arc::downgrade(&self.shared) }
    }

    /// Serves `/metrics` (Prometheus text), `/status.json` and a live status page at `/` on
    /// `addr`, on this server's loop (`jobd --http`; off by default). Returns the address
    /// bound. See the crate docs, "Observability".
    pub fn http(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let listener = http::bind(addr, &self.handle)?;
        let bound = listener.get_ref().local_addr()?;
        self.http = Some(listener);
        Ok(bound)
    }

    /// Host names the HTTP side answers (`jobd --http-host`), besides IP addresses and
    /// `localhost`: a request naming any other host is refused (`403`), so that a page
    /// elsewhere cannot read the status through a browser by pointing its own name at this
    /// address (DNS rebinding). Call before [`run`](Server::run).
    ///
    /// Names are compared without case and a trailing dot; give them as the browser or
    /// scraper sends them (a Prometheus that scrapes by name needs its name here). An empty
    /// name is ignored.
    pub fn http_hosts(&mut self, hosts: impl IntoIterator<Item = impl Into<String>>) {
        self.http_hosts = hosts
            .into_iter()
            .map(|h| h.into().trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
    }

    /// Where it listens (the first address, the one it was bound to).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listeners[0].sock.get_ref().local_addr()
    }

    /// Every address it listens on, in the order bound.
    pub fn local_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        self.listeners.iter().map(|l| l.sock.get_ref().local_addr()).collect()
    }

    /// Serves until an admin `shutdown` (or [`ServerStopper::now`]), or until a graceful
    /// shutdown (admin `shutdown graceful`, [`ServerStopper::graceful`]) is done.
    ///
    /// A graceful shutdown closes the listener (new connections are refused), answers new
    /// submissions `ERROR SHUTTING_DOWN`, hands no job to any worker, and waits until no job
    /// is running and every reply has been written, or until the shutdown timeout. Queued
    /// jobs are not run: background jobs stay in the durable queue for the next start; the
    /// clients of foreground jobs see their connection close, as when gearmand stops. A job
    /// still running at the deadline stays in the durable queue too (if background).
    pub async fn run(mut self) -> io::Result<()> {
        let timers = self.handle.spawn_local(timer_task(self.shared.clone(), self.handle.clone()));
        let http = self.http.take().map(|l| {
            let hosts = Arc::new(std::mem::take(&mut self.http_hosts));
            self.handle.spawn_local(http::serve(l, self.shared.clone(), hosts, self.handle.clone()))
        });
        let result = self.accept_loop().await;
        let Server { listeners, handle, shared, loops, .. } = self;
        drop(listeners);
        if result.is_ok() {
            drain(&shared, &handle).await;
        }
        drop(timers);
        drop(http);
        shared.borrow_mut().stopped = true;
        // The other loops stop, and their threads are joined, as their engines drop.
        drop(loops);
        result
    }

    async fn accept_loop(&self) -> io::Result<()> {
        loop {
            // Every listener that is readable now (one registration each, level-triggered).
            let ready = poll_fn(|cx| {
                let sh = self.shared.borrow();
                if sh.shutdown || sh.drain_deadline.is_some() {
                    return Poll::Ready(None);
                }
                drop(sh);
                self.shared.borrow_mut().accept_waker = Some(cx.waker().clone());
                let mut ready = Vec::new();
                for (i, l) in self.listeners.iter().enumerate() {
                    match l.sock.poll_readable(cx) {
                        Poll::Ready(Ok(())) => ready.push(i),
                        Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                        Poll::Pending => {}
                    }
                }
                if ready.is_empty() {
                    Poll::Pending
                } else {
                    Poll::Ready(Some(Ok(ready)))
                }
            })
            .await;
            let ready = match ready {
                None => return Ok(()),
                Some(Err(e)) => return Err(e),
                Some(Ok(ready)) => ready,
            };
            let mut backoff = false;
            for i in ready {
                backoff |= self.accept_from(&self.listeners[i]);
            }
            if backoff {
                self.handle.sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }

    /// Takes every connection waiting on `listener`; true when the loop should pause before
    /// polling again (an error that would repeat).
    fn accept_from(&self, listener: &Listener) -> bool {
        loop {
            match listener.sock.get_ref().accept() {
                Ok((stream, peer)) => {
                    if let Err(e) = self.start_connection(stream, peer, listener.tls.clone()) {
                        self.shared.borrow_mut().log(&format!("connection from {peer}: {e}"));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if matches!(e.raw_os_error(), Some(23 | 24)) => {
                    // ENFILE, EMFILE: out of descriptors. The pending connection would stay
                    // in the backlog and the level-triggered listener readable, so the loop
                    // would spin: give up the reserve descriptor, take the connection off
                    // the backlog and close it, and take the reserve again.
                    let mut sh = self.shared.borrow_mut();
                    let had_reserve = sh.reserve_fd.take().is_some();
                    let backoff = match listener.sock.get_ref().accept() {
                        Ok((refused, peer)) => {
                            drop(refused);
                            sh.log(&format!("out of descriptors, refused {peer}: {e}"));
                            false
                        }
                        // No reserve to give up (it could not be taken again): wait a
                        // little before the listener is polled again, rather than spin.
                        Err(_) => !had_reserve,
                    };
                    sh.reserve_fd = std::fs::File::open("/dev/null").ok();
                    return backoff;
                }
                // A peer that gave up before we took it, a transient lack of memory: this
                // connection is lost, the server is not. A pause before the next poll keeps
                // an error that repeats from spinning the loop.
                Err(e) => {
                    self.shared.borrow_mut().log(&format!("accept failed: {e}"));
                    return !matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
                    );
                }
            }
        }
    }

    fn start_connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        tls: Option<crate::tls::Acceptor>,
    ) -> io::Result<()> {
        {
            let mut sh = self.shared.borrow_mut();
            if sh.core.connections() >= sh.core.limits.max_connections {
                let max = sh.core.limits.max_connections;
                sh.log(&format!("refusing a connection from {peer}: {max} connections already"));
                return Ok(());
            }
        }
        stream.set_nodelay(true)?;
        self.shared.borrow().core.policy.apply_keepalive(&stream)?;
        let admin_by_cert;
        let id = {
            let mut sh = self.shared.borrow_mut();
            // With certificates listed, an allowed address is not enough: the connection may
            // change the server once its TLS handshake showed one of them (see `serve`).
            let by_address = sh.core.limits.admin_allowed(peer.ip());
            let needs_cert = !sh.core.limits.admin_certs.is_empty();
            admin_by_cert = by_address && needs_cert;
            let id = sh.core.connect_with(peer.ip().to_string(), by_address && !needs_cert);
            if let Some(c) = sh.core.conn_mut(id) {
                c.fd = Some(std::os::fd::AsRawFd::as_raw_fd(&stream));
            }
            if sh.wakers.len() <= id {
                sh.wakers.resize(id + 1, None);
            }
            id
        };
        let reg = connection::Registered { shared: self.shared.clone(), id, admin_by_cert };
        let turn = self.next_loop.get();
        self.next_loop.set((turn + 1) % (self.loops.len() + 1));
        if turn == 0 {
            // A socket that cannot be registered drops `reg`: the core forgets it.
            let sock = crate::tls::accept(Async::new(stream, &self.handle)?, tls.as_ref())?;
            self.handle.spawn_local(connection::serve(sock, reg, self.handle.clone())).detach();
            return Ok(());
        }
        // To another loop: the socket is registered there, by its own thread. If that loop
        // is gone, the closure drops unrun, and `reg` with it.
        let spawned = self.loops[turn - 1].spawner().spawn(move |h: &Handle| {
            let h = h.clone();
            async move {
                match Async::new(stream, &h).and_then(|s| crate::tls::accept(s, tls.as_ref())) {
                    Ok(sock) => connection::serve(sock, reg, h).await,
                    Err(e) => {
                        reg.shared.borrow_mut().log(&format!("connection from {peer}: {e}"));
                    }
                }
            }
        });
        drop(spawned);
        Ok(())
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server").field("addr", &self.local_addr().ok()).finish_non_exhaustive()
    }
}

/// Stops a [`Server`] from another task on its executor (not `Send`: a signal task on the same
/// loop holds it). Does nothing once the server is gone.
#[derive(Clone, Debug)]
pub struct ServerStopper {
    shared: std::sync::Weak<Locked>,
}

impl ServerStopper {
    /// Begins a graceful shutdown, as admin `shutdown graceful`; see [`Server::run`].
    pub fn graceful(&self) {
        if let Some(sh) = self.shared.upgrade() {
            sh.borrow_mut().drain();
        }
    }

    /// Stops at once, as admin `shutdown`: running jobs are not waited for.
    pub fn now(&self) {
        if let Some(sh) = self.shared.upgrade() {
            sh.borrow_mut().stop_now();
        }
    }
}

/// The rest of a graceful shutdown, once the listener is closed: waits until no job runs and
/// every connection's output is written, or the deadline passes, or a stop comes.
async fn drain(shared: &Arc<Locked>, handle: &Handle) {
    let Some(deadline) = shared.borrow().drain_deadline else { return };
    let mut timeout = handle.sleep_until(deadline);
    poll_fn(|cx| {
        let mut sh = shared.borrow_mut();
        if sh.shutdown {
            return Poll::Ready(());
        }
        if sh.core.running_jobs() == 0 && sh.core.output_pending() == 0 {
            log::info!("graceful shutdown: done");
            return Poll::Ready(());
        }
        if Pin::new(&mut timeout).poll(cx).is_ready() {
            log::warn!(
                "graceful shutdown: {} jobs still running after {:?}; stopping",
                sh.core.running_jobs(),
                sh.shutdown_timeout
            );
            return Poll::Ready(());
        }
        sh.drain_waker = Some(cx.waker().clone());
        Poll::Pending
    })
    .await;
}

/// Sleeps until the core's next deadline (or until a packet may have set an earlier one),
/// then lets the core act on what is due.
async fn timer_task(shared: Arc<Locked>, handle: Handle) {
    let mut sleep: Option<(std::time::Instant, evcore::Sleep)> = None;
    loop {
        poll_fn(|cx| {
            // The waker is registered and the deadline read under one lock: a packet on
            // another loop that arms an earlier timer either comes before (and the deadline
            // read here has it) or after (and its `flush_dirty` finds this waker).
            let next = {
                let mut sh = shared.borrow_mut();
                sh.timer_waker = Some(cx.waker().clone());
                sh.core.next_deadline()
            };
            match next {
                None => sleep = None,
                Some(at) => match sleep.as_mut() {
                    Some((armed, s)) if *armed != at => {
                        s.reset(at);
                        *armed = at;
                    }
                    Some(_) => {}
                    None => sleep = Some((at, handle.sleep_until(at))),
                },
            }
            match sleep.as_mut() {
                Some((_, s)) => Pin::new(s).poll(cx),
                None => Poll::Pending,
            }
        })
        .await;
        sleep = None;
        let mut sh = shared.borrow_mut();
        sh.core.expire(std::time::Instant::now());
        sh.flush_dirty();
        if sh.shutdown {
            return;
        }
        drop(sh);
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
