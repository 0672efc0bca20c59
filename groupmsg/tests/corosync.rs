//! The corosync backend against real corosync 3.1.7 (one node on loopback, started by the
//! `peers` crate; root only, as corosync requires).

#![cfg(feature = "corosync")]

use std::io::IoSlice;

use groupmsg::{Backend, Collect, Cpg, CpgEvent, CsError, Dispatch, GroupName, Guarantee, Reason};

fn handle() -> Cpg<Collect> {
    Cpg::initialize(Backend::Corosync, Collect::default()).unwrap()
}

/// Dispatches until `n` events have been collected.
fn collect(c: &mut Cpg<Collect>, n: usize) -> Vec<CpgEvent> {
    while c.handler().events.len() < n {
        c.dispatch(Dispatch::One).unwrap();
    }
    std::mem::take(&mut c.handler_mut().events)
}

#[test]
fn the_cpg_contract_on_real_corosync() {
    let _daemon = peers::Corosync::start().unwrap();
    let g = GroupName::new("evstack-conformance").unwrap();
    let mut a = handle();
    assert!(a.max_atomic_msgsize() >= 1_000_000, "{}", a.max_atomic_msgsize());
    assert_eq!(
        a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"early")]),
        Err(CsError::NotExist)
    );
    assert_eq!(a.dispatch(Dispatch::OneNonBlocking), Err(CsError::TryAgain));
    a.join(&g).unwrap();
    assert_eq!(a.join(&g), Err(CsError::Exist));
    let me = a.member();
    let ev = collect(&mut a, 1);
    assert!(
        matches!(&ev[0], CpgEvent::ConfChg { joined, .. } if joined[0].member == me && joined[0].reason == Reason::Join),
        "{ev:?}"
    );
    // Self-delivery, in order, of messages given as scattered slices.
    for i in 0..100 {
        let head = format!("{i}:");
        a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(head.as_bytes()), IoSlice::new(b"tail")])
            .unwrap();
    }
    let got: Vec<String> = collect(&mut a, 100)
        .into_iter()
        .map(|e| match e {
            CpgEvent::Deliver { msg, sender, .. } => {
                assert_eq!(sender, me);
                String::from_utf8(msg).unwrap()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, (0..100).map(|i| format!("{i}:tail")).collect::<Vec<_>>());
    assert_eq!(a.membership_get().unwrap(), [me]);
    assert!(a.groups().unwrap().iter().any(|(name, ms)| *name == g && ms.contains(&me)));
    // Leave and join again on one handle (corosync 3.1.7 alone never completes this join).
    a.leave().unwrap();
    a.join(&g).unwrap();
    a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"back")]).unwrap();
    let mut events = Vec::new();
    while !events.iter().any(|e| matches!(e, CpgEvent::Deliver { msg, .. } if msg == b"back")) {
        events.extend(collect(&mut a, 1));
    }
}

#[test]
fn groupcat_processes_on_corosync_agree_and_see_procdown() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    use std::sync::mpsc::channel;
    use std::time::Duration;
    let _daemon = peers::Corosync::start().unwrap();
    let start = |tag: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_groupcat"))
            .args(["--corosync", "--json", "evstack-cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = channel::<String>();
        let tag = tag.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
            drop(tag);
        });
        (child, rx)
    };
    let until = |rx: &std::sync::mpsc::Receiver<String>, needle: &str| {
        let mut seen = Vec::new();
        loop {
            let l = rx
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("no {needle:?} in {seen:?}"));
            let done = l.contains(needle);
            seen.push(l);
            if done {
                return seen;
            }
        }
    };
    let (mut a, ra) = start("a");
    until(&ra, "\"joined\"");
    let (mut b, rb) = start("b");
    let joined = format!("\"pid\":{},\"reason\":\"join\"", b.id());
    until(&ra, &joined);
    until(&rb, &joined);
    writeln!(a.stdin.as_mut().unwrap(), "over corosync").unwrap();
    let da = until(&ra, "\"deliver\"").pop().unwrap();
    let db = until(&rb, "\"deliver\"").pop().unwrap();
    assert_eq!(da, db, "both members print the same delivery");
    assert!(da.contains(&format!("\"pid\":{},\"msg\":\"over corosync\"", a.id())), "{da}");
    let b_pid = b.id();
    b.kill().unwrap();
    b.wait().unwrap();
    until(&ra, &format!("\"pid\":{b_pid},\"reason\":\"procdown\""));
    drop(a.stdin.take());
    assert!(a.wait().unwrap().success());
}

