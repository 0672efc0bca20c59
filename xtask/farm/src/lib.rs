//! The fetch farm behind `cargo xtask demo`: the four crates of this workspace doing one job
//! together, on embedded defaults, with no external server.
//!
//! - The coordinator starts an HTTP server with a few thousand files of varied sizes (a thread
//!   per connection; their bytes follow from their number, so every one can be checked), the
//!   embedded Gearman job server (`jobclient::Server`), and `groupd` (groupmsg's daemon).
//! - Worker processes (this same program, `demo-worker`) register `fetch_batch` with the job
//!   server. A job is a batch of URLs: the worker fetches them concurrently with a
//!   `multixfer` client, writes each body through a `reqqueue`-serialized writer into its
//!   output file, reports status and warnings (404s) to Gearman, and announces `start`,
//!   `half` and `done` in a `groupmsg` group.
//! - The coordinator submits the batches (some high priority, some background), follows them
//!   (events for foreground jobs, `GET_STATUS` for background ones), and SIGKILLs one worker
//!   halfway through a job once half the jobs have started: the job server requeues that job,
//!   another worker finishes it, and the group reports the process down. (Workers wait at
//!   each job's halfway point for the coordinator's `go`, so the kill cannot race the job's
//!   end.)
//! - At the end it stops the workers through the group, reads every output file, checks every
//!   record against what the server served, prints a report and fails if anything is missing
//!   or wrong.
//!
//! `--gearmand HOST:PORT` uses a real job server instead; `--corosync` puts the group on
//! corosync (build with the `corosync` feature: `cargo run -p farm --features corosync --
//! --corosync`).

mod check;
mod content;
mod coordinator;
mod group;
mod http;
mod options;
mod report;
mod watch;
mod worker;

pub use coordinator::run;
pub use worker::main as worker_main;
