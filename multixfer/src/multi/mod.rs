//! The engine: libcurl's multi handle.

mod conn;
mod h1;
#[cfg(feature = "http2")]
mod h2;
#[cfg(not(feature = "http2"))]
#[path = "h2_off.rs"]
mod h2;
#[cfg(feature = "http2")]
mod h2io;
mod report;
mod run;
mod state;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use evcore::{Clock, Event, Loop, Reactor, Ready, Token};
use slab::Slab;

use crate::easy::Easy;
use crate::http::ResponseParser;
use crate::poller::MultiWaker;
use crate::resolve::Resolver;
use crate::target::{PoolKey, Target};
use crate::{Done, MultiError, XferId};

pub use report::{SocketPoll, Update};
use state::{Conn, Due, Host, Phase, Transfer};

/// Engine-wide limits (`curl_multi_setopt`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// Most connections to one host and port at a time; more transfers wait
    /// (`CURLMOPT_MAX_HOST_CONNECTIONS`). 0 means no limit, the default.
    pub max_host_connections: usize,
    /// Most connections in all; more transfers wait, and their waiting counts against their
    /// total timeout (`CURLMOPT_MAX_TOTAL_CONNECTIONS`). 0 means no limit, the default.
    pub max_total_connections: usize,
    /// Most idle connections kept for reuse (`CURLMOPT_MAXCONNECTS`); `None` keeps up to four
    /// times the transfers running, at least 16, as libcurl does.
    pub max_connects: Option<usize>,
    /// Idle connections older than this are closed (`CURLOPT_MAXAGE_CONN`, 118 s).
    pub idle_age: Duration,
    /// Most streams one HTTP/2 connection carries at a time
    /// (`CURLMOPT_MAX_CONCURRENT_STREAMS`, 100); never more than the server's
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`. At least 1.
    pub max_concurrent_streams: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_host_connections: 0,
            max_total_connections: 0,
            max_connects: None,
            idle_age: Duration::from_secs(118),
            max_concurrent_streams: 100,
        }
    }
}

// The callbacks are `Send` so that an engine can move to the thread that drives it, as a
// libcurl multi handle may ("Shouldn't Multi be Send?", curl-rust users asked).
type SocketCallback<S> = Box<dyn FnMut(RawFd, SocketPoll, &mut Option<S>) + Send>;
type TimerCallback = Box<dyn FnMut(Option<Duration>) + Send>;

/// What the timer was last told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TimerTold {
    /// Fired and not told since: whatever comes next is told, even "no timer".
    Consumed,
    Unset,
    Now,
    At(Instant),
}

/// Many concurrent HTTP/1.1 transfers on one thread, driven by any event loop: libcurl's
/// multi handle.
///
/// `T` is the private value each transfer carries ([`Easy::private`]); `S` is the value a
/// caller may attach to each socket ([`Multi::assign`]).
///
/// Drive it in one of two ways, as with libcurl (not both on one engine):
/// - **perform**: call [`perform`](Multi::perform) and [`poll`](Multi::poll) (or
///   [`wait`](Multi::wait)) in a loop. The engine watches its sockets with an evcore
///   [`Loop`](evcore::Loop) of its own.
/// - **socket interface**: learn which sockets to watch and when to time out from the
///   [socket](Multi::set_socket_callback) and [timer](Multi::set_timer_callback) callbacks, or
///   pull the same changes with [`drain_updates`](Multi::drain_updates); report readiness with
///   [`socket_action`](Multi::socket_action) and expiry with
///   [`socket_action_timeout`](Multi::socket_action_timeout).
///
/// ```
/// use std::io::{Read, Write};
/// use std::time::Duration;
/// use multixfer::{Easy, Multi};
///
/// // A one-connection server that answers every request with "hi".
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let url = format!("http://{}/", listener.local_addr()?);
/// std::thread::spawn(move || {
///     let (mut conn, _) = listener.accept().unwrap();
///     let mut buf = [0u8; 4096];
///     while conn.read(&mut buf).is_ok_and(|n| n > 0) {
///         let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
///     }
/// });
///
/// let mut multi = Multi::new()?;
/// multi.add(Easy::get(&url));
/// while multi.perform()? > 0 {
///     multi.poll(Some(Duration::from_secs(1)))?;
/// }
/// let (done, left) = multi.info_read().expect("one transfer finished");
/// assert_eq!(done.result.unwrap().body, b"hi");
/// assert_eq!(left, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Multi<T = (), S = ()> {
    opts: Options,
    clock: Clock,
    xfers: Slab<Transfer<T>>,
    next_gen: u32,
    conns: Slab<Conn<S>>,
    /// Connection index + 1 by descriptor number; 0 for none.
    by_fd: Vec<u32>,
    hosts: HashMap<PoolKey, Host>,
    total_open: usize,
    idle_total: usize,
    waiting_total: usize,
    seq: u64,
    connects: u64,
    deadlines: BTreeSet<(Instant, Due)>,
    runnable: VecDeque<XferId>,
    resolving: HashMap<Arc<str>, Vec<XferId>>,
    resolver: Resolver,
    done: VecDeque<Done<T>>,
    running: usize,
    scratch: Vec<u8>,
    dirty: Vec<usize>,
    /// Closed connections whose Remove is not yet told: their descriptors stay open until it is.
    graveyard: Vec<(RawFd, Arc<OwnedFd>, Option<S>)>,
    /// Descriptors whose Remove was drained; closed at the next call.
    closing: Vec<Arc<OwnedFd>>,
    /// HTTP/2 connections to poll before the call returns (a stream was added or dropped,
    /// and its frames wait to be written).
    #[cfg_attr(not(feature = "http2"), allow(dead_code))]
    h2_kick: Vec<usize>,
    signal_told: bool,
    timer_told: TimerTold,
    socket_cb: Option<SocketCallback<S>>,
    timer_cb: Option<TimerCallback>,
    updates: Vec<Update>,
    /// The engine's own reactor, watching its sockets in perform mode.
    lp: Loop,
    perform_mode: bool,
    events: Vec<Event>,
    tls: crate::tls::Configs,
    last_target: Option<(String, Target)>,
}

