//! The CPG handle: `cpg_initialize` to `cpg_finalize`.

use std::any::Any;
use std::fmt;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use evcore::Dispatch;
use rustix::event::{PollFd, PollFlags};

use crate::conn::Conn;
use crate::local::LocalBus;
use crate::{
    Change, CpgEvent, CsError, FlowControl, GroupName, Guarantee, Iteration, IterationEntry,
    Member, ModelFlags, RingId,
};

/// The callbacks of `cpg_callbacks_t` (and `cpg_model_v1_data_t`'s totem callback).
pub trait Handler {
    /// A message for the group (`cpg_deliver_fn_t`).
    fn deliver(&mut self, group: &GroupName, sender: Member, msg: &[u8]);
    /// A membership change (`cpg_confchg_fn_t`): the members after it, who left, who joined.
    fn confchg(
        &mut self,
        group: &GroupName,
        members: &[Member],
        left: &[Change],
        joined: &[Change],
    );
    /// The totem ring changed (`cpg_totem_confchg_fn_t`): its id and the nodes in it. On
    /// corosync it comes whenever the ring changes, and with
    /// [`ModelFlags::DELIVER_INITIAL_TOTEM_CONF`] once after the first join. The local bus and
    /// `groupd` are one node whose ring never changes: they deliver only that initial one,
    /// ring `{ nodeid, seq: 1 }` with the one node.
    fn totem_confchg(&mut self, ring_id: RingId, nodes: &[u32]) {
        let _ = (ring_id, nodes);
    }
}

/// A handler that keeps every event, for tests and for callers who prefer a queue.
#[derive(Debug, Default)]
pub struct Collect {
    /// The events, oldest first.
    pub events: Vec<CpgEvent>,
}

impl Handler for Collect {
    fn deliver(&mut self, group: &GroupName, sender: Member, msg: &[u8]) {
        self.events.push(CpgEvent::Deliver { group: group.clone(), sender, msg: msg.to_vec() });
    }

    fn confchg(
        &mut self,
        group: &GroupName,
        members: &[Member],
        left: &[Change],
        joined: &[Change],
    ) {
        self.events.push(CpgEvent::ConfChg {
            group: group.clone(),
            members: members.to_vec(),
            left: left.to_vec(),
            joined: joined.to_vec(),
        });
    }

    fn totem_confchg(&mut self, ring_id: RingId, nodes: &[u32]) {
        self.events.push(CpgEvent::TotemConfChg { ring_id, nodes: nodes.to_vec() });
    }
}

/// Where a handle's groups live.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Backend {
    /// In-process groups on a [`LocalBus`].
    Local(LocalBus),
    /// Groups across the processes of a host, through the `groupd` daemon at this socket path
    /// (see [`default_socket_path`](crate::default_socket_path)).
    Daemon(std::path::PathBuf),
    /// Real corosync through libcpg (feature `corosync`).
    #[cfg(feature = "corosync")]
    Corosync,
}

/// Ends a [`Dispatch::Blocking`] from any thread (`cpg_finalize` from elsewhere, in effect).
#[derive(Clone, Debug)]
pub struct DispatchStopper {
    flag: Arc<AtomicBool>,
    signal: Arc<OwnedFd>,
}

impl DispatchStopper {
    /// Makes the blocking dispatch return after the callback in progress.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::Release);
        let _ = rustix::io::write(&*self.signal, &1u64.to_ne_bytes());
    }
}

