//! The `Local` backend: process groups inside one process, ordered by one sequencer.
//!
//! Every operation that produces events (join, leave, multicast, a handle dropped) runs under
//! the bus's one lock, and appends its events to the inbox of every member in that moment.
//! The order in which operations take the lock is therefore the single total order every
//! member sees, messages and membership changes alike, which is what CPG's virtual synchrony
//! promises.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::event::EventfdFlags;

use crate::{
    Change, CpgEvent, CsError, GroupName, Iteration, IterationEntry, Member, ModelFlags, Reason,
    RingId, MAX_MEMBERS,
};

mod evict;
mod idhash;
mod safe;
mod take;

use idhash::IdHash;
pub(crate) use take::Popped;

/// The largest message the local backend takes whole (corosync fragments above
/// 1,047,552 bytes; here a message is delivered whole or refused with `TooBig`).
pub const LOCAL_MAX_MESSAGE: usize = 64 << 20;

/// SAFE messages a member is sent as probes behind the one at the head of its inbox, while
/// that one waits: their acknowledgements overlap.
pub(crate) const PROBE_AHEAD: usize = 64;

/// Bytes of SAFE messages probed ahead of the head (at least one message is, whatever its
/// size): a client keeps each until it is delivered.
pub(crate) const PROBE_AHEAD_BYTES: usize = 1 << 20;

/// A member's undelivered events above which senders are flow-controlled.
pub const DEFAULT_FLOW_LIMIT: usize = 10_000;

/// A member's undelivered message bytes above which senders are flow-controlled, whatever the
/// count: like corosync's IPC buffer, it keeps a fast sender from queueing megabytes that a
/// slow member then reads out of cache (and out of freshly faulted pages).
pub const FLOW_BYTES: usize = 1 << 20;

/// Undelivered events a member may have before it is removed from its group (reported to the
/// others as PROCDOWN): ten times the flow-control threshold. Senders that respect flow
/// control never get near it; it bounds memory when some do not.
pub const MAX_BACKLOG: usize = 10 * DEFAULT_FLOW_LIMIT;

/// Undelivered message bytes a member may have before it is removed as for [`MAX_BACKLOG`]:
/// two of the largest messages.
pub const MAX_BACKLOG_BYTES: usize = 2 * LOCAL_MAX_MESSAGE;

/// How long one member may hold flow control on for its group (its backlog over the
/// threshold, because it does not dispatch) before it is removed as for [`MAX_BACKLOG`]: a
/// member that stopped reading must not stall the others for ever.
pub const MAX_STALL: Duration = Duration::from_secs(10);

/// An in-process group bus: the groups that `Cpg` handles on this bus can join. Cheap to
/// clone; clones are the same bus.
///
/// # Limits
///
/// At most [`MAX_MEMBERS`](crate::MAX_MEMBERS) members per group (then `TooManyGroups`, as
/// corosync), messages of [`LOCAL_MAX_MESSAGE`] bytes (then `TooBig`), and a backlog per
/// member of [`MAX_BACKLOG`] events or [`MAX_BACKLOG_BYTES`] bytes: a member that falls that
/// far behind is removed from its group, the others see it leave as PROCDOWN, and its handle
/// answers `BadHandle` from then on (a `groupd` client is disconnected). Flow control starts
/// long before, at [`DEFAULT_FLOW_LIMIT`] events or [`FLOW_BYTES`] bytes; a member that holds
/// it on for longer than [`MAX_STALL`] is removed the same way, so one member that stopped
/// reading cannot stall its group.
#[derive(Clone, Debug)]
pub struct LocalBus {
    inner: Arc<(Mutex<Bus>, Condvar)>,
}

