//! One client shared by 100 tasks on tokio's multi-threaded runtime (4 threads), fetching
//! 10,000 files from nginx, and the same from a thread pool that is not tokio's; plus
//! compile-time checks that the handles and futures are `Send`.

#[path = "../examples/tokio_fetch.rs"]
mod example;

mod common;

use std::future::Future;

use multixfer::client::{Client, Fetch};
use multixfer::{Easy, Multi, Options, SharedMulti};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}
fn send_future<F: Future + Send>(f: F) -> F {
    f
}

#[test]
fn handles_and_futures_are_send() {
    send_sync::<Client>();
    send_sync::<Client<String>>();
    send::<Multi>();
    send::<Multi<String, u64>>();
    send_sync::<SharedMulti>();
    send::<Fetch<()>>();
    send::<Easy>();
    let engine = evcore::Engine::start().unwrap();
    let client: Client = Client::new(&engine, Options::default()).unwrap();
    // A fetch to a closed port: built, checked `Send`, and dropped unawaited (cancelled).
    drop(send_future(client.fetch(Easy::get("http://127.0.0.1:9/"))));
}

fn files(n: usize) -> (peers::Nginx, String, u64) {
    let server = common::nginx(1_000_000);
    let root = server.root().join("f");
    std::fs::create_dir_all(&root).unwrap();
    let mut total = 0;
    for i in 0..n {
        let body = format!("file {i} {}\n", "y".repeat(i % 700));
        total += body.len() as u64;
        std::fs::write(root.join(i.to_string()), body).unwrap();
    }
    let base = server.url("f/");
    (server, base, total)
}

#[test]
fn one_client_shared_by_100_tokio_tasks_fetches_10000_files_from_nginx() {
    let (_server, base, total) = files(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).build().unwrap();
    let bytes = rt.block_on(example::run(&base, 10_000, 100)).unwrap();
    assert_eq!(bytes, total, "every file, whole");
}

/// Nothing depends on tokio: 100 tasks on `futures`' thread pool share one client.
#[test]
fn one_client_shared_by_100_tasks_of_another_executor() {
    let (_server, base, total) = files(2_000);
    let engine = evcore::Engine::start().unwrap();
    let client: Client = Client::new(&engine, Options::default()).unwrap();
    let pool = futures_executor::ThreadPool::builder().pool_size(4).create().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for t in 0..100 {
        let (client, tx, base) = (client.clone(), tx.clone(), base.clone());
        pool.spawn_ok(async move {
            let mut bytes = 0u64;
            for i in (t..2_000).step_by(100) {
                let r = client.fetch(Easy::get(format!("{base}{i}"))).await.unwrap();
                assert_eq!(r.status(), 200);
                bytes += r.body.len() as u64;
            }
            tx.send(bytes).unwrap();
        });
    }
    drop(tx);
    // Every task reports (one that panicked drops its sender, and the sum falls short).
    let bytes: u64 = rx.iter().sum();
    assert_eq!(bytes, total);
}

/// The driver as a tokio task (`Client::on_tokio`, feature `tokio`): no engine thread; 100
/// tasks on 4 workers share the client and fetch 2,000 files, every one whole.
#[cfg(feature = "tokio")]
#[test]
fn a_client_driven_by_a_tokio_task_serves_100_tasks() {
    let (_server, base, total) = files(2_000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build();
    let rt = rt.unwrap();
    let client: Client = Client::on_tokio(rt.handle(), Options::default()).unwrap();
    let bytes = rt.block_on(async {
        let tasks: Vec<_> = (0..100)
            .map(|t| {
                let (client, base) = (client.clone(), base.clone());
                tokio::spawn(async move {
                    let mut bytes = 0u64;
                    for i in (t..2_000).step_by(100) {
                        let r = client.fetch(Easy::get(format!("{base}{i}"))).await.unwrap();
                        assert_eq!(r.status(), 200);
                        bytes += r.body.len() as u64;
                    }
                    bytes
                })
            })
            .collect();
        let mut sum = 0;
        for t in tasks {
            sum += t.await.unwrap();
        }
        sum
    });
    assert_eq!(bytes, total);
    // Dropping the client ends the driver task; a fetch made just before resolves.
    let last = client.fetch(Easy::get(format!("{base}0")));
    drop(client);
    let end = rt.block_on(last);
    assert!(matches!(end, Ok(_) | Err(multixfer::XferError::Cancelled)), "{end:?}");
}
