//! Each of the server's limits, hit by a client that behaves badly on purpose: the bad client
//! is refused or closed with a reason in the log, and everyone else goes on. Each case was a
//! finding of the reliability review (memory without bound, a stalled client held forever, a
//! flood of connections, `shutdown` from anywhere).

#![cfg(feature = "server")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{deaf_client_and_its_worker, Raw, Running};
use jobclient::proto::{PacketType as T, MAX_CLIENT_ID};
use jobclient::Limits;

/// The default limits with one change.
fn limits(change: impl FnOnce(&mut Limits)) -> Limits {
    let mut l = Limits::default();
    change(&mut l);
    l
}

/// Reads until the server closes the connection (bounded by a read timeout that only a
/// failing server reaches); returns what came before the close.
fn until_closed(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("the server did not close the connection: {e}"),
        }
    }
}

fn logged(server: &Running, needle: &str) -> bool {
    server.log().iter().any(|l| l.contains(needle))
}

fn echo_works(server: &Running) {
    let mut c = Raw::connect(server.addr);
    c.send(T::EchoReq, &[b"alive"]);
    assert_eq!(c.recv().arg_ref(0), b"alive");
}

#[test]
fn a_client_that_never_reads_is_closed_at_the_output_limit() {
    let server = Running::start_limited(limits(|l| l.max_output = 1 << 20));
    // The client submits, then never reads: the worker's 64 KiB WORK_DATA packets pile up.
    let (_deaf, mut w, handle) = deaf_client_and_its_worker(server.addr);
    let chunk = vec![7u8; 64 * 1024];
    // Far more than the socket buffers and the limit hold together; the server must neither
    // grow without bound nor stop serving the worker.
    for _ in 0..400 {
        w.send(T::WorkData, &[&handle, &chunk]);
    }
    w.send(T::EchoReq, &[b"sync"]);
    assert_eq!(w.recv().kind(), T::EchoRes);
    assert!(logged(&server, "unread output passed the limit"), "{:?}", server.log());
    // The job lost its only waiter; the worker's report is simply dropped, and others go on.
    w.send(T::WorkComplete, &[&handle, b"done"]);
    echo_works(&server);
}

/// The same when the output comes a little at a time, each piece in a batch of its own: the
/// server once moved each piece into the connection's write buffer, out of the limit's sight.
#[test]
fn output_that_trickles_to_a_client_that_never_reads_is_bounded_too() {
    let server = Running::start_limited(limits(|l| l.max_output = 1 << 20));
    let (_deaf, mut w, handle) = deaf_client_and_its_worker(server.addr);
    let chunk = vec![7u8; 16 * 1024];
    for _ in 0..1000 {
        w.send(T::WorkData, &[&handle, &chunk]);
        // A round trip puts the next piece in a batch of its own.
        w.send(T::EchoReq, &[b"sync"]);
        assert_eq!(w.recv().kind(), T::EchoRes);
        if logged(&server, "unread output passed the limit") {
            return;
        }
    }
    panic!("16 MiB queued for a client that never reads, and it was not closed");
}

/// A peer that reads nothing while its output fits under the output limit was held for ever
/// (with up to twice the limit buffered). Now output that waits without progress for the
/// write deadline closes it.
#[test]
fn a_peer_that_takes_none_of_its_output_is_closed_after_the_write_deadline() {
    let server = Running::start_limited(limits(|l| l.write_deadline = Duration::from_millis(300)));
    let (_deaf, mut w, handle) = deaf_client_and_its_worker(server.addr);
    // Far more than the socket buffers hold, far less than the output limit.
    let chunk = vec![7u8; 64 * 1024];
    for _ in 0..300 {
        w.send(T::WorkData, &[&handle, &chunk]);
    }
    w.send(T::EchoReq, &[b"sync"]);
    assert_eq!(w.recv().kind(), T::EchoRes);
    let start = std::time::Instant::now();
    while !logged(&server, "took none of its output") {
        assert!(start.elapsed() < Duration::from_secs(20), "never closed: {:?}", server.log());
        std::thread::yield_now();
    }
    echo_works(&server);
}

