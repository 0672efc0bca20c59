//! `groupd`: the local daemon that lets processes on one host form groups without corosync.
//!
//! Every connection becomes a handle on one [`LocalBus`], so ordering and membership rules are
//! the local backend's, exactly. A member's identity is its process's pid (from the socket's
//! peer credentials), so a process that dies is reported as PROCDOWN, as corosync does. Each
//! connection has a reader thread (requests) and a writer thread (events, as the bus queues
//! them), which share a write lock so frames never interleave. A connection that sends a
//! frame which is not the protocol is closed, with its reason logged; the others go on.
//!
//! Latency: the answers to what a client sent and that client's own events go out in one
//! write, and both the daemon's reader and a client waiting in `dispatch` poll their socket
//! for up to 50 µs before sleeping. A round trip is then two hand-offs instead of two
//! wake-ups from sleep (measured here: about 50 µs down to under 20 µs); the price is at most
//! 50 µs of polling after each burst of activity.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use rustix::event::{PollFd, PollFlags};

use crate::local::{LocalBus, Popped};
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
        Ok(Groupd { listener, bus: LocalBus::new(), allowed })
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

    /// Serves connections. Failures of one connection (a client that connects and closes at
    /// once, a thread that cannot be started, descriptors running out) are logged and cost
    /// that connection only; this returns only if the listening socket itself breaks.
    pub fn run(self) -> std::io::Result<()> {
        // One descriptor held in reserve: when `accept` fails for lack of descriptors, the
        // reserve is closed so that the pending connection can be taken off the backlog and
        // closed, rather than failing again at once for ever (a busy loop).
        let mut reserve = std::fs::File::open("/dev/null").ok();
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) => {
                    match e.raw_os_error() {
                        Some(EMFILE | ENFILE) => {
                            drop(reserve.take());
                            if let Ok((refused, _)) = self.listener.accept() {
                                drop(refused);
                            }
                            reserve = std::fs::File::open("/dev/null").ok();
                            self.log(&format!("out of descriptors, refusing a connection: {e}"));
                        }
                        // The peer gave up before we took it, a signal, a transient lack of
                        // memory: this connection only.
                        Some(ECONNABORTED | EINTR | EPROTO | ENOMEM | ENOBUFS | EPERM) => {}
                        _ => return Err(e),
                    }
                    continue;
                }
            };
            let (bus, allowed) = (self.bus.clone(), self.allowed.clone());
            let spawned = std::thread::Builder::new().name("groupd-conn".into()).spawn(move || {
                if let Err(reason) = serve(stream, &bus, &allowed) {
                    log::warn!("closing a connection: {reason}");
                }
            });
            // The closure, and with it the stream, is dropped: the client sees the close.
            if let Err(e) = spawned {
                self.log(&format!("cannot start a thread for a connection, closing it: {e}"));
            }
        }
    }

    /// What an operator must hear of (a connection closed and why, descriptors running
    /// out), through the `log` facade at warning level, target `groupmsg::daemon`.
    fn log(&self, line: &str) {
        log::warn!("{line}");
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

/// A handle registered on the bus, finalized when this goes out of scope however `serve`
/// ends: an early return (the client closed before its greeting) once leaked the handle and
/// its eventfd.
struct Registration<'a> {
    bus: &'a LocalBus,
    id: u64,
    signal: Arc<OwnedFd>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        // Leaving (as PROCDOWN if still in a group) and waking the event thread so it sees the
        // handle is gone.
        self.bus.finalize(self.id);
        let _ = rustix::io::write(&*self.signal, &1u64.to_ne_bytes());
    }
}

/// One client: requests in on this thread, events out on another.
fn serve(stream: UnixStream, bus: &LocalBus, allowed: &[u32]) -> Result<(), String> {
    let cred = rustix::net::sockopt::socket_peercred(&stream).map_err(|e| e.to_string())?;
    let pid = cred.pid.as_raw_nonzero().get() as u32;
    let uid = cred.uid.as_raw();
    if !allowed.contains(&uid) {
        let writer = Mutex::new(stream);
        let _ = send(&writer, &Response::Result(Err(CsError::Access)));
        return Err(format!("refused pid {pid}: uid {uid} is not allowed"));
    }
    let (id, member, signal) = bus.register_as(Some(pid)).map_err(|e| e.to_string())?;
    let registration = Registration { bus, id, signal: signal.clone() };
    // A member removed for its backlog (it stopped reading) is disconnected: shutting the
    // socket down returns its event thread from a blocked write and its reader from read.
    let killer = stream.try_clone().map_err(|e| e.to_string())?;
    bus.on_evict(id, move || {
        let _ = killer.shutdown(std::net::Shutdown::Both);
    });
    let writer = Arc::new(Mutex::new(stream.try_clone().map_err(|e| e.to_string())?));
    send(&writer, &Response::Hello(member))?;
    let events = {
        let (bus, writer, signal) = (bus.clone(), writer.clone(), signal.clone());
        std::thread::Builder::new()
            .name("groupd-events".into())
            .spawn(move || forward_events(&bus, id, &signal, &writer))
            .map_err(|e| format!("cannot start its event thread: {e}"))?
    };
    let result = read_requests(stream, bus, id, &writer);
    drop(registration);
    let _ = events.join();
    result
}

