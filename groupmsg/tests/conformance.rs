//! One conformance suite, run against every backend: the in-process bus, `groupd`, and (with
//! feature `corosync`, as root) real corosync 3.1.7. Each test is written once against a
//! [`Fixture`]; `each_backend!` instantiates it per backend.
//!
//! A member is a process on groupd and corosync (its pid is its identity, and corosync refuses
//! a second join from one process), so what needs several members runs with real processes:
//! `groupcat` processes in `groupd.rs` and `corosync.rs` (one order at every member, a killed
//! member seen as PROCDOWN by all), and handles on threads in `local.rs`.

use std::io::IoSlice;

use groupmsg::{
    Backend, Collect, Cpg, CpgEvent, CsError, Dispatch, GroupName, Guarantee, Iteration,
    IterationEntry, LocalBus, Member, ModelFlags, Reason,
};

/// Makes handles on one backend.
trait Fixture {
    fn handle(&self) -> Cpg<Collect> {
        self.handle_with(ModelFlags::NONE)
    }
    /// A handle from `cpg_model_initialize` with these flags.
    fn handle_with(&self, flags: ModelFlags) -> Cpg<Collect>;
    /// Whether one process can reach the backend's size and membership limits (`TooBig`,
    /// `TooManyGroups`): corosync takes one join per process, and fragments large messages.
    fn limits_in_one_process(&self) -> bool {
        true
    }
}

struct Local(LocalBus);

impl Fixture for Local {
    fn handle_with(&self, flags: ModelFlags) -> Cpg<Collect> {
        Cpg::model_initialize(Backend::Local(self.0.clone()), Collect::default(), flags).unwrap()
    }
}

/// groupd in this process, on a socket of its own; bound before its thread starts, so handles
/// can connect at once.
struct Daemon(std::path::PathBuf);

impl Daemon {
    fn start() -> Daemon {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("conformance-{}-{n}.sock", std::process::id()));
        let d = groupmsg::Groupd::bind(&path).unwrap();
        std::thread::spawn(move || d.run());
        Daemon(path)
    }
}

impl Fixture for Daemon {
    fn handle_with(&self, flags: ModelFlags) -> Cpg<Collect> {
        Cpg::model_initialize(Backend::Daemon(self.0.clone()), Collect::default(), flags).unwrap()
    }
}

