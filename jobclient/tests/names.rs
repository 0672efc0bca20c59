//! Servers by host name, looked up at every connect (so a server that moves is found on the
//! next reconnect), and `GEARMAN_SERVERS` as libgearman reads it.
#![cfg(feature = "server")]

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::Running;
use evcore::Executor;
use jobclient::{Client, ClientOptions, Error, Job, Resolver, ServerAddr, Stopper, Worker};

fn reverse(w: &mut Worker) {
    w.register("reverse", |job| Ok(job.workload().iter().rev().copied().collect()));
}

/// `localhost` through the system's resolver, for the client and the worker: the name may
/// come back as `::1` first, where nothing listens, and the next address is tried.
#[test]
fn a_client_and_a_worker_find_a_server_by_its_name() {
    let server = Running::start();
    let name = ServerAddr::new("localhost", server.addr.port()).unwrap();
    assert!(matches!(name, ServerAddr::Name { .. }));
    let stop = Stopper::new();
    let engine = evcore::Engine::start().unwrap();
    let worker = Worker::spawn(&engine, std::slice::from_ref(&name), Some(3), stop, |_| {
        let mut w = Worker::new();
        reverse(&mut w);
        w
    });
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    ex.block_on(async {
        let client = Client::with_servers(&[name], &h, ClientOptions::default());
        for i in 0..3 {
            let got = client.do_job("reverse", "", format!("ab{i}")).await.unwrap();
            assert_eq!(got, Bytes::from(format!("{i}ba")));
        }
    });
    assert_eq!(ex.block_on(worker).unwrap(), 3);
}

/// A name that points at one server, then at another: the client's next connect after the
/// first server goes asks again, and reaches the second.
#[test]
fn a_name_that_moves_is_looked_up_again_on_reconnect() {
    let first = Running::start();
    let second = Running::start();
    let points_at = Arc::new(Mutex::new(first.addr));
    let lookups = Arc::new(AtomicUsize::new(0));
    let mut options = ClientOptions::default();
    options.backoff_initial = std::time::Duration::ZERO;
    options.resolver = Some(Resolver::new({
        let (points_at, lookups) = (points_at.clone(), lookups.clone());
        move |host, port| {
            assert_eq!((host, port), ("jobs.test", 4730));
            lookups.fetch_add(1, Ordering::SeqCst);
            Ok(vec![*points_at.lock().unwrap()])
        }
    }));
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    let client = Client::with_servers(&["jobs.test".parse::<ServerAddr>().unwrap()], &h, options);
    let submit =
        |data: &'static str| ex.block_on(client.submit_background(Job::new("moved", data)));
    let job = submit("one").unwrap();
    assert_eq!(job.server, first.addr);
    assert_eq!(lookups.load(Ordering::SeqCst), 1);
    // The name moves and the first server goes.
    *points_at.lock().unwrap() = second.addr;
    drop(first);
    // The request that meets the dead connection fails (its fate unknown to the client);
    // the next connects again, looking the name up.
    let mut job = submit("two");
    if job.is_err() {
        job = submit("two");
    }
    let job = job.unwrap();
    assert_eq!(job.server, second.addr);
    assert_eq!(lookups.load(Ordering::SeqCst), 2);
    assert_eq!(common::queued_data(second.addr, b"moved"), [b"two".to_vec()]);
}

/// A resolver that fails, or finds nothing, is the connect's error, not a hang.
#[test]
fn a_name_that_does_not_resolve_is_an_error() {
    let mut options = ClientOptions::default();
    options.resolver = Some(Resolver::new(|_, _| Ok(Vec::new())));
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    let client = Client::with_servers(&[ServerAddr::new("nowhere.test", 1).unwrap()], &h, options);
    let got = ex.block_on(client.echo(b"x"));
    assert!(matches!(&got, Err(Error::Io(e)) if e.to_string().contains("no address")), "{got:?}");
}

/// `jobc` without `-h` takes its servers from `GEARMAN_SERVERS`, names included, as client
/// and as worker; a malformed list is refused with the variable named.
#[test]
fn jobc_reads_gearman_servers() {
    let server = Running::start();
    let list = format!("localhost:{},127.0.0.1:{}", server.addr.port(), server.addr.port());
    let jobc = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_jobc"));
        c.env("GEARMAN_SERVERS", &list);
        c
    };
    let mut worker =
        jobc().args(["-w", "-f", "upper", "-c", "1", "--", "tr", "a-z", "A-Z"]).spawn().unwrap();
    let out = jobc().args(["-f", "upper", "-s", "hello"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"HELLO");
    assert!(worker.wait().unwrap().success());
    let bad = Command::new(env!("CARGO_BIN_EXE_jobc"))
        .env("GEARMAN_SERVERS", "gm1:notaport")
        .args(["-f", "upper", "-s", "x"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("GEARMAN_SERVERS"));
}
