//! The coordinator: starts the servers and the workers, submits the batches, follows them, kills
//! one worker mid-job, stops the rest, and checks and reports what happened.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evcore::{Executor, Handle};
use groupmsg::{CpgEvent, Reason};
use jobclient::{Client, Job, JobEvent, Priority};

use crate::group::{Group, Where};
use crate::options::Opts;
use crate::watch::Watch;
use crate::worker::FUNCTION;
use crate::{check, content, http, report};

/// How a job was submitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    High,
    Normal,
    Background,
}

/// One worker's own summary of a job, from its `done` message.
#[derive(Clone, Debug, Default)]
pub(crate) struct Summary {
    pub(crate) ok: u64,
    pub(crate) missing: u64,
    pub(crate) failed: u64,
    pub(crate) bytes: u64,
}

/// Everything the run observed, for the report.
#[derive(Default)]
pub(crate) struct State {
    /// Worker pids, by worker number.
    pub(crate) workers: Vec<u32>,
    /// Pids that joined the group, and who left how: (pid, reason).
    pub(crate) joined: Vec<u32>,
    pub(crate) left: Vec<(u32, Reason)>,
    /// Job handle to the pids that started it, in order.
    pub(crate) started: HashMap<String, Vec<u32>>,
    /// Job handle to (pid that finished it, its summary).
    pub(crate) done: HashMap<String, (u32, Summary)>,
    /// Jobs done by kind, as the client saw them finish.
    pub(crate) finished: BTreeMap<&'static str, usize>,
    pub(crate) failed_jobs: Vec<String>,
    pub(crate) warnings: usize,
    pub(crate) status_updates: usize,
    /// The worker killed mid-job: (worker number, pid, the job it held).
    pub(crate) victim: Option<(usize, u32, String)>,
    pub(crate) jobs_total: usize,
    /// groupd's log lines.
    pub(crate) groupd_log: Arc<Mutex<Vec<String>>>,
}

fn start_job_server() -> Result<SocketAddr, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("farm-jobd".into())
        .spawn(move || {
            let run = || -> std::io::Result<()> {
                let ex = Executor::new()?;
                let server = jobclient::Server::bind("127.0.0.1:0".parse().unwrap(), &ex.handle())?;
                let _ = tx.send(Ok(server.local_addr()?));
                ex.block_on(server.run())
            };
            if let Err(e) = run() {
                let _ = tx.send(Err(e.to_string()));
            }
        })
        .map_err(|e| e.to_string())?;
    rx.recv().map_err(|e| e.to_string())?
}

/// Keeps what groupd logs (its records' target is `groupmsg::daemon`) for the report.
struct GroupdLog(Arc<Mutex<Vec<String>>>);

impl log::Log for GroupdLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.target().starts_with("groupmsg")
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = record.args().to_string();
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    }
    fn flush(&self) {}
}

fn start_groupd(dir: &Path, log: Arc<Mutex<Vec<String>>>) -> Result<Where, String> {
    let path = dir.join("groupd.sock");
    let daemon = groupmsg::Groupd::bind(&path).map_err(|e| format!("groupd: {e}"))?;
    // What groupd notices (a member's connection reset when it is killed) goes in the report.
    // A logger already installed (a second run in one process) keeps its own.
    if log::set_boxed_logger(Box::new(GroupdLog(log))).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    std::thread::Builder::new()
        .name("farm-groupd".into())
        .spawn(move || daemon.run())
        .map_err(|e| e.to_string())?;
    Ok(Where::Groupd(path))
}

fn spawn_workers(
    o: &Opts,
    jobs: SocketAddr,
    place: &Where,
    dir: &Path,
) -> Result<Vec<(Child, PathBuf)>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    (0..o.workers)
        .map(|w| {
            let out = dir.join(format!("worker-{w}.out"));
            let child = Command::new(&exe)
                .arg("demo-worker")
                .args(["--server", &jobs.to_string(), "--parallel", &o.parallel.to_string()])
                .args(["--name", &format!("farm-worker-{w}")])
                .arg("--out")
                .arg(&out)
                .args(place.to_args())
                .spawn()
                .map_err(|e| format!("starting a worker: {e}"))?;
            Ok((child, out))
        })
        .collect()
}

