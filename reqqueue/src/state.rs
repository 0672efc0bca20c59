//! The queue's state machine, with no I/O and no wakers called: a slab of entries threaded into
//! one FIFO list, plus the running and closed flags.
//!
//! Every operation that makes another entry's turn come returns that entry's waker for the
//! caller to wake after releasing the state, so a completion never polls the next head from
//! inside itself (tevent uses an immediate event for the same reason).

use std::sync::Arc;
use std::task::Waker;

use crate::QueueError;

/// Where in an entry's life a trace hook is called (`tevent_set_trace_queue_callback`'s
/// points).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TracePoint {
    /// The entry joined the queue (`TEVENT_EVENT_TRACE_ATTACH`).
    Attach,
    /// Its turn came: its trigger is about to run, or a barrier now holds the queue
    /// (`TEVENT_EVENT_TRACE_BEFORE_HANDLER`).
    Trigger,
    /// It left the queue: done, dropped, or its queue closed (`TEVENT_EVENT_TRACE_DETACH`).
    Detach,
}

/// A trace hook: the point and the entry's tag.
pub(crate) type TraceHook = Arc<dyn Fn(TracePoint, &'static str) + Send + Sync>;

/// The hook, as the state holds it (shown as present or not).
#[derive(Clone)]
struct Tracer(TraceHook);

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tracer")
    }
}

/// What an operation leaves to do once the state is released: trace calls, in order, and
/// wakers of `idle()` futures.
pub(crate) struct After {
    hook: Option<TraceHook>,
    traced: Vec<(TracePoint, &'static str)>,
    wakers: Vec<Waker>,
}

impl After {
    pub(crate) fn run(self) {
        if let Some(hook) = self.hook {
            for (point, tag) in self.traced {
                hook(point, tag);
            }
        }
        for w in self.wakers {
            w.wake();
        }
    }
}

pub(crate) const NIL: u32 = u32::MAX;

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Runs a trigger when it reaches the head of a running queue.
    Trigger,
    /// Holds its place and never runs (tevent's NULL trigger).
    Blocker,
    /// Holds the queue from the moment it reaches the head until released (tevent_queue_wait).
    Barrier,
}

/// What an entry learns when it asks whether its turn has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Not yet: its waker is stored and will be woken when it may start.
    Wait,
    /// It is the head of a running queue and is now triggered.
    Start,
    /// The queue was closed before the entry was triggered.
    Closed,
    /// Its turn came while it was already due to be polled (it had stored no waker, so the
    /// completion that made it head could not move it to the back of the executor's run
    /// queue). It should wake itself and return `Pending` once; see [`Slot::defer`].
    Yield,
}

#[derive(Debug)]
struct Slot {
    prev: u32,
    next: u32,
    live: bool,
    triggered: bool,
    kind: Kind,
    waker: Option<Waker>,
    tag: &'static str,
    /// Set when the entry became head by its predecessor leaving while it had no waker
    /// stored: it was never polled, so it is most likely still in the run queue ahead of the
    /// other queues' heads, and starting it there would run this queue's entries back to back.
    /// tevent starts each head from an immediate event, one per loop turn, so two queues take
    /// turns; the entry yields once instead, which puts it behind what is already runnable.
    defer: bool,
}

/// How an entry stands, for [`Queue::snapshot`](crate::QueueHandle::snapshot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryState {
    /// Waiting for its turn.
    Waiting,
    /// Triggered: running its request, or holding the queue as a barrier.
    Triggered,
    /// A blocker holding its place.
    Blocker,
}

#[derive(Debug)]
pub(crate) struct State {
    name: String,
    running: bool,
    closed: bool,
    /// Live `Queue` handles; when the last one goes, the queue closes.
    pub(crate) handles: usize,
    slots: Vec<Slot>,
    free: u32,
    head: u32,
    tail: u32,
    len: usize,
    /// The trace hook and `idle()` waiters, boxed on first use: the state of a queue that
    /// uses neither stays as small as before, and its hot paths test one pointer.
    extras: Option<Box<Extras>>,
    /// Whether `extras` holds trace points or wakers for after the state is released: the
    /// one test `with` makes.
    pub(crate) has_after: bool,
}

/// The rarely used parts of the state.
#[derive(Debug, Default)]
struct Extras {
    trace: Option<Tracer>,
    /// Trace points of the current operation, for the hook once the state is released.
    traced: Vec<(TracePoint, &'static str)>,
    /// `idle()` futures waiting for the queue to empty.
    /// Each with the ticket of its future, which takes it back when dropped: a queue that
    /// never empties does not collect the wakers of `idle()` futures given up.
    idle_waiters: Vec<(u64, Waker)>,
    /// The next `idle()` ticket.
    idle_tickets: u64,
    /// Wakers to wake once the state is released.
    deferred: Vec<Waker>,
}

impl std::fmt::Debug for After {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("After").field("traced", &self.traced).finish_non_exhaustive()
    }
}

