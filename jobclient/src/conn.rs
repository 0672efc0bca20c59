//! One connection to a job server: a socket, its buffers and the decoder.

use std::future::{poll_fn, Future};
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use evcore::{Async, Handle};

use crate::addr::{Resolver, ServerAddr};
use crate::tls::{Connector, Stream};
use futures_io::{AsyncRead, AsyncWrite};

use crate::proto::{encode, Decoder, Frame, Magic, Packet, PacketType, ProtoError};
use crate::Error;

/// How much a read asks for at once.
const READ_CHUNK: usize = 64 * 1024;

/// `attempt` if it ends within `timeout`, else a `TimedOut` error naming `target`.
pub(crate) async fn within<T>(
    timeout: Duration,
    handle: &Handle,
    target: impl std::fmt::Display,
    attempt: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    let mut attempt = std::pin::pin!(attempt);
    let mut sleep = handle.sleep(timeout);
    poll_fn(|cx| {
        if let Poll::Ready(r) = attempt.as_mut().poll(cx) {
            return Poll::Ready(r);
        }
        match Pin::new(&mut sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connecting to {target}: no answer within {timeout:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

pub(crate) struct Conn {
    sock: Stream,
    rbuf: BytesMut,
    pub(crate) wbuf: BytesMut,
    decoder: Decoder,
}

impl Conn {
    /// Connects to the first address of `target` that answers (a name is looked up now, so a
    /// server that moved is found); returns the connection and the address it reached.
    ///
    /// The lookup, the connects and the TLS handshakes together get `timeout`: a server that
    /// takes the connection and never answers (or a lookup that hangs) fails the attempt
    /// rather than hold it, and everything waiting on it, for ever.
    pub(crate) async fn connect_any(
        target: &ServerAddr,
        resolver: &Resolver,
        tls: Option<&Connector>,
        timeout: Duration,
        handle: &Handle,
    ) -> io::Result<(Conn, SocketAddr)> {
        let attempt = async {
            // A certificate refused is the error to report, rather than a later address's
            // refused connect.
            let (mut first_tls, mut last) = (None, None);
            for addr in resolver.resolve(target).await? {
                match Conn::connect(addr, target.host_name(), tls, handle).await {
                    Ok(conn) => return Ok((conn, addr)),
                    Err(e) if first_tls.is_none() && crate::tls::tls_failure(&e).is_some() => {
                        first_tls = Some(e)
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(first_tls.or(last).unwrap_or_else(|| io::ErrorKind::NotFound.into()))
        };
        within(timeout, handle, target, attempt).await
    }

    /// Connects, and under TLS does the handshake (checking the certificate against `host`
    /// when the server was named, else against the address): a refused certificate fails
    /// here.
    pub(crate) async fn connect(
        addr: SocketAddr,
        host: Option<&str>,
        tls: Option<&Connector>,
        handle: &Handle,
    ) -> io::Result<Conn> {
        let sock = Async::<TcpStream>::connect(addr, handle).await?;
        sock.get_ref().set_nodelay(true)?;
        let sock = crate::tls::connect(sock, host, tls).await?;
        Ok(Conn {
            sock,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::new(),
            decoder: Decoder::client(),
        })
    }

    /// Appends a request packet to the write buffer.
    pub(crate) fn queue(&mut self, kind: PacketType, args: &[&[u8]]) -> Result<(), ProtoError> {
        encode(&mut self.wbuf, Magic::Req, kind, args)
    }

    /// Writes out the write buffer.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.wbuf.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.sock).poll_write(cx, &self.wbuf))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let _ = self.wbuf.split_to(n);
        }
        // Under TLS, the records of what was written may wait for the socket.
        Pin::new(&mut self.sock).poll_flush(cx)
    }

    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// The next response packet: decodes from what is buffered, reading more as needed.
    pub(crate) fn poll_packet(&mut self, cx: &mut Context<'_>) -> Poll<Result<Packet, Error>> {
        loop {
            match self.decoder.decode(&mut self.rbuf)? {
                Some(Frame::Packet(p)) if p.magic() == Magic::Res => return Poll::Ready(Ok(p)),
                Some(Frame::Packet(p)) => {
                    return Poll::Ready(Err(ProtoError::Unexpected {
                        magic: p.magic(),
                        kind: p.kind(),
                    }
                    .into()))
                }
                Some(Frame::Admin(_)) => unreachable!("a client decoder yields no text"),
                None => {}
            }
            let len = self.rbuf.len();
            self.rbuf.resize(len + READ_CHUNK, 0);
            let read = Pin::new(&mut self.sock).poll_read(cx, &mut self.rbuf[len..]);
            match read {
                Poll::Ready(Ok(0)) => {
                    self.rbuf.truncate(len);
                    return Poll::Ready(Err(Error::Disconnected));
                }
                Poll::Ready(Ok(n)) => self.rbuf.truncate(len + n),
                Poll::Ready(Err(e)) => {
                    self.rbuf.truncate(len);
                    return Poll::Ready(Err(e.into()));
                }
                Poll::Pending => {
                    self.rbuf.truncate(len);
                    return Poll::Pending;
                }
            }
        }
    }

    pub(crate) async fn packet(&mut self) -> Result<Packet, Error> {
        poll_fn(|cx| self.poll_packet(cx)).await
    }
}
