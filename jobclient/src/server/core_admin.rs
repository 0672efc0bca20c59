//! Admin listings and commands on the job state: `status`, `prioritystatus`, `workers`,
//! `show jobs`, `show unique jobs`, `maxqueue`, `cancel job`, `create function`,
//! `drop function`.

use super::*;

/// A name as a listing shows it: [`printable`], and never a line an admin reader takes for
/// the end of the listing (`.`) or for an answer (`ERR ...`, `OK...`): a client could name a
/// function or a unique ID so, and cut or hijack the listing for every reader (gearmand lets
/// it). Such a name's first character is shown as `?`.
fn listed(name: &[u8]) -> String {
    let mut s = printable(name);
    if s == "." || s.starts_with("ERR ") || s.starts_with("OK") {
        s.replace_range(..1, "?");
    }
    s
}

impl Core {
    /// `status` rows: function, queued + running, running, capable workers.
    pub(crate) fn status_rows(&self) -> Vec<(String, usize, usize, usize)> {
        let mut rows: Vec<_> = self
            .functions
            .iter()
            .map(|(name, f)| (listed(name), f.queued() + f.running, f.running, f.workers))
            .collect();
        rows.sort();
        rows
    }

    /// The HTTP side's rows, in one pass: function (written out without loss, so no two
    /// functions share a name there), jobs queued per priority, running, capable workers;
    /// sorted by name.
    pub(crate) fn function_rows(&self) -> Vec<(String, [usize; PRIORITIES], usize, usize)> {
        let mut rows: Vec<_> = self
            .functions
            .iter()
            .map(|(name, f)| {
                let queued = [f.queues[0].len(), f.queues[1].len(), f.queues[2].len()];
                (escaped(name), queued, f.running, f.workers)
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    /// `prioritystatus` rows: function, jobs queued per priority (high, normal, low), capable
    /// workers.
    pub(crate) fn priority_rows(&self) -> Vec<(String, [usize; PRIORITIES], usize)> {
        let mut rows: Vec<_> = self
            .functions
            .iter()
            .map(|(name, f)| {
                let queued = [f.queues[0].len(), f.queues[1].len(), f.queues[2].len()];
                (listed(name), queued, f.workers)
            })
            .collect();
        rows.sort();
        rows
    }

    /// `workers` rows: the connection's descriptor (its id if it has none), peer, client id,
    /// functions (last registered first, as gearmand lists them).
    pub(crate) fn worker_rows(&self) -> Vec<(i64, String, String, Vec<String>)> {
        self.conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let c = c.as_ref()?;
                let id =
                    if c.client_id.is_empty() { "-".to_string() } else { printable(&c.client_id) };
                let fs = c.abilities.iter().rev().map(|f| printable(f)).collect();
                Some((c.fd.map_or(i as i64, i64::from), c.peer.clone(), id, fs))
            })
            .collect()
    }

    /// `show unique jobs` rows: every live job's unique ID (empty for a job without one).
    pub(crate) fn unique_rows(&self) -> Vec<String> {
        self.jobs.iter().flatten().map(|j| listed(&j.unique)).collect()
    }

    /// `create function NAME`: known from now on (listed by `status`), with no limit.
    pub(crate) fn create_function(&mut self, function: &str) {
        self.functions.entry(Bytes::copy_from_slice(function.as_bytes())).or_default();
    }

    /// `drop function NAME`: forgotten, if nobody can do it, none of its jobs runs and none
    /// waits.
    pub(crate) fn drop_function(&mut self, function: &str) -> crate::server::admin::Dropped {
        use crate::server::admin::Dropped;
        let Some(f) = self.functions.get(function.as_bytes()) else { return Dropped::NotFound };
        if f.workers > 0 || f.running > 0 {
            return Dropped::Busy;
        }
        if f.queued() > 0 || f.waiting != [0; PRIORITIES] {
            return Dropped::Queued;
        }
        if let Some(key) = self.functions.remove(function.as_bytes()).and_then(|f| f.rewake) {
            self.timers.remove(&key);
        }
        Dropped::Done
    }

    /// `show jobs` rows: handle, retries, whether running.
    pub(crate) fn job_rows(&self) -> Vec<(String, u32, bool)> {
        self.jobs
            .iter()
            .flatten()
            .map(|j| (printable(&j.handle), j.retries, j.worker.is_some()))
            .collect()
    }

    /// `maxqueue FUNCTION [N | HIGH NORMAL LOW]`.
    pub(crate) fn set_max_queue(&mut self, function: &str, max: [usize; PRIORITIES]) {
        self.functions.entry(Bytes::copy_from_slice(function.as_bytes())).or_default().max_queue =
            max;
    }

    /// `cancel job HANDLE`: removes a queued job that no worker runs yet.
    pub(crate) fn cancel(&mut self, handle: &str) -> bool {
        let Some(&job_id) = self.by_handle.get(handle.as_bytes()) else { return false };
        if self.jobs[job_id].as_ref().is_some_and(|j| j.worker.is_none()) {
            self.remove_job(job_id);
            true
        } else {
            false
        }
    }
}
