//! The core's timers: epoch jobs and CAN_DO_TIMEOUT deadlines, each tied to its job by a serial.

use super::*;

impl Core {
    /// Arms `what`, remembering the key in its job so that the timer goes with the job.
    pub(super) fn add_timer(&mut self, at: Instant, what: Timed) {
        self.timer_seq += 1;
        let key = (at, self.timer_seq);
        match &what {
            Timed::Epoch { job, .. } | Timed::Assignment { job, .. } => {
                if let Some(Some(j)) = self.jobs.get_mut(*job) {
                    if let Some(old) = j.timer.replace(key) {
                        self.timers.remove(&old);
                    }
                }
            }
            Timed::Rewake { function } => {
                if let Some(f) = self.functions.get_mut(function) {
                    if let Some(old) = f.rewake.replace(key) {
                        self.timers.remove(&old);
                    }
                }
            }
        }
        self.timers.insert(key, what);
    }

    /// The number of armed timers (each belongs to a live job, or to a function's re-wake).
    #[cfg(test)]
    pub(crate) fn timer_count(&self) -> usize {
        self.timers.len()
    }

    /// When [`expire`](Self::expire) next has work.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.keys().next().map(|(at, _)| *at)
    }

    /// Acts on every timer due at `now`: epoch jobs are queued; a job still run by the worker
    /// whose CAN_DO_TIMEOUT passed is taken from it and requeued.
    pub(crate) fn expire(&mut self, now: Instant) {
        self.clock = self.clock.max(now);
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (key, what) = entry.remove_entry();
            match what {
                Timed::Epoch { job, serial } => {
                    let Some(Some(j)) = self.jobs.get_mut(job) else { continue };
                    if j.serial != serial || j.timer != Some(key) {
                        continue;
                    }
                    j.timer = None;
                    let (function, priority) = (j.function.clone(), j.priority);
                    self.set_waiting(job, false);
                    if let Some(f) = self.functions.get_mut(&function) {
                        f.queues[priority].push_back(job);
                    }
                    self.wake_workers(&function);
                }
                Timed::Rewake { function } => {
                    let Some(f) = self.functions.get_mut(&function) else { continue };
                    if f.rewake != Some(key) {
                        continue;
                    }
                    f.rewake = None;
                    if f.queued() > 0 {
                        self.wake_workers(&function);
                    }
                }
                Timed::Assignment { job, assignment } => {
                    let worker = match self.jobs.get_mut(job) {
                        Some(Some(j)) if j.assignment == assignment && j.timer == Some(key) => {
                            j.timer = None;
                            j.worker
                        }
                        _ => None,
                    };
                    if let Some(worker) = worker {
                        if let Some(c) = self.conn_mut(worker) {
                            c.running.retain(|&j| j != job);
                        }
                        self.requeue(job);
                    }
                }
            }
        }
    }
}
