//! The connection under a transfer, whatever protocol it speaks: TCP connect, the TLS
//! session and its handshake, reading and writing through it, the pool's idle connections,
//! and closing (a socket the driver knows of stays open until its Remove is told).

use std::io;

use bytes::Buf;
use evcore::Interest;

use super::state::Due;
use super::Multi;
use crate::sock;
use crate::{XferError, XferId};

impl<T, S> Multi<T, S> {
    pub(super) fn on_connected(&mut self, ci: usize, id: XferId) {
        match sock::connect_result(&self.conns[ci].fd) {
            Ok(()) => {
                self.conns[ci].connecting = false;
                self.connected(ci, id);
            }
            Err(e) => {
                self.detach(id);
                self.close_conn(ci);
                let x = &mut self.xfers[id.idx as usize];
                x.next_addr += 1;
                if x.next_addr < x.addrs.len() {
                    self.open(id);
                } else {
                    let (host, port) = (x.target.key.host.to_string(), x.target.key.port);
                    self.fail(id, XferError::Connect { host, port, source: e });
                }
            }
        }
    }

    /// TCP is up: start TLS for `https`, then the request. A connection that may speak
    /// HTTP/2 finishes its TLS handshake first, since ALPN's answer decides the protocol;
    /// on cleartext with prior knowledge it starts HTTP/2 at once. Over TLS offering
    /// `http/1.1` alone the request is written at once, into TLS's buffer (it leaves with
    /// the handshake's end, saving a wake-up).
    pub(super) fn connected(&mut self, ci: usize, id: XferId) {
        let key = &self.conns[ci].key;
        let h2 = key.h2;
        match &key.tls {
            Some(tls) => match self.tls.session(tls, &key.host) {
                // The connect deadline stays until the handshake is done.
                Ok(session) => self.conns[ci].tls = Some(session),
                Err(e) => return self.fail(id, e),
            },
            None => self.xfers[id.idx as usize].connect_deadline = None,
        }
        self.xfers[id.idx as usize].attempt_deadline = None;
        if !h2 {
            return self.begin_request(ci, id);
        }
        if self.conns[ci].tls.is_none() {
            self.decided(ci);
            return self.h2_start(ci, id);
        }
        self.conns[ci].handshake = true;
        self.on_handshake(ci, id);
    }

    /// Moves a TLS handshake on, before the protocol is chosen; once it is done, ALPN's
    /// answer picks HTTP/2 or HTTP/1.1.
    pub(super) fn on_handshake(&mut self, ci: usize, id: XferId) {
        let c = &mut self.conns[ci];
        let session = c.tls.as_mut().expect("a handshake has a TLS session");
        let step = session.flush(&c.fd).or_else(|e| match e.kind() {
            io::ErrorKind::WouldBlock => Ok(()),
            _ => Err(e),
        });
        let step = step.and_then(|()| session.pump(&c.fd));
        match step {
            Ok(false) => {}
            Ok(true) => {
                let e = XferError::Tls("the server closed the connection in the handshake".into());
                return self.fail(id, e);
            }
            Err(e) => return self.fail(id, Self::io_error(e, XferError::Recv)),
        }
        let session = self.conns[ci].tls.as_ref().expect("checked above");
        if session.handshaking() {
            let want = if session.wants_write() { Interest::InOut } else { Interest::In };
            return self.set_want(ci, Some(want));
        }
        let h2 = session.alpn_h2();
        self.conns[ci].handshake = false;
        self.decided(ci);
        if self.xfers[id.idx as usize].connect_deadline.take().is_some() {
            self.reschedule(id);
        }
        if h2 {
            self.h2_start(ci, id);
        } else {
            self.begin_request(ci, id);
        }
    }

    /// The connection's protocol is known: `pipewait` transfers stop waiting for it.
    pub(super) fn decided(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        if std::mem::take(&mut c.undecided) {
            let host = self.hosts.get_mut(&c.key).expect("every connection has a host");
            host.undecided -= 1;
        }
    }

    /// Takes a connection off its host's idle list (before it is given a transfer).
    #[cfg_attr(not(feature = "http2"), allow(dead_code))]
    pub(super) fn take_idle(&mut self, ci: usize) {
        if self.conns[ci].idle_deadline.is_none() {
            return;
        }
        self.unidle(ci);
        let host = self.hosts.get_mut(&self.conns[ci].key).expect("every connection has a host");
        if let Some(pos) = host.idle.iter().position(|&i| i == ci) {
            host.idle.remove(pos);
            self.idle_total -= 1;
        }
    }

