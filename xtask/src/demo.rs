//! `cargo xtask demo`: the end-to-end showcase, on embedded defaults with no external server.
//!
//! Today it exercises the shared reactor the four crates stand on (an echo server and many
//! clients as tasks on one thread, a timing wheel under a timeout-heavy load, other threads
//! feeding the loop through its `Remote`) and reqqueue (concurrent requests serialized onto one
//! socket). It checks every result and exits non-zero if anything is wrong. The fetch farm of
//! DESIGN.md (Gearman jobs, HTTP transfers, a serialized writer and a process group) replaces
//! it as the other crates land.

use std::cell::Cell;
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evcore::{Async, Dispatch, Executor, Loop, Reactor, Token};
use futures_util::{AsyncReadExt, AsyncWriteExt};

use crate::util::Result;

struct Options {
    clients: usize,
    round_trips: usize,
    timers: usize,
    remote_threads: usize,
    remote_jobs: usize,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        clients: 200,
        round_trips: 50,
        timers: 100_000,
        remote_threads: 4,
        remote_jobs: 25_000,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || -> Result<usize> {
            it.next().and_then(|v| v.parse().ok()).ok_or_else(|| format!("{flag} needs a number"))
        };
        match flag.as_str() {
            "--clients" => o.clients = value()?,
            "--round-trips" => o.round_trips = value()?,
            "--timers" => o.timers = value()?,
            "--threads" => o.remote_threads = value()?,
            "--jobs" => o.remote_jobs = value()?,
            other => return Err(format!("unknown demo option {other}")),
        }
    }
    Ok(o)
}

pub(crate) fn run(args: &[String]) -> Result {
    let o = parse(args)?;
    println!("evstack demo: one reactor under four kinds of load\n");
    let echo = echo(&o)?;
    let timers = timers(&o)?;
    let remote = remote(&o)?;
    let writer = serialized_writer(&o)?;
    println!("  {echo}\n  {timers}\n  {remote}\n  {writer}");
    println!("\ndemo: all checks passed");
    Ok(())
}

/// Clients and an echo server as tasks on one executor, every byte checked.
fn echo(o: &Options) -> Result<String> {
    let ex = Executor::new().map_err(|e| e.to_string())?;
    let h = ex.handle();
    let start = Instant::now();
    let bytes = Rc::new(Cell::new(0usize));
    let result: std::io::Result<usize> = ex.block_on(async {
        let listener = Async::<TcpListener>::bind("127.0.0.1:0".parse().unwrap(), &h)?;
        let addr = listener.get_ref().local_addr()?;
        let sh = h.clone();
        let _server = h.spawn_local(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                sh.spawn_local(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = conn.read(&mut buf).await {
                        if n == 0 || conn.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                })
                .detach();
            }
        });
        let clients: Vec<_> = (0..o.clients)
            .map(|c| {
                let (h2, bytes, trips) = (h.clone(), bytes.clone(), o.round_trips);
                h.spawn_local(async move {
                    let mut conn = Async::<TcpStream>::connect(addr, &h2).await?;
                    let mut back = vec![0u8; 1024];
                    for t in 0..trips {
                        let msg: Vec<u8> = (0..1024).map(|i| (c * 31 + t * 7 + i) as u8).collect();
                        conn.write_all(&msg).await?;
                        conn.read_exact(&mut back).await?;
                        if back != msg {
                            return Err(std::io::Error::other(format!(
                                "client {c} trip {t}: bytes differ"
                            )));
                        }
                        bytes.set(bytes.get() + 2 * msg.len());
                        if t % 10 == 9 {
                            h2.sleep(Duration::from_millis((c % 3) as u64)).await;
                        }
                    }
                    Ok::<_, std::io::Error>(trips)
                })
            })
            .collect();
        let mut trips = 0;
        for c in clients {
            trips += c.await?;
        }
        Ok(trips)
    });
    let trips = result.map_err(|e| format!("echo: {e}"))?;
    if trips != o.clients * o.round_trips {
        return Err(format!("echo: {trips} round trips, expected {}", o.clients * o.round_trips));
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(format!(
        "echo: {} clients, {trips} round trips, {:.1} MB through loopback in {secs:.2} s ({:.0} round trips/s), bytes verified",
        o.clients,
        bytes.get() as f64 / 1e6,
        trips as f64 / secs
    ))
}

