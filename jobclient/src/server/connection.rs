//! One connection's task: reads frames into the core, writes what the core queued for it,
//! with the limits and deadlines of the server's "Limits and defaults".

use std::future::poll_fn;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::BytesMut;
use evcore::Handle;
use futures_io::{AsyncRead, AsyncWrite};

use super::core::{Action, ConnId, Now};
use super::{admin, far_or, Locked, QueueSync};
use crate::proto::{Decoder, Frame};
use crate::tls::Stream;

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 64 * 1024;
/// A buffer of a connection with nothing in it keeps at most this much capacity; more is given
/// back, so that an idle connection costs what gearmand's does rather than 64 KiB or more.
const IDLE_CAPACITY: usize = 4 * 1024;

thread_local! {
    /// Each loop's read buffer: a connection reads into it and keeps only what came, so
    /// that no connection holds (or zeroes, per read) 64 KiB of its own.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_CHUNK]);
}

/// One read from `sock`, appended to `rbuf`.
fn read_into(
    sock: &mut Stream,
    cx: &mut std::task::Context<'_>,
    rbuf: &mut BytesMut,
) -> Poll<std::io::Result<usize>> {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let got = Pin::new(&mut *sock).poll_read(cx, &mut scratch[..]);
        if let Poll::Ready(Ok(n)) = got {
            rbuf.extend_from_slice(&scratch[..n]);
        }
        got
    })
}

/// Where a stalled peer stopped, for the log.
fn stalled_in(sock: &Stream) -> &'static str {
    if sock.handshaking() {
        "in its TLS handshake"
    } else {
        "in the middle of a packet"
    }
}

/// Gives a buffer's memory back when it is empty and large.
fn shrink_if_idle(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > IDLE_CAPACITY {
        *buf = BytesMut::new();
    }
}

