//! `groupd`: the local daemon that lets processes on one host form groups without corosync.
//!
//! Every connection becomes a handle on one [`LocalBus`], so ordering and membership rules are
//! the local backend's, exactly. A member's identity is its process's pid (from the socket's
//! peer credentials), so a process that dies is reported as PROCDOWN, as corosync does. A
//! connection that sends a frame which is not the protocol is closed, with its reason logged;
//! the others go on.
//!
//! # One loop
//!
//! The daemon is one thread: an evcore executor with a task per connection, however many
//! connections (the first version spent two threads on each). A task reads requests while
//! its socket is readable, answers them, and moves its member's events from the bus into its
//! output buffer only while that buffer is under [`OUT_HIGH`] bytes: the rest wait in the
//! bus, where flow control counts them. So a member that stops reading holds flow control on
//! by its real backlog (not one hidden in a thread's write), and is removed once it has held
//! it for the stall limit. The bus wakes a task through its waker (no descriptor per member).
//! A task also stops taking requests while its output is over [`OUT_HIGH`] (a client that
//! sends without reading its answers is held back by its own socket), and once a sender has
//! sent more than one window of multicasts after being told flow control is on (it ignores
//! flow control; it is let go when the bus says flow cleared). A task yields to the others
//! after a few rounds of work, and the accepting task after each batch of accepts, so no
//! client can keep the one thread to itself.
//!
//! SAFE delivery: the daemon's bus keeps a SAFE message at the head of each member's inbox
//! until every member it went to has acknowledged it. A connection sends it to its client
//! once as a probe (`SafeProbe`); the client library acknowledges on receipt (`SafeAck`),
//! keeps it, and delivers it when told (`SafeDeliver`). An acknowledgement counts only from
//! a member that was sent that probe.
//!
//! Latency: the answers to what a client sent and that client's own events go out in one
//! write, and both the daemon's loop and a client waiting in `dispatch` poll for up to 50 µs
//! before sleeping. A round trip is then two hand-offs instead of two wake-ups from sleep;
//! the price is at most 50 µs of polling after each burst of activity.

use std::future::{poll_fn, Future};
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use evcore::{Async, Executor, Handle};

use crate::local::{LocalBus, Popped, Signal};
use crate::wire::{self, Request, Response};
use crate::CsError;

/// The socket path when none is given: `$GROUPMSG_SOCKET`, else `$XDG_RUNTIME_DIR/groupd.sock`,
/// else `/run/groupd.sock`.
pub fn default_socket_path() -> PathBuf {
    if let Some(p) = std::env::var_os("GROUPMSG_SOCKET") {
        return PathBuf::from(p);
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) => PathBuf::from(dir).join("groupd.sock"),
        None => PathBuf::from("/run/groupd.sock"),
    }
}

/// The daemon: a listening socket and the bus behind it.
///
/// # Access
///
/// Two checks, so that one mistake does not open the groups to every local user: the socket
/// file is created with mode 0660 ([`DEFAULT_MODE`]; [`Groupd::bind_with_mode`]), and each
/// connecting process's uid (from the socket's peer credentials) must be in the allowed list,
/// by default the daemon's own uid and root ([`Groupd::allow_uids`]). Anyone else is answered
/// [`CsError::Access`] and closed, and the refusal is logged. A member can see every group and
/// its pids, and stall senders, so membership is a privilege.
pub struct Groupd {
    listener: UnixListener,
    bus: LocalBus,
    allowed: Arc<Vec<u32>>,
}

/// The mode `groupd`'s socket file is created with: owner and group may connect.
pub const DEFAULT_MODE: u32 = 0o660;

impl std::fmt::Debug for Groupd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Groupd").field("listener", &self.listener).finish_non_exhaustive()
    }
}

impl Groupd {
    /// Listens on `path` with the socket file's mode [`DEFAULT_MODE`], replacing a stale
    /// socket left by a daemon that died.
    pub fn bind(path: &Path) -> std::io::Result<Groupd> {
        Groupd::bind_with_mode(path, DEFAULT_MODE)
    }

