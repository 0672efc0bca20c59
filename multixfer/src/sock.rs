//! Non-blocking TCP through rustix's safe wrappers: connect that returns at once, send with
//! `MSG_NOSIGNAL` (so no SIGPIPE, and no signal-mask juggling as libcurl does without it).

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::{self, sockopt, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

/// Starts connecting; `Ok(true)` when already connected, `Ok(false)` when in progress.
pub(crate) fn connect(addr: SocketAddr) -> io::Result<(OwnedFd, bool)> {
    let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    let fd = net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    sockopt::set_tcp_nodelay(&fd, true)?;
    match net::connect(&fd, &addr) {
        Ok(()) => Ok((fd, true)),
        Err(Errno::INPROGRESS) | Err(Errno::AGAIN) => Ok((fd, false)),
        Err(e) => Err(e.into()),
    }
}

/// The outcome of a connect in progress once the socket is writable (or in error).
pub(crate) fn connect_result(fd: &OwnedFd) -> io::Result<()> {
    match sockopt::socket_error(fd)? {
        Ok(()) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Sends without raising SIGPIPE; `WouldBlock` when the socket is full.
pub(crate) fn send(fd: &OwnedFd, buf: &[u8]) -> io::Result<usize> {
    Ok(net::send(fd, buf, SendFlags::NOSIGNAL)?)
}

/// Receives into `buf`; 0 at end of stream; `WouldBlock` when nothing is there.
pub(crate) fn recv(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    Ok(net::recv(fd, buf, RecvFlags::empty())?.0)
}
