//! Against real nginx (Debian's package, started on 127.0.0.1): reuse, exact bytes, redirects,
//! POST, HEAD, 404 and the server closing kept-alive connections.

mod common;

use std::time::Duration;

use common::{nginx, run_all};
use multixfer::{Easy, Multi, Options, XferError};

fn limited(per_host: usize) -> Multi<usize> {
    let mut opts = Options::default();
    opts.max_host_connections = per_host;
    Multi::with_options(opts).unwrap()
}

#[test]
fn ten_thousand_small_files_over_fifty_connections() {
    let server = nginx(1_000_000);
    let root = server.root();
    std::fs::create_dir_all(root.join("s")).unwrap();
    let body = |i: usize| format!("file {i} {}\n", "x".repeat(i % 300)).into_bytes();
    for i in 0..10_000 {
        std::fs::write(root.join(format!("s/{i}")), body(i)).unwrap();
    }
    let mut multi = limited(50);
    for i in 0..10_000 {
        multi.add(Easy::get(server.url(&format!("s/{i}"))).private(i));
    }
    let done = run_all(&mut multi);
    assert_eq!(done.len(), 10_000);
    for d in done {
        let r = d.result.unwrap_or_else(|e| panic!("transfer {} failed: {e}", d.private));
        assert_eq!(r.status(), 200);
        assert_eq!(r.body, body(d.private), "body of {}", d.private);
    }
    // Every connection was reused: at most the per-host limit was ever opened.
    assert!(multi.connects() <= 50, "{} connections for 10,000 transfers", multi.connects());
    assert!(multi.connects() >= 2, "transfers ran in parallel");
}

#[test]
fn large_files_arrive_byte_for_byte() {
    let server = nginx(1_000_000);
    let mut data = vec![0u8; 24 * 1024 * 1024 + 7];
    let mut x = 0x9e3779b97f4a7c15u64;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(server.root().join("big"), &data).unwrap();
    let mut multi = Multi::new().unwrap();
    multi.add(Easy::get(server.url("big")));
    multi.add(Easy::get(server.url("big")).buffer_size(256 * 1024));
    for d in run_all(&mut multi) {
        let r = d.result.unwrap();
        assert_eq!(r.downloaded, data.len() as u64);
        assert!(r.body == data, "the body differs from the file");
    }
}

#[test]
fn redirects_are_followed_up_to_the_maximum() {
    let server = nginx(1_000_000);
    let mut multi = Multi::new().unwrap();
    let a = multi.add(Easy::get(server.url("r1")).follow_location(true));
    let b = multi.add(Easy::get(server.url("r1")));
    let c = multi.add(Easy::get(server.url("loop")).follow_location(true).max_redirs(5));
    let d = multi.add(Easy::get(server.url("r1")).follow_location(true).max_redirs(1));
    let e = multi.add(Easy::post(server.url("see-other"), "data").follow_location(true));
    for done in run_all(&mut multi) {
        match done.id {
            id if id == a => {
                let r = done.result.unwrap();
                assert_eq!((r.status(), &r.body[..], r.redirects), (200, &b"pong"[..], 2));
                assert_eq!(r.effective_url, server.url("ping"));
            }
            id if id == b => {
                let r = done.result.unwrap();
                assert_eq!(r.status(), 302);
                assert!(r.head.header("location").is_some());
            }
            id if id == c => {
                assert!(matches!(done.result, Err(XferError::TooManyRedirects(5))))
            }
            id if id == d => {
                assert!(matches!(done.result, Err(XferError::TooManyRedirects(1))))
            }
            id if id == e => {
                // 303 turns the POST into a GET of the new location.
                let r = done.result.unwrap();
                assert_eq!((r.status(), &r.body[..]), (200, &b"pong"[..]));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // All of it over one kept-alive connection per parallel transfer at most.
    assert!(multi.connects() <= 5);
}

#[test]
fn post_head_and_404_keep_the_connection() {
    let server = nginx(1_000_000);
    std::fs::write(server.root().join("hello"), b"hello world").unwrap();
    let mut multi = limited(1);
    let big = vec![b'p'; 1024 * 1024];
    multi.add(Easy::post(server.url("post"), big).private(0));
    multi.add(Easy::head(server.url("hello")).private(1));
    multi.add(Easy::get(server.url("missing")).private(2));
    multi.add(
        Easy::get(server.url("post"))
            .method("PUT")
            .body_reader(std::io::Cursor::new(vec![b'q'; 100_000]), None)
            .private(3),
    );
    multi.add(Easy::get(server.url("hello")).private(4));
    let mut seen = 0;
    for d in run_all(&mut multi) {
        let r = d.result.unwrap();
        match d.private {
            0 => assert_eq!((r.status(), &r.body[..], r.uploaded), (201, &b"created"[..], 1 << 20)),
            1 => {
                assert_eq!(r.status(), 200);
                assert_eq!(r.head.header("content-length").unwrap(), "11");
                assert!(r.body.is_empty());
            }
            2 => assert_eq!(r.status(), 404),
            3 => assert_eq!((r.status(), r.uploaded), (201, 100_000)),
            4 => assert_eq!(r.body, b"hello world"),
            _ => unreachable!(),
        }
        seen += 1;
    }
    assert_eq!(seen, 5);
    assert_eq!(multi.connects(), 1, "POST, HEAD, 404, chunked PUT and GET on one connection");
}

#[test]
fn server_closing_kept_alive_connections_loses_nothing() {
    // nginx closes each connection after 10 requests (saying so in the last response).
    let server = nginx(10);
    let mut multi = limited(2);
    for i in 0..200 {
        multi.add(Easy::get(server.url("ping")).private(i));
    }
    let done = run_all(&mut multi);
    assert_eq!(done.len(), 200);
    for d in done {
        assert_eq!(d.result.unwrap().body, b"pong");
    }
    // Ten requests per connection, two at a time: twenty, plus one when the last two
    // connections share the tail.
    assert!((20..=21).contains(&multi.connects()), "{} connections", multi.connects());
}

#[test]
fn perform_mode_and_wakeup() {
    let server = nginx(1_000_000);
    let mut multi = Multi::new().unwrap();
    for _ in 0..20 {
        multi.add(Easy::get(server.url("ping")).timeout(Duration::from_secs(20)));
    }
    while multi.perform().unwrap() > 0 {
        multi.poll(Some(Duration::from_secs(5))).unwrap();
    }
    let mut n = 0;
    while let Some((d, left)) = multi.info_read() {
        assert_eq!(d.result.unwrap().body, b"pong");
        n += 1;
        assert_eq!(left, 20 - n);
    }
    assert_eq!(n, 20);
    // A wake-up from another thread ends a poll that would otherwise wait for an hour.
    let waker = multi.waker();
    let t = std::thread::spawn(move || waker.wakeup());
    assert_eq!(multi.poll(Some(Duration::from_secs(3600))).unwrap(), 0);
    t.join().unwrap();
}
