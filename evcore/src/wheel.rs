//! A hierarchical timing wheel: 6 levels of 64 slots, one tick per millisecond, slab-backed.
//!
//! This is the shape tokio uses. Level `L` holds timers whose deadline differs from the wheel's
//! current tick only in bits `6L..6L+6`, so one slot of level `L` spans `64^L` ticks and the six
//! levels together span `2^36` ms (about 795 days); a later deadline is parked in the top level
//! and re-filed when its slot comes round. Each slot is a doubly linked list threaded through a
//! slab of entries, and each level keeps a 64-bit occupancy map, so:
//!
//! - insert is O(1): compute the level from the highest differing bit, link at the slot's tail;
//! - cancel is O(1): unlink, and clear the occupancy bit when the slot empties;
//! - finding the next deadline is O(levels): one rotate and one trailing-zero count per level;
//! - resetting to a later deadline is lazy: only the entry's deadline changes, and the entry is
//!   re-filed when its old slot is processed. Per-transfer and per-job timeouts are mostly
//!   pushed back or cancelled before they fire, which this makes nearly free.
//!
//! Freed entries go on a free list and are reused, so a steady state of inserts and cancels
//! allocates nothing.

use crate::Token;

const LEVELS: usize = 6;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
/// The first tick distance the wheel cannot represent in one placement.
const MAX_SPAN: u64 = 1 << (SLOT_BITS as u64 * LEVELS as u64);
/// The list of timers already due when inserted; processed first by the next advance.
const DUE: usize = LEVELS * SLOTS;
const NIL: u32 = u32::MAX;
const FREE: u16 = u16::MAX;

/// Names one timer in a [`TimerWheel`] or a reactor.
///
/// An id stays unique for the life of the wheel: once its timer has fired or been cancelled,
/// operations on the id return `false` even if the slot has been reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    index: u32,
    generation: u32,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    when: u64,
    token: Token,
    prev: u32,
    next: u32,
    generation: u32,
    /// The list this entry is linked into (`level * 64 + slot`, or `DUE`), or `FREE`.
    list: u16,
}

/// A hierarchical timing wheel counting in abstract ticks (the reactors use milliseconds).
///
/// ```
/// use evcore::{TimerWheel, Token};
///
/// let mut wheel = TimerWheel::new();
/// let a = wheel.insert(10, Token(1));
/// let b = wheel.insert(5_000, Token(2));
/// assert!(wheel.cancel(b));
/// assert_eq!(wheel.next_expiration(), Some(10));
/// let mut fired = Vec::new();
/// wheel.advance(10, |token| fired.push(token));
/// assert_eq!(fired, [Token(1)]);
/// assert!(!wheel.cancel(a), "a fired timer can no longer be cancelled");
/// ```
#[derive(Debug)]
pub struct TimerWheel {
    /// Every timer with a deadline at or before this tick has fired (or sits in `DUE`).
    elapsed: u64,
    occupied: [u64; LEVELS],
    /// `(head, tail)` of each list, side by side so that linking touches one cache line.
    lists: Box<[(u32, u32); DUE + 1]>,
    entries: Vec<Entry>,
    free: u32,
    len: usize,
}

impl Default for TimerWheel {
    fn default() -> Self {
        Self::new()
    }
}

impl TimerWheel {
    /// An empty wheel at tick 0.
    pub fn new() -> TimerWheel {
        TimerWheel {
            elapsed: 0,
            occupied: [0; LEVELS],
            lists: Box::new([(NIL, NIL); DUE + 1]),
            entries: Vec::new(),
            free: NIL,
            len: 0,
        }
    }

    /// The number of live timers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no timer is live.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The tick up to which the wheel has been advanced.
    pub fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Adds a timer that fires once `advance` reaches tick `when`. A deadline already passed
    /// fires on the next `advance`.
    #[inline]
    pub fn insert(&mut self, when: u64, token: Token) -> TimerId {
        let index = match self.free {
            NIL => {
                let index = u32::try_from(self.entries.len())
                    .ok()
                    .filter(|&i| i != NIL)
                    .expect("more than 4 billion live timers");
                self.entries.push(Entry {
                    when,
                    token,
                    prev: NIL,
                    next: NIL,
                    generation: 0,
                    list: FREE,
                });
                index
            }
            index => {
                let entry = &mut self.entries[index as usize];
                self.free = entry.next;
                entry.when = when;
                entry.token = token;
                index
            }
        };
        self.len += 1;
        let generation = self.entries[index as usize].generation;
        self.file(index, when);
        TimerId { index, generation }
    }

