//! jobclient against libgearman, and our embedded server against gearmand, on the issue's
//! workloads: foreground with 100 jobs in flight, strictly sequential foreground, background
//! submissions with 1,000 in flight, and 64 KiB payloads.
//!
//! Not a criterion benchmark: each measurement is thousands of jobs through a real server, so
//! the program runs ours and the C harness (`benches/c/gearman_bench.c`, over Debian's
//! libgearman) alternately, three rounds each, against the same server in the same run, and
//! reports medians. Two of our workers answer the foreground jobs for both clients. The table
//! goes to stdout and to `target/peer-results/gearman.md`, which `cargo xtask bench` prints.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Instant;

use bytes::Bytes;
use evcore::Executor;
use futures_util::future::join_all;
use jobclient::{Client, Job, Server, Worker};

const ROUNDS: usize = 3;

struct Workload {
    name: &'static str,
    kind: &'static str,
    jobs: usize,
    in_flight: usize,
    payload: usize,
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "foreground, 100 in flight",
        kind: "fg",
        jobs: 20_000,
        in_flight: 100,
        payload: 16,
    },
    Workload { name: "sequential foreground", kind: "seq", jobs: 3_000, in_flight: 1, payload: 16 },
    Workload {
        name: "background, 1,000 in flight",
        kind: "bg",
        jobs: 50_000,
        in_flight: 1_000,
        payload: 16,
    },
    Workload {
        name: "64 KiB payloads, 16 in flight",
        kind: "fg",
        jobs: 2_000,
        in_flight: 16,
        payload: 64 * 1024,
    },
];

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if !filter.is_empty() && !filter.iter().any(|f| "gearman".contains(f.as_str())) {
        return;
    }
    peers::ensure_packages(&["gearman-job-server", "libgearman-dev", "pkg-config"]).unwrap();
    let root = peers::workspace_root();
    let harness =
        peers::build_c(&root.join("benches/c/gearman_bench.c"), "gearman_bench", &["gearmand"])
            .unwrap();
    let gearmand = peers::Gearmand::start(&[]).unwrap();
    let ours = start_our_server();
    for addr in [gearmand.addr(), ours] {
        for _ in 0..2 {
            start_worker(addr);
        }
    }
    let mut rows = Vec::new();
    for w in WORKLOADS {
        let mut t = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]]; // [server][client]
        for _ in 0..ROUNDS {
            for (s, addr) in [gearmand.addr(), ours].into_iter().enumerate() {
                t[s][0].push(run_ours(addr, w));
                t[s][1].push(run_c(&harness, addr, w));
            }
        }
        let m = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (g_ours, g_c, j_ours, j_c) =
            (m(&mut t[0][0]), m(&mut t[0][1]), m(&mut t[1][0]), m(&mut t[1][1]));
        rows.push(format!(
            "| {} | {} | {} | {:.2}x | ≥ 1.30x | {} |",
            w.name,
            rate(g_ours),
            rate(g_c),
            g_c / g_ours,
            met(g_c / g_ours >= 1.3)
        ));
        rows.push(format!(
            "| {} (libgearman client), our server vs gearmand | {} | {} | {:.2}x | ≥ 2.00x | {} |",
            w.name,
            rate(j_c),
            rate(g_c),
            g_c / j_c,
            met(g_c / j_c >= 2.0)
        ));
        rows.push(format!(
            "| {} (our client), our server vs gearmand | {} | {} | {:.2}x | ≥ 2.00x | {} |",
            w.name,
            rate(j_ours),
            rate(g_ours),
            g_ours / j_ours,
            met(g_ours / j_ours >= 2.0)
        ));
    }
    // The durable queue with group commit (`--queue-sync batch`, one fdatasync per batch
    // read) against the in-memory server, on the background workload: the target is within
    // 2x (issue: "throughput stays within 2x of the non-durable server").
    let durable = start_durable_server(&root.join("target/peer-results"));
    let bg = WORKLOADS.iter().find(|w| w.kind == "bg").expect("a background workload");
    let (mut mem, mut dur, mut mem_c, mut dur_c) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        mem.push(run_ours(ours, bg));
        dur.push(run_ours(durable, bg));
        mem_c.push(run_c(&harness, ours, bg));
        dur_c.push(run_c(&harness, durable, bg));
    }
    let m = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (who, dur, mem) in [
        ("our client", m(&mut dur), m(&mut mem)),
        ("libgearman client", m(&mut dur_c), m(&mut mem_c)),
    ] {
        rows.push(format!(
            "| {} ({who}), durable queue (batch) vs in memory, our server | {} | {} | {:.2}x | ≥ 0.50x | {} |",
            bg.name,
            rate(dur),
            rate(mem),
            mem / dur,
            met(mem / dur >= 0.5)
        ));
    }
    let table = format!(
        "| gearman workload (jobs/s, median of {ROUNDS}) | ours | peer | ours/peer throughput | target | met |\n|---|---|---|---|---|---|\n{}\n",
        rows.join("\n")
    );
    println!("\n{table}");
    let dir = root.join("target/peer-results");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("gearman.md"), table).unwrap();
}

