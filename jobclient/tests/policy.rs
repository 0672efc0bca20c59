//! gearmand's scheduling flags, each against gearmand itself in the same test: `-j` (a job of
//! death dropped after N attempts, WORK_FAIL at the client), `-w` (how many sleepers a job
//! wakes), `-R` (round robin over a worker's functions), `--keepalive*`.

#![cfg(feature = "server")]

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::{Jobd, Raw};
use jobclient::proto::PacketType as T;
use peers::Gearmand;

/// Both servers with the same flags: (name, address, keep-alive guard).
fn both(flags: &[&str]) -> Vec<(&'static str, SocketAddr, Box<dyn std::any::Any>)> {
    let g = Gearmand::start(flags).unwrap();
    let j = Jobd::start(flags, None);
    vec![("gearmand", g.addr(), Box::new(g)), ("jobd", j.addr(), Box::new(j))]
}

/// A worker for `f` that sleeps (PRE_SLEEP) and is woken by NOOP when a job is queued.
fn sleeper(addr: SocketAddr, f: &[u8]) -> Raw {
    let mut w = Raw::connect(addr);
    w.send(T::CanDo, &[f]);
    w.send(T::PreSleep, &[]);
    w
}

#[test]
fn a_job_of_death_is_dropped_after_n_attempts_by_both() {
    for (name, addr, _server) in both(&["-j", "3"]) {
        let mut client = Raw::connect(addr);
        client.send(T::SubmitJob, &[b"death", b"", b"poison"]);
        assert_eq!(client.recv().kind(), T::JobCreated, "{name}");
        for attempt in 1..=3 {
            // Each worker waits for the job (NOOP once it is queued again after the last one
            // died), takes it, and dies with it.
            let mut w = sleeper(addr, b"death");
            assert_eq!(w.recv().kind(), T::Noop, "{name}, attempt {attempt}");
            w.send(T::GrabJob, &[]);
            let p = w.recv();
            assert_eq!(p.kind(), T::JobAssign, "{name}, attempt {attempt}");
            assert_eq!(p.arg_ref(2), b"poison");
            drop(w);
        }
        // The third death drops it: the client hears WORK_FAIL, and no worker gets it again.
        let p = client.recv();
        assert_eq!(p.kind(), T::WorkFail, "{name}");
        let mut last = Raw::connect(addr);
        last.send(T::CanDo, &[b"death"]);
        last.send(T::GrabJob, &[]);
        assert_eq!(last.recv().kind(), T::NoJob, "{name}: the job came back");
    }
}

#[test]
fn without_j_a_job_of_death_is_offered_again_and_again() {
    let j = Jobd::start(&[], None);
    let mut client = Raw::connect(j.addr());
    client.send(T::SubmitJob, &[b"death", b"", b"poison"]);
    assert_eq!(client.recv().kind(), T::JobCreated);
    for _ in 0..20 {
        let mut w = sleeper(j.addr(), b"death");
        assert_eq!(w.recv().kind(), T::Noop);
        w.send(T::GrabJob, &[]);
        assert_eq!(w.recv().kind(), T::JobAssign);
    }
}

/// Whether a sleeping worker was woken: its next packet is the NOOP, or the answer to an echo
/// sent after the job was created (which the server queues after any NOOP).
fn woken(w: &mut Raw) -> bool {
    w.send(T::EchoReq, &[b"?"]);
    match w.recv().kind() {
        T::Noop => {
            assert_eq!(w.recv().kind(), T::EchoRes);
            true
        }
        T::EchoRes => false,
        other => panic!("{other:?}"),
    }
}

#[test]
fn worker_wakeup_wakes_all_or_n_sleepers_on_both() {
    for (flags, expected) in [(&[][..], 4), (&["-w", "1"][..], 1), (&["-w", "2"][..], 2)] {
        for (name, addr, _server) in both(flags) {
            let mut workers: Vec<Raw> = (0..4).map(|_| sleeper(addr, b"f")).collect();
            // An echo per worker first: each PRE_SLEEP has been read before the job comes.
            for w in &mut workers {
                w.send(T::EchoReq, &[b"."]);
                assert_eq!(w.recv().kind(), T::EchoRes);
            }
            let mut client = Raw::connect(addr);
            client.send(T::SubmitJobBg, &[b"f", b"", b"x"]);
            assert_eq!(client.recv().kind(), T::JobCreated);
            let n = workers.iter_mut().map(woken).filter(|&b| b).count();
            assert_eq!(n, expected, "{name} {flags:?}");
        }
    }
}