#[test]
fn all_and_blocking_dispatch_on_real_corosync() {
    let _daemon = peers::Corosync::start().unwrap();
    let g = GroupName::new("evstack-dispatch").unwrap();
    let mut a = handle();
    assert_eq!(a.dispatch(Dispatch::All), Ok(0), "ALL with nothing pending returns at once");
    a.join(&g).unwrap();
    for i in 0..5 {
        a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(format!("m{i}").as_bytes())]).unwrap();
    }
    // The join and the five messages arrive; ALL takes what is there without blocking.
    let mut got = 0;
    while got < 6 {
        got += a.dispatch(Dispatch::All).unwrap();
        if got < 6 {
            a.dispatch(Dispatch::One).unwrap();
            got += 1;
        }
    }
    assert_eq!(a.handler().events.len(), 6);
    assert_eq!(a.dispatch(Dispatch::OneNonBlocking), Err(CsError::TryAgain));
    // BLOCKING delivers as messages come and returns when stopped from another thread.
    let stop = a.stopper();
    a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"before stop")]).unwrap();
    let stopper = std::thread::spawn(move || stop.stop());
    let n = a.dispatch(Dispatch::Blocking).unwrap();
    stopper.join().unwrap();
    assert!(n <= 1, "{n}");
    // The stop may win the race with the message: then the message is still to come, and a
    // dispatch of one waits for it (corosync delivers our own message in any case).
    if n == 0 {
        assert_eq!(a.dispatch(Dispatch::One), Ok(1));
    }
    assert!(
        matches!(a.handler().events.last(), Some(CpgEvent::Deliver { msg, .. }) if msg == b"before stop")
    );
    // After the stop, nothing spurious: no event is left to dispatch.
    assert_eq!(a.dispatch(Dispatch::OneNonBlocking), Err(CsError::TryAgain));
}

/// libcpg copies the caller's iovecs into an array of 64 on its stack (one taken by its own
/// header), so 64 or more slices overflowed it from safe code. Each count here, up to far past
/// that, and a fragmented message of many slices, arrives whole and in order.
#[test]
fn any_number_of_slices_arrives_whole() {
    let _daemon = peers::Corosync::start().unwrap();
    let mut a = handle();
    a.join(&GroupName::new("evstack-slices").unwrap()).unwrap();
    collect(&mut a, 1);
    let big = a.max_atomic_msgsize() + 10_000;
    let cases: Vec<Vec<Vec<u8>>> = [1usize, 62, 63, 64, 65, 200, 4096]
        .iter()
        .map(|&n| (0..n).map(|i| format!("{i},").into_bytes()).collect())
        .chain(std::iter::once((0..300).map(|i| vec![i as u8; big / 300 + 1]).collect()))
        .collect();
    for parts in &cases {
        let slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        a.mcast_joined(Guarantee::Agreed, &slices).unwrap();
    }
    let got = collect(&mut a, cases.len());
    for (parts, event) in cases.iter().zip(got) {
        let CpgEvent::Deliver { msg, .. } = event else { panic!("{event:?}") };
        assert!(msg == parts.concat(), "{} slices: {} bytes back", parts.len(), msg.len());
    }
}

/// A 4 MB multicast (fragmented by libcpg above its atomic size) arrives whole, and in
/// order between smaller ones.
#[test]
fn a_four_megabyte_message_arrives_whole() {
    let _daemon = peers::Corosync::start().unwrap();
    let g = GroupName::new("evstack-big").unwrap();
    let mut a = handle();
    a.join(&g).unwrap();
    collect(&mut a, 1);
    let big: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    assert!(big.len() > a.max_atomic_msgsize());
    for m in [&b"before"[..], &big, b"after"] {
        a.mcast_joined_retry(
            Guarantee::Agreed,
            &[IoSlice::new(m)],
            std::time::Duration::from_secs(30),
        )
        .unwrap();
    }
    let got: Vec<Vec<u8>> = collect(&mut a, 3)
        .into_iter()
        .filter_map(|e| match e {
            CpgEvent::Deliver { msg, .. } => Some(msg),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], b"before");
    assert!(got[1] == big, "the 4 MB message came back changed ({} bytes)", got[1].len());
    assert_eq!(got[2], b"after");
}

/// When corosync stops, a handle reports it once as `Library`, then `BadHandle`; after
/// corosync is back, `reinitialize` and a join work again.
#[test]
fn a_restarted_corosync_is_reported_once_and_rejoined() {
    let daemon = peers::Corosync::start().unwrap();
    let g = GroupName::new("evstack-restart").unwrap();
    let mut a = handle();
    a.join(&g).unwrap();
    collect(&mut a, 1);
    drop(daemon);
    let first = loop {
        match a.dispatch(Dispatch::One) {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(first, CsError::Library);
    assert!(a.is_lost());
    assert_eq!(a.dispatch(Dispatch::All), Err(CsError::BadHandle));
    let _daemon = peers::Corosync::start().unwrap();
    a.reinitialize().unwrap();
    a.join(&g).unwrap();
    a.mcast_joined_retry(
        Guarantee::Agreed,
        &[IoSlice::new(b"back")],
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    let ev = collect(&mut a, 2);
    assert!(matches!(&ev[1], CpgEvent::Deliver { msg, .. } if msg == b"back"), "{ev:?}");
}