impl<T, S> fmt::Debug for Multi<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Multi")
            .field("running", &self.running)
            .field("connections", &self.total_open)
            .field("idle", &self.idle_total)
            .field("waiting", &self.waiting_total)
            .field("done", &self.done.len())
            .finish_non_exhaustive()
    }
}

impl Multi<(), ()> {
    /// An engine with libcurl's default limits (`curl_multi_init`).
    pub fn new() -> io::Result<Multi<(), ()>> {
        Multi::with_options(Options::default())
    }
}

impl<T, S> Multi<T, S> {
    /// An engine with the given limits.
    pub fn with_options(opts: Options) -> io::Result<Multi<T, S>> {
        Multi::with_clock(opts, Clock::system())
    }

    /// An engine that reads time from `clock`: a mock clock drives every timeout in tests.
    pub fn with_clock(opts: Options, clock: Clock) -> io::Result<Multi<T, S>> {
        Ok(Multi {
            opts,
            clock,
            xfers: Slab::new(),
            next_gen: 0,
            conns: Slab::new(),
            by_fd: Vec::new(),
            hosts: HashMap::new(),
            total_open: 0,
            idle_total: 0,
            waiting_total: 0,
            seq: 0,
            connects: 0,
            deadlines: BTreeSet::new(),
            runnable: VecDeque::new(),
            resolving: HashMap::new(),
            resolver: Resolver::new()?,
            done: VecDeque::new(),
            running: 0,
            scratch: Vec::new(),
            dirty: Vec::new(),
            graveyard: Vec::new(),
            closing: Vec::new(),
            h2_kick: Vec::new(),
            signal_told: false,
            timer_told: TimerTold::Unset,
            socket_cb: None,
            timer_cb: None,
            updates: Vec::new(),
            lp: Loop::new()?,
            perform_mode: false,
            events: Vec::new(),
            tls: crate::tls::Configs::new(),
            last_target: None,
        })
    }

