//! `Async<T>`: a non-blocking descriptor whose readiness is awaited on the reactor.

use std::fmt;
use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};

use rustix::net::{AddressFamily, SocketFlags, SocketType};

use super::{Handle, Shared};
use crate::{Interest, Loop, Reactor, Ready, Token};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Read,
    Write,
}

pub(crate) struct IoState {
    fd: RawFd,
    /// What the reactor is asked to watch. It is narrowed lazily: only when the reactor reports
    /// a direction that nobody is waiting for, so a task that reads until `WouldBlock` and waits
    /// again costs no `epoll_ctl` at all.
    interest: Option<Interest>,
    reader: Option<Waker>,
    writer: Option<Waker>,
    /// Readiness reported since the last successful wait, per direction.
    readable: bool,
    writable: bool,
}

pub(crate) fn deliver<R: Reactor>(shared: &Shared<R>, key: usize, ready: Ready) {
    let mut wake = [None, None];
    let (fd, change) = {
        let mut io = shared.io.borrow_mut();
        let Some(st) = io.get_mut(key) else { return };
        let Some(interest) = st.interest else { return };
        let broken = ready.is_error() || ready.is_hangup();
        let mut keep_read = interest.is_readable();
        let mut keep_write = interest.is_writable();
        if keep_read && (ready.is_readable() || broken) {
            st.readable = true;
            wake[0] = st.reader.take();
            keep_read = wake[0].is_some();
        }
        if keep_write && (ready.is_writable() || broken) {
            st.writable = true;
            wake[1] = st.writer.take();
            keep_write = wake[1].is_some();
        }
        let narrowed = Interest::from_flags(keep_read, keep_write);
        let change = (narrowed != Some(interest)).then(|| {
            st.interest = narrowed;
            narrowed
        });
        (st.fd, change)
    };
    if let Some(interest) = change {
        let mut reactor = shared.reactor();
        // A failure here leaves the registration wider than needed, which costs a spurious
        // event, not correctness; the next wait re-registers as it needs.
        let _ = match interest {
            Some(interest) => reactor.reregister(fd, Token(key), interest),
            None => reactor.deregister(fd),
        };
    }
    for waker in wake.into_iter().flatten() {
        waker.wake();
    }
}

/// A non-blocking descriptor (socket, pipe, eventfd…) registered with an executor's reactor.
///
/// `Async<TcpStream>` and friends implement `futures::io::AsyncRead` and `AsyncWrite`.
///
/// ```
/// use evcore::{Async, Executor};
/// use futures_util::{AsyncReadExt, AsyncWriteExt};
/// use std::net::{TcpListener, TcpStream};
///
/// let ex = Executor::new()?;
/// let h = ex.handle();
/// ex.block_on(async {
///     let listener = Async::<TcpListener>::bind("127.0.0.1:0".parse().unwrap(), &h)?;
///     let addr = listener.get_ref().local_addr()?;
///     let server = h.spawn_local(async move {
///         let (mut conn, _) = listener.accept().await?;
///         let mut buf = [0; 5];
///         conn.read_exact(&mut buf).await?;
///         conn.write_all(&buf).await?;
///         std::io::Result::Ok(())
///     });
///     let mut client = Async::<TcpStream>::connect(addr, &h).await?;
///     client.write_all(b"hello").await?;
///     let mut echo = [0; 5];
///     client.read_exact(&mut echo).await?;
///     assert_eq!(&echo, b"hello");
///     server.await
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Async<T: AsFd, R: Reactor = Loop> {
    io: Option<T>,
    key: usize,
    fd: RawFd,
    handle: Handle<R>,
}

