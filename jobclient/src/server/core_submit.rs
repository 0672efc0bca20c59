//! Submissions: a new job, or a submission coalesced onto a live one (by function and unique ID), and the epoch jobs that wait for their time.

use super::*;

impl Core {
    pub(super) fn submit(
        &mut self,
        from: ConnId,
        p: &Packet,
        priority: usize,
        background: bool,
        now: Now,
    ) {
        if self.draining {
            self.error(from, "SHUTTING_DOWN", "The job server is shutting down");
            return;
        }
        // Copied out of the packet: a slice would keep the whole read buffer it came in alive
        // for as long as the job waits (a tiny job pinning 64 KiB).
        let (function, unique) =
            (Bytes::copy_from_slice(p.arg_ref(0)), Bytes::copy_from_slice(p.arg_ref(1)));
        let data = Bytes::copy_from_slice(match p.kind() {
            PacketType::SubmitJobEpoch => p.arg_ref(3),
            PacketType::SubmitReduceJob | PacketType::SubmitReduceJobBackground => p.arg_ref(4),
            _ => p.arg_ref(2),
        });
        let reducer = match p.kind() {
            PacketType::SubmitReduceJob | PacketType::SubmitReduceJobBackground => {
                Bytes::copy_from_slice(p.arg_ref(2))
            }
            _ => Bytes::new(),
        };
        if !unique.is_empty() {
            if let Some(&job_id) = self.by_unique.get(&(function.clone(), unique.clone())) {
                // Coalesce: the submitter joins the existing job.
                let handle =
                    self.jobs[job_id].as_ref().map(|j| j.handle.clone()).unwrap_or_default();
                let pending = self.unacked.iter().any(|u| u.job == job_id && u.new);
                let foreground_job = self.jobs[job_id].as_ref().is_some_and(|j| !j.background);
                if background && foreground_job {
                    // A background submission joining a foreground job makes it a background
                    // job: it must outlive its foreground submitters, and with a durable
                    // queue it must be on disk before this submission hears JOB_CREATED.
                    let j = self.jobs[job_id].as_mut().expect("checked");
                    j.background = true;
                    let (serial, record) = (j.serial, saved(j));
                    if let Some(journal) = self.journal.as_mut() {
                        crate::server::journal::add(journal, &record);
                        self.journal_live += crate::server::journal::add_len(&record) as u64;
                        self.unacked.push(Unacked {
                            conn: from,
                            job: job_id,
                            serial,
                            new: false,
                            upgraded: true,
                            handle: handle.clone(),
                        });
                        return;
                    }
                } else if background && pending {
                    // Joined onto a job whose record is not on disk yet: acknowledged with it.
                    let serial = self.jobs[job_id].as_ref().map_or(0, |j| j.serial);
                    self.unacked.push(Unacked {
                        conn: from,
                        job: job_id,
                        serial,
                        new: false,
                        upgraded: false,
                        handle: handle.clone(),
                    });
                    return;
                }
                if !background {
                    let total: u32 = self.jobs[job_id]
                        .as_ref()
                        .map_or(0, |j| j.clients.iter().map(|&(_, n)| n).sum());
                    if total as usize >= self.limits.max_submissions_per_job || !self.may_wait(from)
                    {
                        self.error(from, "QUEUE_ERROR", "Too many submissions of this job");
                        return;
                    }
                    if let Some(Some(job)) = self.jobs.get_mut(job_id) {
                        match job.clients.iter_mut().find(|(c, _)| *c == from) {
                            Some((_, n)) => *n += 1,
                            None => job.clients.push((from, 1)),
                        }
                    }
                    if let Some(c) = self.conn_mut(from) {
                        *c.waiting.entry(job_id).or_default() += 1;
                        c.submissions += 1;
                    }
                }
                self.send(from, PacketType::JobCreated, &[&handle]);
                return;
            }
        }
        // An epoch job waits for its time, unqueued; a time already past queues it at once.
        let run_at = match p.kind() {
            PacketType::SubmitJobEpoch => match p.number(2, "epoch") {
                Ok(epoch) if epoch > now.unix => match epoch_deadline(epoch, now) {
                    Some(at) => Some(at),
                    None => {
                        self.error(from, "INVALID_EPOCH", "The epoch is too far in the future");
                        return;
                    }
                },
                Ok(_) => None,
                Err(_) => {
                    self.error(from, "INVALID_EPOCH", "The epoch is not a number");
                    return;
                }
            },
            _ => None,
        };
        if !background && !self.may_wait(from) {
            self.error(from, "QUEUE_ERROR", "Too many jobs waiting on this connection");
            return;
        }
        let f = self.functions.entry(function.clone()).or_default();
        let max = f.max_queue[priority];
        if max > 0 && f.queues[priority].len() + f.waiting[priority] >= max {
            self.error(from, "QUEUE_ERROR", "Job queue is full");
            return;
        }
        let handle = self.new_handle();
        let serial = self.next_serial();
        // Jobs created (a coalesced submission joins a job and is not counted again).
        self.stats.on_submit(now.mono);
        let job = Job {
            handle: handle.clone(),
            function: function.clone(),
            unique: unique.clone(),
            data,
            reducer,
            priority,
            background,
            clients: if background { Vec::new() } else { vec![(from, 1)] },
            worker: None,
            status: (0, 0),
            retries: 0,
            epoch: match p.kind() {
                PacketType::SubmitJobEpoch => p.number(2, "epoch").unwrap_or(0),
                _ => 0,
            },
            serial,
            assignment: 0,
            timer: None,
            waiting: false,
            queued_at: now.mono,
            started_at: None,
        };
        let job_id = match self.free_jobs.pop() {
            Some(id) => {
                self.jobs[id] = Some(job);
                id
            }
            None => {
                self.jobs.push(Some(job));
                self.jobs.len() - 1
            }
        };
        self.by_handle.insert(handle.clone(), job_id);
        if background {
            if let Some(journal) = self.journal.as_mut() {
                let record = saved(self.jobs[job_id].as_ref().expect("just stored"));
                crate::server::journal::add(journal, &record);
                self.journal_live += crate::server::journal::add_len(&record) as u64;
            }
        }
        if !unique.is_empty() {
            self.by_unique.insert((function.clone(), unique), job_id);
        }
        if !background {
            if let Some(c) = self.conn_mut(from) {
                *c.waiting.entry(job_id).or_default() += 1;
                c.submissions += 1;
            }
        }
        if background && self.journal.is_some() {
            // Not queued, and not acknowledged, until its record is on disk: see `commit`.
            self.set_waiting(job_id, true);
            self.unacked.push(Unacked {
                conn: from,
                job: job_id,
                serial,
                new: true,
                upgraded: false,
                handle,
            });
            return;
        }
        self.send(from, PacketType::JobCreated, &[&handle]);
        self.start(job_id, run_at);
    }
}
