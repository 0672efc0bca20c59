//! `TokioReactor` used from inside a tokio application: `turn_async` in a task, and a reactor
//! borrowing the I/O driver of a multi-threaded runtime.

#![cfg(feature = "tokio")]

use evcore::{Clock, Event, Interest, Reactor, Token, TokioReactor};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

#[test]
fn turn_async_inside_a_task() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut r = TokioReactor::with_handle(tokio::runtime::Handle::current(), Clock::system());
        let (mut a, b) = UnixStream::pair().unwrap();
        r.register(b.as_raw_fd(), Token(1), Interest::In).unwrap();
        let due = r.now() + Duration::from_millis(5);
        r.add_timer(due, Token(2));
        a.write_all(b"x").unwrap();
        let mut seen = Vec::new();
        while !seen.contains(&Event::Timer(Token(2))) {
            r.turn_async(Some(Duration::from_secs(5)), &mut seen).await.unwrap();
        }
        assert!(seen
            .iter()
            .any(|e| matches!(e, Event::Io(Token(1), ready) if ready.is_readable())));
        r.deregister(b.as_raw_fd()).unwrap();
    });
}

#[test]
fn blocking_turn_on_a_multithreaded_runtime() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let mut r = TokioReactor::with_handle(rt.handle().clone(), Clock::system());
    let (mut a, b) = UnixStream::pair().unwrap();
    r.register(b.as_raw_fd(), Token(9), Interest::In).unwrap();
    a.write_all(b"x").unwrap();
    let mut out = Vec::new();
    for _ in 0..50 {
        r.turn(Some(Duration::from_millis(100)), &mut out).unwrap();
        if !out.is_empty() {
            break;
        }
    }
    assert!(
        out.iter().any(|e| matches!(e, Event::Io(Token(9), ready) if ready.is_readable())),
        "{out:?}"
    );
    r.deregister(b.as_raw_fd()).unwrap();
    drop(r);
    drop(rt);
}
