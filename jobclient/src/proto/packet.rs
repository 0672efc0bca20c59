//! One packet: header fields plus a body split into arguments without copying.

use bytes::{BufMut, Bytes, BytesMut};

use super::{Magic, PacketType, ProtoError};

/// The most arguments any packet type has (`SUBMIT_JOB_SCHED`).
const MAX_ARGS: usize = 8;
/// Bytes in a packet header.
pub const HEADER_LEN: usize = 12;
/// The longest job handle gearmand produces or accepts.
pub const MAX_HANDLE: usize = 64;
/// The longest unique ID.
pub const MAX_UNIQUE: usize = 64;
/// The longest function name.
pub const MAX_FUNCTION: usize = 512;
/// The longest client ID (`SET_CLIENT_ID`) a server keeps; a longer one is a protocol error.
pub const MAX_CLIENT_ID: usize = 255;

/// A decoded packet. Its arguments are slices of one shared body buffer.
#[derive(Clone, PartialEq, Eq)]
pub struct Packet {
    magic: Magic,
    kind: PacketType,
    body: Bytes,
    /// `(start, end)` of each argument within `body`.
    spans: [(u32, u32); MAX_ARGS],
}

impl Packet {
    /// Splits `body` into the arguments `kind` has: all but the last end at a NUL, the last
    /// runs to the end.
    ///
    /// gearmand quirk tolerated here: a `WORK_FAIL` forwarded for a `WORK_EXCEPTION` (when the
    /// exceptions option is off) carries a trailing empty argument; the handle ends at the
    /// first NUL and the rest is ignored.
    pub fn parse(magic: Magic, kind: PacketType, body: Bytes) -> Result<Packet, ProtoError> {
        let argc = kind.arg_count();
        let mut spans = [(0u32, 0u32); MAX_ARGS];
        let mut start = 0usize;
        for (i, span) in spans.iter_mut().enumerate().take(argc) {
            let last = i + 1 == argc;
            let end = if last {
                if kind == PacketType::WorkFail {
                    body[start..].iter().position(|&b| b == 0).map_or(body.len(), |p| start + p)
                } else {
                    body.len()
                }
            } else {
                match body[start..].iter().position(|&b| b == 0) {
                    Some(p) => start + p,
                    None => {
                        return Err(ProtoError::MissingArgs { kind, expected: argc, found: i + 1 })
                    }
                }
            };
            *span = (start as u32, end as u32);
            start = end + 1;
        }
        Ok(Packet { magic, kind, body, spans })
    }

    /// Builds a packet from its arguments (for tests and for code that keeps packets).
    pub fn new(magic: Magic, kind: PacketType, args: &[&[u8]]) -> Result<Packet, ProtoError> {
        let mut buf = BytesMut::new();
        encode(&mut buf, magic, kind, args)?;
        let body = buf.split_off(HEADER_LEN).freeze();
        Packet::parse(magic, kind, body)
    }

    /// Request or response.
    pub fn magic(&self) -> Magic {
        self.magic
    }

    /// The packet type.
    pub fn kind(&self) -> PacketType {
        self.kind
    }

    /// Argument `i`, sharing the body's buffer. Empty for an index past the type's arguments.
    pub fn arg(&self, i: usize) -> Bytes {
        match self.spans.get(i) {
            Some(&(s, e)) if i < self.kind.arg_count() => self.body.slice(s as usize..e as usize),
            _ => Bytes::new(),
        }
    }

    /// Argument `i` as a slice.
    pub fn arg_ref(&self, i: usize) -> &[u8] {
        match self.spans.get(i) {
            Some(&(s, e)) if i < self.kind.arg_count() => &self.body[s as usize..e as usize],
            _ => &[],
        }
    }

    /// Argument `i` parsed as a decimal number (status counters, timeouts, epochs).
    pub fn number(&self, i: usize, what: &'static str) -> Result<u64, ProtoError> {
        std::str::from_utf8(self.arg_ref(i))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or(ProtoError::BadNumber { what })
    }

    /// The whole body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Checks the protocol's length limits on handles, unique IDs and function names.
    pub fn check_limits(&self) -> Result<(), ProtoError> {
        use PacketType as T;
        let check = |what, i: usize, max| {
            let len = self.arg_ref(i).len();
            if len > max {
                Err(ProtoError::ArgTooLong { what, len, max })
            } else {
                Ok(())
            }
        };
        match self.kind {
            T::CanDo | T::CantDo | T::CanDoTimeout => check("function", 0, MAX_FUNCTION),
            T::SubmitJob
            | T::SubmitJobBg
            | T::SubmitJobHigh
            | T::SubmitJobHighBg
            | T::SubmitJobLow
            | T::SubmitJobLowBg
            | T::SubmitJobSched
            | T::SubmitJobEpoch
            | T::SubmitReduceJob
            | T::SubmitReduceJobBackground => {
                check("function", 0, MAX_FUNCTION)?;
                check("unique ID", 1, MAX_UNIQUE)
            }
            T::GetStatusUnique => check("unique ID", 0, MAX_UNIQUE),
            T::SetClientId => check("client ID", 0, MAX_CLIENT_ID),
            T::JobCreated
            | T::WorkStatus
            | T::WorkComplete
            | T::WorkFail
            | T::WorkException
            | T::WorkData
            | T::WorkWarning
            | T::GetStatus => check("job handle", 0, MAX_HANDLE),
            _ => Ok(()),
        }
    }
}

impl std::fmt::Debug for Packet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let args: Vec<_> = (0..self.kind.arg_count())
            .map(|i| {
                let a = self.arg_ref(i);
                if a.len() > 32 {
                    format!("{:?}… ({} bytes)", String::from_utf8_lossy(&a[..32]), a.len())
                } else {
                    format!("{:?}", String::from_utf8_lossy(a))
                }
            })
            .collect();
        f.debug_struct("Packet")
            .field("magic", &self.magic)
            .field("kind", &self.kind)
            .field("args", &args)
            .finish()
    }
}

/// Appends one packet to `out`. Every argument but the last must be free of NUL bytes (they
/// are the separators); the last may hold anything.
pub fn encode(
    out: &mut BytesMut,
    magic: Magic,
    kind: PacketType,
    args: &[&[u8]],
) -> Result<(), ProtoError> {
    let argc = kind.arg_count();
    if args.len() != argc {
        return Err(ProtoError::MissingArgs { kind, expected: argc, found: args.len() });
    }
    let len: usize = args.iter().map(|a| a.len()).sum::<usize>() + argc.saturating_sub(1);
    let len32 =
        u32::try_from(len).map_err(|_| ProtoError::TooLarge { len, max: u32::MAX as usize })?;
    out.reserve(HEADER_LEN + len);
    out.put_slice(&magic.bytes());
    out.put_u32(kind.code());
    out.put_u32(len32);
    for (i, a) in args.iter().enumerate() {
        out.put_slice(a);
        if i + 1 < argc {
            out.put_u8(0);
        }
    }
    Ok(())
}