    /// Listens on `path`, the socket file created with `mode` (`groupd --mode`). Only a
    /// socket nobody answers on is replaced; any other file at `path` is an error, never
    /// deleted.
    pub fn bind_with_mode(path: &Path, mode: u32) -> std::io::Result<Groupd> {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("a daemon already answers on {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        // Between bind and this, the file has the umask's mode; the uid check covers that
        // moment too.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        let me = rustix::process::geteuid().as_raw();
        let allowed = Arc::new(if me == 0 { vec![0] } else { vec![me, 0] });
        let bus = LocalBus::new();
        bus.set_stability(true);
        Ok(Groupd { listener, bus, allowed })
    }

    /// The bus behind the daemon, to tune its limits (flow control, backlog, stall time).
    pub fn bus(&self) -> &LocalBus {
        &self.bus
    }

    /// The uids whose processes may connect (`groupd --allow-uid`), replacing the default of
    /// the daemon's own uid and root.
    pub fn allow_uids(&mut self, uids: impl IntoIterator<Item = u32>) {
        self.allowed = Arc::new(uids.into_iter().collect());
    }

    /// Serves connections on one thread (this one), a task each. Failures of one connection
    /// (a client that connects and closes at once, descriptors running out) are logged and
    /// cost that connection only; this returns only if the listening socket itself breaks.
    pub fn run(self) -> std::io::Result<()> {
        let ex = Executor::new()?;
        let h = ex.handle();
        // Both sides of a request-reply loop answer within microseconds: polling briefly
        // before sleeping saves the wake-up, which costs more than the round trip.
        h.set_spin(SPIN);
        let listener = Async::new(self.listener, &h)?;
        let (bus, allowed) = (self.bus, self.allowed);
        ex.block_on(async move {
            // One descriptor held in reserve: when `accept` fails for lack of descriptors, the
            // reserve is closed so that the pending connection can be taken off the backlog
            // and closed, rather than failing again at once for ever (a busy loop).
            let mut reserve = std::fs::File::open("/dev/null").ok();
            let mut accepted = 0usize;
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        match e.raw_os_error() {
                            Some(EMFILE | ENFILE) => {
                                drop(reserve.take());
                                if let Ok((refused, _)) = listener.get_ref().accept() {
                                    drop(refused);
                                }
                                reserve = std::fs::File::open("/dev/null").ok();
                                log::warn!("out of descriptors, refusing a connection: {e}");
                            }
                            // The peer gave up before we took it, a signal, a transient lack
                            // of memory: this connection only.
                            Some(ECONNABORTED | EINTR | EPROTO | ENOMEM | ENOBUFS | EPERM) => {}
                            _ => return Err(e),
                        }
                        continue;
                    }
                };
                accepted += 1;
                if accepted % ACCEPT_BUDGET == 0 {
                    // A flood of connections must not keep the loop from serving the ones it
                    // has: let the other tasks run between batches of accepts.
                    evcore::yield_now().await;
                }
                let (bus, allowed, h2) = (bus.clone(), allowed.clone(), h.clone());
                h.spawn_local(async move {
                    if let Err(reason) = serve(stream, &bus, &allowed, &h2).await {
                        log::warn!("closing a connection: {reason}");
                    }
                })
                .detach();
            }
        })
    }
}

// errno values (Linux), for the accept errors that cost one connection only.
const EINTR: i32 = 4;
const ENOMEM: i32 = 12;
const EPERM: i32 = 1;
const ENFILE: i32 = 23;
const EMFILE: i32 = 24;
const EPROTO: i32 = 71;
const ENOBUFS: i32 = 105;
const ECONNABORTED: i32 = 103;

/// The output a connection buffers before it stops taking events off the bus and stops
/// reading requests: enough for one large message and its neighbours, small enough that a
/// slow member's backlog shows in the bus, where flow control sees it.
pub const OUT_HIGH: usize = 256 << 10;

/// Bytes read from one connection per round of its task.
const READ_PER_TURN: usize = 256 << 10;

/// Rounds (write, take events, read) a connection's task does per poll before it yields to
/// the others on the loop.
const TURN_BUDGET: usize = 16;

/// How often the bus is asked, for a sender waiting on flow control, whether the member
/// holding it on has stalled for too long (then it is removed).
const STALL_CHECK: Duration = Duration::from_millis(200);

/// Connections accepted in a row before the accepting task yields.
const ACCEPT_BUDGET: usize = 32;

/// How long the loop polls before it sleeps.
pub(crate) const SPIN: Duration = Duration::from_micros(50);

/// A connection's wake-up from the bus: set by the bus (under its lock), taken by the task.
#[derive(Default)]
struct Notify {
    state: Mutex<(bool, Option<Waker>)>,
}

impl Notify {
    fn raise(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.0 = true;
        if let Some(w) = st.1.take() {
            w.wake();
        }
    }

    /// Takes a raised wake-up, or registers for the next one.
    fn poll(&self, cx: &mut Context<'_>) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if std::mem::take(&mut st.0) {
            return true;
        }
        if !st.1.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            st.1 = Some(cx.waker().clone());
        }
        false
    }
}