#[cfg(feature = "corosync")]
struct Corosync(#[allow(dead_code)] peers::Corosync);

#[cfg(feature = "corosync")]
impl Fixture for Corosync {
    fn handle_with(&self, flags: ModelFlags) -> Cpg<Collect> {
        Cpg::model_initialize(Backend::Corosync, Collect::default(), flags).unwrap()
    }
    fn limits_in_one_process(&self) -> bool {
        false
    }
}

macro_rules! each_backend {
    ($($test:ident),* $(,)?) => {
        mod local {
            $(#[test] fn $test() { super::$test(&super::Local(groupmsg::LocalBus::new())) })*
        }
        mod groupd {
            $(#[test] fn $test() { super::$test(&super::Daemon::start()) })*
        }
        #[cfg(feature = "corosync")]
        mod corosync {
            $(#[test] fn $test() { super::$test(&super::Corosync(peers::Corosync::start().unwrap())) })*
        }
    };
}

each_backend!(
    self_delivery_in_order_from_scattered_slices,
    dispatch_modes,
    errors_and_limits,
    join_leave_and_join_again,
    two_threads_send_through_one_handle_while_a_third_dispatches,
    initial_totem_conf_after_the_first_join_only_when_asked,
    iteration_kinds,
    every_error_code_one_process_can_produce,
);

#[test]
fn the_handle_is_send_and_its_sender_send_and_sync() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<Cpg<Collect>>();
    send_sync::<groupmsg::CpgSender>();
}

/// `cpg_mcast_joined` from two threads on one handle while a third runs `cpg_dispatch`, as
/// cpgbench does: every message arrives exactly once, each sender's in the order it sent.
fn two_threads_send_through_one_handle_while_a_third_dispatches(f: &dyn Fixture) {
    const EACH: usize = 2_000;
    let mut c = f.handle();
    c.join(&group("senders")).unwrap();
    let senders: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|who| {
            let sender = c.sender();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let msg = format!("{who}:{i}");
                    loop {
                        match sender
                            .mcast_joined(Guarantee::Agreed, &[IoSlice::new(msg.as_bytes())])
                        {
                            Ok(()) => break,
                            // Flow control: the dispatching thread is draining; try again.
                            Err(CsError::TryAgain) => std::thread::yield_now(),
                            Err(e) => panic!("mcast from {who}: {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    let mut next = [0usize; 2];
    let mut got = 0;
    while got < 2 * EACH {
        c.dispatch(Dispatch::One).unwrap();
        for e in c.handler_mut().events.drain(..) {
            if let CpgEvent::Deliver { msg, .. } = e {
                let text = String::from_utf8(msg).unwrap();
                let (who, i) = text.split_once(':').unwrap();
                let k = usize::from(who == "b");
                assert_eq!(i.parse::<usize>().unwrap(), next[k], "{who}'s messages in order");
                next[k] += 1;
                got += 1;
            }
        }
    }
    for s in senders {
        s.join().unwrap();
    }
    assert_eq!(next, [EACH, EACH]);
    // Nothing more: every message once.
    assert_eq!(c.dispatch(Dispatch::All).unwrap(), 0);
    // A sender outliving its handle is refused, not sent.
    let late = c.sender();
    drop(c);
    assert_eq!(
        late.mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"late")]),
        Err(CsError::BadHandle)
    );
}

fn group(name: &str) -> GroupName {
    GroupName::new(format!("conformance-{name}")).unwrap()
}

fn send(c: &mut Cpg<Collect>, msg: &[u8]) {
    loop {
        match c.mcast_joined(Guarantee::Agreed, &[IoSlice::new(msg)]) {
            Ok(()) => return,
            Err(CsError::TryAgain) => {
                c.dispatch(Dispatch::All).unwrap();
            }
            Err(e) => panic!("mcast: {e}"),
        }
    }
}

/// Dispatches until `pred` holds for what was collected.
fn until(c: &mut Cpg<Collect>, pred: impl Fn(&[CpgEvent]) -> bool) {
    while !pred(&c.handler().events) {
        c.dispatch(Dispatch::One).unwrap();
    }
}

fn deliveries(events: &[CpgEvent]) -> Vec<(Member, Vec<u8>)> {
    events
        .iter()
        .filter_map(|e| match e {
            CpgEvent::Deliver { sender, msg, .. } => Some((*sender, msg.clone())),
            _ => None,
        })
        .collect()
}

fn self_delivery_in_order_from_scattered_slices(f: &dyn Fixture) {
    let g = group("self");
    let mut a = f.handle();
    a.join(&g).unwrap();
    let me = a.member();
    for i in 0..300 {
        let head = format!("{i}:");
        loop {
            let sent = a.mcast_joined(
                Guarantee::Agreed,
                &[IoSlice::new(head.as_bytes()), IoSlice::new(b"tail")],
            );
            match sent {
                Ok(()) => break,
                Err(CsError::TryAgain) => {
                    a.dispatch(Dispatch::All).unwrap();
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    until(&mut a, |ev| deliveries(ev).len() == 300);
    let got = deliveries(&a.handler().events);
    assert!(got.iter().all(|(s, _)| *s == me));
    let want: Vec<Vec<u8>> = (0..300).map(|i| format!("{i}:tail").into_bytes()).collect();
    assert_eq!(got.into_iter().map(|(_, m)| m).collect::<Vec<_>>(), want);
    // The join came first, as a membership change naming this member.
    assert!(matches!(&a.handler().events[0],
        CpgEvent::ConfChg { joined, .. } if joined.iter().any(|c| c.member == me && c.reason == Reason::Join)));
}

fn dispatch_modes(f: &dyn Fixture) {
    let g = group("dispatch");
    let mut a = f.handle();
    assert_eq!(a.dispatch(Dispatch::OneNonBlocking), Err(CsError::TryAgain));
    a.join(&g).unwrap();
    until(&mut a, |ev| !ev.is_empty());
    a.handler_mut().events.clear();
    for i in 0..5u8 {
        send(&mut a, &[i]);
    }
    // ONE waits for and delivers exactly one; ALL delivers what is there without waiting.
    assert_eq!(a.dispatch(Dispatch::One), Ok(1));
    assert_eq!(a.handler().events.len(), 1);
    until(&mut a, |ev| ev.len() >= 2);
    let mut n = a.handler().events.len();
    while n < 5 {
        n += a.dispatch(Dispatch::All).unwrap();
    }
    assert_eq!(deliveries(&a.handler().events).len(), 5);
    assert_eq!(a.dispatch(Dispatch::All), Ok(0));
    assert_eq!(a.dispatch(Dispatch::OneNonBlocking), Err(CsError::TryAgain));
    // BLOCKING delivers until a stopper fires, from another thread.
    send(&mut a, b"last");
    let stop = a.stopper();
    std::thread::spawn(move || stop.stop()).join().unwrap();
    a.dispatch(Dispatch::Blocking).unwrap();
    until(&mut a, |ev| deliveries(ev).len() == 6);
}

fn errors_and_limits(f: &dyn Fixture) {
    let g = group("errors");
    let mut a = f.handle();
    assert_eq!(a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"x")]), Err(CsError::NotExist));
    assert_eq!(GroupName::new(vec![b'n'; 129]).unwrap_err(), CsError::NameTooLong);
    assert_eq!(GroupName::new(b"").unwrap_err(), CsError::InvalidParam);
    assert!(GroupName::new(vec![b'n'; 128]).is_ok());
    assert!(a.max_atomic_msgsize() >= 1_000_000);
    a.join(&g).unwrap();
    assert_eq!(a.join(&g), Err(CsError::Exist));
    let me = a.member();
    assert_eq!(a.local_get(), me.nodeid);
    until(&mut a, |ev| !ev.is_empty());
    assert_eq!(a.membership_get().unwrap(), [me]);
    a.context_set(Box::new(7u32));
    assert_eq!(a.context_get().and_then(|c| c.downcast_ref::<u32>()), Some(&7));
}

/// Each error code a backend gives a caller in one process, produced. The others are
/// produced where they need more than one process or a daemon that goes away: `TryAgain` for
/// flow control (`tests/flow.rs`, and corosync's flood above), for a join while a SAFE message
/// is in flight (`tests/safe.rs`); `Access` and `Version` (`tests/groupd.rs`); `Library` on a
/// daemon or corosync that went away (`tests/groupd.rs`, `tests/corosync.rs`). Corosync's
/// codes come back as corosync gives them (`CsError::from_code`, all 29 mapped one to one).
fn every_error_code_one_process_can_produce(f: &dyn Fixture) {
    let g = group("codes");
    let mut a = f.handle();
    // Not joined.
    assert_eq!(a.leave(), Err(CsError::NotExist));
    assert_eq!(a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"x")]), Err(CsError::NotExist));
    // Names.
    assert_eq!(GroupName::new(vec![b'n'; 129]).unwrap_err(), CsError::NameTooLong);
    assert_eq!(GroupName::new(b"").unwrap_err(), CsError::InvalidParam);
    // Joined twice.
    a.join(&g).unwrap();
    assert_eq!(a.join(&g), Err(CsError::Exist));
    // A sender of a handle that is gone.
    let sender = a.sender();
    drop(a);
    assert_eq!(
        sender.mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"x")]),
        Err(CsError::BadHandle)
    );
    if !f.limits_in_one_process() {
        return;
    }
    // A message past the limit.
    let mut b = f.handle();
    b.join(&group("codes-big")).unwrap();
    let big = vec![0u8; groupmsg::LOCAL_MAX_MESSAGE + 1];
    assert_eq!(b.mcast_joined(Guarantee::Agreed, &[IoSlice::new(&big)]), Err(CsError::TooBig));
    // One member past the limit of a group.
    let full = group("codes-full");
    let members: Vec<Cpg<Collect>> = (0..groupmsg::MAX_MEMBERS)
        .map(|_| {
            let mut m = f.handle();
            m.join(&full).unwrap();
            m
        })
        .collect();
    assert_eq!(f.handle().join(&full), Err(CsError::TooManyGroups));
    drop(members);
}

