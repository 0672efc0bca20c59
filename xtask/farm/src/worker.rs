//! A worker process: takes `fetch_batch` jobs, fetches each batch's URLs concurrently with
//! multixfer, writes every body through a reqqueue-serialized writer into its output file,
//! and announces its progress in the group.
//!
//! Halfway through a job it announces `half` and waits for the coordinator's `go`: that is
//! where the coordinator kills one worker, so the kill always lands mid-job.
//!
//! Output records are `URL <tab> length <newline> body <newline>`. The writer yields between
//! 16 KiB pieces of a body, so without the queue two transfers finishing together would
//! interleave their records; with it, each record is whole.

use std::cell::RefCell;
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use evcore::{Executor, Handle};
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use groupmsg::CpgEvent;
use jobclient::{AsyncJob, Stopper, WorkError, Worker};
use multixfer::client::Client;
use multixfer::{Easy, Options};
use reqqueue::Queue;

use crate::group::{Group, Where};
use crate::watch::Watch;

/// The Gearman function workers register.
pub(crate) const FUNCTION: &str = "fetch_batch";

struct Args {
    server: SocketAddr,
    group: Where,
    out: PathBuf,
    parallel: usize,
    name: String,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let (mut server, mut group, mut out, mut parallel, mut name) =
        (None, None, None, 16, "worker".to_string());
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--server" => server = Some(value()?.parse().map_err(|e| format!("--server: {e}"))?),
            "--group-socket" => group = Some(Where::Groupd(value()?.into())),
            "--corosync" => group = Some(Where::Corosync),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--parallel" => parallel = value()?.parse().map_err(|_| "bad --parallel")?,
            "--name" => name = value()?,
            other => return Err(format!("unknown worker option {other}")),
        }
    }
    Ok(Args {
        server: server.ok_or("--server is required")?,
        group: group.ok_or("--group-socket or --corosync is required")?,
        out: out.ok_or("--out is required")?,
        parallel,
        name,
    })
}

/// Serializes records onto one file.
struct Writer {
    file: RefCell<File>,
    queue: Queue,
}

impl Writer {
    async fn record(&self, url: &str, body: &[u8]) -> std::io::Result<()> {
        let _turn = self.queue.enter().await.map_err(std::io::Error::other)?;
        self.file.borrow_mut().write_all(format!("{url}\t{}\n", body.len()).as_bytes())?;
        for piece in body.chunks(16 * 1024) {
            self.file.borrow_mut().write_all(piece)?;
            evcore::yield_now().await;
        }
        self.file.borrow_mut().write_all(b"\n")
    }
}

/// What the worker shares with its jobs.
struct Shared {
    handle: Handle,
    /// Jobs the coordinator let go on past their halfway point ("go HANDLE").
    released: RefCell<std::collections::HashSet<String>>,
    release: Watch,
    client: Client,
    writer: Writer,
    group: Group,
}

async fn fetch_batch(shared: Rc<Shared>, job: AsyncJob) -> Result<Bytes, WorkError> {
    let urls: Vec<String> =
        String::from_utf8_lossy(job.workload()).lines().map(str::to_string).collect();
    let n = urls.len() as u64;
    let handle = String::from_utf8_lossy(job.handle()).into_owned();
    let h = &shared.handle;
    let fail = |e: String| WorkError::Exception(Bytes::from(e));
    shared.group.send(h, &format!("start {handle} {n}")).await.map_err(fail)?;
    let mut transfers: FuturesUnordered<_> = urls
        .iter()
        .map(|url| {
            let fetch =
                shared.client.fetch(Easy::get(url.as_str()).timeout(Duration::from_secs(60)));
            async move { (url, fetch.await) }
        })
        .collect();
    let (mut k, mut ok, mut missing, mut failed, mut bytes) = (0u64, 0u64, 0u64, 0u64, 0u64);
    while let Some((url, result)) = transfers.next().await {
        match result {
            Ok(r) if r.status() == 200 => {
                shared.writer.record(url, &r.body).await.map_err(|e| fail(e.to_string()))?;
                ok += 1;
                bytes += r.body.len() as u64;
            }
            Ok(r) => {
                missing += 1;
                job.send_warning(format!("{url}: HTTP {}", r.status()).as_bytes())?;
            }
            Err(e) => {
                failed += 1;
                job.send_warning(format!("{url}: {e}").as_bytes())?;
            }
        }
        k += 1;
        job.send_status(k, n)?;
        if k == (n / 2).max(1) {
            shared.group.send(h, &format!("half {handle}")).await.map_err(fail)?;
            // Halfway, the coordinator decides: go on, or be killed right here, mid-job, with
            // half the batch written. Waiting for its word makes the kill land mid-job every
            // time instead of racing the job's end.
            shared.release.until(|| shared.released.borrow().contains(&handle)).await;
        }
    }
    let summary = format!("ok {ok} missing {missing} failed {failed} bytes {bytes}");
    shared.group.send(h, &format!("done {handle} {summary}")).await.map_err(fail)?;
    Ok(Bytes::from(summary))
}

/// The worker process's main.
pub fn main(args: &[String]) -> Result<(), String> {
    let args = parse(args)?;
    let ex = Executor::new().map_err(|e| e.to_string())?;
    let h = ex.handle();
    let mut opts = Options::default();
    opts.max_host_connections = args.parallel;
    let client = Client::new(&h, opts).map_err(|e| e.to_string())?;
    let file = File::create(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let group = Group::join(&args.group, &h)?;
    let shared = Rc::new(Shared {
        handle: h.clone(),
        client,
        writer: Writer { file: RefCell::new(file), queue: Queue::new("output file") },
        group: group.clone(),
        released: RefCell::new(std::collections::HashSet::new()),
        release: Watch::default(),
    });
    let stop = Stopper::new();
    // The coordinator says when to stop, in the group; the worker finishes what it holds,
    // then leaves.
    let listener = {
        let (group, stop, s2) = (group.clone(), stop.clone(), shared.clone());
        h.spawn_local(async move {
            while let Some(ev) = group.next().await {
                if let CpgEvent::Deliver { msg, .. } = ev {
                    if msg == b"shutdown" {
                        stop.stop();
                        return;
                    }
                    if let Some(handle) = msg.strip_prefix(b"go ") {
                        let handle = String::from_utf8_lossy(handle).into_owned();
                        s2.released.borrow_mut().insert(handle);
                        s2.release.notify();
                    }
                }
            }
        })
    };
    let mut worker = Worker::new();
    let s = shared.clone();
    worker
        .client_id(args.name.clone())
        .max_concurrent(2)
        .register_async(FUNCTION, move |job| fetch_batch(s.clone(), job));
    let jobs = ex.block_on(async {
        let jobs = worker.run(&[args.server], &h, None, stop).await;
        listener.await;
        jobs
    });
    shared.writer.file.borrow_mut().flush().map_err(|e| e.to_string())?;
    group.leave();
    let _ = jobs;
    Ok(())
}
