//! The CPG contract on the local backend: total order, self-delivery, membership changes in
//! the stream, dispatch modes, errors and limits, flow control.

use std::io::IoSlice;
use std::os::fd::AsRawFd;

use groupmsg::{
    Backend, Change, Collect, Cpg, CpgEvent, CsError, Dispatch, FlowControl, GroupName, Guarantee,
    LocalBus, Member, Reason,
};

fn handle(bus: &LocalBus) -> Cpg<Collect> {
    Cpg::initialize(Backend::Local(bus.clone()), Collect::default()).unwrap()
}

fn group() -> GroupName {
    GroupName::new("g").unwrap()
}

fn send(c: &mut Cpg<Collect>, msg: &[u8]) {
    c.mcast_joined(Guarantee::Agreed, &[IoSlice::new(msg)]).unwrap();
}

fn drain(c: &mut Cpg<Collect>) -> Vec<CpgEvent> {
    c.dispatch(Dispatch::All).unwrap();
    std::mem::take(&mut c.handler_mut().events)
}

fn confchg(e: &CpgEvent) -> Option<(Vec<Member>, Vec<Change>, Vec<Change>)> {
    match e {
        CpgEvent::ConfChg { members, left, joined, .. } => {
            Some((members.clone(), left.clone(), joined.clone()))
        }
        _ => None,
    }
}

#[test]
fn concurrent_senders_are_seen_in_one_order_by_every_member() {
    const EACH: usize = 300;
    let bus = LocalBus::new();
    let g = group();
    let mut members: Vec<Cpg<Collect>> = (0..3).map(|_| handle(&bus)).collect();
    for m in &mut members {
        m.join(&g).unwrap();
    }
    for m in &mut members {
        drain(m);
    }
    let ids: Vec<Member> = members.iter().map(Cpg::member).collect();
    let threads: Vec<_> = members
        .into_iter()
        .map(|mut m| {
            std::thread::spawn(move || {
                let me = m.member().pid;
                let mut seen = Vec::new();
                let mut sent = 0;
                while seen.len() < 3 * EACH {
                    if sent < EACH {
                        let msg = format!("{me}:{sent}");
                        if m.mcast_joined(Guarantee::Agreed, &[IoSlice::new(msg.as_bytes())])
                            .is_ok()
                        {
                            sent += 1;
                        }
                    }
                    let _ = m.dispatch(Dispatch::OneNonBlocking);
                    for e in m.handler_mut().events.drain(..) {
                        if let CpgEvent::Deliver { sender, msg, .. } = e {
                            seen.push((sender, msg));
                        }
                    }
                }
                seen
            })
        })
        .collect();
    let orders: Vec<Vec<(Member, Vec<u8>)>> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(orders[0], orders[1], "members 0 and 1 disagree on the order");
    assert_eq!(orders[0], orders[2], "members 0 and 2 disagree on the order");
    for id in ids {
        // Self-delivery and FIFO per sender: each sender's messages appear, in its order.
        let mine: Vec<String> = orders[0]
            .iter()
            .filter(|(s, _)| *s == id)
            .map(|(_, m)| String::from_utf8(m.clone()).unwrap())
            .collect();
        let expect: Vec<String> = (0..EACH).map(|i| format!("{}:{i}", id.pid)).collect();
        assert_eq!(mine, expect);
    }
}

