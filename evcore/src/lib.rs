//! evcore: one reactor for event-driven protocol engines.
//!
//! Every crate of this workspace (a Gearman client, Corosync CPG, tevent queues, libcurl-style
//! transfers) is a sans-I/O state machine driven by the [`Reactor`] defined here. The reactor
//! is small and fixed: file-descriptor readiness, one-shot timers, immediates, a cross-thread
//! [`Remote`], and `cpg_dispatch`'s four dispatch modes for every backend.
//!
//! # The contract
//!
//! - **Level-triggered readiness.** A descriptor that is still readable is reported on every
//!   turn until it is drained or its interest changes. libcurl's socket interface needs this
//!   (a socket can still hold data after a read), and it is what `poll(2)` users expect.
//! - **`deregister` is idempotent** and accepts a descriptor that was already closed.
//! - **Timers** are one-shot, fire in deadline order, never early and at most one tick (1 ms)
//!   late. Resetting or cancelling a fired timer returns `false`; ids are never reused.
//! - **Time is the reactor's** ([`Reactor::now`]); a [`Clock::mock`] drives every timeout in
//!   tests without sleeping.
//! - **Nothing is global.** No thread-local or process-wide reactor: a reactor is a value you
//!   pass, and [`Remote`] is how other threads reach it.
//!
//! # Pieces
//!
//! | piece | what it is |
//! |---|---|
//! | [`Reactor`] | the trait every backend implements, with [`dispatch`](Reactor::dispatch) built on [`turn`](Reactor::turn) once for all |
//! | [`Loop`] | the default backend: Linux epoll in level mode, one `epoll_pwait2` per turn, an eventfd for remotes; optionally polls a few microseconds before it sleeps ([`Loop::set_spin`]) |
//! | `TokioReactor` (feature `tokio`) | the same contract on a tokio runtime, emulating level readiness over tokio's edge-cached readiness |
//! | [`TimerWheel`] | the hierarchical timing wheel both backends use: 6 levels of 64 slots at 1 ms, slab-backed, O(1) insert and cancel, lazy reset |
//! | [`Remote`] | schedule `FnOnce + Send` closures onto the loop from any thread: strict FIFO, one wake-up per batch, an error once the loop is gone |
//! | [`Executor`], [`Handle`] | a single-threaded executor on any reactor: `block_on`, `spawn_local` |
//! | [`Async`], [`Sleep`] | non-blocking descriptors with `futures::io` traits, and timers, as futures |
//! | [`Signals`], [`block_signals`] | signals as a stream through `signalfd`, and the process-wide mask that needs (see [`Signals`]) |
//! | [`Child`] | a child process's exit as a future, through a `pidfd`: no SIGCHLD handler |
//! | `Async<UnixListener>`, `Async<UnixStream>`, [`Async::bind_reuseport`] | Unix-domain sockets beside the TCP ones; `SO_REUSEPORT` listeners for one loop per core |
//! | [`Spawner`], [`Engine`], [`block_on`] | the `Send + Sync` way in from other threads and runtimes: run a closure on the executor's thread and await its result anywhere; an executor on a thread of its own; a parking `block_on` for threads with no runtime |
//!
//! # From the C event loops to evcore
//!
//! | C | evcore |
//! |---|---|
//! | `tevent_context_init` / `uv_loop_init` | [`Loop::new`], [`Loop::with_clock`] |
//! | `tevent_add_fd` / `uv_poll_start`, `CURL_POLL_IN/OUT/INOUT` | [`Reactor::register`], [`Reactor::reregister`] with [`Interest`] |
//! | `CURL_POLL_REMOVE`, `uv_poll_stop`, `talloc_free(fde)` | [`Reactor::deregister`] (idempotent) |
//! | `tevent_add_timer` / `uv_timer_start` | [`Reactor::add_timer`] |
//! | `tevent_update_timer` / `uv_timer_again` | [`Reactor::reset_timer`] |
//! | `talloc_free(te)` / `uv_timer_stop` | [`Reactor::cancel_timer`] |
//! | `tevent_schedule_immediate` / `uv_idle` | [`Reactor::schedule_immediate`] |
//! | `tevent_loop_once` / `uv_run(UV_RUN_ONCE)` | [`Reactor::turn`], or [`Dispatch::One`] |
//! | `uv_run(UV_RUN_NOWAIT)` | [`Dispatch::All`] |
//! | `tevent_loop_wait` / `uv_run(UV_RUN_DEFAULT)`, `uv_stop` | [`Dispatch::Blocking`], [`Reactor::stop`], [`Remote::stop`] |
//! | `cpg_dispatch(CS_DISPATCH_ONE / ALL / BLOCKING / ONE_NONBLOCKING)` | [`Dispatch::One`], [`All`](Dispatch::All), [`Blocking`](Dispatch::Blocking), [`OneNonBlocking`](Dispatch::OneNonBlocking) (`CS_ERR_TRY_AGAIN` is [`DispatchError::TryAgain`]) |
//! | `tevent_thread_proxy_create` / `_schedule`, `uv_async_send` | [`Reactor::remote`], [`Remote::schedule`], [`Remote::wake`] |
//! | `CURL_CSELECT_IN/OUT/ERR` | [`Ready`] |
//!
//! # Deliberate differences from the C originals
//!
//! - The thread proxy is FIFO. tevent's runs each batch of messages in reverse order; ours runs
//!   them in the order they were scheduled, and wakes the loop once per batch instead of
//!   writing one pipe byte per message.
//! - Scheduling through a [`Remote`] after its loop is gone returns [`RemoteError::LoopGone`]
//!   instead of writing to a closed pipe; closures still queued are dropped, not run.
//! - A stop from another thread ([`Remote::stop`]) ends a blocking dispatch after the events of
//!   the turn that received it are delivered, so no closure or event is dropped on the floor; a
//!   stop from a handler ([`Reactor::stop`]) takes effect as that handler returns, and what was
//!   not yet delivered stays for the next dispatch.
//! - Deregistering a descriptor discards the events a non-blocking dispatch had gathered for it
//!   and not yet delivered, so a handler never sees a token it has just retired.
//!
//! # Example
//!
//! ```
//! use evcore::{Dispatch, Event, Interest, Loop, Reactor, Token};
//! use std::io::Write;
//! use std::os::fd::AsRawFd;
//! use std::os::unix::net::UnixStream;
//! use std::time::Duration;
//!
//! let mut lp = Loop::new()?;
//! let (mut tx, rx) = UnixStream::pair()?;
//! lp.register(rx.as_raw_fd(), Token(1), Interest::In)?;
//! let deadline = lp.now() + Duration::from_millis(20);
//! let timer = lp.add_timer(deadline, Token(2));
//! tx.write_all(b"ping")?;
//!
//! let mut seen = Vec::new();
//! lp.dispatch(Dispatch::One, |lp, event| {
//!     if let Event::Io(Token(1), ready) = event {
//!         assert!(ready.is_readable());
//!         // Data arrived before the timeout: cancel it, as a request timeout would be.
//!         assert!(lp.cancel_timer(timer));
//!     }
//!     seen.push(event);
//! })?;
//! assert!(matches!(seen[..], [Event::Io(Token(1), _)]));
//! lp.deregister(rx.as_raw_fd())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Dependencies, and what each saves
//!
//! - `rustix`: safe wrappers for epoll, eventfd, `poll(2)` (the tokio backend's level
//!   emulation), non-blocking `connect` and `FIONBIO` (for [`Async`]), with no libc. With its
//!   `linux_5_11` feature the wait is `epoll_pwait2`, whose timeout is in nanoseconds.
//!
//! Not used, on purpose: `polling`, which DESIGN.md first named for the backend. It re-arms a
//! timerfd and its epoll registration on every wait; measured here (`cargo bench --bench
//! reactor`), a non-blocking turn cost 1.44 µs through it against 135 ns for the bare
//! syscall. Our backend makes the one syscall.
//! - `libc`: `signalfd(2)`, `pthread_sigmask` and signal sets, which rustix does not wrap
//!   (already in the tree of any program with tokio or mio in it).
//! - `async-task` (smol-rs): the task cell, waker vtable and join handle of the executor,
//!   about 1,000 lines of careful unsafe code we do not write again.
//! - `slab`: the executor's tables of sockets and timers, keyed by token.
//! - `futures-core`, `futures-io`: the `AsyncRead`/`AsyncWrite` traits users already implement
//!   against, without the rest of `futures`.
//! - `thiserror`: the error enums.
//! - `futures-channel`: the oneshot that carries a [`Spawned`] task's result back to another
//!   thread (no default features; it is the channel the rest of the `futures` family uses).
//! - `tokio` (optional, feature `tokio`): only for `TokioReactor`.
//!
//! # Safety
//!
//! The crate denies unsafe code except in the modules that hand raw descriptors to the OS
//! (`poll_loop`, and `tokio` for the adapter) and the one that calls libc for `signalfd` and
//! the signal mask (`signals`); each unsafe block there says why it is sound.
#![deny(unsafe_code)]
// On docs.rs, items show the features they need.
#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod clock;
mod core;
mod error;
mod event;
mod exec;
// The only modules that hand raw descriptors to the OS, each unsafe block with its reason.
#[allow(unsafe_code)]
mod poll_loop;
mod reactor;
mod remote;
#[cfg(feature = "tokio")]
#[allow(unsafe_code)]
mod tokio;
mod wheel;

pub use async_task::Task;
pub use clock::{Clock, MockClock};
pub use error::{DispatchError, RemoteError};
pub use event::{Dispatch, Event, Interest, Ready, Token};
pub use exec::{
    block_on, block_signals, signal, yield_now, Async, Child, Engine, Executor, Gone, Handle,
    Signals, Sleep, Spawned, Spawner,
};
pub use poll_loop::Loop;
pub use reactor::{DispatchState, Reactor};
pub use remote::Remote;
pub use wheel::{TimerId, TimerWheel};

#[cfg(feature = "tokio")]
pub use crate::tokio::TokioReactor;
