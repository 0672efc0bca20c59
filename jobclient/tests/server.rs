//! The embedded server, against our client and worker and against the `gearman` and
//! `gearadmin` tools from Debian's packages.

#![cfg(feature = "server")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use evcore::Executor;
use jobclient::proto::PacketType;
use jobclient::{Client, Error, Job, Priority, Server, WorkError};

use common::{block_on, spawn_worker, Raw, Running};

#[test]
fn our_client_and_worker_through_our_server() {
    let server = Running::start();
    let payloads: Vec<Vec<u8>> =
        vec![vec![], b"text".to_vec(), (0..=255u8).collect(), vec![7u8; 1 << 20]];
    let n = payloads.len() as u64;
    let worker = spawn_worker(server.addr, n + 1, |w| {
        w.register("echo", |job| Ok(job.workload().clone()));
        w.register("boom", |_| Err(WorkError::Exception(Bytes::from_static(b"bad"))));
    });
    let addr = server.addr;
    block_on(move |h| {
        Box::pin(async move {
            let client = Client::connect(addr, &h).await.unwrap();
            for p in &payloads {
                let got = client.do_job("echo", "", p.clone()).await.unwrap();
                assert!(got == *p, "{} bytes back for {}", got.len(), p.len());
            }
            client.enable_exceptions().await.unwrap();
            let e = client.do_job("boom", "", "x").await;
            assert!(matches!(&e, Err(Error::JobException(d)) if &d[..] == b"bad"), "{e:?}");
            assert_eq!(&client.echo(b"ping").await.unwrap()[..], b"ping");
            let st = client.status_handle(b"H:none:1").await.unwrap();
            assert!(!st.known);
        })
    });
    assert_eq!(worker.join().unwrap().unwrap(), n + 1);
}

