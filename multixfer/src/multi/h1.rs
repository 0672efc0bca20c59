//! HTTP/1.1 on a connection: the request written out (head, then a byte or reader body,
//! chunked when its length is unknown), the response read and parsed, one exchange at a
//! time. What the exchange produces goes to the transfer layer (`run.rs`) through
//! `on_head`, `deliver`, `on_complete`, `fail` and `conn_failed`.

use std::io::{self, Read};

use bytes::BufMut;
use evcore::{Interest, Ready};

use super::state::{Phase, Speed};
use super::Multi;
use crate::easy::Body;
use crate::http::{encode_request, HttpError, Part};
use crate::{XferError, XferId};

/// How much of a reader body is read per step.
const READ_CHUNK: usize = 64 * 1024;
/// Reads per readiness before yielding to other sockets (level-triggered: the rest comes back).
const READS_PER_EVENT: usize = 8;

impl<T, S> Multi<T, S> {
    /// The socket of connection `ci`, serving transfer `id` (connected), is ready: the
    /// handshake, the request's bytes and the response's, as the exchange stands.
    pub(super) fn exchange_ready(&mut self, ci: usize, id: XferId, ready: Ready) {
        let failing = ready.is_error() || ready.is_hangup();
        let phase = self.xfers[id.idx as usize].phase;
        if phase == Phase::Sending
            && self.conns[ci].tls.is_some()
            && (ready.is_readable() || failing)
        {
            // The handshake needs the server's records before more can be sent.
            let c = &mut self.conns[ci];
            let session = c.tls.as_mut().expect("checked above");
            match session.pump(&c.fd) {
                Ok(false) => {}
                Ok(true) => {
                    return self.conn_failed(ci, id, XferError::Http(HttpError::NoResponse))
                }
                Err(e) => return self.conn_failed(ci, id, Self::io_error(e, XferError::Recv)),
            }
            self.on_writable(ci, id);
            if self.valid(id) {
                self.handshake_done(ci, id);
            }
            return;
        }
        if phase == Phase::Sending && (ready.is_writable() || failing) {
            self.on_writable(ci, id);
        } else if phase == Phase::Receiving && ready.is_writable() {
            let c = &mut self.conns[ci];
            if let Some(session) = &mut c.tls {
                if let Err(e) = session.flush(&c.fd) {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        return self.conn_failed(ci, id, Self::io_error(e, XferError::Send));
                    }
                }
                let want = self.receive_interest(ci);
                self.set_want(ci, Some(want));
            }
        }
        // The transfer may have moved on (or ended) while sending.
        if self.conns.get(ci).is_some_and(|c| c.xfer == Some(id))
            && self.xfers[id.idx as usize].phase == Phase::Receiving
            && (ready.is_readable() || failing)
        {
            self.on_readable(ci, id);
        }
        if self.valid(id) {
            self.handshake_done(ci, id);
        }
    }

    /// Writes the request on the connection and starts sending it.
    pub(super) fn begin_request(&mut self, ci: usize, id: XferId) {
        let now = self.now();
        let c = &mut self.conns[ci];
        let x = &mut self.xfers[id.idx as usize];
        c.xfer = Some(id);
        x.conn = Some(ci);
        x.reused = c.served > 0;
        x.got_bytes = false;
        x.phase = Phase::Sending;
        x.speed = x.easy.low_speed.map(|(limit, time)| Speed::new(limit, time, now));
        c.out.clear();
        c.inbuf.clear();
        // With a body, its framing is the engine's: a user's Content-Length or
        // Transfer-Encoding beside ours would give the server two.
        let framed = !matches!(x.easy.body, Body::None);
        let mut headers: Vec<(&str, &str)> = x
            .easy
            .headers
            .iter()
            .filter(|(n, _)| {
                !framed
                    || !(n.eq_ignore_ascii_case("content-length")
                        || n.eq_ignore_ascii_case("transfer-encoding"))
            })
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("accept")) {
            headers.push(("Accept", "*/*"));
        }
        let length;
        let (body, body_done, upload_total) = match &x.easy.body {
            Body::None => (None, true, None),
            Body::Bytes(b) => (Some(&b[..]), true, Some(b.len() as u64)),
            Body::Reader(_, Some(len)) => {
                length = len.to_string();
                headers.push(("Content-Length", &length));
                (None, false, Some(*len))
            }
            Body::Reader(_, None) => {
                headers.push(("Transfer-Encoding", "chunked"));
                (None, false, None)
            }
        };
        encode_request(
            &mut c.out,
            &x.easy.method,
            &x.target.authority,
            &x.target.path,
            &headers,
            None,
        );
        // The head ends where encode_request put its blank line; a byte body follows as is.
        if let Some(b) = body {
            let head_len = c.out.len() - 2;
            c.out.truncate(head_len);
            c.out.put_slice(format!("Content-Length: {}\r\n\r\n", b.len()).as_bytes());
            x.head_left = c.out.len();
            c.out.put_slice(b);
        } else {
            x.head_left = c.out.len();
        }
        x.body_done = body_done;
        x.upload_total = upload_total;
        x.uploaded = 0;
        self.reschedule(id);
        self.on_writable(ci, id);
    }

    /// Reads more of a reader body into the connection's output; false on failure.
    pub(super) fn fill_body(&mut self, ci: usize, id: XferId) -> bool {
        let x = &mut self.xfers[id.idx as usize];
        let Body::Reader(reader, len) = &mut x.easy.body else {
            x.body_done = true;
            return true;
        };
        let chunked = len.is_none();
        let mut buf = vec![0u8; READ_CHUNK];
        let n = loop {
            match reader.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.fail(id, XferError::ReadBody(e));
                    return false;
                }
            }
        };
        let out = &mut self.conns[ci].out;
        if n == 0 {
            x.body_done = true;
            if chunked {
                out.put_slice(b"0\r\n\r\n");
            }
        } else if chunked {
            // Chunk framing is not payload: chunked bodies count as they are read.
            x.uploaded += n as u64;
            out.put_slice(format!("{n:x}\r\n").as_bytes());
            out.put_slice(&buf[..n]);
            out.put_slice(b"\r\n");
        } else {
            out.put_slice(&buf[..n]);
        }
        true
    }

    pub(super) fn on_writable(&mut self, ci: usize, id: XferId) {
        loop {
            if self.conns[ci].out.is_empty() {
                if self.xfers[id.idx as usize].body_done {
                    break;
                }
                if !self.fill_body(ci, id) {
                    return;
                }
                continue;
            }
            match self.write_some(ci) {
                Ok(n) => {
                    let x = &mut self.xfers[id.idx as usize];
                    let head = n.min(x.head_left);
                    x.head_left -= head;
                    if !matches!(x.easy.body, Body::Reader(_, None)) {
                        x.uploaded += (n - head) as u64;
                    }
                    if let Some(s) = &mut x.speed {
                        s.window_bytes += (n - head) as u64;
                    }
                    if n > head && !self.progress(id) {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // A TLS handshake in progress needs to read before it can write more.
                    let handshaking = self.conns[ci].tls.as_ref().is_some_and(|s| s.handshaking());
                    let want = if handshaking { Interest::InOut } else { Interest::Out };
                    self.set_want(ci, Some(want));
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.conn_failed(ci, id, Self::io_error(e, XferError::Send)),
            }
        }
        self.xfers[id.idx as usize].phase = Phase::Receiving;
        let want = self.receive_interest(ci);
        self.set_want(ci, Some(want));
        self.reschedule(id);
        // TLS may already hold plaintext that the socket will not signal again.
        if self.conns[ci].tls.is_some() {
            self.on_readable(ci, id);
        }
    }

    pub(super) fn on_readable(&mut self, ci: usize, id: XferId) {
        let cap = self.xfers[id.idx as usize].easy.buffer_size;
        if self.scratch.len() < cap {
            self.scratch.resize(cap, 0);
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        // Plain sockets are read a few times per event (level-triggered, the rest comes back);
        // TLS until it would block, since plaintext it holds is not signalled by the socket.
        let tls = self.conns[ci].tls.is_some();
        let mut reads = 0;
        while tls || reads < READS_PER_EVENT {
            reads += 1;
            match self.read_some(ci, &mut scratch[..cap]) {
                Ok(0) => {
                    self.on_eof(ci, id);
                    break;
                }
                Ok(n) => {
                    if !self.feed(ci, id, &scratch[..n]) || (n < cap && !tls) {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.conn_failed(ci, id, Self::io_error(e, XferError::Recv));
                    break;
                }
            }
        }
        self.scratch = scratch;
        // TLS may have records to write after reading (the handshake's end, a key update).
        if self.conns.get(ci).is_some_and(|c| c.xfer == Some(id)) {
            let want = self.receive_interest(ci);
            self.set_want(ci, Some(want));
        }
    }

    /// Takes bytes the connection received; false once the transfer left this connection.
    pub(super) fn feed(&mut self, ci: usize, id: XferId, mut data: &[u8]) -> bool {
        self.xfers[id.idx as usize].got_bytes = true;
        loop {
            // Body bytes go from the receive buffer to the sink without a copy when nothing is
            // buffered before them.
            if self.conns[ci].inbuf.is_empty() && !data.is_empty() {
                let n = self.xfers[id.idx as usize].parser.take_body(data.len());
                if n > 0 {
                    if let Err(e) = self.deliver(id, &data[..n]) {
                        self.fail(id, e);
                        return false;
                    }
                    data = &data[n..];
                    continue;
                }
            }
            if !data.is_empty() {
                self.conns[ci].inbuf.extend_from_slice(data);
                data = &[];
            }
            let x = &mut self.xfers[id.idx as usize];
            let part = x.parser.parse(&mut self.conns[ci].inbuf);
            match part {
                Ok(None) => return true,
                Ok(Some(Part::Head(head))) => {
                    if let Err(e) = self.on_head(id, head) {
                        self.fail(id, e);
                        return false;
                    }
                }
                Ok(Some(Part::Body(bytes))) => {
                    if let Err(e) = self.deliver(id, &bytes) {
                        self.fail(id, e);
                        return false;
                    }
                }
                Ok(Some(Part::Done { reusable })) => {
                    // Bytes after the response on a kept-alive connection would be a protocol
                    // error; such a connection is not reused.
                    let reusable = reusable && self.conns[ci].inbuf.is_empty();
                    self.on_complete(ci, id, reusable);
                    return false;
                }
                Err(e) => {
                    self.fail(id, XferError::Http(e));
                    return false;
                }
            }
        }
    }

    pub(super) fn on_eof(&mut self, ci: usize, id: XferId) {
        let x = &mut self.xfers[id.idx as usize];
        match x.parser.eof() {
            Ok(_) => self.on_complete(ci, id, false),
            Err(HttpError::NoResponse) => {
                self.conn_failed(ci, id, XferError::Http(HttpError::NoResponse))
            }
            Err(e) => self.fail(id, XferError::Http(e)),
        }
    }
}
