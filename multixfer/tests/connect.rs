//! The connect timeout as libcurl budgets it: it covers every address of a host, an address
//! that never answers gets only part of it (half of what is left, but for the last), and the
//! next address is tried. Before, the first silent address spent the whole timeout and the
//! transfer failed although the next address answered at once.

mod common;

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::{read_request, run_all};
use multixfer::{Easy, Multi, Options, XferError};

/// A listener whose accept queue is full and never drained: a connect to it gets no answer at
/// all (its SYN is dropped), which is what an unreachable address looks like.
struct Silent {
    addr: SocketAddr,
    _listener: TcpListener,
    _filling: Vec<std::net::TcpStream>,
}

impl Silent {
    fn on(ip: &str) -> Silent {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        // std listens with a backlog of 128; a new socket with backlog 0 fills at once.
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let sock = socket2_listen(addr);
        let mut filling = Vec::new();
        for _ in 0..4 {
            if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                filling.push(s);
            }
        }
        Silent { addr, _listener: sock, _filling: filling }
    }
}

/// A listening socket with a backlog of 0 (std offers no backlog argument).
fn socket2_listen(addr: SocketAddr) -> TcpListener {
    use rustix::net::{bind, listen, socket, AddressFamily, SocketType};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    rustix::net::sockopt::set_socket_reuseaddr(&fd, true).unwrap();
    bind(&fd, &addr).unwrap();
    listen(&fd, 0).unwrap();
    TcpListener::from(fd)
}

/// A server answering 200 on `ip` at `port`.
fn answering(ip: &str, port: u16) {
    let listener = TcpListener::bind((ip, port)).unwrap();
    std::thread::spawn(move || {
        for c in listener.incoming() {
            let mut c = c.unwrap();
            std::thread::spawn(move || {
                while read_request(&mut c).is_some() {
                    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if c.write_all(ok).is_err() {
                        return;
                    }
                }
            });
        }
    });
}

#[test]
fn a_silent_first_address_leaves_time_for_the_next() {
    let silent = Silent::on("127.0.0.2");
    let port = silent.addr.port();
    answering("127.0.0.3", port);
    let addrs: Vec<IpAddr> = vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()];
    let mut multi: Multi = Multi::with_options(Options::default()).unwrap();
    multi.add(
        Easy::get(format!("http://two.test:{port}/"))
            .resolve("two.test", port, addrs)
            .connect_timeout(Duration::from_secs(4)),
    );
    let done = run_all(&mut multi);
    let r = done[0].result.as_ref().expect("the second address answered");
    assert_eq!(r.head.status, 200);
}

#[test]
fn every_address_silent_fails_with_the_connect_timeout_once_the_budget_is_spent() {
    let a = Silent::on("127.0.0.4");
    let port = a.addr.port();
    // The same port on another loopback address, silent too.
    let b = socket2_listen(SocketAddr::new("127.0.0.5".parse().unwrap(), port));
    let mut filling = Vec::new();
    for _ in 0..4 {
        if let Ok(s) =
            TcpStream::connect_timeout(&b.local_addr().unwrap(), Duration::from_millis(200))
        {
            filling.push(s);
        }
    }
    let addrs: Vec<IpAddr> = vec!["127.0.0.4".parse().unwrap(), "127.0.0.5".parse().unwrap()];
    let mut multi: Multi = Multi::with_options(Options::default()).unwrap();
    multi.add(
        Easy::get(format!("http://none.test:{port}/"))
            .resolve("none.test", port, addrs)
            .connect_timeout(Duration::from_millis(600)),
    );
    let done = run_all(&mut multi);
    assert!(
        matches!(done[0].result, Err(XferError::ConnectTimeout(t)) if t == Duration::from_millis(600)),
        "{:?}",
        done[0].result
    );
}