/// A handle registered on the bus, finalized when this goes out of scope however `serve`
/// ends (an early return once leaked the handle).
struct Registration<'a> {
    bus: &'a LocalBus,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        // Leaving, as PROCDOWN if still in a group.
        self.bus.finalize(self.id);
    }
}

/// One client, as one task.
async fn serve(
    stream: Async<UnixStream>,
    bus: &LocalBus,
    allowed: &[u32],
    h: &Handle,
) -> Result<(), String> {
    let cred =
        rustix::net::sockopt::socket_peercred(stream.get_ref()).map_err(|e| e.to_string())?;
    let pid = cred.pid.as_raw_nonzero().get() as u32;
    let uid = cred.uid.as_raw();
    let mut conn = Conn {
        stream,
        rbuf: BytesMut::new(),
        out: BytesMut::new(),
        chunk: vec![0u8; 64 * 1024],
        id: 0,
        held: false,
        safe_held: false,
        parked: None,
        after_park: None,
        since_told: None,
        stall_check: None,
        notify: Arc::new(Notify::default()),
        evicted: Arc::new(std::sync::atomic::AtomicBool::new(false)),
    };
    if !allowed.contains(&uid) {
        wire::encode_response(&mut conn.out, &Response::Result(Err(CsError::Access)));
        // Best effort: a refused client may be gone already.
        let _ = poll_fn(|cx| conn.poll_write(cx)).await;
        return Err(format!("refused pid {pid}: uid {uid} is not allowed"));
    }
    let notify = conn.notify.clone();
    let (id, member) = bus.register_with(Some(pid), Signal::Call(Arc::new(move || notify.raise())));
    let _registration = Registration { bus, id };
    conn.id = id;
    // A member removed for its backlog (it stopped reading) is disconnected.
    let (evicted, notify) = (conn.evicted.clone(), conn.notify.clone());
    bus.on_evict(id, move || {
        evicted.store(true, std::sync::atomic::Ordering::Release);
        notify.raise();
    });
    wire::encode_response(&mut conn.out, &Response::Hello(member, wire::PROTOCOL));
    poll_fn(|cx| conn.poll_turn(cx, bus, h)).await
}

struct Conn {
    stream: Async<UnixStream>,
    rbuf: BytesMut,
    out: BytesMut,
    chunk: Vec<u8>,
    id: u64,
    /// Held back for flow control: nothing is read until the bus says it cleared.
    held: bool,
    /// Its member waits at a SAFE message for others' acknowledgements.
    safe_held: bool,
    /// A join waiting for its group's SAFE messages to become stable (`LocalBus::join_queued`):
    /// tried again whenever the task wakes, and nothing more is read meanwhile (a client waits
    /// for its join's answer before it sends anything else).
    parked: Option<Request>,
    /// The first request other than an acknowledgement read while a join was parked: taken
    /// once the join is answered.
    after_park: Option<Request>,
    /// Multicasts taken since the client was told flow control is on (`None`: not told).
    since_told: Option<usize>,
    stall_check: Option<evcore::Sleep>,
    notify: Arc<Notify>,
    evicted: Arc<std::sync::atomic::AtomicBool>,
}