    /// Takes an HTTP/2 connection off its host's list of those taking streams.
    #[cfg_attr(not(feature = "http2"), allow(dead_code))]
    pub(super) fn unmux(&mut self, ci: usize, key: &crate::target::PoolKey) {
        if let Some(host) = self.hosts.get_mut(key) {
            if let Some(pos) = host.mux.iter().position(|&i| i == ci) {
                host.mux.swap_remove(pos);
            }
        }
    }

    /// Once a TLS handshake is over, the connect timeout no longer applies.
    pub(super) fn handshake_done(&mut self, ci: usize, id: XferId) {
        let done = self.conns.get(ci).is_some_and(|c| {
            c.xfer == Some(id) && c.tls.as_ref().is_some_and(|s| !s.handshaking())
        });
        if done && self.xfers[id.idx as usize].connect_deadline.take().is_some() {
            self.reschedule(id);
        }
    }

    /// What a connection waits for while its response comes: reading, and writing while TLS
    /// has records to send.
    pub(super) fn receive_interest(&self, ci: usize) -> Interest {
        match &self.conns[ci].tls {
            Some(s) if s.wants_write() => Interest::InOut,
            _ => Interest::In,
        }
    }

    /// Writes some of the connection's output; how many request bytes went.
    pub(super) fn write_some(&mut self, ci: usize) -> io::Result<usize> {
        let c = &mut self.conns[ci];
        match &mut c.tls {
            Some(session) => session.send(&c.fd, &mut c.out),
            None => {
                let n = sock::send(&c.fd, &c.out)?;
                c.out.advance(n);
                Ok(n)
            }
        }
    }

    /// Reads some of the response's bytes (plaintext for TLS).
    pub(super) fn read_some(&mut self, ci: usize, buf: &mut [u8]) -> io::Result<usize> {
        let c = &mut self.conns[ci];
        match &mut c.tls {
            Some(session) => session.recv(&c.fd, buf),
            None => sock::recv(&c.fd, buf),
        }
    }

    /// A TLS failure is its own error; anything else is the given kind of I/O failure.
    pub(super) fn io_error(e: io::Error, wrap: fn(io::Error) -> XferError) -> XferError {
        if e.kind() == io::ErrorKind::InvalidData {
            XferError::Tls(e.to_string())
        } else {
            wrap(e)
        }
    }

    /// Returns a connection to the pool, watched for the server closing it.
    pub(super) fn release(&mut self, ci: usize) {
        let deadline = self.now() + self.opts.idle_age;
        let key = self.conns[ci].key.clone();
        let host = self.hosts.get_mut(&key).expect("every connection has a host");
        host.idle.push(ci);
        self.idle_total += 1;
        self.conns[ci].idle_deadline = Some(deadline);
        self.deadlines.insert((deadline, Due::Idle(ci)));
        self.set_want(ci, Some(Interest::In));
        let cache = self.opts.max_connects.unwrap_or((4 * self.running).max(16));
        while self.idle_total > cache {
            match self.oldest_idle() {
                Some(old) => self.close_conn(old),
                None => break,
            }
        }
    }

    /// An idle connection became readable: the server closed it (or sent what nobody asked
    /// for). Either way it cannot be reused.
    pub(super) fn on_idle_event(&mut self, ci: usize) {
        let mut probe = [0u8; 1];
        // Through TLS, records with no data for us (session tickets) are taken and dropped.
        match self.read_some(ci, &mut probe) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let want = self.receive_interest(ci);
                self.set_want(ci, Some(want));
            }
            _ => self.close_conn(ci),
        }
    }

    /// Closes a connection. A socket the driver was told about is kept open until its
    /// Remove is told.
    pub(super) fn close_conn(&mut self, ci: usize) {
        self.unidle(ci);
        let c = self.conns.remove(ci);
        if let Some(slot) = self.by_fd.get_mut(c.raw as usize) {
            *slot = 0;
        }
        let host = self.hosts.get_mut(&c.key).expect("every connection has a host");
        host.open -= 1;
        if let Some(pos) = host.idle.iter().position(|&i| i == ci) {
            host.idle.remove(pos);
            self.idle_total -= 1;
        }
        if let Some(pos) = host.mux.iter().position(|&i| i == ci) {
            host.mux.swap_remove(pos);
        }
        if c.undecided {
            host.undecided -= 1;
        }
        self.total_open -= 1;
        if c.told.is_some() {
            self.graveyard.push((c.raw, c.fd, c.user));
        }
    }
}
