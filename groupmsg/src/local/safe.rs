//! SAFE delivery on the bus (`groupd`'s): acknowledgements, stability, and where a member
//! that dies first is reported.
//!
//! A SAFE message gets an id, growing in the group's total order, and an entry in the bus's
//! `unstable` map with the handles it went to. A connection sends it to its client as a
//! probe when it reaches the head of that member's inbox; the client acknowledges receipt;
//! the message stays at the head, and everything behind it waits, until every member it went
//! to has acknowledged it. Then each member is told to deliver it (`Popped::SafeDeliver`).

use std::time::{Duration, Instant};

use super::{Bus, HandleState, LocalBus, Queued};
use crate::{Change, CpgEvent, GroupName, Member, Reason};

impl LocalBus {
    /// Turns on SAFE delivery (`groupd` does): a SAFE message is delivered to any member only
    /// once every member it went to has acknowledged receiving it ([`Popped::SafeProbe`],
    /// [`LocalBus::safe_ack`]), and everything after it in the group's order waits behind
    /// it. While a group has such a message, a join answers `TryAgain` (as corosync's does
    /// during a membership change), or, from `groupd`, waits ([`LocalBus::join_queued`]); a
    /// leave goes in the order as always (the leaver still
    /// acknowledges what it was sent before); a member that dies first is reported gone
    /// before the message.
    pub(crate) fn set_stability(&self, on: bool) {
        self.lock().stability = on;
    }

    /// `groupd`'s join: one refused because the group has SAFE messages not yet stable waits
    /// instead of answering `TryAgain` to its client. While it waits the group's flow control
    /// reads as on, so each sender stops after at most one window of multicasts; the SAFE
    /// messages in flight become stable; the waiting handle's signal is raised; its retry gets
    /// in, and flow control clears. Before, a join answered `TryAgain` whenever a SAFE message
    /// was in flight, and an unbroken stream of them kept a joiner out for as long as it ran.
    pub(crate) fn join_queued(&self, id: u64, name: &GroupName) -> Result<(), crate::CsError> {
        self.join_with(id, name, true)
    }

    /// For `groupd`'s timer while a member waits at a SAFE message: removes whoever has held
    /// one of its group's unacknowledged past the stall limit.
    pub(crate) fn safe_stall_check(&self, id: u64) {
        let mut bus = self.lock();
        if let Some(g) = bus.handles.get(&id).and_then(|h| h.group.clone()) {
            if bus.evict_stalled(&g) {
                self.inner.1.notify_all();
            }
        }
    }

    /// `id` has received the SAFE message `sid` it was sent as a probe. Anything else (an id
    /// not probed to this member, or stable already) is ignored: no client can make a message
    /// stable for the others by acknowledging what it was not sent.
    pub(crate) fn safe_ack(&self, id: u64, sid: u64) {
        let mut bus = self.lock();
        let probed = bus.handles.get(&id).is_some_and(|h| h.probed.contains(&sid));
        let Some(u) = bus.unstable.get_mut(&sid).filter(|_| probed) else { return };
        u.waiting.remove(&id);
        if u.waiting.is_empty() {
            bus.stabilize(sid);
        }
    }
}

impl Bus {
    /// Handle `id` (`member`) is gone: its process died, or it was removed. Still in group
    /// `group`, the others hear PROCDOWN. Under SAFE delivery, for each group with a SAFE
    /// message it had yet to acknowledge, its removal goes just before the first such message
    /// instead (see [`Bus::remove_before`]), so that every member hears it gone before that
    /// message is delivered, never after: as PROCDOWN in its group, as the leave it was in a
    /// group it had left after that message.
    pub(super) fn departed(&mut self, group: Option<&GroupName>, id: u64, member: Member) {
        let mut first: Vec<(u64, GroupName)> = Vec::new();
        let mut stable = Vec::new();
        for (&sid, u) in &mut self.unstable {
            if u.waiting.remove(&id) {
                match first.iter_mut().find(|(_, g)| *g == u.group) {
                    Some(f) => f.0 = f.0.min(sid),
                    None => first.push((sid, u.group.clone())),
                }
                if u.waiting.is_empty() {
                    stable.push(sid);
                }
            }
        }
        first.sort();
        // From its removal on, it is no member of that group.
        for (f, g) in &first {
            for (_, u) in self.unstable.iter_mut().filter(|(&s, u)| s >= *f && u.group == *g) {
                u.members.retain(|m| m.1 != id);
            }
        }
        for (f, g) in &first {
            let reason = if group == Some(g) { Reason::ProcDown } else { Reason::Leave };
            self.remove_before(*f, id, Change { member, reason });
        }
        if let Some(g) = group.filter(|g| !first.iter().any(|f| f.1 == **g)) {
            self.confchg(g, &[Change { member, reason: Reason::ProcDown }], &[], None);
        }
        for sid in stable {
            self.stabilize(sid);
        }
    }

