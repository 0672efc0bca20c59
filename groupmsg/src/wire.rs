//! The `groupd` wire format: length-prefixed frames on a Unix stream socket.
//!
//! A frame is a big-endian u32 length (of what follows), a type byte and a payload. The
//! length is checked against [`MAX_FRAME`] before anything is allocated; a frame that does not
//! parse is a typed [`WireError`] and ends that connection only.

use bytes::{Buf, BufMut, BytesMut};

use crate::{Change, CpgEvent, CsError, GroupName, Member, Reason};

/// The largest frame: the largest message plus room for its header.
pub const MAX_FRAME: usize = crate::local::LOCAL_MAX_MESSAGE + 4096;

/// Why bytes from a peer are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The length field exceeds [`MAX_FRAME`]; nothing was allocated.
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// A type byte the protocol does not define.
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    /// A payload shorter than its fields say, or with bytes left over.
    #[error("malformed {0} frame")]
    Malformed(&'static str),
}

/// Client to daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// A join, with the handle's model flags (as corosync's join request carries them).
    Join(GroupName, u32),
    Leave,
    Mcast(Vec<u8>),
    Membership,
    Groups,
    /// Whether flow control is on (answered with a `Result`: OK or TRY_AGAIN).
    FlowQuery,
    /// This client has received the SAFE message of that id (a [`Response::SafeProbe`]).
    SafeAck(u64),
    /// A multicast with SAFE delivery, pipelined as [`Request::Mcast`].
    McastSafe(Vec<u8>),
}

/// The protocol's version, in the daemon's greeting. 2: joins carry model flags, the totem
/// and flow-cleared frames exist. 3: SAFE delivery (its multicast, probe, acknowledgement and
/// delivery frames). A client and daemon of different versions part at once with
/// a typed error (`CS_ERR_VERSION` at the client; an old client reads the greeting as
/// malformed), never with one side misreading the other's frames.
pub(crate) const PROTOCOL: u32 = 3;

/// Daemon to client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Response {
    /// Who the client is, and the protocol version (1 when the greeting has none).
    Hello(Member, u32),
    Result(Result<(), CsError>),
    Members(Vec<Member>),
    Groups(Vec<(GroupName, Vec<Member>)>),
    Event(CpgEvent),
    /// The acknowledgement of one pipelined multicast, with the flow-control state after it.
    Flow(bool),
    /// A pipelined multicast the daemon could not take (reported on the client's next call).
    McastRefused(CsError),
    /// Flow control, which the client was told was on, is off again: a sender waiting for
    /// it may go on.
    FlowCleared,
    /// A SAFE message, sent for the client to keep and acknowledge ([`Request::SafeAck`]),
    /// not to deliver yet.
    SafeProbe {
        id: u64,
        group: GroupName,
        sender: Member,
        msg: Vec<u8>,
    },
    /// Every member has received the SAFE message of that id: deliver it now, in this place
    /// of the order.
    SafeDeliver(u64),
}