fn read_requests(
    mut stream: UnixStream,
    bus: &LocalBus,
    id: u64,
    writer: &Mutex<UnixStream>,
) -> Result<(), String> {
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let mut answered = false;
        let mut sent = false;
        loop {
            let request = match wire::decode_request(&mut buf) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    // Answers already due still go out before the connection closes.
                    flush(bus, id, writer, &mut out);
                    return Err(format!("protocol error: {e}"));
                }
            };
            let response = match request {
                Request::Join(g, flags) => {
                    Response::Result(match crate::ModelFlags::from_bits(flags) {
                        Ok(flags) => {
                            bus.set_flags(id, flags);
                            bus.join(id, &g)
                        }
                        Err(e) => Err(e),
                    })
                }
                Request::Leave => Response::Result(bus.leave(id)),
                // Pipelined: acknowledged with the flow state, never refused for flow control.
                Request::Mcast(m) => {
                    sent = true;
                    match bus.mcast_accepted(id, m) {
                        Ok(()) => Response::Flow(bus.flow_control(id)),
                        Err(e) => Response::McastRefused(e),
                    }
                }
                Request::FlowQuery => Response::Result(if bus.flow_control(id) {
                    Err(CsError::TryAgain)
                } else {
                    Ok(())
                }),
                Request::Membership => match bus.members(id) {
                    Ok(ms) => Response::Members(ms),
                    Err(e) => Response::Result(Err(e)),
                },
                Request::Groups => Response::Groups(bus.groups()),
            };
            wire::encode_response(&mut out, &response);
            answered = true;
        }
        // The answers to everything read, then this member's events (its own multicasts come
        // back here), in one write: one wake-up for the client instead of two.
        if answered && !flush(bus, id, writer, &mut out) {
            return Err("the client stopped reading".into());
        }
        // A sender that goes on multicasting under flow control (the acknowledgements told it
        // to stop) is held back here: nothing more is read from it until flow clears, so the
        // group's backlog grows by at most what was already in flight.
        if sent && bus.flow_control(id) {
            while !bus.wait_flow(id, std::time::Duration::from_millis(200)) {
                if bus.pending(id).is_err() {
                    return Err("removed from its group".into());
                }
            }
        }
        let n = match spin_read(&stream, &mut chunk) {
            Some(n) => n,
            None => stream.read(&mut chunk).map_err(|e| e.to_string())?,
        };
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// How long a reader polls its socket before it sleeps in `read`.
pub(crate) const SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// Polls the socket without blocking for up to [`SPIN`]: a client in a request-reply loop
/// sends its next request within microseconds, and catching it here saves the wake-up from
/// sleep, which costs more than the round trip itself. `None` when nothing came (then the
/// caller sleeps), `Some(0)` at end of stream.
fn spin_read(stream: &UnixStream, chunk: &mut [u8]) -> Option<usize> {
    let start = std::time::Instant::now();
    loop {
        match rustix::net::recv(stream, &mut *chunk, rustix::net::RecvFlags::DONTWAIT) {
            Ok((n, _)) => return Some(n),
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
            Err(_) => return None,
        }
        if start.elapsed() >= SPIN {
            return None;
        }
        std::hint::spin_loop();
    }
}

fn forward_events(bus: &LocalBus, id: u64, signal: &OwnedFd, writer: &Mutex<UnixStream>) {
    loop {
        if !flush_events(bus, id, writer) {
            return;
        }
        let mut fds = [PollFd::new(signal, PollFlags::IN)];
        if rustix::event::poll(&mut fds, None).is_err() {
            return;
        }
    }
}

/// Writes every event waiting for this handle. Popping and writing both happen under the write
/// lock, so the reader thread (which flushes its own member's events right after a request,
/// saving a thread hop for self-delivery) and the event thread cannot reorder them. Returns
/// `false` once the handle or the socket is gone.
fn flush_events(bus: &LocalBus, id: u64, writer: &Mutex<UnixStream>) -> bool {
    flush(bus, id, writer, &mut BytesMut::new())
}

/// Writes `out` (answers already encoded) followed by this handle's waiting events, in one
/// write under the write lock; clears `out`.
fn flush(bus: &LocalBus, id: u64, writer: &Mutex<UnixStream>, out: &mut BytesMut) -> bool {
    let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
    let mut alive = true;
    loop {
        match bus.pop_raw(id) {
            Ok(Some(Popped::Event(e))) => wire::encode_response(out, &Response::Event(e)),
            Ok(Some(Popped::FlowCleared)) => wire::encode_response(out, &Response::FlowCleared),
            Ok(None) => break,
            Err(_) => {
                alive = false;
                break;
            }
        }
    }
    let written = out.is_empty() || w.write_all(out).is_ok();
    out.clear();
    alive && written
}

fn send(writer: &Mutex<UnixStream>, r: &Response) -> Result<(), String> {
    let mut out = BytesMut::new();
    wire::encode_response(&mut out, r);
    let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
    w.write_all(&out).map_err(|e| e.to_string())
}
