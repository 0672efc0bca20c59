//! Several servers, failover, reconnection and draining, against real gearmand.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use evcore::Executor;
use jobclient::proto::{encode, Decoder, Frame, Magic, PacketType};
use jobclient::{Client, ClientOptions, Error, Job, Stopper, Worker};
use peers::Gearmand;

/// Our worker on its own thread, serving `addrs` with reconnection, until `jobs` are done.
fn worker_thread(addrs: Vec<SocketAddr>, jobs: u64) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let ex = Executor::new().unwrap();
        let h = ex.handle();
        let mut w = Worker::new();
        w.client_id("reconnecting")
            .register("up", |job| Ok(job.workload().to_ascii_uppercase().into()));
        ex.block_on(w.run(&addrs, &h, Some(jobs), Stopper::new()))
    })
}

/// Retries `f` a few times while it fails with `Disconnected`: the request that meets a dead
/// connection fails, and the next one reconnects.
async fn retrying<T, F: std::future::Future<Output = Result<T, Error>>>(
    mut f: impl FnMut() -> F,
) -> T {
    for _ in 0..5 {
        match f().await {
            Ok(v) => return v,
            Err(Error::Disconnected | Error::Io(_)) => continue,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("no reconnection after 5 attempts");
}

#[test]
fn server_restarted_under_a_running_client_and_worker() {
    let first = Gearmand::start(&[]).unwrap();
    let port = first.port();
    let addr = first.addr();
    let worker = worker_thread(vec![addr], 2);
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    let client = ex.block_on(Client::connect(addr, &h)).unwrap();
    assert_eq!(&ex.block_on(client.do_job("up", "", "before")).unwrap()[..], b"BEFORE");
    drop(first);
    let _second = Gearmand::start_on(port, &[]).unwrap();
    let got = ex.block_on(retrying(|| client.do_job("up", "", "after")));
    assert_eq!(&got[..], b"AFTER", "client and worker both reconnected");
    assert_eq!(worker.join().unwrap(), 2);
}

#[test]
fn fails_over_in_order_when_a_server_dies() {
    let a = Gearmand::start(&[]).unwrap();
    let b = Gearmand::start(&[]).unwrap();
    let (a_addr, b_addr) = (a.addr(), b.addr());
    let worker = worker_thread(vec![a_addr, b_addr], 2);
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    let client = Client::with_servers(&[a_addr, b_addr], &h, ClientOptions::default());
    ex.block_on(async {
        let mut job = client.submit(Job::new("up", "one")).await.unwrap();
        assert_eq!(job.server(), a_addr, "the first server is used while it is up");
        assert_eq!(&job.result().await.unwrap()[..], b"ONE");
    });
    drop(a);
    ex.block_on(async {
        let mut job = retrying(|| client.submit(Job::new("up", "two"))).await;
        assert_eq!(job.server(), b_addr, "the job failed over to the second server");
        assert_eq!(&job.result().await.unwrap()[..], b"TWO");
    });
    assert_eq!(worker.join().unwrap(), 2);
}

#[test]
fn hashing_by_unique_spreads_jobs_and_keeps_each_unique_on_one_server() {
    let a = Gearmand::start(&[]).unwrap();
    let b = Gearmand::start(&[]).unwrap();
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    let mut options = ClientOptions::default();
    options.hash_by_unique = true;
    let client = Client::with_servers(&[a.addr(), b.addr()], &h, options);
    ex.block_on(async {
        let mut on_a = 0;
        for i in 0..20 {
            let unique = format!("key-{i}");
            let first = client
                .submit_background(Job::new("nobody", "x").unique(unique.clone()))
                .await
                .unwrap();
            let again =
                client.submit_background(Job::new("nobody", "x").unique(unique)).await.unwrap();
            assert_eq!(first, again, "one unique, one server, one (coalesced) job");
            if first.server == a.addr() {
                on_a += 1;
            }
            assert!(client.status(&first).await.unwrap().known);
        }
        assert!(on_a > 0 && on_a < 20, "both servers get jobs ({on_a} of 20 on the first)");
    });
}

#[test]
fn a_stopped_worker_drains_and_unregisters() {
    let server = Gearmand::start(&[]).unwrap();
    let addr = server.addr();
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    let stop = Stopper::new();
    let mut w = Worker::new();
    w.register("up", |job| Ok(job.workload().to_ascii_uppercase().into()));
    let running = h.spawn_local(w.run(&[addr], &h, None, stop.clone()));
    let client = ex.block_on(Client::connect(addr, &h)).unwrap();
    assert_eq!(&ex.block_on(client.do_job("up", "", "x")).unwrap()[..], b"X");
    stop.stop();
    assert_eq!(ex.block_on(running), 1, "the worker returns after the job it did");
    // The server no longer counts it as able to do the function.
    let status = admin(addr, "status");
    assert!(status.iter().any(|l| l.starts_with("up\t") && l.ends_with("\t0")), "{status:?}");
}

fn admin(addr: SocketAddr, command: &str) -> Vec<String> {
    use std::io::BufRead;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "{command}\r\n").unwrap();
    std::io::BufReader::new(s).lines().map_while(Result::ok).take_while(|l| l != ".").collect()
}

#[test]
fn the_poll_interval_finds_work_when_no_noop_comes() {
    // A server that never sends NOOP: the first GRAB gets NO_JOB, the next one a job.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = BytesMut::new();
        let d = Decoder::server();
        let mut grabs = 0;
        loop {
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).unwrap();
            if n == 0 {
                return grabs;
            }
            buf.extend_from_slice(&chunk[..n]);
            while let Ok(Some(Frame::Packet(p))) = d.decode(&mut buf) {
                let mut out = BytesMut::new();
                match p.kind() {
                    PacketType::GrabJobAll => {
                        grabs += 1;
                        if grabs == 1 {
                            encode(&mut out, Magic::Res, PacketType::NoJob, &[]).unwrap();
                        } else {
                            encode(
                                &mut out,
                                Magic::Res,
                                PacketType::JobAssignAll,
                                &[b"H:fake:1", b"up", b"", b"", b"late"],
                            )
                            .unwrap();
                        }
                    }
                    PacketType::WorkComplete => {
                        assert_eq!(p.arg_ref(1), b"LATE");
                        return grabs;
                    }
                    _ => {}
                }
                s.write_all(&out).unwrap();
            }
        }
    });
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    let mut w = Worker::new();
    w.poll_interval(Duration::from_millis(20))
        .register("up", |job| Ok(Bytes::from(job.workload().to_ascii_uppercase())));
    let done = ex.block_on(w.work(addr, &h, Some(1))).unwrap();
    assert_eq!(done, 1);
    assert_eq!(fake.join().unwrap(), 2, "one GRAB before sleeping, one on the poll interval");
}

