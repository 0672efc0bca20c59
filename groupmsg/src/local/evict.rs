//! Removing members that fall behind: past the backlog bounds, or holding flow control on (or
//! a SAFE message unacknowledged) for longer than the stall limit. Each removal is a
//! membership change in the group's one order.

use std::time::Instant;

use super::{Bus, FLOW_BYTES};
use crate::GroupName;

impl Bus {
    /// Removes every member of `name` whose backlog passed the bounds, as PROCDOWN for the
    /// others; each removal is one membership change, in the same total order as all else.
    pub(super) fn evict_behind(&mut self, name: &GroupName) -> bool {
        let (max_events, max_bytes) = self.max_backlog;
        let mut behind: Vec<u64> = Vec::new();
        for &(_, id) in self.groups.get(name).map(Vec::as_slice).unwrap_or_default() {
            let Some(h) = self.handles.get(&id) else { continue };
            if h.inbox.len() > max_events || h.inbox_bytes > max_bytes {
                match self.held_for_others(id, h) {
                    // Its backlog grew behind a SAFE message others have not acknowledged:
                    // they are what holds the group, and they go.
                    Some(sid) => behind.extend(self.safe_waiting(sid)),
                    None => behind.push(id),
                }
            }
        }
        behind.sort_unstable();
        behind.dedup();
        let any = !behind.is_empty();
        for id in behind {
            self.evict(name, id);
        }
        any
    }

    /// Removes every member of `name` that has held flow control on for longer than the stall
    /// limit; true if any was.
    pub(super) fn evict_stalled(&mut self, name: &GroupName) -> bool {
        let now = Instant::now();
        let max = self.max_stall;
        let limit = self.flow_limit;
        let mut stalled: Vec<u64> = self
            .groups
            .get(name)
            .map(|l| {
                l.iter()
                    .filter(|(_, id)| {
                        self.handles.get(id).is_some_and(|h| {
                            // Over the threshold now, for longer than the limit, and not
                            // held at a SAFE message by others' acknowledgements.
                            let over = h.inbox.len() >= limit || h.inbox_bytes >= FLOW_BYTES;
                            over && self.held_for_others(*id, h).is_none()
                                && h.over_since
                                    .is_some_and(|t| now.saturating_duration_since(t) > max)
                        })
                    })
                    .map(|&(_, id)| id)
                    .collect()
            })
            .unwrap_or_default();
        // And whoever has held a SAFE message of the group unacknowledged past the limit.
        stalled.extend(self.safe_stalled(name, now, max));
        stalled.sort_unstable();
        stalled.dedup();
        let any = !stalled.is_empty();
        for id in stalled {
            self.evict(name, id);
        }
        any
    }

    /// Removes one member for falling behind: PROCDOWN for the others, its handle gone.
    /// (A member that left `name` and holds a SAFE message of it unacknowledged is removed the
    /// same way.)
    pub(super) fn evict(&mut self, name: &GroupName, id: u64) {
        let Some(h) = self.handles.remove(&id) else { return };
        self.withdraw_joins(id);
        if let Some(g) = &h.group {
            self.remove_member(g, id);
        }
        if let Some(f) = &h.on_evict {
            (f.0)();
        }
        // Its dispatcher may be waiting on the signal: wake it to find the handle gone.
        h.signal.raise();
        self.departed(h.group.as_ref(), id, h.member);
        self.wake_flow_waiters(name);
        if let Some(g) = h.group.as_ref().filter(|g| *g != name) {
            self.wake_flow_waiters(g);
        }
    }
}