#[test]
fn membership_changes_are_ordered_with_messages_at_every_member() {
    let bus = LocalBus::new();
    let g = group();
    let (mut a, mut b, mut c) = (handle(&bus), handle(&bus), handle(&bus));
    let (ia, ib, ic) = (a.member(), b.member(), c.member());
    a.join(&g).unwrap();
    let ev = drain(&mut a);
    assert_eq!(
        confchg(&ev[0]),
        Some((vec![ia], vec![], vec![Change { member: ia, reason: Reason::Join }]))
    );
    b.join(&g).unwrap();
    send(&mut a, b"first");
    c.join(&g).unwrap();
    send(&mut b, b"second");
    drop(c); // without leaving: PROCDOWN
    send(&mut a, b"third");
    b.leave().unwrap();
    // What A saw since B joined, and what B saw, agree on the shared part.
    let seen_a = drain(&mut a);
    let seen_b = drain(&mut b);
    assert_eq!(
        seen_a[..seen_a.len() - 1],
        seen_b[..seen_b.len() - 1],
        "A and B agree until B leaves"
    );
    let summary: Vec<String> = seen_a
        .iter()
        .map(|e| match e {
            CpgEvent::Deliver { msg, .. } => String::from_utf8(msg.clone()).unwrap(),
            CpgEvent::ConfChg { left, joined, .. } => {
                let j: Vec<String> = joined
                    .iter()
                    .map(|c| format!("+{}:{}", c.member.pid, c.reason.name()))
                    .collect();
                let l: Vec<String> =
                    left.iter().map(|c| format!("-{}:{}", c.member.pid, c.reason.name())).collect();
                [j, l].concat().join(",")
            }
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    let (pb, pc) = (ib.pid, ic.pid);
    assert_eq!(
        summary,
        [
            format!("+{pb}:join"),
            "first".to_string(),
            format!("+{pc}:join"),
            "second".to_string(),
            format!("-{pc}:procdown"),
            "third".to_string(),
            format!("-{pb}:leave"),
        ]
    );
    // The leaver hears its own leave.
    let last_b = confchg(seen_b.last().unwrap()).unwrap();
    assert_eq!(last_b.1, [Change { member: ib, reason: Reason::Leave }]);
    assert_eq!(a.membership_get().unwrap(), [ia]);
}

#[test]
fn dispatch_modes() {
    let bus = LocalBus::new();
    let (mut a, mut b) = (handle(&bus), handle(&bus));
    assert_eq!(a.dispatch(Dispatch::OneNonBlocking), Err(CsError::TryAgain));
    assert_eq!(a.dispatch(Dispatch::All), Ok(0), "ALL never blocks");
    a.join(&group()).unwrap();
    b.join(&group()).unwrap();
    drain(&mut b);
    send(&mut a, b"1");
    send(&mut a, b"2");
    assert_eq!(b.dispatch(Dispatch::OneNonBlocking), Ok(1));
    assert_eq!(b.dispatch(Dispatch::OneNonBlocking), Ok(1));
    assert_eq!(b.dispatch(Dispatch::OneNonBlocking), Err(CsError::TryAgain));
    // ONE blocks until a message from another thread arrives, and delivers exactly one.
    let sender = std::thread::spawn(move || {
        send(&mut a, b"late");
        send(&mut a, b"later");
        a
    });
    b.handler_mut().events.clear();
    assert_eq!(b.dispatch(Dispatch::One), Ok(1));
    let a = sender.join().unwrap();
    assert!(matches!(&b.handler().events[0], CpgEvent::Deliver { msg, .. } if msg == b"late"));
    // BLOCKING runs until stopped from another thread.
    let stop = b.stopper();
    let stopper = std::thread::spawn(move || stop.stop());
    let n = b.dispatch(Dispatch::Blocking).unwrap();
    stopper.join().unwrap();
    assert!(n <= 1, "only the one pending message could be delivered, got {n}");
    drop(a);
}

#[test]
fn errors_and_limits() {
    let bus = LocalBus::new();
    let mut a = handle(&bus);
    // (operation, expected error): send before join, leave before join, names, sizes.
    assert_eq!(a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"x")]), Err(CsError::NotExist));
    assert_eq!(a.leave(), Err(CsError::NotExist));
    assert_eq!(a.membership_get(), Err(CsError::NotExist));
    assert_eq!(GroupName::new(vec![b'n'; 129]).unwrap_err(), CsError::NameTooLong);
    assert_eq!(GroupName::new(vec![b'n'; 128]).map(|g| g.as_bytes().len()), Ok(128));
    assert_eq!(GroupName::new("").unwrap_err(), CsError::InvalidParam);
    a.join(&group()).unwrap();
    assert_eq!(a.join(&group()), Err(CsError::Exist));
    assert_eq!(
        a.join(&GroupName::new("other").unwrap()),
        Err(CsError::Exist),
        "one group per handle"
    );
    let big = vec![0u8; a.max_atomic_msgsize() + 1];
    assert_eq!(a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(&big)]), Err(CsError::TooBig));
    // Codes are corosync's, one for one.
    for (e, code) in [
        (CsError::TryAgain, 6),
        (CsError::InvalidParam, 7),
        (CsError::BadHandle, 9),
        (CsError::NotExist, 12),
        (CsError::NameTooLong, 13),
        (CsError::Exist, 14),
        (CsError::TooBig, 26),
        (CsError::TooManyGroups, 30),
    ] {
        assert_eq!(e.code(), code);
        assert_eq!(CsError::from_code(code), Some(e));
    }
    assert_eq!(CsError::from_code(1), None, "CS_OK is not an error");
}

#[test]
fn join_leave_join_again_on_one_handle() {
    let bus = LocalBus::new();
    let (mut a, mut b) = (handle(&bus), handle(&bus));
    b.join(&group()).unwrap();
    a.join(&group()).unwrap();
    a.leave().unwrap();
    a.join(&group()).unwrap();
    send(&mut a, b"back");
    let seen = drain(&mut b);
    assert!(matches!(seen.last(), Some(CpgEvent::Deliver { msg, .. }) if msg == b"back"));
    assert_eq!(b.membership_get().unwrap(), [b.member(), a.member()]);
}

