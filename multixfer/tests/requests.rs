//! What goes out on the wire is what the user meant and no more: credentials stay with the
//! origin they were given for, a header or method cannot split the request, and a body has one
//! framing. Each case was a finding of the reliability review and failed before its fix.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{read_request, run_all, Server};
use multixfer::{Easy, Multi, Options, XferError};

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// Each request a server saw: head and body.
type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A server that records each request head (and body) and answers 200.
fn recorder() -> (Server, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let server = Server::start(move |mut c| {
        while let Some(req) = read_request(&mut c) {
            log.lock().unwrap().push(req);
            if c.write_all(OK).is_err() {
                return;
            }
        }
    });
    (server, seen)
}

/// A server that redirects every request to `to`.
fn redirector(to: String) -> Server {
    Server::start(move |mut c| {
        while read_request(&mut c).is_some() {
            let r = format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n");
            if c.write_all(r.as_bytes()).is_err() {
                return;
            }
        }
    })
}

fn with_credentials(url: String) -> Easy {
    Easy::get(url)
        .follow_location(true)
        .header("Authorization", "Basic c2VjcmV0")
        .header("Cookie", "session=secret")
        .header("Proxy-Authorization", "Basic c2VjcmV0")
        .header("X-Trace", "kept")
}

fn has(head: &str, name: &str) -> bool {
    head.lines().any(|l| l.to_ascii_lowercase().starts_with(&format!("{}:", name.to_lowercase())))
}

#[test]
fn credentials_do_not_follow_a_redirect_to_another_origin() {
    let (target, seen) = recorder();
    // Another port of the same host is another origin, as in curl.
    let from = redirector(target.url("/landing"));
    let mut multi: Multi = Multi::with_options(Options::default()).unwrap();
    multi.add(with_credentials(from.url("/start")));
    let done = run_all(&mut multi);
    let r = done[0].result.as_ref().unwrap();
    assert_eq!((r.head.status, r.redirects), (200, 1));
    let (head, _) = seen.lock().unwrap()[0].clone();
    for name in ["Authorization", "Cookie", "Proxy-Authorization"] {
        assert!(!has(&head, name), "{name} followed the redirect to another port:\n{head}");
    }
    assert!(has(&head, "X-Trace"), "other headers still go: {head}");
}

#[test]
fn credentials_follow_a_redirect_within_the_origin_or_when_allowed() {
    // Within one origin: a server that redirects /start to /landing on itself.
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let same = Server::start(move |mut c| {
        while let Some((head, body)) = read_request(&mut c) {
            let first = head.starts_with("GET /start ");
            log.lock().unwrap().push((head, body));
            let r: &[u8] = if first {
                b"HTTP/1.1 302 Found\r\nLocation: /landing\r\nContent-Length: 0\r\n\r\n"
            } else {
                OK
            };
            if c.write_all(r).is_err() {
                return;
            }
        }
    });
    let (target, elsewhere) = recorder();
    let from = redirector(target.url("/landing"));
    let mut multi: Multi = Multi::with_options(Options::default()).unwrap();
    multi.add(with_credentials(same.url("/start")));
    multi.add(with_credentials(from.url("/start")).unrestricted_auth(true));
    for d in run_all(&mut multi) {
        assert_eq!(d.result.unwrap().head.status, 200);
    }
    let (landing, _) = seen.lock().unwrap()[1].clone();
    assert!(landing.starts_with("GET /landing "), "{landing}");
    let (allowed, _) = elsewhere.lock().unwrap()[0].clone();
    for head in [landing, allowed] {
        for name in ["Authorization", "Cookie", "Proxy-Authorization"] {
            assert!(has(&head, name), "{name} missing:\n{head}");
        }
    }
}

#[test]
fn a_header_or_method_cannot_split_the_request() {
    let (server, seen) = recorder();
    let url = server.url("/");
    let cases: Vec<(&str, Easy)> = vec![
        ("CRLF in a value", Easy::get(&url).header("X-A", "v\r\nGET /smuggled HTTP/1.1")),
        ("LF in a value", Easy::get(&url).header("X-A", "v\nX-B: w")),
        ("NUL in a value", Easy::get(&url).header("X-A", "v\0w")),
        ("CR in a name", Easy::get(&url).header("X-A\r\nX-B", "v")),
        ("colon in a name", Easy::get(&url).header("X-A: v", "w")),
        ("empty name", Easy::get(&url).header("", "w")),
        ("method with a space", Easy::get(&url).method("GET / HTTP/1.1\r\nX:")),
        ("empty method", Easy::get(&url).method("")),
    ];
    let mut multi: Multi<&str> = Multi::with_options(Options::default()).unwrap();
    for (what, easy) in cases {
        multi.add(easy.private(what));
    }
    multi.add(
        Easy::get(&url).header("X-Fine", "a value: with colons; and \"quotes\"").private("ok"),
    );
    for d in run_all(&mut multi) {
        match (d.private, d.result) {
            ("ok", Ok(r)) => assert_eq!(r.head.status, 200),
            (what, Err(XferError::BadRequest(_))) => assert_ne!(what, "ok"),
            (what, other) => panic!("{what}: {other:?}"),
        }
    }
    // Only the good request reached the server, and nothing was smuggled in beside it.
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(has(&seen[0].0, "X-Fine"));
}

