//! Servers of our own that fail in every way the issue names. Each failure ends only its own
//! transfer with a typed error; good transfers in the same engine finish.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::time::Duration;

use common::{read_request, run_all, trickle, Server};
use multixfer::http::HttpError;
use multixfer::{Easy, Multi, Options, XferError};

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood";

/// Sends `bytes` and resets the connection (RST rather than FIN).
fn reset_after(mut c: TcpStream, bytes: &[u8]) {
    let _ = c.write_all(bytes);
    let _ = rustix::net::sockopt::set_socket_linger(c.as_fd(), Some(Duration::ZERO));
}

#[test]
fn each_fault_fails_only_its_own_transfer() {
    let good = Server::start(|c| common::answer_all(c, OK));
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let reset = Server::start(|mut c| {
        read_request(&mut c);
        let mut head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
        head.extend(vec![b'x'; 5000]);
        reset_after(c, &head);
    });
    let chunked = Server::start(|mut c| {
        read_request(&mut c);
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    });
    let silent = Server::start(|mut c| {
        read_request(&mut c);
        let mut b = [0u8; 1];
        let _ = std::io::Read::read(&mut c, &mut b);
    });
    let slow = Server::start(|mut c| {
        read_request(&mut c);
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
        trickle(&mut c, &[&b"a"[..]; 100], Duration::from_millis(40));
    });
    let huge = Server::start(|mut c| {
        read_request(&mut c);
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\nX-Big: ");
        let _ = c.write_all(&vec![b'a'; 1024 * 1024]);
        let _ = c.write_all(b"\r\n\r\n");
    });
    let malformed = Server::start(|mut c| {
        read_request(&mut c);
        let _ = c.write_all(b"HTTP/1.1 two hundred OK\r\n\r\n");
    });
    let mut multi: Multi<&str> = Multi::with_options(Options::default()).unwrap();
    for _ in 0..20 {
        multi.add(Easy::get(good.url("/")).private("good"));
    }
    multi.add(Easy::get(format!("http://127.0.0.1:{refused}/")).private("refused"));
    multi.add(Easy::get(reset.url("/")).private("reset"));
    multi.add(Easy::get(chunked.url("/")).private("chunked"));
    multi.add(Easy::get(silent.url("/")).timeout(Duration::from_millis(300)).private("silent"));
    multi.add(Easy::get(slow.url("/")).low_speed(1000, Duration::from_millis(300)).private("slow"));
    multi.add(Easy::get(huge.url("/")).private("huge"));
    multi.add(Easy::get(malformed.url("/")).private("malformed"));
    multi.add(Easy::get("http://no-such-host.invalid/").private("unresolvable"));
    multi.add(Easy::get("htp:/nonsense").private("bad url"));
    let done = run_all(&mut multi);
    assert_eq!(done.len(), 29);
    let mut good_count = 0;
    for d in done {
        let r = &d.result;
        match d.private {
            "good" => {
                assert_eq!(r.as_ref().unwrap().body, b"good");
                good_count += 1;
            }
            "refused" => assert!(matches!(r, Err(XferError::Connect { .. })), "{r:?}"),
            "reset" => assert!(
                matches!(r, Err(XferError::Recv(_) | XferError::Http(HttpError::Truncated(_)))),
                "{r:?}"
            ),
            "chunked" => {
                assert!(matches!(r, Err(XferError::Http(HttpError::Truncated(_)))), "{r:?}")
            }
            "silent" => assert!(matches!(r, Err(XferError::Timeout(_))), "{r:?}"),
            "slow" => assert!(matches!(r, Err(XferError::TooSlow { limit: 1000, .. })), "{r:?}"),
            "huge" => {
                assert!(matches!(r, Err(XferError::Http(HttpError::HeadTooLarge(65536)))), "{r:?}")
            }
            "malformed" => {
                assert!(matches!(r, Err(XferError::Http(HttpError::MalformedHead(_)))), "{r:?}")
            }
            "unresolvable" => assert!(matches!(r, Err(XferError::Resolve { .. })), "{r:?}"),
            "bad url" => assert!(matches!(r, Err(XferError::BadUrl { .. })), "{r:?}"),
            other => panic!("{other}"),
        }
    }
    assert_eq!(good_count, 20);
}

#[test]
fn queue_time_counts_against_the_total_timeout() {
    // One connection allowed; the first transfer holds it for a long time.
    let silent = Server::start(|mut c| {
        read_request(&mut c);
        let mut b = [0u8; 1];
        let _ = std::io::Read::read(&mut c, &mut b);
    });
    let mut opts = Options::default();
    opts.max_total_connections = 1;
    let mut multi: Multi<u32> = Multi::with_options(opts).unwrap();
    multi.add(Easy::get(silent.url("/a")).timeout(Duration::from_millis(600)).private(0));
    multi.add(Easy::get(silent.url("/b")).timeout(Duration::from_millis(200)).private(1));
    let done = run_all(&mut multi);
    // The queued one times out first, never having had a connection.
    assert_eq!(done[0].private, 1);
    assert!(matches!(done[0].result, Err(XferError::Timeout(_))));
    assert!(matches!(done[1].result, Err(XferError::Timeout(_))));
    assert_eq!(multi.connects(), 1);
}

