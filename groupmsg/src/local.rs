//! The `Local` backend: process groups inside one process, ordered by one sequencer.
//!
//! Every operation that produces events (join, leave, multicast, a handle dropped) runs under
//! the bus's one lock, and appends its events to the inbox of every member in that moment.
//! The order in which operations take the lock is therefore the single total order every
//! member sees, messages and membership changes alike, which is what CPG's virtual synchrony
//! promises.

use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};

use rustix::event::EventfdFlags;

use crate::{Change, CpgEvent, CsError, GroupName, Member, Reason, MAX_MEMBERS};

/// The largest message the local backend takes whole (corosync fragments above
/// 1,047,552 bytes; here a message is delivered whole or refused with `TooBig`).
pub const LOCAL_MAX_MESSAGE: usize = 64 << 20;

/// A member's undelivered events above which senders are flow-controlled.
pub const DEFAULT_FLOW_LIMIT: usize = 10_000;

/// A member's undelivered message bytes above which senders are flow-controlled, whatever the
/// count: like corosync's IPC buffer, it keeps a fast sender from queueing megabytes that a
/// slow member then reads out of cache (and out of freshly faulted pages).
pub const FLOW_BYTES: usize = 1 << 20;

/// An in-process group bus: the groups that `Cpg` handles on this bus can join. Cheap to
/// clone; clones are the same bus.
#[derive(Clone, Debug)]
pub struct LocalBus {
    inner: Arc<Mutex<Bus>>,
}

#[derive(Debug)]
struct Bus {
    nodeid: u32,
    next_id: u64,
    next_pid: u32,
    handles: HashMap<u64, HandleState>,
    /// Members of each group, in join order.
    groups: HashMap<GroupName, Vec<(Member, u64)>>,
    flow_limit: usize,
    max_message: usize,
}

#[derive(Debug)]
struct HandleState {
    member: Member,
    group: Option<GroupName>,
    inbox: VecDeque<CpgEvent>,
    /// Message bytes in `inbox`.
    inbox_bytes: usize,
    signal: Arc<OwnedFd>,
    signalled: bool,
}

impl Default for LocalBus {
    fn default() -> Self {
        LocalBus::new()
    }
}

impl LocalBus {
    /// A bus for node 1.
    pub fn new() -> LocalBus {
        LocalBus::with_node(1)
    }

    /// A bus whose members report `nodeid`.
    pub fn with_node(nodeid: u32) -> LocalBus {
        let bus = Bus {
            nodeid,
            next_id: 1,
            next_pid: std::process::id(),
            handles: HashMap::new(),
            groups: HashMap::new(),
            flow_limit: DEFAULT_FLOW_LIMIT,
            max_message: LOCAL_MAX_MESSAGE,
        };
        LocalBus { inner: Arc::new(Mutex::new(bus)) }
    }

    /// Sets the backlog above which senders get `TryAgain`.
    pub fn set_flow_limit(&self, limit: usize) {
        self.lock().flow_limit = limit.max(1);
    }

    fn lock(&self) -> MutexGuard<'_, Bus> {
        // Bus operations never call user code under the lock, so a poisoned lock only means a
        // thread panicked elsewhere while holding it between complete updates.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new handle: its id, identity and signal descriptor. Each handle gets its own pid so
    /// that several handles in one process are distinct members.
    pub(crate) fn register(&self) -> Result<(u64, Member, Arc<OwnedFd>), CsError> {
        self.register_as(None)
    }

    /// A new handle with a given pid (groupd uses the peer process's), or the next virtual one.
    pub(crate) fn register_as(
        &self,
        pid: Option<u32>,
    ) -> Result<(u64, Member, Arc<OwnedFd>), CsError> {
        let signal = Arc::new(
            rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
                .map_err(|_| CsError::Library)?,
        );
        let mut bus = self.lock();
        let id = bus.next_id;
        bus.next_id += 1;
        let member = match pid {
            Some(pid) => Member { nodeid: bus.nodeid, pid },
            None => {
                let m = Member { nodeid: bus.nodeid, pid: bus.next_pid };
                bus.next_pid = bus.next_pid.wrapping_add(1);
                m
            }
        };
        bus.handles.insert(
            id,
            HandleState {
                member,
                group: None,
                inbox: VecDeque::new(),
                inbox_bytes: 0,
                signal: signal.clone(),
                signalled: false,
            },
        );
        Ok((id, member, signal))
    }

