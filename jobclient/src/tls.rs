//! TLS for every connection (feature `rustls`): the client, the worker, [`Admin`](crate::Admin)
//! and the server, through rustls with its `ring` provider (no C, no OpenSSL).
//!
//! A client trusts the CAs of the file it is given (gearmand's `--ssl-ca-file`, the gearman
//! tool's), else the system's bundle (`SSL_CERT_FILE`, else Debian's
//! `/etc/ssl/certs/ca-certificates.crt`), and may present a certificate of its own. Unlike
//! libgearman, the server's name is checked as well as its chain: the address connected to
//! (an IP address must be in the certificate's subject alternative names), or the name given
//! with [`ClientTls::server_name`]. A server presents its certificate and may ask clients for
//! theirs ([`ServerTls::from_files`]).
//!
//! There is no fallback: a TLS client that meets a plaintext server, or the reverse, fails
//! with an error ([`Error::Tls`](crate::Error::Tls) or a protocol error), never speaking
//! plaintext. Without the feature none of these types exist, and `jobd`, `jobc` and
//! `jobadmin` refuse their TLS flags.

use std::io;
use std::net::TcpStream;
use std::pin::Pin;
use std::task::{Context, Poll};

use evcore::Async;
use futures_io::{AsyncRead, AsyncWrite};

#[cfg(feature = "rustls")]
pub use with_rustls::{ClientTls, ServerTls, TlsConfigError};

/// A connection's byte stream: the socket itself, or TLS over it.
pub(crate) enum Stream {
    /// Plaintext.
    Plain(Async<TcpStream>),
    /// TLS (boxed: a session is a few KiB).
    #[cfg(feature = "rustls")]
    Tls(Box<with_rustls::TlsStream>),
}

impl Stream {
    #[cfg(feature = "server")]
    /// Whether a read that came back short took everything there was, so that the next read
    /// may wait for the socket to be readable. Not so under TLS: decrypted bytes and records
    /// not yet decrypted may wait in the session.
    pub(crate) fn short_read_drains(&self) -> bool {
        matches!(self, Stream::Plain(_))
    }

    #[cfg(feature = "server")]
    /// Waits until the socket is readable (only for [`Stream::Plain`]; a TLS stream is ready).
    pub(crate) fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Plain(s) => s.poll_readable(cx),
            #[cfg(feature = "rustls")]
            Stream::Tls(_) => Poll::Ready(Ok(())),
        }
    }

    #[cfg(feature = "server")]
    /// Whether this is TLS.
    pub(crate) fn is_tls(&self) -> bool {
        !matches!(self, Stream::Plain(_))
    }

    #[cfg(feature = "server")]
    /// Whether a TLS handshake is still under way.
    pub(crate) fn handshaking(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            #[cfg(feature = "rustls")]
            Stream::Tls(t) => t.conn.is_handshaking(),
        }
    }

    #[cfg(feature = "server")]
    /// The peer's certificate (DER), once a TLS handshake checked it.
    pub(crate) fn peer_certificate(&self) -> Option<&[u8]> {
        match self {
            Stream::Plain(_) => None,
            #[cfg(feature = "rustls")]
            Stream::Tls(t) => t.conn.peer_certificates().and_then(|c| c.first()).map(|c| &c[..]),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "rustls")]
            Stream::Tls(t) => t.poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "rustls")]
            Stream::Tls(t) => t.poll_write(cx, buf),
        }
    }

    /// Under TLS, writes out the records the session holds (a written buffer may sit there
    /// when the socket was full).
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "rustls")]
            Stream::Tls(t) => t.write_tls(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_close(cx),
            #[cfg(feature = "rustls")]
            Stream::Tls(t) => t.poll_close(cx),
        }
    }
}

/// Whether an I/O error is a TLS failure (a certificate refused, an alert, records that are
/// not TLS), with its text.
pub(crate) fn tls_failure(e: &io::Error) -> Option<String> {
    #[cfg(feature = "rustls")]
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return Some(inner.to_string());
    }
    let _ = e;
    None
}

/// A server's TLS settings, or none (the type is empty without the feature).
#[cfg(all(feature = "server", feature = "rustls"))]
pub(crate) type Acceptor = ServerTls;
/// A server's TLS settings: none exist without the feature.
#[cfg(all(feature = "server", not(feature = "rustls")))]
#[derive(Clone, Debug)]
pub(crate) enum Acceptor {}

