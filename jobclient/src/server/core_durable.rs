//! The durable queue's side of the core: background jobs acknowledged once on disk, restored at start, listed for compaction.

use super::*;

impl Core {
    /// Whether background submissions wait for the durable queue.
    pub(crate) fn has_unacked(&self) -> bool {
        !self.unacked.is_empty()
    }

    /// The durable queue's records since the last call were written (and synced, as the sync
    /// policy says) when `ok`, or failed. Written: each waiting background job is queued (or
    /// its epoch armed) and its submitter hears `JOB_CREATED`. Failed: each such job is
    /// dropped and its submitter hears `ERROR QUEUE_ERROR`; nothing was acknowledged that is
    /// not on disk.
    pub(crate) fn commit(&mut self, ok: bool, now: Now) {
        for u in std::mem::take(&mut self.unacked) {
            let live = match self.jobs.get(u.job) {
                Some(Some(j)) if j.serial == u.serial => Some((j.handle.clone(), j.epoch)),
                _ => None,
            };
            match (ok, live) {
                (true, Some((handle, epoch))) => {
                    self.send(u.conn, PacketType::JobCreated, &[&handle]);
                    if u.new {
                        let run_at = if epoch > now.unix {
                            // Checked at submission; the clock only moved on since.
                            Some(epoch_deadline(epoch, now).unwrap_or(now.mono))
                        } else {
                            None
                        };
                        self.start(u.job, run_at);
                    }
                }
                (false, Some((handle, _))) => {
                    if u.upgraded {
                        // Its record did not reach the disk: it is a foreground job again.
                        if let Some(Some(j)) = self.jobs.get_mut(u.job) {
                            j.background = false;
                            let len = crate::server::journal::add_len(&saved(j)) as u64;
                            self.journal_live = self.journal_live.saturating_sub(len);
                        }
                    }
                    if u.new {
                        // Foreground submissions coalesced onto it hear that it failed.
                        let clients = self.jobs[u.job].as_ref().map(|j| j.clients.clone());
                        for (c, n) in clients.unwrap_or_default() {
                            self.send_n(c, n, PacketType::WorkFail, &[&handle]);
                        }
                        self.remove_job(u.job);
                    }
                    self.error(u.conn, "QUEUE_ERROR", "The durable queue could not be written");
                }
                // Gone before its record was written (cancelled): it was accepted, say so.
                (true, None) => self.send(u.conn, PacketType::JobCreated, &[&u.handle]),
                (false, None) => {
                    self.error(u.conn, "QUEUE_ERROR", "The durable queue could not be written")
                }
            }
        }
    }

    /// Re-creates background jobs from the durable queue, queued (or timed) as they were.
    pub(crate) fn restore(&mut self, jobs: Vec<crate::server::journal::Saved>, now: Now) {
        for saved in jobs {
            // Handles keep their numbers; new ones continue after the highest.
            if let Some(n) = std::str::from_utf8(&saved.handle)
                .ok()
                .and_then(|h| h.rsplit(':').next()?.parse::<u64>().ok())
            {
                self.next_handle = self.next_handle.max(n.saturating_add(1));
            }
            let priority = usize::from(saved.priority).min(PRIORITIES - 1);
            let serial = self.next_serial();
            let job = Job {
                handle: saved.handle.clone(),
                function: saved.function.clone(),
                unique: saved.unique.clone(),
                data: saved.data,
                reducer: saved.reducer,
                priority,
                background: true,
                clients: Vec::new(),
                worker: None,
                status: (0, 0),
                retries: 0,
                epoch: saved.epoch,
                serial,
                assignment: 0,
                timer: None,
                waiting: false,
                queued_at: now.mono,
                started_at: None,
            };
            self.jobs.push(Some(job));
            let job_id = self.jobs.len() - 1;
            self.by_handle.insert(saved.handle, job_id);
            if !saved.unique.is_empty() {
                self.by_unique.insert((saved.function.clone(), saved.unique), job_id);
            }
            let f = self.functions.entry(saved.function).or_default();
            if saved.epoch <= now.unix {
                f.queues[priority].push_back(job_id);
            } else {
                // A journal is ours, but may be edited or damaged: an epoch past the bound runs
                // at the bound rather than overflowing.
                let epoch = saved.epoch.min(now.unix.saturating_add(MAX_EPOCH_AHEAD_SECS));
                let at = epoch_deadline(epoch, now).unwrap_or(now.mono);
                self.set_waiting(job_id, true);
                self.add_timer(at, Timed::Epoch { job: job_id, serial });
            }
        }
    }

    /// The live background jobs, as the durable queue keeps them (for compaction).
    pub(crate) fn saved_jobs(&self) -> Vec<crate::server::journal::Saved> {
        self.jobs.iter().flatten().filter(|j| j.background).map(saved).collect()
    }
}