#[derive(Debug)]
struct Bus {
    nodeid: u32,
    next_id: u64,
    next_pid: u32,
    handles: HashMap<u64, HandleState, IdHash>,
    /// Members of each group, in join order.
    groups: HashMap<GroupName, Vec<(Member, u64)>>,
    flow_limit: usize,
    max_message: usize,
    /// Backlog bounds: events, bytes.
    max_backlog: (usize, usize),
    max_stall: Duration,
    /// SAFE delivery (`groupd`'s bus): a SAFE message waits in every inbox until each member
    /// it went to has acknowledged receiving it. Off (a bus inside one process, where
    /// receiving is delivering), SAFE is AGREED.
    stability: bool,
    next_safe: u64,
    /// SAFE messages some member has not acknowledged yet, by id (ids grow in the group's
    /// total order).
    /// In id order, which is the order they were sent in: the oldest first, so the stall
    /// check, run on every multicast, looks only at those past the limit.
    unstable: BTreeMap<u64, Unstable>,
    /// `groupd`'s joins waiting for a group's SAFE messages to become stable, by group: while
    /// any waits, the group's flow control reads as on, so its senders pause and the join
    /// gets in (see `local/safe.rs`).
    join_waiting: HashMap<GroupName, Vec<u64>>,
}

/// A SAFE message not every member has acknowledged.
#[derive(Debug)]
struct Unstable {
    group: GroupName,
    /// The group's members just before it in the order: those it went to, less those whose
    /// removal has since been put before it.
    members: Vec<(Member, u64)>,
    /// The handles it went to (woken when it becomes stable).
    receivers: Vec<u64>,
    /// Those of them that have not acknowledged it.
    waiting: HashSet<u64>,
    /// When it was sent: a member still to acknowledge it past the stall limit has stalled.
    sent: Instant,
}

#[derive(Debug)]
struct HandleState {
    member: Member,
    group: Option<GroupName>,
    inbox: VecDeque<Queued>,
    /// Message bytes in `inbox`.
    inbox_bytes: usize,
    signal: Signal,
    signalled: bool,
    /// Since when its backlog has been over the flow-control threshold.
    over_since: Option<Instant>,
    /// Called (under the bus lock) when the handle is removed for its backlog: `groupd`
    /// ends the member's connection task.
    on_evict: Option<EvictHook>,
    /// The model flags it was initialized with.
    flags: ModelFlags,
    /// Whether its initial totem configuration went out (once per handle, as corosync).
    totem_sent: bool,
    /// Whether it was told flow control is on (a refused multicast, or `groupd`'s
    /// acknowledgement): it hears, through its signal, when flow control clears.
    flow_waiting: bool,
    /// Flow control cleared since it was told: reported by the next pop, ahead of events
    /// (a notice, not an event in the group's order; not counted as backlog).
    flow_cleared: bool,
    /// SAFE messages of its inbox it was sent to acknowledge and has not had delivered yet,
    /// in order: the head's, and up to [`PROBE_AHEAD`] behind it.
    probed: VecDeque<u64>,
    /// Bytes of the messages in `probed`.
    probed_bytes: usize,
    /// Inbox entries from the front already looked at for SAFE messages to probe ahead.
    scanned: usize,
    /// A handle of this process on a bus with SAFE delivery (`Groupd::bus`): the message it
    /// acknowledged at once, delivered when stable.
    local_safe: Option<CpgEvent>,
}

/// An event waiting in an inbox. A message is shared by every member's inbox (one buffer,
/// counted references), not copied per member, so a backlog costs its bytes once however big
/// the group; each member gets its own `Vec` as it takes the event (the last one without a
/// copy).
#[derive(Debug)]
enum Queued {
    /// A message from handle `from`; `safe` is its SAFE id while the bus keeps SAFE
    /// delivery.
    Deliver {
        group: GroupName,
        sender: Member,
        from: u64,
        msg: bytes::Bytes,
        safe: Option<u64>,
    },
    Other(CpgEvent),
    /// The membership change of handle `leaver`'s own leave (several handles of one process
    /// are one `Member`: this says which one left).
    Leave {
        event: CpgEvent,
        leaver: u64,
    },
}

impl Queued {
    fn bytes(&self) -> usize {
        match self {
            Queued::Deliver { msg, .. } => msg.len(),
            Queued::Other(_) | Queued::Leave { .. } => 0,
        }
    }

