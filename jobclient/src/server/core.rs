//! The job server's state machine, with no I/O: connections, functions, queued and running
//! jobs. Packets go in; packets (and admin text) for each connection come out in its buffer.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::proto::{encode, Magic, Packet, PacketType, ProtoError};

/// Names a connection.
pub(crate) type ConnId = usize;

/// The time, as the driver gives it: monotonic for timeouts, Unix seconds for epoch jobs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Now {
    pub(crate) mono: Instant,
    pub(crate) unix: u64,
}

impl Now {
    pub(crate) fn system() -> Now {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Now { mono: Instant::now(), unix }
    }
}

/// Something waiting for a time.
///
/// Job slots are reused, so a timer names its job by slot *and* by a serial that is never
/// reused: the job's own for an epoch timer, the assignment's for a CAN_DO_TIMEOUT timer. A
/// timer whose serial no longer matches is stale and does nothing. (Each job also holds the key
/// of its one live timer, which is removed when the job is assigned, requeued, finished or
/// cancelled, so stale timers do not pile up either; the serial check is the second line.)
#[derive(Clone, Debug, PartialEq, Eq)]
enum Timed {
    /// A job run under CAN_DO_TIMEOUT: requeued if that same assignment is still running then.
    Assignment { job: JobId, assignment: u64 },
    /// A SUBMIT_JOB_EPOCH job: queued then, if that same job still waits for its time.
    Epoch { job: JobId, serial: u64 },
    /// A limited wake-up (`Policy::worker_wakeup`) was sent for this function: if its jobs
    /// are still queued then, more sleepers are woken.
    Rewake { function: Bytes },
}
type JobId = usize;
/// A key in the timer map: the deadline, then a sequence number that keeps keys distinct.
type TimerKey = (Instant, u64);

/// How far ahead a SUBMIT_JOB_EPOCH may be (100 years): a later epoch is refused with
/// `ERROR INVALID_EPOCH` rather than armed. gearmand 1.1.20 drops such a packet without a
/// reply; an answer is better for a client that waits for one. The bound keeps every deadline
/// within what `Instant` and the reactor's millisecond ticks represent.
pub(crate) const MAX_EPOCH_AHEAD_SECS: u64 = 100 * 365 * 24 * 3600;
/// The longest CAN_DO_TIMEOUT honoured (100 years, in milliseconds); a longer one, like 0,
/// means no timeout.
pub(crate) const MAX_CAN_DO_TIMEOUT_MS: u64 = MAX_EPOCH_AHEAD_SECS * 1000;

const PRIORITIES: usize = 3;

#[derive(Debug, Default)]
pub(crate) struct ConnState {
    pub(crate) out: BytesMut,
    pub(crate) peer: String,
    client_id: Bytes,
    /// Functions this connection can do, in registration order; GRAB_JOB searches them from
    /// the last to the first, as gearmand does, and round robin moves the one just given to
    /// the front (searched last).
    abilities: Vec<Bytes>,
    /// CAN_DO_TIMEOUT limits, by function.
    timeouts: HashMap<Bytes, Duration>,
    sleeping: bool,
    exceptions: bool,
    /// Jobs assigned to this connection as a worker.
    running: Vec<JobId>,
    /// Foreground jobs this connection waits on, with how many times it submitted each.
    waiting: HashMap<JobId, u32>,
    /// Foreground submissions waiting, the sum over `waiting`.
    submissions: usize,
    /// Its output passed the limit: nothing more is queued, and the driver closes it.
    pub(crate) doomed: bool,
    /// Output the driver holds for it, taken from `out` but not yet written: counted with
    /// `out` against the output limit.
    pub(crate) unsent: usize,
    /// Whether this connection may use the admin commands that change state.
    pub(crate) admin: bool,
    /// Its socket's descriptor, which admin `workers` shows as gearmand does.
    pub(crate) fd: Option<i32>,
}

