//! nginx 1.22 on loopback, serving files from a scratch directory.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::process::{accepts, free_port, retry, scratch_dir, stop, supervise};
use crate::require_binary;

/// Settings that tests vary.
#[derive(Debug, Clone)]
pub struct NginxConfig {
    /// `keepalive_requests`: high for reuse tests, low to test the server closing a kept-alive
    /// connection.
    pub keepalive_requests: u64,
    /// `worker_processes`.
    pub workers: u32,
    /// Directives added inside the `server` block (`location`s for redirects and the like).
    pub server_extra: String,
}

impl Default for NginxConfig {
    fn default() -> Self {
        NginxConfig { keepalive_requests: 1_000_000, workers: 1, server_extra: String::new() }
    }
}

/// A running nginx, stopped when dropped. Put files under [`root`](Nginx::root).
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx as root in the foreground, every path in a scratch directory.
    pub fn start(config: &NginxConfig) -> io::Result<Nginx> {
        let bin = require_binary("nginx", "nginx")?;
        retry(3, || {
            let dir = scratch_dir("nginx")?;
            for sub in ["www", "cb", "pt", "ft", "ut", "st", "logs"] {
                std::fs::create_dir_all(dir.join(sub))?;
            }
            let port = free_port()?;
            std::fs::write(dir.join("nginx.conf"), conf(&dir, port, config))?;
            std::fs::write(dir.join("www").join("ping"), b"pong")?;
            let child = Command::new(&bin)
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .arg("-p")
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("stderr.log"))?)
                .spawn()?;
            let child = supervise("nginx", child, Duration::from_secs(10), || accepts(port))?;
            Ok(Nginx { child, port, dir })
        })
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// The document root: files written here are served at `/`.
    pub fn root(&self) -> PathBuf {
        self.dir.join("www")
    }

    /// A URL for a path under the root.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{}", self.port, path.trim_start_matches('/'))
    }

    /// A plain blocking GET, for smoke checks: `(status line, body)`.
    pub fn get(&self, path: &str) -> io::Result<(String, Vec<u8>)> {
        let mut conn = TcpStream::connect(self.addr())?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(conn, "GET /{} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path.trim_start_matches('/'))?;
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw)?;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no header end"))?;
        let head = String::from_utf8_lossy(&raw[..split]);
        let status = head.lines().next().unwrap_or_default().to_string();
        Ok((status, raw[split + 4..].to_vec()))
    }
}

fn conf(dir: &Path, port: u16, config: &NginxConfig) -> String {
    let d = dir.display();
    format!(
        "user root;
worker_processes {workers};
daemon off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 16384; use epoll; }}
http {{
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests {keepalive};
  keepalive_timeout 65;
  default_type application/octet-stream;
  client_body_temp_path {d}/cb; proxy_temp_path {d}/pt; fastcgi_temp_path {d}/ft;
  uwsgi_temp_path {d}/ut; scgi_temp_path {d}/st;
  server {{
    listen 127.0.0.1:{port};
    root {d}/www;
    {extra}
  }}
}}
",
        workers = config.workers,
        keepalive = config.keepalive_requests,
        extra = config.server_extra,
    )
}

impl Drop for Nginx {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(3));
    }
}
