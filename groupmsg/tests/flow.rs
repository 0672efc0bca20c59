//! Waiting on flow control, on the local bus and on `groupd` (corosync sends no notice when
//! its flow control clears; its senders retry after pauses, covered by the conformance suite's
//! flood through one handle).
//!
//! The flow limit is set low (4 events) so that a member that does not dispatch turns flow
//! control on after a few messages of 64 KiB (on `groupd`, once its socket is full too).

use std::io::IoSlice;
use std::time::Duration;

use futures_util::StreamExt;
use groupmsg::{
    Backend, Collect, Cpg, CpgEvent, CsError, Dispatch, EventStream, FlowControl, GroupName,
    Guarantee, LocalBus,
};
use rustix::event::{PollFd, PollFlags};

const LIMIT: usize = 4;
const SIZE: usize = 64 << 10;

enum Fixture {
    Local(LocalBus),
    Daemon(std::path::PathBuf),
}

impl Fixture {
    fn local() -> Fixture {
        let bus = LocalBus::new();
        bus.set_flow_limit(LIMIT);
        Fixture::Local(bus)
    }

    fn daemon() -> Fixture {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("flow-{}-{n}.sock", std::process::id()));
        let d = groupmsg::Groupd::bind(&path).unwrap();
        d.bus().set_flow_limit(LIMIT);
        std::thread::spawn(move || d.run());
        Fixture::Daemon(path)
    }

    fn handle(&self) -> Cpg<Collect> {
        let backend = match self {
            Fixture::Local(bus) => Backend::Local(bus.clone()),
            Fixture::Daemon(path) => Backend::Daemon(path.clone()),
        };
        Cpg::initialize(backend, Collect::default()).unwrap()
    }
}

fn group() -> GroupName {
    GroupName::new("flow").unwrap()
}

fn delivered(c: &Cpg<Collect>) -> usize {
    c.handler().events.iter().filter(|e| matches!(e, CpgEvent::Deliver { .. })).count()
}

/// Two members joined, each having seen its own join (the second also the first's).
fn pair(f: &Fixture) -> (Cpg<Collect>, Cpg<Collect>) {
    let (mut a, mut b) = (f.handle(), f.handle());
    a.join(&group()).unwrap();
    b.join(&group()).unwrap();
    // a sees its join and b's; b sees its own.
    while a.handler().events.len() < 2 {
        a.dispatch(Dispatch::One).unwrap();
    }
    while b.handler().events.is_empty() {
        b.dispatch(Dispatch::One).unwrap();
    }
    a.handler_mut().events.clear();
    b.handler_mut().events.clear();
    (a, b)
}

fn readable_within(c: &Cpg<Collect>, limit: Duration) -> bool {
    let mut fds = [PollFd::new(c, PollFlags::IN)];
    rustix::event::poll(&mut fds, Some(&rustix::event::Timespec::try_from(limit).unwrap())).unwrap()
        > 0
}

/// A sender refused for flow control is woken (its descriptor readable, with no event behind
/// it) when the slow member catches up, and reads the state as off without sending again.
fn refused_sender_is_woken_when_flow_clears(f: Fixture) {
    let (mut a, mut b) = pair(&f);
    let msg = vec![7u8; SIZE];
    let mut sent = 0;
    loop {
        loop {
            match a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(&msg)]) {
                Ok(()) => sent += 1,
                Err(CsError::TryAgain) => break,
                Err(e) => panic!("{e}"),
            }
            a.dispatch(Dispatch::All).unwrap();
            assert!(sent < 10_000, "flow control never came on");
        }
        // The sender takes in all of its own messages: nothing more is on its way to it.
        while delivered(&a) < sent {
            a.dispatch(Dispatch::One).unwrap();
        }
        // Flow control may have been the sender's own backlog: only once it is still on with
        // the sender caught up is the other member the one behind.
        match a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(&msg)]) {
            Err(CsError::TryAgain) => break,
            Ok(()) => sent += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(a.flow_control_state(), FlowControl::Enabled);
    a.handler_mut().events.clear();
    assert!(!readable_within(&a, Duration::ZERO), "a wake-up before the member caught up");
    // The slow member catches up.
    while delivered(&b) < sent {
        b.dispatch(Dispatch::One).unwrap();
    }
    assert!(readable_within(&a, Duration::from_secs(10)), "no wake-up when flow cleared");
    assert_eq!(a.dispatch(Dispatch::All).unwrap(), 0, "the wake-up is not an event");
    assert_eq!(a.flow_control_state(), FlowControl::Disabled);
    assert!(!readable_within(&a, Duration::ZERO), "the wake-up stays readable");
    a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"again")]).unwrap();
}

