//! HTTPS through rustls (feature `rustls`): one client configuration per set of TLS settings,
//! and a session per connection that the engine reads and writes through.
//!
//! Certificates are checked against the system bundle (`SSL_CERT_FILE`, else Debian's
//! `/etc/ssl/certs/ca-certificates.crt`, which is what libcurl uses there), or against the
//! file given with [`Easy::ca_file`](crate::Easy::ca_file) (`CURLOPT_CAINFO`).
//! [`Easy::verify_peer`](crate::Easy::verify_peer)`(false)` (`CURLOPT_SSL_VERIFYPEER`, curl's
//! `-k`) accepts any certificate, still checking the handshake's signatures. The crypto is
//! rustls's `ring` provider. Without the feature, an `https://` URL fails with
//! [`XferError::BadUrl`](crate::XferError::BadUrl).

use std::path::Path;
use std::sync::Arc;

/// The TLS settings that decide whether two transfers may share a connection.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TlsKey {
    pub(crate) ca_file: Option<Arc<Path>>,
    pub(crate) verify: bool,
    /// What ALPN offers.
    pub(crate) alpn: Alpn,
}

/// The protocols a TLS connection offers by ALPN, as libcurl offers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Alpn {
    /// `http/1.1` alone.
    Http11,
    /// `h2`, then `http/1.1`.
    Both,
    /// `h2` alone.
    H2,
}

impl Alpn {
    #[cfg_attr(not(feature = "rustls"), allow(dead_code))]
    fn protocols(self) -> Vec<Vec<u8>> {
        match self {
            Alpn::Http11 => vec![b"http/1.1".to_vec()],
            Alpn::Both => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            Alpn::H2 => vec![b"h2".to_vec()],
        }
    }
}

impl Default for TlsKey {
    fn default() -> Self {
        TlsKey { ca_file: None, verify: true, alpn: Alpn::Http11 }
    }
}

#[cfg(feature = "rustls")]
pub(crate) use with_rustls::{Configs, Session};
#[cfg(not(feature = "rustls"))]
pub(crate) use without::{Configs, Session};

#[cfg(feature = "rustls")]
mod with_rustls {
    use std::collections::HashMap;
    use std::io::{self, Read, Write};
    use std::os::fd::OwnedFd;
    use std::sync::Arc;

    use bytes::{Buf, BytesMut};
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{
        ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
    };

    use super::TlsKey;
    use crate::{sock, XferError};

    /// Where libcurl finds the system's certificates on Debian.
    const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

    /// Client configurations, built once per set of settings.
    pub(crate) struct Configs(HashMap<TlsKey, Arc<ClientConfig>>);

    impl std::fmt::Debug for Configs {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Configs").field("count", &self.0.len()).finish()
        }
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn build(key: &TlsKey) -> Result<Arc<ClientConfig>, String> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let config = if key.verify {
            let path = match &key.ca_file {
                Some(p) => p.to_path_buf(),
                None => std::env::var_os("SSL_CERT_FILE").map_or(SYSTEM_BUNDLE.into(), Into::into),
            };
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(&path)
                .map_err(|e| format!("CA file {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("CA file {}: {e}", path.display()))?;
                roots.add(cert).map_err(|e| format!("CA file {}: {e}", path.display()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
                .with_no_client_auth()
        };
        let mut config = config;
        config.alpn_protocols = key.alpn.protocols();
        Ok(Arc::new(config))
    }

    impl Configs {
        pub(crate) fn new() -> Configs {
            Configs(HashMap::new())
        }

        /// A session for `host` with the settings of `key`.
        pub(crate) fn session(&mut self, key: &TlsKey, host: &str) -> Result<Session, XferError> {
            let config = match self.0.get(key) {
                Some(c) => c.clone(),
                None => {
                    let c = build(key).map_err(XferError::Tls)?;
                    self.0.insert(key.clone(), c.clone());
                    c
                }
            };
            let name = ServerName::try_from(host.to_string())
                .map_err(|e| XferError::Tls(format!("server name {host:?}: {e}")))?;
            let conn =
                ClientConnection::new(config, name).map_err(|e| XferError::Tls(e.to_string()))?;
            Ok(Session(Box::new(conn)))
        }
    }

    /// A socket as `Read`/`Write` for rustls, without SIGPIPE.
    struct FdIo<'a>(&'a OwnedFd);

    impl Read for FdIo<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            sock::recv(self.0, buf)
        }
    }

