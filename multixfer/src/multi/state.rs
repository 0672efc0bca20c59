//! The engine's records: one per transfer, one per connection, one per host.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use evcore::Interest;

use crate::easy::Easy;
use crate::http::{ResponseHead, ResponseParser};
use crate::target::{PoolKey, Target};
use crate::XferId;

/// Where a transfer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Added, or waiting for a connection slot, or about to be retried or redirected.
    Queued,
    /// Waiting for the resolver.
    Resolving,
    /// Its connection is connecting.
    Connecting,
    /// Writing the request.
    Sending,
    /// Reading the response.
    Receiving,
}

/// The low-speed check (`CURLOPT_LOW_SPEED_LIMIT` / `_TIME`): the rate is measured over
/// windows of at most a second; the transfer fails once every window for `time` was slow.
#[derive(Debug)]
pub(crate) struct Speed {
    pub(crate) limit: u64,
    pub(crate) time: Duration,
    pub(crate) window: Duration,
    pub(crate) window_start: Instant,
    pub(crate) window_bytes: u64,
    pub(crate) slow_since: Option<Instant>,
}

impl Speed {
    pub(crate) fn new(limit: u64, time: Duration, now: Instant) -> Speed {
        let window = time.min(Duration::from_secs(1)).max(Duration::from_millis(10));
        Speed { limit, time, window, window_start: now, window_bytes: 0, slow_since: None }
    }

    pub(crate) fn next_check(&self) -> Instant {
        self.window_start + self.window
    }

    /// Closes the window if it is over; true when the transfer has been too slow for too long.
    pub(crate) fn check(&mut self, now: Instant) -> bool {
        if now < self.next_check() {
            return false;
        }
        let elapsed = now.duration_since(self.window_start).as_secs_f64().max(1e-3);
        let rate = self.window_bytes as f64 / elapsed;
        if rate < self.limit as f64 {
            let since = *self.slow_since.get_or_insert(self.window_start);
            if now.duration_since(since) >= self.time {
                return true;
            }
        } else {
            self.slow_since = None;
        }
        self.window_start = now;
        self.window_bytes = 0;
        false
    }
}

pub(crate) struct Transfer<T> {
    pub(crate) gen: u32,
    pub(crate) easy: Easy<T>,
    pub(crate) target: Target,
    pub(crate) phase: Phase,
    pub(crate) conn: Option<usize>,
    pub(crate) addrs: Vec<IpAddr>,
    pub(crate) next_addr: usize,
    pub(crate) parser: ResponseParser,
    pub(crate) head: Option<ResponseHead>,
    /// A redirect to follow once this response is read: (status, Location).
    pub(crate) redirect: Option<(u16, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) added: Instant,
    pub(crate) total_deadline: Option<Instant>,
    /// The end of the connect phase's budget (resolution, every address, TLS).
    pub(crate) connect_deadline: Option<Instant>,
    /// When the current address's attempt is given up for the next address.
    pub(crate) attempt_deadline: Option<Instant>,
    /// The deadline this transfer has in the engine's set, if any.
    pub(crate) deadline: Option<Instant>,
    pub(crate) speed: Option<Speed>,
    pub(crate) redirects: u32,
    pub(crate) downloaded: u64,
    /// Body bytes of the current response (what `max_filesize` limits).
    pub(crate) body_bytes: u64,
    pub(crate) uploaded: u64,
    pub(crate) download_total: Option<u64>,
    pub(crate) upload_total: Option<u64>,
    /// Bytes of the request head still to go out before body bytes count as uploaded.
    pub(crate) head_left: usize,
    /// Whether the request body has been queued for sending in full.
    pub(crate) body_done: bool,
    /// Whether the current request goes over a connection that served one before.
    pub(crate) reused: bool,
    /// Whether the request was already retried once after a kept-alive connection died.
    pub(crate) retried: bool,
    /// How many times the request went again because an HTTP/2 server did not process it
    /// (GOAWAY, REFUSED_STREAM); at most `MAX_RETRIES`, as libcurl's `CONN_MAX_RETRIES`.
    pub(crate) unprocessed: u32,
    /// Take a new connection rather than a kept-alive one (after such a death).
    pub(crate) fresh: bool,
    /// Whether any byte of the current response arrived.
    pub(crate) got_bytes: bool,
    /// Whether it sits in a host's waiting list.
    pub(crate) waiting: bool,
    /// Its stream, while it is on an HTTP/2 connection.
    pub(crate) stream: Option<Box<super::h2::Stream>>,
}

/// The protocol a connection speaks.
pub(crate) enum Proto {
    /// HTTP/1.1 (or not yet decided): one transfer at a time, in `Conn::xfer`.
    H1,
    /// HTTP/2: streams, one per transfer.
    #[cfg_attr(not(feature = "http2"), allow(dead_code))]
    H2(Box<super::h2::H2Conn>),
}

pub(crate) struct Conn<S> {
    /// Shared with an HTTP/2 connection's transport; the engine's copy keeps the descriptor
    /// open until the driver is told Remove.
    pub(crate) fd: Arc<OwnedFd>,
    pub(crate) raw: RawFd,
    pub(crate) key: PoolKey,
    pub(crate) xfer: Option<XferId>,
    pub(crate) connecting: bool,
    pub(crate) out: BytesMut,
    pub(crate) inbuf: BytesMut,
    /// The interest the engine wants now, and the one it last told its driver.
    pub(crate) want: Option<Interest>,
    pub(crate) told: Option<Interest>,
    pub(crate) dirty: bool,
    /// The caller's value for this socket (`curl_multi_assign`), dropped on Remove.
    pub(crate) user: Option<S>,
    pub(crate) idle_deadline: Option<Instant>,
    pub(crate) served: u32,
    /// The TLS session of an `https` connection, once TCP is connected (an HTTP/2
    /// connection's transport takes it).
    pub(crate) tls: Option<crate::tls::Session>,
    pub(crate) proto: Proto,
    /// The TLS handshake runs before the protocol is chosen (ALPN may pick HTTP/2).
    pub(crate) handshake: bool,
    /// Counted in its host's `undecided`: it may turn out to speak HTTP/2.
    pub(crate) undecided: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Host {
    /// Open connections (busy, idle or connecting).
    pub(crate) open: usize,
    /// Idle connections, most recently used last.
    pub(crate) idle: Vec<usize>,
    /// Transfers waiting for a connection slot: (arrival order, id).
    pub(crate) waiting: VecDeque<(u64, XferId)>,
    /// HTTP/2 connections that take new streams (whether they have room or not).
    pub(crate) mux: Vec<usize>,
    /// Connections being set up that may turn out to speak HTTP/2 (what `pipewait` waits
    /// for).
    pub(crate) undecided: usize,
}

/// What a deadline in the engine's set is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Due {
    Xfer(u32, u32),
    Idle(usize),
}