/// A CPG handle: one member identity, at most one group at a time.
///
/// ```
/// use evcore::Dispatch;
/// use groupmsg::{Backend, Collect, Cpg, CpgEvent, GroupName, Guarantee, LocalBus};
/// use std::io::IoSlice;
///
/// let bus = LocalBus::new();
/// let mut a = Cpg::initialize(Backend::Local(bus.clone()), Collect::default())?;
/// let mut b = Cpg::initialize(Backend::Local(bus), Collect::default())?;
/// let group = GroupName::new("cluster")?;
/// a.join(&group)?;
/// b.join(&group)?;
/// a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"hello")])?;
/// b.dispatch(Dispatch::All)?;
/// let delivered: Vec<_> = b.handler().events.iter().filter_map(|e| match e {
///     CpgEvent::Deliver { msg, .. } => Some(msg.clone()),
///     _ => None,
/// }).collect();
/// assert_eq!(delivered, [b"hello".to_vec()]);
/// # Ok::<(), groupmsg::CsError>(())
/// ```
pub struct Cpg<H: Handler> {
    /// Shared with the handle's [`CpgSender`]s (weakly: the handle owns the connection, and
    /// dropping it finalizes, senders or not). Never held while a callback runs, so a
    /// callback may send.
    conn: Arc<Mutex<Conn>>,
    member: Member,
    /// What to poll for readiness (also `fd()`).
    signal: Arc<OwnedFd>,
    /// What a stopper writes to wake a blocking dispatch.
    wake: Arc<OwnedFd>,
    stop: Arc<AtomicBool>,
    handler: H,
    context: Option<Box<dyn Any + Send>>,
    /// What `reinitialize` opens again.
    backend: Backend,
    flags: ModelFlags,
    group: Option<GroupName>,
}

impl<H: Handler> Cpg<H> {
    /// `cpg_initialize`: a handle on `backend` calling `handler`, with no model flags.
    pub fn initialize(backend: Backend, handler: H) -> Result<Cpg<H>, CsError> {
        Cpg::model_initialize(backend, handler, ModelFlags::NONE)
    }

    /// `cpg_model_initialize(CPG_MODEL_V1)`: as [`initialize`](Self::initialize), with the
    /// model's flags ([`ModelFlags::DELIVER_INITIAL_TOTEM_CONF`]: the current totem ring
    /// once after the first join). Totem changes reach [`Handler::totem_confchg`] either way.
    pub fn model_initialize(
        backend: Backend,
        handler: H,
        flags: ModelFlags,
    ) -> Result<Cpg<H>, CsError> {
        let (conn, member, signal, wake) = Conn::open(&backend, flags)?;
        Ok(Cpg {
            conn: Arc::new(Mutex::new(conn)),
            member,
            signal,
            wake,
            stop: Arc::new(AtomicBool::new(false)),
            handler,
            context: None,
            backend,
            flags,
            group: None,
        })
    }

    /// Opens a new connection to the same backend, with the same flags and handler, after
    /// the old one was lost (a call answered [`CsError::Library`], then `BadHandle`: `groupd`
    /// or corosync went away), or at any time (the old one is finalized first). The handle
    /// is in no group afterwards: join again ([`group`](Self::group) says which it was in).
    /// Its descriptor changes: poll [`fd`](Self::fd) anew. [`CpgSender`]s made before go on
    /// working, on the new connection.
    pub fn reinitialize(&mut self) -> Result<(), CsError> {
        let (conn, member, signal, wake) = Conn::open(&self.backend, self.flags)?;
        let mut old = std::mem::replace(&mut *self.conn(), conn);
        old.finalize();
        self.member = member;
        self.signal = signal;
        self.wake = wake;
        Ok(())
    }

    /// Whether the connection was lost (see [`reinitialize`](Self::reinitialize)).
    pub fn is_lost(&self) -> bool {
        self.conn().is_lost()
    }

    /// The group this handle joined last and has not left (kept when the connection is lost,
    /// so that a reconnecting caller knows what to join again).
    pub fn group(&self) -> Option<&GroupName> {
        self.group.as_ref()
    }

