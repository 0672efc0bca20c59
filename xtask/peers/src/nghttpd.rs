//! nghttpd (Debian's `nghttp2-server`) on loopback: a server that speaks only HTTP/2, over
//! TLS (ALPN `h2`) or on cleartext (prior knowledge), serving files from a scratch directory.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::process::{accepts, free_port, retry, scratch_dir, stop, supervise};
use crate::require_binary;

/// A running nghttpd, stopped when dropped. Put files under [`root`](Nghttpd::root).
#[derive(Debug)]
pub struct Nghttpd {
    child: Child,
    port: u16,
    dir: PathBuf,
    tls: bool,
}

impl Nghttpd {
    /// Starts nghttpd over TLS with the given certificate and key (PEM files).
    pub fn start_tls(cert: &Path, key: &Path) -> io::Result<Nghttpd> {
        Nghttpd::start(Some((cert, key)))
    }

    /// Starts nghttpd on cleartext: HTTP/2 with prior knowledge only.
    pub fn start_cleartext() -> io::Result<Nghttpd> {
        Nghttpd::start(None)
    }

    fn start(tls: Option<(&Path, &Path)>) -> io::Result<Nghttpd> {
        let bin = require_binary("nghttpd", "nghttp2-server")?;
        retry(3, || {
            let dir = scratch_dir("nghttpd")?;
            std::fs::create_dir_all(dir.join("www"))?;
            std::fs::write(dir.join("www").join("ping"), b"pong")?;
            let port = free_port()?;
            let mut cmd = Command::new(&bin);
            cmd.args(["-a", "127.0.0.1", "-d"]).arg(dir.join("www")).arg(port.to_string());
            match tls {
                Some((cert, key)) => cmd.arg(key).arg(cert),
                None => cmd.arg("--no-tls"),
            };
            let child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("stderr.log"))?)
                .spawn()?;
            let child = supervise("nghttpd", child, Duration::from_secs(10), || accepts(port))?;
            Ok(Nghttpd { child, port, dir: dir.clone(), tls: tls.is_some() })
        })
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The document root: files written here are served at `/`.
    pub fn root(&self) -> PathBuf {
        self.dir.join("www")
    }

    /// A URL for a path under the root: `https://localhost:PORT/...` over TLS (the name the
    /// test certificates carry), `http://127.0.0.1:PORT/...` on cleartext.
    pub fn url(&self, path: &str) -> String {
        let path = path.trim_start_matches('/');
        if self.tls {
            format!("https://localhost:{}/{path}", self.port)
        } else {
            format!("http://127.0.0.1:{}/{path}", self.port)
        }
    }
}

impl Drop for Nghttpd {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(2));
    }
}