impl Conn {
    /// Writes what is buffered: `Ready(Ok)` once all of it is written, `Pending` when the
    /// socket is full (and its writability awaited).
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), String>> {
        while !self.out.is_empty() {
            match self.stream.get_ref().write(&self.out) {
                Ok(0) => return Poll::Ready(Err("the client closed".into())),
                Ok(n) => self.out.advance(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    match self.stream.poll_writable(cx) {
                        Poll::Ready(Ok(())) => continue,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e.to_string())),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e.to_string())),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Moves this member's events from the bus into the output, while it is under
    /// [`OUT_HIGH`]. Err once the handle is gone (removed for its backlog).
    fn take_events(&mut self, bus: &LocalBus) -> Result<bool, String> {
        let mut any = false;
        while self.out.len() < OUT_HIGH {
            match bus.pop_raw(self.id) {
                Ok(Some(Popped::Event(e))) => {
                    wire::encode_response(&mut self.out, &Response::Event(e))
                }
                Ok(Some(Popped::Deliver { group, sender, msg })) => {
                    wire::encode_deliver(&mut self.out, &group, &sender, &msg)
                }
                Ok(Some(Popped::SafeProbe { id, group, sender, msg })) => {
                    wire::encode_safe_probe(&mut self.out, id, &group, &sender, &msg)
                }
                Ok(Some(Popped::SafeDeliver(id))) => {
                    self.safe_held = false;
                    wire::encode_response(&mut self.out, &Response::SafeDeliver(id))
                }
                // Waiting for the others' acknowledgements: the stall timer watches them.
                Ok(Some(Popped::Held)) => {
                    self.safe_held = true;
                    break;
                }
                Ok(Some(Popped::FlowCleared)) => {
                    // Flow control cleared; if it is on again already, the notice is stale
                    // (asking re-arms the next one) and the hold-back count stands.
                    if !bus.flow_control(self.id) {
                        self.held = false;
                        self.since_told = None;
                        self.stall_check = None;
                        wire::encode_response(&mut self.out, &Response::FlowCleared);
                    }
                }
                Ok(None) => break,
                Err(_) => return Err("removed from its group".into()),
            }
            any = true;
        }
        Ok(any)
    }

    /// Answers the requests buffered and reads more, while the connection is neither held
    /// back nor over [`OUT_HIGH`] of output (so one read of many small requests with large
    /// answers cannot make the output grow past that by more than one answer); what is left
    /// stays buffered for the next turn. `Ok(true)` if anything was answered or read. End of
    /// stream is `Err` with no reason (`None`): the client closed, as clients do.
    fn read_requests(&mut self, bus: &LocalBus) -> Result<bool, Option<String>> {
        let mut read = 0;
        let mut progress = false;
        loop {
            while !self.held && self.out.len() < OUT_HIGH {
                let (request, retried) = match (self.parked.take(), self.after_park.take()) {
                    (Some(r), after) => {
                        self.after_park = after;
                        (r, true)
                    }
                    (None, Some(r)) => (r, true),
                    (None, None) => match wire::decode_request(&mut self.rbuf) {
                        Ok(Some(r)) => (r, false),
                        Ok(None) => break,
                        Err(e) => return Err(Some(format!("protocol error: {e}"))),
                    },
                };
                if let Request::Join(g, flags) = &request {
                    let response = join(bus, self.id, g, *flags, true);
                    if response == Response::Result(Err(CsError::TryAgain)) {
                        // It waits; the bus wakes this task when it may go in. Meanwhile the
                        // client's acknowledgements are still taken (as a member that left,
                        // it may owe some), and reading goes on, so a hang-up is seen.
                        self.parked = Some(request);
                        progress |= !retried;
                        progress |= self.take_acks_while_parked(bus)?;
                        break;
                    }
                    progress = true;
                    wire::encode_response(&mut self.out, &response);
                    continue;
                }
                progress = true;
                if let Request::SafeAck(sid) = request {
                    // Receipt of a SAFE message: no answer.
                    bus.safe_ack(self.id, sid);
                    continue;
                }
                let asks_flow = matches!(request, Request::FlowQuery);
                if let (Request::Mcast(_) | Request::McastSafe(_), Some(n)) =
                    (&request, &mut self.since_told)
                {
                    // A client may have a window of multicasts in flight when it hears that
                    // flow control is on; one that goes on past that ignores it, and is held
                    // back: nothing more is taken from it until flow clears, so the group's
                    // backlog grows by at most one window per sender.
                    *n += 1;
                    if *n > crate::daemon_client::WINDOW {
                        self.held = true;
                    }
                }
                let response = answer(bus, self.id, request);
                // Told flow control is on: by a multicast's acknowledgement, or the answer to
                // a flow query.
                if matches!(response, Response::Flow(true))
                    || (asks_flow && response == Response::Result(Err(CsError::TryAgain)))
                {
                    self.since_told.get_or_insert(0);
                }
                wire::encode_response(&mut self.out, &response);
            }
            if self.held
                || self.after_park.is_some()
                || self.out.len() >= OUT_HIGH
                || read >= READ_PER_TURN
            {
                return Ok(progress);
            }
            let n = match self.stream.get_ref().read(&mut self.chunk) {
                Ok(0) => return Err(None),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(progress),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Some(e.to_string())),
            };
            read += n;
            progress = true;
            self.rbuf.extend_from_slice(&self.chunk[..n]);
        }
    }

    /// While a join is parked: applies the acknowledgements buffered behind it; the first
    /// other request (a conforming client sends none while it waits for its join's answer)
    /// is kept for after the join, and nothing more is read until then. True if any was
    /// taken.
    fn take_acks_while_parked(&mut self, bus: &LocalBus) -> Result<bool, Option<String>> {
        let mut any = false;
        while self.after_park.is_none() {
            match wire::decode_request(&mut self.rbuf) {
                Ok(Some(Request::SafeAck(sid))) => {
                    bus.safe_ack(self.id, sid);
                    any = true;
                }
                Ok(Some(other)) => {
                    self.after_park = Some(other);
                    any = true;
                }
                Ok(None) => break,
                Err(e) => return Err(Some(format!("protocol error: {e}"))),
            }
        }
        Ok(any)
    }

    /// One turn: write, take events, read; then wait for whichever can move next.
    fn poll_turn(
        &mut self,
        cx: &mut Context<'_>,
        bus: &LocalBus,
        h: &Handle,
    ) -> Poll<Result<(), String>> {
        // Rounds of work per poll: then the task yields, so that one client that keeps its
        // socket busy cannot keep the loop's one thread from the others.
        let mut budget = TURN_BUDGET;
        loop {
            budget -= 1;
            if budget == 0 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if self.evicted.load(std::sync::atomic::Ordering::Acquire) {
                return Poll::Ready(Err("removed from its group for its backlog".into()));
            }
            let _ = self.notify.poll(cx);
            let mut progress = self.take_events(bus)?;
            let buffered = self.out.len();
            if let Poll::Ready(Err(e)) = self.poll_write(cx) {
                return Poll::Ready(Err(e));
            }
            // Room made in the output is progress: more events may move now.
            progress |= self.out.len() < buffered;
            if self.since_told.is_some() || self.safe_held {
                // A sender waiting on flow control, or a member waiting at a SAFE message:
                // ask the bus now and then whether the member holding it up has stalled for
                // too long (it is removed then), since nobody else may be asking.
                let check = self.stall_check.get_or_insert_with(|| h.sleep(STALL_CHECK));
                if Pin::new(check).poll(cx).is_ready() {
                    self.stall_check = None;
                    if self.safe_held {
                        bus.safe_stall_check(self.id);
                    }
                    if self.since_told.is_some() && !bus.flow_after_stall_check(self.id) {
                        self.held = false;
                        self.since_told = None;
                    }
                    progress = true;
                }
            }
            if !self.held && self.out.len() < OUT_HIGH {
                match self.read_requests(bus) {
                    Ok(true) => progress = true,
                    Ok(false) => {}
                    Err(None) => return Poll::Ready(Ok(())),
                    Err(Some(e)) => {
                        // Answers already due still go out, best effort.
                        let _ = self.poll_write(cx);
                        return Poll::Ready(Err(e));
                    }
                }
            }
            if progress {
                continue;
            }
            // Nothing moved: wait for the socket (readable, unless held or full; writable is
            // awaited by poll_write when output waits), the bus (through `notify`, polled
            // above) or the stall check (polled above).
            if !self.held && self.after_park.is_none() && self.out.len() < OUT_HIGH {
                match self.stream.poll_readable(cx) {
                    Poll::Ready(_) => continue,
                    Poll::Pending => {}
                }
            }
            if self.notify.poll(cx) {
                continue;
            }
            return Poll::Pending;
        }
    }
}