#[test]
fn a_limited_wakeup_wakes_more_when_the_woken_never_come() {
    // Ours only (gearmand has no re-wake): with -w 1 the first sleeper is woken, does
    // nothing, and the job, still queued, wakes the next one.
    let j = Jobd::start(&["-w", "1"], None);
    let mut first = sleeper(j.addr(), b"f");
    let mut second = sleeper(j.addr(), b"f");
    for w in [&mut first, &mut second] {
        w.send(T::EchoReq, &[b"."]);
        assert_eq!(w.recv().kind(), T::EchoRes);
    }
    let mut client = Raw::connect(j.addr());
    client.send(T::SubmitJobBg, &[b"f", b"", b"x"]);
    assert_eq!(client.recv().kind(), T::JobCreated);
    assert_eq!(first.recv().kind(), T::Noop);
    // The second is woken later, by the re-wake, without anything else happening.
    assert_eq!(second.recv().kind(), T::Noop);
    second.send(T::GrabJob, &[]);
    assert_eq!(second.recv().kind(), T::JobAssign);
}

/// The functions of the jobs a worker that can do `a` then `b` is given, two queued of each.
fn order_of_functions(addr: SocketAddr) -> Vec<String> {
    let mut client = Raw::connect(addr);
    for f in [b"a", b"a", b"b", b"b"] {
        client.send(T::SubmitJobBg, &[f, b"", b"x"]);
        assert_eq!(client.recv().kind(), T::JobCreated);
    }
    let mut w = Raw::connect(addr);
    w.send(T::CanDo, &[b"a"]);
    w.send(T::CanDo, &[b"b"]);
    (0..4)
        .map(|_| {
            w.send(T::GrabJob, &[]);
            let p = w.recv();
            assert_eq!(p.kind(), T::JobAssign);
            let f = String::from_utf8_lossy(p.arg_ref(1)).into_owned();
            w.send(T::WorkComplete, &[p.arg_ref(0), b""]);
            f
        })
        .collect()
}

#[test]
fn round_robin_takes_a_workers_functions_in_turn_on_both() {
    // gearmand searches a worker's functions from the last registered to the first, and -R
    // moves the one it just gave to the end of that search.
    for (name, addr, _server) in both(&[]) {
        assert_eq!(order_of_functions(addr), ["b", "b", "a", "a"], "{name} without -R");
    }
    for (name, addr, _server) in both(&["-R"]) {
        assert_eq!(order_of_functions(addr), ["b", "a", "b", "a"], "{name} -R");
    }
}

/// `ss`'s line for the server side of the one connection to `port`.
fn server_socket_timer(port: u16) -> String {
    let ss = peers::require_binary("ss", "iproute2").unwrap();
    let out = Command::new(ss)
        .args(["-tnoH", "state", "established", &format!("( sport = :{port} )")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn keepalive_flags_arm_tcp_keepalive_as_on_gearmand() {
    let flags = [
        "--keepalive",
        "--keepalive-idle",
        "77",
        "--keepalive-interval",
        "5",
        "--keepalive-count",
        "3",
    ];
    for (name, addr, _server) in both(&flags) {
        let mut c = Raw::connect(addr);
        c.send(T::EchoReq, &[b"x"]);
        assert_eq!(c.recv().kind(), T::EchoRes);
        let line = server_socket_timer(addr.port());
        // `timer:(keepalive,1min16s,0)`: armed, counting down from the idle time.
        assert!(line.contains("timer:(keepalive,1min1"), "{name}: {line}");
    }
    let plain = Jobd::start(&[], None);
    let mut c = Raw::connect(plain.addr());
    c.send(T::EchoReq, &[b"x"]);
    assert_eq!(c.recv().kind(), T::EchoRes);
    let line = server_socket_timer(plain.1);
    assert!(!line.contains("keepalive"), "keepalive without --keepalive: {line}");
}

/// Keepalive values past what Linux takes are set to its bounds, not refused on every
/// connection (a library user can ask for any `Duration` and count).
#[test]
fn keepalive_values_past_linuxs_bounds_still_serve() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ex = evcore::Executor::new().unwrap();
        let server = jobclient::Server::bind("127.0.0.1:0".parse().unwrap(), &ex.handle()).unwrap();
        let mut policy = jobclient::Policy::default();
        policy.keepalive = true;
        policy.keepalive_idle = Some(std::time::Duration::MAX);
        policy.keepalive_interval = Some(std::time::Duration::ZERO);
        policy.keepalive_count = Some(u32::MAX);
        server.policy(policy);
        tx.send(server.local_addr().unwrap()).unwrap();
        ex.block_on(server.run()).unwrap();
    });
    let addr = rx.recv().unwrap();
    let mut c = Raw::connect(addr);
    c.send(T::EchoReq, &[b"served"]);
    assert_eq!(c.recv().arg_ref(0), b"served");
    let line = server_socket_timer(addr.port());
    assert!(line.contains("timer:(keepalive"), "{line}");
    assert_eq!(common::admin(addr, "shutdown"), ["OK"]);
}