    /// Adds a transfer (`curl_multi_add_handle`). It starts on the next call that drives the
    /// engine; the timer is set to fire at once to say so. A URL that cannot be parsed
    /// completes with [`XferError::BadUrl`](crate::XferError::BadUrl) through
    /// [`info_read`](Multi::info_read).
    pub fn add(&mut self, easy: Easy<T>) -> XferId {
        self.begin();
        let now = self.clock.now();
        self.next_gen = self.next_gen.wrapping_add(1);
        let gen = self.next_gen;
        // Many transfers to one URL (or a few) is common: the last parse is reused.
        let target = match &self.last_target {
            Some((url, t)) if *url == easy.url => Ok(t.clone()),
            _ => Target::parse(&easy.url).inspect(|t| {
                self.last_target = Some((easy.url.clone(), t.clone()));
            }),
        }
        .map(|t| t.with_tls(&easy.tls, easy.version));
        let head_request = easy.method.eq_ignore_ascii_case("HEAD");
        let total_deadline = easy.timeout.and_then(|t| now.checked_add(t));
        let checked = crate::easy::check_request(&easy.method, &easy.headers).and_then(|()| {
            match easy.version {
                crate::HttpVersion::Http2PriorKnowledge if !cfg!(feature = "http2") => {
                    Err("HTTP/2 needs multixfer's `http2` feature".to_string())
                }
                _ => Ok(()),
            }
        });
        let (target, error) =
            match target.and_then(|t| checked.map(|()| t).map_err(crate::XferError::BadRequest)) {
                Ok(t) => (t, None),
                // A placeholder target; the transfer completes at once with the error.
                Err(e) => (Target::parse("http://invalid./").expect("a valid URL"), Some(e)),
            };
        let idx = self.xfers.insert(Transfer {
            gen,
            easy,
            target,
            phase: Phase::Queued,
            conn: None,
            addrs: Vec::new(),
            next_addr: 0,
            parser: ResponseParser::new(head_request),
            head: None,
            redirect: None,
            body: Vec::new(),
            added: now,
            total_deadline,
            connect_deadline: None,
            attempt_deadline: None,
            deadline: None,
            speed: None,
            redirects: 0,
            downloaded: 0,
            body_bytes: 0,
            uploaded: 0,
            download_total: None,
            upload_total: None,
            head_left: 0,
            body_done: true,
            reused: false,
            retried: false,
            unprocessed: 0,
            fresh: false,
            got_bytes: false,
            waiting: false,
            stream: None,
        });
        let id = XferId { idx: idx as u32, gen };
        self.running += 1;
        match error {
            Some(e) => self.finish(id, Err(e)),
            None => {
                self.reschedule(id);
                self.runnable.push_back(id);
            }
        }
        self.report();
        id
    }

    /// Cancels a transfer that has not completed (`curl_multi_remove_handle`) and gives its
    /// private value back. Its connection is closed if a request was under way. No `Done`
    /// message is queued for it.
    pub fn remove(&mut self, id: XferId) -> Result<T, MultiError> {
        self.begin();
        if !self.valid(id) {
            return Err(MultiError::UnknownTransfer);
        }
        let xfer = self.drop_transfer(id);
        self.settle();
        self.report();
        Ok(xfer.easy.private)
    }

    /// Does whatever work is ready, without blocking (`curl_multi_perform`); returns how many
    /// transfers are still running. The first call puts the engine in perform mode: from then on
    /// it watches its sockets itself, and the socket callback and
    /// [`drain_updates`](Multi::drain_updates) report nothing.
    pub fn perform(&mut self) -> Result<usize, MultiError> {
        self.begin();
        self.ensure_poller()?;
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        self.lp.turn(Some(Duration::ZERO), &mut events)?;
        for ev in &events {
            if let Event::Io(Token(fd), ready) = *ev {
                self.on_socket(fd as RawFd, ready);
            }
        }
        self.events = events;
        self.expire();
        self.settle();
        self.report();
        Ok(self.running)
    }

    /// Waits until a socket is ready, a timeout is due, [`MultiWaker::wakeup`] is called, or
    /// `timeout` passes, whichever is first (`curl_multi_poll`); returns how many sockets are
    /// ready. It never waits past the engine's own next timeout.
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<usize, MultiError> {
        self.begin();
        self.ensure_poller()?;
        self.settle();
        self.report();
        let wait = match (timeout, self.timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        let result = self.lp.turn(wait, &mut events);
        let n = events.iter().filter(|e| matches!(e, Event::Io(..))).count();
        self.events = events;
        result?;
        Ok(n)
    }

    /// [`poll`](Multi::poll) by its older name (`curl_multi_wait`). It too returns early on a
    /// wake-up, which libcurl's `curl_multi_wait` would not.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<usize, MultiError> {
        self.poll(timeout)
    }