#[test]
fn gearman_cli_client_and_worker_against_our_server() {
    let server = Running::start();
    let bin = peers::require_binary("gearman", "gearman-tools").unwrap();
    let port = server.addr.port().to_string();
    // The CLI worker feeds the command its whole input before reading: `dd` with one large
    // block reads everything, then writes it back.
    let mut worker = Command::new(&bin)
        .args([
            "-w",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-f",
            "echo",
            "--",
            "dd",
            "bs=8M",
            "iflag=fullblock",
            "status=none",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let payloads: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("text", b"stressed".to_vec()),
        ("binary", (0..=255u8).cycle().take(4096).collect()),
        ("one MiB", (0..1u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect()),
    ];
    for (name, payload) in &payloads {
        let mut cli = Command::new(&bin)
            .args(["-h", "127.0.0.1", "-p", &port, "-f", "echo"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = cli.stdin.take().unwrap();
        let data = payload.clone();
        let feeder = std::thread::spawn(move || stdin.write_all(&data));
        let out = cli.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(
            out.stdout == *payload,
            "{name}: {} bytes back for {}",
            out.stdout.len(),
            payload.len()
        );
    }
    let _ = worker.kill();
    let _ = worker.wait();
    // gearadmin reads our admin protocol.
    let gearadmin = peers::require_binary("gearadmin", "gearman-tools").unwrap();
    let v = Command::new(gearadmin)
        .args(["-h", "127.0.0.1", "-p", &port, "--server-version"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).contains("jobd"), "{:?}", v);
}

#[test]
fn priority_is_global_high_then_normal_then_low() {
    let server = Running::start();
    let addr = server.addr;
    block_on(move |h| {
        Box::pin(async move {
            let client = Client::connect(addr, &h).await.unwrap();
            for (f, prio, data) in [
                ("a", Priority::Low, "low"),
                ("b", Priority::Normal, "normal"),
                ("a", Priority::High, "high"),
            ] {
                client.submit_background(Job::new(f, data).priority(prio)).await.unwrap();
            }
        })
    });
    let mut raw = Raw::connect(addr);
    raw.send(PacketType::CanDo, &[b"a"]);
    raw.send(PacketType::CanDo, &[b"b"]);
    let mut order = Vec::new();
    for _ in 0..3 {
        raw.send(PacketType::GrabJobAll, &[]);
        let p = raw.recv();
        assert_eq!(p.kind(), PacketType::JobAssignAll);
        order.push(String::from_utf8_lossy(p.arg_ref(4)).into_owned());
        let handle = p.arg(0);
        raw.send(PacketType::WorkComplete, &[&handle, b""]);
    }
    assert_eq!(order, ["high", "normal", "low"]);
    raw.send(PacketType::GrabJobAll, &[]);
    assert_eq!(raw.recv().kind(), PacketType::NoJob);
}

#[test]
fn a_job_taken_by_a_dying_worker_is_requeued() {
    let server = Running::start();
    let addr = server.addr;
    // A worker takes the job and dies without answering.
    let mut dying = Raw::connect(addr);
    dying.send(PacketType::CanDo, &[b"work"]);
    dying.send(PacketType::PreSleep, &[]);
    let client = std::thread::spawn(move || {
        block_on(move |h| {
            Box::pin(async move {
                Client::connect(addr, &h).await.unwrap().do_job("work", "", "payload").await
            })
        })
    });
    assert_eq!(dying.recv().kind(), PacketType::Noop);
    dying.send(PacketType::GrabJobAll, &[]);
    let p = dying.recv();
    assert_eq!(p.kind(), PacketType::JobAssignAll);
    assert_eq!(server.admin("status"), ["work\t1\t1\t1"]);
    drop(dying);
    // Another worker finishes it: nothing was lost.
    let good = spawn_worker(addr, 1, |w| {
        w.register("work", |job| Ok(Bytes::from([&b"done:"[..], job.workload()].concat())));
    });
    assert_eq!(&client.join().unwrap().unwrap()[..], b"done:payload");
    assert_eq!(good.join().unwrap().unwrap(), 1);
    let jobs = server.admin("show jobs");
    assert!(jobs.is_empty(), "{jobs:?}");
}

#[test]
fn cant_do_mid_job_requeues_it() {
    let server = Running::start();
    let addr = server.addr;
    block_on(move |h| {
        Box::pin(async move {
            Client::connect(addr, &h)
                .await
                .unwrap()
                .submit_background(Job::new("f", "d"))
                .await
                .unwrap()
        })
    });
    let mut w = Raw::connect(addr);
    w.send(PacketType::CanDo, &[b"f"]);
    w.send(PacketType::GrabJob, &[]);
    assert_eq!(w.recv().kind(), PacketType::JobAssign);
    w.send(PacketType::CantDo, &[b"f"]);
    w.send(PacketType::CanDo, &[b"f"]);
    w.send(PacketType::GrabJobUniq, &[]);
    let again = w.recv();
    assert_eq!(again.kind(), PacketType::JobAssignUniq, "the dropped job is offered again");
    assert_eq!(again.arg_ref(3), b"d");
}

#[test]
fn coalesced_submissions_share_one_run() {
    let server = Running::start();
    let addr = server.addr;
    let runs = Arc::new(Mutex::new(0));
    let runs2 = runs.clone();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                block_on(move |h| {
                    Box::pin(async move {
                        let c = Client::connect(addr, &h).await.unwrap();
                        let mut job = c.submit(Job::new("once", "w").unique("same")).await.unwrap();
                        tx.send(()).unwrap();
                        job.result().await
                    })
                })
            })
        })
        .collect();
    // Both submissions are in before the worker exists.
    rx.recv().unwrap();
    rx.recv().unwrap();
    let worker = spawn_worker(addr, 1, move |w| {
        w.register("once", move |_| {
            *runs2.lock().unwrap() += 1;
            Ok(Bytes::from_static(b"shared"))
        });
    });
    for c in clients {
        assert_eq!(&c.join().unwrap().unwrap()[..], b"shared");
    }
    worker.join().unwrap().unwrap();
    assert_eq!(*runs.lock().unwrap(), 1, "coalesced jobs run once");
}

