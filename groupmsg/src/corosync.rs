//! The corosync backend (feature `corosync`): a thin FFI of our own over Debian's libcpg.
//!
//! Three defects of rust-corosync 3.2.0 are avoided by construction:
//!
//! - **The context is ours and stays put.** Each handle's context (given to `cpg_model_initialize`) is a boxed
//!   inbox owned by this connection for the handle's whole life; it is never replaced.
//! - **No user code runs inside libcpg.** The C callbacks only append events to that inbox;
//!   the user's [`Handler`](crate::Handler) runs after `cpg_dispatch` has returned, so
//!   dropping (finalizing) a handle from a callback cannot deadlock.
//! - **No global lock.** Each handle is independent; nothing is shared across handles.
//!
//! And two of corosync 3.1.7's own behaviours are smoothed over: a multicast before joining is
//! an error rather than silently dropped, and joining again after a leave, which never
//! completes on the same libcpg handle, re-initializes the handle first (identity is
//! `(nodeid, pid)`, so it is unchanged).

use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_uint, c_void};
use std::io::IoSlice;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;

use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::EventfdFlags;

use crate::{Change, CpgEvent, CsError, GroupName, Member, Reason, MAX_NAME};

type Handle = u64;

#[repr(C)]
#[derive(Clone, Copy)]
struct CpgName {
    length: u32,
    value: [c_char; MAX_NAME],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CpgAddress {
    nodeid: u32,
    pid: u32,
    reason: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct IterDescription {
    group: CpgName,
    nodeid: u32,
    pid: u32,
}

type DeliverFn = extern "C" fn(Handle, *const CpgName, u32, u32, *mut c_void, usize);
type ConfchgFn = extern "C" fn(
    Handle,
    *const CpgName,
    *const CpgAddress,
    usize,
    *const CpgAddress,
    usize,
    *const CpgAddress,
    usize,
);

/// `struct cpg_ring_id`, passed to the totem callback by value.
#[repr(C)]
#[derive(Clone, Copy)]
struct CRingId {
    nodeid: u32,
    seq: u64,
}

type TotemConfchgFn = extern "C" fn(Handle, CRingId, u32, *const u32);

/// `cpg_model_v1_data_t`.
#[repr(C)]
struct ModelV1Data {
    model: c_uint,
    deliver: Option<DeliverFn>,
    confchg: Option<ConfchgFn>,
    totem_confchg: Option<TotemConfchgFn>,
    flags: c_uint,
}

const CPG_MODEL_V1: c_uint = 1;

#[repr(C)]
struct Iovec {
    base: *const c_void,
    len: usize,
}

const CS_OK: c_uint = 1;
/// The most iovecs passed to `cpg_mcast_joined`: libcpg's own array holds 64, one of which is
/// its header.
const MAX_IOVECS: usize = 63;
/// Entries in the buffer handed to `cpg_membership_get`: corosync's PROCESSOR_COUNT_MAX is 384
/// (`corodefs.h`), the most its reply can hold.
const MEMBERSHIP_BUFFER: usize = 1024;
const CS_DISPATCH_ONE_NONBLOCKING: c_uint = 4;
/// Events taken from libcpg per fill: enough to amortize the calls, few enough that the copied
/// messages are still in cache when the handler reads them.
const FILL_BATCH: usize = 64;
const CPG_ITERATION_NAME_ONLY: c_uint = 1;
const CPG_ITERATION_ONE_GROUP: c_uint = 2;
const CPG_ITERATION_ALL: c_uint = 3;

#[link(name = "cpg")]
extern "C" {
    fn cpg_model_initialize(
        handle: *mut Handle,
        model: c_uint,
        data: *mut ModelV1Data,
        context: *mut c_void,
    ) -> c_uint;
    fn cpg_finalize(handle: Handle) -> c_uint;
    fn cpg_fd_get(handle: Handle, fd: *mut c_int) -> c_uint;
    fn cpg_context_get(handle: Handle, context: *mut *mut c_void) -> c_uint;
    fn cpg_dispatch(handle: Handle, flags: c_uint) -> c_uint;
    fn cpg_join(handle: Handle, group: *const CpgName) -> c_uint;
    fn cpg_leave(handle: Handle, group: *const CpgName) -> c_uint;
    fn cpg_mcast_joined(
        handle: Handle,
        guarantee: c_uint,
        iov: *const Iovec,
        count: c_uint,
    ) -> c_uint;
    fn cpg_membership_get(
        handle: Handle,
        group: *mut CpgName,
        members: *mut CpgAddress,
        count: *mut c_int,
    ) -> c_uint;
    fn cpg_local_get(handle: Handle, nodeid: *mut c_uint) -> c_uint;
    fn cpg_flow_control_state_get(handle: Handle, state: *mut c_uint) -> c_uint;
    fn cpg_max_atomic_msgsize_get(handle: Handle, size: *mut u32) -> c_uint;
    fn cpg_iteration_initialize(
        handle: Handle,
        kind: c_uint,
        group: *const CpgName,
        iter: *mut u64,
    ) -> c_uint;
    fn cpg_iteration_next(iter: u64, description: *mut IterDescription) -> c_uint;
    fn cpg_iteration_finalize(iter: u64) -> c_uint;
}

fn check(code: c_uint) -> Result<(), CsError> {
    if code == CS_OK {
        Ok(())
    } else {
        Err(CsError::from_code(code).unwrap_or(CsError::Library))
    }
}

fn c_name(g: &GroupName) -> CpgName {
    let mut value = [0 as c_char; MAX_NAME];
    for (d, s) in value.iter_mut().zip(g.as_bytes()) {
        *d = *s as c_char;
    }
    CpgName { length: g.as_bytes().len() as u32, value }
}

/// Reads a `cpg_name` written by libcpg; a length past the array is clamped.
fn from_c_name(n: &CpgName) -> Option<GroupName> {
    let len = (n.length as usize).min(MAX_NAME);
    let bytes: Vec<u8> = n.value[..len].iter().map(|&c| c as u8).collect();
    GroupName::new(bytes).ok()
}

fn reason(code: u32) -> Reason {
    match code {
        1 => Reason::Join,
        2 => Reason::Leave,
        3 => Reason::NodeDown,
        4 => Reason::NodeUp,
        _ => Reason::ProcDown,
    }
}

/// Where the callbacks put events: owned by the connection, its address given to libcpg.
#[derive(Default)]
struct Inbox {
    events: VecDeque<CpgEvent>,
}

/// The inbox, allocated once per connection and freed only after its last handle is finalized.
///
/// Held as the raw pointer `Box::into_raw` gave, never as a `Box`: libcpg keeps a copy of this
/// pointer (the context) and the callbacks make a `&mut Inbox` from it. A `Box` used directly
/// beside that would assert unique ownership each time it is touched and invalidate the
/// callbacks' pointer (undefined behaviour under Stacked and Tree Borrows). Every access, ours
/// and the callbacks', derives from this one pointer, and never two at once: ours happen
/// outside `cpg_dispatch`, the callbacks' only inside it.
struct InboxPtr(NonNull<Inbox>);

impl InboxPtr {
    fn new() -> InboxPtr {
        InboxPtr(NonNull::from(Box::leak(Box::<Inbox>::default())))
    }

    fn get(&mut self) -> &mut Inbox {
        // SAFETY: the pointer came from `Box::into_raw` (via `leak`) and is freed only in
        // `Drop`; `&mut self` means no other access of ours is live, and callbacks (the only
        // other users) run only inside `cpg_dispatch`, which needs `&mut CorosyncConn` too and
        // so never overlaps this borrow.
        unsafe { self.0.as_mut() }
    }

    fn get_ref(&self) -> &Inbox {
        // SAFETY: as in `get`; a shared borrow outside `cpg_dispatch`.
        unsafe { self.0.as_ref() }
    }
}

impl Drop for InboxPtr {
    fn drop(&mut self) {
        // SAFETY: from `Box::leak` in `new`, freed once, here. `CorosyncConn` finalizes its
        // handle (after which libcpg never calls back with this context) before this field is
        // dropped: fields drop after the struct's own `Drop::drop`.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// Finds a handle's inbox through its context.
fn inbox_of(handle: Handle) -> Option<&'static mut Inbox> {
    let mut ctx: *mut c_void = std::ptr::null_mut();
    // SAFETY: cpg_context_get writes one pointer to `ctx`, a valid local.
    let ok = unsafe { cpg_context_get(handle, &mut ctx) } == CS_OK;
    if !ok || ctx.is_null() {
        return None;
    }
    // SAFETY: the context is the `InboxPtr` of the connection owning this handle, given to
    // cpg_model_initialize and freed only after cpg_finalize. Callbacks run only inside
    // cpg_dispatch, which only that connection calls (through `&mut self`), so no other
    // reference to the inbox is live; the 'static lifetime never escapes the callback.
    Some(unsafe { &mut *(ctx as *mut Inbox) })
}

extern "C" fn on_deliver(
    handle: Handle,
    group: *const CpgName,
    nodeid: u32,
    pid: u32,
    msg: *mut c_void,
    len: usize,
) {
    let Some(inbox) = inbox_of(handle) else { return };
    // SAFETY: libcpg passes a valid group name and `len` readable bytes at `msg` for the
    // duration of this call; both are copied before returning.
    let (group, msg) = unsafe {
        (from_c_name(&*group), std::slice::from_raw_parts(msg as *const u8, len).to_vec())
    };
    if let Some(group) = group {
        inbox.events.push_back(CpgEvent::Deliver { group, sender: Member { nodeid, pid }, msg });
    }
}

/// Copies a list libcpg passes, all of it: a silent cut at 128 would hide members.
fn list(ptr: *const CpgAddress, n: usize) -> Vec<CpgAddress> {
    if ptr.is_null() || n == 0 {
        return Vec::new();
    }
    // SAFETY: libcpg passes `n` valid entries at `ptr` for the duration of the callback (its
    // dispatch copies exactly `n` into the array it passes); they are copied before returning.
    unsafe { std::slice::from_raw_parts(ptr, n).to_vec() }
}

#[allow(clippy::too_many_arguments)]
extern "C" fn on_confchg(
    handle: Handle,
    group: *const CpgName,
    members: *const CpgAddress,
    n_members: usize,
    left: *const CpgAddress,
    n_left: usize,
    joined: *const CpgAddress,
    n_joined: usize,
) {
    let Some(inbox) = inbox_of(handle) else { return };
    // SAFETY: libcpg passes a valid group name for the duration of this call.
    let Some(group) = (unsafe { from_c_name(&*group) }) else { return };
    let members =
        list(members, n_members).iter().map(|a| Member { nodeid: a.nodeid, pid: a.pid }).collect();
    let changes = |l: Vec<CpgAddress>| {
        l.iter()
            .map(|a| Change {
                member: Member { nodeid: a.nodeid, pid: a.pid },
                reason: reason(a.reason),
            })
            .collect()
    };
    inbox.events.push_back(CpgEvent::ConfChg {
        group,
        members,
        left: changes(list(left, n_left)),
        joined: changes(list(joined, n_joined)),
    });
}

extern "C" fn on_totem_confchg(handle: Handle, ring: CRingId, n: u32, nodes: *const u32) {
    let Some(inbox) = inbox_of(handle) else { return };
    let nodes = if nodes.is_null() || n == 0 {
        Vec::new()
    } else {
        // SAFETY: libcpg passes `n` node ids at `nodes` for the duration of this call (the
        // array of its dispatch message, of exactly that many entries); they are copied here.
        unsafe { std::slice::from_raw_parts(nodes, n as usize).to_vec() }
    };
    let ring_id = crate::RingId { nodeid: ring.nodeid, seq: ring.seq };
    inbox.events.push_back(CpgEvent::TotemConfChg { ring_id, nodes });
}

pub(crate) struct CorosyncConn {
    handle: Handle,
    inbox: InboxPtr,
    group: Option<GroupName>,
    has_left: bool,
    /// Whether `wake` is readable, so it is written and read only on transitions.
    signalled: bool,
    /// libcpg's descriptor (duplicated) and `wake`: what `fd()` and waits poll.
    pub(crate) epoll: Arc<OwnedFd>,
    pub(crate) wake: Arc<OwnedFd>,
    cpg_fd: OwnedFd,
    pub(crate) member: Member,
    flags: crate::ModelFlags,
}

impl CorosyncConn {
    pub(crate) fn connect(flags: crate::ModelFlags) -> Result<CorosyncConn, CsError> {
        let inbox = InboxPtr::new();
        let (guard, cpg_fd) = open(&inbox, flags)?;
        let handle = guard.get();
        let wake = Arc::new(
            rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
                .map_err(|_| CsError::Library)?,
        );
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|_| CsError::Library)?;
        epoll::add(&ep, &cpg_fd, EventData::new_u64(0), EventFlags::IN)
            .map_err(|_| CsError::Library)?;
        epoll::add(&ep, &*wake, EventData::new_u64(1), EventFlags::IN)
            .map_err(|_| CsError::Library)?;
        let mut nodeid: c_uint = 0;
        // SAFETY: writes one integer to a valid local.
        check(unsafe { cpg_local_get(handle, &mut nodeid) })?;
        let member = Member { nodeid, pid: std::process::id() };
        Ok(CorosyncConn {
            handle: guard.release(),
            inbox,
            group: None,
            has_left: false,
            signalled: false,
            epoll: Arc::new(ep),
            wake,
            cpg_fd,
            member,
            flags,
        })
    }

    pub(crate) fn join(&mut self, g: &GroupName) -> Result<(), CsError> {
        if self.group.is_some() {
            return Err(CsError::Exist);
        }
        if self.has_left {
            self.reopen()?;
        }
        let name = c_name(g);
        // SAFETY: `name` is a valid cpg_name for the duration of the call.
        check(unsafe { cpg_join(self.handle, &name) })?;
        self.group = Some(g.clone());
        Ok(())
    }

    pub(crate) fn leave(&mut self) -> Result<(), CsError> {
        let g = self.group.clone().ok_or(CsError::NotExist)?;
        let name = c_name(&g);
        // SAFETY: `name` is a valid cpg_name for the duration of the call.
        check(unsafe { cpg_leave(self.handle, &name) })?;
        self.group = None;
        self.has_left = true;
        Ok(())
    }

    /// A fresh libcpg handle on the same descriptor set, keeping undelivered events.
    fn reopen(&mut self) -> Result<(), CsError> {
        // Collect what the old handle still has (its own leave, typically) before closing it.
        self.fill()?;
        // The initial ring came after the first join: a rejoin's fresh libcpg handle must not
        // deliver it again (the other backends give it once per handle too).
        let flags = crate::ModelFlags::from_bits(
            self.flags.bits() & !crate::ModelFlags::DELIVER_INITIAL_TOTEM_CONF.bits(),
        )?;
        let (guard, fd) = open(&self.inbox, flags)?;
        let _ = epoll::delete(&*self.epoll, &self.cpg_fd);
        if epoll::add(&*self.epoll, &fd, EventData::new_u64(0), EventFlags::IN).is_err() {
            // Keep the old handle whole: watched again, and the new one finalized (the guard).
            let _ = epoll::add(&*self.epoll, &self.cpg_fd, EventData::new_u64(0), EventFlags::IN);
            return Err(CsError::Library);
        }
        let handle = guard.release();
        // SAFETY: the old handle is finalized once, and not used after.
        unsafe { cpg_finalize(self.handle) };
        self.handle = handle;
        self.cpg_fd = fd;
        self.has_left = false;
        Ok(())
    }

    pub(crate) fn mcast(&mut self, iov: &[IoSlice<'_>]) -> Result<(), CsError> {
        if self.group.is_none() {
            return Err(CsError::NotExist);
        }
        // libcpg copies the caller's iovecs after its own header into `struct iovec iov[64]` on
        // its stack (lib/cpg.c, cpg_mcast_joined), so 64 or more would overflow it: past
        // MAX_IOVECS slices, they are joined into one buffer first.
        let joined: Vec<u8>;
        let one: [IoSlice<'_>; 1];
        let slices: &[IoSlice<'_>] = if iov.len() > MAX_IOVECS {
            joined = iov.iter().flat_map(|s| s.iter().copied()).collect();
            one = [IoSlice::new(&joined)];
            &one
        } else {
            iov
        };
        let v: Vec<Iovec> =
            slices.iter().map(|s| Iovec { base: s.as_ptr().cast(), len: s.len() }).collect();
        debug_assert!(v.len() <= MAX_IOVECS);
        // SAFETY: the iovecs point into the caller's slices (or `joined`), alive for the
        // duration of the call, and there are at most MAX_IOVECS of them, which with libcpg's
        // header fits its array of 64. Guarantee 2 is CPG_TYPE_AGREED, as corosync delivers
        // every guarantee. (Above `max_atomic_msgsize` libcpg fragments instead, reading the
        // iovecs in place through an array of 2: no bound applies there.)
        check(unsafe { cpg_mcast_joined(self.handle, 2, v.as_ptr(), v.len() as c_uint) })
    }

    /// Takes up to a batch of events from libcpg without blocking; the callbacks fill the
    /// inbox. One event per `cpg_dispatch` call rather than `CS_DISPATCH_ALL`: that would copy
    /// everything corosync holds (thousands of messages under load) before the handler sees the
    /// first, and the copies would be out of cache by the time it does.
    fn fill(&mut self) -> Result<(), CsError> {
        for _ in 0..FILL_BATCH {
            // SAFETY: callbacks reach `self.inbox` through the context; no other reference to
            // it is alive during this call.
            match unsafe { cpg_dispatch(self.handle, CS_DISPATCH_ONE_NONBLOCKING) } {
                CS_OK => {}
                code => {
                    return match CsError::from_code(code) {
                        Some(CsError::TryAgain) => Ok(()),
                        Some(e) => Err(e),
                        None => Err(CsError::Library),
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether the last fill may have left events in libcpg (it stopped at a full batch).
    pub(crate) fn may_have_more(&self) -> bool {
        self.inbox.get_ref().events.len() >= FILL_BATCH
    }

    pub(crate) fn pop(&mut self) -> Result<Option<CpgEvent>, CsError> {
        if self.inbox.get_ref().events.is_empty() {
            self.fill()?;
        }
        let e = self.inbox.get().events.pop_front();
        // Keep `wake` readable exactly while the inbox holds events libcpg's descriptor no
        // longer shows, touching it only when that changes (not once per event).
        let waiting = !self.inbox.get_ref().events.is_empty();
        if waiting != self.signalled {
            if waiting {
                let _ = rustix::io::write(&*self.wake, &1u64.to_ne_bytes());
            } else {
                let mut buf = [0u8; 8];
                let _ = rustix::io::read(&*self.wake, &mut buf);
            }
            self.signalled = waiting;
        } else if e.is_none() {
            // A stopper's wake-up, with nothing pending: clear it.
            let mut buf = [0u8; 8];
            let _ = rustix::io::read(&*self.wake, &mut buf);
        }
        Ok(e)
    }

    pub(crate) fn pending(&mut self) -> Result<usize, CsError> {
        self.fill()?;
        Ok(self.inbox.get_ref().events.len())
    }

    pub(crate) fn members(&mut self) -> Result<Vec<Member>, CsError> {
        let g = self.group.clone().ok_or(CsError::NotExist)?;
        let mut name = c_name(&g);
        // libcpg ignores the count passed in: it writes as many entries as corosync's answer
        // holds, which is at most PROCESSOR_COUNT_MAX (the array in the daemon's
        // `res_lib_cpg_membership_get`; 384 in Debian's build, which has no small-memory
        // option). The buffer is sized to that with a wide margin, on the heap.
        let mut list = vec![CpgAddress::default(); MEMBERSHIP_BUFFER];
        let mut count: c_int = MEMBERSHIP_BUFFER as c_int;
        // SAFETY: libcpg writes `member_count` entries, bounded by the daemon's reply array of
        // PROCESSOR_COUNT_MAX entries, into `list`, which holds MEMBERSHIP_BUFFER >= that.
        check(unsafe {
            cpg_membership_get(self.handle, &mut name, list.as_mut_ptr(), &mut count)
        })?;
        let n = count.max(0) as usize;
        if n > list.len() {
            // libcpg has already written past the buffer: memory is corrupt, and the only sound
            // thing left is to stop.
            log::warn!("libcpg reported {n} members, more than corosync can hold");
            std::process::abort();
        }
        Ok(list[..n].iter().map(|a| Member { nodeid: a.nodeid, pid: a.pid }).collect())
    }

    pub(crate) fn flow_control(&self) -> bool {
        let mut state: c_uint = 0;
        // SAFETY: writes one integer to a valid local.
        unsafe { cpg_flow_control_state_get(self.handle, &mut state) == CS_OK && state == 1 }
    }

    pub(crate) fn max_atomic(&self) -> usize {
        let mut size: u32 = 0;
        // SAFETY: writes one integer to a valid local.
        if unsafe { cpg_max_atomic_msgsize_get(self.handle, &mut size) } == CS_OK {
            size as usize
        } else {
            0
        }
    }

    /// `cpg_iteration_*` of `kind`, the whole list; an error from libcpg at any step is
    /// returned, not taken for the end of the list.
    pub(crate) fn iterate(
        &mut self,
        kind: &crate::Iteration,
    ) -> Result<Vec<crate::IterationEntry>, CsError> {
        let (code, name) = match kind {
            crate::Iteration::NameOnly => (CPG_ITERATION_NAME_ONLY, None),
            crate::Iteration::OneGroup(g) => (CPG_ITERATION_ONE_GROUP, Some(c_name(g))),
            _ => (CPG_ITERATION_ALL, None),
        };
        let group = name.as_ref().map_or(std::ptr::null(), |n| n as *const CpgName);
        let mut iter: u64 = 0;
        // SAFETY: writes one handle to a valid local; `group` is null or a valid cpg_name
        // alive for the call (libcpg copies it).
        check(unsafe { cpg_iteration_initialize(self.handle, code, group, &mut iter) })?;
        let mut out = Vec::new();
        let result = loop {
            let mut d = IterDescription {
                group: CpgName { length: 0, value: [0; MAX_NAME] },
                nodeid: 0,
                pid: 0,
            };
            // SAFETY: libcpg writes one description into a valid local.
            match unsafe { cpg_iteration_next(iter, &mut d) } {
                CS_OK => {}
                // The end of the list.
                code if CsError::from_code(code) == Some(CsError::NoSections) => break Ok(()),
                code => break check(code),
            }
            let Some(group) = from_c_name(&d.group) else { continue };
            let member = match kind {
                crate::Iteration::NameOnly => None,
                _ => Some(Member { nodeid: d.nodeid, pid: d.pid }),
            };
            out.push(crate::IterationEntry { group, member });
        };
        // SAFETY: the iteration handle is finalized once.
        unsafe { cpg_iteration_finalize(iter) };
        result.map(|()| out)
    }
}

/// A libcpg handle finalized when this is dropped, until [`release`](Self::release) hands it
/// to its connection: a failure between `cpg_initialize` and the connection being whole (an
/// eventfd or epoll that cannot be made, `EMFILE` on the descriptor's duplicate) must not
/// leak the handle and its IPC connection to corosync.
struct HandleGuard(Handle);

impl HandleGuard {
    fn get(&self) -> Handle {
        self.0
    }

    fn release(self) -> Handle {
        let h = self.0;
        std::mem::forget(self);
        h
    }
}

impl Drop for HandleGuard {
    fn drop(&mut self) {
        // SAFETY: the handle came from cpg_initialize, is finalized once (here, or by its
        // connection after `release`), and is not used after; its context (the inbox) is
        // still alive, since guards are dropped before the inbox they point at.
        unsafe { cpg_finalize(self.0) };
    }
}

/// cpg_model_initialize (model 1, every callback ours) with `inbox` as the context; returns
/// the handle and a duplicate of its descriptor (libcpg owns the original).
fn open(inbox: &InboxPtr, flags: crate::ModelFlags) -> Result<(HandleGuard, OwnedFd), CsError> {
    let mut data = ModelV1Data {
        model: CPG_MODEL_V1,
        deliver: Some(on_deliver),
        confchg: Some(on_confchg),
        totem_confchg: Some(on_totem_confchg),
        flags: flags.bits(),
    };
    let mut raw: Handle = 0;
    let ctx: *mut Inbox = inbox.0.as_ptr();
    // SAFETY: the handle and model data pointers are valid for the call (libcpg copies the
    // model data); the context is the boxed inbox, whose address is stable and which outlives
    // the handle (the connection finalizes the handle before dropping the box).
    check(unsafe { cpg_model_initialize(&mut raw, CPG_MODEL_V1, &mut data, ctx.cast()) })?;
    let guard = HandleGuard(raw);
    let handle = guard.get();
    let mut fd: c_int = -1;
    // SAFETY: writes one integer to a valid local.
    check(unsafe { cpg_fd_get(handle, &mut fd) })?;
    // SAFETY: libcpg keeps `fd` open for the life of the handle; it is only borrowed here to
    // duplicate it.
    let dup = rustix::io::fcntl_dupfd_cloexec(unsafe { BorrowedFd::borrow_raw(fd) }, 0)
        .map_err(|_| CsError::Library)?;
    Ok((guard, dup))
}

// SAFETY: the only field that is not `Send` by itself is the inbox pointer, which this
// connection owns alone (libcpg's copy is used only inside `cpg_dispatch`, which runs on
// whichever thread holds `&mut self`). libcpg handles may be used from any thread.
unsafe impl Send for CorosyncConn {}

impl Drop for CorosyncConn {
    fn drop(&mut self) {
        // SAFETY: finalized once; the inbox (the context) is dropped only after this.
        unsafe { cpg_finalize(self.handle) };
    }
}
