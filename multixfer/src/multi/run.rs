//! The transfer layer: resolve, take or open a connection (within the per-host and total
//! caps), hand the exchange to the connection's protocol (`h1.rs`), take what it produces
//! (the head, body bytes, the end, a failure), follow redirects, retry once on a kept-alive
//! connection that died, and finish. The connection's own transport (TCP, TLS, the idle
//! pool) is `conn.rs`.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use bytes::BytesMut;
use evcore::{Interest, Ready};

use super::state::{Conn, Due, Phase, Proto, Speed, Transfer};
use super::Multi;
use crate::easy::{Body, Flow, Progress, Sink};
use crate::http::{HttpError, ResponseHead, ResponseParser};
use crate::resolve::Lookup;
use crate::sock;
use crate::{Done, Response, XferError, XferId};

/// Where a transfer can go now (`Multi::place`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Place {
    /// A new stream on this HTTP/2 connection.
    Stream(usize),
    /// An idle connection of its host.
    Idle,
    /// A new connection (closing an idle one first if the caps are reached).
    Open,
    /// The queue.
    Wait,
}

/// Whether connections for `key` may speak HTTP/2 (and so count for `pipewait`).
fn key_h2(key: &crate::target::PoolKey) -> bool {
    key.h2
}

impl<T, S> Multi<T, S> {
    // ---- entry helpers ------------------------------------------------------------------

    pub(super) fn on_socket(&mut self, fd: RawFd, ready: Ready) {
        if fd == self.resolver.signal().fd().as_raw_fd() {
            self.on_answers();
            return;
        }
        let Some(ci) = self.conn_of(fd) else { return };
        // An HTTP/2 connection reads whether it carries streams or not (SETTINGS, PING,
        // GOAWAY come any time).
        if matches!(self.conns[ci].proto, Proto::H2(_)) {
            return self.h2_ready(ci);
        }
        let Some(id) = self.conns[ci].xfer else {
            self.on_idle_event(ci);
            return;
        };
        let failing = ready.is_error() || ready.is_hangup();
        if self.conns[ci].connecting {
            if ready.is_writable() || failing {
                self.on_connected(ci, id);
            }
            return;
        }
        if self.conns[ci].handshake {
            return self.on_handshake(ci, id);
        }
        // The exchange on it is the protocol's.
        self.exchange_ready(ci, id, ready);
    }

    pub(super) fn on_answers(&mut self) {
        let now = self.now();
        for (host, answer) in self.resolver.answers(now) {
            for id in self.resolving.remove(&host).unwrap_or_default() {
                if !self.valid(id) || self.xfers[id.idx as usize].phase != Phase::Resolving {
                    continue;
                }
                match &answer {
                    Ok(addrs) => {
                        let x = &mut self.xfers[id.idx as usize];
                        x.addrs = addrs.clone();
                        x.next_addr = 0;
                        x.phase = Phase::Queued;
                        self.acquire(id);
                    }
                    Err(reason) => self.fail(
                        id,
                        XferError::Resolve { host: host.to_string(), reason: reason.clone() },
                    ),
                }
            }
        }
    }

    /// Acts on every deadline that has passed.
    pub(super) fn expire(&mut self) {
        let now = self.now();
        while let Some(&(at, due)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            match due {
                Due::Idle(ci) => {
                    self.conns[ci].idle_deadline = None;
                    self.close_conn(ci);
                }
                Due::Xfer(idx, gen) => {
                    let id = XferId { idx, gen };
                    self.xfers[idx as usize].deadline = None;
                    self.check_deadlines(id, now);
                }
            }
        }
    }