#[test]
fn malformed_and_oversized_packets_close_only_their_connection() {
    let server = Running::start();
    // (what is sent, what the log must say)
    let cases: [(&[u8], &str); 4] = [
        (b"\0REX\0\0\0\x10\0\0\0\0", "bad magic"),
        (b"\0REQ\0\0\0\x63\0\0\0\0", "unknown packet type 99"),
        (b"\0REQ\0\0\0\x07\x7f\xff\xff\xff", "exceeds the limit"),
        (b"\0RES\0\0\0\x08\0\0\0\x01x", "unexpected"),
    ];
    let good = TcpStream::connect(server.addr).unwrap();
    for (bytes, reason) in cases {
        let mut bad = TcpStream::connect(server.addr).unwrap();
        bad.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        bad.write_all(bytes).unwrap();
        let mut rest = Vec::new();
        let _ = bad.read_to_end(&mut rest);
        assert!(rest.is_empty(), "{reason}: the connection was closed without a reply");
        let log = server.log().join("\n");
        assert!(log.contains(reason), "log lacks {reason:?}: {log}");
    }
    // The server still serves the connection that behaved.
    let mut good = Raw(good, BytesMut::new());
    good.send(PacketType::EchoReq, &[b"still"]);
    assert_eq!(good.recv().arg_ref(0), b"still");
}

/// Times from the network beyond any clock: an epoch of `u64::MAX` stopped the whole server
/// (`Instant + Duration` overflow). Now it is answered `ERROR INVALID_EPOCH`, where gearmand
/// 1.1.20 drops the packet without a reply (see `gearmand.rs`), and everything goes on.
#[test]
fn absurd_times_are_answered_and_the_server_goes_on() {
    let server = Running::start();
    let mut c = Raw::connect(server.addr);
    c.send(PacketType::SubmitJobEpoch, &[b"f", b"", u64::MAX.to_string().as_bytes(), b"x"]);
    c.send(PacketType::EchoReq, &[b"after"]);
    let reply = c.recv();
    assert_eq!(reply.kind(), PacketType::Error);
    assert_eq!(reply.arg_ref(0), b"INVALID_EPOCH");
    assert_eq!(c.recv().arg_ref(0), b"after");
    // A worker with an absurd CAN_DO_TIMEOUT still gets and finishes its job.
    let mut w = Raw::connect(server.addr);
    w.send(PacketType::CanDoTimeout, &[b"f", u64::MAX.to_string().as_bytes()]);
    c.send(PacketType::SubmitJob, &[b"f", b"", b"x"]);
    let handle = c.recv().arg(0);
    w.send(PacketType::GrabJob, &[]);
    assert_eq!(w.recv().arg(0), handle);
    w.send(PacketType::WorkComplete, &[&handle, b"ok"]);
    assert_eq!(c.recv().kind(), PacketType::WorkComplete);
}

#[test]
fn admin_protocol() {
    let server = Running::start();
    let addr = server.addr;
    let handle = block_on(move |h| {
        Box::pin(async move {
            Client::connect(addr, &h)
                .await
                .unwrap()
                .submit_background(Job::new("q", "d"))
                .await
                .unwrap()
        })
    });
    let mut w = Raw::connect(addr);
    w.send(PacketType::SetClientId, &[b"worker-7"]);
    w.send(PacketType::CanDo, &[b"q"]);
    w.send(PacketType::EchoReq, &[b"sync"]);
    w.recv();
    assert_eq!(server.admin("status"), ["q\t1\t0\t1"]);
    let workers = server.admin("workers");
    assert!(workers.iter().any(|l| l.contains("worker-7 : q")), "{workers:?}");
    assert!(server.admin("version")[0].starts_with("OK jobd"));
    assert_eq!(server.admin("getpid")[0], format!("OK {}", std::process::id()));
    let jobs = server.admin("show jobs");
    assert_eq!(jobs, [format!("{}\t0\t0\t1", String::from_utf8_lossy(&handle.handle))]);
    assert_eq!(server.admin("maxqueue q 1"), ["OK"]);
    assert_eq!(
        server.admin(&format!("cancel job {}", String::from_utf8_lossy(&handle.handle))),
        ["OK"]
    );
    assert_eq!(server.admin("status"), ["q\t0\t0\t1"]);
    assert!(server.admin("frobnicate")[0].starts_with("ERR UNKNOWN_COMMAND"));
    // maxqueue 1: the second queued job is refused.
    block_on(move |h| {
        Box::pin(async move {
            let c = Client::connect(addr, &h).await.unwrap();
            c.submit_background(Job::new("q", "1")).await.unwrap();
            let e = c.submit_background(Job::new("q", "2")).await;
            assert!(matches!(e, Err(Error::Server { .. })), "{e:?}");
        })
    });
}

