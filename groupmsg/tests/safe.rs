//! SAFE delivery on `groupd`: a SAFE message is delivered to any member only once every
//! member it went to has acknowledged receiving it, everything after it in the group's order
//! waits behind it, and a member that dies first is reported gone before it. On the
//! in-process bus receiving is delivering, so SAFE is AGREED there.
//!
//! A member that does not dispatch reads nothing from its socket, so it acknowledges
//! nothing: that is how these tests hold a message.

use std::io::IoSlice;
use std::time::Duration;

use groupmsg::{
    Backend, Collect, Cpg, CpgEvent, CsError, Dispatch, FlowControl, GroupName, Guarantee,
    LocalBus, Member, Reason,
};

fn daemon(max_stall: Option<Duration>) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("safe-{}-{n}.sock", std::process::id()));
    let d = groupmsg::Groupd::bind(&path).unwrap();
    if let Some(limit) = max_stall {
        d.bus().set_max_stall(limit);
    }
    std::thread::spawn(move || d.run());
    path
}

/// A daemon, and its bus (for handles in this process).
fn daemon_and_bus() -> (std::path::PathBuf, LocalBus) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("safe-bus-{}-{n}.sock", std::process::id()));
    let d = groupmsg::Groupd::bind(&path).unwrap();
    let bus = d.bus().clone();
    std::thread::spawn(move || d.run());
    (path, bus)
}

fn group() -> GroupName {
    GroupName::new("safe").unwrap()
}

fn handle(backend: &Backend) -> Cpg<Collect> {
    Cpg::initialize(backend.clone(), Collect::default()).unwrap()
}

/// `n` members of the group, each having taken the confchgs of the joins up to its own and
/// after (so that none has events pending), with their events cleared.
fn members(backend: &Backend, n: usize) -> Vec<Cpg<Collect>> {
    let mut all: Vec<Cpg<Collect>> = Vec::new();
    for _ in 0..n {
        let mut c = handle(backend);
        c.join(&group()).unwrap();
        all.push(c);
    }
    for (i, c) in all.iter_mut().enumerate() {
        // Member i sees the joins of members i..n.
        while c.handler().events.len() < n - i {
            c.dispatch(Dispatch::One).unwrap();
        }
        c.handler_mut().events.clear();
    }
    all
}

fn send(c: &mut Cpg<Collect>, g: Guarantee, msg: &[u8]) {
    c.mcast_joined(g, &[IoSlice::new(msg)]).unwrap();
}

/// What `c` has been delivered, in order: messages as their text, membership changes as
/// `-pid` for each member that left.
fn seen(c: &Cpg<Collect>) -> Vec<String> {
    c.handler()
        .events
        .iter()
        .filter_map(|e| match e {
            CpgEvent::Deliver { msg, .. } => Some(String::from_utf8_lossy(msg).into_owned()),
            CpgEvent::ConfChg { left, .. } if !left.is_empty() => {
                Some(left.iter().map(|l| format!("-{}", l.member.pid)).collect())
            }
            _ => None,
        })
        .collect()
}

/// Dispatches until `c` has seen `n` things (as [`seen`] counts them); a failure after 20 s
/// says what it saw.
fn until_seen(c: &mut Cpg<Collect>, n: usize) -> Vec<String> {
    let start = std::time::Instant::now();
    while seen(c).len() < n {
        let left = Duration::from_secs(20).saturating_sub(start.elapsed());
        assert!(!left.is_zero(), "waited for {n} deliveries, saw {:?}", seen(c));
        let mut fds = [rustix::event::PollFd::new(&*c, rustix::event::PollFlags::IN)];
        let _ =
            rustix::event::poll(&mut fds, Some(&rustix::event::Timespec::try_from(left).unwrap()));
        c.dispatch(Dispatch::All).unwrap();
    }
    seen(c)
}

/// Two round trips to the daemon: whatever it would have delivered to `c` for what `c` sent
/// before has then been written to `c`'s socket (its connection takes events between
/// answers), and `All` takes it.
fn settle(c: &mut Cpg<Collect>) {
    c.membership_get().unwrap();
    c.membership_get().unwrap();
    c.dispatch(Dispatch::All).unwrap();
}