    pub(super) fn check_deadlines(&mut self, id: XferId, now: Instant) {
        let x = &mut self.xfers[id.idx as usize];
        if x.total_deadline.is_some_and(|d| d <= now) {
            let limit = x.easy.timeout.unwrap_or_default();
            return self.fail(id, XferError::Timeout(limit));
        }
        // The connect timeout covers resolution, TCP to every address and, for https, the
        // TLS handshake, as libcurl's does.
        let connecting = matches!(
            x.phase,
            Phase::Resolving | Phase::Connecting | Phase::Sending | Phase::Receiving
        );
        if connecting && x.connect_deadline.is_some_and(|d| d <= now) {
            let limit = x.easy.connect_timeout.unwrap_or_default();
            return self.fail(id, XferError::ConnectTimeout(limit));
        }
        // This address had its share of the budget: on to the next one.
        if x.phase == Phase::Connecting && x.attempt_deadline.is_some_and(|d| d <= now) {
            x.attempt_deadline = None;
            if let Some(ci) = x.conn {
                self.detach(id);
                self.close_conn(ci);
                let x = &mut self.xfers[id.idx as usize];
                x.next_addr += 1;
                x.phase = Phase::Queued;
                return self.open(id);
            }
        }
        if matches!(x.phase, Phase::Sending | Phase::Receiving) {
            if let Some(speed) = &mut x.speed {
                if speed.check(now) {
                    let (limit, time) = (speed.limit, speed.time);
                    return self.fail(id, XferError::TooSlow { limit, time });
                }
            }
        }
        self.reschedule(id);
    }

    /// Puts the transfer's earliest deadline in the engine's set.
    pub(super) fn reschedule(&mut self, id: XferId) {
        let x = &mut self.xfers[id.idx as usize];
        let mut next = x.total_deadline;
        let mut consider = |d: Option<Instant>| {
            if let Some(d) = d {
                next = Some(next.map_or(d, |n: Instant| n.min(d)));
            }
        };
        match x.phase {
            Phase::Resolving => consider(x.connect_deadline),
            Phase::Connecting => {
                consider(x.connect_deadline);
                consider(x.attempt_deadline);
            }
            Phase::Sending | Phase::Receiving => {
                consider(x.connect_deadline);
                consider(x.speed.as_ref().map(Speed::next_check));
            }
            Phase::Queued => {}
        }
        if next != x.deadline {
            if let Some(old) = x.deadline {
                self.deadlines.remove(&(old, Due::Xfer(id.idx, id.gen)));
            }
            x.deadline = next;
            if let Some(new) = next {
                self.deadlines.insert((new, Due::Xfer(id.idx, id.gen)));
            }
        }
    }

    /// Runs what can run: waiting transfers whose slot opened, then added ones, then the
    /// HTTP/2 connections whose streams changed (whose frames wait to be written).
    pub(super) fn settle(&mut self) {
        loop {
            self.pump_waiters();
            if let Some(id) = self.runnable.pop_front() {
                if self.valid(id) && self.xfers[id.idx as usize].phase == Phase::Queued {
                    self.start(id);
                }
                continue;
            }
            if !self.h2_run_kicks() {
                break;
            }
        }
    }

    pub(super) fn max_host(&self) -> usize {
        match self.opts.max_host_connections {
            0 => usize::MAX,
            n => n,
        }
    }

    pub(super) fn max_total(&self) -> usize {
        match self.opts.max_total_connections {
            0 => usize::MAX,
            n => n,
        }
    }

    /// Starts waiting transfers, oldest first, while connections allow.
    pub(super) fn pump_waiters(&mut self) {
        while self.waiting_total > 0 {
            let mut heads = Vec::new();
            for host in self.hosts.values_mut() {
                // Drop heads that were cancelled, failed or timed out while waiting.
                while let Some(&(_, id)) = host.waiting.front() {
                    let live = self
                        .xfers
                        .get(id.idx as usize)
                        .is_some_and(|x| x.gen == id.gen && x.waiting);
                    if live {
                        break;
                    }
                    host.waiting.pop_front();
                    self.waiting_total -= 1;
                }
                if let Some(&head) = host.waiting.front() {
                    heads.push(head);
                }
            }
            heads.sort_unstable_by_key(|&(seq, _)| seq);
            let Some(id) = heads
                .into_iter()
                .map(|(_, id)| id)
                .find(|&id| !matches!(self.place(id), Place::Wait))
            else {
                return;
            };
            let key = self.xfers[id.idx as usize].target.key.clone();
            let host = self.hosts.get_mut(&key).expect("found above");
            host.waiting.pop_front();
            self.waiting_total -= 1;
            self.xfers[id.idx as usize].waiting = false;
            self.acquire(id);
        }
    }

