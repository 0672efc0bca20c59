//! Scratch directories, free ports, and supervised child processes.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The workspace's root directory (where `Cargo.toml` with `[workspace]` is).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().nth(2).expect("xtask/peers sits two levels below the root").to_path_buf()
}

/// A fresh, empty directory under `target/peers/` for one peer instance.
pub fn scratch_dir(name: &str) -> io::Result<PathBuf> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = workspace_root()
        .join("target")
        .join("peers")
        .join(format!("{name}-{}-{n}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A loopback port that was free a moment ago. The peer binds it next; a start that loses the
/// race is retried by the starters.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls `ready` every few milliseconds until it returns true or `limit` passes.
pub(crate) fn wait_until(
    what: &str,
    child: &mut Child,
    limit: Duration,
    mut ready: impl FnMut() -> bool,
) -> io::Result<()> {
    let start = Instant::now();
    loop {
        if ready() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::other(format!("{what} exited during start-up: {status}")));
        }
        if start.elapsed() > limit {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{what} not ready after {limit:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) for a just-spawned peer to be `ready`; one that is not is stopped, so a
/// failed start leaves no process behind.
pub(crate) fn supervise(
    what: &str,
    mut child: Child,
    limit: Duration,
    ready: impl FnMut() -> bool,
) -> io::Result<Child> {
    match wait_until(what, &mut child, limit, ready) {
        Ok(()) => Ok(child),
        Err(e) => {
            stop(&mut child, Duration::from_secs(1));
            Err(e)
        }
    }
}

/// Whether a TCP connection to the port is accepted.
pub(crate) fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// Stops a child: SIGTERM, a bounded wait, then SIGKILL.
pub(crate) fn stop(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let start = Instant::now();
    while start.elapsed() < grace {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `attempt` up to `attempts` times, returning the first success or the last error: a
/// peer that lost the race for its free port is simply started again.
pub(crate) fn retry<T>(
    attempts: usize,
    mut attempt: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    let mut last = io::Error::other("no attempt was made");
    for _ in 0..attempts {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(e) => last = e,
        }
    }
    Err(last)
}
