//! The real peers, started on 127.0.0.1 for interop tests and benchmarks.
//!
//! Every peer comes from Debian's packages (see `../shared/PEERS.md` for the recipes this
//! follows). Each starter:
//!
//! - finds the binary, and when it is missing installs its package with `apt-get` if running as
//!   root, or fails with the package's name (never skips: a missing peer is a failure);
//! - runs the peer in the foreground with every path in a scratch directory under
//!   `target/peers/`, on a free loopback port;
//! - waits (bounded) until the peer answers, not for a fixed time;
//! - stops it by PID when the handle is dropped (SIGTERM, then SIGKILL if it lingers).
//!
//! Corosync allows one daemon per network namespace, so [`Corosync`] holds an exclusive lock
//! that serializes its users across test binaries.

#![forbid(unsafe_code)]

mod browser;
mod cbuild;
mod corosync;
mod gearmand;
mod install;
mod nghttpd;
mod nginx;
mod process;

pub use browser::{Chromedriver, Session};
pub use cbuild::build_c;
pub use corosync::Corosync;
pub use gearmand::Gearmand;
pub use install::{ensure_packages, require_binary, PEER_PACKAGES};
pub use nghttpd::Nghttpd;
pub use nginx::{Nginx, NginxConfig};
pub use process::{free_port, scratch_dir, workspace_root};
