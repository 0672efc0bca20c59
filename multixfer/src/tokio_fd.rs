//! The engine's epoll descriptor on tokio's I/O driver (feature `tokio`): the crate's only
//! unsafe call, since tokio 1.54 made registering a descriptor `unsafe`.

use std::io;
use std::os::fd::OwnedFd;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Watches `fd` for readability on the current tokio runtime.
pub(crate) fn watch(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: tokio requires the descriptor to be valid and open, to keep referring to the same
    // open file description, and `as_raw_fd` to return the same number, for the `AsyncFd`'s
    // whole life. An `OwnedFd` moved into it guarantees all three: it is open (owned), nobody
    // else can close or replace it, and its number never changes.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(io::Error::from)
}
