//! groupmsg: Corosync CPG semantics. Closed process groups with totally ordered multicast
//! and membership changes (virtual synchrony).
//!
//! A [`Cpg`] handle is one member, `(nodeid, pid)`, of at most one group at a time. Every
//! member of a group sees the same sequence of events: the messages multicast to the group,
//! its own included, and the membership changes (join, leave, a member whose process ended),
//! interleaved in one total order. Events wait in the handle until [`Cpg::dispatch`] runs the
//! [`Handler`]'s callbacks, in one of `cpg_dispatch`'s four modes; [`Cpg::fd`] is readable
//! while events wait, so the handle fits any event loop.
//!
//! # Backends
//!
//! - **Local** ([`LocalBus`]): groups inside one process. One lock is the sequencer: the order
//!   in which operations take it is the total order every member sees. Each handle gets its
//!   own pid, so several handles in a process are distinct members. A handle dropped while in
//!   a group is reported as PROCDOWN.
//! - **Daemon** ([`Backend::Daemon`], served by [`Groupd`] and the `groupd` program): groups
//!   across the processes of a host. The daemon puts every connection on one `LocalBus`, so
//!   the rules are the same code; a member's pid is its process's (from the socket's peer
//!   credentials), and a process that dies is PROCDOWN. Frames are length-prefixed, checked
//!   before allocating; a malformed one closes that connection only ([`WireError`]). The
//!   daemon is one thread on the evcore reactor, a task per connection (1,000 members in 10
//!   groups are tested); a connection takes its member's events off the bus only while its
//!   output is under [`OUT_HIGH`], so a member that stops reading shows its real backlog to
//!   flow control.
//! - **Corosync** (`Backend::Corosync`, feature `corosync`): real corosync through a thin FFI
//!   of our own over Debian's libcpg. The handle's context points at an inbox it owns for its
//!   whole life; C callbacks only append to it, and the [`Handler`] runs after `cpg_dispatch`
//!   returns (so dropping a handle from a callback cannot deadlock); nothing is shared across
//!   handles. These are rust-corosync 3.2.0's three defects, avoided. A join after a leave
//!   re-initializes the libcpg handle, since corosync 3.1.7 never completes it otherwise.
//! - Two corosync nodes are tested by `cargo xtask interop` (as root): one network namespace per
//!   node joined by veth, a daemon per namespace with its own `/run`, a `groupcat --corosync` in
//!   each; both must deliver one order, and a killed node must show as NODEDOWN.
//!   Multicasts through `groupd` are pipelined: a client has up to 64 unacknowledged; each
//!   acknowledgement carries the flow-control state, and while it is on the client answers
//!   `TryAgain` itself. The daemon never refuses a multicast it has taken (the flow limit is
//!   soft by at most one window per sender), so an accepted message is never lost. A sender
//!   reads the acknowledgements in batches, once half the window is unacknowledged (or flow
//!   control is on, or SAFE messages wait), not on every call: a read per multicast was a
//!   system call per message and cost a third of groupd's rate at 64 bytes.
//! - Performance (`cargo bench -p benches --bench groupmsg`, medians of five rounds): the
//!   in-process bus runs 25 to 33 times corosync's message rate up to 1,600 bytes, with a 1 µs
//!   round trip; through `groupd` the round trip is about 7 µs (libcpg on corosync: about
//!   50 µs), because the daemon answers a client's requests and its own events in one write and
//!   both sides poll for 50 µs before sleeping. A `Cpg` handle on `groupd` counts the events
//!   it has read and not dispatched against the bus's default flow-control threshold (10,000
//!   events or 1 MiB; an [`EventStream`] moves them into its own buffer, which is the
//!   application's to drain): before, a sender that floods took in every delivery while it sent, never heard
//!   `TryAgain`, and grew by the whole flood; at 40,000 bytes the page faults of that growth
//!   cost two thirds of the rate (about 25k/s, now about 80k/s). The corosync backend takes libcpg's events 64
//!   at a time (`CS_DISPATCH_ONE_NONBLOCKING`) rather than all at once, which doubled its rate
//!   at 1,600 bytes; against libcpg it measures 0.7 to 1.4 times the C harness's rate from
//!   run to run, as corosync itself varies that much on a two-core machine.
//!
//! [`EventStream`] turns a handle into an async `Stream` of events on the evcore executor.
//!
//! # Programs
//!
//! `groupd [--socket PATH]` runs the daemon; `groupcat [--socket PATH | --corosync] [--json]
//! [--totem] [--reconnect] GROUP` joins a group, multicasts each line of its input and prints every event, one per line (`--json`:
//! one object per line, as documented on the program). The socket defaults to
//! [`default_socket_path`].
//!
//! # From cpg.h to groupmsg
//!
//! | cpg.h | groupmsg |
//! |---|---|
//! | `cpg_initialize` | [`Cpg::initialize`] with a [`Backend`] and a [`Handler`] |
//! | `cpg_model_initialize(CPG_MODEL_V1)`, `CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF` | [`Cpg::model_initialize`] with [`ModelFlags`] |
//! | `cpg_finalize` | dropping the [`Cpg`] |
//! | `cpg_fd_get` | [`Cpg::fd`] (level: readable while events wait) |
//! | `cpg_dispatch(CS_DISPATCH_ONE / ALL / BLOCKING / ONE_NONBLOCKING)` | [`Cpg::dispatch`] with [`Dispatch`]; a blocking dispatch ends through [`Cpg::stopper`] |
//! | `cpg_join`, `cpg_leave` | [`Cpg::join`], [`Cpg::leave`] |
//! | `cpg_mcast_joined` | [`Cpg::mcast_joined`] with a [`Guarantee`] and `IoSlice`s |
//! | `cpg_mcast_joined` from another thread on the same handle (cpgbench) | [`Cpg::sender`]: a `Clone + Send + Sync` [`CpgSender`]; calls are serialized with the handle's own on its one connection, never with its callbacks, and refused with `BadHandle` once the handle is finalized |
//! | `cpg_membership_get` | [`Cpg::membership_get`] |
//! | `cpg_local_get` | [`Cpg::local_get`] |
//! | `cpg_context_get`, `cpg_context_set` | [`Cpg::context_get`], [`Cpg::context_set`] |
//! | `cpg_max_atomic_msgsize_get` | [`Cpg::max_atomic_msgsize`] |
//! | `cpg_flow_control_state_get` | [`Cpg::flow_control_state`] |
//! | a `cpg_mcast_joined` retry loop on `CS_ERR_TRY_AGAIN` (Pacemaker's) | [`Cpg::mcast_joined_retry`] / [`CpgSender::mcast_joined_retry`] (bounded by a timeout), [`EventStream::mcast_joined`] (a future that waits for flow control to clear) |
//! | `cpg_finalize` then `cpg_initialize` after `CS_ERR_LIBRARY` (the daemon went away) | [`Cpg::reinitialize`] ([`Cpg::is_lost`], [`Cpg::group`] to rejoin); `groupcat --reconnect` |
//! | `cpg_iteration_initialize` / `_next` / `_finalize`, `CPG_ITERATION_NAME_ONLY` / `ONE_GROUP` / `ALL` | [`Cpg::iterate`] with [`Iteration`] (the whole list at once, sorted); [`Cpg::groups`] gathers `ALL` by group |
//! | `struct cpg_ring_id` | [`RingId`] `{ nodeid, seq }` |
//! | `cpg_deliver_fn_t`, `cpg_confchg_fn_t`, `cpg_totem_confchg_fn_t` | [`Handler::deliver`], [`Handler::confchg`], [`Handler::totem_confchg`] |
//! | `cs_error_t` | [`CsError`], all 29 codes one to one ([`CsError::code`], [`CsError::from_code`]); [`CsError::is_retryable`] for `CS_ERR_TRY_AGAIN`, `CS_ERR_QUEUE_FULL`, `CS_ERR_INTERRUPT` |
//! | `CPG_REASON_*` | [`Reason`] |
//!
//! # Deliberate differences from corosync 3.1.7
//!
//! - A multicast before joining is an error ([`CsError::NotExist`]); corosync returns OK and
//!   drops the message.
//! - Leaving and joining again on one handle works; corosync keeps answering BUSY.
//! - Flow control is a real signal: when some member has more than its limit of undelivered
//!   events ([`DEFAULT_FLOW_LIMIT`], [`LocalBus::set_flow_limit`]) or more than [`FLOW_BYTES`]
//!   of undelivered messages, multicasts return [`CsError::TryAgain`] and
//!   [`Cpg::flow_control_state`] says [`FlowControl::Enabled`], until that member catches up.
//!   The byte bound keeps a fast sender's backlog small enough to stay in cache: in-process
//!   throughput at 1,600 B went from about 0.9 to 3.4 million messages a second with it.
//! - Messages are delivered whole or refused with [`CsError::TooBig`] (corosync fragments
//!   above 1,047,552 bytes; a 4 MB message through corosync is tested).
//! - **SAFE delivery on `groupd`**, which corosync's `cpg.h` lists (`CPG_TYPE_SAFE`) and never
//!   built: a SAFE message is delivered to any member only once every member it went to has
//!   acknowledged receiving it, and, there being one order, everything after it waits behind
//!   it. The daemon sends it to each client first as a probe, which the client library
//!   acknowledges as it reads it (whether or not the application dispatches yet), keeps, and
//!   delivers in its place when the daemon says it is stable. A member that dies before
//!   acknowledging is reported gone (PROCDOWN) before the message at every member, and its
//!   own messages after that point, which nobody had delivered, go with it. Who must have a
//!   SAFE message is fixed when it is sent, so a join waits in the daemon until its group's
//!   SAFE messages are stable, and meanwhile the group's flow control reads as on: senders
//!   stop after at most one window each, the messages in flight settle, the join goes in and
//!   flow control clears. (Joins used to answer [`CsError::TryAgain`] whenever a SAFE
//!   message was in flight, and an unbroken stream of them kept a joiner out for seconds.)
//!   An in-process handle on `groupd`'s bus still gets `TryAgain` for such a join. Leaves go
//!   in the order as usual. A member that
//!   never acknowledges (it stopped reading) holds SAFE delivery for its group until it is
//!   removed: after `--max-stall` (10 s by default), at the next multicast in the group.
//!   On the in-process bus receiving is delivering, so SAFE is AGREED there; on corosync it
//!   is AGREED too, as corosync delivers it. FIFO and UNORDERED are AGREED everywhere (a
//!   stronger order than asked). Measured in `cargo bench -p benches --bench groupmsg`.
//! - Flow control clearing wakes a waiting sender on the local bus and on `groupd` (its
//!   descriptor becomes readable); corosync gives no such notice, so there the waits fall
//!   back on pauses (100 µs doubling to 50 ms).
//! - The local bus and `groupd` are one node whose ring never changes: a totem change comes
//!   only as the initial one ([`ModelFlags::DELIVER_INITIAL_TOTEM_CONF`]), ring
//!   `{ nodeid, seq: 1 }`, after the first join's confchg, as corosync orders it.
//! - A lost connection is reported once as [`CsError::Library`], then `BadHandle` on every
//!   call until [`Cpg::reinitialize`]; libcpg goes on answering `Library`.
//!
//! # Logging and the programs
//!
//! The library logs through the `log` facade (the de facto standard, which `tracing` can
//! also collect through `tracing-log`; a facade with no subscriber costs one relaxed atomic
//! load per call site), never to stderr itself: install any logger to see its warnings.
//! The programs are behind the default feature `cli` (`default-features = false` leaves
//! clap, env_logger out of a library user's build). They parse arguments with clap
//! (derive: `--help` lists every flag with its line, `--version`, an unknown flag or bad
//! value is exit status 2 naming it; lexopt would have meant writing all of that by hand),
//! and log with env_logger (`-v` for debug, `-vv` for trace, `RUST_LOG` over both).
//!
//! Dependencies: `evcore` (the `Dispatch` modes), `rustix` (eventfd, epoll, `poll`, peer
//! credentials), `bytes` (frames), `thiserror`; with `corosync`, libcpg (linked, no -sys
//! crate: the FFI is twenty declarations in `corosync.rs`, the crate's only unsafe code).
#![deny(unsafe_code)]
// On docs.rs, items show the features they need.
#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

