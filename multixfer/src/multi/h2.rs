//! HTTP/2 on a connection (feature `http2`): transfers as streams of one connection, through
//! the `h2` crate. What a stream produces goes to the transfer layer (`run.rs`) through the
//! same calls as HTTP/1.1's: `on_head`, `deliver`, `after_response`, `fail`.
//!
//! # Polling without a runtime
//!
//! `h2` is written for an executor: a connection future that reads and writes frames, and
//! stream handles that wait on it. Here nothing runs unless the engine is called, so the
//! engine polls everything itself, always from inside its own calls:
//! - the connection is polled when its socket is ready (`h2_ready`), and before the call
//!   returns after a stream was opened or dropped (the kick list), so its frames go out;
//! - each stream has a waker of its own that records the stream in its connection's list;
//!   after each poll of the connection, the streams it woke are polled, and so on until
//!   nothing is woken. A stream is never polled for nothing, so a connection of 100 streams
//!   costs per event only what that event touched.
//!
//! # What follows libcurl
//!
//! - A connection takes more than its first stream only once the server's SETTINGS have been
//!   read, so that its `SETTINGS_MAX_CONCURRENT_STREAMS` is known before streams are opened
//!   past it (`Options::max_concurrent_streams` caps it further).
//! - A GOAWAY stops new streams on the connection; streams above its last-stream id were not
//!   processed and go once more on another connection, as does a stream refused with
//!   `REFUSED_STREAM`; the others finish. A stream the server resets otherwise fails alone
//!   with [`XferError::StreamReset`].
//! - Flow control windows are sized for bulk (10 MiB per stream, as libcurl's, 32 MiB for
//!   the connection), so one large body is not held to the protocol's 64 KiB default.

use std::future::Future;
use std::io::Read;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use h2::client::{Connection, ResponseFuture, SendRequest};
use h2::{Reason, RecvStream, SendStream};

use super::h2io::{Io, IoState};
use super::state::{Phase, Proto, Speed};
use super::Multi;
use crate::easy::Body;
use crate::http::ResponseHead;
use crate::{XferError, XferId};

/// libcurl's stream window (`H2_STREAM_WINDOW_SIZE_MAX`).
const STREAM_WINDOW: u32 = 10 * 1024 * 1024;
const CONN_WINDOW: u32 = 32 * 1024 * 1024;
/// The most bytes of response headers a stream takes, as HTTP/1.1's head limit.
const MAX_HEADER_LIST: u32 = 64 * 1024;
/// How many times a request the server did not process goes again (libcurl's
/// `CONN_MAX_RETRIES`).
const MAX_RETRIES: u32 = 5;
/// How much of a reader body is read per step.
const READ_CHUNK: usize = 64 * 1024;
/// Rounds of polling per call before the rest is left for the next one (a server flooding
/// frames cannot keep the engine in one connection forever).
const MAX_ROUNDS: usize = 64;

type Handshake = Pin<
    Box<dyn Future<Output = Result<(SendRequest<Bytes>, Connection<Io, Bytes>), h2::Error>> + Send>,
>;

enum State {
    Handshake(Handshake),
    Open(Box<Connection<Io, Bytes>>),
    /// The connection future finished (closed, or failed): its streams end with it.
    Done,
}

/// What the wakers of one connection record.
#[derive(Debug, Default)]
struct Woken {
    conn: AtomicBool,
    streams: Mutex<Vec<XferId>>,
}

struct ConnWaker(Arc<Woken>);

impl Wake for ConnWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.conn.store(true, Ordering::Relaxed);
    }
}

struct StreamWaker {
    id: XferId,
    woken: Arc<Woken>,
}

impl Wake for StreamWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        // A poisoned lock means a panic in the engine already: nothing to keep safe.
        if let Ok(mut list) = self.woken.streams.lock() {
            list.push(self.id);
        }
    }
}

/// One HTTP/2 connection.
pub(crate) struct H2Conn {
    state: State,
    send: Option<SendRequest<Bytes>>,
    /// The transfers with a stream on it.
    pub(crate) streams: Vec<XferId>,
    /// No new streams: GOAWAY, or the connection ended or failed.
    pub(crate) closing: bool,
    /// In the engine's kick list.
    kicked: bool,
    woken: Arc<Woken>,
    waker: Waker,
    io: Arc<IoState>,
}