    fn into_popped(self) -> Popped {
        match self {
            Queued::Deliver { group, sender, msg, .. } => Popped::Deliver { group, sender, msg },
            Queued::Other(e) | Queued::Leave { event: e, .. } => Popped::Event(e),
        }
    }
}

/// How a handle hears that its inbox has something: an eventfd (a `Cpg` handle polls it), or
/// a call (`groupd`'s connection tasks, woken on the reactor without a descriptor each).
#[derive(Clone)]
pub(crate) enum Signal {
    Fd(Arc<OwnedFd>),
    Call(Arc<dyn Fn() + Send + Sync>),
}

impl std::fmt::Debug for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signal::Fd(fd) => f.debug_tuple("Fd").field(fd).finish(),
            Signal::Call(_) => f.write_str("Call"),
        }
    }
}

impl Signal {
    fn raise(&self) {
        match self {
            Signal::Fd(fd) => {
                let _ = rustix::io::write(&**fd, &1u64.to_ne_bytes());
            }
            Signal::Call(f) => f(),
        }
    }

    fn clear(&self) {
        if let Signal::Fd(fd) = self {
            let mut buf = [0u8; 8];
            let _ = rustix::io::read(&**fd, &mut buf);
        }
    }
}

/// What to do when a handle is removed for its backlog.
struct EvictHook(Box<dyn Fn() + Send>);

