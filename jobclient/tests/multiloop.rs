//! `jobd -t 4`: the multi-loop server against the invariants the core's model test checks,
//! with real connections spread over four event loops. Random clients and workers, workers
//! killed mid-job at random and clients that die part way: every foreground submission of a
//! client that stays hears exactly one result (coalesced with a dead client's or not), every
//! job is completed exactly once, no acknowledged background job is lost; random priorities
//! hold across loops, in order per client; `-t N` runs N loops.
//! A failure prints its seed; `MULTILOOP_SEED=N` replays it.

#![cfg(feature = "server")]

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{Jobd, Raw};
use jobclient::proto::{encode, Decoder, Frame, Magic, Packet, PacketType as T};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A blocking protocol connection that reports the server closing instead of failing.
struct Conn {
    s: TcpStream,
    buf: BytesMut,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Conn { s, buf: BytesMut::new() }
    }
    fn send(&mut self, kind: T, args: &[&[u8]]) -> bool {
        let mut b = BytesMut::new();
        encode(&mut b, Magic::Req, kind, args).unwrap();
        self.s.write_all(&b).is_ok()
    }
    fn recv(&mut self) -> Option<Packet> {
        loop {
            if let Some(Frame::Packet(p)) = Decoder::client().decode(&mut self.buf).unwrap() {
                return Some(p);
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.s.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("no answer in 30 s: {e}"),
            }
        }
    }
}

/// What the workers did: every job completed (handle, data), and how many workers died.
#[derive(Default)]
struct Done {
    completed: Vec<(Bytes, Vec<u8>)>,
    kills: usize,
}

/// A worker for `f` that completes each job with `done:` and its data, dying instead (its
/// connection dropped mid-job, a new one opened) one time in `die_one_in`. Ends when the
/// server goes away.
fn worker(addr: SocketAddr, seed: u64, die_one_in: u64, done: Arc<Mutex<Done>>) {
    let mut rng = Rng(seed | 1);
    'connection: loop {
        let mut c = Conn::open(addr);
        if !c.send(T::CanDo, &[b"f"]) {
            return;
        }
        loop {
            if !c.send(T::GrabJob, &[]) {
                return;
            }
            let Some(p) = c.recv() else { return };
            match p.kind() {
                T::NoJob => {
                    if !c.send(T::PreSleep, &[]) {
                        return;
                    }
                    match c.recv() {
                        Some(p) if p.kind() == T::Noop => continue,
                        Some(p) => panic!("asleep, got {p:?}"),
                        None => return,
                    }
                }
                T::JobAssign => {
                    if rng.below(die_one_in) == 0 {
                        done.lock().unwrap().kills += 1;
                        drop(c);
                        continue 'connection;
                    }
                    let mut result = b"done:".to_vec();
                    result.extend_from_slice(p.arg_ref(2));
                    // Recorded before it is sent: the server may pass it on at once.
                    done.lock().unwrap().completed.push((p.arg(0), p.arg_ref(2).to_vec()));
                    if !c.send(T::WorkComplete, &[p.arg_ref(0), &result]) {
                        return;
                    }
                }
                other => panic!("worker got {other:?}"),
            }
        }
    }
}

