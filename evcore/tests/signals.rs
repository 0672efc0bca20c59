//! Signals through `signalfd`, on both reactors. A harness of its own (`harness = false`):
//! the signals must be blocked in every thread before any thread exists, which the standard
//! test harness (threads of its own first) cannot do, and a process-directed signal that
//! reached an unblocked thread would end the whole test process.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use evcore::{signal, Executor, Reactor, Signals};
use futures_util::StreamExt;

fn kill_self(sig: i32) {
    // A process-directed signal, as `kill` and service managers send it.
    // SAFETY: kill(2) on our own pid with a valid signal number has no memory effects.
    let rc = unsafe { libc::kill(libc::getpid(), sig) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
}

/// A process-directed signal reaches a loop that asked for it, while that loop is asleep in
/// its reactor; the stream form gives the next one.
fn reaches_the_loop_that_asked<R: Reactor + 'static>(make: fn() -> R) {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (got_tx, got_rx) = mpsc::channel();
    let t = thread::spawn(move || {
        let ex = Executor::with_reactor(make());
        let mut signals = Signals::new(&[signal::USR1], &ex.handle()).unwrap();
        ready_tx.send(()).unwrap();
        let first = ex.block_on(signals.recv()).unwrap();
        got_tx.send(first).unwrap();
        let second = ex.block_on(signals.next()).unwrap().unwrap();
        got_tx.send(second).unwrap();
    });
    ready_rx.recv().unwrap();
    kill_self(signal::USR1);
    assert_eq!(got_rx.recv_timeout(Duration::from_secs(10)), Ok(signal::USR1));
    kill_self(signal::USR1);
    assert_eq!(got_rx.recv_timeout(Duration::from_secs(10)), Ok(signal::USR1));
    t.join().unwrap();
}

/// Two loops asking for different signals: each hears its own only. B's first signal is
/// USR2 although USR1 was sent (and taken by A) before it.
fn not_to_a_loop_that_did_not_ask<R: Reactor + 'static>(make: fn() -> R) {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (got_tx, got_rx) = mpsc::channel();
    let mut threads = Vec::new();
    for (name, sig) in [("a", signal::USR1), ("b", signal::USR2)] {
        let (ready_tx, got_tx) = (ready_tx.clone(), got_tx.clone());
        threads.push(thread::spawn(move || {
            let ex = Executor::with_reactor(make());
            let signals = Signals::new(&[sig], &ex.handle()).unwrap();
            ready_tx.send(()).unwrap();
            let got = ex.block_on(signals.recv()).unwrap();
            got_tx.send((name, got)).unwrap();
        }));
    }
    ready_rx.recv().unwrap();
    ready_rx.recv().unwrap();
    kill_self(signal::USR1);
    assert_eq!(got_rx.recv_timeout(Duration::from_secs(10)), Ok(("a", signal::USR1)));
    kill_self(signal::USR2);
    assert_eq!(got_rx.recv_timeout(Duration::from_secs(10)), Ok(("b", signal::USR2)));
    for t in threads {
        t.join().unwrap();
    }
}

/// One `Signals` for several: each arrives by its own number.
fn several_signals_on_one_stream<R: Reactor + 'static>(make: fn() -> R) {
    let ex = Executor::with_reactor(make());
    let signals = Signals::new(&[signal::USR1, signal::TERM], &ex.handle()).unwrap();
    kill_self(signal::TERM);
    assert_eq!(ex.block_on(signals.recv()).unwrap(), signal::TERM);
    kill_self(signal::USR1);
    assert_eq!(ex.block_on(signals.recv()).unwrap(), signal::USR1);
}

fn refuses_what_cannot_be_read<R: Reactor + 'static>(make: fn() -> R) {
    let ex = Executor::with_reactor(make());
    for bad in [libc::SIGKILL, libc::SIGSTOP, 0, -1, 100_000] {
        let Err(e) = Signals::new(&[signal::USR1, bad], &ex.handle()) else {
            panic!("{bad} was accepted")
        };
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{bad}: {e}");
    }
    assert!(evcore::block_signals(&[libc::SIGKILL]).is_err());
}

/// A named check of one backend, given how to make its reactor.
type Check<R> = (&'static str, fn(fn() -> R));

fn run_all<R: Reactor + 'static>(backend: &str, make: fn() -> R) {
    let tests: [Check<R>; 4] = [
        ("reaches_the_loop_that_asked", reaches_the_loop_that_asked::<R>),
        ("not_to_a_loop_that_did_not_ask", not_to_a_loop_that_did_not_ask::<R>),
        ("several_signals_on_one_stream", several_signals_on_one_stream::<R>),
        ("refuses_what_cannot_be_read", refuses_what_cannot_be_read::<R>),
    ];
    for (name, test) in tests {
        test(make);
        println!("test {backend}::{name} ... ok");
    }
}

fn main() {
    // First of all, before any thread: every thread started from here inherits the mask.
    evcore::block_signals(&[signal::USR1, signal::USR2, signal::TERM]).unwrap();
    run_all("on_loop", || evcore::Loop::new().unwrap());
    #[cfg(feature = "tokio")]
    run_all("on_tokio", || evcore::TokioReactor::with_clock(evcore::Clock::system()).unwrap());
}
