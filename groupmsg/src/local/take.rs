//! Taking events off a handle's inbox: what a local handle pops, and what `groupd` pops to
//! send (SAFE probes and their delivery included).

use super::{Bus, LocalBus, Queued, FLOW_BYTES, PROBE_AHEAD, PROBE_AHEAD_BYTES};
use crate::{CpgEvent, CsError, GroupName, Member};

/// What [`LocalBus::pop_raw`] takes off an inbox.
#[derive(Debug)]
pub(crate) enum Popped {
    /// A message, as the bus holds it (shared by every inbox it went to): the daemon
    /// encodes it from here, with no copy of its own.
    Deliver {
        group: GroupName,
        sender: Member,
        msg: bytes::Bytes,
    },
    Event(CpgEvent),
    FlowCleared,
    /// A SAFE message to acknowledge ([`LocalBus::safe_ack`]), and keep, not deliver: it
    /// stays at the head of the inbox, everything after it waiting behind it.
    SafeProbe {
        id: u64,
        group: GroupName,
        sender: Member,
        msg: bytes::Bytes,
    },
    /// The SAFE message of this id, probed before, is stable: deliver it now.
    SafeDeliver(u64),
    /// Nothing can be taken until the SAFE message at the head, probed already, is stable.
    Held,
}

impl LocalBus {
    /// The next event for `id`; flow-control wake-ups are skipped (a local handle's signal
    /// has done their work by waking it).
    pub(crate) fn pop(&self, id: u64) -> Result<Option<CpgEvent>, CsError> {
        loop {
            match self.pop_raw(id)? {
                Some(Popped::Deliver { group, sender, msg }) => {
                    return Ok(Some(CpgEvent::Deliver { group, sender, msg: Vec::from(msg) }))
                }
                Some(Popped::Event(e)) => return Ok(Some(e)),
                Some(Popped::FlowCleared) => {}
                // A handle made on a bus with SAFE delivery (`Groupd::bus`) in this process:
                // receiving is acknowledging, and the message is kept until it is stable.
                Some(Popped::SafeProbe { id: sid, group, sender, msg }) => {
                    let mut bus = self.lock();
                    if let Some(h) = bus.handles.get_mut(&id) {
                        h.local_safe =
                            Some(CpgEvent::Deliver { group, sender, msg: Vec::from(msg) });
                    }
                    drop(bus);
                    self.safe_ack(id, sid);
                }
                Some(Popped::SafeDeliver(_)) => {
                    let kept = self.lock().handles.get_mut(&id).and_then(|h| h.local_safe.take());
                    if let Some(e) = kept {
                        return Ok(Some(e));
                    }
                }
                Some(Popped::Held) | None => return Ok(None),
            }
        }
    }

    /// The next thing in `id`'s inbox, flow-control wake-ups included.
    pub(crate) fn pop_raw(&self, id: u64) -> Result<Option<Popped>, CsError> {
        let mut bus = self.lock();
        let limit = bus.flow_limit;
        let Bus { handles, unstable, .. } = &mut *bus;
        let h = handles.get_mut(&id).ok_or(CsError::BadHandle)?;
        if std::mem::take(&mut h.flow_cleared) {
            if h.inbox.is_empty() {
                h.signal.clear();
                h.signalled = false;
            }
            return Ok(Some(Popped::FlowCleared));
        }
        // A SAFE message at the head goes out once to be acknowledged, then waits there, with
        // everything behind it, until every member it went to has acknowledged it. While it
        // waits the signal stays raised (pushes behind it need not raise it again), and the
        // message becoming stable raises it anew.
        // While it waits, the SAFE messages behind it are sent as probes too (up to
        // PROBE_AHEAD of them and PROBE_AHEAD_BYTES), so that their acknowledgements overlap
        // instead of costing a round trip through every member each.
        let mut deliver_safe = None;
        if let Some(Queued::Deliver { safe: Some(sid), group, sender, msg, .. }) = h.inbox.front() {
            let sid = *sid;
            let probed = h.probed.contains(&sid);
            if unstable.contains_key(&sid) {
                if !probed {
                    let popped = Popped::SafeProbe {
                        id: sid,
                        group: group.clone(),
                        sender: *sender,
                        msg: msg.clone(),
                    };
                    h.probed.push_front(sid);
                    h.probed_bytes += msg.len();
                    h.scanned = h.scanned.max(1);
                    return Ok(Some(popped));
                }
                while h.scanned < h.inbox.len()
                    && h.probed.len() <= PROBE_AHEAD
                    && h.probed_bytes < PROBE_AHEAD_BYTES
                {
                    let at = h.scanned;
                    h.scanned += 1;
                    if let Queued::Deliver { safe: Some(s), group, sender, msg, .. } = &h.inbox[at]
                    {
                        if unstable.contains_key(s) && !h.probed.contains(s) {
                            let popped = Popped::SafeProbe {
                                id: *s,
                                group: group.clone(),
                                sender: *sender,
                                msg: msg.clone(),
                            };
                            h.probed.push_back(*s);
                            h.probed_bytes += msg.len();
                            return Ok(Some(popped));
                        }
                    }
                }
                return Ok(Some(Popped::Held));
            }
            // Stable. Every member it went to acknowledged a probe of it, so this one was
            // probed; were it not, it gets the message whole, as an ordinary delivery.
            if probed {
                h.probed.retain(|p| *p != sid);
                h.probed_bytes = h.probed_bytes.saturating_sub(msg.len());
                deliver_safe = Some(sid);
            }
        }
        let over = |len: usize, bytes: usize| len >= limit || bytes >= FLOW_BYTES;
        let was_over = over(h.inbox.len(), h.inbox_bytes);
        let event = h.inbox.pop_front();
        h.inbox_bytes -= event.as_ref().map_or(0, Queued::bytes);
        h.scanned = h.scanned.saturating_sub(1);
        // Someone may be waiting for flow control to clear: tell them when this member's
        // backlog crosses back under the threshold.
        if was_over && !over(h.inbox.len(), h.inbox_bytes) {
            h.over_since = None;
            self.inner.1.notify_all();
            if let Some(g) = h.group.clone() {
                bus.wake_flow_waiters(&g);
            }
        }
        let h = bus.handles.get_mut(&id).ok_or(CsError::BadHandle)?;
        if h.inbox.is_empty() && (h.signalled || event.is_none()) {
            // Level semantics for the descriptor: readable exactly while events are pending.
            // Also drained when nothing was pending, for a wake-up a stopper left behind.
            h.signal.clear();
            h.signalled = false;
        }
        Ok(event.map(|e| match deliver_safe {
            Some(sid) => Popped::SafeDeliver(sid),
            None => e.into_popped(),
        }))
    }

    /// Events waiting for a local handle. A flow-control notice has done its work by waking
    /// the handle, so it is dropped here (with the signal, when nothing else waits).
    pub(crate) fn pending(&self, id: u64) -> Result<usize, CsError> {
        let mut bus = self.lock();
        let h = bus.handles.get_mut(&id).ok_or(CsError::BadHandle)?;
        if std::mem::take(&mut h.flow_cleared) && h.inbox.is_empty() {
            h.signal.clear();
            h.signalled = false;
        }
        Ok(h.inbox.len())
    }
}
