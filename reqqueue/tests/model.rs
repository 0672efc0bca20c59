//! Random sequences of operations checked against a plain model of tevent_queue: who is
//! triggered, in which order, the length, the running flag, and who is refused by a close.
//!
//! The operations include `untrigger` of an entered barrier (then `start` triggers it again)
//! and deadlines (`Entry::timeout` on a timer the test fires), on waiting and running
//! requests alike.
//!
//! The harness re-polls a future only when its waker fired, so a missing wake-up shows up as a
//! divergence from the model, not just a wrong state. Beside the model, a trace hook counts
//! attaches and detaches (their difference is always the length), and `idle()` is ready
//! exactly when the model's queue is empty.

mod support;

use reqqueue::{Blocker, Guard, Queue, QueueError, TracePoint};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::{Gate, Probe};

/// A tiny deterministic generator (xorshift64*), so a failure names its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Trigger,
    Barrier,
    Blocker,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Add,
    AddOptimizeEmpty,
    Enter,
    Block,
    Stop,
    Start,
    Finish(usize),
    Release(usize),
    DropWaiting(usize),
    Close,
    TryEnter,
    TryAdd(usize),
    Untrigger(usize),
    AddTimed,
    Expire(usize),
}

/// An entry of the model: its id, kind, and whether it was triggered.
type ModelEntry = (usize, Kind, bool);

/// The model: entries in order with whether they were triggered.
#[derive(Default)]
struct Model {
    entries: Vec<ModelEntry>,
    running: bool,
    closed: bool,
    /// Ids in the order they were triggered (started or entered).
    triggered: Vec<usize>,
    refused: Vec<usize>,
    timed_out: Vec<usize>,
}

impl Model {
    fn settle(&mut self) {
        if let Some(head) = self.entries.first_mut() {
            if self.running && !head.2 {
                head.2 = true;
                self.triggered.push(head.0);
            }
        }
    }
}

type Trig = Probe<
    reqqueue::Entry<
        Box<dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>>,
        std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>,
    >,
>;

type Boxed = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// A request with a deadline: its trigger's gate, and the timer's.
type Timed = Probe<reqqueue::Entry<Box<dyn FnOnce() -> Boxed>, Boxed, reqqueue::Local, Boxed>>;

/// A barrier's guard given back once the queue triggers it again after `untrigger`.
type Again = Probe<std::pin::Pin<Box<dyn std::future::Future<Output = Result<Guard, QueueError>>>>>;

