//! Blocking calls, as libgearman's are (`gearman_client_do`, `gearman_worker_work`), for
//! programs with no async runtime.
//!
//! A [`Client`] here owns an [`Engine`] (an evcore executor on a thread of its own) and the
//! async [`crate::Client`] on it; each call blocks the calling thread until its answer. Do not
//! call these from inside an async task: use the async client there.
//!
//! ```no_run
//! use jobclient::blocking::Client;
//!
//! let client = Client::connect("127.0.0.1:4730".parse()?)?;
//! let reversed = client.do_job("reverse", "", "hello")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::SocketAddr;

use bytes::Bytes;
use evcore::{block_on, Engine};

use crate::{ClientOptions, Error, Job, JobEvent, JobRef, JobStatus, Stopper};

/// A blocking Gearman client (`gearman_client_st` used with the blocking calls): `Send +
/// Sync`, cheap to clone; the engine thread stops when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Client {
    inner: crate::Client,
}

impl Client {
    /// Connects to one server now, on an engine thread of its own.
    pub fn connect(addr: SocketAddr) -> Result<Client, Error> {
        let engine = Engine::start()?;
        Ok(Client { inner: block_on(crate::Client::connect(addr, &engine))? })
    }

    /// A client for several servers, connected when first needed (see
    /// [`crate::Client::with_servers`]).
    pub fn with_servers<A: Clone + Into<crate::ServerAddr>>(
        addrs: &[A],
        options: ClientOptions,
    ) -> Result<Client, Error> {
        let engine = Engine::start()?;
        Ok(Client { inner: crate::Client::with_servers(addrs, &engine, options) })
    }

    /// `gearman_client_do`: runs a job to completion; data chunks and the final payload
    /// concatenated.
    pub fn do_job(
        &self,
        function: impl Into<Bytes>,
        unique: impl Into<Bytes>,
        workload: impl Into<Bytes>,
    ) -> Result<Bytes, Error> {
        block_on(self.inner.do_job(function, unique, workload))
    }

    /// Submits a foreground job; follow it with [`JobHandle::next_event`].
    pub fn submit(&self, job: Job) -> Result<JobHandle, Error> {
        block_on(self.inner.submit(job)).map(JobHandle)
    }

    /// `gearman_client_do_background`.
    pub fn submit_background(&self, job: Job) -> Result<JobRef, Error> {
        block_on(self.inner.submit_background(job))
    }

    /// `gearman_client_job_status`.
    pub fn status(&self, job: &JobRef) -> Result<JobStatus, Error> {
        block_on(self.inner.status(job))
    }

    /// `gearman_client_echo`.
    pub fn echo(&self, data: &[u8]) -> Result<Bytes, Error> {
        block_on(self.inner.echo(data))
    }

    /// The async client underneath, for code that has a runtime after all.
    pub fn as_async(&self) -> &crate::Client {
        &self.inner
    }
}

/// A submitted foreground job, followed by blocking calls.
#[derive(Debug)]
pub struct JobHandle(crate::JobHandle);

impl JobHandle {
    /// The handle the server assigned.
    pub fn handle(&self) -> &Bytes {
        self.0.handle()
    }

    /// The next event (data, warning, status, then the end), blocking until it comes.
    pub fn next_event(&mut self) -> Result<JobEvent, Error> {
        block_on(self.0.next_event())
    }

    /// Follows the job to its end, as `gearman_client_do` does.
    pub fn result(&mut self) -> Result<Bytes, Error> {
        block_on(self.0.result())
    }
}

/// `gearman_worker_work` in a loop: builds the worker with `make` on an engine thread, works
/// for `addrs` until `max_jobs` are done (for ever with `None`) or `stop` fires, and returns
/// how many jobs it did.
///
/// ```no_run
/// use jobclient::{blocking, Stopper, Worker};
///
/// let done = blocking::work(&["localhost:4730".parse::<jobclient::ServerAddr>()?], Some(10), Stopper::new(), |_| {
///     let mut w = Worker::new();
///     w.register("reverse", |job| Ok(job.workload().iter().rev().copied().collect()));
///     w
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn work<A: Clone + Into<crate::ServerAddr>>(
    addrs: &[A],
    max_jobs: Option<u64>,
    stop: Stopper,
    make: impl FnOnce(&evcore::Handle) -> crate::Worker + Send + 'static,
) -> Result<u64, Error> {
    let engine = Engine::start()?;
    block_on(crate::Worker::spawn(&engine, addrs, max_jobs, stop, make))
        .map_err(|evcore::Gone| Error::Disconnected)
}
