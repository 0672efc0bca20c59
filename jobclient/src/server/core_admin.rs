//! Admin listings and commands on the job state: `status`, `workers`, `show jobs`, `maxqueue`, `cancel job`.

use super::*;

impl Core {
    /// `status` rows: function, queued + running, running, capable workers.
    pub(crate) fn status_rows(&self) -> Vec<(String, usize, usize, usize)> {
        let mut rows: Vec<_> = self
            .functions
            .iter()
            .map(|(name, f)| (printable(name), f.queued() + f.running, f.running, f.workers))
            .collect();
        rows.sort();
        rows
    }

    /// `workers` rows: id, peer, client id, functions.
    pub(crate) fn worker_rows(&self) -> Vec<(usize, String, String, Vec<String>)> {
        self.conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let c = c.as_ref()?;
                let id =
                    if c.client_id.is_empty() { "-".to_string() } else { printable(&c.client_id) };
                let fs = c.abilities.iter().map(|f| printable(f)).collect();
                Some((i, c.peer.clone(), id, fs))
            })
            .collect()
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
