//! A `Cpg` handle's connection to `groupd`.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::{EventfdFlags, PollFd, PollFlags};

use crate::wire::{self, Request, Response};
use crate::{CpgEvent, CsError, GroupName, Member};

pub(crate) struct DaemonClient {
    stream: UnixStream,
    rbuf: BytesMut,
    /// Frames not yet written whole: a request being sent, and acknowledgements of SAFE
    /// messages (written whenever the socket takes them).
    wbuf: BytesMut,
    scratch: Vec<u8>,
    inbox: VecDeque<CpgEvent>,
    /// The bytes of the messages in `inbox`.
    inbox_bytes: usize,
    /// SAFE messages received and acknowledged, waiting for the daemon to say each is stable
    /// (at most a look-ahead's worth: the daemon probes a few behind the one it holds).
    /// Delivered in order, so one still kept when a later one is delivered was dropped (its
    /// sender died first) and goes.
    safe: std::collections::BTreeMap<u64, CpgEvent>,
    /// Readable while the inbox holds events (and after a stop); part of `epoll`.
    pub(crate) wake: Arc<OwnedFd>,
    /// The socket and `wake`: readable when there is anything to dispatch.
    pub(crate) epoll: Arc<OwnedFd>,
    pub(crate) member: Member,
    /// The flow-control state the daemon last reported.
    flow: bool,
    /// Multicasts sent and not yet acknowledged.
    in_flight: usize,
    /// A pipelined multicast the daemon refused (its handle was removed meanwhile), reported
    /// by a later call, once the acknowledgements are read.
    refused: Option<CsError>,
    joined: bool,
    /// The model flags, sent with each join.
    flags: crate::ModelFlags,
}

/// How many multicasts may be on their way to the daemon unacknowledged.
pub(crate) const WINDOW: usize = 64;