/// Timeout-style load: every timer is armed, most are cancelled, the rest must fire in order.
fn timers(o: &Options) -> Result<String> {
    let mut lp = Loop::new().map_err(|e| e.to_string())?;
    let start = Instant::now();
    let now = lp.now();
    let mut kept = 0;
    for i in 0..o.timers {
        let due = now + Duration::from_micros(((i * 7919) % 50_000) as u64);
        let id = lp.add_timer(due, Token(i));
        if i % 100 == 0 {
            kept += 1;
        } else if !lp.cancel_timer(id) {
            return Err(format!("timers: cancel of live timer {i} failed"));
        }
    }
    let armed = start.elapsed();
    let mut fired = Vec::with_capacity(kept);
    while fired.len() < kept {
        lp.dispatch(Dispatch::One, |_, e| {
            if let evcore::Event::Timer(t) = e {
                fired.push(t.0);
            }
        })
        .map_err(|e| e.to_string())?;
    }
    let due_us = |i: usize| (i * 7919) % 50_000;
    if fired.windows(2).any(|w| due_us(w[0]) / 1000 > due_us(w[1]) / 1000 + 1) {
        return Err("timers: fired out of deadline order".into());
    }
    Ok(format!(
        "timers: {} armed, {} cancelled, {kept} fired in order over 50 ms; arming and cancelling took {:.1} ns per timer, {} loop turns",
        o.timers,
        o.timers - kept,
        armed.as_nanos() as f64 / o.timers as f64,
        lp.turns()
    ))
}

/// Other threads feed closures to the loop; each thread's closures must run in order, once.
fn remote(o: &Options) -> Result<String> {
    let mut lp = Loop::new().map_err(|e| e.to_string())?;
    let total = o.remote_threads * o.remote_jobs;
    let seen = Arc::new(Mutex::new(vec![0usize; o.remote_threads]));
    let errors = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..o.remote_threads)
        .map(|t| {
            let (remote, seen, errors, ran, jobs) =
                (lp.remote(), seen.clone(), errors.clone(), ran.clone(), o.remote_jobs);
            std::thread::spawn(move || {
                for i in 0..jobs {
                    let (seen, job_errors, ran) = (seen.clone(), errors.clone(), ran.clone());
                    let scheduled = remote.schedule(move || {
                        let mut s = seen.lock().unwrap();
                        if s[t] != i {
                            job_errors.fetch_add(1, Ordering::Relaxed);
                        }
                        s[t] = i + 1;
                        ran.fetch_add(1, Ordering::Relaxed);
                    });
                    if scheduled.is_err() {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    while ran.load(Ordering::Relaxed) < total {
        lp.dispatch(Dispatch::One, |_, _| {}).map_err(|e| e.to_string())?;
    }
    for t in threads {
        t.join().map_err(|_| "remote: a sender thread panicked".to_string())?;
    }
    let secs = start.elapsed().as_secs_f64();
    if errors.load(Ordering::Relaxed) != 0 {
        return Err(format!(
            "remote: {} closures out of order or lost",
            errors.load(Ordering::Relaxed)
        ));
    }
    Ok(format!(
        "remote: {total} closures from {} threads ran once each, in order, in {} loop turns ({:.0} per wake-up, {:.2} M/s)",
        o.remote_threads,
        lp.turns(),
        total as f64 / lp.turns() as f64,
        total as f64 / secs / 1e6
    ))
}

/// Many requests write large buffers into one socket; a reqqueue makes each write finish
/// before the next begins, and the reader checks nothing interleaved.
fn serialized_writer(o: &Options) -> Result<String> {
    const BLOCK: usize = 256 * 1024;
    let writers = o.clients.clamp(1, 64);
    let ex = Executor::new().map_err(|e| e.to_string())?;
    let h = ex.handle();
    let start = Instant::now();
    let result: std::io::Result<Vec<u8>> = ex.block_on(async {
        let listener = Async::<TcpListener>::bind("127.0.0.1:0".parse().unwrap(), &h)?;
        let addr = listener.get_ref().local_addr()?;
        let reader = h.spawn_local(async move {
            let (mut conn, _) = listener.accept().await?;
            let mut all = Vec::new();
            conn.read_to_end(&mut all).await?;
            Ok::<_, std::io::Error>(all)
        });
        let socket = Rc::new(Async::<TcpStream>::connect(addr, &h).await?);
        let queue = reqqueue::Queue::new("socket writer");
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let socket = socket.clone();
                h.spawn_local(queue.add(move || async move {
                    let block = vec![w as u8; BLOCK];
                    (&*socket).write_all(&block).await
                }))
            })
            .collect();
        for t in tasks {
            t.await.map_err(std::io::Error::other)??;
        }
        drop(socket);
        reader.await
    });
    let all = result.map_err(|e| format!("writer: {e}"))?;
    if all.len() != writers * BLOCK {
        return Err(format!("writer: {} bytes arrived, expected {}", all.len(), writers * BLOCK));
    }
    for (i, block) in all.chunks(BLOCK).enumerate() {
        if block.iter().any(|b| usize::from(*b) != i) {
            return Err(format!("writer: block {i} is mixed or out of order"));
        }
    }
    Ok(format!(
        "reqqueue: {writers} concurrent requests wrote {} MB into one socket, each write whole and in FIFO order, in {:.2} s",
        all.len() / 1_000_000,
        start.elapsed().as_secs_f64()
    ))
}