impl<T: AsFd, R: Reactor + 'static> Async<T, R> {
    /// Puts `io` in non-blocking mode and attaches it to the executor behind `handle`. Nothing is
    /// registered with the reactor until the first wait.
    pub fn new(io: T, handle: &Handle<R>) -> io::Result<Async<T, R>> {
        rustix::io::ioctl_fionbio(&io, true)?;
        let fd = io.as_fd().as_raw_fd();
        let key = handle.shared.io.borrow_mut().insert(IoState {
            fd,
            interest: None,
            reader: None,
            writer: None,
            readable: false,
            writable: false,
        });
        Ok(Async { io: Some(io), key, fd, handle: handle.clone() })
    }

    /// The executor this descriptor is attached to.
    pub(crate) fn handle(&self) -> &Handle<R> {
        &self.handle
    }

    /// The inner descriptor.
    pub fn get_ref(&self) -> &T {
        self.io.as_ref().expect("present until dropped")
    }

    /// Detaches the descriptor from the reactor and returns it (still non-blocking).
    pub fn into_inner(mut self) -> io::Result<T> {
        self.detach()?;
        Ok(self.io.take().expect("present until dropped"))
    }

    /// Waits until the descriptor is readable (or at end of stream, or in error).
    pub async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_readable(cx)).await
    }

    /// Waits until the descriptor is writable (or in error).
    pub async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_writable(cx)).await
    }

    /// Polls for readability; see [`readable`](Self::readable).
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_ready(cx, Direction::Read)
    }

    /// Polls for writability; see [`writable`](Self::writable).
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_ready(cx, Direction::Write)
    }

    /// Drops the readiness the reactor reported so far, before a read that will see all of it.
    fn forget_readable(&self) {
        if let Ok(mut io) = self.handle.shared.io.try_borrow_mut() {
            if let Some(st) = io.get_mut(self.key) {
                st.readable = false;
            }
        }
    }

    /// Runs a non-blocking read operation until it stops failing with `WouldBlock`.
    pub async fn read_with<U>(&self, mut op: impl FnMut(&T) -> io::Result<U>) -> io::Result<U> {
        loop {
            match op(self.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable().await?,
                result => return result,
            }
        }
    }

    /// Runs a non-blocking write operation until it stops failing with `WouldBlock`.
    pub async fn write_with<U>(&self, mut op: impl FnMut(&T) -> io::Result<U>) -> io::Result<U> {
        loop {
            match op(self.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                result => return result,
            }
        }
    }

    fn poll_ready(&self, cx: &mut Context<'_>, dir: Direction) -> Poll<io::Result<()>> {
        let shared = &self.handle.shared;
        let change = {
            let mut io = shared.io.borrow_mut();
            let st = &mut io[self.key];
            let (flag, waiter) = match dir {
                Direction::Read => (&mut st.readable, &mut st.reader),
                Direction::Write => (&mut st.writable, &mut st.writer),
            };
            if std::mem::take(flag) {
                return Poll::Ready(Ok(()));
            }
            if !waiter.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *waiter = Some(cx.waker().clone());
            }
            let (r, w) = st.interest.map_or((false, false), |i| (i.is_readable(), i.is_writable()));
            let wanted = match dir {
                Direction::Read => Interest::from_flags(true, w),
                Direction::Write => Interest::from_flags(r, true),
            };
            if wanted == st.interest {
                None
            } else {
                let old = st.interest;
                st.interest = wanted;
                Some((old, wanted.expect("one direction is always wanted here")))
            }
        };
        if let Some((old, new)) = change {
            let mut reactor = shared.reactor();
            let result = match old {
                None => reactor.register(self.fd, Token(self.key), new),
                Some(_) => reactor.reregister(self.fd, Token(self.key), new),
            };
            if let Err(e) = result {
                drop(reactor);
                shared.io.borrow_mut()[self.key].interest = old;
                return Poll::Ready(Err(e));
            }
        }
        Poll::Pending
    }

    fn detach(&mut self) -> io::Result<()> {
        let shared = &self.handle.shared;
        let registered = match shared.io.try_borrow_mut() {
            Ok(mut io) => io.try_remove(self.key).is_some_and(|st| st.interest.is_some()),
            // The executor is being torn down and holds the table: it is dropping everything.
            Err(_) => false,
        };
        self.key = usize::MAX;
        if registered {
            if let Ok(mut reactor) = shared.reactor.try_borrow_mut() {
                reactor.deregister(self.fd)?;
            }
        }
        Ok(())
    }
}

