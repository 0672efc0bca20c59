//! Against the real gearmand 1.1.20 and the `gearman` CLI from Debian's packages, started on
//! 127.0.0.1 by the `peers` crate. A missing peer fails these tests; it never skips them.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use evcore::Executor;
use jobclient::{Client, Error, Job, JobEvent, Priority, WorkError, Worker};
use peers::Gearmand;

/// A `gearman -w` worker process, killed when dropped.
struct CliWorker(Child);

impl CliWorker {
    fn start(server: &Gearmand, function: &str, cmd: &[&str]) -> CliWorker {
        let bin = peers::require_binary("gearman", "gearman-tools").unwrap();
        let port = server.port().to_string();
        let mut args = vec!["-w", "-h", "127.0.0.1", "-p", &port, "-f", function, "--"];
        args.extend_from_slice(cmd);
        CliWorker(
            Command::new(bin)
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for CliWorker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Payloads every interop path must carry byte for byte.
fn payloads() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("empty", Vec::new()),
        ("text", b"hello gearman".to_vec()),
        ("binary", (0..=255u8).cycle().take(4096).collect()),
        (
            "one MiB",
            (0..1 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect(),
        ),
    ]
}

#[test]
fn our_client_with_a_gearman_cli_worker() {
    let server = Gearmand::start(&[]).unwrap();
    // The CLI worker writes the whole workload to the command's stdin before reading its
    // stdout, so the command must read everything first: `cat` would deadlock past the pipe
    // buffer on the 1 MiB payload. `dd` with one large block reads all, then writes.
    let _worker =
        CliWorker::start(&server, "echo", &["dd", "bs=8M", "iflag=fullblock", "status=none"]);
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    ex.block_on(async {
        let client = Client::connect(server.addr(), &h).await.unwrap();
        for (name, payload) in payloads() {
            let got = client.do_job("echo", "", payload.clone()).await.unwrap();
            assert!(got == payload, "{name}: {} bytes back for {} sent", got.len(), payload.len());
        }
    });
}

/// Runs the `gearman` CLI client with `input` on stdin against `port`; returns its stdout.
fn cli_client(port: u16, function: &str, input: &[u8]) -> Vec<u8> {
    let bin = peers::require_binary("gearman", "gearman-tools").unwrap();
    let mut cli = Command::new(&bin)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-f", function])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = cli.stdin.take().unwrap();
    let data = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data));
    let out = cli.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    out.stdout
}

#[test]
fn gearman_cli_client_with_our_worker() {
    let server = Gearmand::start(&[]).unwrap();
    let addr = server.addr();
    let cases = payloads();
    let jobs = cases.len() as u64 + 1;
    // Our worker runs on its own thread with its own loop; it echoes, and returns when done.
    let worker = std::thread::spawn(move || {
        let ex = Executor::new().unwrap();
        let h = ex.handle();
        let mut w = Worker::new();
        w.register("echo", |job| Ok(job.workload().clone()));
        w.register("upper", |job| Ok(job.workload().to_ascii_uppercase().into()));
        ex.block_on(w.work(addr, &h, Some(jobs)))
    });
    for (name, payload) in &cases {
        let got = cli_client(server.port(), "echo", payload);
        assert!(got == *payload, "{name}: {} bytes back for {}", got.len(), payload.len());
    }
    assert_eq!(
        cli_client(server.port(), "upper", b"interop with the cli"),
        b"INTEROP WITH THE CLI"
    );
    assert_eq!(worker.join().unwrap().unwrap(), jobs);
}

/// Runs `scenario` with a client and one of our workers (doing `jobs` jobs) on one executor.
fn with_our_worker<F, Fut>(
    server_args: &[&str],
    jobs: u64,
    setup: impl FnOnce(&mut Worker),
    scenario: F,
) where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let server = Gearmand::start(server_args).unwrap();
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    let mut worker = Worker::new();
    setup(&mut worker);
    let addr = server.addr();
    let h2 = h.clone();
    let worker_task = h.spawn_local(async move { worker.work(addr, &h2, Some(jobs)).await });
    ex.block_on(async {
        let client = Client::connect(addr, &h).await.unwrap();
        scenario(client).await;
        assert_eq!(worker_task.await.unwrap(), jobs);
    });
}