#[test]
fn callbacks_abort_and_see_progress() {
    let good = Server::start(|c| {
        let mut body = b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n".to_vec();
        body.extend(vec![b'z'; 200_000]);
        common::answer_all(c, &body)
    });
    let mut multi: Multi<u32> = Multi::with_options(Options::default()).unwrap();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let s = seen.clone();
    multi.add(
        Easy::get(good.url("/"))
            .write_function(move |b| {
                s.fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
                multixfer::Flow::Continue
            })
            .private(0),
    );
    multi.add(Easy::get(good.url("/")).write_function(|_| multixfer::Flow::Abort).private(1));
    multi.add(
        Easy::get(good.url("/"))
            .progress_function(|p| {
                assert_eq!(p.download_total, Some(200_000));
                if p.downloaded > 1000 {
                    multixfer::Flow::Abort
                } else {
                    multixfer::Flow::Continue
                }
            })
            .private(2),
    );
    multi.add(Easy::get(good.url("/")).header_function(|_| multixfer::Flow::Abort).private(3));
    for d in run_all(&mut multi) {
        match d.private {
            0 => assert_eq!(d.result.unwrap().downloaded, 200_000),
            1 => assert!(matches!(d.result, Err(XferError::Aborted("write")))),
            2 => assert!(matches!(d.result, Err(XferError::Aborted("progress")))),
            3 => assert!(matches!(d.result, Err(XferError::Aborted("header")))),
            _ => unreachable!(),
        }
    }
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 200_000);
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn ten_thousand_concurrent_transfers_against_a_slow_server() {
    let slow = Server::start(|mut c| {
        while read_request(&mut c).is_some() {
            std::thread::sleep(Duration::from_millis(2));
            if c.write_all(OK).is_err() {
                return;
            }
        }
    });
    let mut opts = Options::default();
    opts.max_total_connections = 200;
    let mut multi: Multi<u32> = Multi::with_options(opts).unwrap();
    let before = rss_kib();
    for i in 0..10_000 {
        multi.add(Easy::get(slow.url(&format!("/{i}"))).private(i));
    }
    let done = run_all(&mut multi);
    let grown = rss_kib().saturating_sub(before);
    assert_eq!(done.len(), 10_000);
    assert!(done.iter().all(|d| d.result.as_ref().is_ok_and(|r| r.body == b"good")));
    assert!(multi.connects() <= 200);
    // About 1 KiB per queued transfer plus buffers per connection: far under 64 MiB.
    assert!(grown < 64 * 1024, "memory grew by {grown} KiB");
}

#[test]
fn methods_headers_and_bodies_reach_the_server_as_sent() {
    // Answers each request with its own head and body, so the test sees what arrived.
    let echo = Server::start(|mut c| {
        while let Some((head, body)) = read_request(&mut c) {
            let mut out = head.into_bytes();
            out.extend_from_slice(&body);
            let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", out.len());
            if c.write_all(reply.as_bytes()).and_then(|()| c.write_all(&out)).is_err() {
                return;
            }
        }
    });
    let mut multi: Multi<u32> = Multi::with_options(Options::default()).unwrap();
    multi.add(
        Easy::get(echo.url("/a?b=c"))
            .method("PUT")
            .header("X-Token", "secret")
            .header("Accept", "text/plain")
            .body(&b"payload"[..])
            .private(0),
    );
    multi.add(
        Easy::get(echo.url("/r"))
            .body_reader(std::io::Cursor::new(b"streamed".to_vec()), Some(8))
            .private(1),
    );
    for d in run_all(&mut multi) {
        let text = String::from_utf8(d.result.unwrap().body).unwrap();
        match d.private {
            0 => {
                assert!(text.starts_with("PUT /a?b=c HTTP/1.1\r\n"), "{text}");
                assert!(text.contains(&format!("\r\nHost: 127.0.0.1:{}\r\n", echo.port)), "{text}");
                assert!(text.contains("\r\nX-Token: secret\r\n"), "{text}");
                // A caller's Accept replaces the default one.
                assert_eq!(text.matches("Accept:").count(), 1, "{text}");
                assert!(
                    text.contains("\r\nContent-Length: 7\r\n") && text.ends_with("\r\n\r\npayload")
                );
            }
            _ => assert!(
                text.contains("Content-Length: 8\r\n") && text.ends_with("streamed"),
                "{text}"
            ),
        }
    }
}