#[test]
fn admin_client_against_our_server() {
    let mut server = Running::start();
    let addr = server.addr;
    block_on(move |h| {
        Box::pin(async move {
            let admin = jobclient::Admin::connect(addr, &h).await.unwrap();
            assert!(admin.version().await.unwrap().starts_with("jobd"));
            assert!(admin.cancel_job("H:none:1").await.is_err());
            // One argument cannot carry a second command (this once ran `shutdown`).
            for bad in ["x\r\nshutdown", "x\nshutdown", "two words", ""] {
                let e = admin.cancel_job(bad).await;
                assert!(matches!(e, Err(Error::InvalidArgument(_))), "{bad:?}: {e:?}");
                let e = admin.set_max_queue(bad, 1).await;
                assert!(matches!(e, Err(Error::InvalidArgument(_))), "{bad:?}: {e:?}");
            }
            assert!(admin.version().await.unwrap().starts_with("jobd"), "still serving");
            admin.shutdown().await.unwrap();
        })
    });
    // The server stopped on its own; nothing is left for Drop to shut down.
    server.thread.take().unwrap().join().unwrap().unwrap();
}

#[test]
fn a_worker_past_its_can_do_timeout_loses_the_job_to_another() {
    let server = Running::start();
    let addr = server.addr;
    let client = std::thread::spawn(move || {
        block_on(move |h| {
            Box::pin(async move {
                Client::connect(addr, &h).await.unwrap().do_job("slow", "", "p").await
            })
        })
    });
    // This worker promises a second (the least the server takes), takes the job and never
    // answers.
    let mut late = Raw::connect(addr);
    late.send(PacketType::CanDoTimeout, &[b"slow", b"1000"]);
    late.send(PacketType::PreSleep, &[]);
    assert_eq!(late.recv().kind(), PacketType::Noop, "woken by the submission");
    late.send(PacketType::GrabJobAll, &[]);
    assert_eq!(late.recv().kind(), PacketType::JobAssignAll);
    // Once the timeout passes the job is requeued for a worker that answers.
    let good = spawn_worker(addr, 1, |w| {
        w.register("slow", |_| Ok(Bytes::from_static(b"finished")));
    });
    assert_eq!(&client.join().unwrap().unwrap()[..], b"finished");
    good.join().unwrap().unwrap();
    // The late worker's answer, when it finally comes, is ignored: the job is not its any more.
    drop(late);
    assert!(server.admin("show jobs").is_empty());
}

