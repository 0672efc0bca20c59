//! The cost of `jobd --http` while a browser shows its page: one server of ours with
//! `--http`, measured with its status page open in headless Chromium (polling `/status.json`
//! every second) and with the browser on an empty page, in alternating rounds, on the
//! foreground workload with 100 jobs in flight and libgearman workers. One server for both
//! sides: two servers in one run differed by up to 20% between themselves (measured with the
//! page closed on both), which hid what the page costs.

use std::net::SocketAddr;
use std::path::Path;

use evcore::Executor;
use jobclient::Server;

use super::{c_worker, met, rate, run_ours, Proc, Workload, ROUNDS};

pub(super) fn rows(harness: &Path) -> Vec<String> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let (addr, http) = start(cores);
    let _workers: Vec<Proc> = vec![c_worker(harness, addr), c_worker(harness, addr)];
    let driver = peers::Chromedriver::start().unwrap();
    let page = driver.session().unwrap();
    let status = format!("http://{http}/");
    let fg = Workload {
        name: "foreground, 100 in flight",
        kind: "fg",
        jobs: 20_000,
        in_flight: 100,
        payload: 16,
    };
    let updates = || {
        page.script("return Number(document.getElementById('updates')?.textContent ?? 0)")
            .ok()
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    };
    // More rounds than the other rows, in alternating order: a ratio near 1 is what is
    // asked, on two cores shared by the server, its workers, the client and the browser.
    let (mut open, mut closed, mut shown) = (Vec::new(), Vec::new(), 0);
    for round in 0..ROUNDS * 3 {
        for with_page in [round % 2 == 0, round % 2 != 0] {
            if with_page {
                page.goto(&status).unwrap();
                open.push(run_ours(addr, &fg));
                shown += updates();
            } else {
                page.goto("about:blank").unwrap();
                closed.push(run_ours(addr, &fg));
            }
        }
    }
    let m = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (open, closed) = (m(&mut open), m(&mut closed));
    vec![format!(
        "| {} (our client), our server with --http: its page open in Chromium ({shown} updates shown) vs not, median of {} | {} | {} | {:.2}x | ≥ 0.95x | {} |",
        fg.name,
        ROUNDS * 3,
        rate(open),
        rate(closed),
        closed / open,
        met(closed / open >= 0.95)
    )]
}

/// Our server as jobd runs it, with `--http`: (job port, HTTP port).
fn start(loops: usize) -> (SocketAddr, SocketAddr) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lp = evcore::Loop::new().unwrap();
        lp.set_spin(jobclient::DEFAULT_BUSY_POLL);
        let ex = Executor::with_reactor(lp);
        let h = ex.handle();
        let mut server = Server::bind("127.0.0.1:0".parse().unwrap(), &h).unwrap();
        let http = server.http("127.0.0.1:0".parse().unwrap()).unwrap();
        server.busy_poll(jobclient::DEFAULT_BUSY_POLL);
        server.io_threads(loops).unwrap();
        tx.send((server.local_addr().unwrap(), http)).unwrap();
        ex.block_on(server.run()).unwrap();
    });
    rx.recv().unwrap()
}