fn rate(ns_per_job: f64) -> String {
    format!("{:.0}/s", 1e9 / ns_per_job)
}

fn met(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "no"
    }
}

/// Our server on its own thread; it lives until the process exits.
fn start_our_server() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ex = Executor::new().unwrap();
        let h = ex.handle();
        let server = Server::bind("127.0.0.1:0".parse().unwrap(), &h).unwrap();
        tx.send(server.local_addr().unwrap()).unwrap();
        ex.block_on(server.run()).unwrap();
    });
    rx.recv().unwrap()
}

/// Our server with a durable queue (default sync policy: batch) in a fresh file under `dir`.
fn start_durable_server(dir: &std::path::Path) -> SocketAddr {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join(format!("bench-queue-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ex = Executor::new().unwrap();
        let h = ex.handle();
        let server = Server::bind("127.0.0.1:0".parse().unwrap(), &h).unwrap();
        server.durable_queue(&file).unwrap();
        tx.send(server.local_addr().unwrap()).unwrap();
        ex.block_on(server.run()).unwrap();
    });
    rx.recv().unwrap()
}

/// One of our workers answering `bench_echo`, on its own thread, for the life of the process.
fn start_worker(addr: SocketAddr) {
    std::thread::spawn(move || {
        let ex = Executor::new().unwrap();
        let h = ex.handle();
        let mut w = Worker::new();
        w.register("bench_echo", |job| Ok(job.workload().clone()));
        let _ = ex.block_on(w.work(addr, &h, None));
    });
}

/// Our client on a workload; nanoseconds per job.
fn run_ours(addr: SocketAddr, w: &Workload) -> f64 {
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    let payload = Bytes::from(vec![b'x'; w.payload]);
    ex.block_on(async {
        let client = Client::connect(addr, &h).await.unwrap();
        let start = Instant::now();
        let mut done = 0;
        while done < w.jobs {
            let batch = w.in_flight.min(w.jobs - done);
            match w.kind {
                "bg" => {
                    let all =
                        join_all((0..batch).map(|_| {
                            client.submit_background(Job::new("bench_bg", payload.clone()))
                        }))
                        .await;
                    assert!(all.iter().all(Result::is_ok));
                }
                _ => {
                    let all = join_all(
                        (0..batch).map(|_| client.do_job("bench_echo", "", payload.clone())),
                    )
                    .await;
                    assert!(all.iter().all(|r| r.as_ref().is_ok_and(|b| b.len() == w.payload)));
                }
            }
            done += batch;
        }
        start.elapsed().as_nanos() as f64 / w.jobs as f64
    })
}

/// The libgearman harness on a workload; nanoseconds per job.
fn run_c(harness: &std::path::Path, addr: SocketAddr, w: &Workload) -> f64 {
    let kind = if w.in_flight == 1 { "seq" } else { w.kind };
    let out = Command::new(harness)
        .args([
            "127.0.0.1",
            &addr.port().to_string(),
            kind,
            &w.jobs.to_string(),
            &w.in_flight.to_string(),
            &w.payload.to_string(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("harness: {text:?} {}", String::from_utf8_lossy(&out.stderr)))
}