    /// Puts the removal of handle `gone` (`change`) just before the SAFE message `sid` in
    /// every inbox that holds it. Nothing after a group's unstable SAFE message has been
    /// delivered to anyone (every member waits at it, and joins wait until none is left), so
    /// that part of the order may still be rewritten, the same way in every inbox: the
    /// removal goes before the message; after it, the member's messages to the group go (no
    /// member delivered them, and its own delivery, the only way a sender learns a message
    /// is stable, never came), so does its own leave if it had left, and it leaves the
    /// member lists of the group's membership changes that follow. One pass per inbox.
    fn remove_before(&mut self, sid: u64, gone: u64, change: Change) {
        let Some(u) = self.unstable.get(&sid) else { return };
        let group = u.group.clone();
        let event = CpgEvent::ConfChg {
            group: group.clone(),
            members: u.members.iter().map(|m| m.0).collect(),
            left: vec![change],
            joined: Vec::new(),
        };
        let receivers = u.receivers.clone();
        let limit = self.flow_limit;
        let mut dropped = Vec::new();
        let mut cleared = false;
        for id in receivers {
            let Some(h) = self.handles.get_mut(&id) else { continue };
            let Some(at) = h
                .inbox
                .iter()
                .position(|q| matches!(q, Queued::Deliver { safe: Some(s), .. } if *s == sid))
            else {
                continue;
            };
            let old = std::mem::take(&mut h.inbox);
            let mut inbox = std::collections::VecDeque::with_capacity(old.len() + 1);
            let mut bytes = 0;
            for (i, mut q) in old.into_iter().enumerate() {
                if i == at {
                    inbox.push_back(Queued::Other(event.clone()));
                }
                if i >= at {
                    let keep = match &mut q {
                        Queued::Deliver { group: g, from, safe, .. } if *from == gone => {
                            if *g == group {
                                dropped.extend(*safe);
                            }
                            *g != group
                        }
                        Queued::Leave { event: CpgEvent::ConfChg { group: g, .. }, leaver }
                            if *leaver == gone && *g == group =>
                        {
                            false
                        }
                        Queued::Other(CpgEvent::ConfChg { group: g, members, .. })
                        | Queued::Leave {
                            event: CpgEvent::ConfChg { group: g, members, .. },
                            ..
                        } if *g == group => {
                            if let Some(k) = members.iter().position(|m| *m == change.member) {
                                members.remove(k);
                            }
                            true
                        }
                        _ => true,
                    };
                    if !keep {
                        continue;
                    }
                }
                bytes += q.bytes();
                inbox.push_back(q);
            }
            h.inbox = inbox;
            h.inbox_bytes = bytes;
            // Probes of messages that went are forgotten; the look-ahead starts over.
            let present: std::collections::HashMap<u64, usize> = h
                .inbox
                .iter()
                .filter_map(|q| match q {
                    Queued::Deliver { safe: Some(s), msg, .. } => Some((*s, msg.len())),
                    _ => None,
                })
                .collect();
            h.probed.retain(|s| present.contains_key(s));
            h.probed_bytes = h.probed.iter().map(|s| present[s]).sum();
            h.scanned = 0;
            // What was dropped may take it back under the flow threshold.
            if h.over_since.is_some() && h.inbox.len() < limit && bytes < super::FLOW_BYTES {
                h.over_since = None;
                cleared = true;
            }
            // Its head may have been the held message: the change goes out now.
            h.signal.raise();
            h.signalled = true;
        }
        for s in dropped {
            self.unstable.remove(&s);
        }
        self.wake_joiners(&group);
        if cleared {
            self.wake_flow_waiters(&group);
        }
    }

