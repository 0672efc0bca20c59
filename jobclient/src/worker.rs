//! The worker: register functions, take jobs, report results (`gearman_worker_*`).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use evcore::Handle;

use crate::conn::Conn;
use crate::proto::{Packet, PacketType, MAX_FUNCTION};
use crate::Error;

/// How a job ended badly, as the worker reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkError {
    /// WORK_FAIL.
    Fail,
    /// WORK_EXCEPTION with data (clients see it only with the exceptions option; otherwise
    /// gearmand turns it into a failure).
    Exception(Bytes),
}

/// A job assigned to this worker, as its function sees it.
pub struct WorkerJob<'a> {
    conn: &'a mut Conn,
    handle: Bytes,
    function: Bytes,
    unique: Bytes,
    workload: Bytes,
}

impl WorkerJob<'_> {
    /// The server's handle for the job.
    pub fn handle(&self) -> &Bytes {
        &self.handle
    }

    /// The function name.
    pub fn function(&self) -> &Bytes {
        &self.function
    }

    /// The client's unique ID.
    pub fn unique(&self) -> &Bytes {
        &self.unique
    }

    /// The workload.
    pub fn workload(&self) -> &Bytes {
        &self.workload
    }

    /// Sends a chunk of the result to the client (WORK_DATA). The only failure is a chunk too
    /// large for a packet (4 GiB), which fails the job.
    pub fn send_data(&mut self, data: &[u8]) -> Result<(), WorkError> {
        self.conn.queue(PacketType::WorkData, &[&self.handle, data]).map_err(|_| WorkError::Fail)
    }

    /// Sends a warning (WORK_WARNING).
    pub fn send_warning(&mut self, data: &[u8]) -> Result<(), WorkError> {
        self.conn.queue(PacketType::WorkWarning, &[&self.handle, data]).map_err(|_| WorkError::Fail)
    }

    /// Reports progress (WORK_STATUS).
    pub fn send_status(&mut self, numerator: u64, denominator: u64) -> Result<(), WorkError> {
        let (n, d) = (numerator.to_string(), denominator.to_string());
        self.conn
            .queue(PacketType::WorkStatus, &[&self.handle, n.as_bytes(), d.as_bytes()])
            .map_err(|_| WorkError::Fail)
    }
}

impl fmt::Debug for WorkerJob<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerJob")
            .field("handle", &String::from_utf8_lossy(&self.handle))
            .field("function", &String::from_utf8_lossy(&self.function))
            .field("workload_len", &self.workload.len())
            .finish()
    }
}