#[test]
fn a_body_goes_with_one_framing() {
    let (server, seen) = recorder();
    let mut multi: Multi = Multi::with_options(Options::default()).unwrap();
    multi.add(
        Easy::get(server.url("/"))
            .method("POST")
            .header("Content-Length", "999")
            .header("Transfer-Encoding", "chunked")
            .body(&b"hello"[..])
            // Two framings once left the server waiting for 999 bytes: fail, do not hang.
            .timeout(std::time::Duration::from_secs(20)),
    );
    assert_eq!(run_all(&mut multi)[0].result.as_ref().unwrap().head.status, 200);
    let (head, body) = seen.lock().unwrap()[0].clone();
    let lengths: Vec<&str> =
        head.lines().filter(|l| l.to_ascii_lowercase().starts_with("content-length:")).collect();
    assert_eq!(lengths, ["Content-Length: 5"], "{head}");
    assert!(!has(&head, "Transfer-Encoding"), "{head}");
    assert_eq!(body, b"hello");
}

/// A body collected in memory had no bound but the server's word.
#[test]
fn max_filesize_bounds_a_body_announced_or_not() {
    let announced = Server::start(|mut c| {
        while read_request(&mut c).is_some() {
            let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n".to_vec();
            r.extend(vec![b'x'; 1000]);
            if c.write_all(&r).is_err() {
                return;
            }
        }
    });
    let endless = Server::start(|mut c| {
        if read_request(&mut c).is_some() {
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            let chunk = format!("{:x}\r\n{}\r\n", 4096, "y".repeat(4096));
            while c.write_all(chunk.as_bytes()).is_ok() {}
        }
    });
    let (small, _) = recorder();
    // A followed redirect's body does not count; a HEAD's Content-Length is no body.
    let hops = Server::start(|mut c| {
        while let Some((head, _)) = read_request(&mut c) {
            let r = if head.starts_with("GET /start") {
                format!(
                    "HTTP/1.1 302 Found\r\nLocation: /end\r\nContent-Length: 800\r\n\r\n{}",
                    "r".repeat(800)
                )
            } else if head.starts_with("HEAD") {
                "HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n".to_string()
            } else {
                format!("HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n{}", "e".repeat(300))
            };
            if c.write_all(r.as_bytes()).is_err() {
                return;
            }
        }
    });
    let mut multi: Multi<&str> = Multi::with_options(Options::default()).unwrap();
    multi.add(
        Easy::get(hops.url("/start")).follow_location(true).max_filesize(1000).private("hops"),
    );
    multi.add(Easy::get(hops.url("/big")).method("HEAD").max_filesize(1000).private("head"));
    multi.add(Easy::get(announced.url("/")).max_filesize(65_536).private("announced"));
    multi.add(Easy::get(endless.url("/")).max_filesize(65_536).private("endless"));
    multi.add(Easy::get(small.url("/")).max_filesize(2).private("within"));
    for d in run_all(&mut multi) {
        match (d.private, d.result) {
            ("within", Ok(r)) => assert_eq!(r.body, b"ok"),
            ("hops", Ok(r)) => assert_eq!(r.body.len(), 300),
            ("head", Ok(r)) => assert!(r.body.is_empty()),
            ("announced" | "endless", Err(XferError::FileTooLarge(65_536))) => {}
            (what, other) => panic!("{what}: {other:?}"),
        }
    }
}

/// A timeout too long to add to a clock reading (`Duration::MAX`) panicked the engine.
#[test]
fn absurd_timeouts_are_no_timeout() {
    let (server, _) = recorder();
    let mut multi: Multi = Multi::with_options(Options::default()).unwrap();
    multi.add(
        Easy::get(server.url("/"))
            .timeout(std::time::Duration::MAX)
            .connect_timeout(std::time::Duration::MAX),
    );
    assert_eq!(run_all(&mut multi)[0].result.as_ref().unwrap().head.status, 200);
}
