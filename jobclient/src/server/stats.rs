//! What the server counts for `/metrics`, `/status.json` and the status page: jobs by fate,
//! bytes, connections, how long jobs wait and run, completions per second over the last ten
//! minutes, and the last failures and drops.
//!
//! The core counts jobs (it sees every submission and ending, under the server's lock); the
//! connection tasks count bytes in atomics of their own, so a read or a write takes no lock
//! for it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The upper bounds of the wait and run time histograms, in seconds: 100 µs to 5 minutes,
/// roughly ×2.5 apart, as Prometheus client libraries' defaults span.
pub(crate) const BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0, 60.0, 300.0];

/// How many seconds of per-second counts are kept for the page's chart.
pub(crate) const HISTORY_SECS: usize = 600;

/// How many recent failures and drops are kept.
pub(crate) const RECENT_EVENTS: usize = 20;

/// A histogram with [`BUCKETS`]: counts per bucket (not cumulative), their sum and count.
#[derive(Clone, Debug, Default)]
pub(crate) struct Histogram {
    pub(crate) counts: [u64; BUCKETS.len()],
    /// Observations above the last bound (`+Inf` only).
    pub(crate) over: u64,
    pub(crate) sum: f64,
    pub(crate) count: u64,
}

impl Histogram {
    pub(crate) fn observe(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        match BUCKETS.iter().position(|&b| secs <= b) {
            Some(i) => self.counts[i] += 1,
            None => self.over += 1,
        }
        self.sum += secs;
        self.count += 1;
    }
}

/// One job that failed or was dropped, for the page.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    /// Unix seconds.
    pub(crate) at: u64,
    pub(crate) function: String,
    pub(crate) handle: String,
    /// `failed`, `exception` or `dropped`.
    pub(crate) what: &'static str,
}

/// The core's counters.
#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) submitted: u64,
    pub(crate) completed: u64,
    /// WORK_FAIL and WORK_EXCEPTION.
    pub(crate) failed: u64,
    /// Jobs put back in their queue because their worker went or ran out of time.
    pub(crate) retried: u64,
    /// Jobs given up after `-j` attempts.
    pub(crate) dropped: u64,
    pub(crate) connections: u64,
    pub(crate) queue_wait: Histogram,
    pub(crate) run_time: Histogram,
    pub(crate) started: Instant,
    /// Per second: (the second since `started`, submitted, completed), oldest first.
    pub(crate) history: VecDeque<(u64, u32, u32)>,
    pub(crate) recent: VecDeque<Event>,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            submitted: 0,
            completed: 0,
            failed: 0,
            retried: 0,
            dropped: 0,
            connections: 0,
            queue_wait: Histogram::default(),
            run_time: Histogram::default(),
            started: Instant::now(),
            history: VecDeque::new(),
            recent: VecDeque::new(),
        }
    }
}

impl Stats {
    /// The per-second slot for now, the seconds before it that saw nothing filled with zeros
    /// (so the chart's time axis has no holes) and the oldest dropped past [`HISTORY_SECS`].
    fn slot(&mut self, now: Instant) -> &mut (u64, u32, u32) {
        let sec = now.saturating_duration_since(self.started).as_secs();
        let last = self.history.back().map(|s| s.0);
        match last {
            Some(l) if l >= sec => {}
            _ => {
                let from =
                    last.map_or(sec, |l| (l + 1).max(sec.saturating_sub(HISTORY_SECS as u64)));
                for s in from..=sec {
                    self.history.push_back((s, 0, 0));
                }
                while self.history.len() > HISTORY_SECS {
                    self.history.pop_front();
                }
            }
        }
        self.history.back_mut().expect("just pushed")
    }

    pub(crate) fn on_submit(&mut self, now: Instant) {
        self.submitted += 1;
        let s = self.slot(now);
        s.1 = s.1.saturating_add(1);
    }

    pub(crate) fn on_assign(&mut self, queued_at: Instant, now: Instant) {
        self.queue_wait.observe(now.saturating_duration_since(queued_at));
    }

    /// A job ended at its worker: completed, or failed (`what`: `failed`, `exception`).
    pub(crate) fn on_end(
        &mut self,
        started: Option<Instant>,
        now: Instant,
        failure: Option<(&'static str, String, String)>,
    ) {
        if let Some(at) = started {
            self.run_time.observe(now.saturating_duration_since(at));
        }
        match failure {
            None => {
                self.completed += 1;
                let s = self.slot(now);
                s.2 = s.2.saturating_add(1);
            }
            Some((what, function, handle)) => {
                self.failed += 1;
                self.remember(what, function, handle);
            }
        }
    }

    pub(crate) fn on_drop(&mut self, function: String, handle: String) {
        self.dropped += 1;
        self.remember("dropped", function, handle);
    }

    fn remember(&mut self, what: &'static str, function: String, handle: String) {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.recent.push_back(Event { at, function, handle, what });
        while self.recent.len() > RECENT_EVENTS {
            self.recent.pop_front();
        }
    }

    /// The per-second history up to now (seconds since start, submitted, completed), the
    /// quiet seconds up to now included.
    pub(crate) fn history(&mut self, now: Instant) -> Vec<(u64, u32, u32)> {
        self.slot(now);
        self.history.iter().copied().collect()
    }
}

/// Bytes through the sockets, counted by the connection tasks without the server's lock.
#[derive(Debug, Default)]
pub(crate) struct IoCounters {
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
}

impl IoCounters {
    pub(crate) fn read(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn wrote(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_fills_quiet_seconds_and_keeps_ten_minutes() {
        let mut s = Stats::default();
        let t0 = s.started;
        s.on_submit(t0);
        s.on_submit(t0 + Duration::from_millis(2500));
        let h = s.history(t0 + Duration::from_secs(3));
        assert_eq!(h, [(0, 1, 0), (1, 0, 0), (2, 1, 0), (3, 0, 0)]);
        s.on_end(None, t0 + Duration::from_secs(2000), None);
        let h = s.history(t0 + Duration::from_secs(2000));
        assert_eq!(h.len(), HISTORY_SECS);
        assert_eq!(h.first().unwrap().0, 2000 - HISTORY_SECS as u64 + 1);
        assert_eq!(*h.last().unwrap(), (2000, 0, 1));
    }

    #[test]
    fn histogram_buckets_by_upper_bound() {
        let mut h = Histogram::default();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(1000));
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[5], 1);
        assert_eq!(h.over, 1);
        assert_eq!(h.count, 3);
    }
}