/// Follows the group: membership, progress, and the kill halfway through.
async fn follow_group(
    group: Group,
    handle: Handle,
    state: Rc<RefCell<State>>,
    children: Rc<RefCell<Vec<(Child, PathBuf)>>>,
    watch: Rc<Watch>,
) {
    let mut go = Vec::new();
    while let Some(ev) = group.next().await {
        note(&ev, &mut state.borrow_mut(), &children, &mut go);
        watch.notify();
        for h in go.drain(..) {
            // Only a failed multicast stops it, and then the workers' jobs time out the run.
            let _ = group.send(&handle, &format!("go {h}")).await;
        }
    }
}

/// Records one group event; a `half` either kills its sender or queues a `go` in `go`.
fn note(
    ev: &CpgEvent,
    st: &mut State,
    children: &RefCell<Vec<(Child, PathBuf)>>,
    go: &mut Vec<String>,
) {
    match ev {
        CpgEvent::ConfChg { joined, left, .. } => {
            st.joined.extend(joined.iter().map(|c| c.member.pid));
            st.left.extend(left.iter().map(|c| (c.member.pid, c.reason)));
        }
        CpgEvent::Deliver { sender, msg, .. } => {
            let text = String::from_utf8_lossy(msg).into_owned();
            let mut words = text.split_whitespace();
            match (words.next(), words.next()) {
                (Some("start"), Some(h)) => {
                    st.started.entry(h.to_string()).or_default().push(sender.pid)
                }
                (Some("done"), Some(h)) => {
                    let v: Vec<u64> = words.filter_map(|w| w.parse().ok()).collect();
                    if let [ok, missing, failed, bytes] = v[..] {
                        st.done.insert(
                            h.to_string(),
                            (sender.pid, Summary { ok, missing, failed, bytes }),
                        );
                    }
                }
                // A worker waits at the halfway point of each job for a word. Once half the
                // jobs have started, the first one there is killed instead, so its job goes
                // back to the queue with half its files written; the others go on.
                (Some("half"), Some(h)) => {
                    let worker = st.workers.iter().position(|&p| p == sender.pid);
                    let due = st.victim.is_none() && st.started.len() * 2 >= st.jobs_total;
                    match worker {
                        Some(w) if due => {
                            let _ = children.borrow_mut()[w].0.kill();
                            st.victim = Some((w, sender.pid, h.to_string()));
                        }
                        _ => go.push(h.to_string()),
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
}

/// Submits one job and follows it to the end.
async fn run_job(
    client: Rc<Client>,
    handle: Handle,
    kind: Kind,
    workload: String,
    state: Rc<RefCell<State>>,
    watch: Rc<Watch>,
) {
    let job = Job::new(FUNCTION, workload);
    let outcome: Result<(), String> = async {
        match kind {
            Kind::Background => {
                let job_ref = client.submit_background(job).await.map_err(|e| e.to_string())?;
                // A background job is followed by asking its status, as gearman_client_job_status
                // users do, until the server no longer knows it.
                loop {
                    handle.sleep(Duration::from_millis(20)).await;
                    let status = client.status(&job_ref).await.map_err(|e| e.to_string())?;
                    if status.running {
                        state.borrow_mut().status_updates += 1;
                    }
                    if !status.known {
                        return Ok(());
                    }
                }
            }
            Kind::High | Kind::Normal => {
                let p = if kind == Kind::High { Priority::High } else { Priority::Normal };
                let mut job_handle =
                    client.submit(job.priority(p)).await.map_err(|e| e.to_string())?;
                loop {
                    match job_handle.next_event().await.map_err(|e| e.to_string())? {
                        JobEvent::Status { .. } => state.borrow_mut().status_updates += 1,
                        JobEvent::Warning(_) => state.borrow_mut().warnings += 1,
                        JobEvent::Complete(_) => return Ok(()),
                        JobEvent::Fail => return Err("failed".into()),
                        JobEvent::Exception(e) => {
                            return Err(String::from_utf8_lossy(&e).into_owned())
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    .await;
    let mut st = state.borrow_mut();
    match outcome {
        Ok(()) => {
            let name = match kind {
                Kind::High => "high",
                Kind::Normal => "normal",
                Kind::Background => "background",
            };
            *st.finished.entry(name).or_default() += 1;
        }
        Err(e) => st.failed_jobs.push(format!("{kind:?} job: {e}")),
    }
    drop(st);
    watch.notify();
}

/// The demo.
pub fn run(args: &[String]) -> Result<(), String> {
    let o = crate::options::parse(args)?;
    let dir = std::env::temp_dir().join(format!("fetch-farm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (http_addr, served) = http::start().map_err(|e| format!("HTTP server: {e}"))?;
    let job_addr = match o.gearmand {
        Some(a) => a,
        None => start_job_server()?,
    };
    let groupd_log = Arc::new(Mutex::new(Vec::new()));
    let place = if o.corosync { Where::Corosync } else { start_groupd(&dir, groupd_log.clone())? };
    let ex = Executor::new().map_err(|e| e.to_string())?;
    let h = ex.handle();
    let group = Group::join(&place, &h)?;
    let me = group.pid();
    let children = Rc::new(RefCell::new(spawn_workers(&o, job_addr, &place, &dir)?));
    let state = Rc::new(RefCell::new(State::default()));
    let jobs_total = o.jobs.unwrap_or((o.workers * 4).max(o.urls / 50)).min(o.urls);
    {
        let mut st = state.borrow_mut();
        st.workers = children.borrow().iter().map(|(c, _)| c.id()).collect();
        st.jobs_total = jobs_total;
        st.groupd_log = groupd_log;
    }
    let watch = Rc::new(Watch::default());
    let follow =
        follow_group(group.clone(), h.clone(), state.clone(), children.clone(), watch.clone());
    h.spawn_local(follow).detach();
    let started = Instant::now();
    let outcome = ex.block_on(async {
        let deadline = h.sleep(Duration::from_secs(240));
        let work = async {
            // Every worker is in the group before any job goes out.
            let workers = state.borrow().workers.clone();
            watch.until(|| workers.iter().all(|p| state.borrow().joined.contains(p))).await;
            let client = Rc::new(
                Client::connect(job_addr, &h)
                    .await
                    .map_err(|e| format!("job server {job_addr}: {e}"))?,
            );
            let urls: Vec<String> =
                (0..o.urls).map(|i| format!("http://{http_addr}/f/{i}")).collect();
            let per_job = o.urls.div_ceil(jobs_total);
            let tasks: Vec<_> = urls
                .chunks(per_job)
                .enumerate()
                .map(|(j, batch)| {
                    let kind = match j % 5 {
                        0 => Kind::High,
                        2 | 4 => Kind::Background,
                        _ => Kind::Normal,
                    };
                    h.spawn_local(run_job(
                        client.clone(),
                        h.clone(),
                        kind,
                        batch.join("\n"),
                        state.clone(),
                        watch.clone(),
                    ))
                })
                .collect();
            let n = tasks.len();
            state.borrow_mut().jobs_total = n;
            for t in tasks {
                t.await;
            }
            let elapsed = started.elapsed();
            // Stop the workers still alive; each finishes, then leaves the group.
            group.send(&h, "shutdown").await?;
            let victim = state.borrow().victim.as_ref().map(|v| v.1);
            let alive: Vec<u32> = workers.iter().copied().filter(|p| Some(*p) != victim).collect();
            watch
                .until(|| {
                    let st = state.borrow();
                    let gone = |p: &u32| st.left.iter().any(|(q, _)| q == p);
                    alive.iter().all(gone) && victim.is_none_or(|v| gone(&v))
                })
                .await;
            Ok::<Duration, String>(elapsed)
        };
        futures_util::pin_mut!(work);
        match futures_util::future::select(work, deadline).await {
            futures_util::future::Either::Left((r, _)) => r,
            futures_util::future::Either::Right(_) => {
                Err("the farm did not finish within 4 minutes".into())
            }
        }
    });
    group.leave();
    let mut outputs = Vec::new();
    let victim = state.borrow().victim.clone();
    for (w, (mut child, out)) in children.borrow_mut().drain(..).enumerate() {
        if outcome.is_err() {
            let _ = child.kill();
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        let killed = victim.as_ref().is_some_and(|v| v.0 == w);
        if !killed && !status.success() && outcome.is_ok() {
            state.borrow_mut().failed_jobs.push(format!("worker {w} exited with {status}"));
        }
        outputs.push((out, killed));
    }
    let elapsed = outcome?;
    let checked = check::outputs(&outputs, o.urls);
    let served = (
        served.requests.load(Ordering::Relaxed),
        served.connections.load(Ordering::Relaxed),
        served.bytes.load(Ordering::Relaxed),
    );
    let ok = report::print(&o, &state.borrow(), &checked, served, elapsed, me, &place);
    let _ = std::fs::remove_dir_all(&dir);
    if ok {
        Ok(())
    } else {
        Err("the fetch farm's checks failed (see above)".into())
    }
}

/// How many of the first `urls` files exist.
pub(crate) fn existing(urls: usize) -> u64 {
    (0..urls).filter(|&i| content::exists(i)).count() as u64
}