/// One transfer's stream.
pub(crate) struct Stream {
    waker: Waker,
    sid: u32,
    response: Option<ResponseFuture>,
    recv: Option<RecvStream>,
    send: Option<SendStream<Bytes>>,
    /// Body bytes taken from the transfer's body and not yet sent.
    pending: Bytes,
    /// The body's end was read (its last bytes go with END_STREAM).
    body_eof: bool,
}

/// How a step on a stream ended.
enum Step {
    Waiting,
    Complete,
    /// The transfer already ended (a callback stopped it, or a limit).
    Gone,
    Failed(h2::Error),
}

fn builder() -> h2::client::Builder {
    let mut b = h2::client::Builder::new();
    b.initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONN_WINDOW)
        .max_header_list_size(MAX_HEADER_LIST)
        .enable_push(false);
    b
}

/// Headers that mean something only to one HTTP/1.1 connection (RFC 9113, 8.2.2), and the
/// ones HTTP/2 carries as pseudo-headers.
fn dropped_header(name: &str) -> bool {
    ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

impl<T, S> Multi<T, S> {
    /// The connection speaks HTTP/2 from now on (ALPN chose it, or prior knowledge): the
    /// preface and SETTINGS go out, and transfer `id`, which opened it, becomes its first
    /// stream.
    pub(super) fn h2_start(&mut self, ci: usize, id: XferId) {
        let c = &mut self.conns[ci];
        log::debug!("connection {} speaks HTTP/2 to {}:{}", c.raw, c.key.host, c.key.port);
        let io_state = IoState::new();
        let io = Io::new(c.fd.clone(), c.tls.take(), io_state.clone());
        let woken = Arc::new(Woken::default());
        let waker = Waker::from(Arc::new(ConnWaker(woken.clone())));
        let handshake: Handshake = Box::pin(builder().handshake::<_, Bytes>(io));
        c.proto = Proto::H2(Box::new(H2Conn {
            state: State::Handshake(handshake),
            send: None,
            streams: Vec::new(),
            closing: false,
            kicked: false,
            woken,
            waker,
            io: io_state,
        }));
        c.xfer = None;
        let key = c.key.clone();
        self.hosts.get_mut(&key).expect("every connection has a host").mux.push(ci);
        self.xfers[id.idx as usize].conn = None;
        self.set_want(ci, Some(evcore::Interest::In));
        self.h2_attach(ci, id);
        self.h2_poll_conn(ci);
    }

    /// Whether the connection takes another stream now.
    pub(super) fn h2_room(&mut self, ci: usize) -> bool {
        let max = self.opts.max_concurrent_streams.max(1);
        let Proto::H2(h) = &mut self.conns[ci].proto else { return false };
        if h.closing || h.io.goaway_last().is_some() {
            return false;
        }
        // Before the handshake is written, only the stream that opened the connection.
        let Some(send) = &mut h.send else { return false };
        // Until the server's SETTINGS are read its limit is unknown: one stream only.
        let known = h.io.settings_seen.load(Ordering::Relaxed);
        if !h.streams.is_empty() && !known {
            return false;
        }
        if h.streams.len() >= max.min(send.current_max_send_streams()) {
            return false;
        }
        let mut cx = Context::from_waker(&h.waker);
        match send.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => true,
            Poll::Ready(Err(_)) => {
                h.closing = true;
                let key = self.conns[ci].key.clone();
                self.unmux(ci, &key);
                false
            }
            Poll::Pending => false,
        }
    }

    /// Gives transfer `id` a stream on connection `ci` (opened once the handshake is out).
    pub(super) fn h2_attach(&mut self, ci: usize, id: XferId) {
        self.take_idle(ci);
        let now = self.now();
        let c = &mut self.conns[ci];
        let served = c.served;
        let Proto::H2(h) = &mut c.proto else { unreachable!("h2_attach on HTTP/2 only") };
        h.streams.push(id);
        let ready = h.send.is_some();
        let x = &mut self.xfers[id.idx as usize];
        x.conn = Some(ci);
        x.reused = served > 0;
        x.got_bytes = false;
        x.phase = Phase::Sending;
        x.speed = x.easy.low_speed.map(|(limit, time)| Speed::new(limit, time, now));
        x.connect_deadline = None;
        x.attempt_deadline = None;
        x.uploaded = 0;
        self.reschedule(id);
        if ready {
            self.h2_open_stream(ci, id);
        }
    }

    /// Sends transfer `id`'s request as a new stream.
    fn h2_open_stream(&mut self, ci: usize, id: XferId) {
        let request = match self.h2_request(id) {
            Ok(r) => r,
            Err(e) => return self.fail(id, XferError::BadRequest(e)),
        };
        let x = &mut self.xfers[id.idx as usize];
        let (pending, body_eof, total) = match &x.easy.body {
            Body::None => (Bytes::new(), true, None),
            Body::Bytes(b) => (b.clone(), true, Some(b.len() as u64)),
            Body::Reader(_, len) => (Bytes::new(), false, *len),
        };
        x.upload_total = total;
        let Proto::H2(h) = &mut self.conns[ci].proto else { return };
        let Some(send) = &mut h.send else { return };
        let no_body = pending.is_empty() && body_eof;
        match send.send_request(request, no_body) {
            Ok((response, stream)) => {
                let sid = u32::from(response.stream_id());
                let waker = Waker::from(Arc::new(StreamWaker { id, woken: h.woken.clone() }));
                let x = &mut self.xfers[id.idx as usize];
                x.stream = Some(Box::new(Stream {
                    waker,
                    sid,
                    response: Some(response),
                    recv: None,
                    send: (!no_body).then_some(stream),
                    pending,
                    body_eof,
                }));
                if no_body {
                    x.phase = Phase::Receiving;
                    self.reschedule(id);
                }
                self.kick(ci);
                self.h2_step(ci, id);
            }
            Err(e) => {
                // The connection is going away (or gone): the request goes elsewhere, once.
                h.closing = true;
                let key = self.conns[ci].key.clone();
                self.unmux(ci, &key);
                self.h2_detach(ci, id);
                let x = &mut self.xfers[id.idx as usize];
                if (e.is_go_away() || e.is_io() || e.is_remote()) && x.unprocessed < MAX_RETRIES {
                    x.unprocessed += 1;
                    self.requeue(id);
                } else {
                    self.fail(id, XferError::Http2(e.to_string()));
                }
            }
        }
    }

    /// The request's head as `h2` takes it.
    fn h2_request(&self, id: XferId) -> Result<http::Request<()>, String> {
        let x = &self.xfers[id.idx as usize];
        let scheme = if x.target.key.tls.is_some() { "https" } else { "http" };
        let uri = format!("{scheme}://{}{}", x.target.authority, x.target.path);
        let mut req = http::Request::builder()
            .method(x.easy.method.as_str())
            .uri(uri)
            .version(http::Version::HTTP_2);
        let framed = !matches!(x.easy.body, Body::None);
        let mut accept = false;
        for (n, v) in &x.easy.headers {
            if dropped_header(n)
                || (framed && n.eq_ignore_ascii_case("content-length"))
                || (n.eq_ignore_ascii_case("te") && !v.eq_ignore_ascii_case("trailers"))
            {
                continue;
            }
            accept |= n.eq_ignore_ascii_case("accept");
            req = req.header(n.to_ascii_lowercase(), v.as_str());
        }
        if !accept {
            req = req.header("accept", "*/*");
        }
        match &x.easy.body {
            Body::Bytes(b) => req = req.header("content-length", b.len()),
            Body::Reader(_, Some(len)) => req = req.header("content-length", *len),
            _ => {}
        }
        req.body(()).map_err(|e| e.to_string())
    }

    /// Connection `ci`'s socket is ready.
    pub(super) fn h2_ready(&mut self, ci: usize) {
        self.h2_drive(ci);
    }

    /// Polls the connection and the streams it wakes until nothing more moves.
    pub(super) fn h2_drive(&mut self, ci: usize) {
        let mut settled = false;
        for _ in 0..MAX_ROUNDS {
            let Some(Proto::H2(h)) = self.conns.get(ci).map(|c| &c.proto) else { return };
            h.woken.conn.store(false, Ordering::Relaxed);
            self.h2_poll_conn(ci);
            let Some(Proto::H2(h)) = self.conns.get(ci).map(|c| &c.proto) else { return };
            let woken: Vec<XferId> = match h.woken.streams.lock() {
                Ok(mut list) => std::mem::take(&mut *list),
                Err(_) => Vec::new(),
            };
            let again = h.woken.conn.load(Ordering::Relaxed);
            if woken.is_empty() && !again {
                settled = true;
                break;
            }
            for id in woken {
                if self.valid(id) && self.xfers[id.idx as usize].conn == Some(ci) {
                    self.h2_step(ci, id);
                }
            }
        }
        if !settled {
            // Work is left (frames read and not yet taken): polled again before the call
            // returns, after the others had their turn, since the socket may not signal it.
            self.kick(ci);
        }
        self.h2_interest(ci);
    }

    /// Watches the socket for reading, and for writing while a write would block.
    fn h2_interest(&mut self, ci: usize) {
        let Some(Proto::H2(h)) = self.conns.get(ci).map(|c| &c.proto) else { return };
        let out = h.io.blocked_write.load(Ordering::Relaxed);
        let want = if out { evcore::Interest::InOut } else { evcore::Interest::In };
        self.set_want(ci, Some(want));
    }

    /// Polls the connection future once (reading and writing frames).
    fn h2_poll_conn(&mut self, ci: usize) {
        let Proto::H2(h) = &mut self.conns[ci].proto else { return };
        h.io.blocked_write.store(false, Ordering::Relaxed);
        let mut cx = Context::from_waker(&h.waker);
        let mut opened = false;
        let ended = loop {
            match &mut h.state {
                State::Handshake(f) => match f.as_mut().poll(&mut cx) {
                    Poll::Ready(Ok((send, conn))) => {
                        h.send = Some(send);
                        h.state = State::Open(Box::new(conn));
                        opened = true;
                    }
                    Poll::Ready(Err(e)) => break Some(e.to_string()),
                    Poll::Pending => break None,
                },
                State::Open(conn) => match Pin::new(&mut **conn).poll(&mut cx) {
                    Poll::Ready(Ok(())) => break Some(String::new()),
                    Poll::Ready(Err(e)) => break Some(e.to_string()),
                    Poll::Pending => break None,
                },
                State::Done => break None,
            }
        };
        if opened {
            // The streams given to it before its handshake was written.
            for id in h.streams.clone() {
                if self.valid(id) && self.xfers[id.idx as usize].stream.is_none() {
                    self.h2_open_stream(ci, id);
                }
            }
        }
        let Some(why) = ended else { return };
        log::debug!("HTTP/2 connection {} ended: {why}", self.conns[ci].raw);
        let Proto::H2(h) = &mut self.conns[ci].proto else { return };
        h.state = State::Done;
        h.closing = true;
        let streams = h.streams.clone();
        let key = self.conns[ci].key.clone();
        self.unmux(ci, &key);
        // Each stream learns of the end from its own handle.
        for id in streams {
            if self.valid(id) && self.xfers[id.idx as usize].conn == Some(ci) {
                self.h2_step(ci, id);
            }
        }
        // A stream whose handles saw no error (the handshake failed before any was open).
        let Some(Proto::H2(h)) = self.conns.get(ci).map(|c| &c.proto) else { return };
        for id in h.streams.clone() {
            if self.valid(id) {
                let e = XferError::Http2(format!("the connection ended: {why}"));
                self.fail(id, e);
            }
        }
        self.h2_maybe_close(ci);
    }

    /// Moves one stream on: its body out, its response in.
    pub(super) fn h2_step(&mut self, ci: usize, id: XferId) {
        let Some(mut st) = self.xfers[id.idx as usize].stream.take() else { return };
        let step = self.h2_step_inner(id, &mut st);
        match step {
            Step::Waiting => {
                if self.valid(id) {
                    self.xfers[id.idx as usize].stream = Some(st);
                }
            }
            Step::Gone => drop(st),
            Step::Complete => {
                drop(st);
                // Detaching may close a connection that is going away.
                self.conns[ci].served += 1;
                self.h2_detach(ci, id);
                self.after_response(id);
            }
            Step::Failed(e) => {
                let sid = st.sid;
                drop(st);
                self.h2_stream_failed(ci, id, sid, e);
            }
        }
    }

    fn h2_step_inner(&mut self, id: XferId, st: &mut Stream) -> Step {
        let mut cx = Context::from_waker(&st.waker);
        // The body, as far as flow control lets it go.
        while let Some(send) = &mut st.send {
            if st.pending.is_empty() && !st.body_eof {
                match self.read_body_chunk(id) {
                    Ok(Some(chunk)) => st.pending = chunk,
                    Ok(None) => st.body_eof = true,
                    Err(e) => {
                        self.fail(id, XferError::ReadBody(e));
                        return Step::Gone;
                    }
                }
                continue;
            }
            if st.pending.is_empty() {
                // The end of a reader body: an empty DATA frame with END_STREAM.
                if let Err(e) = send.send_data(Bytes::new(), true) {
                    return Step::Failed(e);
                }
                st.send = None;
                break;
            }
            send.reserve_capacity(st.pending.len());
            match send.poll_capacity(&mut cx) {
                Poll::Ready(Some(Ok(0))) => continue,
                Poll::Ready(Some(Ok(n))) => {
                    let chunk = st.pending.split_to(n.min(st.pending.len()));
                    let last = st.pending.is_empty() && st.body_eof;
                    let len = chunk.len() as u64;
                    if let Err(e) = send.send_data(chunk, last) {
                        return Step::Failed(e);
                    }
                    if last {
                        st.send = None;
                    }
                    let x = &mut self.xfers[id.idx as usize];
                    x.uploaded += len;
                    if let Some(s) = &mut x.speed {
                        s.window_bytes += len;
                    }
                    if !self.progress(id) {
                        return Step::Gone;
                    }
                }
                Poll::Ready(Some(Err(e))) => return Step::Failed(e),
                // The stream is closed: the response says why.
                Poll::Ready(None) => {
                    st.send = None;
                    break;
                }
                Poll::Pending => break,
            }
        }
        if st.send.is_none() {
            let x = &mut self.xfers[id.idx as usize];
            if x.phase == Phase::Sending {
                x.phase = Phase::Receiving;
                self.reschedule(id);
            }
        }
        if let Some(response) = &mut st.response {
            match Pin::new(response).poll(&mut cx) {
                Poll::Ready(Ok(resp)) => {
                    st.response = None;
                    let (parts, body) = resp.into_parts();
                    let head = ResponseHead {
                        status: parts.status.as_u16(),
                        reason: parts.status.canonical_reason().unwrap_or_default().to_string(),
                        version: 2,
                        headers: parts
                            .headers
                            .iter()
                            .map(|(n, v)| {
                                (n.as_str().to_string(), Bytes::copy_from_slice(v.as_bytes()))
                            })
                            .collect(),
                    };
                    self.xfers[id.idx as usize].got_bytes = true;
                    if let Err(e) = self.on_head(id, head) {
                        self.fail(id, e);
                        return Step::Gone;
                    }
                    st.recv = Some(body);
                }
                Poll::Ready(Err(e)) => return Step::Failed(e),
                Poll::Pending => return Step::Waiting,
            }
        }
        let Some(recv) = &mut st.recv else { return Step::Waiting };
        loop {
            match recv.poll_data(&mut cx) {
                Poll::Ready(Some(Ok(data))) => {
                    // The window opens again as the bytes are taken.
                    let _ = recv.flow_control().release_capacity(data.len());
                    if let Err(e) = self.deliver(id, &data) {
                        self.fail(id, e);
                        return Step::Gone;
                    }
                }
                Poll::Ready(Some(Err(e))) => return Step::Failed(e),
                Poll::Ready(None) => return Step::Complete,
                Poll::Pending => return Step::Waiting,
            }
        }
    }

    /// The next piece of a reader body; `None` at its end.
    fn read_body_chunk(&mut self, id: XferId) -> std::io::Result<Option<Bytes>> {
        let x = &mut self.xfers[id.idx as usize];
        let Body::Reader(reader, _) = &mut x.easy.body else { return Ok(None) };
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(Some(buf.into()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// A stream failed: sent again if the server did not process it, else the transfer fails.
    fn h2_stream_failed(&mut self, ci: usize, id: XferId, sid: u32, e: h2::Error) {
        let Proto::H2(h) = &mut self.conns[ci].proto else { return };
        let goaway_last = h.io.goaway_last();
        let refused = e.is_reset() && e.is_remote() && e.reason() == Some(Reason::REFUSED_STREAM);
        let unprocessed = goaway_last.is_some_and(|last| sid > last);
        if goaway_last.is_some() || e.is_go_away() || e.is_io() {
            h.closing = true;
            let key = self.conns[ci].key.clone();
            self.unmux(ci, &key);
        }
        let x = &self.xfers[id.idx as usize];
        // A kept-alive connection that died before any of the answer came is tried once
        // more, as over HTTP/1.1.
        let died = (e.is_io() || e.is_go_away()) && x.reused && !x.got_bytes;
        let again =
            if refused || unprocessed { x.unprocessed < MAX_RETRIES } else { died && !x.retried };
        if again {
            let x = &mut self.xfers[id.idx as usize];
            if refused || unprocessed {
                x.unprocessed += 1;
            } else {
                x.retried = true;
            }
            self.h2_detach(ci, id);
            self.requeue(id);
            return;
        }
        let error = if e.is_reset() && e.is_remote() {
            XferError::StreamReset(e.reason().map_or(0, u32::from))
        } else if e.is_io() {
            match e.into_io() {
                Some(io) => XferError::Recv(io),
                None => XferError::Http2("I/O failure".into()),
            }
        } else {
            XferError::Http2(e.to_string())
        };
        self.fail(id, error);
    }

    /// Takes transfer `id`'s stream off connection `ci` (dropping a stream that has not ended
    /// resets it); a connection left with no stream goes idle, or closes if it is going away.
    pub(super) fn h2_detach(&mut self, ci: usize, id: XferId) {
        let x = &mut self.xfers[id.idx as usize];
        x.stream = None;
        if x.conn == Some(ci) {
            x.conn = None;
        }
        let Some(Proto::H2(h)) = self.conns.get_mut(ci).map(|c| &mut c.proto) else { return };
        if let Some(pos) = h.streams.iter().position(|&s| s == id) {
            h.streams.swap_remove(pos);
        }
        let (empty, closing) = (h.streams.is_empty(), h.closing);
        self.kick(ci);
        if empty && !closing {
            self.release(ci);
        } else if empty {
            self.h2_maybe_close(ci);
        }
    }

    /// Closes a connection that is going away once no stream is left on it.
    fn h2_maybe_close(&mut self, ci: usize) {
        let Some(Proto::H2(h)) = self.conns.get(ci).map(|c| &c.proto) else { return };
        if h.closing && h.streams.is_empty() {
            self.close_conn(ci);
        }
    }

    /// Polls the connection before the call returns.
    pub(super) fn kick(&mut self, ci: usize) {
        if let Some(Proto::H2(h)) = self.conns.get_mut(ci).map(|c| &mut c.proto) {
            if !h.kicked {
                h.kicked = true;
                self.h2_kick.push(ci);
            }
        }
    }

    /// Polls the kicked connections; false when there were none.
    pub(super) fn h2_run_kicks(&mut self) -> bool {
        if self.h2_kick.is_empty() {
            return false;
        }
        for ci in std::mem::take(&mut self.h2_kick) {
            if let Some(Proto::H2(h)) = self.conns.get_mut(ci).map(|c| &mut c.proto) {
                h.kicked = false;
                self.h2_drive(ci);
            }
        }
        true
    }
}