/// A live entry; the `Option<usize>` is the wake count at the last poll (`None`: never polled).
enum Live {
    Trigger(Trig, Gate, Option<usize>),
    Timed(Timed, Gate, Gate, Option<usize>),
    Untriggered(Again, Option<usize>),
    Barrier(Probe<reqqueue::Enter>, Option<usize>),
    // Held only to keep the queue held; released by dropping.
    Guard(#[allow(dead_code)] Guard),
    Blocker(#[allow(dead_code)] Blocker),
}

/// The run's outcome: how many barriers were triggered again after `untrigger`, and how many
/// requests timed out (so the test can tell that those paths ran).
fn run(seed: u64, steps: usize) -> Result<(usize, usize), String> {
    let mut rng = Rng(seed.max(1));
    let q = Queue::new("model");
    let (attached, detached) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (a, d) = (attached.clone(), detached.clone());
    q.set_trace(move |point, _| {
        match point {
            TracePoint::Attach => a.fetch_add(1, Ordering::SeqCst),
            TracePoint::Detach => d.fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
    });
    let mut model = Model { running: true, ..Model::default() };
    let started = Rc::new(RefCell::new(Vec::new()));
    let mut live: Vec<(usize, Live)> = Vec::new();
    let mut seen_triggered: Vec<usize> = Vec::new();
    let mut refused: Vec<usize> = Vec::new();
    let mut timed_out: Vec<usize> = Vec::new();
    let mut log = Vec::new();
    for step in 0..steps {
        let pick = rng.below(100);
        let op = match pick {
            0..=19 => Op::Add,
            20..=27 => Op::AddOptimizeEmpty,
            28..=35 => Op::Enter,
            36..=39 => Op::Block,
            40..=44 => Op::Stop,
            45..=52 => Op::Start,
            53..=69 => Op::Finish(rng.below(8)),
            70..=79 => Op::Release(rng.below(8)),
            80..=88 => Op::DropWaiting(rng.below(8)),
            89..=91 => Op::TryEnter,
            92..=94 => Op::TryAdd(rng.below(5)),
            95 => Op::Untrigger(rng.below(8)),
            96 | 97 => Op::AddTimed,
            98 => Op::Expire(rng.below(8)),
            _ => Op::Close,
        };
        log.push(op);
        let id = step;
        match op {
            Op::Add | Op::AddOptimizeEmpty => {
                let gate = Gate::default();
                let (g, s) = (gate.clone(), started.clone());
                let trigger: Box<
                    dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>,
                > = Box::new(move || {
                    s.borrow_mut().push(id);
                    Box::pin(async move { g.wait().await })
                });
                let entry =
                    if op == Op::Add { q.add(trigger) } else { q.add_optimize_empty(trigger) };
                live.push((id, Live::Trigger(Probe::new(entry), gate, None)));
                if model.closed {
                    model.refused.push(id);
                } else {
                    model.entries.push((id, Kind::Trigger, false));
                }
            }
            Op::Enter => {
                live.push((id, Live::Barrier(Probe::new(q.enter()), None)));
                if model.closed {
                    model.refused.push(id);
                } else {
                    model.entries.push((id, Kind::Barrier, false));
                }
            }
            Op::Block => match q.block() {
                Ok(b) => {
                    live.push((id, Live::Blocker(b)));
                    model.entries.push((id, Kind::Blocker, true));
                }
                Err(QueueError::Closed) if model.closed => {}
                Err(e) => return Err(format!("block: {e}")),
            },
            Op::Stop => {
                q.stop();
                model.running = false;
            }
            Op::Start => {
                q.start();
                model.running = true;
            }
            Op::Finish(n) => {
                // Finish the n-th live triggered request, if any: the model drops it.
                let running: Vec<usize> = model
                    .entries
                    .iter()
                    .filter(|e| e.1 == Kind::Trigger && e.2)
                    .map(|e| e.0)
                    .collect();
                if let Some(&target) = running.get(n % running.len().max(1)) {
                    if let Some((_, Live::Trigger(_, gate, _) | Live::Timed(_, gate, _, _))) =
                        live.iter().find(|(i, _)| *i == target)
                    {
                        gate.open();
                    }
                    model.entries.retain(|e| e.0 != target);
                }
            }
            Op::Release(n) => {
                let held: Vec<usize> = live
                    .iter()
                    .filter(|(_, l)| {
                        matches!(l, Live::Guard(_) | Live::Blocker(_) | Live::Untriggered(..))
                    })
                    .map(|(i, _)| *i)
                    .collect();
                if let Some(&target) = held.get(n % held.len().max(1)) {
                    live.retain(|(i, _)| *i != target);
                    model.entries.retain(|e| e.0 != target);
                }
            }
            Op::DropWaiting(n) => {
                let waiting: Vec<usize> =
                    model.entries.iter().filter(|e| !e.2).map(|e| e.0).collect();
                if let Some(&target) = waiting.get(n % waiting.len().max(1)) {
                    live.retain(|(i, _)| *i != target);
                    model.entries.retain(|e| e.0 != target);
                }
            }
            Op::TryEnter => {
                // At once only when the queue is empty, running and open; else nothing.
                let may = !model.closed && model.running && model.entries.is_empty();
                match q.try_enter() {
                    Some(g) if may => {
                        live.push((id, Live::Guard(g)));
                        model.entries.push((id, Kind::Barrier, true));
                        model.triggered.push(id);
                        seen_triggered.push(id);
                    }
                    None if !may => {}
                    got => {
                        return Err(format!(
                            "try_enter: {:?} where the model says {may}",
                            got.is_some()
                        ))
                    }
                }
            }
            Op::TryAdd(limit) => {
                let gate = Gate::default();
                let (g, s) = (gate.clone(), started.clone());
                let trigger: Box<
                    dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>,
                > = Box::new(move || {
                    s.borrow_mut().push(id);
                    Box::pin(async move { g.wait().await })
                });
                let full = !model.closed && model.entries.len() >= limit;
                match q.try_add(limit, trigger) {
                    Err(QueueError::AtLimit) if full => {}
                    Ok(entry) if !full => {
                        live.push((id, Live::Trigger(Probe::new(entry), gate, None)));
                        if model.closed {
                            model.refused.push(id);
                        } else {
                            model.entries.push((id, Kind::Trigger, false));
                        }
                    }
                    other => {
                        return Err(format!(
                            "try_add({limit}): {:?} where full is {full}",
                            other.err()
                        ))
                    }
                }
            }
            Op::Untrigger(n) => {
                let guards: Vec<usize> = live
                    .iter()
                    .filter(|(_, l)| matches!(l, Live::Guard(_)))
                    .map(|(i, _)| *i)
                    .collect();
                if let Some(&target) = guards.get(n % guards.len().max(1)) {
                    let may =
                        !model.running && model.entries.first().is_some_and(|e| e.0 == target);
                    let at = live.iter().position(|(i, _)| *i == target).expect("live");
                    let (_, Live::Guard(mut g)) = live.remove(at) else { unreachable!() };
                    match g.untrigger() {
                        Ok(()) if may => {
                            model.entries[0].2 = false;
                            // Not triggered in a closed queue: refused, as waiting entries
                            // are by the close.
                            if model.closed {
                                model.entries.remove(0);
                                model.refused.push(target);
                            }
                            let again: std::pin::Pin<Box<dyn std::future::Future<Output = _>>> =
                                Box::pin(async move { g.retriggered().await.map(|()| g) });
                            live.insert(at, (target, Live::Untriggered(Probe::new(again), None)));
                        }
                        Err(_) if !may => live.insert(at, (target, Live::Guard(g))),
                        got => {
                            return Err(format!(
                                "untrigger: {:?} where the model says {may}",
                                got.is_ok()
                            ))
                        }
                    }
                }
            }
            Op::AddTimed => {
                let (gate, timer) = (Gate::default(), Gate::default());
                let (g, s, t) = (gate.clone(), started.clone(), timer.clone());
                let trigger: Box<dyn FnOnce() -> Boxed> = Box::new(move || {
                    s.borrow_mut().push(id);
                    Box::pin(async move { g.wait().await })
                });
                let deadline: Boxed = Box::pin(async move { t.wait().await });
                let entry = q.add(trigger).timeout(deadline);
                live.push((id, Live::Timed(Probe::new(entry), gate, timer, None)));
                if model.closed {
                    model.refused.push(id);
                } else {
                    model.entries.push((id, Kind::Trigger, false));
                }
            }
            Op::Expire(n) => {
                // The n-th live request with a deadline that the model still holds (waiting
                // or running): its timer fires, and it leaves the queue, timed out.
                let timed: Vec<usize> = live
                    .iter()
                    .filter(|(i, l)| {
                        matches!(l, Live::Timed(..)) && model.entries.iter().any(|e| e.0 == *i)
                    })
                    .map(|(i, _)| *i)
                    .collect();
                if let Some(&target) = timed.get(n % timed.len().max(1)) {
                    if let Some((_, Live::Timed(_, _, timer, _))) =
                        live.iter().find(|(i, _)| *i == target)
                    {
                        timer.open();
                    }
                    model.entries.retain(|e| e.0 != target);
                    model.timed_out.push(target);
                }
            }
            Op::Close => {
                q.close();
                model.closed = true;
                let (keep, gone): (Vec<ModelEntry>, Vec<ModelEntry>) =
                    model.entries.iter().partition(|e| e.2);
                model.refused.extend(gone.iter().map(|e| e.0));
                model.entries = keep;
            }
        }
        model.settle();
        // Settle the system: poll what is new or was woken since its last poll, until nothing
        // moves. A future whose waker never fired is not polled again.
        let due = |p_wakes: usize, last: Option<usize>| last.is_none_or(|l| p_wakes > l);
        loop {
            let mut moved = false;
            let mut finished = Vec::new();
            for (i, l) in live.iter_mut() {
                let mut entered = None;
                match l {
                    Live::Trigger(p, _, last) if due(p.wakes(), *last) => {
                        *last = Some(p.wakes());
                        if p.poll() {
                            moved = true;
                            finished.push(*i);
                            match p.out.take().unwrap() {
                                Ok(()) => {}
                                Err(QueueError::Closed) => refused.push(*i),
                                Err(e) => return Err(format!("entry {i}: {e}")),
                            }
                        }
                    }
                    Live::Timed(p, _, _, last) if due(p.wakes(), *last) => {
                        *last = Some(p.wakes());
                        if p.poll() {
                            moved = true;
                            finished.push(*i);
                            match p.out.take().unwrap() {
                                Ok(()) => {}
                                Err(QueueError::Closed) => refused.push(*i),
                                Err(QueueError::TimedOut) => timed_out.push(*i),
                                Err(e) => return Err(format!("entry {i}: {e}")),
                            }
                        }
                    }
                    Live::Untriggered(p, last) if due(p.wakes(), *last) => {
                        *last = Some(p.wakes());
                        if p.poll() {
                            moved = true;
                            entered = took_guard(p.out.take().unwrap(), *i, "retriggered")?;
                        }
                    }
                    Live::Barrier(p, last) if due(p.wakes(), *last) => {
                        *last = Some(p.wakes());
                        if p.poll() {
                            moved = true;
                            entered = took_guard(p.out.take().unwrap(), *i, "enter")?;
                        }
                    }
                    _ => {}
                }
                match entered {
                    Some(Some(g)) => {
                        seen_triggered.push(*i);
                        *l = Live::Guard(g);
                    }
                    // Refused by a close.
                    Some(None) => {
                        refused.push(*i);
                        finished.push(*i);
                    }
                    None => {}
                }
            }
            live.retain(|(i, _)| !finished.contains(i));
            if !moved {
                break;
            }
        }
        // Triggered order: starts of requests and entries of barriers, merged by the order the
        // model triggered them. Compare each kind's subsequence.
        let starts = started.borrow().clone();
        let model_trig: Vec<usize> =
            model.triggered.iter().copied().filter(|id| log_kind(&log, *id) == Some(0)).collect();
        let model_enter: Vec<usize> =
            model.triggered.iter().copied().filter(|id| log_kind(&log, *id) == Some(1)).collect();
        let ctx = || format!("seed {seed} step {step} op {op:?}\nlog {log:?}");
        if starts != model_trig {
            return Err(format!("{}: started {starts:?}, model {model_trig:?}", ctx()));
        }
        if seen_triggered != model_enter {
            return Err(format!("{}: entered {seen_triggered:?}, model {model_enter:?}", ctx()));
        }
        if q.len() != model.entries.len() {
            return Err(format!("{}: len {} vs model {}", ctx(), q.len(), model.entries.len()));
        }
        if q.is_running() != model.running {
            return Err(format!("{}: running flag differs", ctx()));
        }
        let traced =
            attached.load(Ordering::SeqCst) as isize - detached.load(Ordering::SeqCst) as isize;
        if traced != q.len() as isize {
            return Err(format!("{}: attached - detached = {traced}, len {}", ctx(), q.len()));
        }
        if Probe::new(q.idle()).poll() != model.entries.is_empty() {
            return Err(format!("{}: idle() disagrees with the model", ctx()));
        }
        let mut r = refused.clone();
        let mut m = model.refused.clone();
        r.sort();
        m.sort();
        if r != m {
            return Err(format!("{}: refused {r:?} vs model {m:?}", ctx()));
        }
        let mut t = timed_out.clone();
        let mut mt = model.timed_out.clone();
        t.sort();
        mt.sort();
        if t != mt {
            return Err(format!("{}: timed out {t:?} vs model {mt:?}", ctx()));
        }
    }
    let again = model.triggered.len() - {
        let mut t = model.triggered.clone();
        t.sort_unstable();
        t.dedup();
        t.len()
    };
    Ok((again, timed_out.len()))
}

/// What a barrier's wait (or its wait to be triggered again) gave: its guard, or `None` when
/// a close refused it; any other error fails the run.
fn took_guard(
    out: Result<Guard, QueueError>,
    id: usize,
    what: &str,
) -> Result<Option<Option<Guard>>, String> {
    match out {
        Ok(g) => Ok(Some(Some(g))),
        Err(QueueError::Closed) => Ok(Some(None)),
        Err(e) => Err(format!("{what} {id}: {e}")),
    }
}

/// 0 for a request (add or add_optimize_empty), 1 for a barrier, by the op that created `id`.
fn log_kind(log: &[Op], id: usize) -> Option<u8> {
    match log.get(id)? {
        Op::Add | Op::AddOptimizeEmpty | Op::TryAdd(_) | Op::AddTimed => Some(0),
        Op::Enter | Op::TryEnter => Some(1),
        _ => None,
    }
}

#[test]
fn random_operation_sequences_match_the_model() {
    let (mut again, mut timed_out) = (0, 0);
    for seed in 1..=400u64 {
        match run(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 120) {
            Ok((a, t)) => {
                again += a;
                timed_out += t;
            }
            Err(e) => panic!("{e}"),
        }
    }
    // The seeds reach both paths: barriers triggered again, requests timed out.
    assert!(again > 0 && timed_out > 0, "retriggered {again}, timed out {timed_out}");
}
