//! One transfer client shared by many tokio tasks on a multi-threaded runtime:
//! `cargo run -p multixfer --example tokio_fetch -- http://127.0.0.1:8080/files/ 10000` fetches
//! `files/0` to `files/9999` with 100 tasks.
//!
//! The engine lives on an [`evcore::Engine`] thread; the client is `Clone + Send + Sync` and
//! its futures are `Send`, so `tokio::spawn` takes them as they are. The engine's limits
//! (here at most 50 connections to the host) hold across all the tasks.

use std::error::Error;

use multixfer::client::Client;
use multixfer::{Easy, Options};

/// Fetches `{base}{i}` for every `i` below `files`, split over `tasks` tasks; returns the
/// bodies' total length.
pub(crate) async fn run(
    base: &str,
    files: usize,
    tasks: usize,
) -> Result<u64, Box<dyn Error + Send + Sync>> {
    let engine = evcore::Engine::start()?;
    let mut opts = Options::default();
    opts.max_host_connections = 50;
    let client: Client = Client::new(&engine, opts)?;
    let running: Vec<_> = (0..tasks)
        .map(|t| {
            let (client, base) = (client.clone(), base.to_string());
            tokio::spawn(async move {
                let mut bytes = 0u64;
                for i in (t..files).step_by(tasks) {
                    let response = client.fetch(Easy::get(format!("{base}{i}"))).await?;
                    if response.status() != 200 {
                        return Err(format!("{base}{i}: status {}", response.status()).into());
                    }
                    bytes += response.body.len() as u64;
                }
                Ok::<u64, Box<dyn Error + Send + Sync>>(bytes)
            })
        })
        .collect();
    let mut total = 0;
    for task in running {
        total += task.await??;
    }
    Ok(total)
}

#[allow(dead_code)]
#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| "http://127.0.0.1:8080/".into());
    let files = args.next().map(|n| n.parse()).transpose()?.unwrap_or(10_000);
    let bytes = run(&base, files, 100).await?;
    println!("{files} files, {bytes} bytes");
    Ok(())
}
