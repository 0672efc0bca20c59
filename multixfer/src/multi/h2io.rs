//! The transport under an HTTP/2 connection: the socket (and TLS session) as the
//! `AsyncRead`/`AsyncWrite` that the `h2` crate reads and writes through.
//!
//! The engine, not a runtime, decides when to poll: a read or write that would block returns
//! `Pending` and records what the socket waits for, and the engine polls the connection again
//! when the socket is ready (the waker `h2` keeps is only for its own hand-offs between
//! streams and the connection, see `h2.rs`). Beside that, the frames the server sends are
//! followed by their 9-byte headers, without copying them, for two facts the `h2` crate does
//! not expose: whether the server's first SETTINGS frame has been read (so its stream limit
//! is known before a connection takes more than one stream), and the last stream id of a
//! GOAWAY (so that only the streams the server did not process are sent again).

use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::sock;
use crate::tls::Session;

/// What the engine reads of the transport from outside (the transport itself is inside the
/// `h2` connection).
#[derive(Debug)]
pub(crate) struct IoState {
    /// A write would have blocked: the socket is watched for writability too.
    pub(crate) blocked_write: AtomicBool,
    /// The server's first frame (its SETTINGS) has been read whole.
    pub(crate) settings_seen: AtomicBool,
    /// The lowest last-stream id of the GOAWAY frames read; `u32::MAX` for none.
    pub(crate) goaway_last: AtomicU32,
}

impl IoState {
    pub(crate) fn new() -> Arc<IoState> {
        Arc::new(IoState {
            blocked_write: AtomicBool::new(false),
            settings_seen: AtomicBool::new(false),
            goaway_last: AtomicU32::new(u32::MAX),
        })
    }

    /// The last stream the server said it may have processed, once it said GOAWAY.
    pub(crate) fn goaway_last(&self) -> Option<u32> {
        match self.goaway_last.load(Ordering::Relaxed) {
            u32::MAX => None,
            id => Some(id),
        }
    }
}

/// Follows frame boundaries in the bytes read.
#[derive(Debug, Default)]
struct Frames {
    head: [u8; 9],
    have: usize,
    in_payload: bool,
    left: usize,
    goaway: bool,
    id: [u8; 4],
    id_have: usize,
    frames: u64,
}

/// The GOAWAY frame's type (RFC 9113, 6.8).
const GOAWAY: u8 = 0x7;

impl Frames {
    fn feed(&mut self, mut data: &[u8], state: &IoState) {
        while !data.is_empty() {
            if !self.in_payload {
                let n = (9 - self.have).min(data.len());
                self.head[self.have..self.have + n].copy_from_slice(&data[..n]);
                self.have += n;
                data = &data[n..];
                if self.have == 9 {
                    let h = &self.head;
                    self.left =
                        usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                    self.goaway = h[3] == GOAWAY;
                    self.id_have = 0;
                    self.in_payload = true;
                    if self.left == 0 {
                        self.end(state);
                    }
                }
                continue;
            }
            let n = self.left.min(data.len());
            if self.goaway && self.id_have < 4 {
                let k = (4 - self.id_have).min(n);
                self.id[self.id_have..self.id_have + k].copy_from_slice(&data[..k]);
                self.id_have += k;
            }
            self.left -= n;
            data = &data[n..];
            if self.left == 0 {
                self.end(state);
            }
        }
    }

    fn end(&mut self, state: &IoState) {
        self.frames += 1;
        if self.frames == 1 {
            state.settings_seen.store(true, Ordering::Relaxed);
        }
        if self.goaway && self.id_have == 4 {
            let last = u32::from_be_bytes(self.id) & 0x7fff_ffff;
            state.goaway_last.fetch_min(last, Ordering::Relaxed);
        }
        self.in_payload = false;
        self.have = 0;
    }
}

/// The connection's socket and TLS session, owned by the `h2` connection. The descriptor is
/// shared with the engine's record of the connection, which keeps it open until the driver
/// has been told Remove.
pub(crate) struct Io {
    fd: Arc<OwnedFd>,
    tls: Option<Session>,
    state: Arc<IoState>,
    frames: Frames,
}

impl Io {
    pub(crate) fn new(fd: Arc<OwnedFd>, tls: Option<Session>, state: Arc<IoState>) -> Io {
        Io { fd, tls, state, frames: Frames::default() }
    }

