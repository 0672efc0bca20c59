//! A member that stops reading, on the in-process bus: it may hold flow control on for the
//! stall limit at most, then it is removed and the others see it leave as PROCDOWN; a sender
//! that ignores flow control is bounded by the backlog limit. Before, one member that never
//! dispatched stalled its group for ever (or grew memory without bound).

use std::io::IoSlice;
use std::time::{Duration, Instant};

use groupmsg::{
    Backend, Collect, Cpg, CpgEvent, CsError, Dispatch, GroupName, Guarantee, LocalBus, Reason,
};

fn handle(bus: &LocalBus) -> Cpg<Collect> {
    Cpg::initialize(Backend::Local(bus.clone()), Collect::default()).unwrap()
}

fn procdown_of(events: &[CpgEvent], pid: u32) -> bool {
    events.iter().any(|e| {
        matches!(e, CpgEvent::ConfChg { left, .. }
            if left.iter().any(|c| c.member.pid == pid && c.reason == Reason::ProcDown))
    })
}

#[test]
fn a_member_that_stops_dispatching_is_removed_after_the_stall_limit() {
    let bus = LocalBus::new();
    bus.set_flow_limit(100);
    bus.set_max_stall(Duration::from_millis(200));
    let g = GroupName::new("stall").unwrap();
    let (mut a, mut b) = (handle(&bus), handle(&bus));
    a.join(&g).unwrap();
    b.join(&g).unwrap();
    let b_pid = b.member().pid;
    // a sends as flow control allows, dispatching its own copies; b never dispatches.
    let start = Instant::now();
    let mut sent = 0u32;
    while !procdown_of(&a.handler().events, b_pid) {
        assert!(start.elapsed() < Duration::from_secs(20), "b was never removed");
        match a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(&sent.to_be_bytes())]) {
            Ok(()) => sent += 1,
            Err(CsError::TryAgain) => {}
            Err(e) => panic!("{e:?}"),
        }
        a.dispatch(Dispatch::All).unwrap();
    }
    assert!(sent >= 100, "flow control held a back until b was removed ({sent} sent)");
    // The group goes on without b: a's later messages are delivered to a.
    for i in 0..1000u32 {
        while let Err(e) = a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(&i.to_be_bytes())]) {
            assert_eq!(e, CsError::TryAgain);
            a.dispatch(Dispatch::All).unwrap();
        }
    }
    a.dispatch(Dispatch::All).unwrap();
    assert_eq!(a.membership_get().unwrap(), [a.member()]);
    // b's handle reports that it is gone.
    assert_eq!(b.dispatch(Dispatch::All), Err(CsError::BadHandle));
}

#[test]
fn a_member_within_the_limits_is_never_removed() {
    let bus = LocalBus::new();
    bus.set_flow_limit(100);
    bus.set_max_stall(Duration::from_secs(3600));
    let g = GroupName::new("fine").unwrap();
    let (mut a, mut b) = (handle(&bus), handle(&bus));
    a.join(&g).unwrap();
    b.join(&g).unwrap();
    let mut sent = 0u32;
    while sent < 5_000 {
        match a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(&sent.to_be_bytes())]) {
            Ok(()) => sent += 1,
            Err(CsError::TryAgain) => {
                b.dispatch(Dispatch::All).unwrap();
            }
            Err(e) => panic!("{e:?}"),
        }
        a.dispatch(Dispatch::All).unwrap();
    }
    b.dispatch(Dispatch::All).unwrap();
    let got = b.handler().events.iter().filter(|e| matches!(e, CpgEvent::Deliver { .. })).count();
    assert_eq!(got, 5_000, "a slow member that catches up loses nothing");
    assert_eq!(a.membership_get().unwrap().len(), 2);
}
