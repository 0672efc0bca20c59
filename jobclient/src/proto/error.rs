//! Errors of the wire format.

use super::PacketType;

/// What is wrong with bytes received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The first four bytes are neither `\0REQ` nor `\0RES`.
    #[error("bad magic {0:02x?}")]
    BadMagic([u8; 4]),
    /// A packet type number the protocol does not define (gearmand closes the connection).
    #[error("unknown packet type {0}")]
    UnknownType(u32),
    /// The length field exceeds the limit; nothing was allocated for it.
    #[error("packet body of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The length the header announced.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// Fewer NUL separators than the packet type needs.
    #[error("{kind:?} needs {expected} arguments, found {found}")]
    MissingArgs {
        /// The packet type.
        kind: PacketType,
        /// Arguments it needs.
        expected: usize,
        /// Arguments present.
        found: usize,
    },
    /// A handle, unique ID or function name longer than the protocol allows.
    #[error("{what} of {len} bytes exceeds {max}")]
    ArgTooLong {
        /// Which argument.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A request where a response was expected, or the reverse.
    #[error("unexpected {magic:?} packet {kind:?}")]
    Unexpected {
        /// Its magic.
        magic: super::Magic,
        /// Its type.
        kind: PacketType,
    },
    /// A numeric argument (status, timeout, epoch) that is not a number.
    #[error("{what} is not a number")]
    BadNumber {
        /// Which argument.
        what: &'static str,
    },
    /// An administrative text line longer than the limit.
    #[error("text line longer than {0} bytes")]
    LineTooLong(usize),
    /// More of something than a server allows one connection (functions registered).
    #[error("more than {max} {what} on one connection")]
    TooMany {
        /// What there are too many of.
        what: &'static str,
        /// The limit.
        max: usize,
    },
}