impl<R: Reactor + 'static> Async<TcpListener, R> {
    /// Binds a listener.
    pub fn bind(addr: SocketAddr, handle: &Handle<R>) -> io::Result<Async<TcpListener, R>> {
        Async::new(TcpListener::bind(addr)?, handle)
    }

    /// Accepts a connection.
    pub async fn accept(&self) -> io::Result<(Async<TcpStream, R>, SocketAddr)> {
        let (stream, addr) = self.read_with(|l| l.accept()).await?;
        Ok((Async::new(stream, &self.handle)?, addr))
    }
}

impl<R: Reactor + 'static> Async<TcpStream, R> {
    /// Connects without blocking the loop.
    pub async fn connect(addr: SocketAddr, handle: &Handle<R>) -> io::Result<Async<TcpStream, R>> {
        let fd =
            stream_socket(if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 })?;
        match rustix::net::connect(&fd, &addr) {
            Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
            Err(e) => return Err(e.into()),
        }
        let stream = Async::new(TcpStream::from(fd), handle)?;
        stream.writable().await?;
        match rustix::net::sockopt::socket_error(stream.get_ref())? {
            Ok(()) => Ok(stream),
            Err(e) => Err(e.into()),
        }
    }
}

/// A non-blocking, close-on-exec stream socket of `family`: what every connect and listener
/// here starts from.
pub(super) fn stream_socket(family: AddressFamily) -> io::Result<std::os::fd::OwnedFd> {
    Ok(rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?)
}

impl<T: AsFd, R: Reactor> Drop for Async<T, R> {
    fn drop(&mut self) {
        if self.key == usize::MAX {
            return;
        }
        let shared = &self.handle.shared;
        let registered = match shared.io.try_borrow_mut() {
            Ok(mut io) => io.try_remove(self.key).is_some_and(|st| st.interest.is_some()),
            Err(_) => false,
        };
        if registered {
            if let Ok(mut reactor) = shared.reactor.try_borrow_mut() {
                // Deregister before the descriptor closes (when `io` drops after this).
                let _ = reactor.deregister(self.fd);
            }
        }
    }
}

impl<T: AsFd, R: Reactor + 'static> futures_io::AsyncRead for Async<T, R>
where
    for<'a> &'a T: Read,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self).poll_read(cx, buf)
    }
}

impl<T: AsFd, R: Reactor + 'static> futures_io::AsyncWrite for Async<T, R>
where
    for<'a> &'a T: Write,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self).poll_close(cx)
    }
}

/// Reading through a shared reference, so that one task can read while another writes, or
/// several writers take turns (each write is one syscall on the descriptor).
impl<T: AsFd, R: Reactor + 'static> futures_io::AsyncRead for &Async<T, R>
where
    for<'a> &'a T: Read,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            // The read sees everything that arrived before it: readiness reported so far is
            // used up by it, so a read that then finds nothing waits at once instead of
            // trying again on a stale report (a second EAGAIN per wake-up).
            self.forget_readable();
            match self.get_ref().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready!(self.poll_readable(cx))?,
                result => return Poll::Ready(result),
            }
        }
    }
}

/// Writing through a shared reference; see the `AsyncRead` impl for `&Async`.
impl<T: AsFd, R: Reactor + 'static> futures_io::AsyncWrite for &Async<T, R>
where
    for<'a> &'a T: Write,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.get_ref().write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready!(self.poll_writable(cx))?,
                result => return Poll::Ready(result),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl<T: AsFd + fmt::Debug, R: Reactor> fmt::Debug for Async<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Async").field("io", &self.io).finish_non_exhaustive()
    }
}
