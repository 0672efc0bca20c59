//! A snapshot of the server for `jobd --http`: taken under the server's lock in one pass,
//! formatted outside it as Prometheus text (`/metrics`) or JSON (`/status.json`).
//!
//! Metric names follow Prometheus's conventions: a `gearman_` prefix, `_total` counters,
//! `_seconds` histograms, base units, and labels for the function and priority (the table
//! of metrics is in the crate docs, "Observability").

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::stats::{Event, Histogram, BUCKETS};
use super::Shared;

/// One function's row.
#[derive(Debug)]
pub(crate) struct FunctionRow {
    pub(crate) name: String,
    pub(crate) queued: [usize; 3],
    pub(crate) running: usize,
    pub(crate) workers: usize,
}

/// One worker connection's row.
#[derive(Debug)]
pub(crate) struct WorkerRow {
    pub(crate) peer: String,
    pub(crate) client_id: String,
    pub(crate) functions: Vec<String>,
}

/// Everything the HTTP side shows, at one moment.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) functions: Vec<FunctionRow>,
    /// Functions past [`MAX_FUNCTIONS`], not shown.
    pub(crate) functions_omitted: usize,
    pub(crate) workers: Vec<WorkerRow>,
    pub(crate) submitted: u64,
    pub(crate) completed: u64,
    pub(crate) failed: u64,
    pub(crate) retried: u64,
    pub(crate) dropped: u64,
    pub(crate) connections_total: u64,
    pub(crate) connections: usize,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) queue_wait: Histogram,
    pub(crate) run_time: Histogram,
    pub(crate) uptime: f64,
    /// Per second: (seconds since start, submitted, completed).
    pub(crate) history: Vec<(u64, u32, u32)>,
    pub(crate) recent: Vec<Event>,
}

const PRIORITY_NAMES: [&str; 3] = ["high", "normal", "low"];

/// The most functions shown (by jobs queued and running); the rest are counted in
/// `gearman_functions_omitted`.
pub(crate) const MAX_FUNCTIONS: usize = 1_000;

impl Snapshot {
    /// Taken under the lock; a few allocations per function and worker.
    pub(crate) fn take(sh: &mut Shared) -> Snapshot {
        let core = &mut sh.core;
        let mut functions: Vec<FunctionRow> = core
            .function_rows()
            .into_iter()
            .map(|(name, queued, running, workers)| FunctionRow { name, queued, running, workers })
            .collect();
        // Any client may register functions (4,096 per connection): past the cap, the busiest
        // are shown and the rest counted, so a flood of names cannot flood Prometheus.
        let mut functions_omitted = 0;
        if functions.len() > MAX_FUNCTIONS {
            functions
                .sort_by_key(|f| std::cmp::Reverse(f.queued.iter().sum::<usize>() + f.running));
            functions_omitted = functions.len() - MAX_FUNCTIONS;
            functions.truncate(MAX_FUNCTIONS);
            functions.sort_by(|a, b| a.name.cmp(&b.name));
        }
        let workers = core
            .worker_rows()
            .into_iter()
            .filter(|(_, _, _, fs)| !fs.is_empty())
            .map(|(_, peer, client_id, functions)| WorkerRow { peer, client_id, functions })
            .collect();
        let now = Instant::now();
        let connections = core.connections();
        let s = &mut core.stats;
        Snapshot {
            functions,
            functions_omitted,
            workers,
            submitted: s.submitted,
            completed: s.completed,
            failed: s.failed,
            retried: s.retried,
            dropped: s.dropped,
            connections_total: s.connections,
            connections,
            bytes_in: sh.io.bytes_in.load(Ordering::Relaxed),
            bytes_out: sh.io.bytes_out.load(Ordering::Relaxed),
            queue_wait: s.queue_wait.clone(),
            run_time: s.run_time.clone(),
            uptime: now.saturating_duration_since(s.started).as_secs_f64(),
            history: s.history(now),
            recent: s.recent.iter().cloned().collect(),
        }
    }