    /// Where a transfer can go now.
    pub(super) fn place(&mut self, id: XferId) -> Place {
        let (max_host, max_total) = (self.max_host(), self.max_total());
        let x = &self.xfers[id.idx as usize];
        let (fresh, pipewait) = (x.fresh, x.easy.pipewait);
        let key = &x.target.key;
        let host = self.hosts.entry(key.clone()).or_default();
        // A free stream on an HTTP/2 connection first: no new connection at all.
        for ci in host.mux.clone() {
            if self.h2_room(ci) {
                return Place::Stream(ci);
            }
        }
        let host = &self.hosts[&self.xfers[id.idx as usize].target.key];
        if !fresh && !host.idle.is_empty() {
            return Place::Idle;
        }
        // `pipewait`: a connection that may multiplex is on its way, or busy.
        if pipewait && (host.undecided > 0 || !host.mux.is_empty()) {
            return Place::Wait;
        }
        let host_ok = host.open < max_host;
        if !host_ok && fresh && !host.idle.is_empty() {
            return Place::Open;
        }
        if host_ok && (self.total_open < max_total || self.idle_total > 0) {
            return Place::Open;
        }
        Place::Wait
    }

    // ---- starting ---------------------------------------------------------------------------

    pub(super) fn start(&mut self, id: XferId) {
        let now = self.now();
        let x = &mut self.xfers[id.idx as usize];
        let host = x.target.key.host.clone();
        let port = x.target.key.port;
        // The connect phase's budget starts with the lookup.
        x.connect_deadline = x.easy.connect_timeout.and_then(|t| now.checked_add(t));
        let given = x
            .easy
            .resolve
            .iter()
            .find(|(h, p, addrs)| h.eq_ignore_ascii_case(&host) && *p == port && !addrs.is_empty())
            .map(|(_, _, addrs)| addrs.clone());
        let lookup = match given {
            Some(addrs) => Lookup::Ready(Ok(addrs)),
            None => self.resolver.lookup(&host, now),
        };
        match lookup {
            Lookup::Ready(Ok(addrs)) => {
                let x = &mut self.xfers[id.idx as usize];
                x.addrs = addrs;
                x.next_addr = 0;
                self.acquire(id);
            }
            Lookup::Ready(Err(reason)) => {
                self.fail(id, XferError::Resolve { host: host.to_string(), reason })
            }
            Lookup::Pending => {
                self.xfers[id.idx as usize].phase = Phase::Resolving;
                self.resolving.entry(host).or_default().push(id);
                self.reschedule(id);
            }
        }
    }

    /// Gives the transfer a connection: a free HTTP/2 stream, an idle connection for its
    /// host, a new one within the limits, a new one in place of another host's idle one, or
    /// a place in the queue.
    pub(super) fn acquire(&mut self, id: XferId) {
        let place = self.place(id);
        let key = self.xfers[id.idx as usize].target.key.clone();
        match place {
            Place::Stream(ci) => self.h2_attach(ci, id),
            Place::Idle => {
                let host = self.hosts.get_mut(&key).expect("placed above");
                let ci = host.idle.pop().expect("placed above");
                self.idle_total -= 1;
                self.unidle(ci);
                // A connection already made: no connect phase.
                let x = &mut self.xfers[id.idx as usize];
                x.connect_deadline = None;
                x.attempt_deadline = None;
                self.begin_exchange(ci, id);
            }
            Place::Open => {
                let host = &self.hosts[&key];
                if host.open >= self.max_host() {
                    // A retry that must not reuse: an idle connection of its host makes room.
                    let ci = host.idle[0];
                    self.close_conn(ci);
                } else if self.total_open >= self.max_total() {
                    if let Some(ci) = self.oldest_idle() {
                        self.close_conn(ci);
                    }
                }
                self.open(id);
            }
            Place::Wait => {
                self.seq += 1;
                let seq = self.seq;
                let host = self.hosts.get_mut(&key).expect("placed above");
                if self.xfers[id.idx as usize].unprocessed > 0 {
                    // A request the server did not process goes first: sent again behind
                    // the others, it would be the one past the next GOAWAY too.
                    // In the order they came back.
                    let at = host.waiting.iter().position(|&(s, _)| s != 0);
                    host.waiting.insert(at.unwrap_or(host.waiting.len()), (0, id));
                } else {
                    host.waiting.push_back((seq, id));
                }
                self.waiting_total += 1;
                let x = &mut self.xfers[id.idx as usize];
                x.phase = Phase::Queued;
                x.waiting = true;
                // Waiting for a slot is not connecting: the connect budget starts again when
                // it opens.
                x.connect_deadline = None;
            }
        }
    }

