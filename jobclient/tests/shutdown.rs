//! Stopping `jobd`: SIGTERM, SIGINT and SIGUSR1 drain (running jobs finish and reach their clients,
//! queued background jobs stay in the durable queue, exit 0), a second signal stops at once,
//! the deadline ends a drain, `-P` writes and removes the pid file.

#![cfg(feature = "server")]

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use common::{Jobd, Raw};
use jobclient::proto::PacketType as T;

fn signal(jobd: &Jobd, sig: &str) {
    let ok = Command::new("kill").args([sig, &jobd.0.id().to_string()]).status().unwrap();
    assert!(ok.success(), "kill {sig}");
}

/// Waits for the process to exit (bounded); its status.
fn exit_status(jobd: &mut Jobd, within: Duration) -> std::process::ExitStatus {
    let pid = jobd.0.id();
    let (tx, rx) = mpsc::channel();
    // `wait` on the child itself, from a thread, so that the bound is a channel's timeout.
    let mut child = std::mem::replace(&mut jobd.0, Command::new("true").spawn().unwrap());
    std::thread::spawn(move || tx.send(child.wait().unwrap()));
    rx.recv_timeout(within).unwrap_or_else(|_| panic!("jobd {pid} still running after {within:?}"))
}

/// Submits on `c` until the server answers `ERROR SHUTTING_DOWN`: proof that it has taken the
/// signal. Every earlier submission (before it did) is answered JOB_CREATED.
fn until_shutting_down(c: &mut Raw) {
    loop {
        c.send(T::SubmitJobBg, &[b"probe", b"", b"x"]);
        let p = c.recv();
        match p.kind() {
            T::JobCreated => continue,
            T::Error => {
                assert_eq!(p.arg_ref(0), b"SHUTTING_DOWN");
                return;
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn sigterm_finishes_running_jobs_and_keeps_queued_background_jobs() {
    let dir = peers::scratch_dir("shutdown-drain").unwrap();
    let (queue, pid_file) = (dir.join("queue.log"), dir.join("jobd.pid"));
    let mut jobd = Jobd::start(
        &[
            "-q",
            queue.to_str().unwrap(),
            "-P",
            pid_file.to_str().unwrap(),
            "--shutdown-timeout",
            "60",
        ],
        None,
    );
    // Written just after the port opens: wait for it (bounded).
    let t0 = std::time::Instant::now();
    while !pid_file.exists() {
        assert!(t0.elapsed() < Duration::from_secs(10), "no pid file");
        std::thread::yield_now();
    }
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        format!("{}\n", jobd.0.id()),
        "the pid file names the server"
    );

    // 10,000 background jobs queued, for a function nobody does yet.
    let mut bg = Raw::connect(jobd.addr());
    for i in 0..10_000 {
        bg.send(T::SubmitJobBg, &[b"later", b"", format!("bg-{i}").as_bytes()]);
    }
    for _ in 0..10_000 {
        assert_eq!(bg.recv().kind(), T::JobCreated);
    }
    // 1,000 foreground jobs from 10 clients, all running on one worker that holds them.
    let mut clients: Vec<Raw> = (0..10).map(|_| Raw::connect(jobd.addr())).collect();
    let mut handles: Vec<HashSet<Bytes>> = vec![HashSet::new(); clients.len()];
    for (n, c) in clients.iter_mut().enumerate() {
        for i in 0..100 {
            c.send(T::SubmitJob, &[b"now", b"", format!("fg-{n}-{i}").as_bytes()]);
        }
        for _ in 0..100 {
            let p = c.recv();
            assert_eq!(p.kind(), T::JobCreated);
            handles[n].insert(p.arg(0));
        }
    }
    let mut worker = Raw::connect(jobd.addr());
    worker.send(T::CanDo, &[b"now"]);
    let mut running = Vec::new();
    for _ in 0..1_000 {
        worker.send(T::GrabJob, &[]);
        let p = worker.recv();
        assert_eq!(p.kind(), T::JobAssign);
        running.push((p.arg(0), p.arg(2)));
    }

    signal(&jobd, "-TERM");
    until_shutting_down(&mut bg);
    // Draining: new connections are refused, and nothing is handed out, not even the queued
    // background jobs to a worker that can now do them.
    // The listener closes on the server's first loop, which may come to it a moment after
    // this connection's loop answered: bounded.
    let t0 = std::time::Instant::now();
    while std::net::TcpStream::connect(jobd.addr()).is_ok() {
        assert!(t0.elapsed() < Duration::from_secs(10), "the listener is still open");
        std::thread::yield_now();
    }
    worker.send(T::CanDo, &[b"later"]);
    worker.send(T::GrabJob, &[]);
    assert_eq!(worker.recv().kind(), T::NoJob);

    // Every running job finishes and its client hears of it.
    for (handle, data) in &running {
        let mut result = b"done:".to_vec();
        result.extend_from_slice(data);
        worker.send(T::WorkComplete, &[handle, &result]);
    }
    for (n, c) in clients.iter_mut().enumerate() {
        let mut seen = HashMap::new();
        for _ in 0..100 {
            let p = c.recv();
            assert_eq!(p.kind(), T::WorkComplete);
            assert!(p.arg_ref(1).starts_with(b"done:fg-"), "{:?}", p.arg_ref(1));
            *seen.entry(p.arg(0)).or_insert(0) += 1;
        }
        assert_eq!(seen.keys().cloned().collect::<HashSet<_>>(), handles[n], "client {n}");
        assert!(seen.values().all(|&k| k == 1), "client {n}: a result came twice");
    }
    let status = exit_status(&mut jobd, Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    assert!(!pid_file.exists(), "the pid file outlived the server");

    // The background jobs are all there after a restart, once each (and the probes).
    let again = Jobd::start(&["-q", queue.to_str().unwrap()], None);
    let later = common::queued_data(again.addr(), b"later");
    let unique: HashSet<_> = later.iter().cloned().collect();
    assert_eq!((later.len(), unique.len()), (10_000, 10_000));
    assert!((0..10_000).all(|i| unique.contains(format!("bg-{i}").as_bytes())));
}

#[test]
fn a_second_signal_stops_at_once() {
    let mut jobd = Jobd::start(&["--shutdown-timeout", "600"], None);
    let (mut client, _worker, _) = common::running_job(jobd.addr(), b"slow");
    signal(&jobd, "-INT");
    until_shutting_down(&mut client);
    // The job never finishes; a second signal does not wait for it.
    signal(&jobd, "-TERM");
    let status = exit_status(&mut jobd, Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_deadline_ends_a_drain_and_a_running_background_job_stays_queued() {
    let dir = peers::scratch_dir("shutdown-deadline").unwrap();
    let queue = dir.join("queue.log");
    let mut jobd = Jobd::start(&["-q", queue.to_str().unwrap(), "--shutdown-timeout", "1"], None);
    let mut client = Raw::connect(jobd.addr());
    client.send(T::SubmitJobBg, &[b"stuck", b"", b"kept"]);
    assert_eq!(client.recv().kind(), T::JobCreated);
    let mut worker = Raw::connect(jobd.addr());
    worker.send(T::CanDo, &[b"stuck"]);
    worker.send(T::GrabJob, &[]);
    assert_eq!(worker.recv().kind(), T::JobAssign);
    signal(&jobd, "-TERM");
    let status = exit_status(&mut jobd, Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    let again = Jobd::start(&["-q", queue.to_str().unwrap()], None);
    assert_eq!(common::queued_data(again.addr(), b"stuck"), [b"kept".to_vec()]);
}

#[test]
fn admin_shutdown_graceful_drains_too() {
    let mut jobd = Jobd::start(&[], None);
    let mut client = Raw::connect(jobd.addr());
    client.send(T::SubmitJob, &[b"f", b"", b"x"]);
    assert_eq!(client.recv().kind(), T::JobCreated);
    let mut worker = Raw::connect(jobd.addr());
    worker.send(T::CanDo, &[b"f"]);
    worker.send(T::GrabJob, &[]);
    let handle = worker.recv().arg(0);
    assert_eq!(common::admin(jobd.addr(), "shutdown graceful"), ["OK"]);
    until_shutting_down(&mut client);
    worker.send(T::WorkComplete, &[&handle, b"ok"]);
    let p = client.recv();
    assert_eq!((p.kind(), p.arg_ref(1)), (T::WorkComplete, &b"ok"[..]));
    let status = exit_status(&mut jobd, Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_second_jobd_that_cannot_start_leaves_the_first_ones_pid_file() {
    let dir = peers::scratch_dir("shutdown-pid").unwrap();
    let pid_file = dir.join("jobd.pid");
    let mut first = Jobd::start(&["-P", pid_file.to_str().unwrap()], None);
    let t0 = std::time::Instant::now();
    while !pid_file.exists() {
        assert!(t0.elapsed() < Duration::from_secs(10), "no pid file");
        std::thread::yield_now();
    }
    let status = Command::new(env!("CARGO_BIN_EXE_jobd"))
        .args(["-L", "127.0.0.1", "-p", &first.1.to_string(), "-P", pid_file.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1), "the port is taken");
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), format!("{}\n", first.0.id()));
    signal(&first, "-TERM");
    assert!(exit_status(&mut first, Duration::from_secs(20)).success());
    assert!(!pid_file.exists());
}

/// The pid the admin port at `addr` gives, if anything answers there.
fn answers_getpid(addr: std::net::SocketAddr) -> Option<u32> {
    use std::io::{BufRead, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"getpid\r\n").ok()?;
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line).ok()?;
    line.trim_end().strip_prefix("OK ")?.parse().ok()
}

/// Beside gearmand. SIGUSR1, gearmand's graceful signal, drains both servers: the listener
/// closes, the running job finishes and reaches its client, the exit status is 0. SIGTERM
/// stops gearmand at once, cutting the running job's client off without its result; jobd
/// drains on it as on SIGUSR1 (a deliberate difference: SIGTERM is what service managers
/// send).
#[test]
fn signals_beside_gearmand() {
    use std::io::Read;
    for sig in ["-USR1", "-TERM"] {
        let mut gearmand = peers::Gearmand::start(&[]).unwrap();
        let mut jobd = Jobd::start(&[], None);
        for server in ["gearmand", "jobd"] {
            let (addr, pid) = match server {
                "gearmand" => (gearmand.addr(), gearmand.pid()),
                _ => (jobd.addr(), jobd.0.id()),
            };
            let (mut client, mut worker, handle) = common::running_job(addr, b"f");
            let ok = Command::new("kill").args([sig, &pid.to_string()]).status().unwrap();
            assert!(ok.success());
            if server == "gearmand" && sig == "-TERM" {
                let status = gearmand.wait_exit(Duration::from_secs(20)).unwrap();
                assert!(status.is_some_and(|s| s.success()), "gearmand on SIGTERM: {status:?}");
                // Gone with the job: the client reads the end of the connection, no result.
                let mut rest = Vec::new();
                let _ = client.0.read_to_end(&mut rest);
                assert!(client.1.is_empty() && rest.is_empty(), "{server}: {rest:?}");
                continue;
            }
            // Closed once nothing answers there as this server (another test's server may
            // take the port once it is free).
            let t0 = std::time::Instant::now();
            while answers_getpid(addr) == Some(pid) {
                assert!(t0.elapsed() < Duration::from_secs(10), "{server} {sig}: still listening");
                std::thread::sleep(Duration::from_millis(2));
            }
            worker.send(T::WorkComplete, &[&handle, b"ok"]);
            let p = client.recv();
            assert_eq!((p.kind(), p.arg_ref(1)), (T::WorkComplete, &b"ok"[..]), "{server} {sig}");
            // gearmand's drain can also wait for its connections to close (seen under load):
            // both servers get that before the wait for their exit.
            drop((client, worker));
            let status = match server {
                "gearmand" => gearmand.wait_exit(Duration::from_secs(20)).unwrap(),
                _ => Some(exit_status(&mut jobd, Duration::from_secs(20))),
            };
            assert!(status.is_some_and(|s| s.success()), "{server} {sig}: {status:?}");
        }
    }
}

/// Admin `shutdown` (here through `jobadmin --shutdown`) stops at once: a running job that
/// never finishes does not hold it.
#[test]
fn admin_shutdown_stops_at_once() {
    let mut jobd = Jobd::start(&["--shutdown-timeout", "600"], None);
    let (_client, _worker, _) = common::running_job(jobd.addr(), b"slow");
    let out = Command::new(env!("CARGO_BIN_EXE_jobadmin"))
        .args(["-h", "127.0.0.1", "-p", &jobd.1.to_string(), "--shutdown"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status = exit_status(&mut jobd, Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
}
