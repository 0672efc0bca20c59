//! The codec, case by case, plus generated round trips and garbage.

use bytes::BytesMut;

use super::*;

/// A small deterministic generator (xorshift64*), so failures name a seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(&mut self, max: usize, nul_free: bool) -> Vec<u8> {
        let n = (self.next() % (max as u64 + 1)) as usize;
        (0..n)
            .map(|_| {
                let b = self.next() as u8;
                if nul_free && b == 0 {
                    1
                } else {
                    b
                }
            })
            .collect()
    }
}

fn decode_all(decoder: &Decoder, bytes: &[u8]) -> Result<Vec<Frame>, ProtoError> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(f) = decoder.decode(&mut buf)? {
        out.push(f);
    }
    Ok(out)
}

fn packet(f: &Frame) -> &Packet {
    match f {
        Frame::Packet(p) => p,
        other => panic!("expected a packet, got {other:?}"),
    }
}

/// Wire bytes, the packet type they hold, and its arguments.
type Case<'a> = (&'a [u8], PacketType, &'a [&'a [u8]]);

#[test]
fn the_protocol_documents_examples_decode() {
    // (bytes from gearmand's PROTOCOL, expected type, expected arguments)
    let cases: [Case<'_>; 5] = [
        (b"\0REQ\0\0\0\x01\0\0\0\x07reverse", PacketType::CanDo, &[b"reverse"]),
        (b"\0REQ\0\0\0\x09\0\0\0\0", PacketType::GrabJob, &[]),
        (
            b"\0REQ\0\0\0\x07\0\0\0\x0dreverse\0\0test",
            PacketType::SubmitJob,
            &[b"reverse", b"", b"test"],
        ),
        (b"\0RES\0\0\0\x08\0\0\0\x07H:lap:1", PacketType::JobCreated, &[b"H:lap:1"]),
        (
            b"\0RES\0\0\0\x0b\0\0\0\x14H:lap:1\0reverse\0test",
            PacketType::JobAssign,
            &[b"H:lap:1", b"reverse", b"test"],
        ),
    ];
    for (bytes, kind, args) in cases {
        let frames = decode_all(&Decoder::client(), bytes).unwrap();
        let p = packet(&frames[0]);
        assert_eq!(p.kind(), kind);
        let got: Vec<&[u8]> = (0..kind.arg_count()).map(|i| p.arg_ref(i)).collect();
        assert_eq!(got, args, "{kind:?}");
        let mut re = BytesMut::new();
        encode(&mut re, p.magic(), kind, args).unwrap();
        assert_eq!(&re[..], bytes, "{kind:?} re-encodes to the same bytes");
    }
}

#[test]
fn every_type_round_trips_with_generated_arguments() {
    let mut rng = Rng(0x5eed);
    for code in 0..=45u32 {
        let Some(kind) = PacketType::from_code(code) else { continue };
        for _ in 0..50 {
            let argc = kind.arg_count();
            let args: Vec<Vec<u8>> = (0..argc).map(|i| rng.bytes(40, i + 1 < argc)).collect();
            let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let mut buf = BytesMut::new();
            encode(&mut buf, Magic::Req, kind, &refs).unwrap();
            let frames = decode_all(&Decoder::client(), &buf).unwrap();
            assert_eq!(frames.len(), 1);
            let p = packet(&frames[0]);
            let mut expect = args.clone();
            if kind == PacketType::WorkFail {
                // The handle of a WORK_FAIL ends at its first NUL (gearmand quirk).
                let a = &mut expect[0];
                if let Some(n) = a.iter().position(|&b| b == 0) {
                    a.truncate(n);
                }
            }
            for (i, a) in expect.iter().enumerate() {
                assert_eq!(p.arg_ref(i), &a[..], "{kind:?} arg {i}");
            }
        }
    }
}

#[test]
fn byte_at_a_time_gives_the_same_packets() {
    let mut all = BytesMut::new();
    encode(&mut all, Magic::Req, PacketType::SubmitJob, &[b"f", b"u", b"payload\0with nul"])
        .unwrap();
    encode(&mut all, Magic::Res, PacketType::Noop, &[]).unwrap();
    encode(&mut all, Magic::Res, PacketType::StatusRes, &[b"H:x:1", b"1", b"0", b"3", b"10"])
        .unwrap();
    let whole = decode_all(&Decoder::client(), &all).unwrap();
    let d = Decoder::client();
    let mut buf = BytesMut::new();
    let mut pieces = Vec::new();
    for b in all.iter() {
        buf.extend_from_slice(&[*b]);
        while let Some(f) = d.decode(&mut buf).unwrap() {
            pieces.push(f);
        }
    }
    assert_eq!(pieces, whole);
    assert_eq!(whole.len(), 3);
    assert_eq!(packet(&whole[0]).arg_ref(2), b"payload\0with nul");
}

