//! `Loop::set_spin`: a loop that polls before it sleeps keeps the reactor's contract. Events,
//! remote jobs and wakes that come while it polls end the turn; timers still fire in order and
//! never early; a turn with nothing to do still sleeps its timeout out.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use evcore::{Event, Interest, Loop, Reactor, Token};

fn spinning(spin: Duration) -> Loop {
    let mut lp = Loop::new().unwrap();
    lp.set_spin(spin);
    lp
}

#[test]
fn readiness_from_another_thread_ends_a_spinning_turn() {
    let mut lp = spinning(Duration::from_millis(20));
    let (mut a, b) = UnixStream::pair().unwrap();
    lp.register(b.as_raw_fd(), Token(1), Interest::In).unwrap();
    let writer = std::thread::spawn(move || a.write_all(b"x").unwrap());
    let mut out = Vec::new();
    while !out.iter().any(|e| matches!(e, Event::Io(Token(1), _))) {
        lp.turn(Some(Duration::from_secs(10)), &mut out).unwrap();
    }
    writer.join().unwrap();
}

#[test]
fn a_remote_job_sent_while_the_loop_spins_runs() {
    let mut lp = spinning(Duration::from_millis(50));
    let remote = lp.remote();
    let (tx, rx) = std::sync::mpsc::channel();
    let sender = std::thread::spawn(move || remote.schedule(move || tx.send(7).unwrap()).unwrap());
    let mut out = Vec::new();
    let t0 = Instant::now();
    while rx.try_recv().is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "the job never ran");
        lp.turn(Some(Duration::from_secs(10)), &mut out).unwrap();
    }
    sender.join().unwrap();
}

#[test]
fn timers_fire_in_order_and_never_early_while_spinning() {
    let mut lp = spinning(Duration::from_millis(30));
    let t0 = lp.now();
    lp.add_timer(t0 + Duration::from_millis(12), Token(2));
    lp.add_timer(t0 + Duration::from_millis(4), Token(1));
    let mut fired = Vec::new();
    while fired.len() < 2 {
        let mut out = Vec::new();
        lp.turn(None, &mut out).unwrap();
        for e in out {
            if let Event::Timer(t) = e {
                fired.push((t, lp.now()));
            }
        }
    }
    assert_eq!(fired[0].0, Token(1));
    assert_eq!(fired[1].0, Token(2));
    assert!(fired[0].1 >= t0 + Duration::from_millis(4));
    assert!(fired[1].1 >= t0 + Duration::from_millis(12));
}

#[test]
fn with_nothing_to_do_a_spinning_turn_still_waits_its_timeout() {
    let mut lp = spinning(Duration::from_millis(2));
    let t0 = Instant::now();
    let mut out = Vec::new();
    lp.turn(Some(Duration::from_millis(30)), &mut out).unwrap();
    assert!(out.is_empty(), "{out:?}");
    assert!(t0.elapsed() >= Duration::from_millis(30), "returned early: {:?}", t0.elapsed());
    // A zero timeout never spins: with half a second of spin, it still returns at once.
    let mut long = spinning(Duration::from_millis(500));
    let t1 = Instant::now();
    long.turn(Some(Duration::ZERO), &mut out).unwrap();
    assert!(t1.elapsed() < Duration::from_millis(250), "a zero-timeout turn spun");
}