    /// Handle `id` waits to join `name` (once, however often it asks).
    pub(super) fn wait_to_join(&mut self, id: u64, name: &GroupName) {
        let list = self.join_waiting.entry(name.clone()).or_default();
        if !list.contains(&id) {
            list.push(id);
        }
    }

    /// Handle `id` joined `name`: it waits no more, and flow control may clear.
    pub(super) fn joined(&mut self, id: u64, name: &GroupName) {
        let Some(list) = self.join_waiting.get_mut(name) else { return };
        list.retain(|&w| w != id);
        if list.is_empty() {
            self.join_waiting.remove(name);
            self.wake_flow_waiters(name);
        }
    }

    /// Handle `id` is gone: whatever joins it waited for, it waits no more.
    pub(super) fn withdraw_joins(&mut self, id: u64) {
        let names: Vec<GroupName> = self
            .join_waiting
            .iter()
            .filter(|(_, l)| l.contains(&id))
            .map(|(g, _)| g.clone())
            .collect();
        for name in names {
            self.joined(id, &name);
        }
    }

    /// After a SAFE message of `name` left the unstable set: when it was the last, the joins
    /// waiting for the group may go in, and their handles are woken to try.
    fn wake_joiners(&mut self, name: &GroupName) {
        let Some(list) = self.join_waiting.get(name) else { return };
        if self.unstable.values().any(|u| u.group == *name) {
            return;
        }
        for id in list.clone() {
            if let Some(h) = self.handles.get(&id) {
                h.signal.raise();
            }
        }
    }

    /// The SAFE message `sid` has every acknowledgement it waits for: the members it went to
    /// may take it, and what waits behind it. Their backlogs grew while they waited for
    /// others, not by their own slowness: the stall clock starts again for them.
    pub(super) fn stabilize(&mut self, sid: u64) {
        let Some(u) = self.unstable.remove(&sid) else { return };
        let now = Instant::now();
        for id in u.receivers {
            if let Some(h) = self.handles.get_mut(&id) {
                if h.over_since.is_some() {
                    h.over_since = Some(now);
                }
                h.signal.raise();
                h.signalled = true;
            }
        }
        self.wake_joiners(&u.group);
    }

    /// The SAFE message `h` (handle `id`) waits at for the others' acknowledgements, having
    /// given its own: its backlog is theirs to answer for.
    pub(super) fn held_for_others(&self, id: u64, h: &HandleState) -> Option<u64> {
        let Some(Queued::Deliver { safe: Some(sid), .. }) = h.inbox.front() else { return None };
        let u = self.unstable.get(sid)?;
        (h.probed.contains(sid) && !u.waiting.contains(&id)).then_some(*sid)
    }