    /// Starts the transfer's exchange on a connection it was given, in the connection's
    /// protocol.
    pub(super) fn begin_exchange(&mut self, ci: usize, id: XferId) {
        match self.conns[ci].proto {
            Proto::H2(_) => self.h2_attach(ci, id),
            Proto::H1 => self.begin_request(ci, id),
        }
    }

    pub(super) fn oldest_idle(&self) -> Option<usize> {
        self.hosts
            .values()
            .filter_map(|h| h.idle.first().copied())
            .min_by_key(|&ci| self.conns[ci].idle_deadline)
    }

    /// Takes a connection off the idle list's deadline.
    pub(super) fn unidle(&mut self, ci: usize) {
        if let Some(d) = self.conns[ci].idle_deadline.take() {
            self.deadlines.remove(&(d, Due::Idle(ci)));
        }
    }

    /// Opens a connection to the transfer's next address.
    pub(super) fn open(&mut self, id: XferId) {
        let now = self.now();
        loop {
            let x = &mut self.xfers[id.idx as usize];
            if x.next_addr >= x.addrs.len() {
                // Every address had its turn within the budget and none answered in time.
                let limit = x.easy.connect_timeout.unwrap_or_default();
                return self.fail(id, XferError::ConnectTimeout(limit));
            }
            if x.connect_deadline.is_none() {
                x.connect_deadline = x.easy.connect_timeout.and_then(|t| now.checked_add(t));
            }
            // Each address but the last gets half of the time left (libcurl's rule).
            let last = x.next_addr + 1 == x.addrs.len();
            x.attempt_deadline = match x.connect_deadline {
                Some(end) if !last => Some(now + end.saturating_duration_since(now) / 2),
                _ => None,
            };
            let ip = x.addrs[x.next_addr];
            let addr = SocketAddr::new(ip, x.target.key.port);
            match sock::connect(addr) {
                Ok((fd, connected)) => {
                    let raw = fd.as_raw_fd();
                    let key = x.target.key.clone();
                    let undecided = key_h2(&x.target.key);
                    let ci = self.conns.insert(Conn {
                        fd: std::sync::Arc::new(fd),
                        raw,
                        key: key.clone(),
                        xfer: Some(id),
                        connecting: !connected,
                        out: BytesMut::new(),
                        inbuf: BytesMut::new(),
                        want: None,
                        told: None,
                        dirty: false,
                        user: None,
                        idle_deadline: None,
                        served: 0,
                        tls: None,
                        proto: Proto::H1,
                        handshake: false,
                        undecided,
                    });
                    let slot = raw as usize;
                    if self.by_fd.len() <= slot {
                        self.by_fd.resize(slot + 1, 0);
                    }
                    self.by_fd[slot] = ci as u32 + 1;
                    let host = self.hosts.entry(key).or_default();
                    host.open += 1;
                    host.undecided += usize::from(undecided);
                    self.total_open += 1;
                    self.connects += 1;
                    let x = &mut self.xfers[id.idx as usize];
                    x.conn = Some(ci);
                    if connected {
                        self.conns[ci].connecting = false;
                        self.connected(ci, id);
                    } else {
                        x.phase = Phase::Connecting;
                        self.set_want(ci, Some(Interest::Out));
                        self.reschedule(id);
                    }
                    return;
                }
                Err(e) => {
                    x.next_addr += 1;
                    if x.next_addr >= x.addrs.len() {
                        let (host, port) = (x.target.key.host.to_string(), x.target.key.port);
                        return self.fail(id, XferError::Connect { host, port, source: e });
                    }
                }
            }
        }
    }