impl std::fmt::Debug for EvictHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EvictHook")
    }
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
            handles: HashMap::default(),
            groups: HashMap::new(),
            flow_limit: DEFAULT_FLOW_LIMIT,
            max_message: LOCAL_MAX_MESSAGE,
            max_backlog: (MAX_BACKLOG, MAX_BACKLOG_BYTES),
            max_stall: MAX_STALL,
            stability: false,
            next_safe: 0,
            join_waiting: HashMap::new(),
            unstable: BTreeMap::new(),
        };
        LocalBus { inner: Arc::new((Mutex::new(bus), Condvar::new())) }
    }

    /// Sets how long one member may hold flow control on before it is removed ([`MAX_STALL`]
    /// by default; `groupd --max-stall`).
    pub fn set_max_stall(&self, limit: Duration) {
        self.lock().max_stall = limit;
    }

    /// Sets the backlog (events, bytes) past which a member is removed from its group; at
    /// least the flow limit. For tests and tuning.
    pub fn set_max_backlog(&self, events: usize, bytes: usize) {
        let mut bus = self.lock();
        let floor = bus.flow_limit;
        bus.max_backlog = (events.max(floor), bytes.max(1));
    }

    /// Sets the backlog above which senders get `TryAgain`.
    pub fn set_flow_limit(&self, limit: usize) {
        self.lock().flow_limit = limit.max(1);
    }

    fn lock(&self) -> MutexGuard<'_, Bus> {
        // Bus operations never call user code under the lock, so a poisoned lock only means a
        // thread panicked elsewhere while holding it between complete updates.
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits while flow control is on for `id`'s group, at most `limit`; true when it is
    /// off (or `id` is gone). The blocking retry helper waits with it.
    pub(crate) fn wait_flow(&self, id: u64, limit: Duration) -> bool {
        let bus = self.lock();
        let on = |b: &mut Bus| {
            b.handles.get(&id).and_then(|h| h.group.clone()).is_some_and(|g| b.flow_enabled(&g))
        };
        let (mut bus, _) = self
            .inner
            .1
            .wait_timeout_while(bus, limit, |b| on(b))
            .unwrap_or_else(|e| e.into_inner());
        if on(&mut bus) {
            if let Some(g) = bus.handles.get(&id).and_then(|h| h.group.clone()) {
                if bus.evict_stalled(&g) {
                    self.inner.1.notify_all();
                }
            }
        }
        !on(&mut bus)
    }

    /// Whether flow control is on for `id`'s group even after removing a member that has held
    /// it on for longer than the stall limit (as [`flow_control`](Self::flow_control), `id`
    /// is woken when it clears). `groupd` asks it for senders waiting on flow control.
    pub(crate) fn flow_after_stall_check(&self, id: u64) -> bool {
        let mut bus = self.lock();
        let Some(g) = bus.handles.get(&id).and_then(|h| h.group.clone()) else { return false };
        if bus.flow_enabled(&g) && bus.evict_stalled(&g) {
            self.inner.1.notify_all();
        }
        drop(bus);
        self.flow_control(id)
    }

    /// Sets what to do when `id` is removed for its backlog.
    pub(crate) fn on_evict(&self, id: u64, f: impl Fn() + Send + 'static) {
        if let Some(h) = self.lock().handles.get_mut(&id) {
            h.on_evict = Some(EvictHook(Box::new(f)));
        }
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
        let (id, member) = self.register_with(pid, Signal::Fd(signal.clone()));
        Ok((id, member, signal))
    }

    /// A new handle told of its events by `signal`; its pid as in [`register_as`].
    pub(crate) fn register_with(&self, pid: Option<u32>, signal: Signal) -> (u64, Member) {
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
                signal,
                signalled: false,
                over_since: None,
                on_evict: None,
                flags: ModelFlags::NONE,
                totem_sent: false,
                flow_waiting: false,
                flow_cleared: false,
                probed: VecDeque::new(),
                probed_bytes: 0,
                scanned: 0,
                local_safe: None,
            },
        );
        (id, member)
    }

    /// Sets the model flags a handle was initialized with.
    pub(crate) fn set_flags(&self, id: u64, flags: ModelFlags) {
        if let Some(h) = self.lock().handles.get_mut(&id) {
            h.flags = flags;
        }
    }

    pub(crate) fn join(&self, id: u64, name: &GroupName) -> Result<(), CsError> {
        self.join_with(id, name, false)
    }

    /// A join; `queue`: one refused for the group's SAFE messages waits, holding the group's
    /// flow control on, and its handle's signal is raised when it may try again
    /// ([`LocalBus::join_queued`]).
    fn join_with(&self, id: u64, name: &GroupName, queue: bool) -> Result<(), CsError> {
        let mut bus = self.lock();
        let member = {
            let h = bus.handles.get(&id).ok_or(CsError::BadHandle)?;
            if h.group.is_some() {
                return Err(CsError::Exist);
            }
            h.member
        };
        // A SAFE message waits for the members it went to; a member that joined after it
        // would change what "every member" means for the messages held behind it.
        if bus.unstable.values().any(|u| u.group == *name) {
            if queue {
                bus.wait_to_join(id, name);
            }
            return Err(CsError::TryAgain);
        }
        bus.joined(id, name);
        let list = bus.groups.entry(name.clone()).or_default();
        if list.len() >= MAX_MEMBERS {
            return Err(CsError::TooManyGroups);
        }
        list.push((member, id));
        bus.handles.get_mut(&id).expect("checked").group = Some(name.clone());
        bus.confchg(name, &[], &[Change { member, reason: Reason::Join }], None);
        // As corosync: the initial ring goes to the joiner right after its join's confchg.
        let nodeid = bus.nodeid;
        let h = bus.handles.get_mut(&id).ok_or(CsError::BadHandle)?;
        if h.flags.contains(ModelFlags::DELIVER_INITIAL_TOTEM_CONF) && !h.totem_sent {
            h.totem_sent = true;
            let ring_id = RingId { nodeid, seq: 1 };
            bus.push(id, CpgEvent::TotemConfChg { ring_id, nodes: vec![nodeid] });
        }
        // Membership changes count against a member's backlog too: a join and leave loop must
        // not grow the inbox of one that stopped reading.
        bus.evict_behind(name);
        // Flow control a waiting join held on may have cleared: blocking senders look again.
        self.inner.1.notify_all();
        Ok(())
    }

    pub(crate) fn leave(&self, id: u64) -> Result<(), CsError> {
        let mut bus = self.lock();
        let h = bus.handles.get(&id).ok_or(CsError::BadHandle)?;
        if h.group.is_none() {
            return Err(CsError::NotExist);
        }
        let h = bus.handles.get_mut(&id).ok_or(CsError::BadHandle)?;
        let name = h.group.take().ok_or(CsError::NotExist)?;
        let member = h.member;
        bus.remove_member(&name, id);
        // The leaver hears of its own leave too, as with corosync.
        bus.confchg(&name, &[Change { member, reason: Reason::Leave }], &[], Some(id));
        bus.evict_behind(&name);
        // A member gone may have been what held flow control on.
        self.inner.1.notify_all();
        bus.wake_flow_waiters(&name);
        Ok(())
    }

    /// Drops a handle; a handle still in a group leaves it as PROCDOWN.
    pub(crate) fn finalize(&self, id: u64) {
        let mut bus = self.lock();
        // Its waits go whether or not the handle is still here (one evicted is gone already).
        bus.withdraw_joins(id);
        let Some(h) = bus.handles.remove(&id) else {
            self.inner.1.notify_all();
            return;
        };
        if let Some(name) = &h.group {
            bus.remove_member(name, id);
        }
        bus.departed(h.group.as_ref(), id, h.member);
        if let Some(name) = &h.group {
            bus.evict_behind(name);
            bus.wake_flow_waiters(name);
        }
        // A member gone may have been what held flow control on.
        self.inner.1.notify_all();
    }

    pub(crate) fn mcast(&self, id: u64, msg: Vec<u8>) -> Result<(), CsError> {
        self.mcast_with(id, msg, true, false)
    }

    /// A multicast `groupd` has already taken from a client's pipeline: flow control was
    /// the client's to apply when it sent, so the limit is soft here (exceeded by at most one
    /// client window) and an accepted message is never refused after the fact.
    ///
    /// The sender's own copy is queued without raising its signal: `groupd` writes the
    /// sender's events itself right after the request, and a raised signal would only wake
    /// its task again to find nothing.
    pub(crate) fn mcast_accepted(&self, id: u64, msg: Vec<u8>, safe: bool) -> Result<(), CsError> {
        self.mcast_with(id, msg, false, safe)
    }

    fn mcast_with(
        &self,
        id: u64,
        msg: Vec<u8>,
        respect_flow: bool,
        safe: bool,
    ) -> Result<(), CsError> {
        let mut bus = self.lock();
        let h = bus.handles.get(&id).ok_or(CsError::BadHandle)?;
        let name = h.group.clone().ok_or(CsError::NotExist)?;
        let sender = h.member;
        if msg.len() > bus.max_message {
            return Err(CsError::TooBig);
        }
        if respect_flow && bus.flow_enabled(&name) {
            // A member that has held flow control on for too long is removed: then the others
            // may go on.
            if !bus.evict_stalled(&name) || bus.flow_enabled(&name) {
                if let Some(h) = bus.handles.get_mut(&id) {
                    h.flow_waiting = true;
                }
                return Err(CsError::TryAgain);
            }
            self.inner.1.notify_all();
        }
        let safe = (safe && bus.stability).then(|| {
            bus.next_safe += 1;
            bus.next_safe
        });
        let Bus { groups, handles, flow_limit, unstable, .. } = &mut *bus;
        let flow_limit = *flow_limit;
        let Some(list) = groups.get(&name) else { return Ok(()) };
        // One buffer for every member's inbox.
        let msg = bytes::Bytes::from(msg);
        for &(_, m) in list {
            let e =
                Queued::Deliver { group: name.clone(), sender, from: id, msg: msg.clone(), safe };
            let quiet = m == id && !respect_flow;
            Bus::push_to(handles, m, e, quiet, flow_limit);
        }
        if let Some(sid) = safe.filter(|_| list.len() > 1) {
            let receivers: Vec<u64> = list.iter().map(|m| m.1).collect();
            // The sender has it: only the others' receipt is waited for.
            let waiting: HashSet<u64> = receivers.iter().copied().filter(|&r| r != id).collect();
            let members = list.clone();
            let sent = Instant::now();
            unstable
                .insert(sid, Unstable { group: name.clone(), members, receivers, waiting, sent });
        }
        if bus.evict_behind(&name) | bus.evict_stalled(&name) {
            self.inner.1.notify_all();
        }
        Ok(())
    }

    /// Whether flow control is on for `id`'s group. When it is, `id` will be woken (its
    /// signal raised) once it clears: the caller was told, so it may wait.
    pub(crate) fn flow_control(&self, id: u64) -> bool {
        let mut bus = self.lock();
        let on = bus
            .handles
            .get(&id)
            .and_then(|h| h.group.clone())
            .is_some_and(|g| bus.flow_enabled(&g));
        if on {
            if let Some(h) = bus.handles.get_mut(&id) {
                h.flow_waiting = true;
            }
        }
        on
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

/// The entries of an iteration of `kind` over `groups` (every group with its members).
pub(crate) fn iterate(
    groups: Vec<(GroupName, Vec<Member>)>,
    kind: &Iteration,
) -> Vec<IterationEntry> {
    let mut out = Vec::new();
    for (group, members) in groups {
        match kind {
            Iteration::NameOnly => {
                if !members.is_empty() {
                    out.push(IterationEntry { group, member: None });
                }
            }
            Iteration::OneGroup(g) if *g != group => {}
            Iteration::OneGroup(_) | Iteration::All => out.extend(
                members
                    .into_iter()
                    .map(|m| IterationEntry { group: group.clone(), member: Some(m) }),
            ),
        }
    }
    out
}

impl Bus {
    /// When flow control is off for `name`, tells every member that was told it was on.
    fn wake_flow_waiters(&mut self, name: &GroupName) {
        if self.flow_enabled(name) {
            return;
        }
        let waiting: Vec<u64> = self
            .groups
            .get(name)
            .map(|l| {
                l.iter()
                    .filter(|(_, id)| self.handles.get(id).is_some_and(|h| h.flow_waiting))
                    .map(|&(_, id)| id)
                    .collect()
            })
            .unwrap_or_default();
        for id in waiting {
            if let Some(h) = self.handles.get_mut(&id) {
                h.flow_waiting = false;
                h.flow_cleared = true;
                // Raised even when already signalled: a member held at a SAFE message keeps
                // its signal raised, and the notice must still reach it now.
                h.signal.raise();
                h.signalled = true;
            }
        }
    }

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
        match also {
            None => {
                for (_, id) in &list {
                    self.push(*id, event.clone());
                }
            }
            // A leave: marked with the leaver's handle, in every inbox it goes to.
            Some(leaver) => {
                for id in list.iter().map(|m| m.1).chain([leaver]) {
                    let e = Queued::Leave { event: event.clone(), leaver };
                    Bus::push_to(&mut self.handles, id, e, false, self.flow_limit);
                }
            }
        }
    }

    fn push(&mut self, id: u64, event: CpgEvent) {
        Bus::push_to(&mut self.handles, id, Queued::Other(event), false, self.flow_limit);
    }

    /// Queues an event and raises the handle's signal, unless `quiet` (a `groupd` reader
    /// takes its own member's events at once).
    fn push_to(
        handles: &mut HashMap<u64, HandleState, IdHash>,
        id: u64,
        event: Queued,
        quiet: bool,
        flow_limit: usize,
    ) {
        let Some(h) = handles.get_mut(&id) else { return };
        h.inbox_bytes += event.bytes();
        h.inbox.push_back(event);
        // The clock is read once, as the member crosses the threshold, not per message.
        if h.over_since.is_none() && (h.inbox.len() >= flow_limit || h.inbox_bytes >= FLOW_BYTES) {
            h.over_since = Some(Instant::now());
        }
        if !h.signalled && !quiet {
            h.signal.raise();
            h.signalled = true;
        }
    }

    /// Whether some member of the group is too far behind.
    fn flow_enabled(&self, name: &GroupName) -> bool {
        (!self.join_waiting.is_empty() && self.join_waiting.contains_key(name))
            || self.groups.get(name).is_some_and(|l| {
                l.iter().any(|(_, id)| {
                    self.handles.get(id).is_some_and(|h| {
                        h.inbox.len() >= self.flow_limit || h.inbox_bytes >= FLOW_BYTES
                    })
                })
            })
    }
}
