//! gearmand 1.1.20 on loopback.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::process::{free_port, retry, scratch_dir, stop, supervise};
use crate::require_binary;

/// A running gearmand, stopped when dropped.
#[derive(Debug)]
pub struct Gearmand {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Gearmand {
    /// Starts gearmand with its defaults (in-memory queue) plus `extra` arguments, e.g.
    /// `["--exceptions"]` or `["-t", "2"]`.
    pub fn start(extra: &[&str]) -> io::Result<Gearmand> {
        Gearmand::launch(None, extra)
    }

    /// Starts gearmand on a given port: to restart a server where its clients expect it.
    pub fn start_on(port: u16, extra: &[&str]) -> io::Result<Gearmand> {
        Gearmand::launch(Some(port), extra)
    }

    fn launch(fixed: Option<u16>, extra: &[&str]) -> io::Result<Gearmand> {
        let bin = require_binary("gearmand", "gearman-job-server")?;
        retry(3, || {
            let dir = scratch_dir("gearmand")?;
            let port = match fixed {
                Some(p) => p,
                None => free_port()?,
            };
            let child = Command::new(&bin)
                .args([
                    "-L",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-l",
                    "stderr",
                    "--verbose=ERROR",
                ])
                .arg("-P")
                .arg(dir.join("gearmand.pid"))
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("gearmand.log"))?)
                .spawn()?;
            let child = supervise("gearmand", child, Duration::from_secs(10), || {
                version(port).is_ok_and(|v| v.starts_with("OK "))
            })?;
            Ok(Gearmand { child, port, dir })
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

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The scratch directory holding its log and PID file.
    pub fn dir(&self) -> &PathBuf {
        &self.dir
    }

    /// Waits, at most `within`, for gearmand to exit by itself (after a signal or an admin
    /// `shutdown`); its exit status, or `None` if it is still running.
    pub fn wait_exit(&mut self, within: Duration) -> io::Result<Option<std::process::ExitStatus>> {
        let t0 = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if t0.elapsed() > within {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The admin protocol's `version` answer, e.g. `OK 1.1.20`.
    pub fn version(&self) -> io::Result<String> {
        version(self.port)
    }
}

fn version(port: u16) -> io::Result<String> {
    let mut conn =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.write_all(b"version\r\n")?;
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line)?;
    Ok(line.trim_end().to_string())
}

impl Drop for Gearmand {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(3));
    }
}