impl DaemonClient {
    pub(crate) fn connect(path: &Path, flags: crate::ModelFlags) -> Result<DaemonClient, CsError> {
        let mut stream = UnixStream::connect(path).map_err(|e| match e.kind() {
            // The socket's mode keeps this user out.
            std::io::ErrorKind::PermissionDenied => CsError::Access,
            _ => CsError::Library,
        })?;
        let mut rbuf = BytesMut::new();
        // The daemon's first frame says who we are.
        let member = loop {
            if let Some(r) = wire::decode_response(&mut rbuf).map_err(|_| CsError::Library)? {
                match r {
                    Response::Hello(m, wire::PROTOCOL) => break m,
                    // A daemon of another version: its frames would be misread.
                    Response::Hello(..) => return Err(CsError::Version),
                    // The daemon refused this process (its uid is not allowed).
                    Response::Result(Err(e)) => return Err(e),
                    _ => return Err(CsError::Library),
                }
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).map_err(|_| CsError::Library)?;
            if n == 0 {
                return Err(CsError::Library);
            }
            rbuf.extend_from_slice(&chunk[..n]);
        };
        stream.set_nonblocking(true).map_err(|_| CsError::Library)?;
        let wake = Arc::new(
            rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
                .map_err(|_| CsError::Library)?,
        );
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|_| CsError::Library)?;
        epoll::add(&ep, &stream, EventData::new_u64(0), EventFlags::IN)
            .map_err(|_| CsError::Library)?;
        epoll::add(&ep, &*wake, EventData::new_u64(1), EventFlags::IN)
            .map_err(|_| CsError::Library)?;
        let mut client = DaemonClient {
            stream,
            rbuf,
            wbuf: BytesMut::new(),
            scratch: vec![0u8; 64 * 1024],
            inbox: VecDeque::new(),
            inbox_bytes: 0,
            safe: std::collections::BTreeMap::new(),
            wake,
            epoll: Arc::new(ep),
            member,
            flow: false,
            in_flight: 0,
            refused: None,
            joined: false,
            flags,
        };
        client.parse_buffered()?;
        Ok(client)
    }

    fn request(&mut self, r: &Request) -> Result<Response, CsError> {
        self.send(r)?;
        loop {
            if let Some(resp) = self.next_reply()? {
                // What came after the answer in the same read is taken in now (events to the
                // inbox, raising its descriptor; the socket will not signal bytes already
                // read), and a probe read with it is acknowledged now, not whenever this
                // handle next reads: the group's delivery waits for it.
                self.parse_buffered()?;
                return Ok(resp);
            }
            self.wait_readable()?;
        }
    }

    /// Writes one request frame (after anything still unwritten), taking in the daemon's
    /// frames whenever the socket is full.
    fn send(&mut self, r: &Request) -> Result<(), CsError> {
        wire::encode_request(&mut self.wbuf, r);
        self.write_out(true)
    }

    /// Writes what is unwritten without waiting: acknowledgements go out as soon as the
    /// socket takes them; what it does not take goes with the next request.
    fn flush_acks(&mut self) -> Result<(), CsError> {
        self.write_out(false)
    }

    fn write_out(&mut self, block: bool) -> Result<(), CsError> {
        while !self.wbuf.is_empty() {
            match self.stream.write(&self.wbuf) {
                Ok(0) => return Err(CsError::Library),
                Ok(n) => self.wbuf.advance(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if !block {
                        return Ok(());
                    }
                    // The daemon is not reading: it may be blocked writing events to us. Keep
                    // taking them in while waiting for room, or both sides wait forever.
                    self.read_available()?;
                    self.parse_buffered()?;
                    let mut fds = [PollFd::new(&self.stream, PollFlags::OUT | PollFlags::IN)];
                    let _ = rustix::event::poll(&mut fds, None);
                }
                Err(_) => return Err(CsError::Library),
            }
        }
        Ok(())
    }

    fn wait_readable(&mut self) -> Result<(), CsError> {
        // An acknowledgement the daemon waits for must not wait for us.
        self.flush_acks()?;
        let mut fds = [PollFd::new(&self.stream, PollFlags::IN)];
        let _ = rustix::event::poll(&mut fds, None);
        self.read_available()
    }

    /// The first buffered frame that is not an event (events go to the inbox).
    fn next_reply(&mut self) -> Result<Option<Response>, CsError> {
        loop {
            match wire::decode_response(&mut self.rbuf).map_err(|_| CsError::Library)? {
                Some(Response::Event(e)) => self.push(e),
                Some(Response::Flow(on)) => {
                    self.flow = on;
                    self.in_flight = self.in_flight.saturating_sub(1);
                }
                Some(Response::FlowCleared) => self.flow = false,
                // Received, acknowledged at once, kept until every member has it.
                Some(Response::SafeProbe { id, group, sender, msg }) => {
                    wire::encode_request(&mut self.wbuf, &Request::SafeAck(id));
                    self.safe.insert(id, CpgEvent::Deliver { group, sender, msg });
                }
                Some(Response::SafeDeliver(id)) => {
                    let e = self.safe.remove(&id).ok_or(CsError::Library)?;
                    // Anything kept from before it was dropped by the daemon.
                    self.safe = self.safe.split_off(&id);
                    self.push(e);
                }
                Some(Response::McastRefused(e)) => {
                    self.in_flight = self.in_flight.saturating_sub(1);
                    self.refused.get_or_insert(e);
                }
                Some(r) => return Ok(Some(r)),
                None => return Ok(None),
            }
        }
    }

    /// Whether this handle's own backlog (events read from the daemon and not yet dispatched)
    /// is past the bus's flow-control threshold. Events read here no longer count in the
    /// daemon's bus, so without this a member that multicasts and never dispatches would
    /// take in every delivery and grow without bound; with it, it hears `TryAgain`, as from
    /// any member too far behind, and dispatching clears it.
    fn backlogged(&self) -> bool {
        self.inbox.len() >= crate::local::DEFAULT_FLOW_LIMIT
            || self.inbox_bytes >= crate::local::FLOW_BYTES
    }

    fn push(&mut self, e: CpgEvent) {
        if let CpgEvent::Deliver { msg, .. } = &e {
            self.inbox_bytes += msg.len();
        }
        if self.inbox.is_empty() {
            let _ = rustix::io::write(&*self.wake, &1u64.to_ne_bytes());
        }
        self.inbox.push_back(e);
    }

    /// Polls the socket for up to `limit` until an event arrives: a reply to a multicast just
    /// sent comes back within microseconds, sooner than a wake-up from sleep would notice.
    /// True when the inbox has something.
    pub(crate) fn spin(&mut self, limit: std::time::Duration) -> Result<bool, CsError> {
        let start = std::time::Instant::now();
        loop {
            self.read_available()?;
            self.parse_buffered()?;
            if !self.inbox.is_empty() {
                return Ok(true);
            }
            if start.elapsed() >= limit {
                return Ok(false);
            }
            std::hint::spin_loop();
        }
    }

    /// Reads what the socket holds, without blocking.
    fn read_available(&mut self) -> Result<(), CsError> {
        loop {
            // One scratch buffer for the connection's life: zeroed once, not per call.
            match self.stream.read(&mut self.scratch) {
                Ok(0) => return Err(CsError::Library),
                Ok(n) => self.rbuf.extend_from_slice(&self.scratch[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Err(CsError::Library),
            }
        }
    }

    fn parse_buffered(&mut self) -> Result<(), CsError> {
        while let Some(r) = self.next_reply()? {
            // A reply with no request waiting cannot happen; drop it rather than stall.
            let _ = r;
        }
        if !self.wbuf.is_empty() {
            self.flush_acks()?;
        }
        Ok(())
    }

    fn result(r: Response) -> Result<(), CsError> {
        match r {
            Response::Result(res) => res,
            _ => Err(CsError::Library),
        }
    }

    pub(crate) fn join(&mut self, g: &GroupName) -> Result<(), CsError> {
        let r = self.request(&Request::Join(g.clone(), self.flags.bits()))?;
        let res = Self::result(r);
        self.joined |= res.is_ok();
        res
    }

    pub(crate) fn leave(&mut self) -> Result<(), CsError> {
        let r = self.request(&Request::Leave)?;
        let res = Self::result(r);
        if res.is_ok() {
            self.joined = false;
        }
        res
    }

    /// Sends without waiting for the daemon: at most [`WINDOW`] multicasts are unacknowledged,
    /// and while the daemon reports flow control on, new ones get `TryAgain` here (the state
    /// is refreshed from the acknowledgements, or asked for when none is outstanding).
    /// `block`: whether to wait (for the daemon's flow state when only stale, for room in
    /// the window); without it those answer `TryAgain` at once, for an async caller that
    /// then waits on the descriptor (an acknowledgement or a flow-cleared notice makes it
    /// readable).
    pub(crate) fn mcast(&mut self, msg: Vec<u8>, block: bool, safe: bool) -> Result<(), CsError> {
        if let Some(e) = self.refused.take() {
            return Err(e);
        }
        if !self.joined {
            return Err(CsError::NotExist);
        }
        if msg.len() > crate::local::LOCAL_MAX_MESSAGE {
            return Err(CsError::TooBig);
        }
        // The daemon's acknowledgements are read in batches, once half the window is
        // unacknowledged (or flow control was on), not on every multicast: a read per
        // multicast was a system call per message, most of them finding nothing. The flow
        // state is as fresh as before where it matters: the window still bounds how far a
        // sender can run past the acknowledgement that said flow control is on.
        if self.flow || self.in_flight >= WINDOW / 2 || !self.safe.is_empty() {
            self.read_available()?;
            self.parse_buffered()?;
        }
        if self.flow && self.in_flight == 0 && block {
            let r = self.request(&Request::FlowQuery)?;
            self.flow = Self::result(r) == Err(CsError::TryAgain);
        }
        if self.flow || self.backlogged() || (!block && self.in_flight >= WINDOW) {
            return Err(CsError::TryAgain);
        }
        while self.in_flight >= WINDOW {
            self.wait_readable()?;
            self.parse_buffered()?;
        }
        self.send(&if safe { Request::McastSafe(msg) } else { Request::Mcast(msg) })?;
        self.in_flight += 1;
        Ok(())
    }

    pub(crate) fn members(&mut self) -> Result<Vec<Member>, CsError> {
        match self.request(&Request::Membership)? {
            Response::Members(m) => Ok(m),
            Response::Result(Err(e)) => Err(e),
            _ => Err(CsError::Library),
        }
    }

    pub(crate) fn groups(&mut self) -> Result<Vec<(GroupName, Vec<Member>)>, CsError> {
        match self.request(&Request::Groups)? {
            Response::Groups(g) => Ok(g),
            _ => Err(CsError::Library),
        }
    }

    pub(crate) fn flow_control(&self) -> bool {
        self.flow || self.backlogged()
    }

    /// The next event: buffered, or read now without blocking.
    pub(crate) fn pop(&mut self) -> Result<Option<CpgEvent>, CsError> {
        if self.inbox.is_empty() {
            self.read_available()?;
            self.parse_buffered()?;
        }
        let e = self.inbox.pop_front();
        if let Some(CpgEvent::Deliver { msg, .. }) = &e {
            self.inbox_bytes -= msg.len();
        }
        if self.inbox.is_empty() {
            let mut buf = [0u8; 8];
            let _ = rustix::io::read(&*self.wake, &mut buf);
        }
        Ok(e)
    }

    pub(crate) fn pending(&mut self) -> Result<usize, CsError> {
        self.read_available()?;
        self.parse_buffered()?;
        Ok(self.inbox.len())
    }
}