/// A backoff too long for the clock (`Duration::MAX`) is a long wait, not a panic: the
/// refused connect is an error, and the next try within it is `Disconnected` at once.
#[test]
fn an_absurd_backoff_is_a_long_wait_not_a_panic() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut options = ClientOptions::default();
    options.backoff_initial = Duration::MAX;
    options.backoff_max = Duration::MAX;
    let ex = Executor::new().unwrap();
    let client = Client::with_servers(&[addr], &ex.handle(), options);
    ex.block_on(async {
        assert!(matches!(client.echo(b"x").await, Err(Error::Io(_))));
        assert!(matches!(client.echo(b"x").await, Err(Error::Disconnected)));
    });
}

/// A worker of two servers with a count: the job it does comes from one, while its other
/// connection sleeps waiting for a NOOP that never comes; the count reached, both end (the
/// sleeping one used to wait for ever).
#[test]
fn a_worker_of_several_servers_returns_at_its_count() {
    let (a, b) = (Gearmand::start(&[]).unwrap(), Gearmand::start(&[]).unwrap());
    let worker = worker_thread(vec![a.addr(), b.addr()], 1);
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    let got = ex.block_on(async {
        let client = Client::connect(a.addr(), &h).await.unwrap();
        client.do_job("up", "", "x").await.unwrap()
    });
    assert_eq!(got, Bytes::from_static(b"X"));
    assert_eq!(worker.join().unwrap(), 1);
}

/// The worker's requests around sleeps, against a scripted server: the job that ends a sleep
/// (NO_JOB, PRE_SLEEP, NOOP) is answered with PRE_SLEEP, not with a GRAB_JOB_ALL that would
/// only hear NO_JOB; after the NOOP that answers it, back to grabbing after each job.
#[test]
fn a_job_that_ended_a_sleep_is_answered_with_pre_sleep() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (mut buf, d) = (BytesMut::new(), Decoder::server());
        let mut next = |s: &mut std::net::TcpStream| loop {
            if let Ok(Some(Frame::Packet(p))) = d.decode(&mut buf) {
                return p.kind();
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "the worker hung up");
            buf.extend_from_slice(&chunk[..n]);
        };
        let send = |s: &mut std::net::TcpStream, kind, args: &[&[u8]]| {
            let mut out = BytesMut::new();
            encode(&mut out, Magic::Res, kind, args).unwrap();
            s.write_all(&out).unwrap();
        };
        let (mut seen, mut grabs, mut jobs) = (Vec::new(), 0, 0);
        while jobs < 4 {
            let kind = next(&mut s);
            seen.push(kind);
            match kind {
                PacketType::CanDo | PacketType::WorkComplete => {}
                // Nothing for the first grab and the fourth; a job for every other.
                PacketType::GrabJobAll => {
                    grabs += 1;
                    if grabs == 1 || grabs == 4 {
                        send(&mut s, PacketType::NoJob, &[]);
                    } else {
                        send(&mut s, PacketType::JobAssignAll, &[b"H:1", b"up", b"", b"", b"x"]);
                        jobs += 1;
                    }
                }
                // A job comes while it sleeps.
                PacketType::PreSleep => send(&mut s, PacketType::Noop, &[]),
                other => panic!("{other:?}"),
            }
        }
        // The last result.
        seen.push(next(&mut s));
        seen
    });
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    let mut w = Worker::new();
    w.register("up", |job| Ok(job.workload().to_ascii_uppercase().into()));
    assert_eq!(ex.block_on(w.work(addr, &h, Some(4))).unwrap(), 4);
    use PacketType::{CanDo, GrabJobAll as Grab, PreSleep, WorkComplete as Done};
    assert_eq!(
        fake.join().unwrap(),
        [
            CanDo, Grab, PreSleep, // nothing: asleep
            Grab, Done, PreSleep, // the job that woke it, and asleep again at once
            Grab, Done, Grab, PreSleep, // a job after a NOOP to PRE_SLEEP: grabbing again
            Grab, Done, PreSleep, // woken by a job again
            Grab, Done,
        ]
    );
}
