//! Shared by the reactor conformance tests: every test function is generic over the reactor
//! and `each_reactor!` runs it on `Loop` and, with feature `tokio`, on `TokioReactor`.

#![allow(dead_code, unreachable_pub)]

use evcore::{Event, Reactor, Token};
use std::time::Duration;

/// Generates one `#[test]` per function and backend.
#[macro_export]
macro_rules! each_reactor {
    ($($name:ident),* $(,)?) => {
        mod on_loop {
            $(#[test] fn $name() { super::$name(|clock| evcore::Loop::with_clock(clock).unwrap()) })*
        }
        #[cfg(feature = "tokio")]
        mod on_tokio {
            $(#[test] fn $name() { super::$name(|clock| evcore::TokioReactor::with_clock(clock).unwrap()) })*
        }
    };
}

/// One turn with a zero timeout.
pub fn poll_now<R: Reactor>(r: &mut R) -> Vec<Event> {
    let mut out = Vec::new();
    r.turn(Some(Duration::ZERO), &mut out).unwrap();
    out
}

/// Turns until an event for `token` appears (bounded, so a missing event fails the test).
pub fn wait_for_io<R: Reactor>(r: &mut R, token: Token) -> Vec<Event> {
    for _ in 0..50 {
        let mut out = Vec::new();
        r.turn(Some(Duration::from_millis(100)), &mut out).unwrap();
        if out.iter().any(|e| matches!(e, Event::Io(t, _) if *t == token)) {
            return out;
        }
    }
    panic!("no event for {token:?} within 5 s");
}

/// The timer tokens among `events`, in order.
pub fn timers(events: &[Event]) -> Vec<usize> {
    events.iter().filter_map(|e| if let Event::Timer(t) = e { Some(t.0) } else { None }).collect()
}

/// Whether `events` report `token` as readable.
pub fn readable(events: &[Event], token: Token) -> bool {
    events.iter().any(|e| matches!(e, Event::Io(t, r) if *t == token && r.is_readable()))
}
