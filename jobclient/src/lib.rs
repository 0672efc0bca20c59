//! jobclient: a Gearman client and worker with libgearman's semantics, on the evcore reactor.
//!
//! # Design
//!
//! - **A sans-I/O wire format** ([`proto`]): packet types with their argument counts, an
//!   incremental [`Decoder`](proto::Decoder) that checks the length field against a limit
//!   before allocating and slices arguments out of one buffer, and typed
//!   [`ProtoError`](proto::ProtoError)s for bad magic, unknown types, missing arguments and
//!   over-long handles, unique IDs and function names. It is tested on the protocol document's
//!   own bytes, on generated round trips of every packet type, and on random garbage.
//! - **A client** whose connection is owned by one task on the executor (see "Send handles").
//!   Requests append to its write buffer; the task writes them, reads responses, and routes each to the submission it
//!   belongs to. Thousands of jobs can be in flight on one connection, each with its own event
//!   stream ([`JobHandle`]). Replies that name no handle (`JOB_CREATED`, `ECHO_RES`,
//!   `STATUS_RES`, `OPTION_RES`, and gearmand's `ERROR`) are matched to requests in order, which
//!   is how gearmand answers.
//! - **A worker** that asks with `GRAB_JOB_ALL` and, when there is nothing, sends `PRE_SLEEP`
//!   and waits for `NOOP` without polling. The job that ends a sleep is answered with
//!   `PRE_SLEEP` rather than another `GRAB_JOB_ALL` (the queue was empty before it came;
//!   a server answers `PRE_SLEEP` with `NOOP` at once when a job is queued), which saves a
//!   round trip and a wake-up per job that comes to a sleeping worker (and costs one round
//!   trip more when jobs were already queued behind the one that woke it; it relies on the
//!   server answering `PRE_SLEEP` with `NOOP` when jobs are queued, which gearmand and ours
//!   do, and which a server that did not would already lose against libgearman's workers,
//!   whose `PRE_SLEEP` can cross a submission): 3.0 sleeps per
//!   sequential job before, 2.5 after, libgearman's worker 2.7-3.0 (`GEARMAN_BENCH=worker
//!   cargo bench -p benches --bench gearman`; with the loop polling before it sleeps, 0.02). Plain functions run one job at a time; async
//!   functions ([`Worker::register_async`]) run up to [`Worker::max_concurrent`] jobs at once
//!   on one connection, the worker grabbing more while they run. A worker or client that
//!   lives on request-reply latency should run on a loop that polls before it sleeps
//!   (`handle.set_spin(DEFAULT_BUSY_POLL)`, as `jobc` and `jobd` do): each reply that comes
//!   within the poll is taken without the tens of microseconds a wake-up costs.
//! - **An embedded job server** (feature `server`, [`Server`]): a sans-I/O core (jobs in a
//!   slab, three priority queues per function with priority global across functions as
//!   gearmand documents, coalescing by function and unique, NOOP wake-ups) run with one task
//!   per connection. A job taken by a worker that disconnects, or that drops the function with
//!   `CANT_DO`, goes back to the front of its queue. The admin text protocol (`status`,
//!   `workers`, `version`, `maxqueue`, `cancel job`, `show jobs`, `getpid`, `shutdown`) shares
//!   the port, told apart by the first byte as gearmand does. A connection sending bad magic,
//!   an unknown type, an oversized length or a response packet is closed with the reason
//!   logged; the others keep being served. `CAN_DO_TIMEOUT` is enforced (a job its worker
//!   overruns is requeued, as gearmand does), `SUBMIT_JOB_EPOCH` jobs wait for their time,
//!   and [`Server::durable_queue`] keeps background jobs in an append-only file, replayed and
//!   compacted at start, written and synced before the client hears `JOB_CREATED`. Every
//!   limit the server enforces is in [`Limits`] and in the server's "Limits and defaults".
//!   gearmand's scheduling flags are a [`Policy`]: `-j` drops a job of death after N
//!   attempts (WORK_FAIL to its clients, recorded in the durable queue), `-w` wakes N
//!   sleepers per job (re-waking more if the job is still queued 250 ms later), `-R` hands a
//!   worker its functions in turn, `--keepalive*` arm TCP keepalive; each is tested side by
//!   side with gearmand (`tests/policy.rs`). A graceful shutdown ([`ServerStopper::graceful`],
//!   admin `shutdown graceful`, and SIGTERM/SIGINT in `jobd`, read from a signalfd) stops
//!   accepting and handing out work, lets running jobs finish up to a deadline and keeps
//!   background jobs in the durable queue (`tests/shutdown.rs`); `jobd.service` is a systemd
//!   unit for it. The admin protocol answers gearadmin's every command byte for byte as
//!   gearmand 1.1.20 does (`tests/gearadmin.rs` runs both), and the `jobadmin` program takes
//!   gearadmin's flags and prints what it prints. `SUBMIT_REDUCE_JOB` (and `_BACKGROUND`) is
//!   taken as gearmand takes it: a normal job that carries its reducer to the worker in
//!   `JOB_ASSIGN_ALL` (the map and reduce steps are libgearman's, in the worker).
//!
//! # Send handles, and any runtime
//!
//! [`Client`] is `Clone + Send + Sync` and its futures are `Send`; [`Admin`], [`JobHandle`]
//! and [`Stopper`] are `Send + Sync`; [`Worker::spawn`] starts a worker from any thread and
//! returns a `Send` future of its count. One client can be held in an `Arc`, in a tokio
//! service's state, and used from 100 tasks on 4 threads at once (`examples/tokio_client.rs`,
//! `tests/shared.rs`, which also runs on `futures`' thread pool: nothing depends on tokio).
//!
//! How: **the sockets stay on one evcore executor, and the handles share only plain state.**
//! Each connection's bookkeeping (write buffer, slots awaiting replies, routes by job handle)
//! sits behind a `Mutex`; a handle on any thread locks it for the few hundred nanoseconds it
//! takes to encode a request, and wakes the connection's driver task through its waker, which
//! evcore makes safe from any thread (the task is queued and the reactor woken once per batch).
//! The driver, on the executor's thread, writes, reads, routes and fires the jobs' client-side
//! deadlines on its reactor's clock. Which executor: the one behind the `&Handle` given to
//! [`Client::connect`] (evcore's own, this thread: no other thread involved), or an
//! [`evcore::Engine`], an executor on a thread of its own, for callers on tokio or any other
//! runtime (`Client::connect(addr, &engine)`). Connects run there too, so a caller that gives
//! up waiting leaves nothing half done.
//!
//! Why this and not the others: a driver future the user spawns (tokio-postgres) would tie
//! the sockets to the user's runtime and need an I/O abstraction per runtime, and its future
//! would have to be `Send`, so every socket type `Send`; an actor with a channel per request
//! costs an allocation and a hop per request both ways. Ours costs one uncontended lock and
//! one wake per request, and the engine thread does the I/O while the caller's threads do
//! their work (on a 2-core machine the shared path measured faster than the local one; the
//! figures are in `cargo xtask bench gearman`). The engine is isahc's design; the shared
//! state is what `Arc<Mutex<_>>` clients in the Rust ecosystem do.
//!
//! Worker functions need not be `Send`: a worker runs on one executor, and one started from
//! elsewhere is built there by the closure given to [`Worker::spawn`], so it may capture that
//! executor's handles (an async function also gets it from [`AsyncJob::executor`]).
//!
//! # The durable queue: what is written, in what order, what is synced
//!
//! In the manner of SQLite's atomic-commit document:
//!
//! 1. A background submission is decoded and the job created in memory, but neither queued
//!    nor acknowledged. Its record (`A`: priority, epoch, handle, function, unique, data) is
//!    appended to a buffer, framed with its length and CRC-32.
//! 2. After the batch of packets read from one connection at once (or one round of timers),
//!    the buffer is written to the file with one `write`, then `fdatasync`
//!    ([`QueueSync::Batch`], the default; `Always` syncs after each packet, `Never` skips the
//!    sync).
//! 3. Only then is each job of the batch queued (or its epoch armed) and its submitter told
//!    `JOB_CREATED`. If the write or the sync fails, the file is cut back to its length
//!    before the write, each such job is dropped, and its submitter hears
//!    `ERROR QUEUE_ERROR`: nothing is acknowledged that is not on disk.
//! 4. A finished job appends a `D` record the same way. A `D` lost to a crash means the job
//!    runs again after a restart: at least once, never lost.
//! 5. At start the file is replayed (format 2's rules: a torn
//!    last record is dropped, damage in the middle is skipped past and reported, the damaged
//!    file kept beside the queue), then compacted: the live jobs are written to a new file,
//!    which is synced, renamed over the old one, and the directory synced. A crash at any
//!    point leaves the old file or the new one, whole. With no room for the new file (a full
//!    disk), the old one is cut back to its last whole record and appended to.
//! 6. The file is locked (`flock`, on `FILE.lock`) for the server's life: a second server on
//!    the same file refuses to start.
//! - **Programs**: `jobd` (the server, gearmand's `-L -p -t -l` flags) and `jobc` (client and
//!   worker with the `gearman` tool's `-h -p -f -w -b -I -L -u -s -n -t` flags, worker
//!   `-- command args`; unlike the `gearman` tool it exits non-zero when a job fails, and feeds
//!   the command's input from a thread so large workloads cannot deadlock the pipes).
//!
//! # TLS (feature `rustls`)
//!
//! Every connection may speak TLS through rustls with its `ring` provider (no C):
//! [`ClientOptions::tls`] for a client, [`Worker::tls`] for a worker, [`Admin::connect_tls`],
//! and for the server [`Server::bind_tls`] (a TLS-only port, `jobd --ssl`) or
//! [`Server::listen_tls`] beside a plaintext one (`jobd --ssl-port`, so that a fleet can move
//! over). Settings come from PEM files as gearmand's flags name them ([`ClientTls::from_files`],
//! [`ServerTls::from_files`]: `--ssl-ca-file`, `--ssl-certificate`, `--ssl-key`, and
//! `--ssl-verify-client` to require clients' certificates), or from any rustls configuration.
//! [`Limits::admin_certs`] narrows the state-changing admin commands to clients presenting
//! listed certificates (`jobd --admin-cert`).
//!
//! How it is built: one `Stream` type (plain or TLS) under the client's, the worker's, the
//! admin connection's and the server's connection code, which only see `AsyncRead` and
//! `AsyncWrite`. A client does its handshake at connect, so a refused certificate is
//! [`Error::Tls`] there (with TLS 1.3, a server's refusal of *our* certificate arrives with
//! the first answer, and the requests waiting on it get [`Error::Tls`]); the server does its
//! handshake as it reads, under the same read deadline as a partial packet
//! ([`Limits::read_deadline`]), so a peer that opens a TLS connection and stalls is closed.
//! There is no fallback in either direction: a plaintext peer on a TLS port, or TLS on a
//! plaintext one, is a closed connection and an error, never plaintext. Programs built
//! without the feature refuse their TLS flags.
//!
//! Deliberate differences from libgearman's TLS: the server's name is checked as well as its
//! chain (the address connected to, so an IP address must be in the certificate's subject
//! alternative names, or the host given to `jobc -h`/`jobadmin -h`, or
//! [`ClientTls::server_name`]); the system's CA bundle is the default where libgearman reads
//! `GEARMAND_CA_CERTIFICATE` or a compiled-in path. Debian's gearmand 1.1.20 takes `--ssl`
//! but was built without TLS in its protocol: it speaks plaintext whatever the flag (its
//! users' issues #63, #94, #207); our TLS client refuses it rather than fall back (a test
//! shows both). Our client's TLS is tested against OpenSSL (`socat OPENSSL-LISTEN` in front
//! of gearmand, `openssl s_client` against `jobd --ssl`).
//!
//! # Servers by name, and `GEARMAN_SERVERS`
//!
//! A server is a [`ServerAddr`]: an address, or a host name looked up at every connect (on a
//! thread of its own, never the event loop's), so a server that moves is found on the next
//! reconnect; every address a name has is tried in turn. [`Client::with_servers`] and
//! [`Worker::run`] take either; [`Client::from_env`] and `jobc` read `GEARMAN_SERVERS`
//! (`host[:port],host[:port]`, as libgearman's client does when created; an IPv6 address in
//! brackets when a port follows). Unlike libgearman, a port that is not one (`gm1:x`) is an
//! error, not port 4730. [`ClientOptions::resolver`] replaces the system's lookup (service
//! discovery, a cache, a test's own names). Under TLS the certificate must carry the name.
//!
//! # Observability: `jobd --http`
//!
//! [`Server::http`] (`jobd --http ADDRESS:PORT`, off by default) serves, on the server's own
//! event loop:
//!
//! - `/metrics`, Prometheus's text format (checked in the tests by Prometheus's `promtool`):
//!   per function and priority the queued jobs, per function the running jobs and available
//!   workers; counters of jobs submitted, completed, failed, retried and dropped, bytes in
//!   and out, connections; histograms of queue wait and run time. The names and what each
//!   counts are in the table below.
//! - `/status.json`: the same as JSON, with completions and submissions per second over the
//!   last ten minutes, the last 20 failures and drops, and the connected workers with their
//!   client ids.
//! - `/`: a status page in one file (no CDN, no fonts, nothing from elsewhere) that polls
//!   `/status.json` every second: counters, a chart of jobs per second, the functions and
//!   workers, recent failures (screenshot, taken by the browser test:
//!   `docs/status-page.png`).
//!
//! Each answer's snapshot is taken in one short hold of the server's lock and formatted
//! outside it; bytes are counted in atomics by the connection tasks. Limits: a request head of
//! at most 8 KiB within 10 s, 64 HTTP connections at once and 8 from one address, one request
//! per connection. A request
//! naming a host that is neither an address nor `localhost` nor one given with `jobd
//! --http-host` is refused (`403`: DNS rebinding). There is no authentication: bind it to
//! loopback or a management network.
//!
//! | metric | type | what |
//! |---|---|---|
//! | `gearman_jobs_queued{function,priority}` | gauge | jobs waiting, by priority (`high`, `normal`, `low`) |
//! | `gearman_jobs_running{function}` | gauge | jobs a worker holds |
//! | `gearman_workers_available{function}` | gauge | connected workers that can do the function |
//! | `gearman_jobs_submitted_total` | counter | jobs created (a coalesced submission joins one) |
//! | `gearman_jobs_completed_total` | counter | `WORK_COMPLETE` |
//! | `gearman_jobs_failed_total` | counter | `WORK_FAIL` and `WORK_EXCEPTION` |
//! | `gearman_jobs_retried_total` | counter | jobs requeued: their worker went or ran out of time |
//! | `gearman_jobs_dropped_total` | counter | jobs given up after `-j` attempts |
//! | `gearman_bytes_received_total`, `gearman_bytes_sent_total` | counter | bytes of the job and admin protocols read and written (under TLS, before encryption) |
//! | `gearman_connections_total`, `gearman_connections` | counter, gauge | connections accepted, open |
//! | `gearman_job_queue_wait_seconds` | histogram | from queued (or requeued) to handed to a worker |
//! | `gearman_job_run_seconds` | histogram | from handed to a worker to its end |
//! | `gearman_uptime_seconds` | gauge | since the server started |
//! | `gearman_functions_omitted` | gauge | functions past the 1,000 listed (the least busy; any client may register names) |
//!
//! # gearmand quirks handled
//!
//! - Without the exceptions option, a `WORK_EXCEPTION` arrives as `WORK_FAIL` with a trailing
//!   empty argument: the handle ends at the first NUL ([`Error::JobFailed`]).
//! - `ERROR` carries no handle: replies are matched first in, first out.
//! - Coalesced jobs (same unique) send every `WORK_*` to every submitter, twice in a row to a
//!   connection that submitted twice: the copies are dealt out to the submissions in turn.
//! - `GET_STATUS` of an unknown handle answers zeros: [`JobStatus::known`] is `false`, not an
//!   error.
//!
//! # From libgearman to jobclient
//!
//! | libgearman | jobclient |
//! |---|---|
//! | the blocking calls (`gearman_client_do`, `gearman_worker_work` without a runtime) | [`blocking::Client`], [`blocking::work`]: an engine thread underneath, the calling thread blocked |
//! | `gearman_client_create`, `gearman_client_add_server` | [`Client::connect`] (one server, connected now), [`Client::with_servers`] (several, failover in order or [`ClientOptions::hash_by_unique`], reconnect with backoff) |
//! | `gearman_client_do` (`_high`, `_low`) | [`Client::do_job`], or [`Client::submit`] with [`Job::priority`] then [`JobHandle::result`] |
//! | `gearman_client_do_background` (`_high_`, `_low_`) | [`Client::submit_background`] |
//! | `gearman_client_add_task` + `gearman_client_run_tasks` | [`Client::submit`] many times; each [`JobHandle`] yields its own [`JobEvent`]s |
//! | data, warning, status, complete, fail, exception callbacks | [`JobEvent::Data`], `Warning`, `Status`, `Complete`, `Fail`, `Exception` |
//! | `gearman_client_job_status` | [`Client::status`] (asked of the server holding the [`JobRef`]), [`Client::status_handle`]; by unique: [`Client::status_unique`] |
//! | `gearman_client_echo` | [`Client::echo`] |
//! | `gearman_client_set_options(GEARMAN_CLIENT_EXCEPTIONS)` | [`Client::enable_exceptions`] |
//! | `SUBMIT_JOB_EPOCH` | [`Job::at_epoch`] |
//! | `gearman_client_set_timeout` | [`Job::timeout`]: per job, a typed [`Error::TimedOut`] even when no worker exists |
//! | `gearman_worker_add_function` | [`Worker::register`], [`Worker::register_with_timeout`] (`CAN_DO_TIMEOUT`), [`Worker::register_async`] with [`Worker::max_concurrent`] |
//! | `gearman_worker_set_identifier` | [`Worker::client_id`] |
//! | `gearman_worker_add_server`, `gearman_worker_work` | [`Worker::work`] (one server), [`Worker::run`] (several, reconnecting and re-registering) |
//! | `gearman_worker_set_timeout` | [`Worker::poll_interval`] |
//! | stopping a worker cleanly | [`Stopper`]: finish the job in hand, `RESET_ABILITIES`, return |
//! | `gearadmin --status`, `--priority-status`, `--workers`, `--server-version`, `--server-verbose`, `--show-jobs`, `--show-unique-jobs`, `--getpid`, `--cancel-job`, `--create-function`, `--drop-function` (and `--shutdown`) | [`Admin::status`], `priority_status`, `workers`, `version`, `verbose`, `show_jobs`, `show_unique_jobs`, `getpid`, `cancel_job`, `create_function`, `drop_function`, `set_max_queue`, `shutdown`, `shutdown_graceful`; the `jobadmin` program |
//! | `gearman_job_send_data`, `_warning`, `_status` | [`WorkerJob::send_data`], `send_warning`, `send_status` |
//! | `GEARMAN_WORK_FAIL`, `gearman_job_send_exception` | [`WorkError::Fail`], [`WorkError::Exception`] |
//! | `gearman_client_add_options(GEARMAN_CLIENT_SSL)`, `gearman_worker_add_options(GEARMAN_WORKER_SSL)`, `gearman -S`, `gearadmin --ssl` | [`ClientOptions::tls`], [`Worker::tls`], [`Admin::connect_tls`]; `jobc -S`, `jobadmin -S` (feature `rustls`) |
//! | `gearmand --ssl --ssl-ca-file --ssl-certificate --ssl-key` | [`Server::bind_tls`], [`Server::listen_tls`], [`ServerTls::from_files`]; `jobd --ssl`, `--ssl-port`, `--ssl-verify-client`, `--admin-cert` |
//!
//! # Where the server deliberately differs from gearmand 1.1.20
//!
//! - A `SUBMIT_JOB_EPOCH` more than 100 years ahead is answered `ERROR INVALID_EPOCH`
//!   (gearmand drops the packet without a reply, and sometimes the connection).
//! - A `CAN_DO_TIMEOUT` of 0 is no timeout (rather than a job taken back at once).
//! - Every limit in [`Limits`] is enforced and logged; gearmand has few (see the server's
//!   "Limits and defaults").
//! - `shutdown`, `cancel job`, `maxqueue`, `create function` and `drop function` are taken
//!   from loopback only unless `--admin-from` says otherwise; gearmand takes them from
//!   anyone.
//! - A function nobody can do, waits on or configured is forgotten; gearmand keeps every name
//!   ever registered (its `status` lists them with zeros).
//! - A background job is acknowledged only once its record is synced ([`QueueSync`]); a
//!   record that cannot be written is answered `ERROR QUEUE_ERROR`.
//! - `shutdown graceful` (and SIGTERM, SIGINT, SIGUSR1) waits for running jobs, up to `--shutdown-timeout`,
//!   and answers submissions meanwhile `ERROR SHUTTING_DOWN`; gearmand (SIGUSR1, `shutdown
//!   graceful`) closes its listener and waits, with no deadline, until no job is left,
//!   queued ones included (with background jobs queued and no worker, it never exits). SIGTERM stopping gearmand at
//!   once loses its running foreground jobs; ours finish.
//! - With `-w N`, a job still queued 250 ms after its wake-up wakes N more sleepers; gearmand
//!   never wakes again, so a woken worker that never answers holds the job until another
//!   arrives.
//!
//! # Not yet
//!
//! The decoders are fuzzed (`cargo xtask fuzz`), the core
//! has a model-based test (`server/core_model.rs`).
//!
//! A request that meets a connection which has just died fails with [`Error::Disconnected`]
//! (the client cannot know whether the server saw it); the next request reconnects. The
//! client does not resubmit on its own, so a job is never run twice because of it.
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
//! Dependencies: `evcore` (the reactor and executor), `bytes` (zero-copy payloads),
//! `futures-io` (the socket traits), `thiserror`; with feature `server` also `rustix` (the
//! durable queue's `flock`; already in the tree through evcore) and `crc32fast` (record
//! checksums; one small crate, `cfg-if`).
#![forbid(unsafe_code)]
// On docs.rs, items show the features they need.
#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod addr;
mod admin;
pub mod blocking;
mod client;
mod conn;
mod error;
pub mod proto;
#[cfg(feature = "server")]
mod server;
mod tls;
mod worker;