    /// Moves a live timer to a new deadline. Returns `false` (and does nothing) when the timer
    /// has already fired or been cancelled.
    #[inline]
    pub fn reset(&mut self, id: TimerId, when: u64) -> bool {
        if !self.is_live(id) {
            return false;
        }
        let entry = &mut self.entries[id.index as usize];
        let old = entry.when;
        entry.when = when;
        // A later deadline stays where it is: the slot it sits in comes round no later than the
        // new deadline, and processing re-files it then. An earlier one must move now.
        if when < old || entry.list == DUE as u16 {
            self.unlink(id.index);
            self.file(id.index, when);
        }
        true
    }

    /// Removes a live timer. Returns `false` when it has already fired or been cancelled.
    #[inline]
    pub fn cancel(&mut self, id: TimerId) -> bool {
        if !self.is_live(id) {
            return false;
        }
        self.unlink(id.index);
        self.release(id.index);
        true
    }

    /// The deadline a live timer will fire at, or `None` for a timer that is gone.
    pub fn deadline(&self, id: TimerId) -> Option<u64> {
        self.is_live(id).then(|| self.entries[id.index as usize].when)
    }

    /// The tick at which [`advance`](Self::advance) next has work to do, or `None` when the
    /// wheel is empty.
    ///
    /// This is exact for timers within 64 ticks and a lower bound otherwise (the start of the
    /// coarse slot the earliest timer sits in), which is all a poll timeout needs: advancing to
    /// it re-files the slot's timers at finer levels.
    pub fn next_expiration(&self) -> Option<u64> {
        if self.lists[DUE].0 != NIL {
            return Some(self.elapsed);
        }
        self.next_slot().map(|(_, _, deadline)| deadline)
    }

    /// Advances the wheel to tick `now`, calling `fire` with the token of every timer whose
    /// deadline is at or before `now`, in deadline order (timers with the same tick in the order
    /// they were filed). A `now` before the current tick is treated as the current tick.
    pub fn advance(&mut self, now: u64, mut fire: impl FnMut(Token)) -> usize {
        let mut fired = 0;
        fired += self.drain_list(DUE, &mut fire);
        while let Some((level, slot, deadline)) = self.next_slot() {
            if deadline > now {
                break;
            }
            self.elapsed = deadline;
            let list = level * SLOTS + slot;
            let mut index = self.lists[list].0;
            self.lists[list] = (NIL, NIL);
            self.occupied[level] &= !(1u64 << slot);
            while index != NIL {
                let entry = &mut self.entries[index as usize];
                let next = entry.next;
                entry.list = FREE;
                let when = entry.when;
                if when <= self.elapsed {
                    fire(entry.token);
                    fired += 1;
                    self.release(index);
                } else {
                    self.file(index, when);
                }
                index = next;
            }
        }
        self.elapsed = self.elapsed.max(now);
        fired
    }

    #[inline]
    fn is_live(&self, id: TimerId) -> bool {
        self.entries
            .get(id.index as usize)
            .is_some_and(|e| e.generation == id.generation && e.list != FREE)
    }

    /// Fires and frees every entry of one list without consulting deadlines.
    fn drain_list(&mut self, list: usize, fire: &mut impl FnMut(Token)) -> usize {
        let mut fired = 0;
        let mut index = self.lists[list].0;
        self.lists[list] = (NIL, NIL);
        while index != NIL {
            let entry = &mut self.entries[index as usize];
            let next = entry.next;
            entry.list = FREE;
            fire(entry.token);
            fired += 1;
            self.release(index);
            index = next;
        }
        fired
    }

    /// Links an unlinked entry into the list its deadline belongs to, relative to `elapsed`.
    #[inline]
    fn file(&mut self, index: u32, when: u64) {
        let list = if when <= self.elapsed {
            DUE
        } else {
            let level = level_for(self.elapsed, when);
            let slot = ((when >> (level as u32 * SLOT_BITS)) as usize) & (SLOTS - 1);
            self.occupied[level] |= 1u64 << slot;
            level * SLOTS + slot
        };
        let tail = self.lists[list].1;
        {
            let entry = &mut self.entries[index as usize];
            entry.list = list as u16;
            entry.prev = tail;
            entry.next = NIL;
        }
        if tail == NIL {
            self.lists[list].0 = index;
        } else {
            self.entries[tail as usize].next = index;
        }
        self.lists[list].1 = index;
    }