fn join_leave_and_join_again(f: &dyn Fixture) {
    let g = group("rejoin");
    let mut a = f.handle();
    a.join(&g).unwrap();
    send(&mut a, b"first");
    until(&mut a, |ev| deliveries(ev).len() == 1);
    a.leave().unwrap();
    a.join(&g).unwrap();
    send(&mut a, b"again");
    until(&mut a, |ev| deliveries(ev).iter().any(|(_, m)| m == b"again"));
}

fn totems(events: &[CpgEvent]) -> Vec<(groupmsg::RingId, Vec<u32>)> {
    events
        .iter()
        .filter_map(|e| match e {
            CpgEvent::TotemConfChg { ring_id, nodes } => Some((*ring_id, nodes.clone())),
            _ => None,
        })
        .collect()
}

/// With `CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF`, the ring (this node in it) comes once,
/// after the join's own confchg; without it, nothing (on one stable node the ring never
/// changes). A leave and a second join bring no second initial ring on the local backends.
fn initial_totem_conf_after_the_first_join_only_when_asked(f: &dyn Fixture) {
    let g = group("totem");
    let mut a = f.handle_with(ModelFlags::DELIVER_INITIAL_TOTEM_CONF);
    let node = a.local_get();
    a.join(&g).unwrap();
    until(&mut a, |ev| !totems(ev).is_empty());
    let ev = &a.handler().events;
    let first = ev.iter().position(|e| matches!(e, CpgEvent::TotemConfChg { .. })).unwrap();
    assert!(
        ev[..first].iter().any(|e| matches!(e, CpgEvent::ConfChg { joined, .. }
            if joined.iter().any(|c| c.member == a.member()))),
        "the ring came before the join: {ev:?}"
    );
    let (ring, nodes) = totems(ev).remove(0);
    assert!(nodes.contains(&node), "{nodes:?} lacks this node {node}");
    assert!(ring.seq > 0, "{ring:?}");
    // A message sent after it arrives with no second ring before it.
    send(&mut a, b"after");
    until(&mut a, |ev| deliveries(ev).len() == 1);
    assert_eq!(totems(&a.handler().events).len(), 1);

    // Without the flag: the message, and no ring.
    let g2 = group("no-totem");
    let mut b = f.handle();
    b.join(&g2).unwrap();
    send(&mut b, b"only");
    until(&mut b, |ev| deliveries(ev).len() == 1);
    assert!(totems(&b.handler().events).is_empty(), "{:?}", b.handler().events);
}