#[test]
fn a_stalled_partial_packet_is_closed_after_the_read_deadline() {
    let server = Running::start_limited(limits(|l| l.read_deadline = Duration::from_millis(200)));
    // Half a header, then nothing: held for ever before.
    let mut stalled = TcpStream::connect(server.addr).unwrap();
    stalled.write_all(b"\0REQ\0\0").unwrap();
    // A connection with nothing partial (a sleeping worker) is never closed for idling.
    let mut idle = Raw::connect(server.addr);
    assert!(until_closed(&mut stalled).is_empty());
    assert!(logged(&server, "stalled"), "{:?}", server.log());
    idle.send(T::EchoReq, &[b"still here"]);
    assert_eq!(idle.recv().arg_ref(0), b"still here");
    // Slow but steady is not stalled: a byte every 50 ms of a packet keeps it open.
    let mut slow = TcpStream::connect(server.addr).unwrap();
    let mut packet = bytes::BytesMut::new();
    jobclient::proto::encode(&mut packet, jobclient::proto::Magic::Req, T::EchoReq, &[b"slow"])
        .unwrap();
    for b in packet.iter() {
        slow.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut reply = [0u8; 16];
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    slow.read_exact(&mut reply).unwrap();
    assert_eq!(&reply[12..], b"slow");
}

#[test]
fn connections_past_the_limit_are_refused_and_the_rest_are_served() {
    let server = Running::start_limited(limits(|l| l.max_connections = 3));
    let mut kept: Vec<Raw> = (0..3).map(|_| Raw::connect(server.addr)).collect();
    for c in &mut kept {
        c.send(T::EchoReq, &[b"in"]);
        assert_eq!(c.recv().arg_ref(0), b"in");
    }
    let mut refused = TcpStream::connect(server.addr).unwrap();
    assert!(until_closed(&mut refused).is_empty());
    assert!(logged(&server, "3 connections already"), "{:?}", server.log());
    drop(kept.pop());
    // The slot comes free once the server has seen the close: the next connection gets in.
    let mut next = loop {
        let mut c = Raw::connect(server.addr);
        c.send(T::EchoReq, &[b"again"]);
        let mut b = [0u8; 1];
        c.0.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        if c.0.peek(&mut b).is_ok_and(|n| n > 0) {
            break c;
        }
    };
    assert_eq!(next.recv().arg_ref(0), b"again");
    // The shutdown in Drop needs a connection: make room.
    drop(next);
    drop(kept);
    let mut probe = loop {
        let mut c = Raw::connect(server.addr);
        c.send(T::EchoReq, &[b"room"]);
        let mut b = [0u8; 1];
        c.0.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        if c.0.peek(&mut b).is_ok_and(|n| n > 0) {
            break c;
        }
    };
    assert_eq!(probe.recv().arg_ref(0), b"room");
}

#[test]
fn coalesced_submissions_are_capped_and_each_still_hears_once() {
    let server = Running::start_limited(limits(|l| l.max_submissions_per_job = 3));
    let mut c = Raw::connect(server.addr);
    for _ in 0..3 {
        c.send(T::SubmitJob, &[b"f", b"same", b"x"]);
        assert_eq!(c.recv().kind(), T::JobCreated);
    }
    c.send(T::SubmitJob, &[b"f", b"same", b"x"]);
    let refused = c.recv();
    assert_eq!((refused.kind(), refused.arg_ref(0)), (T::Error, &b"QUEUE_ERROR"[..]));
    let mut w = Raw::connect(server.addr);
    w.send(T::CanDo, &[b"f"]);
    w.send(T::GrabJob, &[]);
    let handle = w.recv().arg(0);
    w.send(T::WorkData, &[&handle, b"part"]);
    w.send(T::WorkComplete, &[&handle, b"done"]);
    // Every WORK_* once per accepted submission: three of each, and no more.
    let kinds: Vec<T> = (0..6).map(|_| c.recv().kind()).collect();
    assert_eq!(
        kinds,
        [T::WorkData, T::WorkData, T::WorkData, T::WorkComplete, T::WorkComplete, T::WorkComplete]
    );
    c.send(T::EchoReq, &[b"end"]);
    assert_eq!(c.recv().kind(), T::EchoRes, "nothing more came");
}

#[test]
fn a_client_id_past_the_limit_closes_only_that_connection() {
    let server = Running::start();
    let mut bad = Raw::connect(server.addr);
    bad.send(T::SetClientId, &[&vec![b'x'; MAX_CLIENT_ID + 1]]);
    assert!(until_closed(&mut bad.0).is_empty());
    assert!(logged(&server, "client ID"), "{:?}", server.log());
    let mut ok = Raw::connect(server.addr);
    ok.send(T::SetClientId, &[&vec![b'x'; MAX_CLIENT_ID]]);
    ok.send(T::EchoReq, &[b"fine"]);
    assert_eq!(ok.recv().arg_ref(0), b"fine");
}

#[test]
fn a_read_full_of_admin_commands_is_answered_whole_without_growing_without_bound() {
    // 64 workers make each `workers` listing about 2 KiB; 8,192 of them unanswered would be
    // 16 MiB queued at once, past a 1 MiB output limit. Decoding pauses instead.
    let server = Running::start_limited(limits(|l| {
        l.max_output = 1 << 20;
        l.pause_output = 64 << 10;
    }));
    let workers: Vec<Raw> = (0..64)
        .map(|i| {
            let mut w = Raw::connect(server.addr);
            w.send(T::SetClientId, &[format!("worker-{i:04}").as_bytes()]);
            w.send(T::CanDo, &[b"some-function-name"]);
            w
        })
        .collect();
    let mut admin = TcpStream::connect(server.addr).unwrap();
    let lines = 8192;
    let writer = {
        let mut admin = admin.try_clone().unwrap();
        std::thread::spawn(move || admin.write_all(&b"workers\n".repeat(lines)).unwrap())
    };
    admin.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut all = Vec::new();
    let mut chunk = [0u8; 65536];
    // Each listing ends with a line holding "."; count them as the bytes come.
    let (mut ends, mut scanned) = (0, 0);
    while ends < lines {
        let n = admin.read(&mut chunk).unwrap();
        assert!(n > 0, "closed after {ends} listings: {:?}", server.log());
        all.extend_from_slice(&chunk[..n]);
        while let Some(p) = all[scanned..].windows(3).position(|w| w == b"\n.\n") {
            ends += 1;
            scanned += p + 2;
        }
    }
    writer.join().unwrap();
    let text = String::from_utf8(all).unwrap();
    assert_eq!(text.matches("worker-0063").count(), lines, "every listing whole");
    drop(workers);
}

#[test]
fn state_changing_admin_commands_follow_the_admin_policy() {
    let server = Running::start_limited(limits(|l| l.admin_from.clear()));
    for command in ["shutdown", "cancel job H:x:1", "maxqueue f 1"] {
        let answer = server.admin(command);
        assert!(answer[0].starts_with("ERR PERMISSION_DENIED"), "{command}: {answer:?}");
    }
    assert!(server.admin("version")[0].starts_with("OK"), "read-only commands are open");
    echo_works(&server);
    // Nobody may shut it down over the protocol here: stop the thread's loop by leaking it.
    let mut server = server;
    std::mem::forget(server.thread.take());
}

/// Deadlines too long to add to a clock reading (`Duration::MAX`) panicked the server on the
/// first partial packet or stalled write.
#[test]
fn absurd_deadlines_are_no_deadline() {
    let server = Running::start_limited(limits(|l| {
        l.read_deadline = Duration::MAX;
        l.write_deadline = Duration::MAX;
    }));
    let mut partial = TcpStream::connect(server.addr).unwrap();
    partial.write_all(b"\0REQ\0\0").unwrap();
    echo_works(&server);
    partial.write_all(b"\0\x10\0\0\0\x01x").unwrap();
    let mut reply = [0u8; 13];
    partial.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    partial.read_exact(&mut reply).unwrap();
    assert_eq!(&reply[12..], b"x");
}
