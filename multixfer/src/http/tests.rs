//! The response parser case by case, at every split, and on garbage.

use bytes::BytesMut;

use super::*;

/// Feeds `pieces` one after another, then end of stream if `eof`; returns status, body and
/// whether the connection is reusable.
fn run(pieces: &[&[u8]], head_request: bool, eof: bool) -> Result<(u16, Vec<u8>, bool), HttpError> {
    let mut p =
        ResponseParser::with_limits(head_request, Limits { max_head: 64 * 1024, max_headers: 64 });
    let mut buf = BytesMut::new();
    let (mut status, mut body, mut done) = (0, Vec::new(), None);
    let absorb =
        |part: Part, status: &mut u16, body: &mut Vec<u8>, done: &mut Option<bool>| match part {
            Part::Head(h) => *status = h.status,
            Part::Body(b) => body.extend_from_slice(&b),
            Part::Done { reusable } => *done = Some(reusable),
        };
    for piece in pieces {
        buf.extend_from_slice(piece);
        while let Some(part) = p.parse(&mut buf)? {
            absorb(part, &mut status, &mut body, &mut done);
        }
    }
    if eof && done.is_none() {
        if let Some(part) = p.eof()? {
            absorb(part, &mut status, &mut body, &mut done);
        }
    }
    match done {
        Some(reusable) => Ok((status, body, reusable)),
        None => Err(HttpError::NoResponse),
    }
}

type Case<'a> = (&'a str, &'a [u8], bool, bool, Result<(u16, &'a [u8], bool), HttpError>);

fn cases() -> Vec<Case<'static>> {
    vec![
        ("length", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, false, Ok((200, b"hello", true))),
        (
            "chunked with extension and trailer",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n",
            false,
            false,
            Ok((200, b"hello world", true)),
        ),
        ("close-delimited", b"HTTP/1.1 200 OK\r\n\r\nuntil close", false, true, Ok((200, b"until close", false))),
        ("http/1.0 closes by default", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", false, false, Ok((200, b"hi", false))),
        (
            "http/1.0 keep-alive",
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi",
            false,
            false,
            Ok((200, b"hi", true)),
        ),
        ("connection: close", b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", false, false, Ok((200, b"x", false))),
        ("head has no body", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", true, false, Ok((200, b"", true))),
        ("204 has no body", b"HTTP/1.1 204 No Content\r\n\r\n", false, false, Ok((204, b"", true))),
        ("304 has no body", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", false, false, Ok((304, b"", true))),
        (
            "100 continue is skipped",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
            false,
            false,
            Ok((201, b"ok", true)),
        ),
        ("404 with a body", b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope", false, false, Ok((404, b"nope", true))),
        ("length cut short", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", false, true, Err(HttpError::Truncated(7))),
        (
            "chunked cut short",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            false,
            true,
            Err(HttpError::Truncated(2)),
        ),
        ("bad chunk size", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, false, Err(HttpError::BadChunk)),
        (
            "conflicting lengths",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
            false,
            false,
            Err(HttpError::BadContentLength),
        ),
        ("no response at all", b"", false, true, Err(HttpError::NoResponse)),
    ]
}

#[test]
fn every_case_whole() {
    for (name, raw, head, eof, expect) in cases() {
        let got = run(&[raw], head, eof);
        let expect = expect.map(|(s, b, r)| (s, b.to_vec(), r));
        assert_eq!(got, expect, "{name}");
    }
}

#[test]
fn every_case_at_every_split() {
    for (name, raw, head, eof, expect) in cases() {
        let expect = expect.map(|(s, b, r)| (s, b.to_vec(), r));
        for cut in 0..raw.len() {
            let got = run(&[&raw[..cut], &raw[cut..]], head, eof);
            assert_eq!(got, expect, "{name}, split at {cut}");
        }
        // And a byte at a time.
        let bytes: Vec<&[u8]> = raw.chunks(1).collect();
        assert_eq!(run(&bytes, head, eof), expect, "{name}, byte by byte");
    }
}

#[test]
fn malformed_heads_are_typed_errors() {
    assert!(matches!(
        run(&[b"HTP/1.1 200 OK\r\n\r\n"], false, false),
        Err(HttpError::MalformedHead(_))
    ));
    assert!(matches!(
        run(&[b"HTTP/1.1 2x0 OK\r\n\r\n"], false, false),
        Err(HttpError::MalformedHead(_))
    ));
    let many: Vec<u8> = [&b"HTTP/1.1 200 OK\r\n"[..], &b"A: b\r\n".repeat(100), b"\r\n"].concat();
    assert_eq!(run(&[&many], false, false), Err(HttpError::TooManyHeaders(64)));
}

#[test]
fn a_megabyte_of_headers_is_refused_without_holding_it() {
    let mut p = ResponseParser::new(false);
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
    // Long lines, so that the byte limit (not the line count) is what stops it.
    let line = [&b"X-Filler: "[..], &[b'a'; 1024], b"\r\n"].concat();
    let mut fed = 0;
    let err = loop {
        buf.extend_from_slice(&line);
        fed += line.len();
        match p.parse(&mut buf) {
            Ok(None) => assert!(fed < 1 << 20, "a megabyte went by without an error"),
            Ok(Some(part)) => panic!("unexpected {part:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(err, HttpError::HeadTooLarge(64 * 1024));
    assert!(fed <= 64 * 1024 + line.len(), "the error came only after {fed} bytes");
}

#[test]
fn garbage_never_panics() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let seeds: Vec<&[u8]> = cases().iter().map(|c| c.1).collect();
    for round in 0..20_000 {
        let mut bytes = seeds[round % seeds.len()].to_vec();
        // Mutate a few bytes of a valid response, or make it all random.
        if round % 3 == 0 {
            bytes = (0..(next() % 80)).map(|_| next() as u8).collect();
        } else {
            for _ in 0..(1 + next() % 4) {
                if !bytes.is_empty() {
                    let i = (next() as usize) % bytes.len();
                    bytes[i] = next() as u8;
                }
            }
        }
        let cut = if bytes.is_empty() { 0 } else { (next() as usize) % bytes.len() };
        let _ = run(&[&bytes[..cut], &bytes[cut..]], round % 5 == 0, round % 2 == 0);
    }
}

#[test]
fn requests_are_encoded_with_host_and_length() {
    let mut out = BytesMut::new();
    encode_request(&mut out, "POST", "h:1", "", &[("X-A", "1")], Some(b"body"));
    assert_eq!(
        &out[..],
        b"POST / HTTP/1.1\r\nHost: h:1\r\nX-A: 1\r\nContent-Length: 4\r\n\r\nbody"
    );
}
