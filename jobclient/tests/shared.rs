//! One client shared by 100 tasks on tokio's multi-threaded runtime (4 threads), and by 100
//! tasks on a non-tokio thread pool, through gearmand and through our server: every one of
//! 10,000 jobs comes back right, and every task finishes.

#[path = "../examples/tokio_client.rs"]
mod example;

mod common;

use std::net::SocketAddr;

use jobclient::{Client, Stopper, Worker};
use peers::Gearmand;

fn on_tokio(addr: SocketAddr) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).build().unwrap();
    let right = rt.block_on(example::run(addr, 100, 100)).unwrap();
    assert_eq!(right, 10_000);
}

#[test]
fn one_client_shared_by_100_tokio_tasks_through_gearmand() {
    let server = Gearmand::start(&[]).unwrap();
    on_tokio(server.addr());
}

#[test]
fn one_client_shared_by_100_tokio_tasks_through_our_server() {
    let server = common::Running::start();
    on_tokio(server.addr);
}

/// Nothing depends on tokio: the same through `futures`' thread pool.
#[test]
fn one_client_shared_by_100_tasks_of_another_executor() {
    let server = common::Running::start();
    let addr = server.addr;
    let engine = evcore::Engine::start().unwrap();
    let stop = Stopper::new();
    let worker = Worker::spawn(&engine, &[addr; 2], None, stop.clone(), |_| {
        let mut w = Worker::new();
        w.register("double", |job| Ok([&job.workload()[..], &job.workload()[..]].concat().into()));
        w
    });
    let pool = futures_executor::ThreadPool::builder().pool_size(4).create().unwrap();
    let client = futures_executor::block_on(Client::connect(addr, &engine)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for t in 0..100 {
        let (client, tx) = (client.clone(), tx.clone());
        pool.spawn_ok(async move {
            let mut right = 0;
            for i in 0..20 {
                let input = format!("{t}.{i}");
                let out = client.do_job("double", "", input.clone()).await.unwrap();
                right += usize::from(out == format!("{input}{input}").as_bytes());
            }
            tx.send(right).unwrap();
        });
    }
    drop(tx);
    // Every task reports (a panicking one drops its sender early and the count falls short).
    let right: usize = rx.iter().sum();
    assert_eq!(right, 2_000);
    stop.stop();
    assert!(futures_executor::block_on(worker).unwrap() >= 2_000);
}

/// A client's connections close when the client and its executor are gone: nothing is left
/// open on the server (seen by `workers`, which lists every connection).
#[test]
fn connections_close_with_the_client() {
    let server = common::Running::start();
    let before = server.admin("workers").len();
    for _ in 0..3 {
        let ex = evcore::Executor::new().unwrap();
        let h = ex.handle();
        ex.block_on(async {
            let client = Client::connect(server.addr, &h).await.unwrap();
            assert_eq!(&client.echo(b"x").await.unwrap()[..], b"x");
        });
    }
    // The server has seen the three connections close by the time it answers this one
    // (it reads in order; a close is read before a later connection's command)...
    let mut left = server.admin("workers").len();
    for _ in 0..100 {
        if left == before {
            break;
        }
        // ...or nearly: each `admin` is a round trip that lets the server run its loop again.
        left = server.admin("workers").len();
    }
    assert_eq!(left, before, "only the admin connection itself is listed");
}

/// A job still followed when its client (and so its connection) goes ends with
/// `Disconnected`, rather than waiting for ever; on an engine thread as on a local executor.
#[test]
fn a_job_outliving_its_client_hears_disconnected() {
    let server = common::Running::start();
    let engine = evcore::Engine::start().unwrap();
    // Nobody does "nobody": the job waits in the queue.
    let client = evcore::block_on(Client::connect(server.addr, &engine)).unwrap();
    let mut job = evcore::block_on(client.submit(jobclient::Job::new("nobody", "x"))).unwrap();
    drop(client);
    drop(engine);
    let end = evcore::block_on(job.next_event());
    assert!(matches!(end, Err(jobclient::Error::Disconnected)), "{end:?}");
}