fn frame(out: &mut BytesMut, kind: u8, payload: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.put_u32(0);
    out.put_u8(kind);
    payload(out);
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

fn put_name(out: &mut BytesMut, g: &GroupName) {
    out.put_u16(g.as_bytes().len() as u16);
    out.put_slice(g.as_bytes());
}

fn put_member(out: &mut BytesMut, m: &Member) {
    out.put_u32(m.nodeid);
    out.put_u32(m.pid);
}

pub(crate) fn encode_request(out: &mut BytesMut, r: &Request) {
    match r {
        Request::Join(g, flags) => frame(out, 1, |o| {
            o.put_u32(*flags);
            o.put_slice(g.as_bytes())
        }),
        Request::Leave => frame(out, 2, |_| {}),
        Request::Mcast(m) => frame(out, 3, |o| o.put_slice(m)),
        Request::Membership => frame(out, 4, |_| {}),
        Request::Groups => frame(out, 5, |_| {}),
        Request::FlowQuery => frame(out, 6, |_| {}),
        Request::SafeAck(id) => frame(out, 7, |o| o.put_u64(*id)),
        Request::McastSafe(m) => frame(out, 8, |o| o.put_slice(m)),
    }
}

/// A delivery, encoded from the message as the bus shares it: the same frame as
/// `Response::Event(CpgEvent::Deliver { .. })`, with no copy into a `Vec` on the way.
pub(crate) fn encode_deliver(out: &mut BytesMut, group: &GroupName, sender: &Member, msg: &[u8]) {
    frame(out, 110, |o| {
        put_name(o, group);
        put_member(o, sender);
        o.put_slice(msg);
    })
}

/// A SAFE message's probe, encoded from the shared message (`Response::SafeProbe`'s frame).
pub(crate) fn encode_safe_probe(
    out: &mut BytesMut,
    id: u64,
    group: &GroupName,
    sender: &Member,
    msg: &[u8],
) {
    frame(out, 123, |o| {
        o.put_u64(id);
        put_name(o, group);
        put_member(o, sender);
        o.put_slice(msg);
    })
}

pub(crate) fn encode_response(out: &mut BytesMut, r: &Response) {
    match r {
        Response::Hello(m, version) => frame(out, 100, |o| {
            put_member(o, m);
            o.put_u32(*version)
        }),
        Response::Result(res) => frame(out, 101, |o| o.put_u32(res.err().map_or(1, CsError::code))),
        Response::Members(ms) => frame(out, 102, |o| {
            o.put_u32(ms.len() as u32);
            ms.iter().for_each(|m| put_member(o, m));
        }),
        Response::Groups(gs) => frame(out, 103, |o| {
            o.put_u32(gs.len() as u32);
            for (g, ms) in gs {
                put_name(o, g);
                o.put_u32(ms.len() as u32);
                ms.iter().for_each(|m| put_member(o, m));
            }
        }),
        Response::Event(CpgEvent::Deliver { group, sender, msg }) => {
            encode_deliver(out, group, sender, msg)
        }
        Response::Event(CpgEvent::ConfChg { group, members, left, joined }) => {
            frame(out, 111, |o| {
                put_name(o, group);
                o.put_u32(members.len() as u32);
                members.iter().for_each(|m| put_member(o, m));
                for list in [left, joined] {
                    o.put_u32(list.len() as u32);
                    for c in list {
                        put_member(o, &c.member);
                        o.put_u32(c.reason.code());
                    }
                }
            })
        }
        Response::Event(CpgEvent::TotemConfChg { ring_id, nodes }) => frame(out, 112, |o| {
            o.put_u32(ring_id.nodeid);
            o.put_u64(ring_id.seq);
            o.put_u32(nodes.len() as u32);
            nodes.iter().for_each(|n| o.put_u32(*n));
        }),
        Response::Flow(on) => frame(out, 120, |o| o.put_u8(u8::from(*on))),
        Response::McastRefused(e) => frame(out, 121, |o| o.put_u32(e.code())),
        Response::FlowCleared => frame(out, 122, |_| {}),
        Response::SafeProbe { id, group, sender, msg } => {
            encode_safe_probe(out, *id, group, sender, msg)
        }
        Response::SafeDeliver(id) => frame(out, 124, |o| o.put_u64(*id)),
    }
}

/// Takes one frame off the front of `buf`: its type and payload, or `None` for more bytes.
fn split(buf: &mut BytesMut) -> Result<Option<(u8, BytesMut)>, WireError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = u32::from_be_bytes(buf[..4].try_into().expect("four bytes")) as usize;
    if len > MAX_FRAME || len == 0 {
        return Err(WireError::TooLarge(len));
    }
    if buf.len() < 4 + len {
        // Room for what is promised, but never more than a read's worth ahead of what came:
        // a header alone must not make a peer's connection reserve a whole large frame.
        buf.reserve((4 + len - buf.len()).min(64 << 10));
        return Ok(None);
    }
    buf.advance(4);
    let mut body = buf.split_to(len);
    let kind = body.get_u8();
    Ok(Some((kind, body)))
}

struct Fields<'a> {
    b: &'a mut BytesMut,
    what: &'static str,
}