/// `EventStream::mcast_joined` floods through flow control while the slow member reads on
/// another thread: everything arrives, in order, and no send fails.
fn async_sends_wait_out_flow_control(f: Fixture) {
    const N: usize = 300;
    let (a, mut b) = pair(&f);
    let reader = std::thread::spawn(move || {
        while delivered(&b) < N {
            b.dispatch(Dispatch::One).unwrap();
        }
        b
    });
    let ex = evcore::Executor::new().unwrap();
    let mut events = EventStream::new(a, &ex.handle()).unwrap();
    let own = ex.block_on(async {
        let mut own = 0;
        for i in 0..N {
            let mut msg = vec![0u8; SIZE];
            msg[..8].copy_from_slice(&(i as u64).to_be_bytes());
            events.mcast_joined(Guarantee::Agreed, &[IoSlice::new(&msg)]).await.unwrap();
        }
        while own < N {
            if let Some(Ok(CpgEvent::Deliver { .. })) = events.next().await {
                own += 1;
            }
        }
        own
    });
    assert_eq!(own, N);
    let b = reader.join().unwrap();
    let order: Vec<u64> = b
        .handler()
        .events
        .iter()
        .filter_map(|e| match e {
            CpgEvent::Deliver { msg, .. } => Some(u64::from_be_bytes(msg[..8].try_into().unwrap())),
            _ => None,
        })
        .collect();
    assert_eq!(order, (0..N as u64).collect::<Vec<_>>());
}

/// The blocking retry helper: bounded by its timeout while the slow member does not read,
/// and through once it does.
fn retry_is_bounded_and_goes_through(f: Fixture) {
    let (mut a, mut b) = pair(&f);
    let msg = vec![1u8; SIZE];
    let mut sent = 0;
    loop {
        let refused = loop {
            match a.mcast_joined_retry(Guarantee::Agreed, &[IoSlice::new(&msg)], Duration::ZERO) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
            a.dispatch(Dispatch::All).unwrap();
            assert!(sent < 10_000, "flow control never came on");
        };
        assert_eq!(refused, CsError::TryAgain);
        while delivered(&a) < sent {
            a.dispatch(Dispatch::One).unwrap();
        }
        // With the sender caught up, the other member holds flow control on: a bounded
        // retry gives up (unless flow control was the sender's own backlog: then again).
        let wait = Duration::from_millis(30);
        match a.mcast_joined_retry(Guarantee::Agreed, &[IoSlice::new(&msg)], wait) {
            Err(CsError::TryAgain) => break,
            Ok(()) => sent += 1,
            Err(e) => panic!("{e}"),
        }
    }
    let sender = a.sender();
    let reader = std::thread::spawn(move || {
        while delivered(&b) < sent + 1 {
            b.dispatch(Dispatch::One).unwrap();
        }
    });
    sender
        .mcast_joined_retry(Guarantee::Agreed, &[IoSlice::new(b"through")], Duration::from_secs(60))
        .unwrap();
    reader.join().unwrap();
}

macro_rules! on_both {
    ($($test:ident),* $(,)?) => {
        mod local {
            $(#[test] fn $test() { super::$test(super::Fixture::local()) })*
        }
        mod groupd {
            $(#[test] fn $test() { super::$test(super::Fixture::daemon()) })*
        }
    };
}

on_both!(
    refused_sender_is_woken_when_flow_clears,
    async_sends_wait_out_flow_control,
    retry_is_bounded_and_goes_through,
);
