//! An idle loop sleeps: waiting a second for a timer, with a quiet socket registered, takes
//! one or two turns, not thousands.

mod support;

use evcore::{Clock, Dispatch, Event, Interest, Loop, Reactor, Token};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// The process's CPU time (user + system), from /proc, in clock ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn idle_loop_takes_almost_no_turns() {
    let mut lp = Loop::with_clock(Clock::system()).unwrap();
    let (_a, b) = UnixStream::pair().unwrap();
    lp.register(b.as_raw_fd(), Token(1), Interest::In).unwrap();
    let due = lp.now() + Duration::from_secs(1);
    lp.add_timer(due, Token(2));
    let cpu_before = cpu_ticks();
    let mut seen = Vec::new();
    while seen.is_empty() {
        lp.dispatch(Dispatch::One, |_, e| seen.push(e)).unwrap();
    }
    let cpu = cpu_ticks() - cpu_before;
    assert_eq!(seen, [Event::Timer(Token(2))]);
    // One wait for the timer; a second only if the wait ended a hair early.
    assert!(lp.turns() <= 2, "idle loop took {} turns", lp.turns());
    eprintln!("idle second: {} turns, {cpu} CPU ticks for the whole test process", lp.turns());
}

#[test]
fn empty_loop_dispatch_all_returns_at_once() {
    let mut lp = Loop::new().unwrap();
    assert_eq!(lp.dispatch(Dispatch::All, |_, _| {}).unwrap(), 0);
    assert_eq!(lp.turns(), 1);
}
