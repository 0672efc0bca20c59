//! The worker's side of the core: abilities (`CAN_DO`, `CANT_DO`), `GRAB_JOB` and the `WORK_*` reports.

use super::*;

impl Core {
    pub(super) fn can_do(
        &mut self,
        from: ConnId,
        function: Bytes,
        timeout: Option<Duration>,
    ) -> Result<(), ProtoError> {
        let max = self.limits.max_abilities;
        let Some(c) = self.conn_mut(from) else { return Ok(()) };
        if c.abilities.contains(&function) {
            match timeout {
                Some(t) => c.timeouts.insert(function.clone(), t),
                None => c.timeouts.remove(&function),
            };
            return Ok(());
        }
        if c.abilities.len() >= max {
            return Err(ProtoError::TooMany { what: "functions registered", max });
        }
        if let Some(t) = timeout {
            c.timeouts.insert(function.clone(), t);
        }
        // Stored apart from the read buffer the packet came in, which it would otherwise
        // keep alive.
        let function = Bytes::copy_from_slice(&function);
        c.abilities.push(function.clone());
        self.functions.entry(function).or_default().workers += 1;
        Ok(())
    }

    /// Drops an ability; a job of that function this worker is running goes back to the queue.
    pub(super) fn cant_do(&mut self, from: ConnId, function: &Bytes) {
        let Some(c) = self.conn_mut(from) else { return };
        let Some(pos) = c.abilities.iter().position(|f| f == function) else { return };
        c.abilities.remove(pos);
        let running = c.running.clone();
        if let Some(f) = self.functions.get_mut(function) {
            f.workers = f.workers.saturating_sub(1);
        }
        for job_id in running {
            let is_that_function =
                self.jobs[job_id].as_ref().is_some_and(|j| j.function == *function);
            if is_that_function {
                if let Some(c) = self.conn_mut(from) {
                    c.running.retain(|&j| j != job_id);
                }
                self.requeue(job_id);
            }
        }
        self.prune(function);
    }

    pub(super) fn grab(&mut self, from: ConnId, kind: PacketType, now: Now) {
        let abilities = match self.conn_mut(from) {
            Some(c) => {
                c.sleeping = false;
                c.abilities.clone()
            }
            None => return,
        };
        // Priority is global across functions: any high job before any normal one. Within a
        // priority, the worker's functions from the last registered to the first: gearmand
        // keeps them in a list it pushes onto, and searches that (measured against 1.1.20).
        let mut found = None;
        'search: for priority in 0..PRIORITIES {
            if self.draining {
                break;
            }
            for (at, f) in abilities.iter().enumerate().rev() {
                if let Some(func) = self.functions.get_mut(f) {
                    if let Some(job_id) = func.queues[priority].pop_front() {
                        func.running += 1;
                        found = Some((job_id, at));
                        break 'search;
                    }
                }
            }
        }
        let Some((job_id, at)) = found else {
            self.send(from, PacketType::NoJob, &[]);
            return;
        };
        if self.policy.round_robin {
            // gearmand's -R moves the function just given to the end of its search list.
            if let Some(c) = self.conn_mut(from) {
                let f = c.abilities.remove(at);
                c.abilities.insert(0, f);
            }
        }
        let assignment = self.next_serial();
        let job = self.jobs[job_id].as_mut().expect("queued jobs exist");
        job.worker = Some(from);
        job.assignment = assignment;
        job.started_at = Some(now.mono);
        let queued_at = job.queued_at;
        self.stats.on_assign(queued_at, now.mono);
        let job = self.jobs[job_id].as_mut().expect("queued jobs exist");
        let (h, f, u, d, r) = (
            job.handle.clone(),
            job.function.clone(),
            job.unique.clone(),
            job.data.clone(),
            job.reducer.clone(),
        );
        let timeout = self.conn_mut(from).and_then(|c| {
            c.running.push(job_id);
            c.timeouts.get(&f).copied()
        });
        if let Some(at) = timeout.and_then(|t| now.mono.checked_add(t)) {
            self.add_timer(at, Timed::Assignment { job: job_id, assignment });
        }
        match kind {
            PacketType::GrabJobAll => {
                self.send(from, PacketType::JobAssignAll, &[&h, &f, &u, &r, &d])
            }
            PacketType::GrabJobUniq => {
                self.send(from, PacketType::JobAssignUniq, &[&h, &f, &u, &d])
            }
            _ => self.send(from, PacketType::JobAssign, &[&h, &f, &d]),
        }
    }

    pub(super) fn work(&mut self, from: ConnId, p: &Packet) {
        use PacketType as T;
        let handle = p.arg(0);
        let Some(&job_id) = self.by_handle.get(&handle) else { return };
        let Some(job) = self.jobs[job_id].as_mut() else { return };
        if job.worker != Some(from) {
            // Only the worker running a job may report on it.
            return;
        }
        if p.kind() == T::WorkStatus {
            job.status =
                (p.number(1, "numerator").unwrap_or(0), p.number(2, "denominator").unwrap_or(0));
        }
        let clients = job.clients.clone();
        let function = job.function.clone();
        for (c, n) in clients {
            match p.kind() {
                T::WorkException => {
                    let wants =
                        self.conns.get(c).and_then(Option::as_ref).is_some_and(|c| c.exceptions);
                    if wants {
                        self.send_n(c, n, T::WorkException, &[&handle, p.arg_ref(1)]);
                    } else {
                        self.send_n(c, n, T::WorkFail, &[&handle]);
                    }
                }
                T::WorkFail => self.send_n(c, n, T::WorkFail, &[&handle]),
                T::WorkStatus => {
                    self.send_n(c, n, T::WorkStatus, &[&handle, p.arg_ref(1), p.arg_ref(2)])
                }
                kind => self.send_n(c, n, kind, &[&handle, p.arg_ref(1)]),
            }
        }
        if matches!(p.kind(), T::WorkComplete | T::WorkFail | T::WorkException) {
            let started = self.jobs[job_id].as_ref().and_then(|j| j.started_at);
            let failure = match p.kind() {
                T::WorkFail => Some("failed"),
                T::WorkException => Some("exception"),
                _ => None,
            };
            let failure = failure.map(|what| (what, printable(&function), printable(&handle)));
            self.stats.on_end(started, Instant::now(), failure);
            if let Some(c) = self.conn_mut(from) {
                c.running.retain(|&j| j != job_id);
            }
            if let Some(f) = self.functions.get_mut(&function) {
                f.running = f.running.saturating_sub(1);
            }
            self.remove_job(job_id);
            self.prune(&function);
        }
    }
}