impl Fields<'_> {
    fn u8(&mut self) -> Result<u8, WireError> {
        (self.b.remaining() >= 1).then(|| self.b.get_u8()).ok_or(WireError::Malformed(self.what))
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        (self.b.remaining() >= 2).then(|| self.b.get_u16()).ok_or(WireError::Malformed(self.what))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        (self.b.remaining() >= 4).then(|| self.b.get_u32()).ok_or(WireError::Malformed(self.what))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        (self.b.remaining() >= 8).then(|| self.b.get_u64()).ok_or(WireError::Malformed(self.what))
    }
    fn member(&mut self) -> Result<Member, WireError> {
        Ok(Member { nodeid: self.u32()?, pid: self.u32()? })
    }
    fn name(&mut self) -> Result<GroupName, WireError> {
        let n = self.u16()? as usize;
        if self.b.remaining() < n {
            return Err(WireError::Malformed(self.what));
        }
        GroupName::new(self.b.split_to(n)).map_err(|_| WireError::Malformed(self.what))
    }
    /// A count, bounded by what the payload can hold, so a huge count allocates nothing.
    fn count(&mut self, each: usize) -> Result<usize, WireError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(each) > self.b.remaining() {
            return Err(WireError::Malformed(self.what));
        }
        Ok(n)
    }
    fn rest(&mut self) -> Vec<u8> {
        self.b.split().to_vec()
    }
    fn end(&self) -> Result<(), WireError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(WireError::Malformed(self.what))
        }
    }
}

pub(crate) fn decode_request(buf: &mut BytesMut) -> Result<Option<Request>, WireError> {
    let Some((kind, mut body)) = split(buf)? else { return Ok(None) };
    let mut f = Fields { b: &mut body, what: "request" };
    let r = match kind {
        1 => {
            let flags = f.u32()?;
            let name = GroupName::new(f.b.split()).map_err(|_| WireError::Malformed("join"))?;
            Request::Join(name, flags)
        }
        2 => Request::Leave,
        3 => Request::Mcast(f.b.split().to_vec()),
        4 => Request::Membership,
        5 => Request::Groups,
        6 => Request::FlowQuery,
        7 => Request::SafeAck(f.u64()?),
        8 => Request::McastSafe(f.b.split().to_vec()),
        k => return Err(WireError::UnknownType(k)),
    };
    f.end()?;
    Ok(Some(r))
}

