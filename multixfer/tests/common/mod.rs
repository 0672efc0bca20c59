//! Shared by the integration tests: nginx with the locations the tests use, and small servers
//! of our own that misbehave on purpose.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use evcore::Loop;
use multixfer::drive::Driver;
use multixfer::{Done, Multi};

/// nginx with redirect and POST locations, and `keepalive_requests` as given.
pub fn nginx(keepalive_requests: u64) -> peers::Nginx {
    let config = peers::NginxConfig {
        keepalive_requests,
        server_extra: "location = /r1 { return 302 /r2; }\n\
            location = /r2 { return 301 /ping; }\n\
            location = /loop { return 302 /loop; }\n\
            location = /see-other { return 303 /ping; }\n\
            location = /post { return 201 \"created\"; }\n"
            .into(),
        ..Default::default()
    };
    peers::Nginx::start(&config).expect("nginx starts (run as root with nginx installed)")
}

/// Runs every transfer in `multi` to completion on an evcore loop; returns the messages in
/// the order they finished.
/// An engine's sockets are announced once, to one loop: run it on a fresh loop only once.
pub fn run_all<T, S>(multi: &mut Multi<T, S>) -> Vec<Done<T>> {
    run_on(multi, &mut Loop::new().unwrap(), &mut Driver::new())
}

/// Runs on a given loop and driver, for engines driven more than once.
pub fn run_on<T, S>(multi: &mut Multi<T, S>, lp: &mut Loop, driver: &mut Driver) -> Vec<Done<T>> {
    let mut out = Vec::new();
    driver.run(multi, lp, |d| out.push(d)).unwrap();
    out
}

/// A TCP server on 127.0.0.1 that runs `handle` on a thread per connection; counts
/// connections.
pub struct Server {
    pub port: u16,
    pub accepted: Arc<AtomicUsize>,
}

impl Server {
    pub fn start(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let handle = Arc::new(handle);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let handle = handle.clone();
                std::thread::spawn(move || handle(conn));
            }
        });
        Server { port, accepted }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }
}

/// Reads one request head (and a Content-Length body) off `conn`; `None` at end of stream.
pub fn read_request(conn: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// Answers every request on the connection with `response` until the client closes.
pub fn answer_all(mut conn: TcpStream, response: &[u8]) {
    while read_request(&mut conn).is_some() {
        if conn.write_all(response).is_err() {
            return;
        }
    }
}

/// A slow writer: each piece after a pause.
pub fn trickle(conn: &mut TcpStream, pieces: &[&[u8]], pause: Duration) {
    for p in pieces {
        if conn.write_all(p).is_err() {
            return;
        }
        std::thread::sleep(pause);
    }
}

/// A test CA and a certificate for `localhost` and 127.0.0.1 signed by it, written to `dir` as
/// `ca.pem`, `server.pem` and `server.key`.
pub fn test_certificates(dir: &std::path::Path) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
}