    /// The Prometheus text format (version 0.0.4).
    pub(crate) fn prometheus(&self) -> String {
        let mut o = String::with_capacity(4096 + self.functions.len() * 400);
        let family = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(&mut o, "gearman_jobs_queued", "gauge", "Jobs waiting for a worker.");
        for f in &self.functions {
            for (p, n) in PRIORITY_NAMES.iter().zip(f.queued) {
                let _ = writeln!(
                    o,
                    "gearman_jobs_queued{{function=\"{}\",priority=\"{p}\"}} {n}",
                    label(&f.name)
                );
            }
        }
        family(&mut o, "gearman_jobs_running", "gauge", "Jobs a worker holds.");
        for f in &self.functions {
            let _ = writeln!(
                o,
                "gearman_jobs_running{{function=\"{}\"}} {}",
                label(&f.name),
                f.running
            );
        }
        family(
            &mut o,
            "gearman_workers_available",
            "gauge",
            "Connected workers that can do the function.",
        );
        for f in &self.functions {
            let _ = writeln!(
                o,
                "gearman_workers_available{{function=\"{}\"}} {}",
                label(&f.name),
                f.workers
            );
        }
        for (name, help, v) in [
            ("gearman_jobs_submitted_total", "Jobs created.", self.submitted),
            ("gearman_jobs_completed_total", "Jobs that ended in WORK_COMPLETE.", self.completed),
            (
                "gearman_jobs_failed_total",
                "Jobs that ended in WORK_FAIL or WORK_EXCEPTION.",
                self.failed,
            ),
            (
                "gearman_jobs_retried_total",
                "Jobs requeued after their worker went or timed out.",
                self.retried,
            ),
            (
                "gearman_jobs_dropped_total",
                "Jobs given up after their attempts ran out.",
                self.dropped,
            ),
            ("gearman_bytes_received_total", "Bytes read from connections.", self.bytes_in),
            ("gearman_bytes_sent_total", "Bytes written to connections.", self.bytes_out),
            ("gearman_connections_total", "Connections accepted.", self.connections_total),
        ] {
            family(&mut o, name, "counter", help);
            let _ = writeln!(o, "{name} {v}");
        }
        family(
            &mut o,
            "gearman_functions_omitted",
            "gauge",
            "Functions past the 1000 shown (the least busy), not listed.",
        );
        let _ = writeln!(o, "gearman_functions_omitted {}", self.functions_omitted);
        family(&mut o, "gearman_connections", "gauge", "Connections open.");
        let _ = writeln!(o, "gearman_connections {}", self.connections);
        family(&mut o, "gearman_uptime_seconds", "gauge", "Seconds since the server started.");
        let _ = writeln!(o, "gearman_uptime_seconds {:.3}", self.uptime);
        for (name, help, h) in [
            (
                "gearman_job_queue_wait_seconds",
                "Time from queued to handed to a worker.",
                &self.queue_wait,
            ),
            ("gearman_job_run_seconds", "Time from handed to a worker to its end.", &self.run_time),
        ] {
            family(&mut o, name, "histogram", help);
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                cumulative += n;
                let _ = writeln!(o, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
            }
            let _ = writeln!(o, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(o, "{name}_sum {}", h.sum);
            let _ = writeln!(o, "{name}_count {}", h.count);
        }
        o
    }

    /// The same as JSON, with the per-second history, the recent failures and the workers.
    pub(crate) fn json(&self) -> String {
        let mut o = String::with_capacity(8192 + self.history.len() * 16);
        o.push_str("{\"functions\":[");
        for (i, f) in self.functions.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(
                o,
                "{sep}{{\"name\":{},\"queued\":{{\"high\":{},\"normal\":{},\"low\":{}}},\"running\":{},\"workers\":{}}}",
                string(&f.name),
                f.queued[0],
                f.queued[1],
                f.queued[2],
                f.running,
                f.workers
            );
        }
        let _ = write!(o, "],\"functions_omitted\":{},\"workers\":[", self.functions_omitted);
        for (i, w) in self.workers.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let fs: Vec<String> = w.functions.iter().map(|f| string(f)).collect();
            let _ = write!(
                o,
                "{sep}{{\"peer\":{},\"client_id\":{},\"functions\":[{}]}}",
                string(&w.peer),
                string(&w.client_id),
                fs.join(",")
            );
        }
        let _ = write!(
            o,
            "],\"jobs\":{{\"submitted\":{},\"completed\":{},\"failed\":{},\"retried\":{},\"dropped\":{}}}",
            self.submitted, self.completed, self.failed, self.retried, self.dropped
        );
        let _ = write!(
            o,
            ",\"connections\":{{\"open\":{},\"total\":{}}},\"bytes\":{{\"received\":{},\"sent\":{}}},\"uptime_seconds\":{:.3}",
            self.connections, self.connections_total, self.bytes_in, self.bytes_out, self.uptime
        );
        for (name, h) in [("queue_wait_seconds", &self.queue_wait), ("run_seconds", &self.run_time)]
        {
            let counts: Vec<String> = h.counts.iter().map(u64::to_string).collect();
            let bounds: Vec<String> = BUCKETS.iter().map(f64::to_string).collect();
            let _ = write!(
                o,
                ",\"{name}\":{{\"bounds\":[{}],\"counts\":[{}],\"over\":{},\"sum\":{},\"count\":{}}}",
                bounds.join(","),
                counts.join(","),
                h.over,
                h.sum,
                h.count
            );
        }
        o.push_str(",\"per_second\":[");
        for (i, (sec, sub, done)) in self.history.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(o, "{sep}[{sec},{sub},{done}]");
        }
        o.push_str("],\"recent\":[");
        for (i, e) in self.recent.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(
                o,
                "{sep}{{\"at\":{},\"function\":{},\"handle\":{},\"what\":\"{}\"}}",
                e.at,
                string(&e.function),
                string(&e.handle),
                e.what
            );
        }
        let _ = write!(o, "],\"version\":{}}}", string(super::VERSION));
        o
    }
}

/// A Prometheus label value: backslash, double quote and line feed escaped.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A JSON string, quoted, with every character JSON requires escaped.
fn string(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", u32::from(c));
            }
            // The page puts names into HTML as text, but a `<` in a JSON string read by a
            // careless consumer as HTML is better not there at all.
            '<' => o.push_str("\\u003c"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_for_each_format() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(string("a\"b\\c\u{1}<"), "\"a\\\"b\\\\c\\u0001\\u003c\"");
    }
}