#[test]
fn errors_are_typed() {
    let d = Decoder::client().max_body(1024);
    let cases: [(&[u8], ProtoError); 5] = [
        (b"\0REX\0\0\0\x01\0\0\0\0", ProtoError::BadMagic(*b"\0REX")),
        (b"\0REQ\0\0\0\x05\0\0\0\0", ProtoError::UnknownType(5)),
        (b"\0REQ\0\0\0\x63\0\0\0\0", ProtoError::UnknownType(99)),
        (
            b"\0RES\0\0\0\x0d\xff\xff\xff\xff",
            ProtoError::TooLarge { len: u32::MAX as usize, max: 1024 },
        ),
        (
            b"\0REQ\0\0\0\x07\0\0\0\x03abc",
            ProtoError::MissingArgs { kind: PacketType::SubmitJob, expected: 3, found: 1 },
        ),
    ];
    for (bytes, err) in cases {
        assert_eq!(decode_all(&d, bytes), Err(err));
    }
    let text = decode_all(&Decoder::client(), b"status\r\n");
    assert!(matches!(text, Err(ProtoError::BadMagic(_))), "a client rejects text");
}

#[test]
fn an_oversized_length_allocates_nothing() {
    let d = Decoder::client().max_body(1 << 20);
    let mut buf = BytesMut::with_capacity(16);
    buf.extend_from_slice(b"\0RES\0\0\0\x0d\x7f\xff\xff\xff");
    let cap = buf.capacity();
    assert!(matches!(d.decode(&mut buf), Err(ProtoError::TooLarge { .. })));
    assert_eq!(buf.capacity(), cap);
}

#[test]
fn work_fail_with_a_trailing_empty_argument() {
    // gearmand without the exceptions option forwards WORK_EXCEPTION as WORK_FAIL "H\0".
    let frames = decode_all(&Decoder::client(), b"\0RES\0\0\0\x0e\0\0\0\x09H:host:1\0").unwrap();
    assert_eq!(packet(&frames[0]).arg_ref(0), b"H:host:1");
}

#[test]
fn limits_on_handles_uniques_and_functions() {
    let long = vec![b'x'; MAX_UNIQUE + 1];
    let p = Packet::new(Magic::Req, PacketType::SubmitJob, &[b"f", &long, b"data"]).unwrap();
    assert_eq!(
        p.check_limits(),
        Err(ProtoError::ArgTooLong { what: "unique ID", len: 65, max: 64 })
    );
    let ok = Packet::new(Magic::Req, PacketType::SubmitJob, &[b"f", &long[..64], b"data"]).unwrap();
    assert_eq!(ok.check_limits(), Ok(()));
    let f = vec![b'f'; MAX_FUNCTION + 1];
    let p = Packet::new(Magic::Req, PacketType::CanDo, &[&f]).unwrap();
    assert!(matches!(p.check_limits(), Err(ProtoError::ArgTooLong { what: "function", .. })));
}

#[test]
fn server_decoder_reads_admin_lines_between_packets() {
    let mut bytes = b"status\r\nworkers\n".to_vec();
    let mut pkt = BytesMut::new();
    encode(&mut pkt, Magic::Req, PacketType::EchoReq, &[b"hi"]).unwrap();
    bytes.extend_from_slice(&pkt);
    let frames = decode_all(&Decoder::server(), &bytes).unwrap();
    assert_eq!(frames[0], Frame::Admin("status".into()));
    assert_eq!(frames[1], Frame::Admin("workers".into()));
    assert_eq!(packet(&frames[2]).arg_ref(0), b"hi");
    let long = vec![b'a'; MAX_LINE + 1];
    assert_eq!(decode_all(&Decoder::server(), &long), Err(ProtoError::LineTooLong(MAX_LINE)));
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut rng = Rng(42);
    for round in 0..20_000 {
        let mut bytes = rng.bytes(64, false);
        // Half the time, start with a valid header so the body paths get exercised.
        if round % 2 == 0 {
            let code = (rng.next() % 45) as u32;
            let len = (rng.next() % 70) as u32;
            let mut h = b"\0RES".to_vec();
            h.extend_from_slice(&code.to_be_bytes());
            h.extend_from_slice(&len.to_be_bytes());
            h.extend_from_slice(&bytes);
            bytes = h;
        }
        for d in [Decoder::client().max_body(64), Decoder::server().max_body(64)] {
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(frame)) = d.decode(&mut buf) {
                if let Frame::Packet(p) = frame {
                    let _ = p.check_limits();
                    for i in 0..10 {
                        let _ = p.arg(i);
                    }
                }
            }
        }
    }
}
