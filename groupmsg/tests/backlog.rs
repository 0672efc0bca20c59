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

fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

/// A message waiting for many members was copied into each member's inbox: 100 members
/// behind on one 32 MiB message held 3.2 GiB. Now they share one buffer.
#[test]
fn a_message_waiting_for_many_members_is_held_once() {
    let bus = LocalBus::new();
    let g = GroupName::new("shared").unwrap();
    let mut members: Vec<Cpg<Collect>> = (0..100).map(|_| handle(&bus)).collect();
    for m in &mut members {
        m.join(&g).unwrap();
        m.dispatch(Dispatch::All).unwrap();
    }
    let big = vec![5u8; 32 << 20];
    let before = rss_mib();
    members[0].mcast_joined(Guarantee::Agreed, &[IoSlice::new(&big)]).unwrap();
    drop(big);
    let grown = rss_mib().saturating_sub(before);
    assert!(grown < 200, "{grown} MiB for one 32 MiB message waiting for 100 members");
    // Each member still gets the whole message.
    for m in members.iter_mut().take(3) {
        m.dispatch(Dispatch::All).unwrap();
        let got = m.handler().events.iter().rev().find_map(|e| match e {
            CpgEvent::Deliver { msg, .. } => Some(msg.len()),
            _ => None,
        });
        assert_eq!(got, Some(32 << 20));
        m.handler_mut().events.clear();
    }
}