impl State {
    pub(crate) fn new(name: String) -> State {
        State {
            name,
            running: true,
            closed: false,
            handles: 1,
            slots: Vec::new(),
            free: NIL,
            head: NIL,
            tail: NIL,
            len: 0,
            extras: None,
            has_after: false,
        }
    }

    /// Sets (or clears) the trace hook; returns the old one, for the caller to drop once the
    /// state is released (a hook may hold a handle of this queue, whose drop uses the state).
    pub(crate) fn replace_trace(&mut self, hook: Option<TraceHook>) -> Option<TraceHook> {
        let extras = self.extras.get_or_insert_with(Box::default);
        std::mem::replace(&mut extras.trace, hook.map(Tracer)).map(|t| t.0)
    }

    /// Records a trace point for the hook, if there is one.
    #[inline]
    fn note(&mut self, point: TracePoint, tag: &'static str) {
        if let Some(x) = &mut self.extras {
            if x.trace.is_some() {
                x.traced.push((point, tag));
                self.has_after = true;
            }
        }
    }

    /// What is left to do once the state is released (call only when `has_after`).
    pub(crate) fn take_after(&mut self) -> After {
        self.has_after = false;
        let x = self.extras.get_or_insert_with(Box::default);
        After {
            hook: x.trace.as_ref().map(|t| t.0.clone()),
            traced: std::mem::take(&mut x.traced),
            wakers: std::mem::take(&mut x.deferred),
        }
    }

    /// Whether the queue is empty; stores `waker` to be woken when it becomes so.
    /// A ticket for a new `idle()` future.
    pub(crate) fn idle_ticket(&mut self) -> u64 {
        let x = self.extras.get_or_insert_with(Box::default);
        x.idle_tickets += 1;
        x.idle_tickets
    }

    /// An `idle()` future is gone: its waker goes too.
    pub(crate) fn forget_idle(&mut self, ticket: u64) {
        if let Some(x) = &mut self.extras {
            x.idle_waiters.retain(|(t, _)| *t != ticket);
        }
    }

    pub(crate) fn poll_idle(&mut self, ticket: u64, waker: &Waker) -> bool {
        if self.len == 0 {
            return true;
        }
        let x = self.extras.get_or_insert_with(Box::default);
        match x.idle_waiters.iter_mut().find(|(t, _)| *t == ticket) {
            Some((_, w)) if w.will_wake(waker) => {}
            Some((_, w)) => *w = waker.clone(),
            None => x.idle_waiters.push((ticket, waker.clone())),
        }
        false
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Appends an entry. A blocker counts as triggered from the start, as in tevent, so that it
    /// never starts and the queue waits behind it.
    pub(crate) fn push(&mut self, kind: Kind, tag: &'static str) -> Result<u32, QueueError> {
        if self.closed {
            return Err(QueueError::Closed);
        }
        let slot = Slot {
            prev: self.tail,
            next: NIL,
            live: true,
            triggered: kind == Kind::Blocker,
            kind,
            waker: None,
            tag,
            defer: false,
        };
        let key = match self.free {
            NIL => {
                let key = u32::try_from(self.slots.len())
                    .ok()
                    .filter(|&k| k != NIL)
                    .ok_or(QueueError::Full)?;
                self.slots.push(slot);
                key
            }
            key => {
                self.free = self.slots[key as usize].next;
                self.slots[key as usize] = slot;
                key
            }
        };
        if self.tail == NIL {
            self.head = key;
        } else {
            self.slots[self.tail as usize].next = key;
        }
        self.tail = key;
        self.len += 1;
        self.note(TracePoint::Attach, tag);
        Ok(key)
    }

    /// Triggers `key` at once if it is the head of a running queue (tevent's "optimize empty"
    /// and `try_enter`): returns whether it did.
    pub(crate) fn trigger_if_head(&mut self, key: u32) -> bool {
        let slot = &mut self.slots[key as usize];
        if key == self.head && self.running && !slot.triggered {
            slot.triggered = true;
            let tag = slot.tag;
            self.note(TracePoint::Trigger, tag);
            true
        } else {
            false
        }
    }

    /// Whether the entry's turn has come; stores `waker` when it has not.
    pub(crate) fn poll_turn(&mut self, key: u32, waker: &Waker) -> Turn {
        let is_head = key == self.head;
        let (running, closed) = (self.running, self.closed);
        let slot = &mut self.slots[key as usize];
        if closed && !slot.triggered {
            return Turn::Closed;
        }
        if is_head && running && !slot.triggered {
            if slot.defer {
                slot.defer = false;
                return Turn::Yield;
            }
            slot.triggered = true;
            slot.waker = None;
            let tag = slot.tag;
            self.note(TracePoint::Trigger, tag);
            return Turn::Start;
        }
        if !slot.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            slot.waker = Some(waker.clone());
        }
        Turn::Wait
    }

