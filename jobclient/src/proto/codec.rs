//! The incremental decoder: bytes in, packets (or administrative text lines) out.

use bytes::{Buf, BytesMut};

use super::packet::HEADER_LEN;
use super::{Magic, Packet, PacketType, ProtoError};

/// The most a decoder reserves in a buffer ahead of the bytes that have arrived.
const RESERVE_AHEAD: usize = 64 * 1024;

/// The longest administrative text line accepted.
pub const MAX_LINE: usize = 4096;

/// What the decoder produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A binary packet.
    Packet(Packet),
    /// A line of the administrative text protocol (without its line ending). Only produced by a
    /// decoder made with [`Decoder::server`].
    Admin(String),
}

/// Splits a byte stream into frames. Holds no buffer of its own: feed it the connection's.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_body: usize,
    admin: bool,
}

impl Decoder {
    /// The default limit on a packet body: 64 MiB.
    pub const DEFAULT_MAX_BODY: usize = 64 << 20;

    /// A decoder for a client or worker: binary packets only.
    pub fn client() -> Decoder {
        Decoder { max_body: Self::DEFAULT_MAX_BODY, admin: false }
    }

    /// A decoder for a server: binary packets, and text lines when a frame does not start with
    /// a NUL byte (as gearmand tells the two apart).
    pub fn server() -> Decoder {
        Decoder { max_body: Self::DEFAULT_MAX_BODY, admin: true }
    }

    /// Sets the largest body accepted. A header announcing more is an error before anything is
    /// allocated for it.
    #[must_use]
    pub fn max_body(mut self, max: usize) -> Decoder {
        self.max_body = max;
        self
    }

    /// Takes one frame off the front of `buf`, or returns `None` when more bytes are needed.
    /// After an error the connection should be closed: the stream is out of step.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtoError> {
        let Some(&first) = buf.first() else { return Ok(None) };
        if first != 0 {
            if !self.admin {
                let mut m = [0u8; 4];
                let n = buf.len().min(4);
                m[..n].copy_from_slice(&buf[..n]);
                return Err(ProtoError::BadMagic(m));
            }
            return match buf.iter().position(|&b| b == b'\n') {
                Some(p) => {
                    let line = buf.split_to(p + 1);
                    let text =
                        String::from_utf8_lossy(&line[..p]).trim_end_matches('\r').to_string();
                    Ok(Some(Frame::Admin(text)))
                }
                None if buf.len() > MAX_LINE => Err(ProtoError::LineTooLong(MAX_LINE)),
                None => Ok(None),
            };
        }
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let magic_bytes: [u8; 4] = buf[0..4].try_into().expect("four bytes");
        let magic = Magic::from_bytes(magic_bytes).ok_or(ProtoError::BadMagic(magic_bytes))?;
        let code = u32::from_be_bytes(buf[4..8].try_into().expect("four bytes"));
        let kind = PacketType::from_code(code).ok_or(ProtoError::UnknownType(code))?;
        let len = u32::from_be_bytes(buf[8..12].try_into().expect("four bytes")) as usize;
        if len > self.max_body {
            return Err(ProtoError::TooLarge { len, max: self.max_body });
        }
        if buf.len() < HEADER_LEN + len {
            // Reserve for what is coming, but never more than a read's worth ahead of what has
            // arrived: a 12-byte header announcing 64 MiB must not cost 64 MiB until the bytes
            // come (a thousand such headers would otherwise reserve 64 GiB).
            buf.reserve((HEADER_LEN + len - buf.len()).min(RESERVE_AHEAD));
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        let body = buf.split_to(len).freeze();
        Packet::parse(magic, kind, body).map(|p| Some(Frame::Packet(p)))
    }
}
