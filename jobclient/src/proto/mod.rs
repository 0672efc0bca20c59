//! The Gearman wire format, with no I/O: packet types, the incremental decoder, the encoder.
//!
//! A packet is a 12-byte header (magic `\0REQ` or `\0RES`, big-endian type, big-endian body
//! length) and a body of NUL-separated arguments, the last running to the end. The decoder
//! checks the length against a limit before it allocates, rejects bad magic and unknown types
//! with a typed error (gearmand closes the connection on those), and slices arguments out of
//! one shared buffer without copying.

mod codec;
mod error;
mod kind;
mod packet;

pub use codec::{Decoder, Frame, MAX_LINE};
pub use error::ProtoError;
pub use kind::{Magic, PacketType};
pub use packet::{encode, Packet, HEADER_LEN, MAX_CLIENT_ID, MAX_FUNCTION, MAX_HANDLE, MAX_UNIQUE};

#[cfg(test)]
mod tests;
