//! How the server hands out work: gearmand's `-j`, `-w`, `-R` and `--keepalive*`.

use std::time::Duration;

/// The longest keepalive idle time or probe interval Linux takes, in seconds.
pub(crate) const MAX_KEEPALIVE_SECS: u64 = 32_767;
/// The most keepalive probes Linux takes.
pub(crate) const MAX_KEEPALIVE_PROBES: u32 = 127;

/// How jobs are handed to workers and how dead peers are found, as gearmand's flags set it.
/// Set with [`Server::policy`](crate::Server::policy); the defaults are gearmand's.
///
/// ```
/// let mut policy = jobclient::Policy::default();
/// policy.job_retries = 3; // jobd -j 3: a job of death is dropped after its third victim
/// assert_eq!(policy.worker_wakeup, 0); // wake every sleeping worker, as gearmand -w 0
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Policy {
    /// Attempts a job gets (`-j N`, `--job-retries N`): after this many runs ended by their
    /// worker's death (or disconnection, `CANT_DO`, or a `CAN_DO_TIMEOUT` that passed), the
    /// job is dropped: its clients get `WORK_FAIL`, the durable queue records it as done, and
    /// the log names it. 0, the default as in gearmand, is no limit: a job that kills every
    /// worker that takes it is requeued for ever.
    pub job_retries: u32,
    /// Sleeping workers woken (`NOOP`) when a job is queued (`-w N`, `--worker-wakeup N`); 0,
    /// the default as in gearmand, wakes all of them. With a limit, a job still queued
    /// [`rewake_after`](Policy::rewake_after) later wakes as many more, so that a woken worker
    /// that never answers (half-open, stopped) cannot keep it waiting.
    pub worker_wakeup: usize,
    /// How long a job may stay queued after a limited wake-up before more sleepers are woken.
    /// Default 250 ms.
    pub rewake_after: Duration,
    /// Hand a worker its functions' jobs in turn (`-R`, `--round-robin`). Without it, as in
    /// gearmand, GRAB_JOB looks at a worker's functions from the last registered to the first;
    /// with it, the function just given goes to the end of that search. Priority comes first
    /// either way: a high job of any of its functions goes before a normal one.
    pub round_robin: bool,
    /// TCP keepalive on every accepted connection (`--keepalive`), so that a peer that
    /// vanished without a FIN (a powered-off worker holding jobs) is found dead and its jobs
    /// requeued. Off by default, as in gearmand.
    pub keepalive: bool,
    /// Idle time before the first probe (`--keepalive-idle`, seconds); `None` keeps the
    /// system's (`net.ipv4.tcp_keepalive_time`, 7,200 s by default).
    pub keepalive_idle: Option<Duration>,
    /// Time between probes (`--keepalive-interval`, seconds); `None` keeps the system's.
    pub keepalive_interval: Option<Duration>,
    /// Unanswered probes before the connection is dropped (`--keepalive-count`); `None`
    /// keeps the system's.
    pub keepalive_count: Option<u32>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            job_retries: 0,
            worker_wakeup: 0,
            rewake_after: Duration::from_millis(250),
            round_robin: false,
            keepalive: false,
            keepalive_idle: None,
            keepalive_interval: None,
            keepalive_count: None,
        }
    }
}

impl Policy {
    /// Sets this policy's keepalive options on an accepted connection. Values past what
    /// Linux takes (32,767 s for the times, 127 probes) are set to those bounds: an
    /// out-of-range option would otherwise fail, and so refuse, every connection.
    pub(crate) fn apply_keepalive(&self, sock: &std::net::TcpStream) -> std::io::Result<()> {
        use rustix::net::sockopt;
        if !self.keepalive {
            return Ok(());
        }
        let time =
            |d: Duration| d.clamp(Duration::from_secs(1), Duration::from_secs(MAX_KEEPALIVE_SECS));
        sockopt::set_socket_keepalive(sock, true)?;
        if let Some(idle) = self.keepalive_idle {
            sockopt::set_tcp_keepidle(sock, time(idle))?;
        }
        if let Some(interval) = self.keepalive_interval {
            sockopt::set_tcp_keepintvl(sock, time(interval))?;
        }
        if let Some(count) = self.keepalive_count {
            sockopt::set_tcp_keepcnt(sock, count.clamp(1, MAX_KEEPALIVE_PROBES))?;
        }
        Ok(())
    }
}