/// `cpg_iteration_*` in its three kinds: names once each, one group's members, everything;
/// an unknown group lists nothing.
fn iteration_kinds(f: &dyn Fixture) {
    let (g1, g2) = (group("iter-one"), group("iter-two"));
    let mut a = f.handle();
    let mut b = f.handle();
    a.join(&g1).unwrap();
    b.join(&g2).unwrap();
    for c in [&mut a, &mut b] {
        let me = c.member();
        until(c, |ev| {
            ev.iter().any(|e| {
                matches!(e, CpgEvent::ConfChg { joined, .. }
                if joined.iter().any(|j| j.member == me))
            })
        });
    }
    let (ma, mb) = (a.member(), b.member());
    let names = a.iterate(Iteration::NameOnly).unwrap();
    for g in [&g1, &g2] {
        let n = names.iter().filter(|e| e.group == *g).count();
        assert_eq!(n, 1, "{g:?} in {names:?}");
    }
    assert!(names.iter().all(|e| e.member.is_none()), "{names:?}");
    assert_eq!(
        a.iterate(Iteration::OneGroup(g1.clone())).unwrap(),
        [IterationEntry { group: g1.clone(), member: Some(ma) }]
    );
    assert_eq!(
        b.iterate(Iteration::OneGroup(g2.clone())).unwrap(),
        [IterationEntry { group: g2.clone(), member: Some(mb) }]
    );
    assert_eq!(a.iterate(Iteration::OneGroup(group("iter-nobody"))).unwrap(), []);
    let all = b.iterate(Iteration::All).unwrap();
    assert!(all.contains(&IterationEntry { group: g1.clone(), member: Some(ma) }), "{all:?}");
    assert!(all.contains(&IterationEntry { group: g2.clone(), member: Some(mb) }), "{all:?}");
    let groups = a.groups().unwrap();
    assert!(groups.iter().any(|(g, ms)| *g == g1 && ms == &[ma]), "{groups:?}");
}