/// Wraps an accepted socket as `tls` says.
#[cfg(feature = "server")]
pub(crate) fn accept(sock: Async<TcpStream>, tls: Option<&Acceptor>) -> io::Result<Stream> {
    match tls {
        None => Ok(Stream::Plain(sock)),
        #[cfg(feature = "rustls")]
        Some(tls) => Ok(Stream::Tls(Box::new(with_rustls::TlsStream::server(sock, tls)?))),
        #[cfg(not(feature = "rustls"))]
        Some(never) => match *never {},
    }
}

/// A client's TLS settings, or none (the type is empty without the feature).
#[cfg(feature = "rustls")]
pub(crate) type Connector = ClientTls;
/// A client's TLS settings: none exist without the feature.
#[cfg(not(feature = "rustls"))]
#[derive(Clone, Debug)]
pub(crate) enum Connector {}

/// Wraps a connected socket as `tls` says; under TLS, the handshake is done before this
/// returns, so that a refused certificate fails the connect.
pub(crate) async fn connect(
    sock: Async<TcpStream>,
    host: Option<&str>,
    tls: Option<&Connector>,
) -> io::Result<Stream> {
    match tls {
        None => Ok(Stream::Plain(sock)),
        #[cfg(feature = "rustls")]
        Some(tls) => {
            let ip = sock.get_ref().peer_addr()?.ip();
            let mut t = with_rustls::TlsStream::client(sock, tls, host, ip)?;
            std::future::poll_fn(|cx| t.poll_handshake(cx)).await?;
            Ok(Stream::Tls(Box::new(t)))
        }
        #[cfg(not(feature = "rustls"))]
        Some(never) => {
            let _ = host;
            match *never {}
        }
    }
}

#[cfg(feature = "rustls")]
mod with_rustls {
    use std::fmt;
    use std::io::{self, Read, Write};
    use std::net::{IpAddr, TcpStream};
    use std::path::{Path, PathBuf};
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{ready, Context, Poll};