pub use addr::{Resolver, ServerAddr, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PORT};
pub use admin::{Admin, FunctionStatus, PriorityStatus, WorkerInfo};
pub use client::{Client, ClientOptions, Job, JobEvent, JobHandle, JobRef, JobStatus, Priority};
pub use error::Error;
#[cfg(feature = "server")]
pub use server::{
    Limits, Policy, QueueSync, Server, ServerStopper, DEFAULT_SHUTDOWN_TIMEOUT, VERSION,
};
#[cfg(feature = "rustls")]
pub use tls::{ClientTls, ServerTls, TlsConfigError};

/// Entry points for the fuzz targets in `xtask/fuzz`: not an API, not covered by semver.
#[doc(hidden)]
#[cfg(feature = "server")]
pub mod __fuzz {
    /// The durable queue's replay on any bytes.
    pub fn journal_replay(bytes: &[u8]) {
        crate::server::fuzz::journal_replay(bytes);
    }
    /// Connections' byte streams through the server's decoder and core.
    pub fn server_streams(bytes: &[u8]) {
        crate::server::fuzz::server_streams(bytes);
    }
}
pub use worker::{AsyncJob, Stopper, WorkError, Worker, WorkerJob};

/// How long `jobd`'s event loops, and `jobc`'s, poll before they sleep by default
/// (`jobd --busy-poll`, [`evcore::Loop::set_spin`]): long
/// enough for a worker or client on another core to answer a request (a loopback round trip
/// is a few microseconds), short enough to cost little when nobody does. Measured on the
/// sequential workload: 200 µs per job without it, 130 µs with it (gearmand: 240 to 290).
pub const DEFAULT_BUSY_POLL: std::time::Duration = std::time::Duration::from_micros(50);
