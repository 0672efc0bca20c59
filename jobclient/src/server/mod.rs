//! The embedded job server (feature `server`): gearmand's protocol for clients and workers,
//! priorities, coalescing, background jobs, requeue of a dying worker's jobs, and the admin
//! protocol with `shutdown`.
//!
//! The state machine (`core.rs`) does no I/O; this module runs it on an evcore executor with
//! one task per connection. A connection that sends bytes which are not the protocol (bad
//! magic, unknown type, oversized length, a response packet) is closed with its reason
//! logged; the others keep being served.

mod admin;
mod core;

use std::cell::RefCell;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};

use bytes::BytesMut;
use evcore::{Async, Handle};
use futures_io::{AsyncRead, AsyncWrite};

use self::core::{Action, ConnId, Core};
use crate::proto::{Decoder, Frame};

pub use admin::VERSION;

/// Where log lines go.
type Log = Box<dyn FnMut(&str)>;

struct Shared {
    core: Core,
    wakers: Vec<Option<Waker>>,
    shutdown: bool,
    accept_waker: Option<Waker>,
    log: Option<Log>,
}

impl Shared {
    fn log(&mut self, msg: &str) {
        if let Some(log) = self.log.as_mut() {
            log(msg);
        }
    }

    /// Wakes every connection that has output waiting.
    fn flush_dirty(&mut self) {
        for id in std::mem::take(&mut self.core.dirty) {
            if let Some(Some(w)) = self.wakers.get_mut(id).map(Option::take) {
                w.wake();
            }
        }
    }
}

/// A job server listening on one address.
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
    listener: Async<TcpListener>,
    handle: Handle,
    shared: Rc<RefCell<Shared>>,
}

impl Server {
    /// Binds the listening socket (loopback is the sensible default for tests and demos).
    pub fn bind(addr: SocketAddr, handle: &Handle) -> io::Result<Server> {
        let listener = Async::<TcpListener>::bind(addr, handle)?;
        let host = hostname();
        let shared = Shared {
            core: Core::new(&host),
            wakers: Vec::new(),
            shutdown: false,
            accept_waker: None,
            log: None,
        };
        Ok(Server { listener, handle: handle.clone(), shared: Rc::new(RefCell::new(shared)) })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.get_ref().local_addr()
    }

    /// Sends log lines (a closed connection and its reason) to `log`.
    pub fn log_to(&self, log: impl FnMut(&str) + 'static) {
        self.shared.borrow_mut().log = Some(Box::new(log));
    }

    /// Serves until an admin `shutdown`.
    pub async fn run(self) -> io::Result<()> {
        loop {
            let accepted = poll_fn(|cx| {
                if self.shared.borrow().shutdown {
                    return Poll::Ready(None);
                }
                self.shared.borrow_mut().accept_waker = Some(cx.waker().clone());
                match self.listener.poll_readable(cx) {
                    Poll::Ready(r) => Poll::Ready(Some(r)),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            match accepted {
                None => return Ok(()),
                Some(Err(e)) => return Err(e),
                Some(Ok(())) => {}
            }
            loop {
                match self.listener.get_ref().accept() {
                    Ok((stream, peer)) => self.start_connection(stream, peer)?,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // Out of descriptors and the like: this connection is lost, the server is not.
                    Err(e) => {
                        self.shared.borrow_mut().log(&format!("accept failed: {e}"));
                        break;
                    }
                }
            }
        }
    }

    fn start_connection(&self, stream: TcpStream, peer: SocketAddr) -> io::Result<()> {
        stream.set_nodelay(true)?;
        let sock = Async::new(stream, &self.handle)?;
        let id = {
            let mut sh = self.shared.borrow_mut();
            let id = sh.core.connect(peer.ip().to_string());
            if sh.wakers.len() <= id {
                sh.wakers.resize(id + 1, None);
            }
            id
        };
        self.handle.spawn_local(serve(sock, id, self.shared.clone())).detach();
        Ok(())
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server").field("addr", &self.local_addr().ok()).finish_non_exhaustive()
    }
}

/// One connection: reads frames into the core, writes what the core queued for it.
async fn serve(mut sock: Async<TcpStream>, id: ConnId, shared: Rc<RefCell<Shared>>) {
    let decoder = Decoder::server();
    let mut rbuf = BytesMut::with_capacity(64 * 1024);
    let mut wbuf = BytesMut::new();
    let mut closing = false;
    let reason: Option<String> = poll_fn(|cx| loop {
        // Output first, so that a reply goes out before the connection closes.
        {
            let mut sh = shared.borrow_mut();
            if let Some(conn) = sh.core.conn_mut(id) {
                let out = conn.out.split();
                wbuf.unsplit(out);
            }
            sh.wakers[id] = Some(cx.waker().clone());
        }
        while !wbuf.is_empty() {
            match Pin::new(&mut sock).poll_write(cx, &wbuf) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Some("write returned zero".into())),
                Poll::Ready(Ok(n)) => {
                    let _ = wbuf.split_to(n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Some(format!("write failed: {e}"))),
                Poll::Pending => break,
            }
        }
        if closing {
            return Poll::Ready(None);
        }
        if !wbuf.is_empty() {
            // Back-pressure: read nothing more until this peer takes its output.
            return Poll::Pending;
        }
        let len = rbuf.len();
        rbuf.resize(len + 64 * 1024, 0);
        match Pin::new(&mut sock).poll_read(cx, &mut rbuf[len..]) {
            Poll::Ready(Ok(0)) => return Poll::Ready(None),
            Poll::Ready(Ok(n)) => rbuf.truncate(len + n),
            Poll::Ready(Err(e)) => return Poll::Ready(Some(format!("read failed: {e}"))),
            Poll::Pending => {
                rbuf.truncate(len);
                return Poll::Pending;
            }
        }
        let mut sh = shared.borrow_mut();
        loop {
            let frame = match decoder.decode(&mut rbuf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    sh.flush_dirty();
                    return Poll::Ready(Some(format!("protocol error: {e}")));
                }
            };
            let action = match frame {
                Frame::Packet(p) => match sh.core.packet(id, &p) {
                    Ok(a) => a,
                    Err(e) => {
                        sh.flush_dirty();
                        return Poll::Ready(Some(format!("protocol error: {e}")));
                    }
                },
                Frame::Admin(line) => admin::line(&mut sh.core, id, &line),
            };
            match action {
                Action::Continue => {}
                Action::Shutdown => {
                    sh.shutdown = true;
                    if let Some(w) = sh.accept_waker.take() {
                        w.wake();
                    }
                    closing = true;
                }
            }
        }
        sh.flush_dirty();
    })
    .await;
    let mut sh = shared.borrow_mut();
    if let Some(reason) = reason {
        let peer = sh.core.conn_mut(id).map(|c| c.peer.clone()).unwrap_or_default();
        sh.log(&format!("closing connection {id} from {peer}: {reason}"));
    }
    sh.core.disconnect(id);
    sh.wakers[id] = None;
    sh.flush_dirty();
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