    /// A handle that wakes [`poll`](Multi::poll) from any thread (`curl_multi_wakeup`).
    pub fn waker(&self) -> MultiWaker {
        MultiWaker(self.lp.remote())
    }

    /// In perform mode, the engine's epoll descriptor: readable whenever
    /// [`perform`](Multi::perform) has socket work. This is how the async client embeds a
    /// perform-mode engine in another loop. Creating it puts the engine in perform mode.
    pub fn poll_fd(&mut self) -> Result<BorrowedFd<'_>, MultiError> {
        self.ensure_poller()?;
        self.report();
        Ok(self.lp.as_fd())
    }

    /// Acts on one socket's readiness (`curl_multi_socket_action(fd, ev_bitmask)`); returns
    /// how many transfers are still running. Readiness for a socket the engine no longer has
    /// is ignored, since a driver may hold events gathered before a Remove.
    pub fn socket_action(&mut self, fd: RawFd, ready: Ready) -> Result<usize, MultiError> {
        self.begin();
        self.on_socket(fd, ready);
        self.expire();
        self.settle();
        self.report();
        Ok(self.running)
    }

    /// Acts on expired timeouts and starts added transfers
    /// (`curl_multi_socket_action(CURL_SOCKET_TIMEOUT)`). The driver's timer counts as
    /// consumed: the timer is told again even if its deadline did not change.
    pub fn socket_action_timeout(&mut self) -> Result<usize, MultiError> {
        self.begin();
        self.timer_told = TimerTold::Consumed;
        self.expire();
        self.settle();
        self.report();
        Ok(self.running)
    }

    /// Acts on every socket, then on timeouts (`curl_multi_socket_all`). Each socket's real
    /// readiness is asked of the kernel (one `poll(2)` with no wait), since acting on a socket
    /// as if it were ready would take a connect in progress for a finished one.
    pub fn socket_all(&mut self) -> Result<usize, MultiError> {
        use rustix::event::{PollFd, PollFlags};
        self.begin();
        let ready: Vec<(RawFd, Ready)> = {
            let mut fds: Vec<PollFd<'_>> = self
                .conns
                .iter()
                .map(|(_, c)| PollFd::new(&c.fd, PollFlags::IN | PollFlags::OUT))
                .collect();
            let zero = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
            rustix::event::poll(&mut fds, Some(&zero)).map_err(std::io::Error::from)?;
            let raws = self.conns.iter().map(|(_, c)| c.raw);
            raws.zip(fds.iter().map(|p| p.revents()))
                .filter(|(_, r)| !r.is_empty())
                .map(|(fd, r)| {
                    let ready = Ready::new(
                        r.intersects(PollFlags::IN | PollFlags::HUP),
                        r.contains(PollFlags::OUT),
                        r.contains(PollFlags::ERR),
                        r.contains(PollFlags::HUP),
                    );
                    (fd, ready)
                })
                .collect()
        };
        for (fd, r) in ready {
            self.on_socket(fd, r);
        }
        if self.resolver.busy() {
            self.on_answers();
        }
        self.expire();
        self.settle();
        self.report();
        Ok(self.running)
    }

    /// How long until the engine wants to be called without socket activity
    /// (`curl_multi_timeout`): zero when work is ready, `None` when nothing is pending.
    pub fn timeout(&self) -> Option<Duration> {
        match self.timer_want() {
            TimerTold::Now => Some(Duration::ZERO),
            TimerTold::At(at) => Some(at.saturating_duration_since(self.clock.now())),
            TimerTold::Unset | TimerTold::Consumed => None,
        }
    }

    /// The next finished transfer and how many more are queued (`curl_multi_info_read`).
    pub fn info_read(&mut self) -> Option<(Done<T>, usize)> {
        let done = self.done.pop_front()?;
        Some((done, self.done.len()))
    }

    /// Whether [`info_read`](Multi::info_read) has messages.
    pub fn info_read_pending(&self) -> bool {
        !self.done.is_empty()
    }

    /// Transfers added and not yet finished (`running_handles`).
    pub fn running(&self) -> usize {
        self.running
    }

    /// Open connections, busy or idle.
    pub fn connections(&self) -> usize {
        self.total_open
    }

    /// Connections opened since the engine was made: with reuse, far fewer than transfers.
    pub fn connects(&self) -> u64 {
        self.connects
    }

    /// Sets the socket callback (`CURLMOPT_SOCKETFUNCTION`): called with each change of what a
    /// socket should be watched for, and with [`SocketPoll::Remove`] before the socket is
    /// closed; the `Option<S>` is the socket's value ([`assign`](Multi::assign)), which the
    /// callback may set, and which is dropped after Remove. Sockets already announced are not
    /// announced again.
    pub fn set_socket_callback(
        &mut self,
        callback: impl FnMut(RawFd, SocketPoll, &mut Option<S>) + Send + 'static,
    ) {
        self.socket_cb = Some(Box::new(callback));
    }

    /// Sets the timer callback (`CURLMOPT_TIMERFUNCTION`): one timer, told only when it
    /// changes; `Some(ZERO)` means act at once, `None` cancels it. When it fires, call
    /// [`socket_action_timeout`](Multi::socket_action_timeout).
    pub fn set_timer_callback(&mut self, callback: impl FnMut(Option<Duration>) + Send + 'static) {
        self.timer_cb = Some(Box::new(callback));
    }

    /// Attaches a value to an announced socket (`curl_multi_assign`); it is passed to the
    /// socket callback and dropped after the socket's Remove.
    pub fn assign(&mut self, fd: RawFd, value: S) -> Result<(), MultiError> {
        let ci = self.conn_of(fd).ok_or(MultiError::UnknownSocket(fd))?;
        self.conns[ci].user = Some(value);
        Ok(())
    }

    /// The socket and timer changes since the last call, for drivers that would rather pull
    /// than be called back (no `'static` closures needed). Only what has no callback set is
    /// reported here. A socket reported as [`SocketPoll::Remove`] stays open until the next
    /// call into the engine, so the driver can stop watching it first.
    pub fn drain_updates(&mut self) -> std::vec::Drain<'_, Update> {
        self.closing.clear();
        self.updates.clear();
        if !self.perform_mode {
            if self.socket_cb.is_none() {
                let mut out = std::mem::take(&mut self.updates);
                self.socket_changes(|fd, poll, _| out.push(Update::Socket { fd, poll }), true);
                self.updates = out;
            }
            if self.timer_cb.is_none() {
                if let Some(t) = self.timer_change() {
                    self.updates.push(Update::Timer(t));
                }
            }
        }
        self.updates.drain(..)
    }

    /// Starts an entry point: descriptors whose Remove was drained can now be closed.
    fn begin(&mut self) {
        if !self.closing.is_empty() {
            self.closing.clear();
        }
    }

    fn ensure_poller(&mut self) -> Result<(), MultiError> {
        if !self.perform_mode {
            self.perform_mode = true;
            // Whatever was announced to a driver before is now the engine's own loop to watch.
            for (ci, c) in self.conns.iter_mut() {
                c.told = None;
                if !c.dirty {
                    c.dirty = true;
                    self.dirty.push(ci);
                }
            }
            self.signal_told = false;
        }
        Ok(())
    }

    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn valid(&self, id: XferId) -> bool {
        self.xfers.get(id.idx as usize).is_some_and(|x| x.gen == id.gen)
    }

    fn conn_of(&self, fd: RawFd) -> Option<usize> {
        match self.by_fd.get(usize::try_from(fd).ok()?) {
            Some(&n) if n > 0 => Some(n as usize - 1),
            _ => None,
        }
    }
}

impl<T, S> Drop for Multi<T, S> {
    fn drop(&mut self) {
        // libcurl's curl_multi_cleanup: every announced socket gets its Remove before it closes.
        if let Some(mut cb) = self.socket_cb.take() {
            for (_, c) in self.conns.iter_mut() {
                if c.told.is_some() {
                    cb(c.raw, SocketPoll::Remove, &mut c.user);
                }
            }
            for (fd, _, user) in &mut self.graveyard {
                cb(*fd, SocketPoll::Remove, user);
            }
            if self.signal_told {
                use std::os::fd::AsRawFd;
                cb(self.resolver.signal().fd().as_raw_fd(), SocketPoll::Remove, &mut None);
            }
        }
    }
}
