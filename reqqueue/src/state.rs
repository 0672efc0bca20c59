//! The queue's state machine, with no I/O and no wakers called: a slab of entries threaded into
//! one FIFO list, plus the running and closed flags.
//!
//! Every operation that makes another entry's turn come returns that entry's waker for the
//! caller to wake after releasing the state, so a completion never polls the next head from
//! inside itself (tevent uses an immediate event for the same reason).

use std::task::Waker;

use crate::QueueError;

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
        }
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
        Ok(key)
    }

    /// Triggers `key` at once if it is the head of a running queue (tevent's "optimize empty"
    /// and `try_enter`): returns whether it did.
    pub(crate) fn trigger_if_head(&mut self, key: u32) -> bool {
        let slot = &mut self.slots[key as usize];
        if key == self.head && self.running && !slot.triggered {
            slot.triggered = true;
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
            slot.triggered = true;
            slot.waker = None;
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
        self.free = key;
        self.len -= 1;
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
            head.waker.take()
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