#[derive(Debug)]
struct Job {
    handle: Bytes,
    function: Bytes,
    unique: Bytes,
    data: Bytes,
    /// The reducer a `SUBMIT_REDUCE_JOB` named, handed to the worker in `JOB_ASSIGN_ALL` as
    /// gearmand does; empty for other jobs.
    reducer: Bytes,
    priority: usize,
    background: bool,
    /// Connections to forward WORK_* to, each with its number of submissions: every WORK_*
    /// goes to a connection once per submission, as gearmand sends it.
    clients: Vec<(ConnId, u32)>,
    worker: Option<ConnId>,
    status: (u64, u64),
    retries: u32,
    /// The Unix time an epoch job runs at; 0 otherwise.
    epoch: u64,
    /// Never reused across jobs (slots are): what an epoch timer checks.
    serial: u64,
    /// The serial of the current assignment to a worker (0: none yet): what a CAN_DO_TIMEOUT
    /// timer checks.
    assignment: u64,
    /// The job's live timer (its epoch, or its assignment's timeout), if any.
    timer: Option<TimerKey>,
    /// Created but not queued yet (counted in its function's `waiting`).
    waiting: bool,
    /// When it was last put in a queue (submitted, restored, requeued): its queue wait runs
    /// from here to its assignment.
    queued_at: Instant,
    /// When its current assignment began: its run time runs from here to its end.
    started_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct Function {
    queues: [VecDeque<JobId>; PRIORITIES],
    running: usize,
    workers: usize,
    /// Maximum queued jobs per priority; 0 is no limit.
    max_queue: [usize; PRIORITIES],
    /// Jobs per priority created but not in a queue yet (waiting for their epoch or for the
    /// durable queue): `maxqueue` counts them too.
    waiting: [usize; PRIORITIES],
    /// The function's pending re-wake timer, if a limited wake-up is outstanding.
    rewake: Option<TimerKey>,
}

impl Function {
    fn queued(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }
}

/// What the caller must do after a packet or line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Nothing beyond flushing output.
    Continue,
    /// Stop the server at once (admin `shutdown`).
    Shutdown,
    /// Stop gracefully (admin `shutdown graceful`): accept nothing more, hand out nothing
    /// more, let running jobs finish.
    Drain,
}

#[derive(Debug)]
pub(crate) struct Core {
    conns: Vec<Option<ConnState>>,
    free_conns: Vec<ConnId>,
    functions: HashMap<Bytes, Function>,
    jobs: Vec<Option<Job>>,
    free_jobs: Vec<JobId>,
    by_handle: HashMap<Bytes, JobId>,
    by_unique: HashMap<(Bytes, Bytes), JobId>,
    next_handle: u64,
    prefix: String,
    /// Connections with output waiting, each listed once.
    pub(crate) dirty: Vec<ConnId>,
    timers: BTreeMap<TimerKey, Timed>,
    timer_seq: u64,
    /// The last serial handed to a job or an assignment.
    serial: u64,
    /// Journal records for the durable queue, for the driver to append to its file; `None`
    /// when the queue is in memory only.
    pub(crate) journal: Option<BytesMut>,
    pub(crate) limits: super::Limits,
    pub(crate) policy: super::Policy,
    /// A graceful shutdown is under way: no job is handed out or accepted any more.
    pub(crate) draining: bool,
    /// The latest time the core was told of (by a packet or a timer round): what a re-wake is
    /// timed from, so that the core keeps to the times its caller gives it.
    clock: Instant,
    /// Bytes the live background jobs' records take in the durable queue: what a compaction
    /// would keep.
    pub(crate) journal_live: u64,
    /// Background submissions waiting for their journal record to be written, in order.
    unacked: Vec<Unacked>,
    /// Counters for `/metrics` and the status page.
    pub(crate) stats: super::stats::Stats,
}

