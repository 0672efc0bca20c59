//! The bodies of the fuzz targets, one function per decoder, shared by two runners:
//!
//! - `xtask/fuzz` (a cargo-fuzz project, outside the workspace) runs each under libFuzzer,
//!   coverage-guided: `cargo xtask fuzz` for long runs, and briefly in `cargo xtask ci`.
//! - `tests/seeded.rs` runs each on seeded random and mutated inputs, plus every input saved
//!   under `regressions/` (a finding becomes a file there), in plain `cargo test`.
//!
//! Each function panics only on a broken invariant: a decoder must not panic, allocate beyond
//! what it was given, or disagree with its own encoder.

use bytes::BytesMut;

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The fuzz targets by name, as `cargo xtask fuzz NAME` and `regressions/NAME/` know them.
pub const TARGETS: &[(&str, Target)] = &[
    ("gearman_packets", gearman_packets),
    ("gearman_server", gearman_server),
    ("journal", journal),
    ("groupd_frames", groupd_frames),
    ("http_response", http_response),
    ("url_glob", url_glob),
];

/// Gearman packets through the client's and the server's decoders; every packet that decodes
/// re-encodes to the same bytes' meaning.
pub fn gearman_packets(data: &[u8]) {
    use jobclient::proto::{encode, Decoder, Frame};
    for decoder in [Decoder::client(), Decoder::server().max_body(1 << 16)] {
        let mut buf = BytesMut::from(data);
        while let Ok(Some(frame)) = decoder.decode(&mut buf) {
            if let Frame::Packet(p) = frame {
                let _ = p.check_limits();
                let args: Vec<&[u8]> = (0..p.kind().arg_count()).map(|i| p.arg_ref(i)).collect();
                let mut again = BytesMut::new();
                if encode(&mut again, p.magic(), p.kind(), &args).is_ok() {
                    match Decoder::client().decode(&mut again) {
                        Ok(Some(Frame::Packet(q))) => assert_eq!(
                            (0..q.kind().arg_count()).map(|i| q.arg_ref(i)).collect::<Vec<_>>(),
                            args
                        ),
                        other => panic!("re-encoded packet did not decode: {other:?}"),
                    }
                }
            }
        }
    }
}

/// Byte streams of several connections through the job server's decoder and state machine
/// (binary packets and admin lines), with a moving clock, journal commits and deaths.
pub fn gearman_server(data: &[u8]) {
    jobclient::__fuzz::server_streams(data);
}

/// The durable queue's replay.
pub fn journal(data: &[u8]) {
    jobclient::__fuzz::journal_replay(data);
}

/// `groupd`'s frames, both directions.
pub fn groupd_frames(data: &[u8]) {
    groupmsg::__fuzz::frames(data);
}

/// HTTP/1.1 response heads and bodies (chunked, length, close-delimited) through the
/// response parser, fed in pieces whose sizes come from the first byte; the body handed out
/// never exceeds what came in.
pub fn http_response(data: &[u8]) {
    use multixfer::http::{Part, ResponseParser};
    let Some((&first, rest)) = data.split_first() else { return };
    let step = usize::from(first % 17) + 1;
    let mut parser = ResponseParser::new(first & 0x80 != 0);
    let mut buf = BytesMut::new();
    let mut body = 0usize;
    for piece in rest.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match parser.parse(&mut buf) {
                Ok(Some(Part::Body(b))) => body += b.len(),
                Ok(Some(Part::Done { .. })) => return assert!(body <= rest.len()),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = parser.eof();
    assert!(body <= rest.len());
}

/// curl's URL globs, as `mxfer` expands them: the count agrees with the expansion, a pattern
/// past the documented limit is refused, never a panic, and text without glob characters comes
/// back as it was. Expansions past 100,000 URLs are only counted, to keep each run small.
pub fn url_glob(data: &[u8]) {
    use multixfer::glob::{count, expand, MAX_URLS};
    let Ok(pattern) = std::str::from_utf8(data) else { return };
    let Ok(n) = count(pattern) else {
        assert!(expand(pattern).is_err());
        return;
    };
    if n > MAX_URLS {
        assert!(expand(pattern).is_err(), "{n} URLs expanded");
    } else if n <= 100_000 {
        // Refused only for its size in bytes, which 100,000 URLs of a fuzz input never reach.
        let urls = expand(pattern).expect("counted, so it parses");
        assert_eq!(urls.len() as u64, n);
        if !pattern.contains(['[', '{', '\\']) {
            assert_eq!(urls, [pattern]);
        }
    }
}