    use evcore::Async;
    use futures_io::{AsyncRead, AsyncWrite};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use rustls::server::WebPkiClientVerifier;
    use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig};

    /// Where the system's certificates are on Debian.
    const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

    /// A TLS setting that could not be used: a file missing or not PEM, a key that does not
    /// fit, a server name that is not one.
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    pub struct TlsConfigError(String);

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
        let failed =
            |e: &dyn fmt::Display| TlsConfigError(format!("{what} {}: {e}", path.display()));
        let certs: Vec<_> = CertificateDer::pem_file_iter(path)
            .map_err(|e| failed(&e))?
            .collect::<Result<_, _>>()
            .map_err(|e| failed(&e))?;
        if certs.is_empty() {
            return Err(failed(&"no certificate in it"));
        }
        Ok(certs)
    }

    fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
        PrivateKeyDer::from_pem_file(path)
            .map_err(|e| TlsConfigError(format!("key file {}: {e}", path.display())))
    }

    fn roots(path: &Path) -> Result<RootCertStore, TlsConfigError> {
        let mut roots = RootCertStore::empty();
        for cert in certs(path, "CA file")? {
            roots
                .add(cert)
                .map_err(|e| TlsConfigError(format!("CA file {}: {e}", path.display())))?;
        }
        Ok(roots)
    }

    fn setup(e: rustls::Error) -> TlsConfigError {
        TlsConfigError(e.to_string())
    }

    /// A client's TLS settings (`gearman -S --ssl-ca-file ... --ssl-certificate ...
    /// --ssl-key ...`). Cheap to clone; one serves every connection of a client.
    #[derive(Clone)]
    pub struct ClientTls {
        config: Arc<ClientConfig>,
        name: Option<ServerName<'static>>,
    }

    impl ClientTls {
        /// Trusts the CAs in `ca_file` (PEM), or the system's bundle with `None`; presents
        /// the certificate chain and key of `identity` (PEM files) when a server asks.
        pub fn from_files(
            ca_file: Option<&Path>,
            identity: Option<(&Path, &Path)>,
        ) -> Result<ClientTls, TlsConfigError> {
            let ca: PathBuf = match ca_file {
                Some(p) => p.into(),
                None => std::env::var_os("SSL_CERT_FILE").map_or(SYSTEM_BUNDLE.into(), Into::into),
            };
            let builder = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(setup)?
                .with_root_certificates(roots(&ca)?);
            let config = match identity {
                Some((cert, key_file)) => builder
                    .with_client_auth_cert(certs(cert, "certificate file")?, key(key_file)?)
                    .map_err(setup)?,
                None => builder.with_no_client_auth(),
            };
            Ok(ClientTls::from_config(Arc::new(config)))
        }

        /// Any rustls client configuration (pinned certificates, other providers).
        pub fn from_config(config: Arc<ClientConfig>) -> ClientTls {
            ClientTls { config, name: None }
        }

        /// The rustls configuration (for a blocking connection of one's own, say).
        pub fn config(&self) -> Arc<ClientConfig> {
            self.config.clone()
        }

        /// The name the server's certificate must carry, instead of the address connected to
        /// (a host name, or an IP address written out).
        pub fn server_name(mut self, name: &str) -> Result<ClientTls, TlsConfigError> {
            let name = ServerName::try_from(name.to_string())
                .map_err(|e| TlsConfigError(format!("server name {name:?}: {e}")))?;
            self.name = Some(name);
            Ok(self)
        }
    }

    impl fmt::Debug for ClientTls {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("ClientTls").field("server_name", &self.name).finish_non_exhaustive()
        }
    }

    /// A server's TLS settings (`gearmand --ssl --ssl-certificate ... --ssl-key ...
    /// --ssl-ca-file ...`). Cheap to clone.
    #[derive(Clone)]
    pub struct ServerTls {
        config: Arc<ServerConfig>,
    }

    impl ServerTls {
        /// Presents the chain in `cert` with `key` (PEM files). With `client_ca`, clients'
        /// certificates are checked against it: required with `require_client_cert`
        /// (`jobd --ssl-verify-client`), else checked only when a client presents one.
        pub fn from_files(
            cert: &Path,
            key_file: &Path,
            client_ca: Option<&Path>,
            require_client_cert: bool,
        ) -> Result<ServerTls, TlsConfigError> {
            let builder = ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(setup)?;
            let builder = match client_ca {
                Some(ca) => {
                    let verifier = WebPkiClientVerifier::builder_with_provider(
                        Arc::new(roots(ca)?),
                        provider(),
                    );
                    let verifier = if require_client_cert {
                        verifier
                    } else {
                        verifier.allow_unauthenticated()
                    };
                    builder.with_client_cert_verifier(
                        verifier.build().map_err(|e| TlsConfigError(e.to_string()))?,
                    )
                }
                None if require_client_cert => {
                    return Err(TlsConfigError(
                        "client certificates can be required only with a CA file to check \
                         them against"
                            .into(),
                    ))
                }
                None => builder.with_no_client_auth(),
            };
            let config = builder
                .with_single_cert(certs(cert, "certificate file")?, key(key_file)?)
                .map_err(setup)?;
            Ok(ServerTls::from_config(Arc::new(config)))
        }

        /// Any rustls server configuration.
        pub fn from_config(config: Arc<ServerConfig>) -> ServerTls {
            ServerTls { config }
        }

        /// The rustls configuration.
        pub fn config(&self) -> Arc<ServerConfig> {
            self.config.clone()
        }
    }

    impl fmt::Debug for ServerTls {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("ServerTls").finish_non_exhaustive()
        }
    }

    /// A socket as `Read`/`Write` for rustls: not ready is `WouldBlock`, with the waker
    /// registered.
    struct Io<'a, 'b> {
        sock: &'a mut Async<TcpStream>,
        cx: &'a mut Context<'b>,
    }

    impl Read for Io<'_, '_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match Pin::new(&mut *self.sock).poll_read(self.cx, buf) {
                Poll::Ready(r) => r,
                Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
            }
        }
    }

    impl Write for Io<'_, '_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            match Pin::new(&mut *self.sock).poll_write(self.cx, buf) {
                Poll::Ready(r) => r,
                Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
            }
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A TLS failure as an I/O error that [`tls_failure`](super::tls_failure) recognises.
    fn failure(e: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    /// One TLS session over a socket.
    pub(crate) struct TlsStream {
        pub(super) sock: Async<TcpStream>,
        pub(super) conn: rustls::Connection,
        /// close_notify has been queued (once: `poll_close` may be polled again).
        closed: bool,
    }

    impl TlsStream {
        #[cfg(feature = "server")]
        pub(super) fn server(sock: Async<TcpStream>, tls: &ServerTls) -> io::Result<TlsStream> {
            let conn = rustls::ServerConnection::new(tls.config.clone()).map_err(failure)?;
            Ok(TlsStream { sock, conn: conn.into(), closed: false })
        }

        /// A client session checking the server's certificate against the name given with
        /// [`ClientTls::server_name`], else the host name connected to, else the address.
        pub(super) fn client(
            sock: Async<TcpStream>,
            tls: &ClientTls,
            host: Option<&str>,
            ip: IpAddr,
        ) -> io::Result<TlsStream> {
            // A host that is no name a certificate can carry is an error, not a quiet check
            // of the address instead.
            let by_host = match host {
                Some(h) if tls.name.is_none() => {
                    Some(ServerName::try_from(h.to_string()).map_err(|e| {
                        io::Error::new(io::ErrorKind::InvalidInput, format!("TLS name {h:?}: {e}"))
                    })?)
                }
                _ => None,
            };
            let name = tls.name.clone().or(by_host).unwrap_or(ServerName::IpAddress(ip.into()));
            let conn = ClientConnection::new(tls.config.clone(), name).map_err(failure)?;
            Ok(TlsStream { sock, conn: conn.into(), closed: false })
        }

        /// Writes every record the session holds; pending while the socket is full.
        pub(super) fn write_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            while self.conn.wants_write() {
                match self.conn.write_tls(&mut Io { sock: &mut self.sock, cx }) {
                    Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            Poll::Ready(Ok(()))
        }

        /// Reads what records the socket has and decrypts them; true at the end of the stream.
        /// A failure's alert is sent, as far as the socket takes it, before it is returned.
        fn read_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
            match self.conn.read_tls(&mut Io { sock: &mut self.sock, cx }) {
                Ok(0) => Poll::Ready(Ok(true)),
                Ok(_) => match self.conn.process_new_packets() {
                    Ok(_) => Poll::Ready(Ok(false)),
                    Err(e) => {
                        let _ = self.write_tls(cx);
                        Poll::Ready(Err(failure(e)))
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            }
        }

        /// Drives the handshake to its end.
        pub(super) fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            while self.conn.is_handshaking() {
                ready!(self.write_tls(cx))?;
                if !self.conn.is_handshaking() {
                    break;
                }
                if ready!(self.read_tls(cx))? {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed during the TLS handshake",
                    )));
                }
            }
            self.write_tls(cx)
        }

        /// Decrypted bytes; 0 at the end of the stream, with or without the peer's
        /// close_notify (every Gearman frame carries its length or ends its line, so a cut
        /// stream shows as a partial frame, not as a shorter one).
        fn take_plain(&mut self, buf: &mut [u8]) -> Option<io::Result<usize>> {
            match self.conn.reader().read(buf) {
                Ok(n) => Some(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Some(Ok(0)),
                Err(e) => Some(Err(e)),
            }
        }

        pub(super) fn poll_read(
            &mut self,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            loop {
                if let Some(r) = self.take_plain(buf) {
                    return Poll::Ready(r);
                }
                // Records to send (the handshake's next flight, a key update) go first; a
                // full socket does not stop the read.
                if let Poll::Ready(Err(e)) = self.write_tls(cx) {
                    return Poll::Ready(Err(e));
                }
                if ready!(self.read_tls(cx))? {
                    return Poll::Ready(self.take_plain(buf).unwrap_or(Ok(0)));
                }
            }
        }

        pub(super) fn poll_write(
            &mut self,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            loop {
                // What the session holds goes first: a buffer that was full takes more only
                // once the socket has drained it.
                let flushed = self.write_tls(cx);
                if let Poll::Ready(Err(e)) = flushed {
                    return Poll::Ready(Err(e));
                }
                let n = self.conn.writer().write(buf)?;
                if n > 0 || buf.is_empty() {
                    // Out as far as the socket takes it; the rest waits in the session, and a
                    // full socket has registered this task for writability.
                    if let Poll::Ready(Err(e)) = self.write_tls(cx) {
                        return Poll::Ready(Err(e));
                    }
                    return Poll::Ready(Ok(n));
                }
                if flushed.is_pending() {
                    // The session is full and so is the socket: its writability wakes us.
                    return Poll::Pending;
                }
                // Nothing taken with nothing left to send: only a handshake under way holds
                // plaintext back (until the peer's next flight).
                if !self.conn.is_handshaking() {
                    return Poll::Ready(Err(io::Error::other("the TLS session takes no data")));
                }
                if ready!(self.read_tls(cx))? {
                    return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                }
                // What that read decrypted waits in the session: the reader (this task, or
                // the one that shares the stream) is woken to take it.
                cx.waker().wake_by_ref();
            }
        }

        pub(super) fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            if !self.closed {
                self.closed = true;
                self.conn.send_close_notify();
            }
            ready!(self.write_tls(cx))?;
            Pin::new(&mut self.sock).poll_close(cx)
        }
    }
}