    pub(crate) fn join(&self, id: u64, name: &GroupName) -> Result<(), CsError> {
        let mut bus = self.lock();
        let member = {
            let h = bus.handles.get(&id).ok_or(CsError::BadHandle)?;
            if h.group.is_some() {
                return Err(CsError::Exist);
            }
            h.member
        };
        let list = bus.groups.entry(name.clone()).or_default();
        if list.len() >= MAX_MEMBERS {
            return Err(CsError::TooManyGroups);
        }
        list.push((member, id));
        bus.handles.get_mut(&id).expect("checked").group = Some(name.clone());
        bus.confchg(name, &[], &[Change { member, reason: Reason::Join }], None);
        Ok(())
    }

    pub(crate) fn leave(&self, id: u64) -> Result<(), CsError> {
        let mut bus = self.lock();
        let h = bus.handles.get_mut(&id).ok_or(CsError::BadHandle)?;
        let name = h.group.take().ok_or(CsError::NotExist)?;
        let member = h.member;
        bus.remove_member(&name, id);
        // The leaver hears of its own leave too, as with corosync.
        bus.confchg(&name, &[Change { member, reason: Reason::Leave }], &[], Some(id));
        Ok(())
    }

    /// Drops a handle; a handle still in a group leaves it as PROCDOWN.
    pub(crate) fn finalize(&self, id: u64) {
        let mut bus = self.lock();
        let Some(h) = bus.handles.remove(&id) else { return };
        if let Some(name) = h.group {
            bus.remove_member(&name, id);
            bus.confchg(&name, &[Change { member: h.member, reason: Reason::ProcDown }], &[], None);
        }
    }

    pub(crate) fn mcast(&self, id: u64, msg: Vec<u8>) -> Result<(), CsError> {
        self.mcast_with(id, msg, true)
    }

    /// A multicast `groupd` has already taken from a client's pipeline: flow control was
    /// the client's to apply when it sent, so the limit is soft here (exceeded by at most one
    /// client window) and an accepted message is never refused after the fact.
    ///
    /// The sender's own copy is queued without raising its signal: `groupd` writes the
    /// sender's events itself right after the request, and a raised signal would only wake
    /// its event thread to find nothing.
    pub(crate) fn mcast_accepted(&self, id: u64, msg: Vec<u8>) -> Result<(), CsError> {
        self.mcast_with(id, msg, false)
    }

    fn mcast_with(&self, id: u64, msg: Vec<u8>, respect_flow: bool) -> Result<(), CsError> {
        let mut bus = self.lock();
        let h = bus.handles.get(&id).ok_or(CsError::BadHandle)?;
        let name = h.group.clone().ok_or(CsError::NotExist)?;
        let sender = h.member;
        if msg.len() > bus.max_message {
            return Err(CsError::TooBig);
        }
        if respect_flow && bus.flow_enabled(&name) {
            return Err(CsError::TryAgain);
        }
        let Bus { groups, handles, .. } = &mut *bus;
        let Some(list) = groups.get(&name) else { return Ok(()) };
        // Every member but the last gets a copy; the last gets the message itself.
        let mut event = Some(CpgEvent::Deliver { group: name.clone(), sender, msg });
        for (i, &(_, m)) in list.iter().enumerate() {
            let e = if i + 1 == list.len() {
                event.take().expect("taken once, by the last member")
            } else {
                event.clone().expect("present until the last member")
            };
            let quiet = m == id && !respect_flow;
            Bus::push_to(handles, m, e, quiet);
        }
        Ok(())
    }