/// A background submission acknowledged only once the durable queue has its record.
#[derive(Debug)]
struct Unacked {
    conn: ConnId,
    job: JobId,
    /// The job's serial, so that a reused slot is never mistaken for it.
    serial: u64,
    /// A new job (queued at commit), or a submission coalesced onto a pending one.
    new: bool,
    /// A foreground job this submission made a background one (undone if the write fails).
    upgraded: bool,
    /// The job's handle, for the answer even if the job is gone by then.
    handle: Bytes,
}

/// A name from the network as an admin listing shows it: control characters (a line feed
/// would forge lines in `status` or `workers`) become `?`.
fn printable(name: &[u8]) -> String {
    String::from_utf8_lossy(name).chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// A name written out without loss, for the HTTP side: valid UTF-8 as it is, a backslash
/// doubled, control characters and bytes that are not UTF-8 as `\xNN` (so `a\x01` the
/// bytes and `a\\x01` the text stay apart).
pub(crate) fn escaped(name: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => {
                    let mut b = [0u8; 4];
                    for byte in c.encode_utf8(&mut b).bytes() {
                        let _ = write!(out, "\\x{byte:02x}");
                    }
                }
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// A job as the durable queue records it.
fn saved(j: &Job) -> super::journal::Saved {
    super::journal::Saved {
        handle: j.handle.clone(),
        function: j.function.clone(),
        unique: j.unique.clone(),
        data: j.data.clone(),
        priority: j.priority as u8,
        epoch: j.epoch,
        reducer: j.reducer.clone(),
    }
}

/// The monotonic deadline of a Unix `epoch` later than `now`, if it is within
/// [`MAX_EPOCH_AHEAD_SECS`] (and so representable).
fn epoch_deadline(epoch: u64, now: Now) -> Option<Instant> {
    let ahead = epoch.checked_sub(now.unix)?;
    if ahead > MAX_EPOCH_AHEAD_SECS {
        return None;
    }
    now.mono.checked_add(Duration::from_secs(ahead))
}

impl Core {
    pub(crate) fn new(host: &str) -> Core {
        Core {
            conns: Vec::new(),
            free_conns: Vec::new(),
            functions: HashMap::new(),
            jobs: Vec::new(),
            free_jobs: Vec::new(),
            by_handle: HashMap::new(),
            by_unique: HashMap::new(),
            next_handle: 1,
            prefix: format!("H:{host}:"),
            dirty: Vec::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            serial: 0,
            journal: None,
            limits: super::Limits::default(),
            policy: super::Policy::default(),
            draining: false,
            clock: Instant::now(),
            unacked: Vec::new(),
            journal_live: 0,
            stats: super::stats::Stats::default(),
        }
    }

    #[cfg(test)]
    pub(crate) fn connect(&mut self, peer: String) -> ConnId {
        self.connect_with(peer, true)
    }

    /// A new connection; `admin` says whether it may change state through the admin protocol.
    pub(crate) fn connect_with(&mut self, peer: String, admin: bool) -> ConnId {
        self.stats.connections += 1;
        let state = ConnState { peer, admin, ..ConnState::default() };
        match self.free_conns.pop() {
            Some(id) => {
                self.conns[id] = Some(state);
                id
            }
            None => {
                self.conns.push(Some(state));
                self.conns.len() - 1
            }
        }
    }

    pub(crate) fn conn_mut(&mut self, id: ConnId) -> Option<&mut ConnState> {
        self.conns.get_mut(id)?.as_mut()
    }

    /// A connection is gone: its running jobs go back to the front of their queues (nothing a
    /// dying worker took is lost), and it stops waiting on foreground jobs.
    pub(crate) fn disconnect(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id).and_then(Option::take) else { return };
        self.free_conns.push(id);
        for f in &conn.abilities {
            if let Some(func) = self.functions.get_mut(f) {
                func.workers = func.workers.saturating_sub(1);
            }
        }
        for job in conn.running {
            self.requeue(job);
        }
        for f in &conn.abilities {
            self.prune(f);
        }
        for (job_id, _) in conn.waiting {
            let Some(Some(job)) = self.jobs.get_mut(job_id) else { continue };
            job.clients.retain(|&(c, _)| c != id);
            // A foreground job nobody waits for any more and nobody runs yet is dropped.
            if job.clients.is_empty() && !job.background && job.worker.is_none() {
                self.remove_job(job_id);
            }
        }
    }

    /// A handle no live job has. The counter only wraps if a journal restored handles near
    /// `u64::MAX`; then handles still in use are skipped.
    fn new_handle(&mut self) -> Bytes {
        loop {
            let handle = Bytes::from(format!("{}{}", self.prefix, self.next_handle));
            self.next_handle = self.next_handle.checked_add(1).unwrap_or(1);
            if !self.by_handle.contains_key(&handle) {
                return handle;
            }
        }
    }

    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// A running job's worker is gone (or gave it up, or ran out of time): the job goes back
    /// to the front of its queue, or, past `Policy::job_retries` attempts, is dropped with
    /// `WORK_FAIL` to its clients, as gearmand's `-j` does.
    fn requeue(&mut self, job_id: JobId) {
        let Some(Some(job)) = self.jobs.get_mut(job_id) else { return };
        job.worker = None;
        job.retries = job.retries.saturating_add(1);
        if let Some(key) = job.timer.take() {
            self.timers.remove(&key);
        }
        job.started_at = None;
        job.queued_at = Instant::now();
        let (function, priority) = (job.function.clone(), job.priority);
        if let Some(f) = self.functions.get_mut(&function) {
            f.running = f.running.saturating_sub(1);
        }
        let max = self.policy.job_retries;
        if max > 0 && job.retries >= max {
            log::warn!(
                "dropped job {} (function {}, unique {:?}) after {} attempts: each ended with \
                 its worker gone or out of time",
                printable(&job.handle),
                printable(&job.function),
                printable(&job.unique),
                job.retries
            );
            let (handle, clients) = (job.handle.clone(), job.clients.clone());
            self.stats.on_drop(printable(&function), printable(&handle));
            for (c, n) in clients {
                self.send_n(c, n, PacketType::WorkFail, &[&handle]);
            }
            self.remove_job(job_id);
            self.prune(&function);
            return;
        }
        self.stats.retried += 1;
        if let Some(f) = self.functions.get_mut(&function) {
            f.queues[priority].push_front(job_id);
        }
        self.wake_workers(&function);
    }

    /// Bytes of output queued for connections and not yet written, over all of them.
    pub(crate) fn output_pending(&self) -> usize {
        self.conns.iter().flatten().map(|c| c.out.len() + c.unsent).sum()
    }

    /// Jobs running on workers now.
    pub(crate) fn running_jobs(&self) -> usize {
        self.functions.values().map(|f| f.running).sum()
    }

    fn send(&mut self, to: ConnId, kind: PacketType, args: &[&[u8]]) {
        self.send_n(to, 1, kind, args);
    }

    /// Queues one packet `n` times (once per submission of a coalesced job), encoded once.
    fn send_n(&mut self, to: ConnId, n: u32, kind: PacketType, args: &[&[u8]]) {
        let max_output = self.limits.max_output;
        let Some(Some(conn)) = self.conns.get_mut(to) else { return };
        if conn.doomed {
            return;
        }
        if conn.out.is_empty() {
            self.dirty.push(to);
        }
        let start = conn.out.len();
        // Arguments come from packets that decoded, so they fit in a packet again.
        let _ = encode(&mut conn.out, Magic::Res, kind, args);
        let one = conn.out.len() - start;
        // Checked before any copy: 1,024 copies of a 64 MiB packet must not be built first.
        let total =
            start.saturating_add(conn.unsent).saturating_add(one.saturating_mul(n as usize));
        if total > max_output {
            Self::doom(conn, &mut self.dirty, to);
            return;
        }
        for _ in 1..n {
            conn.out.extend_from_within(start..start + one);
        }
    }

    pub(crate) fn send_text(&mut self, to: ConnId, text: &str) {
        let max_output = self.limits.max_output;
        let Some(Some(conn)) = self.conns.get_mut(to) else { return };
        if conn.doomed {
            return;
        }
        if conn.out.is_empty() {
            self.dirty.push(to);
        }
        conn.out.extend_from_slice(text.as_bytes());
        Self::check_output(conn, max_output, &mut self.dirty, to);
    }

    /// A connection whose unsent output passed the limit (a client that never reads) is
    /// doomed: its output is dropped and its driver closes it, as if it had died. Queuing more
    /// for it would grow memory without bound.
    fn check_output(conn: &mut ConnState, max: usize, dirty: &mut Vec<ConnId>, id: ConnId) {
        if conn.out.len() + conn.unsent > max {
            Self::doom(conn, dirty, id);
        }
    }

    fn doom(conn: &mut ConnState, dirty: &mut Vec<ConnId>, id: ConnId) {
        conn.doomed = true;
        conn.out = BytesMut::new();
        dirty.push(id);
    }

    /// Whether `conn` may wait on one more foreground submission.
    fn may_wait(&self, conn: ConnId) -> bool {
        self.conns
            .get(conn)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.submissions < self.limits.max_submissions_per_connection)
    }

    /// Whether `conn` may use the admin commands that change state (`shutdown`, `cancel job`,
    /// `maxqueue`).
    pub(crate) fn may_admin(&self, conn: ConnId) -> bool {
        self.conns.get(conn).and_then(Option::as_ref).is_some_and(|c| c.admin)
    }

    /// Live connections.
    pub(crate) fn connections(&self) -> usize {
        self.conns.len() - self.free_conns.len()
    }

    fn error(&mut self, to: ConnId, code: &str, text: &str) {
        self.send(to, PacketType::Error, &[code.as_bytes(), text.as_bytes()]);
    }

    /// Wakes the sleeping workers able to do `function`: every one, as gearmand does by
    /// default (`-w 0`), or `Policy::worker_wakeup` of them with a re-wake armed in case they
    /// do not come. (Waking only one, with no re-wake, left a job queued behind a woken worker
    /// that died, was closed, or answered the NOOP with PRE_SLEEP without grabbing, while the
    /// other sleepers slept on.) Nobody is woken while the server drains.
    fn wake_workers(&mut self, function: &Bytes) {
        if self.draining {
            return;
        }
        let limit = self.policy.worker_wakeup;
        let mut sleepers: Vec<ConnId> = self
            .conns
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.as_ref().is_some_and(|c| c.sleeping && c.abilities.contains(function))
            })
            .map(|(id, _)| id)
            .collect();
        if limit > 0 && sleepers.len() > limit {
            sleepers.truncate(limit);
            let armed = self.functions.get(function).is_some_and(|f| f.rewake.is_some());
            if !armed {
                // A re-wake too far for the clock (a configured `Duration::MAX`) is none.
                if let Some(at) = self.clock.checked_add(self.policy.rewake_after) {
                    self.add_timer(at, Timed::Rewake { function: function.clone() });
                }
            }
        }
        for id in sleepers {
            if let Some(c) = self.conn_mut(id) {
                c.sleeping = false;
            }
            self.send(id, PacketType::Noop, &[]);
        }
    }

    fn remove_job(&mut self, job_id: JobId) {
        self.set_waiting(job_id, false);
        let Some(job) = self.jobs.get_mut(job_id).and_then(Option::take) else { return };
        self.free_jobs.push(job_id);
        if let Some(key) = job.timer {
            self.timers.remove(&key);
        }
        if job.background {
            if let Some(journal) = self.journal.as_mut() {
                super::journal::done(journal, &job.handle);
                self.journal_live =
                    self.journal_live.saturating_sub(super::journal::add_len(&saved(&job)) as u64);
            }
        }
        self.by_handle.remove(&job.handle);
        if !job.unique.is_empty() {
            self.by_unique.remove(&(job.function.clone(), job.unique.clone()));
        }
        if let Some(f) = self.functions.get_mut(&job.function) {
            for q in &mut f.queues {
                q.retain(|&j| j != job_id);
            }
        }
        for (c, n) in job.clients {
            if let Some(conn) = self.conn_mut(c) {
                conn.waiting.remove(&job_id);
                conn.submissions = conn.submissions.saturating_sub(n as usize);
            }
        }
    }

    /// Handles one packet from a connection.
    pub(crate) fn packet(
        &mut self,
        from: ConnId,
        p: &Packet,
        now: Now,
    ) -> Result<Action, ProtoError> {
        use PacketType as T;
        if p.magic() != Magic::Req {
            return Err(ProtoError::Unexpected { magic: p.magic(), kind: p.kind() });
        }
        p.check_limits()?;
        self.clock = self.clock.max(now.mono);
        match p.kind() {
            T::EchoReq => self.send(from, T::EchoRes, &[p.arg_ref(0)]),
            T::SubmitJob => self.submit(from, p, 1, false, now),
            T::SubmitJobHigh => self.submit(from, p, 0, false, now),
            T::SubmitJobLow => self.submit(from, p, 2, false, now),
            T::SubmitJobBg | T::SubmitJobEpoch => self.submit(from, p, 1, true, now),
            T::SubmitJobHighBg => self.submit(from, p, 0, true, now),
            T::SubmitJobLowBg => self.submit(from, p, 2, true, now),
            // gearmand queues a reduce job as a normal one that carries its reducer to the
            // worker (JOB_ASSIGN_ALL); the map and reduce steps are the worker's (libgearman).
            T::SubmitReduceJob => self.submit(from, p, 1, false, now),
            T::SubmitReduceJobBackground => self.submit(from, p, 1, true, now),
            T::GetStatus => self.get_status(from, p.arg(0)),
            T::GetStatusUnique => self.get_status_unique(from, p.arg(0)),
            T::OptionReq => {
                if p.arg_ref(0) == b"exceptions" {
                    if let Some(c) = self.conn_mut(from) {
                        c.exceptions = true;
                    }
                    self.send(from, T::OptionRes, &[b"exceptions"]);
                } else {
                    self.error(from, "UNKNOWN_OPTION", "Server does not recognize given option");
                }
            }
            T::CanDo => self.can_do(from, p.arg(0), None)?,
            T::CanDoTimeout => {
                // 0, and anything beyond the bound, is no timeout: a zero timeout would take
                // every job back the moment it was assigned. Milliseconds, at least 1,000 as
                // gearmand rounds them up (a worker asking for 1 gets a second on both).
                let ms = p.number(1, "timeout")?;
                let timeout = (1..=MAX_CAN_DO_TIMEOUT_MS).contains(&ms);
                let limit = Duration::from_millis(ms.max(1_000));
                self.can_do(from, p.arg(0), timeout.then_some(limit))?;
            }
            T::CantDo => self.cant_do(from, &p.arg(0)),
            T::ResetAbilities => {
                let abilities =
                    self.conn_mut(from).map(|c| c.abilities.clone()).unwrap_or_default();
                for f in abilities {
                    self.cant_do(from, &f);
                }
            }
            T::SetClientId => {
                if let Some(c) = self.conn_mut(from) {
                    c.client_id = Bytes::copy_from_slice(p.arg_ref(0));
                }
            }
            T::PreSleep => {
                let has_work = !self.draining
                    && self.conns.get(from).and_then(Option::as_ref).is_some_and(|c| {
                        c.abilities
                            .iter()
                            .any(|f| self.functions.get(f).is_some_and(|f| f.queued() > 0))
                    });
                if has_work {
                    self.send(from, T::Noop, &[]);
                } else if let Some(c) = self.conn_mut(from) {
                    c.sleeping = true;
                }
            }
            T::GrabJob | T::GrabJobUniq | T::GrabJobAll => self.grab(from, p.kind(), now),
            T::WorkData
            | T::WorkWarning
            | T::WorkStatus
            | T::WorkComplete
            | T::WorkFail
            | T::WorkException => self.work(from, p),
            T::AllYours => {}
            // Response types, and requests we do not serve, from a client: a protocol error.
            kind => return Err(ProtoError::Unexpected { magic: p.magic(), kind }),
        }
        Ok(Action::Continue)
    }

    /// Queues a new job, or arms its epoch timer.
    fn start(&mut self, job_id: JobId, run_at: Option<Instant>) {
        let Some(Some(j)) = self.jobs.get(job_id) else { return };
        let (function, priority, serial) = (j.function.clone(), j.priority, j.serial);
        match run_at {
            Some(at) => {
                self.set_waiting(job_id, true);
                self.add_timer(at, Timed::Epoch { job: job_id, serial });
            }
            None => {
                self.set_waiting(job_id, false);
                self.functions.entry(function.clone()).or_default().queues[priority]
                    .push_back(job_id);
                self.wake_workers(&function);
            }
        }
    }

    /// Marks a job as created-but-not-queued, or not, keeping its function's count.
    fn set_waiting(&mut self, job_id: JobId, waiting: bool) {
        let Some(Some(j)) = self.jobs.get_mut(job_id) else { return };
        if j.waiting == waiting {
            return;
        }
        j.waiting = waiting;
        let (function, priority) = (j.function.clone(), j.priority);
        let f = self.functions.entry(function).or_default();
        if waiting {
            f.waiting[priority] += 1;
        } else {
            f.waiting[priority] = f.waiting[priority].saturating_sub(1);
        }
    }

    fn get_status(&mut self, from: ConnId, handle: Bytes) {
        let (known, running, (n, d)) =
            match self.by_handle.get(&handle).and_then(|&j| self.jobs[j].as_ref()) {
                Some(job) => (true, job.worker.is_some(), job.status),
                None => (false, false, (0, 0)),
            };
        let (n, d) = (n.to_string(), d.to_string());
        let flag = |b: bool| if b { &b"1"[..] } else { &b"0"[..] };
        self.send(
            from,
            PacketType::StatusRes,
            &[&handle, flag(known), flag(running), n.as_bytes(), d.as_bytes()],
        );
    }

    fn get_status_unique(&mut self, from: ConnId, unique: Bytes) {
        let job = self
            .by_unique
            .iter()
            .find(|((_, u), _)| *u == unique)
            .and_then(|(_, &j)| self.jobs[j].as_ref());
        let (handle, known, running, (n, d), waiting) = match job {
            Some(job) => {
                let waiting: u32 = job.clients.iter().map(|&(_, n)| n).sum();
                (job.handle.clone(), true, job.worker.is_some(), job.status, waiting as usize)
            }
            None => (Bytes::new(), false, false, (0, 0), 0),
        };
        let (n, d, w) = (n.to_string(), d.to_string(), waiting.to_string());
        let flag = |b: bool| if b { &b"1"[..] } else { &b"0"[..] };
        self.send(
            from,
            PacketType::StatusResUnique,
            &[&handle, flag(known), flag(running), n.as_bytes(), d.as_bytes(), w.as_bytes()],
        );
    }

    /// Forgets a function nobody can do, nobody waits on and nobody configured: registering
    /// random names would otherwise grow the table for ever.
    fn prune(&mut self, function: &Bytes) {
        let unused = self.functions.get(function).is_some_and(|f| {
            f.workers == 0
                && f.running == 0
                && f.queued() == 0
                && f.waiting == [0; PRIORITIES]
                && f.max_queue == [0; PRIORITIES]
        });
        if unused {
            if let Some(key) = self.functions.remove(function).and_then(|f| f.rewake) {
                self.timers.remove(&key);
            }
        }
    }
}

#[path = "core_admin.rs"]
mod admin_rows;
#[path = "core_durable.rs"]
mod durable;
#[path = "core_submit.rs"]
mod submit;
#[path = "core_timers.rs"]
mod timers;
#[path = "core_worker.rs"]
mod worker;

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "core_model.rs"]
mod model;