    /// Removes an entry in O(1). Returns the waker of the entry whose turn this makes come.
    pub(crate) fn remove(&mut self, key: u32) -> Option<Waker> {
        let Slot { prev, next, live, .. } = self.slots[key as usize];
        debug_assert!(live, "removing a free slot");
        if prev == NIL {
            self.head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
        let slot = &mut self.slots[key as usize];
        slot.live = false;
        slot.waker = None;
        slot.next = self.free;
        let tag = slot.tag;
        self.free = key;
        self.len -= 1;
        self.note(TracePoint::Detach, tag);
        if self.len == 0 {
            if let Some(x) = &mut self.extras {
                if !x.idle_waiters.is_empty() {
                    let idle = std::mem::take(&mut x.idle_waiters);
                    x.deferred.extend(idle.into_iter().map(|(_, w)| w));
                    self.has_after = true;
                }
            }
        }
        if prev == NIL {
            self.head_waker()
        } else {
            None
        }
    }

    /// The head's waker, if the head may start now.
    fn head_waker(&mut self) -> Option<Waker> {
        if !self.running || self.head == NIL {
            return None;
        }
        let head = &mut self.slots[self.head as usize];
        if head.triggered {
            None
        } else {
            let waker = head.waker.take();
            head.defer = waker.is_none();
            waker
        }
    }

    /// `tevent_queue_start`: returns the waker of a head that may now start.
    pub(crate) fn start(&mut self) -> Option<Waker> {
        if self.running {
            return None;
        }
        self.running = true;
        self.head_waker()
    }

    /// `tevent_queue_stop`: the triggered head keeps working; nothing new starts.
    pub(crate) fn stop(&mut self) {
        self.running = false;
    }

    /// `tevent_queue_entry_untrigger`: allowed only for the head of a stopped queue.
    pub(crate) fn untrigger(&mut self, key: u32) -> Result<(), QueueError> {
        if self.running {
            return Err(QueueError::NotStopped);
        }
        if key != self.head {
            return Err(QueueError::NotHead);
        }
        self.slots[key as usize].triggered = false;
        Ok(())
    }

    /// Closes the queue: every entry not yet triggered will resolve to `Closed`. Returns their
    /// wakers.
    pub(crate) fn close(&mut self) -> Vec<Waker> {
        if self.closed {
            return Vec::new();
        }
        self.closed = true;
        let mut wakers = Vec::new();
        let mut key = self.head;
        while key != NIL {
            let slot = &mut self.slots[key as usize];
            if !slot.triggered {
                wakers.extend(slot.waker.take());
            }
            key = slot.next;
        }
        wakers
    }

    pub(crate) fn is_triggered(&self, key: u32) -> bool {
        self.slots[key as usize].triggered
    }

    pub(crate) fn set_tag(&mut self, key: u32, tag: &'static str) {
        self.slots[key as usize].tag = tag;
    }

    /// Tags and states of the entries, head first.
    pub(crate) fn snapshot(&self) -> Vec<(&'static str, EntryState)> {
        let mut out = Vec::with_capacity(self.len);
        let mut key = self.head;
        while key != NIL {
            let slot = &self.slots[key as usize];
            let state = match (slot.kind, slot.triggered) {
                (Kind::Blocker, _) => EntryState::Blocker,
                (_, true) => EntryState::Triggered,
                (_, false) => EntryState::Waiting,
            };
            out.push((slot.tag, state));
            key = slot.next;
        }
        out
    }

    /// The number of slots ever allocated: stays flat in a steady state.
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrigger_needs_a_stopped_queue_and_the_head() {
        let mut s = State::new("q".into());
        let a = s.push(Kind::Barrier, "a").unwrap();
        let b = s.push(Kind::Barrier, "b").unwrap();
        assert!(s.trigger_if_head(a));
        assert_eq!(s.untrigger(a), Err(QueueError::NotStopped));
        s.stop();
        assert_eq!(s.untrigger(b), Err(QueueError::NotHead));
        assert_eq!(s.untrigger(a), Ok(()));
        assert!(!s.is_triggered(a));
    }

    #[test]
    fn removal_keeps_order_and_reuses_slots() {
        let mut s = State::new("q".into());
        let keys: Vec<u32> =
            ["a", "b", "c", "d"].iter().map(|t| s.push(Kind::Trigger, t).unwrap()).collect();
        s.remove(keys[2]);
        s.remove(keys[0]);
        let tags: Vec<&str> = s.snapshot().iter().map(|(t, _)| *t).collect();
        assert_eq!(tags, ["b", "d"]);
        let e = s.push(Kind::Trigger, "e").unwrap();
        assert!(keys.contains(&e), "a freed slot is reused");
        assert_eq!(s.capacity(), 4);
        assert_eq!(s.len(), 3);
    }
}