    fn blocked<T>(&self, r: io::Result<T>) -> Poll<io::Result<T>> {
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.state.blocked_write.store(true, Ordering::Relaxed);
                Poll::Pending
            }
            other => Poll::Ready(other),
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let dst = buf.initialize_unfilled();
        let r = match &mut this.tls {
            Some(s) => s.recv(&this.fd, dst),
            None => sock::recv(&this.fd, dst),
        };
        match r {
            Ok(n) => {
                this.frames.feed(&dst[..n], &this.state);
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            // Reading is always watched on an HTTP/2 connection: the engine polls again when
            // the socket is readable.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                Poll::Ready(Err(io::Error::other(format!("TLS: {e}"))))
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = match &mut this.tls {
            Some(s) => s.send_slice(&this.fd, data),
            None => sock::send(&this.fd, data),
        };
        this.blocked(r)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = match &mut this.tls {
            Some(s) => s.flush(&this.fd),
            None => Ok(()),
        };
        this.blocked(r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The engine closes the socket itself, after its Remove is told.
        self.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, 0, 0, 0, 0, 0];
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn frames_are_followed_across_any_split() {
        let mut bytes = frame(0x4, &[0, 3, 0, 0, 0, 8]);
        bytes.extend(frame(0x0, &[1; 300]));
        bytes.extend(frame(GOAWAY, &[0, 0, 0, 7, 0, 0, 0, 0]));
        bytes.extend(frame(GOAWAY, &[0x80, 0, 0, 9, 0, 0, 0, 0]));
        for split in 1..bytes.len() {
            let state = IoState::new();
            let mut f = Frames::default();
            f.feed(&bytes[..split.min(8)], &state);
            assert!(!state.settings_seen.load(Ordering::Relaxed));
            f.feed(&bytes[split.min(8)..split], &state);
            f.feed(&bytes[split..], &state);
            assert!(state.settings_seen.load(Ordering::Relaxed));
            // The lowest id wins, and the reserved bit is not part of it.
            assert_eq!(state.goaway_last(), Some(7), "split at {split}");
            assert_eq!(f.frames, 4);
        }
    }

    #[test]
    fn a_frame_cut_short_is_not_counted() {
        let state = IoState::new();
        let mut f = Frames::default();
        let bytes = frame(0x4, &[0; 6]);
        f.feed(&bytes[..bytes.len() - 1], &state);
        assert!(!state.settings_seen.load(Ordering::Relaxed));
        // A GOAWAY too short to hold a stream id names none.
        let state = IoState::new();
        let mut f = Frames::default();
        f.feed(&frame(GOAWAY, &[0, 0]), &state);
        assert_eq!(state.goaway_last(), None);
    }

    /// Random frame sequences, cut at random points: the tracker agrees with the frames as
    /// written, whatever the cuts (a generative check of the only decoding we do ourselves).
    #[test]
    fn random_frames_at_random_cuts() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound.max(1)
        };
        for _ in 0..500 {
            let mut bytes = Vec::new();
            let mut lowest = None::<u32>;
            let count = 1 + next(12);
            for _ in 0..count {
                let kind = [0x0, 0x1, 0x4, 0x6, GOAWAY, 0x8, 0xff][next(7) as usize];
                let big = next(4) == 0;
                let len = next(if big { 70_000 } else { 20 }) as usize;
                let mut payload: Vec<u8> = (0..len).map(|_| next(256) as u8).collect();
                if kind == GOAWAY && len >= 4 {
                    let id = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                    let id = id & 0x7fff_ffff;
                    lowest = Some(lowest.map_or(id, |l: u32| l.min(id)));
                }
                if kind == GOAWAY && len < 4 {
                    payload.clear();
                }
                bytes.extend(frame(kind, &payload));
            }
            let state = IoState::new();
            let mut f = Frames::default();
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let cut = 1 + next(rest.len() as u64) as usize;
                f.feed(&rest[..cut.min(rest.len())], &state);
                rest = &rest[cut.min(rest.len())..];
            }
            assert_eq!(f.frames, count);
            assert!(state.settings_seen.load(Ordering::Relaxed));
            assert_eq!(state.goaway_last(), lowest);
        }
    }
}