    fn conn(&self) -> MutexGuard<'_, Conn> {
        lock(&self.conn)
    }

    fn pop(&mut self) -> Result<Option<CpgEvent>, CsError> {
        self.conn().pop()
    }

    /// `cpg_fd_get`: readable while events wait to be dispatched (level), for an event loop.
    pub fn fd(&self) -> RawFd {
        self.signal.as_raw_fd()
    }

    /// `cpg_join`. Joining a second group on one handle is `Exist`, as in CPG. Through
    /// `groupd`, a join into a group with SAFE messages in flight waits until they are stable
    /// (at most the daemon's `--max-stall`, after which whoever holds them is removed), and
    /// the handle's other calls wait with it.
    pub fn join(&mut self, group: &GroupName) -> Result<(), CsError> {
        let result = self.conn().join(group);
        if result.is_ok() {
            self.group = Some(group.clone());
        }
        result
    }

    /// `cpg_leave`. Joining again afterwards works (corosync 3.1.7 hangs there).
    pub fn leave(&mut self) -> Result<(), CsError> {
        let result = self.conn().leave();
        if result.is_ok() {
            self.group = None;
        }
        result
    }

    /// `cpg_mcast_joined`: sends the concatenated slices to every member, this one included,
    /// in the group's total order. Not joined: `NotExist` (corosync drops the message
    /// silently). Some member too far behind: `TryAgain` (see
    /// [`flow_control_state`](Self::flow_control_state)).
    pub fn mcast_joined(
        &mut self,
        guarantee: Guarantee,
        iov: &[IoSlice<'_>],
    ) -> Result<(), CsError> {
        mcast(&mut self.conn(), guarantee, iov)
    }

    /// [`mcast_joined`](Self::mcast_joined), retried while the answer is retryable
    /// ([`CsError::is_retryable`]: flow control, a full queue, a cut fragmented message) for
    /// up to `timeout`, pausing between attempts (100 µs doubling to 50 ms; on the local bus,
    /// until flow control clears). Then the last error. The bounded form of Pacemaker's retry
    /// queue.
    ///
    /// Events that arrive meanwhile wait for the next dispatch: this handle's callbacks do
    /// not run here. So if this member is itself the one behind, dispatch first.
    pub fn mcast_joined_retry(
        &mut self,
        guarantee: Guarantee,
        iov: &[IoSlice<'_>],
        timeout: std::time::Duration,
    ) -> Result<(), CsError> {
        mcast_retry(&self.conn, guarantee, iov, timeout)
    }

    /// [`mcast_joined`](Self::mcast_joined) that never waits on a `groupd` connection:
    /// `TryAgain` where the blocking form would wait for the daemon (for room in its window
    /// of unacknowledged multicasts, or for its flow state). For [`EventStream`](crate::EventStream).
    pub(crate) fn try_mcast_joined(
        &mut self,
        guarantee: Guarantee,
        iov: &[IoSlice<'_>],
    ) -> Result<(), CsError> {
        self.conn().mcast(iov, false, guarantee == Guarantee::Safe)
    }

    /// A `Clone + Send + Sync` sender for this handle's group: multicast from other threads
    /// while this one dispatches (libcpg allows this on one handle; cpgbench does it).
    pub fn sender(&self) -> CpgSender {
        CpgSender { conn: Arc::downgrade(&self.conn), member: self.member }
    }

    /// `cpg_dispatch`: runs callbacks as `mode` says. `One` waits for an event and delivers
    /// exactly one; `All` delivers what is pending without waiting; `OneNonBlocking` delivers
    /// at most one, `TryAgain` when none is pending; `Blocking` delivers until a
    /// [`DispatchStopper`] fires. Returns how many callbacks ran.
    pub fn dispatch(&mut self, mode: Dispatch) -> Result<usize, CsError> {
        match mode {
            Dispatch::OneNonBlocking => match self.pop()? {
                Some(e) => {
                    self.deliver(e);
                    Ok(1)
                }
                None => Err(CsError::TryAgain),
            },
            Dispatch::All => {
                let mut n = 0;
                loop {
                    // The corosync backend takes events in batches: go on while a batch came
                    // full, as CS_DISPATCH_ALL goes on until libcpg has nothing.
                    let (pending, more) = self.conn().pending()?;
                    let mut delivered = 0;
                    while delivered < pending {
                        let Some(e) = self.pop()? else { break };
                        self.deliver(e);
                        delivered += 1;
                    }
                    n += delivered;
                    if !more || delivered == 0 {
                        return Ok(n);
                    }
                }
            }
            Dispatch::One => loop {
                if let Some(e) = self.pop()? {
                    self.deliver(e);
                    return Ok(1);
                }
                if !self.spin()? {
                    self.wait()?;
                }
            },
            Dispatch::Blocking => {
                let mut n = 0;
                loop {
                    if self.stop.swap(false, Ordering::AcqRel) {
                        self.clear_stop();
                        return Ok(n);
                    }
                    match self.pop()? {
                        Some(e) => {
                            self.deliver(e);
                            n += 1;
                        }
                        None => {
                            if !self.spin()? {
                                self.wait()?;
                            }
                        }
                    }
                }
            }
            _ => Err(CsError::InvalidParam),
        }
    }

    /// Before sleeping, a `groupd` connection polls its socket briefly (see
    /// [`Groupd`](crate::Groupd)): true when that found an event.
    fn spin(&mut self) -> Result<bool, CsError> {
        self.conn().spin()
    }

    /// Waits until the signal descriptor is readable (an event, or a stop).
    fn wait(&self) -> Result<(), CsError> {
        let mut fds = [PollFd::new(&self.signal, PollFlags::IN)];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
            Err(_) => Err(CsError::Library),
        }
    }

    /// Drains a stopper's wake-up when it is a separate descriptor (the daemon backend).
    fn clear_stop(&self) {
        if !Arc::ptr_eq(&self.signal, &self.wake) {
            let mut buf = [0u8; 8];
            let _ = rustix::io::read(&*self.wake, &mut buf);
        }
    }

    fn deliver(&mut self, e: CpgEvent) {
        match e {
            CpgEvent::Deliver { group, sender, msg } => self.handler.deliver(&group, sender, &msg),
            CpgEvent::ConfChg { group, members, left, joined } => {
                self.handler.confchg(&group, &members, &left, &joined)
            }
            CpgEvent::TotemConfChg { ring_id, nodes } => {
                self.handler.totem_confchg(ring_id, &nodes)
            }
        }
    }

    /// A handle another thread can use to end a blocking dispatch.
    pub fn stopper(&self) -> DispatchStopper {
        DispatchStopper { flag: self.stop.clone(), signal: self.wake.clone() }
    }

    /// `cpg_membership_get`: the members of the joined group.
    pub fn membership_get(&mut self) -> Result<Vec<Member>, CsError> {
        self.conn().members()
    }

    /// `cpg_local_get`: this node's id.
    pub fn local_get(&self) -> u32 {
        self.member.nodeid
    }

    /// This handle's identity in its group.
    pub fn member(&self) -> Member {
        self.member
    }

    /// `cpg_max_atomic_msgsize_get`: the largest message delivered whole.
    pub fn max_atomic_msgsize(&self) -> usize {
        self.conn().max_atomic()
    }

    /// `cpg_flow_control_state_get`.
    pub fn flow_control_state(&self) -> FlowControl {
        flow_control(&self.conn())
    }

    /// `cpg_iteration_initialize` / `_next` / `_finalize`: the groups on the backend, as
    /// `kind` says. Entries come sorted (by group, then member), on every backend.
    pub fn iterate(&mut self, kind: Iteration) -> Result<Vec<IterationEntry>, CsError> {
        let mut out = self.conn().iterate(&kind)?;
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Every group on the backend with its members ([`Iteration::All`], gathered by group).
    pub fn groups(&mut self) -> Result<Vec<(GroupName, Vec<Member>)>, CsError> {
        let mut out: Vec<(GroupName, Vec<Member>)> = Vec::new();
        for e in self.iterate(Iteration::All)? {
            let Some(m) = e.member else { continue };
            match out.last_mut() {
                Some((g, ms)) if *g == e.group => ms.push(m),
                _ => out.push((e.group, vec![m])),
            }
        }
        Ok(out)
    }

    /// `cpg_context_set`.
    pub fn context_set(&mut self, context: Box<dyn Any + Send>) {
        self.context = Some(context);
    }

    /// `cpg_context_get` (kept across the handle's life, unlike rust-corosync 3.2.0).
    pub fn context_get(&self) -> Option<&(dyn Any + Send)> {
        self.context.as_deref()
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }
}

impl<H: Handler> AsFd for Cpg<H> {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.signal.as_fd()
    }
}

impl<H: Handler> Drop for Cpg<H> {
    /// `cpg_finalize`: a handle still in a group leaves it as PROCDOWN.
    fn drop(&mut self) {
        // A daemon connection closing is its finalize: groupd reports PROCDOWN if joined.
        self.conn().finalize();
    }
}

impl<H: Handler> fmt::Debug for Cpg<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cpg").field("member", &self.member).finish_non_exhaustive()
    }
}

