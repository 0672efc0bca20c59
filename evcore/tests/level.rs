//! Readiness is level-triggered, and registration bookkeeping is forgiving where it should be.

mod support;

use evcore::{Clock, Event, Interest, Reactor, Token};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use support::{poll_now, readable, wait_for_io};

fn unread_data_is_reported_every_turn<R: Reactor>(make: fn(Clock) -> R) {
    let mut r = make(Clock::system());
    let (mut a, mut b) = UnixStream::pair().unwrap();
    r.register(b.as_raw_fd(), Token(7), Interest::In).unwrap();
    assert!(!readable(&poll_now(&mut r), Token(7)), "nothing written yet");
    a.write_all(b"hello").unwrap();
    assert!(readable(&wait_for_io(&mut r, Token(7)), Token(7)));
    assert!(readable(&poll_now(&mut r), Token(7)), "unread data must be reported again");
    let mut one = [0; 1];
    b.read_exact(&mut one).unwrap();
    assert!(readable(&poll_now(&mut r), Token(7)), "a partial read leaves the socket readable");
    let mut rest = [0; 4];
    b.read_exact(&mut rest).unwrap();
    assert!(!readable(&poll_now(&mut r), Token(7)), "drained socket must not be reported");
    r.deregister(b.as_raw_fd()).unwrap();
}

fn writable_is_reported_while_space_remains<R: Reactor>(make: fn(Clock) -> R) {
    let mut r = make(Clock::system());
    let (a, _b) = UnixStream::pair().unwrap();
    r.register(a.as_raw_fd(), Token(1), Interest::Out).unwrap();
    for _ in 0..3 {
        let events = wait_for_io(&mut r, Token(1));
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::Io(Token(1), ready) if ready.is_writable())));
    }
    r.deregister(a.as_raw_fd()).unwrap();
}

fn reregister_changes_token_and_interest<R: Reactor>(make: fn(Clock) -> R) {
    let mut r = make(Clock::system());
    let (mut a, b) = UnixStream::pair().unwrap();
    r.register(b.as_raw_fd(), Token(1), Interest::Out).unwrap();
    a.write_all(b"x").unwrap();
    r.reregister(b.as_raw_fd(), Token(2), Interest::In).unwrap();
    let events = wait_for_io(&mut r, Token(2));
    assert!(readable(&events, Token(2)));
    assert!(!events.iter().any(|e| matches!(e, Event::Io(Token(1), _))), "old token reported");
    assert!(!events.iter().any(|e| matches!(e, Event::Io(_, ready) if ready.is_writable())));
    r.deregister(b.as_raw_fd()).unwrap();
}

fn peer_close_is_reported<R: Reactor>(make: fn(Clock) -> R) {
    let mut r = make(Clock::system());
    let (a, b) = UnixStream::pair().unwrap();
    r.register(b.as_raw_fd(), Token(3), Interest::In).unwrap();
    drop(a);
    let events = wait_for_io(&mut r, Token(3));
    assert!(events.iter().any(
        |e| matches!(e, Event::Io(Token(3), ready) if ready.is_readable() || ready.is_hangup())
    ));
    r.deregister(b.as_raw_fd()).unwrap();
}

fn deregister_is_idempotent_and_tolerates_closed<R: Reactor>(make: fn(Clock) -> R) {
    let mut r = make(Clock::system());
    let (a, b) = UnixStream::pair().unwrap();
    let fd = b.as_raw_fd();
    r.deregister(fd).unwrap();
    r.register(fd, Token(1), Interest::In).unwrap();
    r.deregister(fd).unwrap();
    r.deregister(fd).unwrap();
    r.register(fd, Token(1), Interest::In).unwrap();
    drop(b);
    r.deregister(fd).unwrap();
    r.deregister(fd).unwrap();
    r.deregister(1_000_000).unwrap();
    drop(a);
}

fn double_register_is_an_error<R: Reactor>(make: fn(Clock) -> R) {
    let mut r = make(Clock::system());
    let (_a, b) = UnixStream::pair().unwrap();
    r.register(b.as_raw_fd(), Token(1), Interest::In).unwrap();
    let err = r.register(b.as_raw_fd(), Token(2), Interest::In).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    let err = r.reregister(12345, Token(2), Interest::In).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    r.deregister(b.as_raw_fd()).unwrap();
}

fn deregister_drops_undelivered_events<R: Reactor>(make: fn(Clock) -> R) {
    // OneNonBlocking delivers one event and keeps the rest; deregistering a descriptor in the
    // handler must discard its pending events rather than deliver them for a dead token.
    let mut r = make(Clock::system());
    let (mut a1, b1) = UnixStream::pair().unwrap();
    let (mut a2, b2) = UnixStream::pair().unwrap();
    a1.write_all(b"x").unwrap();
    a2.write_all(b"y").unwrap();
    r.register(b1.as_raw_fd(), Token(5), Interest::In).unwrap();
    r.register(b2.as_raw_fd(), Token(6), Interest::In).unwrap();
    // Wait until both are seen in one turn, so that the dispatch below starts from a turn that
    // reports both.
    while poll_now(&mut r).iter().filter(|e| matches!(e, Event::Io(..))).count() < 2 {}
    let fds = [b1.as_raw_fd(), b2.as_raw_fd()];
    let mut seen = Vec::new();
    loop {
        match r.dispatch(evcore::Dispatch::OneNonBlocking, |r, e| {
            seen.push(e);
            for fd in fds {
                r.deregister(fd).unwrap();
            }
        }) {
            Ok(_) => {}
            Err(evcore::DispatchError::TryAgain) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(seen.len(), 1, "events for a deregistered descriptor were delivered: {seen:?}");
}

each_reactor!(
    unread_data_is_reported_every_turn,
    writable_is_reported_while_space_remains,
    reregister_changes_token_and_interest,
    peer_close_is_reported,
    deregister_is_idempotent_and_tolerates_closed,
    double_register_is_an_error,
    deregister_drops_undelivered_events,
);
