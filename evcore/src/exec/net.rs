//! Unix-domain sockets beside the TCP ones, and a `SO_REUSEPORT` listener for servers that run
//! one loop per core.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::{self as unix, UnixListener, UnixStream};
use std::path::Path;

use rustix::net::{AddressFamily, SocketAddrUnix};

use super::io::stream_socket;
use super::{Async, Handle};
use crate::Reactor;

/// The listen backlog of the listeners made here: the kernel caps it at
/// `net.core.somaxconn` (4,096 by default since Linux 5.4).
const BACKLOG: i32 = 4096;

impl<R: Reactor + 'static> Async<TcpListener, R> {
    /// Binds a listener with `SO_REUSEPORT` (and `SO_REUSEADDR`): several listeners, one per
    /// event loop, may bind the same address, and the kernel spreads incoming connections
    /// over them by a hash of the peer's address and port. All of them must set the option,
    /// under the same user. A listener closed while connections wait in its queue drops those
    /// connections (the kernel does not move them to the others).
    ///
    /// ```
    /// use evcore::{Async, Executor};
    /// use std::net::TcpListener;
    ///
    /// let (a, b) = (Executor::new()?, Executor::new()?);
    /// let first = Async::<TcpListener>::bind_reuseport("127.0.0.1:0".parse().unwrap(), &a.handle())?;
    /// let addr = first.get_ref().local_addr()?;
    /// let second = Async::<TcpListener>::bind_reuseport(addr, &b.handle())?;
    /// assert_eq!(second.get_ref().local_addr()?, addr);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind_reuseport(
        addr: SocketAddr,
        handle: &Handle<R>,
    ) -> io::Result<Async<TcpListener, R>> {
        let fd =
            stream_socket(if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 })?;
        rustix::net::sockopt::set_socket_reuseaddr(&fd, true)?;
        rustix::net::sockopt::set_socket_reuseport(&fd, true)?;
        rustix::net::bind(&fd, &addr)?;
        rustix::net::listen(&fd, BACKLOG)?;
        Async::new(TcpListener::from(fd), handle)
    }
}

impl<R: Reactor + 'static> Async<UnixListener, R> {
    /// Binds a Unix-domain stream listener at `path` (which must not exist).
    ///
    /// ```
    /// use evcore::{Async, Executor};
    /// use futures_util::{AsyncReadExt, AsyncWriteExt};
    /// use std::os::unix::net::{UnixListener, UnixStream};
    ///
    /// let dir = std::env::temp_dir().join(format!("evcore-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("sock");
    /// let _ = std::fs::remove_file(&path);
    /// let ex = Executor::new()?;
    /// let h = ex.handle();
    /// ex.block_on(async {
    ///     let listener = Async::<UnixListener>::bind(&path, &h)?;
    ///     let mut client = Async::<UnixStream>::connect(&path, &h).await?;
    ///     let (mut conn, _) = listener.accept().await?;
    ///     client.write_all(b"ping").await?;
    ///     let mut buf = [0; 4];
    ///     conn.read_exact(&mut buf).await?;
    ///     assert_eq!(&buf, b"ping");
    ///     std::io::Result::Ok(())
    /// })?;
    /// std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind(path: impl AsRef<Path>, handle: &Handle<R>) -> io::Result<Async<UnixListener, R>> {
        Async::new(UnixListener::bind(path)?, handle)
    }

    /// Accepts a connection.
    pub async fn accept(&self) -> io::Result<(Async<UnixStream, R>, unix::SocketAddr)> {
        let (stream, addr) = self.read_with(|l| l.accept()).await?;
        Ok((Async::new(stream, self.handle())?, addr))
    }
}

impl<R: Reactor + 'static> Async<UnixStream, R> {
    /// Connects to the Unix-domain listener at `path` without blocking the loop. A listener
    /// whose backlog is full refuses with `WouldBlock` (Linux does not queue the attempt).
    pub async fn connect(
        path: impl AsRef<Path>,
        handle: &Handle<R>,
    ) -> io::Result<Async<UnixStream, R>> {
        let addr = SocketAddrUnix::new(path.as_ref())?;
        let fd = stream_socket(AddressFamily::UNIX)?;
        let pending = match rustix::net::connect(&fd, &addr) {
            Ok(()) => false,
            Err(rustix::io::Errno::INPROGRESS) => true,
            Err(e) => return Err(e.into()),
        };
        let stream = Async::new(UnixStream::from(fd), handle)?;
        if pending {
            stream.writable().await?;
            if let Err(e) = rustix::net::sockopt::socket_error(stream.get_ref())? {
                return Err(e.into());
            }
        }
        Ok(stream)
    }

    /// A connected pair, both on the executor behind `handle`.
    pub fn pair(handle: &Handle<R>) -> io::Result<(Async<UnixStream, R>, Async<UnixStream, R>)> {
        let (a, b) = UnixStream::pair()?;
        Ok((Async::new(a, handle)?, Async::new(b, handle)?))
    }
}
