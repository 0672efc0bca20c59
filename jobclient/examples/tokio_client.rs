//! One Gearman client shared by many tokio tasks on a multi-threaded runtime, with a worker
//! started from the same program: `cargo run -p jobclient --example tokio_client -- 127.0.0.1:4730`
//! against gearmand (or `jobd`).
//!
//! The connections live on an [`evcore::Engine`] thread; the client is `Clone + Send + Sync`
//! and its futures are `Send`, so `tokio::spawn` takes them as they are.

use std::error::Error;
use std::net::SocketAddr;

use jobclient::{Client, Stopper, Worker};

/// Runs `tasks` tasks of `jobs` `reverse` jobs each through the server at `addr`, with a
/// worker of four connections doing them; returns how many results came back right.
pub(crate) async fn run(
    addr: SocketAddr,
    tasks: usize,
    jobs: usize,
) -> Result<usize, Box<dyn Error + Send + Sync>> {
    let engine = evcore::Engine::start()?;
    let stop = Stopper::new();
    let worker = Worker::spawn(&engine, &[addr; 4], None, stop.clone(), |_handle| {
        let mut w = Worker::new();
        w.register("reverse", |job| Ok(job.workload().iter().rev().copied().collect()));
        w
    });
    let client = Client::connect(addr, &engine).await?;
    let running: Vec<_> = (0..tasks)
        .map(|t| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut right = 0;
                for i in 0..jobs {
                    let input = format!("task {t} job {i}");
                    let out = client.do_job("reverse", "", input.clone()).await?;
                    let expected: Vec<u8> = input.bytes().rev().collect();
                    right += usize::from(out[..] == expected[..]);
                }
                Ok::<usize, jobclient::Error>(right)
            })
        })
        .collect();
    let mut right = 0;
    for task in running {
        right += task.await??;
    }
    stop.stop();
    worker.await?;
    Ok(right)
}

#[allow(dead_code)]
#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:4730".into()).parse()?;
    let right = run(addr, 100, 100).await?;
    println!("{right} of 10000 jobs came back reversed");
    Ok(())
}