    #[inline]
    fn unlink(&mut self, index: u32) {
        let Entry { prev, next, list, .. } = self.entries[index as usize];
        let list = list as usize;
        if prev == NIL {
            self.lists[list].0 = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next == NIL {
            self.lists[list].1 = prev;
        } else {
            self.entries[next as usize].prev = prev;
        }
        if self.lists[list].0 == NIL && list != DUE {
            self.occupied[list / SLOTS] &= !(1u64 << (list % SLOTS));
        }
        self.entries[index as usize].list = FREE;
    }

    #[inline]
    fn release(&mut self, index: u32) {
        let entry = &mut self.entries[index as usize];
        entry.generation = entry.generation.wrapping_add(1);
        entry.list = FREE;
        entry.next = self.free;
        self.free = index;
        self.len -= 1;
    }

    /// The earliest occupied slot: `(level, slot, tick at which it must be processed)`.
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        // A lower level always expires before any higher one: its timers share every bit above
        // their level with `elapsed`, so they come before the next higher-level boundary.
        for level in 0..LEVELS {
            let occupied = self.occupied[level];
            if occupied == 0 {
                continue;
            }
            let shift = level as u32 * SLOT_BITS;
            let slot_range = 1u64 << shift;
            let level_range = slot_range << SLOT_BITS;
            let now_slot = ((self.elapsed >> shift) as u32) & (SLOTS as u32 - 1);
            // Search from the slot after the current one: the current slot of a level can only
            // hold timers a whole revolution away (parked beyond the top level's span), so it
            // comes last.
            let first = (now_slot + 1) % SLOTS as u32;
            let slot = (occupied.rotate_right(first).trailing_zeros() + first) as usize % SLOTS;
            let level_start = self.elapsed & !(level_range - 1);
            let mut deadline = level_start + slot as u64 * slot_range;
            if deadline <= self.elapsed {
                deadline += level_range;
            }
            return Some((level, slot, deadline));
        }
        None
    }
}

