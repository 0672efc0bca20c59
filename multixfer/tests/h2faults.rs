//! HTTP/2 failures that real servers rarely produce on demand, from a small server of our own
//! that writes frames by hand (prior knowledge on cleartext): a GOAWAY whose last-stream id
//! is below streams in flight, a RST_STREAM on one stream of several, and a PING.
#![cfg(feature = "http2")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{run_all, Server};
use multixfer::{Easy, HttpVersion, Multi, Options, XferError};

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

fn read_frame(conn: &mut TcpStream) -> Option<Frame> {
    let mut head = [0u8; 9];
    conn.read_exact(&mut head).ok()?;
    let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let mut payload = vec![0u8; len];
    conn.read_exact(&mut payload).ok()?;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    Some(Frame { kind: head[3], flags: head[4], stream, payload })
}

fn write_frame(conn: &mut TcpStream, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    let _ = conn.write_all(&f);
}

/// `:status: 200` (the static table's entry 8), then `body` ending the stream.
fn respond(conn: &mut TcpStream, stream: u32, body: &str) {
    write_frame(conn, HEADERS, END_HEADERS, stream, &[0x88]);
    write_frame(conn, DATA, END_STREAM, stream, body.as_bytes());
}

/// Reads the preface and the client's first frames, answering SETTINGS, until `streams`
/// requests have come; returns their stream ids.
fn take_requests(conn: &mut TcpStream, streams: usize) -> Option<Vec<u32>> {
    let mut preface = [0u8; 24];
    conn.read_exact(&mut preface).ok()?;
    assert_eq!(&preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    write_frame(conn, SETTINGS, 0, 0, &[]);
    let mut ids = Vec::new();
    while ids.len() < streams {
        let f = read_frame(conn)?;
        match f.kind {
            SETTINGS if f.flags & ACK == 0 => write_frame(conn, SETTINGS, ACK, 0, &[]),
            HEADERS => ids.push(f.stream),
            _ => {}
        }
    }
    Some(ids)
}

#[test]
fn goaway_below_streams_in_flight_sends_them_again_and_a_reset_fails_only_its_transfer() {
    let conns = Arc::new(AtomicUsize::new(0));
    let (answered, ping_answered) = std::sync::mpsc::channel::<bool>();
    let count = conns.clone();
    let server = Server::start(move |mut conn: TcpStream| {
        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
        if n == 1 {
            let Some(ids) = take_requests(&mut conn, 6) else { return };
            assert_eq!(ids, [1, 3, 5, 7, 9, 11]);
            write_frame(&mut conn, PING, 0, 0, b"pingpong");
            respond(&mut conn, 1, "c1 s1");
            respond(&mut conn, 3, "c1 s3");
            // INTERNAL_ERROR on stream 5 alone.
            write_frame(&mut conn, RST_STREAM, 0, 5, &2u32.to_be_bytes());
            // Streams 9 and 11 were not processed.
            let mut goaway = 7u32.to_be_bytes().to_vec();
            goaway.extend_from_slice(&0u32.to_be_bytes());
            write_frame(&mut conn, GOAWAY, 0, 0, &goaway);
            respond(&mut conn, 7, "c1 s7");
            // The client closes once stream 7 is done; it answered the PING by then.
            let mut pong = false;
            while let Some(f) = read_frame(&mut conn) {
                pong |= f.kind == PING && f.flags & ACK != 0 && f.payload == b"pingpong";
            }
            let _ = answered.send(pong);
        } else {
            let Some(ids) = take_requests(&mut conn, 2) else { return };
            for id in ids {
                respond(&mut conn, id, &format!("c{n} s{id}"));
            }
            while read_frame(&mut conn).is_some() {}
        }
    });
    let mut multi: Multi<usize> = Multi::with_options(Options::default()).unwrap();
    for k in 0..6 {
        let easy = Easy::get(server.url(&format!("/{k}")))
            .http_version(HttpVersion::Http2PriorKnowledge)
            .pipewait(true);
        multi.add(easy.private(k));
    }
    let mut done = run_all(&mut multi);
    done.sort_by_key(|d| d.private);
    let outcome: Vec<String> = done
        .into_iter()
        .map(|d| match d.result {
            Ok(r) => String::from_utf8(r.body).unwrap(),
            Err(XferError::StreamReset(code)) => format!("reset {code}"),
            Err(e) => format!("error {e}"),
        })
        .collect();
    // Transfer k went as stream 2k+1; the two past the GOAWAY went again, in their order,
    // on a second connection.
    assert_eq!(outcome, ["c1 s1", "c1 s3", "reset 2", "c1 s7", "c2 s1", "c2 s3"]);
    assert_eq!(multi.connects(), 2);
    assert_eq!(conns.load(Ordering::SeqCst), 2);
    drop(multi);
    // The first connection's handler reports once the client has closed it.
    let pong = ping_answered.recv_timeout(std::time::Duration::from_secs(10));
    assert_eq!(pong, Ok(true), "the PING was answered");
}

/// An HPACK literal header field without indexing, with a new name (RFC 7541, 6.2.2).
fn literal(name: &[u8], value_len: usize) -> Vec<u8> {
    fn int(out: &mut Vec<u8>, mut n: usize) {
        if n < 127 {
            out.push(n as u8);
            return;
        }
        out.push(127);
        n -= 127;
        while n >= 128 {
            out.push((n % 128) as u8 | 0x80);
            n /= 128;
        }
        out.push(n as u8);
    }
    let mut out = vec![0x00];
    int(&mut out, name.len());
    out.extend_from_slice(name);
    int(&mut out, value_len);
    out.extend(std::iter::repeat_n(b'v', value_len));
    out
}

#[test]
fn a_stream_that_times_out_or_sends_huge_headers_fails_alone() {
    let (resets, reset_seen) = std::sync::mpsc::channel::<Vec<(u32, u32)>>();
    let server = Server::start(move |mut conn: TcpStream| {
        let Some(ids) = take_requests(&mut conn, 3) else { return };
        assert_eq!(ids, [1, 3, 5]);
        respond(&mut conn, 1, "one");
        // Stream 3 gets 70 KiB of headers (past our 64 KiB), over HEADERS and CONTINUATION
        // frames. (Far more, and `h2` takes the CONTINUATION frames for a flood and ends the
        // whole connection with ENHANCE_YOUR_CALM.)
        let mut block = vec![0x88];
        block.extend(literal(b"x-big", 70 * 1024));
        let chunks: Vec<&[u8]> = block.chunks(16_384).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let kind = if i == 0 { HEADERS } else { 0x9 };
            let end = if i == 0 { END_STREAM } else { 0 };
            let flags = if i + 1 == chunks.len() { END_HEADERS | end } else { end };
            write_frame(&mut conn, kind, flags, 3, chunk);
        }
        // Stream 5 is never answered; the client gives up on it and says so.
        let mut seen = Vec::new();
        while let Some(f) = read_frame(&mut conn) {
            if f.kind == RST_STREAM && f.payload.len() == 4 {
                let code =
                    u32::from_be_bytes([f.payload[0], f.payload[1], f.payload[2], f.payload[3]]);
                seen.push((f.stream, code));
                if f.stream == 5 {
                    // The connection is still good: one more request on it is answered.
                    break;
                }
            }
        }
        while let Some(f) = read_frame(&mut conn) {
            if f.kind == HEADERS {
                respond(&mut conn, f.stream, "after");
            }
        }
        let _ = resets.send(seen);
    });
    let mut multi: Multi<&str> = Multi::with_options(Options::default()).unwrap();
    let easy = |path: &str| {
        Easy::get(server.url(path)).http_version(HttpVersion::Http2PriorKnowledge).pipewait(true)
    };
    multi.add(easy("/one").private("one"));
    multi.add(easy("/big").private("big"));
    multi.add(easy("/silent").timeout(std::time::Duration::from_millis(300)).private("silent"));
    // One loop and driver for both runs: the engine's sockets are announced to one loop.
    let (mut lp, mut driver) = (evcore::Loop::new().unwrap(), multixfer::drive::Driver::new());
    let mut done = common::run_on(&mut multi, &mut lp, &mut driver);
    done.sort_by_key(|d| d.private);
    let results: Vec<(&str, String)> = done
        .into_iter()
        .map(|d| {
            let r = match d.result {
                Ok(r) => String::from_utf8(r.body).unwrap(),
                Err(XferError::Http2(_)) => "http2 error".into(),
                Err(XferError::Timeout(_)) => "timeout".into(),
                Err(e) => format!("{e:?}"),
            };
            (d.private, r)
        })
        .collect();
    assert_eq!(
        results,
        [("big", "http2 error".into()), ("one", "one".into()), ("silent", "timeout".into())]
    );
    multi.add(easy("/after").private("after"));
    let done = common::run_on(&mut multi, &mut lp, &mut driver);
    assert_eq!(done[0].result.as_ref().unwrap().body, b"after");
    assert_eq!(multi.connects(), 1, "the failures did not cost the connection");
    drop(multi);
    let seen = reset_seen.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    // CANCEL (8) for the stream given up on.
    assert!(seen.contains(&(5, 8)), "{seen:?}");
}
