//! The demo's flags.

use std::net::SocketAddr;

/// What to run.
#[derive(Clone, Debug)]
pub(crate) struct Opts {
    /// Files to fetch (one in a hundred is missing on purpose).
    pub(crate) urls: usize,
    /// Worker processes.
    pub(crate) workers: usize,
    /// Transfers in flight per worker.
    pub(crate) parallel: usize,
    /// Jobs the URLs are split into.
    pub(crate) jobs: Option<usize>,
    /// A real job server instead of the embedded one.
    pub(crate) gearmand: Option<SocketAddr>,
    /// The group on corosync instead of groupd.
    pub(crate) corosync: bool,
}

pub(crate) const USAGE: &str = "cargo xtask demo [--urls N] [--workers N] [--parallel N] \
    [--jobs N] [--gearmand HOST:PORT] [--corosync]";

pub(crate) fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o =
        Opts { urls: 2_000, workers: 3, parallel: 16, jobs: None, gearmand: None, corosync: false };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|_| format!("{flag}: not a number"));
        match flag.as_str() {
            "--urls" => o.urls = number(value()?)?.max(1),
            "--workers" => o.workers = number(value()?)?.max(2),
            "--parallel" => o.parallel = number(value()?)?.max(1),
            "--jobs" => o.jobs = Some(number(value()?)?.max(1)),
            "--gearmand" => {
                let v = value()?;
                let addr = std::net::ToSocketAddrs::to_socket_addrs(&v.as_str())
                    .map_err(|e| format!("--gearmand {v}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("--gearmand {v}: no address"))?;
                o.gearmand = Some(addr);
            }
            "--corosync" => o.corosync = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown demo option {other}\nusage: {USAGE}")),
        }
    }
    Ok(o)
}
