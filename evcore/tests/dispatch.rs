//! The four dispatch modes of `cpg_dispatch`, on every reactor.

mod support;

use evcore::{Clock, Dispatch, DispatchError, Event, Interest, Reactor, Token};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::Duration;

fn one_nonblocking_on_empty_is_try_again<R: Reactor>(make: fn(Clock) -> R) {
    let mut r = make(Clock::system());
    let mut calls = 0;
    let result = r.dispatch(Dispatch::OneNonBlocking, |_, _| calls += 1);
    assert!(matches!(result, Err(DispatchError::TryAgain)), "{result:?}");
    assert_eq!(calls, 0);
}

fn one_nonblocking_handles_at_most_one<R: Reactor>(make: fn(Clock) -> R) {
    let mut r = make(Clock::system());
    for t in 0..3 {
        r.schedule_immediate(Token(t));
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        let n = r.dispatch(Dispatch::OneNonBlocking, |_, e| seen.push(e)).unwrap();
        assert_eq!(n, 1);
    }
    assert_eq!(seen, (0..3).map(|t| Event::Immediate(Token(t))).collect::<Vec<_>>());
    assert!(matches!(
        r.dispatch(Dispatch::OneNonBlocking, |_, _| {}),
        Err(DispatchError::TryAgain)
    ));
}

fn all_handles_everything_pending_without_blocking<R: Reactor>(make: fn(Clock) -> R) {
    let mut r = make(Clock::system());
    assert_eq!(r.dispatch(Dispatch::All, |_, _| {}).unwrap(), 0, "empty loop returns at once");
    let (mut a, b) = UnixStream::pair().unwrap();
    r.register(b.as_raw_fd(), Token(10), Interest::In).unwrap();
    a.write_all(b"x").unwrap();
    support::wait_for_io(&mut r, Token(10));
    r.schedule_immediate(Token(1));
    r.schedule_immediate(Token(2));
    let mut seen = Vec::new();
    let n = r.dispatch(Dispatch::All, |_, e| seen.push(e)).unwrap();
    assert_eq!(n, 3, "{seen:?}");
    assert!(
        seen.contains(&Event::Immediate(Token(1))) && seen.contains(&Event::Immediate(Token(2)))
    );
    assert!(seen.iter().any(|e| matches!(e, Event::Io(Token(10), _))));
    r.deregister(b.as_raw_fd()).unwrap();
}

fn one_blocks_until_something_happens<R: Reactor>(make: fn(Clock) -> R) {
    let mut r = make(Clock::system());
    let due = r.now() + Duration::from_millis(10);
    r.add_timer(due, Token(4));
    let mut seen = Vec::new();
    let n = r.dispatch(Dispatch::One, |_, e| seen.push(e)).unwrap();
    assert!(n >= 1);
    assert_eq!(seen, [Event::Timer(Token(4))]);
}

fn blocking_stopped_from_a_remote<R: Reactor>(make: fn(Clock) -> R) {
    let mut r = make(Clock::system());
    let remote = r.remote();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = thread::spawn(move || {
        for i in 0..10 {
            let tx = tx.clone();
            remote.schedule(move || tx.send(i).unwrap()).unwrap();
        }
        remote.stop().unwrap();
    });
    let handled = r.dispatch(Dispatch::Blocking, |_, _| {}).unwrap();
    t.join().unwrap();
    assert!(handled >= 1, "the notifications were dispatched");
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
}

fn blocking_stopped_from_a_handler<R: Reactor>(make: fn(Clock) -> R) {
    let mut r = make(Clock::system());
    for t in 0..5 {
        r.schedule_immediate(Token(t));
    }
    let mut seen = Vec::new();
    let n = r
        .dispatch(Dispatch::Blocking, |r, e| {
            seen.push(e);
            if e == Event::Immediate(Token(2)) {
                r.stop();
            }
        })
        .unwrap();
    assert_eq!(n, 3, "stop takes effect after the current handler");
    // What the stopped dispatch did not deliver is kept for the next one.
    let mut rest = Vec::new();
    r.dispatch(Dispatch::All, |_, e| rest.push(e)).unwrap();
    assert_eq!(rest, [Event::Immediate(Token(3)), Event::Immediate(Token(4))]);
}

each_reactor!(
    one_nonblocking_on_empty_is_try_again,
    one_nonblocking_handles_at_most_one,
    all_handles_everything_pending_without_blocking,
    one_blocks_until_something_happens,
    blocking_stopped_from_a_remote,
    blocking_stopped_from_a_handler,
);