    /// The handles still to acknowledge a SAFE message of `name` sent longer than `max` ago
    /// (members, or members that left after it): they hold the group's delivery.
    pub(super) fn safe_stalled(&self, name: &GroupName, now: Instant, max: Duration) -> Vec<u64> {
        // Oldest first: the scan stops at the first message still within the limit, so a
        // multicast pays nothing for the SAFE messages in flight that are not stale.
        let mut out: Vec<u64> = self
            .unstable
            .values()
            .take_while(|u| now.saturating_duration_since(u.sent) > max)
            .filter(|u| u.group == *name)
            .flat_map(|u| u.waiting.iter().copied())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The handles a SAFE message `sid` still waits for.
    pub(super) fn safe_waiting(&self, sid: u64) -> Vec<u64> {
        self.unstable.get(&sid).map(|u| u.waiting.iter().copied().collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::{Popped, Signal, PROBE_AHEAD};
    use super::*;

    /// Three handles of a bus with SAFE delivery, joined to one group, their joins taken.
    fn three() -> (LocalBus, [u64; 3], GroupName) {
        let bus = LocalBus::new();
        bus.set_stability(true);
        let g = GroupName::new("s").unwrap();
        let ids = [0, 1, 2].map(|_| bus.register_with(None, Signal::Call(Arc::new(|| {}))).0);
        for id in ids {
            bus.join(id, &g).unwrap();
        }
        for id in ids {
            while bus.pop_raw(id).unwrap().is_some() {}
        }
        (bus, ids, g)
    }

    #[test]
    fn a_waiting_joiner_removed_for_stalling_holds_flow_control_no_more() {
        let (bus, [a, _, c], g) = three();
        bus.mcast_accepted(a, b"x".to_vec(), true).unwrap();
        // The clock past x's sending, so that a limit of zero has passed.
        let sent = Instant::now();
        while Instant::now() <= sent {}
        // c leaves owing x, and asks to join again: its join waits for x.
        bus.leave(c).unwrap();
        assert_eq!(bus.join_queued(c, &g), Err(crate::CsError::TryAgain));
        assert!(bus.flow_control(a), "a waiting join holds flow control on");
        // c never acknowledges: past the stall limit it is removed.
        bus.set_max_stall(Duration::ZERO);
        bus.safe_stall_check(a);
        assert!(!bus.lock().handles.contains_key(&c), "the staller was removed");
        assert!(!bus.flow_control(a), "its wait went with it");
        assert!(bus.lock().join_waiting.is_empty());
        // And its finalize afterwards (the daemon's connection ending) is harmless.
        bus.finalize(c);
    }

    /// What `id` can take now, as text: `probe:MSG`, `safe`, `msg:MSG`, `-N` for a change
    /// with N members left.
    fn take(bus: &LocalBus, id: u64) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(p) = bus.pop_raw(id).unwrap() {
            out.push(match p {
                Popped::Held => break,
                Popped::SafeProbe { msg, .. } => format!("probe:{}", String::from_utf8_lossy(&msg)),
                Popped::SafeDeliver(_) => "safe".into(),
                Popped::Deliver { msg, .. } => format!("msg:{}", String::from_utf8_lossy(&msg)),
                Popped::Event(CpgEvent::ConfChg { members, .. }) => format!("-{}", members.len()),
                other => format!("{other:?}"),
            });
        }
        out
    }

    fn probe_id(bus: &LocalBus, id: u64) -> u64 {
        *bus.lock().handles[&id].probed.front().expect("probed")
    }

    #[test]
    fn a_dead_members_messages_after_the_held_one_go_with_it() {
        let (bus, [a, b, c], _) = three();
        bus.mcast_accepted(a, b"x".to_vec(), true).unwrap();
        bus.mcast_accepted(b, b"w".to_vec(), false).unwrap();
        bus.mcast_accepted(c, b"v".to_vec(), false).unwrap();
        assert_eq!(take(&bus, a), ["probe:x"]);
        assert_eq!(take(&bus, c), ["probe:x"]);
        let x = probe_id(&bus, a);
        bus.safe_ack(a, x);
        bus.safe_ack(c, x);
        // Still held: b has not acknowledged (nor been sent the probe).
        assert!(take(&bus, a).is_empty());
        bus.finalize(b);
        // b is gone before x; its w, after x, went with it; c's v stays.
        for id in [a, c] {
            assert_eq!(take(&bus, id), ["-2", "safe", "msg:v"]);
        }
        assert!(bus.lock().unstable.is_empty());
    }

    /// What `id` can take now, membership changes with their left members' reasons.
    fn changes(bus: &LocalBus, id: u64) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(p) = bus.pop_raw(id).unwrap() {
            out.push(match p {
                Popped::Held => break,
                Popped::Event(CpgEvent::ConfChg { members, left, .. }) => {
                    format!(
                        "{:?}/{}",
                        left.iter().map(|c| c.reason).collect::<Vec<_>>(),
                        members.len()
                    )
                }
                Popped::SafeProbe { .. } => "probe".into(),
                Popped::SafeDeliver(_) => "safe".into(),
                Popped::Deliver { .. } => "msg".into(),
                other => format!("{other:?}"),
            });
        }
        out
    }

    #[test]
    fn a_member_that_left_after_the_message_and_died_before_acknowledging_it_left_before_it() {
        let (bus, [a, b, c], _) = three();
        bus.mcast_accepted(a, b"x".to_vec(), true).unwrap();
        for id in [a, c] {
            assert_eq!(take(&bus, id), ["probe:x"]);
        }
        let x = probe_id(&bus, a);
        bus.safe_ack(a, x);
        bus.safe_ack(c, x);
        // b leaves (after x in the order) and, before it has read x, dies.
        bus.leave(b).unwrap();
        bus.finalize(b);
        // Its leave moved before x, with the member list of that moment (a and c), and the
        // leave that was queued after x is gone.
        for id in [a, c] {
            assert_eq!(changes(&bus, id), ["[Leave]/2", "safe"]);
        }
    }

    #[test]
    fn later_changes_lose_a_member_whose_removal_went_before_them() {
        let (bus, [a, b, c], g) = three();
        let d = bus.register_with(None, Signal::Call(Arc::new(|| {}))).0;
        bus.join(d, &g).unwrap();
        for id in [a, b, c, d] {
            while bus.pop_raw(id).unwrap().is_some() {}
        }
        bus.mcast_accepted(a, b"x".to_vec(), true).unwrap();
        for id in [a, b, d] {
            assert_eq!(take(&bus, id), ["probe:x"]);
        }
        let x = probe_id(&bus, a);
        for id in [a, b, d] {
            bus.safe_ack(id, x);
        }
        // d leaves after x (members then: a, b, c); then c dies without having read x.
        bus.leave(d).unwrap();
        bus.finalize(c);
        // At a and b: c's removal before x (a, b, d left), x, d's leave (a, b left: c is gone
        // from it too). d sees the same, its leave last.
        for id in [a, b, d] {
            assert_eq!(changes(&bus, id), ["[ProcDown]/3", "safe", "[Leave]/2"]);
        }
    }

    #[test]
    fn a_backlog_that_a_removal_dropped_no_longer_counts_as_a_stall() {
        let (bus, [a, b, c], _) = three();
        bus.set_flow_limit(3);
        bus.mcast_accepted(c, b"x".to_vec(), true).unwrap();
        for i in 0..3 {
            bus.mcast_accepted(b, format!("m{i}").into_bytes(), false).unwrap();
        }
        assert!(bus.lock().handles[&a].over_since.is_some());
        // b dies before x is stable: its messages after x go, and a is under the limit.
        bus.finalize(b);
        assert!(bus.lock().handles[&a].over_since.is_none(), "a stall clock left running");
    }

    #[test]
    fn a_member_that_left_and_never_acknowledges_is_removed_after_the_stall_limit() {
        let (bus, [a, b, c], _) = three();
        let limit = Duration::from_millis(20);
        bus.set_max_stall(limit);
        bus.mcast_accepted(a, b"x".to_vec(), true).unwrap();
        assert_eq!(take(&bus, c), ["probe:x"]);
        let x = probe_id(&bus, c);
        bus.safe_ack(c, x);
        // b leaves without reading, then stays: only the stall check can end its hold.
        bus.leave(b).unwrap();
        bus.safe_stall_check(a);
        assert!(bus.lock().handles.contains_key(&b), "removed before the limit");
        // The limit is what is tested: let it pass.
        std::thread::sleep(limit * 2);
        bus.safe_stall_check(a);
        assert!(!bus.lock().handles.contains_key(&b), "the leaver was not removed");
        assert_eq!(changes(&bus, c), ["[Leave]/2", "safe"]);
    }

    #[test]
    fn a_death_with_a_wait_in_a_group_it_left_is_told_in_both_groups() {
        let (bus, [a, b, c], g) = three();
        let g2 = GroupName::new("other").unwrap();
        let d = bus.register_with(None, Signal::Call(Arc::new(|| {}))).0;
        bus.join(d, &g2).unwrap();
        while bus.pop_raw(d).unwrap().is_some() {}
        bus.mcast_accepted(a, b"x".to_vec(), true).unwrap();
        // b leaves g before it has read x, joins g2 (nothing waits there) and dies.
        bus.leave(b).unwrap();
        bus.join(b, &g2).unwrap();
        while bus.pop_raw(d).unwrap().is_some() {}
        bus.finalize(b);
        // In g: its leave, before x. In g2: PROCDOWN.
        assert_eq!(take(&bus, c), ["-2", "probe:x"]);
        assert_eq!(changes(&bus, d), ["[ProcDown]/1"]);
        let _ = g;
    }

    #[test]
    fn a_leave_by_another_handle_of_the_same_process_stays() {
        let bus = LocalBus::new();
        bus.set_stability(true);
        let g = GroupName::new("s").unwrap();
        let a = bus.register_with(None, Signal::Call(Arc::new(|| {}))).0;
        // Two handles of one process: one `Member`.
        let b1 = bus.register_with(Some(7), Signal::Call(Arc::new(|| {}))).0;
        let b2 = bus.register_with(Some(7), Signal::Call(Arc::new(|| {}))).0;
        for id in [a, b1, b2] {
            bus.join(id, &g).unwrap();
        }
        for id in [a, b1, b2] {
            while bus.pop_raw(id).unwrap().is_some() {}
        }
        bus.mcast_accepted(a, b"x".to_vec(), true).unwrap();
        assert_eq!(take(&bus, b2), ["probe:x"]);
        bus.safe_ack(b2, probe_id(&bus, b2));
        // b2 leaves after x; b1 dies without having read x.
        bus.leave(b2).unwrap();
        bus.finalize(b1);
        // b1's removal before x; b2's leave after it, still there. (x became stable before
        // the sender was sent its probe, so it has it whole.)
        assert_eq!(changes(&bus, a), ["[ProcDown]/2", "msg", "[Leave]/1"]);
    }

    #[test]
    fn an_acknowledgement_of_what_was_not_probed_counts_for_nothing() {
        let (bus, [a, b, c], _) = three();
        bus.mcast_accepted(a, b"x".to_vec(), true).unwrap();
        assert_eq!(take(&bus, a), ["probe:x"]);
        let x = probe_id(&bus, a);
        // b acknowledges before it was sent the probe, and twice; then an unknown id.
        bus.safe_ack(b, x);
        bus.safe_ack(b, x);
        bus.safe_ack(b, x + 100);
        bus.safe_ack(a, x);
        bus.safe_ack(c, x);
        assert!(take(&bus, a).is_empty(), "stable without b's receipt");
        assert_eq!(take(&bus, b), ["probe:x"]);
        assert_eq!(take(&bus, c), ["probe:x"]);
        bus.safe_ack(b, x);
        assert!(take(&bus, a).is_empty(), "c's acknowledgement came before its probe");
        bus.safe_ack(c, x);
        for id in [a, b, c] {
            assert_eq!(take(&bus, id), ["safe"]);
        }
    }

    #[test]
    fn several_safe_messages_are_delivered_in_order_each_after_its_acknowledgements() {
        let (bus, ids, _) = three();
        bus.mcast_accepted(ids[0], b"x1".to_vec(), true).unwrap();
        bus.mcast_accepted(ids[1], b"m".to_vec(), false).unwrap();
        bus.mcast_accepted(ids[2], b"x2".to_vec(), true).unwrap();
        // The head's probe, and x2's ahead of its turn: their acknowledgements overlap.
        for id in ids {
            assert_eq!(take(&bus, id), ["probe:x1", "probe:x2"]);
        }
        let x1 = probe_id(&bus, ids[0]);
        let x2 = *bus.lock().handles[&ids[0]].probed.back().unwrap();
        assert!(x2 > x1, "ids grow in the order");
        // x2 acknowledged first by everyone still waits for x1: the order holds.
        ids.iter().for_each(|&id| bus.safe_ack(id, x2));
        for id in ids {
            assert!(take(&bus, id).is_empty());
        }
        ids.iter().for_each(|&id| bus.safe_ack(id, x1));
        for id in ids {
            assert_eq!(take(&bus, id), ["safe", "msg:m", "safe"]);
        }
        assert!(bus.lock().unstable.is_empty());
    }

    #[test]
    fn probes_ahead_stop_at_the_look_ahead() {
        let (bus, [a, b, _], _) = three();
        for i in 0..PROBE_AHEAD + 10 {
            bus.mcast_accepted(a, format!("x{i}").into_bytes(), true).unwrap();
        }
        // The head's probe and PROBE_AHEAD more, then nothing until the head is delivered.
        assert_eq!(take(&bus, b).len(), PROBE_AHEAD + 1);
        assert_eq!(bus.lock().handles[&b].probed.len(), PROBE_AHEAD + 1);
    }
}