#[test]
fn a_safe_message_waits_for_every_member_and_holds_what_follows() {
    let backend = Backend::Daemon(daemon(None));
    let mut m = members(&backend, 3);
    send(&mut m[0], Guarantee::Safe, b"x");
    send(&mut m[0], Guarantee::Agreed, b"y");
    // The sender and the third member read (and so acknowledge); the second does not.
    settle(&mut m[0]);
    settle(&mut m[2]);
    settle(&mut m[0]);
    assert_eq!(seen(&m[0]), Vec::<String>::new(), "delivered before every member had it");
    assert_eq!(seen(&m[2]), Vec::<String>::new());
    // The second member reads: it acknowledges, and the message goes to everyone, the
    // AGREED one behind it.
    settle(&mut m[1]);
    for c in &mut m {
        assert_eq!(until_seen(c, 2), ["x", "y"]);
    }
}

#[test]
fn a_member_that_dies_first_is_reported_gone_before_the_message() {
    let backend = Backend::Daemon(daemon(None));
    let mut m = members(&backend, 3);
    let gone: Member = m[1].member();
    send(&mut m[0], Guarantee::Agreed, b"before");
    send(&mut m[0], Guarantee::Safe, b"x");
    // The daemon has taken x (it answered after it); the silent member dies without having
    // read anything. (A member that sends reads first, so acknowledges: the bus's own tests
    // cover a dead member's messages after x, which go with it.)
    m[0].membership_get().unwrap();
    drop(m.remove(1));
    send(&mut m[0], Guarantee::Agreed, b"z");
    // The third member reads now: x waited for it as well as for the one that died.
    settle(&mut m[1]);
    let expected = ["before".to_string(), format!("-{}", gone.pid), "x".into(), "z".into()];
    for c in &mut m {
        assert_eq!(until_seen(c, 4), expected);
    }
    // And its leaving says why.
    let left: Vec<Reason> = m[0]
        .handler()
        .events
        .iter()
        .filter_map(|e| match e {
            CpgEvent::ConfChg { left, .. } => left.first().map(|l| l.reason),
            _ => None,
        })
        .collect();
    assert_eq!(left, [Reason::ProcDown]);
}

#[test]
fn joins_wait_for_safe_messages_and_a_leave_comes_after_them() {
    let (path, bus) = daemon_and_bus();
    let backend = Backend::Daemon(path);
    let mut m = members(&backend, 2);
    // A handle in the daemon's own process, on its bus: it reads the group's flow control
    // as the daemon holds it (and, receiving being delivering, acknowledges at once).
    let mut observer = handle(&Backend::Local(bus));
    observer.join(&group()).unwrap();
    settle(&mut m[0]);
    settle(&mut m[1]);
    m[0].handler_mut().events.clear();
    m[1].handler_mut().events.clear();
    send(&mut m[0], Guarantee::Safe, b"x");
    settle(&mut m[0]);
    // The observer takes x's probe (acknowledging it); x waits for the second member.
    observer.dispatch(Dispatch::All).unwrap();
    // While x waits for the second member, a join would change who must have it: the join
    // waits in the daemon, with the group's flow control on meanwhile.
    let b = backend.clone();
    let joining = std::thread::spawn(move || {
        let mut late = handle(&b);
        late.join(&group()).map(|()| late)
    });
    while observer.flow_control_state() != FlowControl::Enabled {
        assert!(!joining.is_finished(), "the join went in before x was stable");
        std::thread::yield_now();
    }
    assert!(!joining.is_finished(), "the join went in before x was stable");
    settle(&mut m[1]);
    assert_eq!(until_seen(&mut m[0], 1), ["x"]);
    // The second member has acknowledged x: x is stable, the join goes in, flow clears.
    let mut late = joining.join().unwrap().unwrap();
    assert_eq!(observer.flow_control_state(), FlowControl::Disabled);
    // Everyone saw x before the join; the joiner never had x.
    let join_after_x = |c: &mut Cpg<Collect>| {
        while !c
            .handler()
            .events
            .iter()
            .any(|e| matches!(e, CpgEvent::ConfChg { joined, .. } if !joined.is_empty()))
        {
            c.dispatch(Dispatch::One).unwrap();
        }
        let at = |f: &dyn Fn(&CpgEvent) -> bool| c.handler().events.iter().position(f);
        let x = at(&|e| matches!(e, CpgEvent::Deliver { .. }));
        let j = at(&|e| matches!(e, CpgEvent::ConfChg { joined, .. } if !joined.is_empty()));
        (x, j)
    };
    for c in m.iter_mut() {
        let (x, j) = join_after_x(c);
        assert!(x.is_some_and(|x| Some(x) < j), "x delivered before the join");
    }
    let (x, _) = join_after_x(&mut late);
    assert_eq!(x, None, "the joiner came after x");
    for c in m.iter_mut().chain(std::iter::once(&mut late)) {
        c.handler_mut().events.retain(|e| matches!(e, CpgEvent::Deliver { .. }));
    }
    // A leave comes after a SAFE message sent before it, at every member: the leaver, which
    // was a member when the message went out, still has to acknowledge it, and has it
    // delivered before its leave.
    send(&mut m[0], Guarantee::Safe, b"x2");
    settle(&mut m[0]);
    observer.dispatch(Dispatch::All).unwrap();
    let leaver = m[1].member();
    m[1].leave().unwrap();
    // x2 also waits for the late joiner, which has not read.
    settle(&mut m[0]);
    assert_eq!(seen(&m[0]), ["x"]);
    settle(&mut late);
    let expected = ["x", "x2", format!("-{}", leaver.pid).as_str()].map(String::from);
    assert_eq!(until_seen(&mut m[1], 3), expected);
    assert_eq!(until_seen(&mut m[0], 3), expected);
}

