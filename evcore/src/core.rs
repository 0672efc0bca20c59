//! What every reactor backend shares: the timing wheel on the reactor's clock, immediates,
//! the remote queue and dispatch state. A backend adds only the waiting for readiness.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::remote::{Shared, Wake};
use crate::{Clock, DispatchState, Event, Remote, TimerId, TimerWheel, Token};

const NANOS_PER_TICK: u32 = 1_000_000;

pub(crate) struct Core {
    wheel: TimerWheel,
    origin: Instant,
    clock: Clock,
    immediates: VecDeque<Token>,
    shared: Arc<Shared>,
    spare_jobs: Vec<Box<dyn FnOnce() + Send>>,
    pub(crate) dispatch: DispatchState,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("timers", &self.wheel.len())
            .field("immediates", &self.immediates.len())
            .field("mock_clock", &self.clock.is_mock())
            .finish_non_exhaustive()
    }
}

impl Core {
    pub(crate) fn new(clock: Clock, waker: Box<dyn Wake>) -> Core {
        Core {
            wheel: TimerWheel::new(),
            origin: clock.now(),
            clock,
            immediates: VecDeque::new(),
            shared: Shared::new(waker),
            spare_jobs: Vec::new(),
            dispatch: DispatchState::default(),
        }
    }

    pub(crate) fn now(&self) -> Instant {
        self.clock.now()
    }

    pub(crate) fn remote(&self) -> Remote {
        Remote::new(self.shared.clone())
    }

    /// Deadlines round up to the next tick, so a timer never fires early. (In `u64`: a `u128`
    /// division here was a third of the cost of arming a timer.)
    #[inline]
    fn tick_ceil(&self, at: Instant) -> u64 {
        let d = at.saturating_duration_since(self.origin);
        let sub = d.subsec_nanos();
        // Saturating throughout: a deadline past the last tick is the last tick (about 584
        // million years away), never a wrapped value that fires at once.
        let ms = d.as_secs().saturating_mul(1000).saturating_add(u64::from(sub / NANOS_PER_TICK));
        ms.saturating_add(u64::from(sub % NANOS_PER_TICK != 0))
    }

    #[inline]
    fn tick_floor(&self, at: Instant) -> u64 {
        let d = at.saturating_duration_since(self.origin);
        d.as_secs()
            .saturating_mul(1000)
            .saturating_add(u64::from(d.subsec_nanos() / NANOS_PER_TICK))
    }

    fn instant_of(&self, tick: u64) -> Instant {
        // The last ticks lie beyond what `Instant` holds on some platforms: saturate there too.
        let far = || self.origin + Duration::from_secs(i64::MAX as u64 / 4);
        self.origin.checked_add(Duration::from_millis(tick)).unwrap_or_else(far)
    }

    #[inline]
    pub(crate) fn add_timer(&mut self, deadline: Instant, token: Token) -> TimerId {
        let tick = self.tick_ceil(deadline);
        self.wheel.insert(tick, token)
    }

    #[inline]
    pub(crate) fn reset_timer(&mut self, id: TimerId, deadline: Instant) -> bool {
        let tick = self.tick_ceil(deadline);
        self.wheel.reset(id, tick)
    }

    #[inline]
    pub(crate) fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.wheel.cancel(id)
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.wheel.next_expiration().map(|tick| self.instant_of(tick))
    }

    pub(crate) fn schedule_immediate(&mut self, token: Token) {
        self.immediates.push_back(token);
    }

    pub(crate) fn timer_count(&self) -> usize {
        self.wheel.len()
    }

    /// How long the backend may wait: the caller's limit, shortened by timers and cut to zero
    /// when work is already pending. A wait that may block marks the loop sleeping for its
    /// remotes, so it must be followed by the wait and then [`after_wait`](Self::after_wait).
    pub(crate) fn wait_timeout(&self, requested: Option<Duration>) -> Option<Duration> {
        let timeout = self.timer_timeout(requested);
        if timeout == Some(Duration::ZERO) || self.shared.prepare_sleep() {
            timeout
        } else {
            Some(Duration::ZERO)
        }
    }

    fn timer_timeout(&self, requested: Option<Duration>) -> Option<Duration> {
        if !self.immediates.is_empty() {
            return Some(Duration::ZERO);
        }
        let Some(next) = self.wheel.next_expiration() else { return requested };
        let now = self.clock.now();
        if next <= self.tick_floor(now) {
            return Some(Duration::ZERO);
        }
        if self.clock.is_mock() {
            // Mock time moves only when the test moves it: sleeping for a timer would hang.
            return requested;
        }
        let until = self.instant_of(next).saturating_duration_since(now);
        Some(requested.map_or(until, |r| r.min(until)))
    }

    /// Everything a turn does after the backend's wait: remote jobs, due timers, immediates.
    pub(crate) fn after_wait(&mut self, out: &mut Vec<Event>) {
        let collected = self.shared.collect(std::mem::take(&mut self.spare_jobs));
        if collected.stop {
            self.dispatch.request_stop();
        }
        let mut jobs = collected.jobs;
        if !jobs.is_empty() || collected.woken {
            for job in jobs.drain(..) {
                job();
            }
            out.push(Event::Notified);
        }
        self.spare_jobs = jobs;

        let now = self.tick_floor(self.clock.now());
        self.wheel.advance(now, |token| out.push(Event::Timer(token)));

        // Only the immediates queued before this turn: one scheduled by a handler of this
        // turn's events belongs to the next turn, or a self-rescheduling immediate would spin.
        for _ in 0..self.immediates.len() {
            if let Some(token) = self.immediates.pop_front() {
                out.push(Event::Immediate(token));
            }
        }
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// The `Reactor` methods every backend forwards to its [`Core`] unchanged (timers, time,
/// immediates, the remote, dispatch state), written once. Used inside `impl Reactor for X`
/// where `X` has a `core: Core` field.
macro_rules! delegate_to_core {
    () => {
        #[inline]
        fn add_timer(
            &mut self,
            deadline: std::time::Instant,
            token: $crate::Token,
        ) -> $crate::TimerId {
            self.core.add_timer(deadline, token)
        }

        #[inline]
        fn reset_timer(&mut self, id: $crate::TimerId, deadline: std::time::Instant) -> bool {
            self.core.reset_timer(id, deadline)
        }

        #[inline]
        fn cancel_timer(&mut self, id: $crate::TimerId) -> bool {
            self.core.cancel_timer(id)
        }

        fn next_deadline(&self) -> Option<std::time::Instant> {
            self.core.next_deadline()
        }

        fn now(&self) -> std::time::Instant {
            self.core.now()
        }

        fn schedule_immediate(&mut self, token: $crate::Token) {
            self.core.schedule_immediate(token);
        }

        fn remote(&self) -> $crate::Remote {
            self.core.remote()
        }

        fn dispatch_state(&mut self) -> &mut $crate::DispatchState {
            &mut self.core.dispatch
        }
    };
}
pub(crate) use delegate_to_core;
