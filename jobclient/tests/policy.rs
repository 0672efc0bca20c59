//! gearmand's scheduling flags, each against gearmand itself in the same test: `-j` (a job of
//! death dropped after N attempts, WORK_FAIL at the client), `-w` (how many sleepers a job
//! wakes), `-R` (round robin over a worker's functions), `--keepalive*`.

#![cfg(feature = "server")]

mod common;

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

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

/// Attempts that end by `CAN_DO_TIMEOUT` count as deaths do, on both servers: with `-j 2`
/// and a limit of 1 ms, which both servers take as a second (their least), a job whose
/// workers never answer is dropped after two timeouts, two seconds or more.
#[test]
fn a_job_that_times_out_is_dropped_after_n_attempts_by_both() {
    for (name, addr, _server) in both(&["-j", "2"]) {
        let start = std::time::Instant::now();
        let mut client = Raw::connect(addr);
        client.send(T::SubmitJob, &[b"slow", b"", b"stuck"]);
        assert_eq!(client.recv().kind(), T::JobCreated, "{name}");
        // The workers stay connected and silent: only the limit ends their attempts.
        let mut workers = Vec::new();
        for attempt in 1..=2 {
            let mut w = Raw::connect(addr);
            w.send(T::CanDoTimeout, &[b"slow", b"1"]);
            w.send(T::GrabJob, &[]);
            let mut p = w.recv();
            // After the first timeout the job may not be queued yet: ask again, woken.
            while p.kind() == T::NoJob {
                w.send(T::PreSleep, &[]);
                assert_eq!(w.recv().kind(), T::Noop, "{name}, attempt {attempt}");
                w.send(T::GrabJob, &[]);
                p = w.recv();
            }
            assert_eq!(p.kind(), T::JobAssign, "{name}, attempt {attempt}");
            workers.push(w);
        }
        // The second timeout drops it: WORK_FAIL at the client, and no one gets it again.
        let p = client.recv();
        assert_eq!(p.kind(), T::WorkFail, "{name}");
        assert!(start.elapsed() >= Duration::from_secs(2), "{name}: {:?}", start.elapsed());
        let mut last = Raw::connect(addr);
        last.send(T::CanDo, &[b"slow"]);
        last.send(T::GrabJob, &[]);
        assert_eq!(last.recv().kind(), T::NoJob, "{name}: the job came back");
    }
}

/// A background job dropped by `-j` is gone from the durable queue too (a restart does not
/// bring it back), and the log names it and says why.
#[test]
fn a_dropped_job_leaves_the_durable_queue_and_the_log_says_why() {
    let dir = peers::scratch_dir("policy-drop").unwrap();
    let (queue, log) = (dir.join("queue.log"), dir.join("jobd.log"));
    let args = ["-j", "2", "-q", queue.to_str().unwrap(), "-l", log.to_str().unwrap()];
    let j = Jobd::start(&args, None);
    let mut client = Raw::connect(j.addr());
    client.send(T::SubmitJobBg, &[b"death", b"u-poison", b"poison"]);
    let p = client.recv();
    assert_eq!(p.kind(), T::JobCreated);
    let handle = String::from_utf8(p.arg(0).to_vec()).unwrap();
    // A job that is kept, beside it.
    client.send(T::SubmitJobBg, &[b"kept", b"", b"fine"]);
    assert_eq!(client.recv().kind(), T::JobCreated);
    for _ in 0..2 {
        let mut w = sleeper(j.addr(), b"death");
        assert_eq!(w.recv().kind(), T::Noop);
        w.send(T::GrabJob, &[]);
        assert_eq!(w.recv().kind(), T::JobAssign);
    }
    // The second death has been taken once `status` counts no job of `death` (it counted
    // one, running, until then).
    let t0 = std::time::Instant::now();
    while common::admin(j.addr(), "status").iter().any(|l| l.starts_with("death\t1")) {
        assert!(t0.elapsed() < Duration::from_secs(10), "the job was not dropped");
        std::thread::yield_now();
    }
    drop(j);
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text.lines().find(|l| l.contains("dropped job")).unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains(&handle) && line.contains("death") && line.contains("u-poison"),
        "{line}"
    );
    assert!(line.contains("after 2 attempts"), "{line}");
    let again = Jobd::start(&["-q", queue.to_str().unwrap()], None);
    assert!(common::queued_data(again.addr(), b"death").is_empty(), "the dropped job came back");
    assert_eq!(common::queued_data(again.addr(), b"kept"), [b"fine".to_vec()]);
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
    let cases = [(&[][..], 4), (&["-w", "0"][..], 4), (&["-w", "1"][..], 1), (&["-w", "2"][..], 2)];
    for (flags, expected) in cases {
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

/// The keepalive settings (`SO_KEEPALIVE`, `TCP_KEEPIDLE`, `TCP_KEEPINTVL`, `TCP_KEEPCNT`)
/// of the server process `pid`'s side of `client`'s connection, read from the server's own
/// socket: each of its sockets is duplicated (`pidfd_getfd`) until one's peer is `client`.
fn server_keepalive(pid: u32, client: &TcpStream) -> (bool, Duration, Duration, u32) {
    use rustix::net::sockopt;
    use rustix::process::{pidfd_getfd, pidfd_open, Pid, PidfdFlags, PidfdGetfdFlags};
    let ours = client.local_addr().unwrap();
    let pidfd = pidfd_open(Pid::from_raw(pid as i32).unwrap(), PidfdFlags::empty())
        .unwrap_or_else(|e| panic!("pidfd_open({pid}): {e} (Linux 5.3 or later is needed)"));
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let entry = entry.unwrap();
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"));
        let Some(n) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else { continue };
        if !is_socket {
            continue;
        }
        // Needs ptrace access to the server (root, or its parent under Yama's default).
        let fd = match pidfd_getfd(&pidfd, n, PidfdGetfdFlags::empty()) {
            Ok(fd) => fd,
            // Closed since it was listed.
            Err(rustix::io::Errno::BADF) => continue,
            Err(e) => panic!("pidfd_getfd({pid}, {n}): {e}: no access to the server's sockets"),
        };
        if TcpStream::from(fd.try_clone().unwrap()).peer_addr().is_ok_and(|a| a == ours) {
            return (
                sockopt::socket_keepalive(&fd).unwrap(),
                sockopt::tcp_keepidle(&fd).unwrap(),
                sockopt::tcp_keepintvl(&fd).unwrap(),
                sockopt::tcp_keepcnt(&fd).unwrap(),
            );
        }
    }
    panic!("no socket of process {pid} is connected to {ours}");
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
    let g = Gearmand::start(&flags).unwrap();
    let j = Jobd::start(&flags, None);
    let mut settings = Vec::new();
    for (name, addr, pid) in [("gearmand", g.addr(), g.pid()), ("jobd", j.addr(), j.0.id())] {
        let mut c = Raw::connect(addr);
        c.send(T::EchoReq, &[b"x"]);
        assert_eq!(c.recv().kind(), T::EchoRes);
        let line = server_socket_timer(addr.port());
        // `timer:(keepalive,1min16s,0)`: armed, counting down from the idle time.
        assert!(line.contains("timer:(keepalive,1min1"), "{name}: {line}");
        let set = server_keepalive(pid, &c.0);
        assert_eq!(set, (true, Duration::from_secs(77), Duration::from_secs(5), 3), "{name}");
        settings.push(set);
    }
    assert_eq!(settings[0], settings[1], "the same settings on both servers");
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