#[test]
fn events_arrive_in_order_and_do_job_concatenates() {
    with_our_worker(
        &[],
        2,
        |w| {
            w.register("chunks", |job| {
                job.send_status(1, 3)?;
                job.send_data(b"one,")?;
                job.send_warning(b"careful")?;
                job.send_data(b"two,")?;
                job.send_status(3, 3)?;
                Ok(Bytes::from_static(b"three"))
            });
        },
        |client| async move {
            let mut job = client.submit(Job::new("chunks", "x")).await.unwrap();
            assert!(job.handle().starts_with(b"H:"));
            let mut events = Vec::new();
            loop {
                let e = job.next_event().await.unwrap();
                let end = e.is_terminal();
                events.push(e);
                if end {
                    break;
                }
            }
            assert_eq!(
                events,
                [
                    JobEvent::Status { numerator: 1, denominator: 3 },
                    JobEvent::Data(Bytes::from_static(b"one,")),
                    JobEvent::Warning(Bytes::from_static(b"careful")),
                    JobEvent::Data(Bytes::from_static(b"two,")),
                    JobEvent::Status { numerator: 3, denominator: 3 },
                    JobEvent::Complete(Bytes::from_static(b"three")),
                ]
            );
            assert!(matches!(job.next_event().await, Err(Error::Finished)));
            let all = client.do_job("chunks", "", "y").await.unwrap();
            assert_eq!(&all[..], b"one,two,three");
        },
    );
}

#[test]
fn exceptions_off_become_fail_and_on_arrive_with_data() {
    with_our_worker(
        &[],
        2,
        |w| {
            w.register("boom", |_| Err(WorkError::Exception(Bytes::from_static(b"kaput"))));
        },
        |client| async move {
            // Without the option, gearmand forwards WORK_FAIL (with a trailing empty argument).
            let off = client.do_job("boom", "", "a").await;
            assert!(matches!(off, Err(Error::JobFailed)), "{off:?}");
            client.enable_exceptions().await.unwrap();
            let on = client.do_job("boom", "", "b").await;
            assert!(matches!(&on, Err(Error::JobException(d)) if &d[..] == b"kaput"), "{on:?}");
        },
    );
}

#[test]
fn errors_are_matched_in_order() {
    let server = Gearmand::start(&[]).unwrap();
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    ex.block_on(async {
        let client = Client::connect(server.addr(), &h).await.unwrap();
        // Three requests in flight at once: the middle one draws an ERROR (which names no
        // handle); the others must still get their own answers.
        let a = client.echo(b"first");
        let b = client.set_option(b"no-such-option");
        let c = client.echo(b"third");
        let (a, b, c) = futures_util::future::join3(a, b, c).await;
        assert_eq!(&a.unwrap()[..], b"first");
        assert!(matches!(b, Err(Error::Server { .. })), "{b:?}");
        assert_eq!(&c.unwrap()[..], b"third");
    });
}

#[test]
fn status_of_an_unknown_handle_is_zeros() {
    let server = Gearmand::start(&[]).unwrap();
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    ex.block_on(async {
        let client = Client::connect(server.addr(), &h).await.unwrap();
        let st = client.status_handle(b"H:nowhere:1").await.unwrap();
        assert!(!st.known && !st.running && st.numerator == 0 && st.denominator == 0, "{st:?}");
    });
}

#[test]
fn background_jobs_are_known_until_done() {
    let server = Gearmand::start(&[]).unwrap();
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    ex.block_on(async {
        let client = Client::connect(server.addr(), &h).await.unwrap();
        let handle = client
            .submit_background(Job::new("nobody", "data").priority(Priority::Low))
            .await
            .unwrap();
        let st = client.status(&handle).await.unwrap();
        assert!(st.known && !st.running, "queued background job: {st:?}");
        let by_unique =
            client.submit_background(Job::new("nobody", "d").unique("u-1")).await.unwrap();
        let st = client.status_unique(b"u-1").await.unwrap();
        assert!(st.known, "{st:?}");
        assert_ne!(handle.handle, by_unique.handle);
        assert_eq!(handle.server, server.addr());
    });
}