#[test]
fn a_member_that_never_acknowledges_is_removed_after_the_stall_limit() {
    // With a stall limit of zero, a probe unanswered when the next multicast comes is past
    // it: the silent member is removed, before x in the order, and x is delivered.
    let backend = Backend::Daemon(daemon(Some(Duration::ZERO)));
    let mut m = members(&backend, 2);
    let silent = m[1].member();
    send(&mut m[0], Guarantee::Safe, b"x");
    // The silent member's probe goes out when its connection next runs; each multicast
    // after that finds it unanswered. Bounded: a few rounds at most.
    for i in 0..1000 {
        send(&mut m[0], Guarantee::Agreed, format!("after{i}").as_bytes());
        settle(&mut m[0]);
        if !seen(&m[0]).is_empty() {
            break;
        }
    }
    let seen = until_seen(&mut m[0], 2);
    assert_eq!(seen[..2], [format!("-{}", silent.pid), "x".into()], "{seen:?}");
}

#[test]
fn on_the_local_bus_safe_is_agreed() {
    let bus = LocalBus::new();
    let backend = Backend::Local(bus);
    let mut m = members(&backend, 2);
    send(&mut m[0], Guarantee::Safe, b"x");
    // Delivered at once, though the other member has not dispatched.
    m[0].dispatch(Dispatch::All).unwrap();
    assert_eq!(seen(&m[0]), ["x"]);
    m[1].dispatch(Dispatch::All).unwrap();
    assert_eq!(seen(&m[1]), ["x"]);
}

/// A member that leaves with a SAFE message's probe in its socket and then never reads
/// again: its leave takes the probe in and acknowledges it, so the others are not held.
#[test]
fn a_leaver_that_reads_nothing_more_does_not_hold_the_group() {
    let backend = Backend::Daemon(daemon(None));
    let mut m = members(&backend, 3);
    send(&mut m[0], Guarantee::Safe, b"x");
    settle(&mut m[0]);
    settle(&mut m[2]);
    let leaver = m[1].member();
    m[1].leave().unwrap();
    // It dispatches no more; the others get x, then its leave.
    let expected = ["x".to_string(), format!("-{}", leaver.pid)];
    assert_eq!(until_seen(&mut m[0], 2), expected);
    assert_eq!(until_seen(&mut m[2], 2), expected);
}

/// What comes before a SAFE message in the order is not held by it: an AGREED message sent
/// before it is delivered while the SAFE one waits.
#[test]
fn messages_before_a_safe_one_are_not_delayed() {
    let backend = Backend::Daemon(daemon(None));
    let mut m = members(&backend, 2);
    send(&mut m[0], Guarantee::Agreed, b"y");
    send(&mut m[0], Guarantee::Safe, b"x");
    // The second member reads nothing yet.
    settle(&mut m[0]);
    assert_eq!(until_seen(&mut m[0], 1), ["y"]);
    settle(&mut m[0]);
    assert_eq!(seen(&m[0]), ["y"], "x delivered before the second member had it");
    settle(&mut m[1]);
    assert_eq!(until_seen(&mut m[0], 2), ["y", "x"]);
    assert_eq!(until_seen(&mut m[1], 2), ["y", "x"]);
}