// The FFI over libcpg is the only unsafe code, each block with its reason.
mod conn;
#[cfg(feature = "corosync")]
#[allow(unsafe_code)]
mod corosync;
mod cpg;
mod daemon;
mod daemon_client;
mod error;
mod flow;
mod local;
mod stream;
mod types;
mod wire;

pub use cpg::{Backend, Collect, Cpg, CpgSender, DispatchStopper, Handler};
pub use daemon::{default_socket_path, Groupd, DEFAULT_MODE, OUT_HIGH};
pub use error::CsError;
pub use evcore::Dispatch;
pub use local::{
    LocalBus, DEFAULT_FLOW_LIMIT, FLOW_BYTES, LOCAL_MAX_MESSAGE, MAX_BACKLOG, MAX_BACKLOG_BYTES,
    MAX_STALL,
};
pub use stream::EventStream;
pub use types::{
    Change, CpgEvent, FlowControl, GroupName, Guarantee, Iteration, IterationEntry, Member,
    ModelFlags, Reason, RingId, MAX_MEMBERS, MAX_NAME,
};
pub use wire::{WireError, MAX_FRAME};

/// Entry points for the fuzz targets in `xtask/fuzz`: not an API, not covered by semver.
#[doc(hidden)]
pub mod __fuzz {
    use bytes::BytesMut;

    /// `groupd`'s frame decoders on any bytes, both directions: no panic, and every frame
    /// that decodes encodes back to a frame that decodes to the same value.
    pub fn frames(bytes: &[u8]) {
        let mut buf = BytesMut::from(bytes);
        while let Ok(Some(r)) = crate::wire::decode_request(&mut buf) {
            let mut again = BytesMut::new();
            crate::wire::encode_request(&mut again, &r);
            assert_eq!(crate::wire::decode_request(&mut again), Ok(Some(r)));
        }
        let mut buf = BytesMut::from(bytes);
        while let Ok(Some(r)) = crate::wire::decode_response(&mut buf) {
            let mut again = BytesMut::new();
            crate::wire::encode_response(&mut again, &r);
            assert_eq!(crate::wire::decode_response(&mut again), Ok(Some(r)));
        }
    }
}
