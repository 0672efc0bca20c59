//! corosync 3.1.7, one node on loopback, no quorum provider.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::process::{scratch_dir, stop, wait_until};
use crate::require_binary;

/// A running single-node corosync, stopped when dropped.
///
/// Only one corosync can run per network namespace (it locks `/run/corosync.pid` and serves
/// clients on fixed abstract sockets), so this holds an exclusive lock on a file in `/tmp` for
/// its whole life: users in other threads and processes wait their turn.
#[derive(Debug)]
pub struct Corosync {
    child: Child,
    dir: PathBuf,
    _lock: File,
}

const CONF: &str = "totem {
    version: 2
    cluster_name: test
    transport: knet
    crypto_cipher: none
    crypto_hash: none
    token: 1000
}
nodelist {
    node {
        name: n1
        nodeid: 1
        ring0_addr: 127.0.0.1
    }
}
quorum {
}
logging {
    to_stderr: yes
    to_logfile: no
    to_syslog: no
    timestamp: on
}
";

impl Corosync {
    /// Starts corosync in the foreground (root only, as corosync itself requires).
    pub fn start() -> io::Result<Corosync> {
        let bin = require_binary("corosync", "corosync")?;
        let cpgtool = require_binary("corosync-cpgtool", "corosync")?;
        let lock = File::create("/tmp/evstack-corosync.lock")?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
        let dir = scratch_dir("corosync")?;
        std::fs::write(dir.join("corosync.conf"), CONF)?;
        let mut child = Command::new(bin)
            .arg("-f")
            .arg("-c")
            .arg(dir.join("corosync.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(dir.join("corosync.log"))?)
            .spawn()?;
        let ready = wait_until("corosync", &mut child, Duration::from_secs(20), || {
            Command::new(&cpgtool)
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("Group Name"))
        });
        if let Err(e) = ready {
            stop(&mut child, Duration::from_secs(5));
            let log = std::fs::read_to_string(dir.join("corosync.log")).unwrap_or_default();
            return Err(io::Error::new(e.kind(), format!("{e}; log:\n{log}")));
        }
        Ok(Corosync { child, dir, _lock: lock })
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The scratch directory holding its configuration and log.
    pub fn dir(&self) -> &PathBuf {
        &self.dir
    }
}

impl Drop for Corosync {
    fn drop(&mut self) {
        // corosync takes a second or two to leave the ring and clean up its shared memory.
        stop(&mut self.child, Duration::from_secs(10));
    }
}