    pub(crate) fn flow_control(&self, id: u64) -> bool {
        let bus = self.lock();
        bus.handles.get(&id).and_then(|h| h.group.clone()).is_some_and(|g| bus.flow_enabled(&g))
    }

    pub(crate) fn pop(&self, id: u64) -> Result<Option<CpgEvent>, CsError> {
        let mut bus = self.lock();
        let h = bus.handles.get_mut(&id).ok_or(CsError::BadHandle)?;
        let event = h.inbox.pop_front();
        h.inbox_bytes -= event.as_ref().map_or(0, event_bytes);
        if h.inbox.is_empty() && (h.signalled || event.is_none()) {
            // Level semantics for the descriptor: readable exactly while events are pending.
            // Also drained when nothing was pending, for a wake-up a stopper left behind.
            let mut buf = [0u8; 8];
            let _ = rustix::io::read(&*h.signal, &mut buf);
            h.signalled = false;
        }
        Ok(event)
    }

    pub(crate) fn pending(&self, id: u64) -> Result<usize, CsError> {
        self.lock().handles.get(&id).map(|h| h.inbox.len()).ok_or(CsError::BadHandle)
    }

    pub(crate) fn members(&self, id: u64) -> Result<Vec<Member>, CsError> {
        let bus = self.lock();
        let h = bus.handles.get(&id).ok_or(CsError::BadHandle)?;
        let name = h.group.as_ref().ok_or(CsError::NotExist)?;
        Ok(bus.groups.get(name).map(|l| l.iter().map(|m| m.0).collect()).unwrap_or_default())
    }

    pub(crate) fn groups(&self) -> Vec<(GroupName, Vec<Member>)> {
        let bus = self.lock();
        let mut out: Vec<_> =
            bus.groups.iter().map(|(g, l)| (g.clone(), l.iter().map(|m| m.0).collect())).collect();
        out.sort();
        out
    }
}

impl Bus {
    fn remove_member(&mut self, name: &GroupName, id: u64) {
        if let Some(list) = self.groups.get_mut(name) {
            list.retain(|m| m.1 != id);
            if list.is_empty() {
                self.groups.remove(name);
            }
        }
    }

    /// Sends a membership change to every member of `name`, and to `also` (a leaver).
    fn confchg(&mut self, name: &GroupName, left: &[Change], joined: &[Change], also: Option<u64>) {
        let list: Vec<(Member, u64)> = self.groups.get(name).cloned().unwrap_or_default();
        let event = CpgEvent::ConfChg {
            group: name.clone(),
            members: list.iter().map(|m| m.0).collect(),
            left: left.to_vec(),
            joined: joined.to_vec(),
        };
        for (_, id) in &list {
            self.push(*id, event.clone());
        }
        if let Some(id) = also {
            self.push(id, event);
        }
    }

    fn push(&mut self, id: u64, event: CpgEvent) {
        Bus::push_to(&mut self.handles, id, event, false);
    }

    /// Queues an event and raises the handle's signal, unless `quiet` (a `groupd` reader
    /// takes its own member's events at once).
    fn push_to(handles: &mut HashMap<u64, HandleState>, id: u64, event: CpgEvent, quiet: bool) {
        let Some(h) = handles.get_mut(&id) else { return };
        h.inbox_bytes += event_bytes(&event);
        h.inbox.push_back(event);
        if !h.signalled && !quiet {
            let _ = rustix::io::write(&*h.signal, &1u64.to_ne_bytes());
            h.signalled = true;
        }
    }

    /// Whether some member of the group is too far behind.
    fn flow_enabled(&self, name: &GroupName) -> bool {
        self.groups.get(name).is_some_and(|l| {
            l.iter().any(|(_, id)| {
                self.handles.get(id).is_some_and(|h| {
                    h.inbox.len() >= self.flow_limit || h.inbox_bytes >= FLOW_BYTES
                })
            })
        })
    }
}

/// The message bytes an event holds (membership changes count as none).
fn event_bytes(e: &CpgEvent) -> usize {
    match e {
        CpgEvent::Deliver { msg, .. } => msg.len(),
        _ => 0,
    }
}