/// A stream of SAFE messages that never pauses keeps one unstable nearly always. A join
/// waits in the daemon for the group's SAFE messages to become stable, holding the group's
/// flow control on meanwhile, so it gets in at its first try; and every message accepted
/// arrives, in order. (Joins answered `TryAgain` while any SAFE message was in flight: this
/// joiner, retrying every millisecond, got in after about 13 s.)
#[test]
fn a_join_gets_in_through_an_unbroken_stream_of_safe_messages() {
    let backend = Backend::Daemon(daemon(None));
    let mut all = members(&backend, 2);
    let (mut sender, mut reader) = (all.remove(0), all.remove(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let msg = sent.to_string();
                match sender.mcast_joined(Guarantee::Safe, &[IoSlice::new(msg.as_bytes())]) {
                    Ok(()) => sent += 1,
                    Err(CsError::TryAgain) => {}
                    Err(e) => panic!("{e}"),
                }
                sender.dispatch(Dispatch::All).unwrap();
                sender.handler_mut().events.clear();
            }
            sent
        })
    };
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let read = {
        let (stop, progress) = (stop.clone(), progress.clone());
        std::thread::spawn(move || {
            let mut next = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                reader.dispatch(Dispatch::All).unwrap();
                for e in reader.handler_mut().events.drain(..) {
                    if let CpgEvent::Deliver { msg, .. } = e {
                        assert_eq!(String::from_utf8_lossy(&msg), next.to_string(), "out of order");
                        next += 1;
                    }
                }
                progress.store(next, std::sync::atomic::Ordering::Relaxed);
            }
            (reader, next)
        })
    };
    // The stream is running before the joiner tries: 100 of its messages delivered.
    while progress.load(std::sync::atomic::Ordering::Relaxed) < 100 {
        std::thread::yield_now();
    }
    let mut joiner = handle(&backend);
    // The join waits in the daemon (the senders pausing for it) and gets in at its first try.
    assert_eq!(joiner.join(&group()), Ok(()));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = flood.join().unwrap();
    let (mut reader, mut next) = read.join().unwrap();
    assert!(sent > 0);
    // Everything accepted arrives at the reader, in order (the joiner, a member now, takes
    // its share: SAFE messages sent after its join wait for it too).
    while next < sent {
        joiner.dispatch(Dispatch::All).unwrap();
        reader.dispatch(Dispatch::All).unwrap();
        for e in reader.handler_mut().events.drain(..) {
            if let CpgEvent::Deliver { msg, .. } = e {
                assert_eq!(String::from_utf8_lossy(&msg), next.to_string(), "out of order");
                next += 1;
            }
        }
    }
}

/// A member that leaves still owes acknowledgements for the SAFE messages sent to it
/// before; if it joins again at once, its join waits for those very messages. The daemon
/// must go on taking its acknowledgements while the join waits (it once stopped reading the
/// connection, and the member was removed for stalling once the limit passed).
#[test]
fn a_rejoin_waiting_for_safe_messages_still_acknowledges_them() {
    let backend = Backend::Daemon(daemon(Some(Duration::from_secs(3))));
    let mut all = members(&backend, 3);
    let (mut sender, mut rejoiner, mut reader) = (all.remove(0), all.remove(0), all.remove(0));
    // More SAFE messages than the daemon probes ahead (64), so that some probes reach the
    // rejoiner only after its join was sent.
    for i in 0..200 {
        send(&mut sender, Guarantee::Safe, format!("m{i}").as_bytes());
    }
    settle(&mut sender);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let read = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                reader.dispatch(Dispatch::All).unwrap();
                sender.dispatch(Dispatch::All).unwrap();
            }
            (reader, sender)
        })
    };
    rejoiner.leave().unwrap();
    assert_eq!(rejoiner.join(&group()), Ok(()), "the rejoiner was removed while it waited");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut reader, _sender) = read.join().unwrap();
    // Every message reached the reader, in order, and nobody was removed.
    let got = until_seen(&mut reader, 200);
    let expected: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    assert_eq!(got[..200], expected[..]);
    // The rejoiner had all 200 delivered before its leave.
    let mine = until_seen(&mut rejoiner, 200);
    assert_eq!(mine[..200], expected[..]);
}