    impl Write for FdIo<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            sock::send(self.0, buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// One connection's TLS state.
    pub(crate) struct Session(Box<ClientConnection>);

    impl Session {
        /// Whether TLS records wait to be written (the handshake, or buffered data).
        pub(crate) fn wants_write(&self) -> bool {
            self.0.wants_write()
        }

        /// Whether the handshake is still going on.
        pub(crate) fn handshaking(&self) -> bool {
            self.0.is_handshaking()
        }

        /// Whether the server picked HTTP/2 by ALPN.
        pub(crate) fn alpn_h2(&self) -> bool {
            self.0.alpn_protocol() == Some(b"h2")
        }

        /// Hands plaintext to TLS and writes what records the socket takes; how much was
        /// taken (`WouldBlock` when nothing was).
        pub(crate) fn send_slice(&mut self, fd: &OwnedFd, data: &[u8]) -> io::Result<usize> {
            let n = self.0.writer().write(data)?;
            self.flush_some(fd)?;
            if n == 0 && !data.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        }

        /// Writes pending records; `WouldBlock` when the socket is full.
        pub(crate) fn flush(&mut self, fd: &OwnedFd) -> io::Result<()> {
            while self.0.wants_write() {
                self.0.write_tls(&mut FdIo(fd))?;
            }
            Ok(())
        }

        /// Writes what records the socket takes; a full socket is not an error (the rest goes
        /// when it is writable again).
        fn flush_some(&mut self, fd: &OwnedFd) -> io::Result<()> {
            match self.flush(fd) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
                other => other,
            }
        }

        /// Hands plaintext from `out` to TLS and writes what it can; returns how much was
        /// taken, or `WouldBlock` when nothing could be (TLS is full and so is the socket, or
        /// the handshake needs the server first).
        pub(crate) fn send(&mut self, fd: &OwnedFd, out: &mut BytesMut) -> io::Result<usize> {
            let n = self.0.writer().write(out)?;
            out.advance(n);
            self.flush_some(fd)?;
            if n == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        }

        /// Moves the handshake on: reads what records there are, and writes any answer. True
        /// when the peer closed.
        pub(crate) fn pump(&mut self, fd: &OwnedFd) -> io::Result<bool> {
            let n = match self.0.read_tls(&mut FdIo(fd)) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            };
            self.0
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            self.flush_some(fd)?;
            Ok(n == 0)
        }

        /// Reads plaintext; 0 at the end of the stream (with or without close_notify, as
        /// libcurl tolerates); `WouldBlock` when nothing is there. A TLS failure is
        /// `InvalidData` carrying rustls's error.
        pub(crate) fn recv(&mut self, fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
            loop {
                match self.0.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
                let n = self.0.read_tls(&mut FdIo(fd))?;
                self.0
                    .process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                self.flush_some(fd)?;
                if n == 0 {
                    // The peer closed: whatever plaintext is left, then the end.
                    return match self.0.reader().read(buf) {
                        Ok(n) => Ok(n),
                        Err(_) => Ok(0),
                    };
                }
            }
        }
    }

    /// `-k`: any certificate is accepted, the handshake's signatures are still verified.
    #[derive(Debug)]
    struct AnyCertificate(Arc<CryptoProvider>);

    impl ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}

#[cfg(not(feature = "rustls"))]
mod without {
    use std::io;
    use std::os::fd::OwnedFd;

    use bytes::BytesMut;

    use super::TlsKey;
    use crate::XferError;

    /// Without rustls there are no configurations.
    #[derive(Debug)]
    pub(crate) struct Configs;

    impl Configs {
        pub(crate) fn new() -> Configs {
            Configs
        }

        pub(crate) fn session(&mut self, _: &TlsKey, host: &str) -> Result<Session, XferError> {
            Err(XferError::BadUrl {
                url: format!("https://{host}/"),
                reason: "https:// needs multixfer's `rustls` feature".into(),
            })
        }
    }

    /// No session can exist without rustls.
    pub(crate) enum Session {}

    impl Session {
        pub(crate) fn wants_write(&self) -> bool {
            match *self {}
        }
        pub(crate) fn handshaking(&self) -> bool {
            match *self {}
        }
        #[allow(dead_code)]
        pub(crate) fn alpn_h2(&self) -> bool {
            match *self {}
        }
        #[allow(dead_code)]
        pub(crate) fn send_slice(&mut self, _: &OwnedFd, _: &[u8]) -> io::Result<usize> {
            match *self {}
        }
        pub(crate) fn flush(&mut self, _: &OwnedFd) -> io::Result<()> {
            match *self {}
        }
        pub(crate) fn send(&mut self, _: &OwnedFd, _: &mut BytesMut) -> io::Result<usize> {
            match *self {}
        }
        pub(crate) fn pump(&mut self, _: &OwnedFd) -> io::Result<bool> {
            match *self {}
        }
        pub(crate) fn recv(&mut self, _: &OwnedFd, _: &mut [u8]) -> io::Result<usize> {
            match *self {}
        }
    }
}