#[test]
fn epoch_jobs_wait_for_their_time() {
    let server = Running::start();
    let addr = server.addr;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let later = block_on(move |h| {
        Box::pin(async move {
            let c = Client::connect(addr, &h).await.unwrap();
            // One in the past runs at once; one a second ahead waits.
            c.submit_background(Job::new("timed", "past").at_epoch(now - 10)).await.unwrap();
            c.submit_background(Job::new("timed", "future").at_epoch(now + 1)).await.unwrap()
        })
    });
    let mut w = Raw::connect(addr);
    w.send(PacketType::CanDo, &[b"timed"]);
    w.send(PacketType::GrabJobAll, &[]);
    let first = w.recv();
    assert_eq!(first.arg_ref(4), b"past");
    w.send(PacketType::WorkComplete, &[first.arg_ref(0), b""]);
    w.send(PacketType::GrabJobAll, &[]);
    assert_eq!(w.recv().kind(), PacketType::NoJob, "the future job is not offered before its time");
    assert!(server
        .admin("show jobs")
        .iter()
        .any(|l| l.starts_with(&*String::from_utf8_lossy(&later.handle))));
    // Sleep until it is due: the NOOP that follows is what wakes us.
    w.send(PacketType::PreSleep, &[]);
    assert_eq!(w.recv().kind(), PacketType::Noop);
    w.send(PacketType::GrabJobAll, &[]);
    let second = w.recv();
    assert_eq!(second.arg_ref(4), b"future");
    let due = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(due > now, "offered before its epoch");
}

#[test]
fn the_durable_queue_survives_a_restart() {
    let dir = peers::scratch_dir("durable").unwrap();
    let file = dir.join("queue.log");
    let first = Running::start_with(Some(file.clone()));
    let addr = first.addr;
    let handles = block_on(move |h| {
        Box::pin(async move {
            let c = Client::connect(addr, &h).await.unwrap();
            let mut out = Vec::new();
            for (data, prio) in
                [("low", Priority::Low), ("done", Priority::Normal), ("high", Priority::High)]
            {
                out.push(
                    c.submit_background(Job::new(data, data).priority(prio)).await.unwrap().handle,
                );
            }
            out
        })
    });
    // One of them is finished before the restart; it must not come back.
    let mut w = Raw::connect(addr);
    w.send(PacketType::CanDo, &[b"done"]);
    w.send(PacketType::GrabJobAll, &[]);
    let p = w.recv();
    w.send(PacketType::WorkComplete, &[p.arg_ref(0), b""]);
    w.send(PacketType::EchoReq, &[b"sync"]);
    assert_eq!(w.recv().kind(), PacketType::EchoRes);
    drop(w);
    drop(first);
    // A new server on the same file has the other two, with their handles and priorities.
    let second = Running::start_with(Some(file));
    let mut w = Raw::connect(second.addr);
    for f in [&b"low"[..], b"high", b"done"] {
        w.send(PacketType::CanDo, &[f]);
    }
    let mut got = Vec::new();
    loop {
        w.send(PacketType::GrabJobAll, &[]);
        let p = w.recv();
        if p.kind() == PacketType::NoJob {
            break;
        }
        got.push((p.arg(0), p.arg(4)));
        w.send(PacketType::WorkComplete, &[p.arg_ref(0), b""]);
    }
    assert_eq!(
        got,
        [
            (handles[2].clone(), Bytes::from_static(b"high")),
            (handles[0].clone(), Bytes::from_static(b"low"))
        ]
    );
    // New handles continue after the restored ones.
    let fresh = block_on(move |h| {
        let addr = second.addr;
        Box::pin(async move {
            Client::connect(addr, &h)
                .await
                .unwrap()
                .submit_background(Job::new("x", "y"))
                .await
                .unwrap()
        })
    });
    assert!(!handles.contains(&fresh.handle));
}

/// Two servers on one durable queue corrupted each other's file; the second now refuses.
#[test]
fn a_second_server_on_the_same_durable_queue_refuses_to_start() {
    let dir = peers::scratch_dir("durable-lock").unwrap();
    let file = dir.join("queue.log");
    let first = Running::start_with(Some(file.clone()));
    let ex = Executor::new().unwrap();
    let second = Server::bind("127.0.0.1:0".parse().unwrap(), &ex.handle()).unwrap();
    let e = second.durable_queue(&file).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
    assert!(e.to_string().contains("queue.log"), "the error names the file: {e}");
    drop(second);
    // Once the first has stopped, the file is free again.
    drop(first);
    let third = Server::bind("127.0.0.1:0".parse().unwrap(), &ex.handle()).unwrap();
    assert_eq!(third.durable_queue(&file).unwrap(), 0);
}