#[test]
fn large_messages_arrive_whole() {
    let bus = LocalBus::new();
    let (mut a, mut b) = (handle(&bus), handle(&bus));
    a.join(&group()).unwrap();
    b.join(&group()).unwrap();
    let big: Vec<u8> = (0..(4 << 20)).map(|i: u32| (i % 251) as u8).collect();
    // Scattered slices are sent as one message.
    let (x, y) = big.split_at(1000);
    a.mcast_joined(Guarantee::Safe, &[IoSlice::new(x), IoSlice::new(y)]).unwrap();
    let got = drain(&mut b);
    assert!(matches!(got.last(), Some(CpgEvent::Deliver { msg, .. }) if *msg == big));
}

#[test]
fn flow_control_holds_back_a_sender_until_the_slow_member_catches_up() {
    let bus = LocalBus::new();
    bus.set_flow_limit(100);
    let (mut fast, mut slow) = (handle(&bus), handle(&bus));
    fast.join(&group()).unwrap();
    slow.join(&group()).unwrap();
    let mut sent = 0;
    while fast.mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"m")]) != Err(CsError::TryAgain) {
        sent += 1;
        assert!(sent < 1000, "flow control never engaged");
        drain(&mut fast);
    }
    assert_eq!(fast.flow_control_state(), FlowControl::Enabled);
    assert!(sent >= 98, "held back after {sent} messages");
    drain(&mut slow);
    assert_eq!(fast.flow_control_state(), FlowControl::Disabled);
    send(&mut fast, b"again");
}

#[test]
fn the_descriptor_is_readable_exactly_while_events_wait() {
    use evcore::{Event, Interest, Loop, Reactor, Token};
    let bus = LocalBus::new();
    let (mut a, mut b) = (handle(&bus), handle(&bus));
    a.join(&group()).unwrap();
    b.join(&group()).unwrap();
    drain(&mut b);
    let mut lp = Loop::new().unwrap();
    lp.register(b.fd(), Token(1), Interest::In).unwrap();
    let readable = |lp: &mut Loop| {
        let mut out = Vec::new();
        lp.turn(Some(std::time::Duration::ZERO), &mut out).unwrap();
        out.iter().any(|e| matches!(e, Event::Io(Token(1), _)))
    };
    assert!(!readable(&mut lp));
    send(&mut a, b"wake");
    assert!(readable(&mut lp));
    assert!(readable(&mut lp), "level: still readable until dispatched");
    drain(&mut b);
    assert!(!readable(&mut lp));
    lp.deregister(b.fd()).unwrap();
    assert_eq!(b.fd(), std::os::fd::AsFd::as_fd(&b).as_raw_fd(), "fd() and AsFd agree");
}

#[test]
fn context_and_group_iteration() {
    let bus = LocalBus::new();
    let (mut a, mut b) = (handle(&bus), handle(&bus));
    a.context_set(Box::new(42u32));
    assert_eq!(a.context_get().and_then(|c| c.downcast_ref::<u32>()), Some(&42));
    a.join(&GroupName::new("x").unwrap()).unwrap();
    b.join(&GroupName::new("y").unwrap()).unwrap();
    let groups = a.groups().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].1, [a.member()]);
    assert_eq!(a.local_get(), 1);
}

#[test]
fn a_stop_leaves_no_spurious_wakeup_behind() {
    let bus = LocalBus::new();
    let mut a = handle(&bus);
    a.join(&group()).unwrap();
    drain(&mut a);
    a.stopper().stop();
    assert_eq!(a.dispatch(Dispatch::Blocking), Ok(0));
    // The stop's wake-up must not leave the descriptor readable with nothing pending.
    assert_eq!(a.dispatch(Dispatch::OneNonBlocking), Err(CsError::TryAgain));
    let mut fds = [rustix::event::PollFd::new(&a, rustix::event::PollFlags::IN)];
    let zero = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
    assert_eq!(rustix::event::poll(&mut fds, Some(&zero)).unwrap(), 0, "descriptor still readable");
}

#[test]
fn events_as_an_async_stream() {
    use futures_util::StreamExt;
    let ex = evcore::Executor::new().unwrap();
    let h = ex.handle();
    let bus = LocalBus::new();
    let mut events = groupmsg::EventStream::new(handle(&bus), &h).unwrap();
    events.cpg_mut().join(&group()).unwrap();
    let mut other = handle(&bus);
    other.join(&group()).unwrap();
    // Another thread sends while the stream waits: the executor must wake for it.
    let sender = std::thread::spawn(move || {
        for i in 0..3 {
            other
                .mcast_joined(Guarantee::Agreed, &[IoSlice::new(format!("m{i}").as_bytes())])
                .unwrap();
        }
        other
    });
    let got: Vec<String> = ex.block_on(async {
        let mut msgs = Vec::new();
        while msgs.len() < 3 {
            match events.next().await {
                Some(Ok(CpgEvent::Deliver { msg, .. })) => {
                    msgs.push(String::from_utf8(msg).unwrap())
                }
                Some(Ok(_)) => {}
                other => panic!("{other:?}"),
            }
        }
        msgs
    });
    drop(sender.join().unwrap());
    assert_eq!(got, ["m0", "m1", "m2"]);
}
