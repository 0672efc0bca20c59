//! A model-based randomized test of the in-process bus: random joins, leaves, kills (a handle
//! dropped), multicasts from several members, and members that dispatch at random times and
//! in random modes, with a small flow-control limit. After every run, each member's view (each
//! incarnation of a handle, from its join) is checked against the others:
//!
//! - it starts with its own join;
//! - any two views order the events they share the same way, and between their first and last
//!   shared event they saw exactly the same events (virtual synchrony: one sequence, with
//!   membership changes at the same place in it);
//! - every message a member sent comes back to it, before its own leave.
//!
//! A failure prints its seed; `MODEL_SEED=N` replays one, `MODEL_SEEDS=N` runs more.

mod views;

use std::io::IoSlice;

use groupmsg::{
    Backend, Collect, Cpg, CpgEvent, CsError, Dispatch, GroupName, Guarantee, LocalBus, Reason,
};

/// An event as a view records it, comparable across views: a message by its payload, a
/// membership change by who joined or left and why (pids are never reused on one bus).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Seen {
    Msg(u64),
    Change(Vec<(u32, u8)>, Vec<u32>),
}

fn seen(e: &CpgEvent) -> Seen {
    match e {
        CpgEvent::Deliver { msg, .. } => {
            Seen::Msg(u64::from_be_bytes(msg[..8].try_into().unwrap()))
        }
        CpgEvent::ConfChg { left, joined, members, .. } => {
            let mut changes: Vec<(u32, u8)> =
                left.iter().chain(joined).map(|c| (c.member.pid, c.reason as u8)).collect();
            changes.sort();
            Seen::Change(changes, members.iter().map(|m| m.pid).collect())
        }
        _ => Seen::Msg(u64::MAX),
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One incarnation of a member: its handle, its pid, and what it sent.
struct Slot {
    cpg: Option<Cpg<Collect>>,
    pid: u32,
    joined: bool,
    /// It has joined once: joining again starts a new view on a new handle.
    used: bool,
    sent: Vec<u64>,
}

fn run(seed: u64, steps: usize) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let bus = LocalBus::new();
    bus.set_flow_limit(8);
    let g = GroupName::new("model").unwrap();
    let mut slots: Vec<Slot> = (0..5)
        .map(|_| Slot { cpg: None, pid: 0, joined: false, used: false, sent: vec![] })
        .collect();
    // Finished views: (pid, events, messages it sent).
    let mut views: Vec<(u32, Vec<Seen>, Vec<u64>)> = Vec::new();
    let mut next_msg = 0u64;
    let retire = |slot: &mut Slot, views: &mut Vec<(u32, Vec<Seen>, Vec<u64>)>| {
        if let Some(mut c) = slot.cpg.take() {
            let _ = c.dispatch(Dispatch::All);
            let events = c.handler().events.iter().map(seen).collect();
            views.push((slot.pid, events, std::mem::take(&mut slot.sent)));
        }
        slot.joined = false;
        slot.used = false;
    };
    for _ in 0..steps {
        let i = rng.below(slots.len());
        let slot = &mut slots[i];
        match rng.below(10) {
            0 | 1 if slot.cpg.is_none() || !slot.joined => {
                if slot.cpg.is_none() {
                    let c =
                        Cpg::initialize(Backend::Local(bus.clone()), Collect::default()).unwrap();
                    slot.pid = c.member().pid;
                    slot.cpg = Some(c);
                }
                // A rejoin after a leave is a new view: the old one is finished.
                if slot.used {
                    retire(slot, &mut views);
                    let c =
                        Cpg::initialize(Backend::Local(bus.clone()), Collect::default()).unwrap();
                    slot.pid = c.member().pid;
                    slot.cpg = Some(c);
                }
                slot.cpg.as_mut().unwrap().join(&g).unwrap();
                slot.joined = true;
                slot.used = true;
            }
            2 if slot.joined => {
                slot.cpg.as_mut().unwrap().leave().unwrap();
                slot.joined = false;
            }
            3 => retire(slot, &mut views),
            4..=6 if slot.joined => {
                let c = slot.cpg.as_mut().unwrap();
                match c.mcast_joined(Guarantee::Agreed, &[IoSlice::new(&next_msg.to_be_bytes())]) {
                    Ok(()) => {
                        slot.sent.push(next_msg);
                        next_msg += 1;
                    }
                    Err(CsError::TryAgain) => {}
                    Err(e) => panic!("mcast: {e:?}"),
                }
            }
            _ => {
                if let Some(c) = slot.cpg.as_mut() {
                    let mode = [Dispatch::All, Dispatch::OneNonBlocking][rng.below(2)];
                    match c.dispatch(mode) {
                        Ok(_) | Err(CsError::TryAgain) => {}
                        Err(e) => panic!("dispatch: {e:?}"),
                    }
                }
            }
        }
    }
    for slot in &mut slots {
        retire(slot, &mut views);
    }
    check(&views);
}

fn check(views: &[(u32, Vec<Seen>, Vec<u64>)]) {
    for (pid, events, sent) in views {
        if events.is_empty() {
            continue;
        }
        assert!(
            matches!(&events[0], Seen::Change(c, _) if c.contains(&(*pid, Reason::Join as u8))),
            "view of {pid} does not start with its own join: {:?}",
            &events[..events.len().min(3)]
        );
        let leave = events
            .iter()
            .position(
                |e| matches!(e, Seen::Change(c, _) if c.contains(&(*pid, Reason::Leave as u8))),
            )
            .unwrap_or(events.len());
        for m in sent {
            assert!(
                events[..leave].contains(&Seen::Msg(*m)),
                "{pid} never got its own message {m}"
            );
        }
    }
    let shared: Vec<(u32, &[Seen])> = views.iter().map(|v| (v.0, &v.1[..])).collect();
    views::agree(&shared);
}

#[test]
fn every_member_sees_one_sequence() {
    let steps = 600;
    if let Some(seed) = std::env::var("MODEL_SEED").ok().and_then(|s| s.parse().ok()) {
        return run(seed, steps);
    }
    let seeds: u64 = std::env::var("MODEL_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    for seed in 0..seeds {
        let r = std::panic::catch_unwind(|| run(seed, steps));
        assert!(r.is_ok(), "model test failed with seed {seed} (replay: MODEL_SEED={seed})");
    }
}