    pub(super) fn on_head(&mut self, id: XferId, head: ResponseHead) -> Result<(), XferError> {
        let x = &mut self.xfers[id.idx as usize];
        if let Some(cb) = &mut x.easy.on_header {
            if cb(&head) == Flow::Abort {
                return Err(XferError::Aborted("header"));
            }
        }
        x.download_total = head
            .header("content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok());
        x.redirect = None;
        if x.easy.follow && matches!(head.status, 301 | 302 | 303 | 307 | 308) {
            if let Some(loc) = head.header("location") {
                x.redirect = Some((head.status, String::from_utf8_lossy(loc).into_owned()));
            }
        }
        // A body announced past the limit fails before any of it is read (libcurl's check);
        // not for a redirect that is followed, nor for a response that has no body whatever
        // its Content-Length says (HEAD, 204, 304).
        let bodyless =
            x.easy.method.eq_ignore_ascii_case("HEAD") || matches!(head.status, 204 | 304);
        x.body_bytes = 0;
        if let (Some(max), Some(total), None, false) =
            (x.easy.max_filesize, x.download_total, &x.redirect, bodyless)
        {
            if total > max {
                return Err(XferError::FileTooLarge(max));
            }
        }
        x.head = Some(head);
        Ok(())
    }

    pub(super) fn deliver(&mut self, id: XferId, bytes: &[u8]) -> Result<(), XferError> {
        let x = &mut self.xfers[id.idx as usize];
        x.downloaded += bytes.len() as u64;
        if let Some(s) = &mut x.speed {
            s.window_bytes += bytes.len() as u64;
        }
        if x.redirect.is_some() {
            return Ok(());
        }
        // A body with no length (chunked, close-delimited) is stopped where it passes it;
        // the limit is on the final response's body, not on redirects' bodies before it.
        x.body_bytes += bytes.len() as u64;
        if x.easy.max_filesize.is_some_and(|max| x.body_bytes > max) {
            return Err(XferError::FileTooLarge(x.easy.max_filesize.unwrap_or_default()));
        }
        match &mut x.easy.sink {
            Sink::Collect => x.body.extend_from_slice(bytes),
            Sink::Discard => {}
            Sink::Write(f) => {
                if f(bytes) == Flow::Abort {
                    return Err(XferError::Aborted("write"));
                }
            }
        }
        if x.easy.on_progress.is_some() && !self.progress(id) {
            return Err(XferError::Aborted("progress"));
        }
        Ok(())
    }

    /// Calls the progress function; false (and the transfer failed) when it asked to stop.
    pub(super) fn progress(&mut self, id: XferId) -> bool {
        let x = &mut self.xfers[id.idx as usize];
        let Some(cb) = &mut x.easy.on_progress else { return true };
        let p = Progress {
            download_total: x.download_total,
            downloaded: x.downloaded,
            upload_total: x.upload_total,
            uploaded: x.uploaded,
        };
        if cb(p) == Flow::Abort {
            // Called from the send path; the receive path turns this into its own error.
            if x.phase == Phase::Sending {
                self.fail(id, XferError::Aborted("progress"));
            }
            return false;
        }
        true
    }

    /// A connection died under a transfer: a kept-alive connection that the server closed
    /// before answering gets the request once more on a new connection, as libcurl does.
    pub(super) fn conn_failed(&mut self, ci: usize, id: XferId, error: XferError) {
        let x = &mut self.xfers[id.idx as usize];
        if x.reused && !x.got_bytes && !x.retried {
            x.retried = true;
            x.fresh = true;
            self.detach(id);
            self.close_conn(ci);
            self.requeue(id);
        } else {
            self.fail(id, error);
        }
    }

    /// Puts a transfer back to be started again (after a retry or a redirect).
    pub(super) fn requeue(&mut self, id: XferId) {
        let x = &mut self.xfers[id.idx as usize];
        let head_request = x.easy.method.eq_ignore_ascii_case("HEAD");
        x.parser = ResponseParser::new(head_request);
        x.head = None;
        x.phase = Phase::Queued;
        x.speed = None;
        self.reschedule(id);
        self.runnable.push_back(id);
    }

    /// The response is complete.
    pub(super) fn on_complete(&mut self, ci: usize, id: XferId, reusable: bool) {
        self.detach(id);
        self.conns[ci].served += 1;
        if reusable {
            self.release(ci);
        } else {
            self.close_conn(ci);
        }
        self.after_response(id);
    }

    /// A response was read whole (its connection already let go): follow its redirect, or
    /// finish.
    pub(super) fn after_response(&mut self, id: XferId) {
        let x = &mut self.xfers[id.idx as usize];
        let Some((status, location)) = x.redirect.take() else {
            return self.finish(id, Ok(()));
        };
        x.redirects += 1;
        if x.redirects > x.easy.max_redirs {
            let max = x.easy.max_redirs;
            return self.fail(id, XferError::TooManyRedirects(max));
        }
        match x.target.join(&location) {
            Ok(t) => {
                let t = t.with_tls(&x.easy.tls, x.easy.version);
                // Credentials were given for one origin: a redirect elsewhere (another
                // scheme, host or port, https to http included) does not get them.
                let (a, b) = (&x.target.url, &t.url);
                let same_origin = a.scheme() == b.scheme()
                    && a.host_str() == b.host_str()
                    && a.port_or_known_default() == b.port_or_known_default();
                if !same_origin && !x.easy.unrestricted_auth {
                    x.easy.headers.retain(|(n, _)| !crate::easy::is_credential(n));
                }
                x.target = t;
            }
            Err(e) => return self.fail(id, e),
        }
        // As browsers and libcurl do: 303 always becomes GET, and so does a POST answered
        // with 301 or 302; 307 and 308 repeat the request as it was.
        let to_get = status == 303 && !x.easy.method.eq_ignore_ascii_case("HEAD")
            || matches!(status, 301 | 302) && x.easy.method.eq_ignore_ascii_case("POST");
        if to_get {
            x.easy.method = "GET".into();
            x.easy.body = Body::None;
        } else if matches!(x.easy.body, Body::Reader(..)) {
            return self.fail(id, XferError::CannotRewind);
        }
        x.fresh = false;
        x.retried = false;
        x.unprocessed = 0;
        self.requeue(id);
    }

    // ---- ending -------------------------------------------------------------------------------

    /// Unlinks a transfer from its connection.
    pub(super) fn detach(&mut self, id: XferId) {
        if let Some(ci) = self.xfers[id.idx as usize].conn.take() {
            if let Some(c) = self.conns.get_mut(ci) {
                if c.xfer == Some(id) {
                    c.xfer = None;
                }
            }
        }
    }

    /// Fails a transfer; its connection, mid-request, cannot be reused (an HTTP/2
    /// connection only loses the transfer's stream).
    pub(super) fn fail(&mut self, id: XferId, error: XferError) {
        self.abandon(id);
        self.finish(id, Err(error));
    }

    /// Lets go of the transfer's connection mid-exchange.
    pub(super) fn abandon(&mut self, id: XferId) {
        if let Some(ci) = self.xfers[id.idx as usize].conn {
            if matches!(self.conns.get(ci).map(|c| &c.proto), Some(Proto::H2(_))) {
                self.h2_detach(ci, id);
            } else {
                self.detach(id);
                self.close_conn(ci);
            }
        }
        self.xfers[id.idx as usize].stream = None;
    }

    /// Removes a transfer from the engine, with its deadline and connection.
    pub(super) fn drop_transfer(&mut self, id: XferId) -> Transfer<T> {
        self.abandon(id);
        let x = self.xfers.remove(id.idx as usize);
        if let Some(d) = x.deadline {
            self.deadlines.remove(&(d, Due::Xfer(id.idx, id.gen)));
        }
        self.running -= 1;
        x
    }

    /// Queues the transfer's `Done` message.
    pub(super) fn finish(&mut self, id: XferId, result: Result<(), XferError>) {
        let now = self.now();
        let x = self.drop_transfer(id);
        let result = result.and_then(|()| {
            let head = x.head.ok_or(XferError::Http(HttpError::NoResponse))?;
            Ok(Response {
                head,
                body: x.body,
                effective_url: x.target.url.to_string(),
                redirects: x.redirects,
                downloaded: x.downloaded,
                uploaded: x.uploaded,
                elapsed: now.duration_since(x.added),
                reused: x.reused,
            })
        });
        self.done.push_back(Done { id, result, private: x.easy.private });
    }
}