/// One connection: reads frames into the core, writes what the core queued for it.
///
/// Input is decoded only while this connection's output is below
/// [`Limits::pause_output`]; the rest waits in the read buffer until the output is written.
/// A partial packet or line that gets no further byte for [`Limits::read_deadline`] closes
/// the connection; so does output past [`Limits::max_output`] (the core dooms it).
pub(super) async fn serve(mut sock: Stream, reg: Registered, h: Handle) {
    let (id, shared) = (reg.id, reg.shared.clone());
    let decoder = Decoder::server();
    let (pause_output, read_deadline, write_deadline, io) = {
        let sh = shared.borrow();
        let l = &sh.core.limits;
        (l.pause_output, l.read_deadline, l.write_deadline, sh.io.clone())
    };
    // Set while output waits for a peer that takes none of it.
    let mut write_stall: Option<evcore::Sleep> = None;
    let mut rbuf = BytesMut::new();
    let mut wbuf = BytesMut::new();
    let mut closing = false;
    // Why the connection is closing, once decided: its output (answers already committed,
    // such as a JOB_CREATED for a job now on disk) still goes out first, so that a client
    // that broke the protocol later in the same read does not resubmit a job it has.
    let mut close_reason: Option<String> = None;
    // Set while `rbuf` holds a partial frame, or a TLS handshake is under way: when it
    // passes, the peer has stalled.
    let mut stall: Option<evcore::Sleep> =
        sock.handshaking().then(|| h.sleep_until(far_or(read_deadline)));
    // The last read came back short, so the socket had nothing more then.
    let mut drained = false;
    let mut cert_pending = reg.admin_by_cert;
    let reason: Option<String> = poll_fn(|cx| loop {
        if cert_pending && !sock.handshaking() {
            // The handshake is done, so the certificate (if any) passed the client CA.
            cert_pending = false;
            let mut sh = shared.borrow_mut();
            let listed = sock
                .peer_certificate()
                .is_some_and(|c| sh.core.limits.admin_certs.iter().any(|l| l[..] == *c));
            if let Some(conn) = sh.core.conn_mut(id) {
                conn.admin = listed;
            }
        }
        // Output first, so that a reply goes out before the connection closes.
        {
            let mut sh = shared.borrow_mut();
            match sh.core.conn_mut(id) {
                Some(conn) if conn.doomed => {
                    return Poll::Ready(Some("its unread output passed the limit".into()));
                }
                // Output moves to the write buffer only once that is empty: what the peer has
                // not taken stays in the core's buffer, where the output limit counts it.
                // (Moving it on every wake-up hid a never-reading peer's backlog from the
                // limit, in a buffer that grew without bound.)
                Some(conn) if wbuf.is_empty() => {
                    let out = conn.out.split();
                    wbuf.unsplit(out);
                    // Counted where it waits now, in the same critical section: a graceful
                    // shutdown on another loop must never see it in neither place.
                    conn.unsent = wbuf.len();
                }
                Some(_) => {}
                None => {}
            }
            sh.wakers[id] = Some(cx.waker().clone());
        }
        let unsent = wbuf.len();
        while !wbuf.is_empty() {
            match Pin::new(&mut sock).poll_write(cx, &wbuf) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Some("write returned zero".into())),
                Poll::Ready(Ok(n)) => {
                    io.wrote(n);
                    let _ = wbuf.split_to(n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Some(format!("write failed: {e}"))),
                Poll::Pending => break,
            }
        }
        // Under TLS, the records of what was written may still wait in the session for the
        // socket: they count as output not yet taken (a close or a graceful shutdown waits
        // for them too).
        let mut flush_pending = false;
        if wbuf.is_empty() {
            match Pin::new(&mut sock).poll_flush(cx) {
                Poll::Ready(Err(e)) => return Poll::Ready(Some(format!("write failed: {e}"))),
                Poll::Ready(Ok(())) => {}
                Poll::Pending => flush_pending = true,
            }
        }
        let out_pending = !wbuf.is_empty() || flush_pending;
        shrink_if_idle(&mut wbuf);
        // What the peer has not taken counts against its output limit, wherever it waits.
        {
            let mut sh = shared.borrow_mut();
            if let Some(conn) = sh.core.conn_mut(id) {
                conn.unsent = wbuf.len() + usize::from(flush_pending);
            }
            // A graceful shutdown waits for the last replies to be written.
            if !out_pending && sh.core.draining {
                if let Some(w) = sh.drain_waker.take() {
                    w.wake();
                }
            }
        }
        if !out_pending {
            write_stall = None;
        } else {
            // A peer that takes some of its output is slow, not stalled: the deadline starts
            // again with each write that makes progress.
            let deadline = far_or(write_deadline);
            match write_stall.as_mut() {
                Some(s) if wbuf.len() < unsent => s.reset(deadline),
                Some(_) => {}
                None => write_stall = Some(h.sleep_until(deadline)),
            }
            if let Some(s) = write_stall.as_mut() {
                if Pin::new(s).poll(cx).is_ready() {
                    return Poll::Ready(Some(format!(
                        "took none of its output for {write_deadline:?}"
                    )));
                }
            }
        }
        if closing && !out_pending {
            return Poll::Ready(close_reason.take());
        }
        if out_pending || closing {
            // Back-pressure: read nothing more until this peer takes its output.
            return Poll::Pending;
        }
        // Decode what is already buffered before reading more: decoding may have paused for
        // output on the last round.
        let mut sh = shared.borrow_mut();
        let mut paused = false;
        loop {
            if sh.core.conn_mut(id).is_some_and(|c| c.out.len() >= pause_output) {
                paused = true;
                break;
            }
            // Defence in depth (the fuzzers and the model test keep panics out): a panic in
            // this connection's decoding touches nothing shared, so it closes this connection
            // only; one inside the core may have left the job state half-changed, so it stops
            // the process with a clear message rather than serve on corrupt state.
            let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                decoder.decode(&mut rbuf)
            }));
            let frame = match decoded {
                Ok(Ok(Some(f))) => f,
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    close_reason = Some(format!("protocol error: {e}"));
                    closing = true;
                    break;
                }
                Err(_) => {
                    close_reason = Some("the decoder panicked on its input (a bug)".into());
                    closing = true;
                    break;
                }
            };
            let core = &mut sh.core;
            let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match frame {
                Frame::Packet(p) => core.packet(id, &p, Now::system()),
                Frame::Admin(line) => Ok(admin::line(core, id, &line)),
            }));
            let action = match handled {
                Ok(Ok(a)) => a,
                Ok(Err(e)) => {
                    close_reason = Some(format!("protocol error: {e}"));
                    closing = true;
                    break;
                }
                Err(_) => {
                    let peer = sh.core.conn_mut(id).map(|c| c.peer.clone()).unwrap_or_default();
                    sh.log(&format!(
                        "the job server's core panicked on a packet from {peer} (a bug); \
                         stopping rather than serving on state it may have half-changed"
                    ));
                    log::error!("the server core panicked; aborting");
                    std::process::abort();
                }
            };
            if sh.queue_sync == QueueSync::Always {
                sh.sync_journal();
            }
            match action {
                Action::Shutdown => {
                    sh.stop_now();
                    closing = true;
                    break;
                }
                Action::Drain => sh.drain(),
                Action::Continue => {}
            }
        }
        sh.flush_dirty();
        drop(sh);
        if paused || closing {
            // Write what decoding queued, then go on decoding (or close).
            continue;
        }
        shrink_if_idle(&mut rbuf);
        // A partial frame has a deadline for its next byte; a connection with nothing partial
        // (a sleeping worker, an idle client) has none.
        if rbuf.is_empty() && !sock.handshaking() {
            stall = None;
        } else if let Some(s) = stall.as_mut() {
            if Pin::new(s).poll(cx).is_ready() {
                return Poll::Ready(Some(format!(
                    "stalled for {read_deadline:?} {}",
                    stalled_in(&sock)
                )));
            }
        }
        // A read that came back short took all there was: rather than a read that can only
        // fail with EAGAIN, wait for the reactor (level-triggered: data that came since is
        // reported on its next turn).
        let read = if drained {
            drained = false;
            match sock.poll_readable(cx) {
                Poll::Ready(Ok(())) => read_into(&mut sock, cx, &mut rbuf),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        } else {
            read_into(&mut sock, cx, &mut rbuf)
        };
        match read {
            Poll::Ready(Ok(0)) => {
                return Poll::Ready(None);
            }
            Poll::Ready(Ok(n)) => {
                io.read(n);
                drained = n < READ_CHUNK && sock.short_read_drains();
                // Progress: the stalled-partial deadline starts again from now, if it still
                // applies once this is decoded.
                let deadline = far_or(read_deadline);
                match stall.as_mut() {
                    Some(s) => s.reset(deadline),
                    None => stall = Some(h.sleep_until(deadline)),
                }
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Some(format!("read failed: {e}"))),
            Poll::Pending => {
                shrink_if_idle(&mut rbuf);
                if let Some(s) = stall.as_mut() {
                    if Pin::new(s).poll(cx).is_ready() {
                        return Poll::Ready(Some(format!(
                            "stalled for {read_deadline:?} {}",
                            stalled_in(&sock)
                        )));
                    }
                }
                return Poll::Pending;
            }
        }
    })
    .await;
    if let Some(reason) = reason {
        let mut sh = shared.borrow_mut();
        let peer = sh.core.conn_mut(id).map(|c| c.peer.clone()).unwrap_or_default();
        sh.log(&format!("closing connection {id} from {peer}: {reason}"));
    }
    if sock.is_tls() && !sock.handshaking() {
        // A TLS peer hears close_notify (a strict one takes a close without it for a cut
        // stream), for at most a second: one that reads nothing does not hold the task.
        let mut sleep = h.sleep(std::time::Duration::from_secs(1));
        poll_fn(|cx| {
            if Pin::new(&mut sock).poll_close(cx).is_ready()
                || Pin::new(&mut sleep).poll(cx).is_ready()
            {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
    // `reg` drops here: the core forgets the connection.
    drop(reg);
}

/// A connection the core knows of. However it ends (its task done, its task dropped with a
/// loop that stopped or panicked, or a hand-off to another loop that never ran), the core
/// hears of it when this drops: its running jobs are requeued, its waiting submissions end,
/// and its id is free again. Once the server has stopped, nothing is changed any more: a
/// running background job must stay in the durable queue, not count an attempt.
pub(super) struct Registered {
    pub(super) shared: Arc<Locked>,
    pub(super) id: ConnId,
    /// Its address may use the state-changing admin commands if its TLS client presents a
    /// listed certificate ([`Limits::admin_certs`](super::Limits::admin_certs)).
    pub(super) admin_by_cert: bool,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut sh = self.shared.borrow_mut();
        if sh.stopped {
            return;
        }
        sh.core.disconnect(self.id);
        sh.wakers[self.id] = None;
        sh.flush_dirty();
    }
}