/// A join; `queued`: one refused for the group's SAFE messages waits (then `TryAgain` here
/// means it is parked, and its client hears nothing until it is in).
fn join(bus: &LocalBus, id: u64, g: &crate::GroupName, flags: u32, queued: bool) -> Response {
    Response::Result(match crate::ModelFlags::from_bits(flags) {
        Ok(flags) => {
            bus.set_flags(id, flags);
            if queued {
                bus.join_queued(id, g)
            } else {
                bus.join(id, g)
            }
        }
        Err(e) => Err(e),
    })
}

/// The answer to one request (joins and acknowledgements are taken before this).
fn answer(bus: &LocalBus, id: u64, request: Request) -> Response {
    match request {
        // Taken (and queued) before answering; never reaches here.
        Request::Join(g, flags) => join(bus, id, &g, flags, false),
        Request::Leave => Response::Result(bus.leave(id)),
        // Pipelined: acknowledged with the flow state, never refused for flow control.
        Request::Mcast(m) => match bus.mcast_accepted(id, m, false) {
            Ok(()) => Response::Flow(bus.flow_control(id)),
            Err(e) => Response::McastRefused(e),
        },
        Request::McastSafe(m) => match bus.mcast_accepted(id, m, true) {
            Ok(()) => Response::Flow(bus.flow_control(id)),
            Err(e) => Response::McastRefused(e),
        },
        Request::FlowQuery => Response::Result(if bus.flow_after_stall_check(id) {
            Err(CsError::TryAgain)
        } else {
            Ok(())
        }),
        Request::Membership => match bus.members(id) {
            Ok(ms) => Response::Members(ms),
            Err(e) => Response::Result(Err(e)),
        },
        Request::Groups => Response::Groups(bus.groups()),
        // Taken before answering; never reaches here.
        Request::SafeAck(sid) => {
            bus.safe_ack(id, sid);
            Response::Result(Ok(()))
        }
    }
}