/// The level a deadline belongs in: the highest 6-bit group in which it differs from `elapsed`.
fn level_for(elapsed: u64, when: u64) -> usize {
    let mut masked = (elapsed ^ when) | (SLOTS as u64 - 1);
    if masked >= MAX_SPAN {
        masked = MAX_SPAN - 1;
    }
    let significant = 63 - masked.leading_zeros() as usize;
    significant / SLOT_BITS as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire_all(wheel: &mut TimerWheel, now: u64) -> Vec<usize> {
        let mut out = Vec::new();
        wheel.advance(now, |t| out.push(t.0));
        out
    }

    #[test]
    fn level_boundaries() {
        for (elapsed, when, level) in [
            (0, 1, 0),
            (0, 63, 0),
            (0, 64, 1),
            (0, 4095, 1),
            (0, 4096, 2),
            (63, 64, 1),
            (64, 127, 0),
            (0, MAX_SPAN - 1, 5),
            (0, MAX_SPAN * 3, 5),
        ] {
            assert_eq!(level_for(elapsed, when), level, "elapsed {elapsed} when {when}");
        }
    }

    #[test]
    fn fires_in_deadline_order_across_levels() {
        let mut wheel = TimerWheel::new();
        let deadlines = [5u64, 70, 1, 4096, 64, 63, 300_000, 4_000_000, 65, 2];
        for (i, &d) in deadlines.iter().enumerate() {
            wheel.insert(d, Token(i));
        }
        let mut order: Vec<usize> = (0..deadlines.len()).collect();
        order.sort_by_key(|&i| deadlines[i]);
        assert_eq!(fire_all(&mut wheel, 10_000_000), order);
        assert!(wheel.is_empty());
    }

    #[test]
    fn fires_exactly_at_deadline_not_before() {
        for d in [1u64, 63, 64, 65, 4095, 4096, 4097, 262_143, 262_144, 16_777_216] {
            let mut wheel = TimerWheel::new();
            wheel.insert(d, Token(7));
            assert!(fire_all(&mut wheel, d - 1).is_empty(), "deadline {d} fired early");
            assert_eq!(fire_all(&mut wheel, d), [7], "deadline {d} did not fire on time");
        }
    }

    #[test]
    fn step_by_step_advance_matches_jump() {
        let deadlines: Vec<u64> = (0..500).map(|i| (i * 7919) % 20_000 + 1).collect();
        let mut stepped = TimerWheel::new();
        let mut jumped = TimerWheel::new();
        for (i, &d) in deadlines.iter().enumerate() {
            stepped.insert(d, Token(i));
            jumped.insert(d, Token(i));
        }
        let mut by_step = Vec::new();
        for now in (0..=20_001).step_by(13) {
            stepped.advance(now, |t| by_step.push((now, t.0)));
        }
        for &(now, i) in &by_step {
            let d = deadlines[i];
            assert!(d <= now && now < d + 13, "timer {i} due {d} fired at {now}");
        }
        let all = fire_all(&mut jumped, 20_001);
        assert_eq!(all.len(), 500);
        let times: Vec<u64> = all.iter().map(|&i| deadlines[i]).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn due_and_past_deadlines_fire_on_next_advance() {
        let mut wheel = TimerWheel::new();
        wheel.advance(1000, |_| {});
        wheel.insert(10, Token(1));
        wheel.insert(1000, Token(2));
        assert_eq!(wheel.next_expiration(), Some(1000));
        assert_eq!(fire_all(&mut wheel, 1000), [1, 2]);
    }

    #[test]
    fn cancel_and_reset_at_every_point() {
        // Each case: insert at 1000, then at `at` do an operation, then check what fires when.
        #[derive(Clone, Copy, Debug)]
        enum Op {
            Cancel,
            Reset(u64),
        }
        for at in [0u64, 1, 500, 999] {
            for op in [Op::Cancel, Op::Reset(5), Op::Reset(999), Op::Reset(1001), Op::Reset(90_000)]
            {
                let mut wheel = TimerWheel::new();
                let id = wheel.insert(1000, Token(1));
                assert!(fire_all(&mut wheel, at).is_empty());
                match op {
                    Op::Cancel => assert!(wheel.cancel(id)),
                    Op::Reset(d) => assert!(wheel.reset(id, d)),
                }
                let expect = match op {
                    Op::Cancel => None,
                    Op::Reset(d) => Some(d.max(at)),
                };
                let mut fired_at = None;
                for now in at..=100_000 {
                    if !fire_all(&mut wheel, now).is_empty() {
                        fired_at = Some(now);
                        break;
                    }
                }
                assert_eq!(fired_at, expect, "op {op:?} at {at}");
                assert!(!wheel.cancel(id), "stale id must not cancel ({op:?} at {at})");
                assert!(!wheel.reset(id, 5), "stale id must not reset ({op:?} at {at})");
            }
        }
    }

    #[test]
    fn stale_ids_do_not_touch_reused_slots() {
        let mut wheel = TimerWheel::new();
        let a = wheel.insert(10, Token(1));
        assert!(wheel.cancel(a));
        let b = wheel.insert(20, Token(2));
        assert_ne!(a, b);
        assert!(!wheel.cancel(a));
        assert_eq!(wheel.deadline(b), Some(20));
        assert_eq!(fire_all(&mut wheel, 20), [2]);
    }

    #[test]
    fn hundred_thousand_mostly_cancelled() {
        let mut wheel = TimerWheel::new();
        let ids: Vec<TimerId> = (0..100_000u64)
            .map(|i| wheel.insert(1 + (i * 37) % 60_000, Token(i as usize)))
            .collect();
        assert_eq!(wheel.len(), 100_000);
        for (i, id) in ids.iter().enumerate() {
            if i % 100 != 0 {
                assert!(wheel.cancel(*id));
            }
        }
        assert_eq!(wheel.len(), 1000);
        let fired = fire_all(&mut wheel, 60_001);
        assert_eq!(fired.len(), 1000);
        assert!(fired.iter().all(|i| i % 100 == 0));
        assert!(wheel.is_empty());
        assert_eq!(wheel.next_expiration(), None);
    }

    #[test]
    fn far_deadlines_cascade_through_every_level() {
        let hour = 3_600_000u64;
        let mut wheel = TimerWheel::new();
        let deadlines = [hour, 5 * hour, 24 * hour, 400 * 24 * hour, MAX_SPAN + 17, 3 * MAX_SPAN];
        for (i, &d) in deadlines.iter().enumerate() {
            wheel.insert(d, Token(i));
        }
        let mut fired = Vec::new();
        let mut now = 0;
        // Jump from expiration to expiration, as a loop that sleeps until the next one would.
        while let Some(next) = wheel.next_expiration() {
            assert!(next >= now, "time went backwards");
            now = next;
            wheel.advance(now, |t| fired.push((now, t.0)));
        }
        let expect: Vec<(u64, usize)> = deadlines.iter().copied().zip(0..).collect();
        assert_eq!(fired, expect);
    }

    #[test]
    fn slots_are_reused_without_growth() {
        let mut wheel = TimerWheel::new();
        for i in 0..10_000u64 {
            let id = wheel.insert(i + 100, Token(0));
            wheel.cancel(id);
        }
        assert_eq!(wheel.entries.len(), 1);
    }
}