pub(crate) fn decode_response(buf: &mut BytesMut) -> Result<Option<Response>, WireError> {
    let Some((kind, mut body)) = split(buf)? else { return Ok(None) };
    let mut f = Fields { b: &mut body, what: "response" };
    let r = match kind {
        100 => {
            let m = f.member()?;
            let version = if f.b.is_empty() { 1 } else { f.u32()? };
            Response::Hello(m, version)
        }
        101 => Response::Result(match f.u32()? {
            1 => Ok(()),
            code => Err(CsError::from_code(code).unwrap_or(CsError::Library)),
        }),
        102 => {
            let n = f.count(8)?;
            Response::Members((0..n).map(|_| f.member()).collect::<Result<_, _>>()?)
        }
        103 => {
            let n = f.count(6)?;
            let mut gs = Vec::with_capacity(n);
            for _ in 0..n {
                let g = f.name()?;
                let m = f.count(8)?;
                gs.push((g, (0..m).map(|_| f.member()).collect::<Result<_, _>>()?));
            }
            Response::Groups(gs)
        }
        110 => {
            let group = f.name()?;
            let sender = f.member()?;
            let msg = f.rest();
            Response::Event(CpgEvent::Deliver { group, sender, msg })
        }
        111 => {
            let group = f.name()?;
            let n = f.count(8)?;
            let members = (0..n).map(|_| f.member()).collect::<Result<_, _>>()?;
            let mut lists = [Vec::new(), Vec::new()];
            for list in &mut lists {
                let n = f.count(12)?;
                for _ in 0..n {
                    let member = f.member()?;
                    let reason = match f.u32()? {
                        1 => Reason::Join,
                        2 => Reason::Leave,
                        3 => Reason::NodeDown,
                        4 => Reason::NodeUp,
                        5 => Reason::ProcDown,
                        _ => return Err(WireError::Malformed("reason")),
                    };
                    list.push(Change { member, reason });
                }
            }
            let [left, joined] = lists;
            Response::Event(CpgEvent::ConfChg { group, members, left, joined })
        }
        112 => {
            let ring_id = crate::RingId { nodeid: f.u32()?, seq: f.u64()? };
            let n = f.count(4)?;
            let nodes = (0..n).map(|_| f.u32()).collect::<Result<_, _>>()?;
            Response::Event(CpgEvent::TotemConfChg { ring_id, nodes })
        }
        120 => Response::Flow(f.u8()? != 0),
        121 => Response::McastRefused(CsError::from_code(f.u32()?).unwrap_or(CsError::Library)),
        122 => Response::FlowCleared,
        123 => {
            let id = f.u64()?;
            let group = f.name()?;
            let sender = f.member()?;
            let msg = f.rest();
            Response::SafeProbe { id, group, sender, msg }
        }
        124 => Response::SafeDeliver(f.u64()?),
        k => return Err(WireError::UnknownType(k)),
    };
    f.end()?;
    Ok(Some(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(n: &str) -> GroupName {
        GroupName::new(n).unwrap()
    }

    #[test]
    fn every_frame_round_trips() {
        let m = Member { nodeid: 1, pid: 42 };
        let responses = [
            Response::Hello(m, PROTOCOL),
            Response::Result(Ok(())),
            Response::Result(Err(CsError::TryAgain)),
            Response::Members(vec![m, Member { nodeid: 2, pid: 7 }]),
            Response::Groups(vec![(g("a"), vec![m]), (g("b"), vec![])]),
            Response::Event(CpgEvent::Deliver { group: g("a"), sender: m, msg: b"x\0y".to_vec() }),
            Response::Event(CpgEvent::ConfChg {
                group: g("a"),
                members: vec![m],
                left: vec![Change { member: m, reason: Reason::ProcDown }],
                joined: vec![Change { member: m, reason: Reason::Join }],
            }),
            Response::Event(CpgEvent::TotemConfChg {
                ring_id: crate::RingId { nodeid: 3, seq: u64::MAX - 1 },
                nodes: vec![1, 2, 3],
            }),
            Response::Flow(true),
            Response::McastRefused(CsError::TooBig),
            Response::FlowCleared,
            Response::SafeProbe { id: u64::MAX, group: g("a"), sender: m, msg: b"s".to_vec() },
            Response::SafeDeliver(7),
        ];
        let mut buf = BytesMut::new();
        for r in &responses {
            encode_response(&mut buf, r);
        }
        for r in &responses {
            assert_eq!(decode_response(&mut buf).unwrap().as_ref(), Some(r));
        }
        let requests = [
            Request::Join(g("grp"), 1),
            Request::Leave,
            Request::Mcast(vec![0, 1, 2]),
            Request::Membership,
            Request::Groups,
            Request::FlowQuery,
            Request::SafeAck(u64::MAX),
            Request::McastSafe(b"safe".to_vec()),
        ];
        for r in &requests {
            encode_request(&mut buf, r);
        }
        for r in &requests {
            assert_eq!(decode_request(&mut buf).unwrap().as_ref(), Some(r));
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn bad_frames_are_typed_errors() {
        // (bytes, error)
        let cases: [(&[u8], WireError); 5] = [
            (&[0xff, 0xff, 0xff, 0xff, 1], WireError::TooLarge(u32::MAX as usize)),
            (&[0, 0, 0, 1, 9], WireError::UnknownType(9)),
            (&[0, 0, 0, 2, 2, 0], WireError::Malformed("request")),
            (&[0, 0, 0, 1, 1], WireError::Malformed("request")),
            (&[0, 0, 0, 5, 1, 0, 0, 0, 0], WireError::Malformed("join")),
        ];
        for (bytes, err) in cases {
            assert_eq!(decode_request(&mut BytesMut::from(bytes)), Err(err));
        }
        // A member count far beyond the payload allocates nothing and fails.
        let mut huge = BytesMut::from(&[0u8, 0, 0, 5, 102, 0xff, 0xff, 0xff, 0xff][..]);
        assert_eq!(decode_response(&mut huge), Err(WireError::Malformed("response")));
    }

    #[test]
    fn a_greeting_without_a_version_is_version_one_and_a_header_reserves_little() {
        let mut old = BytesMut::from(&[0u8, 0, 0, 9, 100, 0, 0, 0, 1, 0, 0, 0, 42][..]);
        assert_eq!(
            decode_response(&mut old),
            Ok(Some(Response::Hello(Member { nodeid: 1, pid: 42 }, 1)))
        );
        let mut header = BytesMut::from(&((MAX_FRAME as u32).to_be_bytes())[..]);
        header.extend_from_slice(&[3]);
        assert_eq!(decode_request(&mut header), Ok(None));
        assert!(header.capacity() < 1 << 20, "reserved {}", header.capacity());
    }

    #[test]
    fn garbage_never_panics() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut bytes = Vec::new();
            for _ in 0..(x % 40) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                bytes.push(x as u8);
            }
            let mut a = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = decode_request(&mut a) {}
            let mut b = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = decode_response(&mut b) {}
        }
    }
}