fn lock(conn: &Mutex<Conn>) -> MutexGuard<'_, Conn> {
    // A panic while a connection was locked (a bug) leaves it as the last call left it; the
    // backends check their own state on every call.
    conn.lock().unwrap_or_else(|e| e.into_inner())
}

fn mcast(conn: &mut Conn, guarantee: Guarantee, iov: &[IoSlice<'_>]) -> Result<(), CsError> {
    // SAFE is stronger than AGREED on groupd only; every other guarantee is AGREED.
    conn.mcast(iov, true, guarantee == Guarantee::Safe)
}

fn mcast_retry(
    conn: &Mutex<Conn>,
    guarantee: Guarantee,
    iov: &[IoSlice<'_>],
    timeout: std::time::Duration,
) -> Result<(), CsError> {
    crate::flow::retry(
        timeout,
        || mcast(&mut lock(conn), guarantee, iov),
        |pause| {
            // The bus wakes a waiter when flow clears; the others sleep, with the
            // connection unlocked so that a dispatching thread may go on.
            let local = lock(conn).local();
            match local {
                Some((bus, id)) => {
                    bus.wait_flow(id, pause);
                }
                None => std::thread::sleep(pause),
            }
        },
    )
}

fn flow_control(conn: &Conn) -> FlowControl {
    if conn.flow_control() {
        FlowControl::Enabled
    } else {
        FlowControl::Disabled
    }
}

/// Multicasts for a [`Cpg`] handle from any thread: `Clone + Send + Sync`, from
/// [`Cpg::sender`].
///
/// Calls are serialized with the handle's own (one connection underneath), never with its
/// callbacks: a dispatching thread holds the connection only to take each event, not while
/// the handler runs. Once the handle is dropped (finalized), every call is
/// [`CsError::BadHandle`].
///
/// ```
/// use evcore::Dispatch;
/// use groupmsg::{Backend, Collect, Cpg, CpgEvent, GroupName, Guarantee, LocalBus};
/// use std::io::IoSlice;
///
/// let mut cpg = Cpg::initialize(Backend::Local(LocalBus::new()), Collect::default())?;
/// cpg.join(&GroupName::new("g")?)?;
/// let sender = cpg.sender();
/// std::thread::spawn(move || sender.mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"hi")]))
///     .join()
///     .unwrap()?;
/// cpg.dispatch(Dispatch::All)?;
/// let got = cpg.handler().events.iter().any(|e| matches!(e, CpgEvent::Deliver { msg, .. } if msg == b"hi"));
/// assert!(got);
/// # Ok::<(), groupmsg::CsError>(())
/// ```
#[derive(Clone)]
pub struct CpgSender {
    conn: Weak<Mutex<Conn>>,
    member: Member,
}

impl CpgSender {
    /// [`Cpg::mcast_joined`], from this thread.
    pub fn mcast_joined(&self, guarantee: Guarantee, iov: &[IoSlice<'_>]) -> Result<(), CsError> {
        let conn = self.conn.upgrade().ok_or(CsError::BadHandle)?;
        let result = mcast(&mut lock(&conn), guarantee, iov);
        result
    }

    /// [`Cpg::mcast_joined_retry`], from this thread.
    pub fn mcast_joined_retry(
        &self,
        guarantee: Guarantee,
        iov: &[IoSlice<'_>],
        timeout: std::time::Duration,
    ) -> Result<(), CsError> {
        let conn = self.conn.upgrade().ok_or(CsError::BadHandle)?;
        mcast_retry(&conn, guarantee, iov, timeout)
    }

    /// [`Cpg::flow_control_state`]; a finalized handle reads `Disabled`.
    pub fn flow_control_state(&self) -> FlowControl {
        match self.conn.upgrade() {
            Some(conn) => flow_control(&lock(&conn)),
            None => FlowControl::Disabled,
        }
    }

    /// The identity the messages are sent as.
    pub fn member(&self) -> Member {
        self.member
    }
}

impl fmt::Debug for CpgSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CpgSender").field("member", &self.member).finish_non_exhaustive()
    }
}