fn run(seed: u64) {
    let jobd = Jobd::start(&["-t", "4"], None);
    let addr = jobd.addr();
    let done = Arc::new(Mutex::new(Done::default()));
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let done = done.clone();
            std::thread::spawn(move || worker(addr, seed.wrapping_add(i * 7919), 25, done))
        })
        .collect();
    let background_total = Arc::new(AtomicUsize::new(0));
    // Background jobs with no unique ID: each is a job of its own that must be completed.
    let must_complete = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let clients: Vec<_> = (0..8u64)
        .map(|n| {
            let background_total = background_total.clone();
            let must_complete = must_complete.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(seed.wrapping_mul(31).wrapping_add(n) | 1);
                // The first two clients die part way: after reading a random number of their
                // answers they drop the connection, with jobs of theirs queued, running and
                // coalesced with the others' (which must still get their results).
                let dies_after = (n < 2).then(|| rng.below(200) as usize);
                let mut c = Conn::open(addr);
                // Every submission, in order: (kind, data); foreground ones await a result.
                let mut subs = Vec::new();
                for i in 0..150 {
                    let kind = [T::SubmitJob, T::SubmitJobHigh, T::SubmitJobLow, T::SubmitJobBg]
                        [rng.below(4) as usize];
                    // A few unique IDs shared by every client: submissions coalesce across
                    // connections, and so across loops.
                    let unique = match rng.below(5) {
                        0 => format!("u{}", rng.below(4)),
                        _ => String::new(),
                    };
                    let data = if unique.is_empty() {
                        format!("c{n}-{i}")
                    } else {
                        // Coalesced submissions get the job's result, whoever submitted it.
                        format!("shared-{unique}")
                    };
                    assert!(c.send(kind, &[b"f", unique.as_bytes(), data.as_bytes()]));
                    subs.push((kind, data));
                }
                // JOB_CREATED comes in submission order; a result may come between two of
                // them (after its own JOB_CREATED, always).
                let mut handles: HashMap<Bytes, usize> = HashMap::new();
                let mut results: HashMap<Bytes, usize> = HashMap::new();
                let (mut created, mut foreground, mut answered) = (0, 0, 0);
                let mut read = 0;
                while created < subs.len() || answered < foreground {
                    if dies_after == Some(read) {
                        return;
                    }
                    read += 1;
                    let p = c.recv().expect("an answer");
                    match p.kind() {
                        T::JobCreated => {
                            let (kind, data) = &subs[created];
                            created += 1;
                            if *kind == T::SubmitJobBg {
                                background_total.fetch_add(1, Ordering::Relaxed);
                                // Acknowledged: it must run even if this client dies.
                                if !data.starts_with("shared-") {
                                    must_complete.lock().unwrap().push(data.clone().into_bytes());
                                }
                            } else {
                                *handles.entry(p.arg(0)).or_default() += 1;
                                foreground += 1;
                            }
                        }
                        T::WorkComplete => {
                            assert!(p.arg_ref(1).starts_with(b"done:"), "{p:?}");
                            assert!(handles.contains_key(&p.arg(0)), "a result before its job");
                            *results.entry(p.arg(0)).or_default() += 1;
                            answered += 1;
                        }
                        other => panic!("client {n} got {other:?}"),
                    }
                }
                assert_eq!(results, handles, "client {n}: one result per foreground submission");
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    // The background jobs (coalesced ones among them counted once per job) finish too: wait
    // until the workers have completed every job the server holds.
    let start = std::time::Instant::now();
    loop {
        let jobs = common::admin(addr, "show jobs");
        if jobs.is_empty() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "jobs left: {jobs:?}");
        // Each round trip is through the server itself: no sleep decides anything here.
        let mut echo = Raw::connect(addr);
        echo.send(T::EchoReq, &[b"."]);
        echo.recv();
    }
    drop(jobd);
    for w in workers {
        w.join().unwrap();
    }
    let done = done.lock().unwrap();
    let mut seen = HashSet::new();
    for (handle, _) in &done.completed {
        assert!(seen.insert(handle.clone()), "{handle:?} completed twice");
    }
    let completed: HashSet<&[u8]> = done.completed.iter().map(|(_, d)| &d[..]).collect();
    for data in must_complete.lock().unwrap().iter() {
        assert!(
            completed.contains(&data[..]),
            "background job {:?} lost",
            String::from_utf8_lossy(data)
        );
    }
    assert!(done.kills > 0, "no worker died: the test did not test requeueing");
    assert!(background_total.load(Ordering::Relaxed) > 0);
}