type Function = Box<dyn FnMut(&mut WorkerJob<'_>) -> Result<Bytes, WorkError>>;

struct Ability {
    function: Function,
    timeout: Option<Duration>,
}

/// A worker: functions registered by name, run one job at a time.
///
/// It asks for work with `GRAB_JOB_ALL`; when there is none it sends `PRE_SLEEP` and waits for
/// the server's `NOOP` without polling, so an idle worker costs nothing.
///
/// ```no_run
/// use evcore::Executor;
/// use jobclient::Worker;
///
/// let ex = Executor::new()?;
/// let h = ex.handle();
/// let mut worker = Worker::new();
/// worker.register("reverse", |job| Ok(job.workload().iter().rev().copied().collect::<Vec<u8>>().into()));
/// ex.block_on(worker.work("127.0.0.1:4730".parse().unwrap(), &h, None))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
pub struct Worker {
    abilities: HashMap<Bytes, Ability>,
    client_id: Option<Bytes>,
}

impl Worker {
    /// A worker with no functions.
    pub fn new() -> Worker {
        Worker::default()
    }

    /// Registers `function` (CAN_DO). Its closure returns the result payload, or how it failed.
    pub fn register(
        &mut self,
        name: impl Into<Bytes>,
        function: impl FnMut(&mut WorkerJob<'_>) -> Result<Bytes, WorkError> + 'static,
    ) -> &mut Worker {
        self.abilities.insert(name.into(), Ability { function: Box::new(function), timeout: None });
        self
    }

    /// Registers with a timeout (CAN_DO_TIMEOUT, in milliseconds): the server fails the job if
    /// it runs longer.
    pub fn register_with_timeout(
        &mut self,
        name: impl Into<Bytes>,
        timeout: Duration,
        function: impl FnMut(&mut WorkerJob<'_>) -> Result<Bytes, WorkError> + 'static,
    ) -> &mut Worker {
        self.abilities
            .insert(name.into(), Ability { function: Box::new(function), timeout: Some(timeout) });
        self
    }

    /// Sets the ID the server shows for this worker (SET_CLIENT_ID).
    pub fn client_id(&mut self, id: impl Into<Bytes>) -> &mut Worker {
        self.client_id = Some(id.into());
        self
    }

    /// Connects and works: takes jobs until `max_jobs` have been done (forever with `None`) or
    /// the connection fails. Returns how many jobs it did.
    pub async fn work(
        &mut self,
        addr: SocketAddr,
        handle: &Handle,
        max_jobs: Option<u64>,
    ) -> Result<u64, Error> {
        let mut conn = Conn::connect(addr, handle).await?;
        if let Some(id) = &self.client_id {
            conn.queue(PacketType::SetClientId, &[id])?;
        }
        for (name, ability) in &self.abilities {
            if name.is_empty() || name.contains(&0) || name.len() > MAX_FUNCTION {
                return Err(Error::InvalidArgument("function name: 1 to 512 bytes, no NUL"));
            }
            match ability.timeout {
                Some(t) => {
                    let ms = t.as_millis().to_string();
                    conn.queue(PacketType::CanDoTimeout, &[name, ms.as_bytes()])?;
                }
                None => conn.queue(PacketType::CanDo, &[name])?,
            }
        }
        let mut done = 0;
        while max_jobs.is_none_or(|m| done < m) {
            conn.queue(PacketType::GrabJobAll, &[])?;
            conn.flush().await?;
            let p = self.next_reply(&mut conn).await?;
            match p.kind() {
                PacketType::NoJob => {
                    conn.queue(PacketType::PreSleep, &[])?;
                    conn.flush().await?;
                    // Sleep until the server says there is work.
                    loop {
                        let p = conn.packet().await?;
                        match p.kind() {
                            PacketType::Noop => break,
                            PacketType::Error => return Err(server_error(&p)),
                            _ => {}
                        }
                    }
                }
                PacketType::JobAssignAll | PacketType::JobAssignUniq | PacketType::JobAssign => {
                    self.run(&mut conn, &p)?;
                    done += 1;
                }
                PacketType::Error => return Err(server_error(&p)),
                _ => {}
            }
        }
        conn.flush().await?;
        Ok(done)
    }

    /// The next answer to a GRAB: NOOPs that crossed with the request are skipped.
    async fn next_reply(&self, conn: &mut Conn) -> Result<Packet, Error> {
        loop {
            let p = conn.packet().await?;
            if p.kind() != PacketType::Noop {
                return Ok(p);
            }
        }
    }

    fn run(&mut self, conn: &mut Conn, p: &Packet) -> Result<(), Error> {
        let (handle, function) = (p.arg(0), p.arg(1));
        let (unique, workload) = match p.kind() {
            PacketType::JobAssignAll => (p.arg(2), p.arg(4)),
            PacketType::JobAssignUniq => (p.arg(2), p.arg(3)),
            _ => (Bytes::new(), p.arg(2)),
        };
        let outcome = match self.abilities.get_mut(&function) {
            Some(ability) => {
                let mut job =
                    WorkerJob { conn, handle: handle.clone(), function, unique, workload };
                (ability.function)(&mut job)
            }
            // Assigned a function we never registered: fail it rather than hold it forever.
            None => Err(WorkError::Fail),
        };
        match outcome {
            Ok(result) => conn.queue(PacketType::WorkComplete, &[&handle, &result])?,
            Err(WorkError::Fail) => conn.queue(PacketType::WorkFail, &[&handle])?,
            Err(WorkError::Exception(data)) => {
                conn.queue(PacketType::WorkException, &[&handle, &data])?
            }
        }
        Ok(())
    }
}

fn server_error(p: &Packet) -> Error {
    Error::Server {
        code: String::from_utf8_lossy(p.arg_ref(0)).into_owned(),
        text: String::from_utf8_lossy(p.arg_ref(1)).into_owned(),
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> =
            self.abilities.keys().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
        f.debug_struct("Worker").field("functions", &names).finish()
    }
}