#[test]
fn a_deadline_fires_when_no_worker_exists() {
    let server = Gearmand::start(&[]).unwrap();
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    ex.block_on(async {
        let client = Client::connect(server.addr(), &h).await.unwrap();
        let mut job = client
            .submit(Job::new("nobody-home", "x").timeout(Duration::from_millis(50)))
            .await
            .unwrap();
        assert!(matches!(job.next_event().await, Err(Error::TimedOut)));
        // The client is still usable afterwards.
        assert_eq!(&client.echo(b"still here").await.unwrap()[..], b"still here");
    });
}

/// A gate a worker's job waits at until the test opens it (one executor runs both).
#[derive(Clone, Default)]
struct Gate(std::sync::Arc<std::sync::Mutex<(bool, Option<std::task::Waker>)>>);

impl Gate {
    fn open(&self) {
        let mut g = self.0.lock().unwrap();
        g.0 = true;
        if let Some(w) = g.1.take() {
            w.wake();
        }
    }

    async fn wait(&self) {
        std::future::poll_fn(|cx| {
            let mut g = self.0.lock().unwrap();
            if g.0 {
                std::task::Poll::Ready(())
            } else {
                g.1 = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        })
        .await;
    }
}

#[test]
fn coalesced_jobs_reach_every_submitter() {
    // The worker holds the job until both submissions have their handle: otherwise it could
    // finish before the second arrived (seen under load), and there would be nothing to join.
    let gate = Gate::default();
    let held = gate.clone();
    with_our_worker(
        &[],
        1,
        move |w| {
            w.register_async("slow", move |job| {
                let held = held.clone();
                async move {
                    held.wait().await;
                    job.send_data(b"part,")?;
                    Ok(Bytes::from_static(b"done"))
                }
            });
        },
        |client| async move {
            // Two submissions with one unique, on one connection: gearmand sends every packet
            // twice; each submitter must see the whole job once.
            let other = client.clone();
            let (a, b) = futures_util::future::join(
                client.submit(Job::new("slow", "w").unique("same")),
                other.submit(Job::new("slow", "w").unique("same")),
            )
            .await;
            let (mut a, mut b) = (a.unwrap(), b.unwrap());
            assert_eq!(a.handle(), b.handle(), "coalesced into one job");
            gate.open();
            let (ra, rb) = futures_util::future::join(a.result(), b.result()).await;
            assert_eq!(&ra.unwrap()[..], b"part,done");
            assert_eq!(&rb.unwrap()[..], b"part,done");
        },
    );
}

#[test]
fn many_jobs_in_flight_on_one_connection() {
    const JOBS: u64 = 2_000;
    with_our_worker(
        &[],
        JOBS,
        |w| {
            w.register("double", |job| {
                let n: u64 = std::str::from_utf8(job.workload()).unwrap().parse().unwrap();
                Ok((n * 2).to_string().into())
            });
        },
        |client| async move {
            let futures = (0..JOBS).map(|i| {
                let c = client.clone();
                async move { c.do_job("double", "", i.to_string()).await }
            });
            let results = futures_util::future::join_all(futures).await;
            for (i, r) in results.into_iter().enumerate() {
                assert_eq!(r.unwrap(), (i as u64 * 2).to_string().as_bytes(), "job {i}");
            }
        },
    );
}

#[test]
fn our_client_with_our_worker_carries_payloads_exactly() {
    let n = payloads().len() as u64;
    with_our_worker(
        &[],
        n,
        |w| {
            w.register("echo", |job| Ok(job.workload().clone()));
        },
        |client| async move {
            for (name, payload) in payloads() {
                let got = client.do_job("echo", "", payload.clone()).await.unwrap();
                assert!(
                    got == payload,
                    "{name}: {} bytes back for {} sent",
                    got.len(),
                    payload.len()
                );
            }
        },
    );
}

/// What gearmand 1.1.20 does with an epoch of `u64::MAX`, recorded so that our server's
/// different answer (`ERROR INVALID_EPOCH`, `server.rs`) is a choice. gearmand logs a
/// `strtoul` error and never answers the submission: depending on which of its threads runs
/// first, it then answers the echo sent after it, or closes that connection (both seen here).
/// Either way it goes on serving everyone else.
#[test]
fn gearmand_drops_an_absurd_epoch_without_a_reply() {
    use jobclient::proto::{encode, Decoder, Frame, Magic, PacketType};
    use std::io::Read;
    let server = Gearmand::start(&[]).unwrap();
    let first_answer = |packets: &[(PacketType, Vec<&[u8]>)]| -> Option<jobclient::proto::Packet> {
        let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut out = bytes::BytesMut::new();
        for (kind, args) in packets {
            encode(&mut out, Magic::Req, *kind, args).unwrap();
        }
        s.write_all(&out).unwrap();
        let mut buf = bytes::BytesMut::new();
        loop {
            if let Some(Frame::Packet(p)) = Decoder::client().decode(&mut buf).unwrap() {
                return Some(p);
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).unwrap() {
                0 => return None,
                n => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let epoch = u64::MAX.to_string();
    for _ in 0..5 {
        let packets = [
            (PacketType::SubmitJobEpoch, vec![&b"f"[..], b"", epoch.as_bytes(), b"x"]),
            (PacketType::EchoReq, vec![&b"after"[..]]),
        ];
        if let Some(p) = first_answer(&packets) {
            assert_eq!(p.kind(), PacketType::EchoRes, "the submission got no answer: {p:?}");
            assert_eq!(p.arg_ref(0), b"after");
        }
        let fine = first_answer(&[(PacketType::EchoReq, vec![&b"others"[..]])]).unwrap();
        assert_eq!(fine.arg_ref(0), b"others", "gearmand still serves other connections");
    }
}

#[test]
fn admin_client_against_gearmand() {
    let server = Gearmand::start(&[]).unwrap();
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    ex.block_on(async {
        let client = Client::connect(server.addr(), &h).await.unwrap();
        client.submit_background(Job::new("queued", "x")).await.unwrap();
        let admin = jobclient::Admin::connect(server.addr(), &h).await.unwrap();
        assert!(admin.version().await.unwrap().starts_with("1.1."));
        assert_eq!(admin.getpid().await.unwrap(), server.pid());
        let status = admin.status().await.unwrap();
        let q = status.iter().find(|f| f.function == "queued").expect("the function is listed");
        assert_eq!((q.total, q.running, q.workers), (1, 0, 0));
        assert_eq!(admin.show_jobs().await.unwrap().len(), 1);
        admin.set_max_queue("queued", 10).await.unwrap();
        let workers = admin.workers().await.unwrap();
        assert!(!workers.is_empty(), "our own connections are listed");
        // gearmand 1.1.20 has no shutdown: a typed error, not a hang.
        assert!(matches!(admin.shutdown().await, Err(Error::Server { .. })));
    });
}

#[test]
fn an_async_worker_runs_jobs_concurrently_up_to_its_limit() {
    use std::sync::atomic::{AtomicI32, Ordering::SeqCst};
    use std::sync::Arc;
    let server = Gearmand::start(&[]).unwrap();
    let addr = server.addr();
    let worker = std::thread::spawn(move || {
        let ex = Executor::new().unwrap();
        let h = ex.handle();
        let (active, peak) = (Arc::new(AtomicI32::new(0)), Arc::new(AtomicI32::new(0)));
        let mut w = Worker::new();
        let (a, p) = (active.clone(), peak.clone());
        w.max_concurrent(4).register_async("nap", move |job| {
            let (active, peak) = (a.clone(), p.clone());
            async move {
                let now = active.fetch_add(1, SeqCst) + 1;
                peak.fetch_max(now, SeqCst);
                job.send_data(b"<")?;
                job.executor().sleep(Duration::from_millis(30)).await;
                active.fetch_sub(1, SeqCst);
                Ok(job.workload().clone())
            }
        });
        let done = ex.block_on(w.work(addr, &h, Some(8))).unwrap();
        (done, peak.load(SeqCst))
    });
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    ex.block_on(async {
        let client = Client::connect(addr, &h).await.unwrap();
        let jobs = (0..8).map(|i| {
            let c = client.clone();
            async move { c.do_job("nap", "", format!("{i}")).await }
        });
        let results = futures_util::future::join_all(jobs).await;
        for (i, r) in results.into_iter().enumerate() {
            assert_eq!(
                r.unwrap(),
                format!("<{i}").as_bytes(),
                "data sent mid-job comes before the result"
            );
        }
    });
    let (done, peak) = worker.join().unwrap();
    assert_eq!(done, 8);
    assert_eq!(peak, 4, "the worker ran up to its limit at once, and no more");
}
