//! The cost of `jobd --http` while a browser shows its page: our server with the status page
//! open in headless Chromium (polling `/status.json` every second) against the same server
//! without `--http`, on the foreground workload with 100 jobs in flight, libgearman workers.

use std::net::SocketAddr;
use std::path::Path;

use evcore::Executor;
use jobclient::Server;

use super::{c_worker, met, rate, run_ours, Proc, Workload, ROUNDS};

pub(super) fn rows(harness: &Path) -> Vec<String> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let (plain, _) = start(cores, false);
    let (watched, http) = start(cores, true);
    let _workers: Vec<Proc> = [plain, watched]
        .iter()
        .flat_map(|&addr| [c_worker(harness, addr), c_worker(harness, addr)])
        .collect();
    let driver = peers::Chromedriver::start().unwrap();
    let page = driver.session().unwrap();
    // `GEARMAN_HTTP_PAGE=blank` keeps the browser on an empty page: the control that tells the
    // page's cost from the rest.
    let blank = std::env::var("GEARMAN_HTTP_PAGE").is_ok_and(|v| v == "blank");
    let url =
        if blank { "about:blank".to_string() } else { format!("http://{}/", http.expect("bound")) };
    page.goto(&url).unwrap();
    let fg = Workload {
        name: "foreground, 100 in flight",
        kind: "fg",
        jobs: 20_000,
        in_flight: 100,
        payload: 16,
    };
    // More rounds than the other rows, in alternating order: two servers, four workers, a
    // client and a browser share two cores, and a ratio near 1 is what is asked.
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS * 3 {
        if round % 2 == 0 {
            without.push(run_ours(plain, &fg));
            with.push(run_ours(watched, &fg));
        } else {
            with.push(run_ours(watched, &fg));
            without.push(run_ours(plain, &fg));
        }
    }
    // The page really was updating all along.
    let updates =
        page.script("return Number(document.getElementById('updates')?.textContent ?? 0)");
    let updates = updates.ok().and_then(|v| v.as_u64()).unwrap_or(0);
    let m = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (with, without) = (m(&mut with), m(&mut without));
    vec![format!(
        "| {} (our client), our server with --http and its page open in Chromium ({updates} updates) vs without, median of {} | {} | {} | {:.2}x | ≥ 0.95x | {} |",
        fg.name,
        ROUNDS * 3,
        rate(with),
        rate(without),
        without / with,
        met(without / with >= 0.95)
    )]
}

/// Our server as jobd runs it, with `--http` when asked: (job port, HTTP port).
fn start(loops: usize, http: bool) -> (SocketAddr, Option<SocketAddr>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lp = evcore::Loop::new().unwrap();
        lp.set_spin(jobclient::DEFAULT_BUSY_POLL);
        let ex = Executor::with_reactor(lp);
        let h = ex.handle();
        let mut server = Server::bind("127.0.0.1:0".parse().unwrap(), &h).unwrap();
        let bound = http.then(|| server.http("127.0.0.1:0".parse().unwrap()).unwrap());
        server.busy_poll(jobclient::DEFAULT_BUSY_POLL);
        server.io_threads(loops).unwrap();
        tx.send((server.local_addr().unwrap(), bound)).unwrap();
        ex.block_on(server.run()).unwrap();
    });
    rx.recv().unwrap()
}
