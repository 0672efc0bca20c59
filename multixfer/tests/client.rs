//! The async API: futures per transfer, a stream of completions, cancellation by drop, on
//! evcore's executor and (feature `tokio`) on tokio through evcore's adapter.

mod common;

use std::time::Duration;

use common::{answer_all, read_request, Server};
use evcore::{Executor, Reactor};
use futures_util::future::join_all;
use futures_util::StreamExt;
use multixfer::client::Client;
use multixfer::{Easy, Options, XferError};

fn server() -> Server {
    Server::start(|c| answer_all(c, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
}

fn exercise<R: Reactor + 'static>(ex: Executor<R>) {
    let good = server();
    let silent = Server::start(|mut c| {
        read_request(&mut c);
        let mut b = [0u8; 1];
        let _ = std::io::Read::read(&mut c, &mut b);
    });
    let client: Client<u32, R> = Client::new(&ex.handle(), Options::default()).unwrap();
    ex.block_on(async {
        // A hundred futures at once.
        let all = join_all((0..100).map(|_| client.fetch(Easy::get(good.url("/"))))).await;
        assert!(all.iter().all(|r| r.as_ref().is_ok_and(|r| r.body == b"hello")));
        // A stream of completions, with private values.
        for i in 0..10 {
            client.submit(Easy::get(good.url("/")).private(i));
        }
        let mut seen: Vec<u32> = client.completions().map(|d| d.private).collect().await;
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        // Dropping a fetch cancels its transfer.
        let pending = client.fetch(Easy::get(silent.url("/")));
        let timed = client.fetch(Easy::get(silent.url("/")).timeout(Duration::from_millis(100)));
        assert!(matches!(timed.await, Err(XferError::Timeout(_))));
        assert_eq!(client.running(), 1);
        drop(pending);
        assert_eq!(client.running(), 0);
        // One not yet handed to the engine is taken back too.
        drop(client.fetch(Easy::get(silent.url("/"))));
        assert_eq!(client.running(), 0);
    });
}

#[test]
fn on_evcore() {
    exercise(Executor::new().unwrap());
}

#[cfg(feature = "tokio")]
#[test]
fn on_tokio() {
    exercise(Executor::with_reactor(evcore::TokioReactor::new().unwrap()));
}

/// The socket-interface driver on tokio's reactor (through evcore's adapter), not only the
/// async client.
#[cfg(feature = "tokio")]
#[test]
fn driver_on_tokio_reactor() {
    let good = server();
    let mut reactor = evcore::TokioReactor::new().unwrap();
    let mut multi: multixfer::Multi<usize> =
        multixfer::Multi::with_options(Options::default()).unwrap();
    for i in 0..50 {
        multi.add(Easy::get(good.url("/")).private(i));
    }
    let mut done = Vec::new();
    multixfer::drive::Driver::new().run(&mut multi, &mut reactor, |d| done.push(d)).unwrap();
    assert_eq!(done.len(), 50);
    assert!(done.iter().all(|d| d.result.as_ref().is_ok_and(|r| r.body == b"hello")));
}

/// Any drop order is sound: the client before its futures (they resolve `Cancelled`), and an
/// engine with transfers in flight (every socket it announced is closed).
#[test]
fn dropping_in_any_order_is_sound() {
    let silent = Server::start(|mut c| {
        read_request(&mut c);
        let mut b = [0u8; 1];
        let _ = std::io::Read::read(&mut c, &mut b);
    });
    let ex = Executor::new().unwrap();
    let client: Client = Client::new(&ex.handle(), Options::default()).unwrap();
    let pending = client.fetch(Easy::get(silent.url("/")));
    let started = client.fetch(Easy::get(silent.url("/")).timeout(Duration::from_millis(50)));
    // Let the driver take both; the one with a timeout ends, the other is still running.
    assert!(matches!(ex.block_on(started), Err(XferError::Timeout(_))));
    drop(client);
    assert!(matches!(ex.block_on(pending), Err(XferError::Cancelled)));

    let mut multi: multixfer::Multi<String> =
        multixfer::Multi::with_options(Options::default()).unwrap();
    // The sockets the engine announced, by descriptor and the socket's inode.
    let announced = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let a = announced.clone();
    multi.set_socket_callback(move |fd, poll, _| {
        if poll != multixfer::SocketPoll::Remove {
            let inode = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
            a.lock().unwrap().push((fd, inode));
        }
    });
    for i in 0..10 {
        multi.add(Easy::get(silent.url("/")).private(format!("transfer {i}")));
    }
    multi.socket_action_timeout().unwrap();
    assert_eq!(multi.running(), 10);
    assert!(!announced.lock().unwrap().is_empty());
    drop(multi);
    // Each announced socket is closed: its descriptor is gone or names another file now.
    for (fd, inode) in announced.lock().unwrap().iter() {
        let now = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok();
        assert_ne!(now.as_ref(), Some(inode), "fd {fd} still open after the engine was dropped");
    }
}

#[test]
fn the_blocking_calls_need_no_loop_of_the_callers() {
    let good = server();
    let r = multixfer::blocking::get(good.url("/")).unwrap();
    assert_eq!((r.status(), &r.body[..]), (200, &b"hello"[..]));
    let all = multixfer::blocking::fetch_all(
        (0..20u32).map(|i| Easy::get(good.url("/")).private(i)),
        Options::default(),
    )
    .unwrap();
    let mut seen: Vec<u32> = all.iter().map(|d| d.private).collect();
    seen.sort();
    assert_eq!(seen, (0..20).collect::<Vec<_>>());
    assert!(all.iter().all(|d| d.result.as_ref().is_ok_and(|r| r.body == b"hello")));
    // A refused connection is the transfer's error, typed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let refused = multixfer::blocking::get(format!("http://127.0.0.1:{port}/"));
    assert!(matches!(refused, Err(multixfer::blocking::Error::Transfer(_))), "{refused:?}");
}

/// A fetch the engine never saw (its client dropped at once) resolves `Cancelled`, on a
/// local executor and on an engine thread; so does one made after the engine is gone.
#[test]
fn fetches_never_handed_to_the_engine_resolve_when_the_client_goes() {
    let good = server();
    let ex = Executor::new().unwrap();
    let client: Client = Client::new(&ex.handle(), Options::default()).unwrap();
    let early = client.fetch(Easy::get(good.url("/")));
    drop(client);
    assert!(matches!(ex.block_on(early), Err(XferError::Cancelled)));

    let engine = evcore::Engine::start().unwrap();
    let client: Client = Client::new(&engine, Options::default()).unwrap();
    // The client keeps the engine running on its own.
    drop(engine);
    let r = evcore::block_on(client.fetch(Easy::get(good.url("/")))).unwrap();
    assert_eq!(r.body, b"hello");
    let early = client.fetch(Easy::get(good.url("/")));
    drop(client);
    let end = evcore::block_on(early);
    assert!(matches!(end, Ok(_) | Err(XferError::Cancelled)), "{end:?}");
}