#[test]
fn four_loops_under_random_worker_and_client_deaths_lose_nothing_and_run_nothing_twice() {
    if let Some(seed) = std::env::var("MULTILOOP_SEED").ok().and_then(|s| s.parse().ok()) {
        return run(seed);
    }
    let base =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
            as u64;
    for round in 0..3 {
        let seed = base.wrapping_add(round);
        let result = std::panic::catch_unwind(|| run(seed));
        if let Err(e) = result {
            panic!("multi-loop test failed with seed {seed} (MULTILOOP_SEED={seed}): {e:?}");
        }
    }
}

/// Random priorities from eight clients over four loops, drained by one worker: every high
/// job before every normal one before every low one, and each client's jobs of a priority in
/// the order it sent them. Several seeds.
#[test]
fn priorities_hold_across_loops() {
    let jobd = Jobd::start(&["-t", "4"], None);
    let addr = jobd.addr();
    // `PRIORITIES_SEED=N` replays one round.
    let replay = std::env::var("PRIORITIES_SEED").ok().and_then(|s| s.parse().ok());
    let base = replay.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
            as u64
    });
    for round in 0..if replay.is_some() { 1 } else { 4 } {
        let seed = base.wrapping_add(round);
        let mut rng = Rng(seed | 1);
        // Eight clients (spread over the four loops) queue jobs of random priorities.
        let mut clients: Vec<Raw> = (0..8).map(|_| Raw::connect(addr)).collect();
        let mut sent = 0;
        let mut counts = Vec::new();
        for (n, c) in clients.iter_mut().enumerate() {
            let count = 1 + rng.below(60) as usize;
            for i in 0..count {
                let (kind, p) =
                    [(T::SubmitJobLowBg, 2), (T::SubmitJobBg, 1), (T::SubmitJobHighBg, 0)]
                        [rng.below(3) as usize];
                c.send(kind, &[b"p", b"", format!("{p}:{n}:{i}").as_bytes()]);
            }
            sent += count;
            counts.push(count);
        }
        for (c, count) in clients.iter_mut().zip(&counts) {
            for _ in 0..*count {
                assert_eq!(c.recv().kind(), T::JobCreated);
            }
        }
        let mut w = Raw::connect(addr);
        w.send(T::CanDo, &[b"p"]);
        let mut order: Vec<(u8, usize, usize)> = Vec::new();
        loop {
            w.send(T::GrabJob, &[]);
            let p = w.recv();
            if p.kind() == T::NoJob {
                break;
            }
            let data = String::from_utf8(p.arg_ref(2).to_vec()).unwrap();
            let f: Vec<usize> = data.split(':').map(|x| x.parse().unwrap()).collect();
            order.push((f[0] as u8, f[1], f[2]));
            w.send(T::WorkComplete, &[p.arg_ref(0), b""]);
        }
        assert_eq!(order.len(), sent, "seed {seed}");
        // All high, then all normal, then all low; each client's jobs of one priority in order.
        assert!(order.windows(2).all(|w| w[0].0 <= w[1].0), "seed {seed}: {order:?}");
        for n in 0..8 {
            for p in 0..3 {
                let seq: Vec<usize> =
                    order.iter().filter(|o| o.0 == p && o.1 == n).map(|o| o.2).collect();
                assert!(
                    seq.windows(2).all(|w| w[0] < w[1]),
                    "seed {seed}, client {n} priority {p}: {seq:?}"
                );
            }
        }
    }
}

/// The threads of a process, from `/proc`.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().count()
}

/// `-t N` runs N event loops, a thread each; without `-t`, or with `-t 0` (gearmand's
/// "guess"), one per core.
#[test]
fn minus_t_runs_that_many_loops() {
    let one = Jobd::start(&["-t", "1"], None);
    let base = threads(one.0.id());
    let four = Jobd::start(&["-t", "4"], None);
    assert_eq!(threads(four.0.id()), base + 3, "-t 4");
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    for flags in [&[][..], &["-t", "0"]] {
        let j = Jobd::start(flags, None);
        assert_eq!(threads(j.0.id()), base + cores - 1, "{flags:?}");
    }
}
