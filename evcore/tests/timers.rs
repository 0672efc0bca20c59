//! Timers on the reactor's clock: order, never early, reset and cancel, many, far.

mod support;

use evcore::{Clock, Event, Reactor, Token};
use std::time::Duration;
use support::{poll_now, timers};

const MS: Duration = Duration::from_millis(1);

fn fire_in_deadline_order_never_early<R: Reactor>(make: fn(Clock) -> R) {
    let (clock, mock) = Clock::mock();
    let mut r = make(clock);
    let t0 = r.now();
    // (token, deadline after t0 in microseconds)
    for (token, us) in [(3, 30_000), (1, 10_000), (2, 20_000), (4, 20_500), (0, 0)] {
        r.add_timer(t0 + Duration::from_micros(us), Token(token));
    }
    // (advance by ms, tokens expected to fire on that turn)
    let steps: [(u64, &[usize]); 6] =
        [(0, &[0]), (10, &[1]), (9, &[]), (1, &[2]), (1, &[4]), (9, &[3])];
    for (ms, expect) in steps {
        mock.advance(MS * ms as u32);
        assert_eq!(timers(&poll_now(&mut r)), expect, "at +{:?}", r.now() - t0);
    }
    assert_eq!(r.next_deadline(), None);
}

fn reset_and_cancel_at_every_point<R: Reactor>(make: fn(Clock) -> R) {
    #[derive(Clone, Copy, Debug)]
    enum Op {
        Cancel,
        ResetTo(u32),
    }
    // A timer due at 100 ms; at `at` ms apply `op`; it must fire at `fires` ms, or never.
    let cases = [
        (0, Op::Cancel, None),
        (50, Op::Cancel, None),
        (99, Op::Cancel, None),
        (0, Op::ResetTo(40), Some(40)),
        (50, Op::ResetTo(40), Some(50)),
        (50, Op::ResetTo(150), Some(150)),
        (99, Op::ResetTo(100), Some(100)),
        (99, Op::ResetTo(4_100), Some(4_100)),
        (0, Op::ResetTo(70), Some(70)),
    ];
    for (at, op, fires) in cases {
        let (clock, mock) = Clock::mock();
        let mut r = make(clock);
        let t0 = r.now();
        let id = r.add_timer(t0 + MS * 100, Token(1));
        mock.advance(MS * at);
        assert!(timers(&poll_now(&mut r)).is_empty());
        match op {
            Op::Cancel => assert!(r.cancel_timer(id)),
            Op::ResetTo(ms) => assert!(r.reset_timer(id, t0 + MS * ms)),
        }
        let mut fired_at = None;
        for now in at..=5_000 {
            mock.advance(if now == at { Duration::ZERO } else { MS });
            if !timers(&poll_now(&mut r)).is_empty() {
                fired_at = Some(now);
                break;
            }
        }
        assert_eq!(fired_at, fires, "{op:?} at {at}");
        assert!(!r.cancel_timer(id), "stale id still cancellable ({op:?} at {at})");
        assert!(!r.reset_timer(id, t0), "stale id still resettable ({op:?} at {at})");
    }
}

fn hundred_thousand_mostly_cancelled<R: Reactor>(make: fn(Clock) -> R) {
    let (clock, mock) = Clock::mock();
    let mut r = make(clock);
    let t0 = r.now();
    let mut kept = Vec::new();
    for i in 0..100_000u32 {
        let due = t0 + MS * (1 + (i * 7919) % 5_000);
        let id = r.add_timer(due, Token(i as usize));
        if i % 50 == 0 {
            kept.push((due, i as usize));
        } else {
            assert!(r.cancel_timer(id));
        }
    }
    kept.sort();
    let mut fired = Vec::new();
    for _ in 0..=5_000 {
        for t in timers(&poll_now(&mut r)) {
            fired.push(t);
        }
        mock.advance(MS);
    }
    let expect: Vec<usize> = kept.iter().map(|&(_, i)| i).collect();
    let mut fired_sorted = fired.clone();
    fired_sorted.sort_by_key(|i| kept.iter().position(|k| k.1 == *i));
    assert_eq!(fired.len(), expect.len());
    assert_eq!(fired_sorted, expect);
    // Deadline order: each fired timer's deadline is no earlier than the previous one's.
    let due_of = |i: usize| 1 + (i as u32 * 7919) % 5_000;
    assert!(fired.windows(2).all(|w| due_of(w[0]) <= due_of(w[1])));
}

fn far_deadlines_cascade<R: Reactor>(make: fn(Clock) -> R) {
    let (clock, mock) = Clock::mock();
    let mut r = make(clock);
    let t0 = r.now();
    let hour = Duration::from_secs(3600);
    let due = [hour, hour * 5, hour * 30, hour * 24 * 100];
    for (i, d) in due.iter().enumerate() {
        r.add_timer(t0 + *d, Token(i));
    }
    let mut fired = Vec::new();
    while let Some(next) = r.next_deadline() {
        let now = r.now();
        if next > now {
            mock.advance(next - now);
        }
        for t in timers(&poll_now(&mut r)) {
            fired.push((t, r.now() - t0));
        }
    }
    let expect: Vec<(usize, Duration)> = due.iter().copied().enumerate().collect();
    assert_eq!(fired, expect);
}

/// Deadlines beyond the wheel's millisecond ticks (an absurd epoch or timeout from the network)
/// once wrapped the tick arithmetic, so the timer fired at once and, re-armed, spun a core.
fn deadlines_beyond_every_tick_never_fire<R: Reactor>(make: fn(Clock) -> R) {
    let (clock, mock) = Clock::mock();
    let mut r = make(clock);
    let t0 = r.now();
    let far = [Duration::from_secs(1 << 62), Duration::from_secs(u64::MAX / 1000 + 1)];
    for (i, d) in far.iter().enumerate() {
        let at = t0.checked_add(*d).expect("an Instant this far exists on Linux");
        r.add_timer(at + Duration::from_nanos(999_999), Token(i));
    }
    r.add_timer(t0 + MS * 5, Token(9));
    mock.advance(MS * 10);
    assert_eq!(timers(&poll_now(&mut r)), [9]);
    mock.advance(Duration::from_secs(3600 * 24 * 365 * 1000));
    assert_eq!(timers(&poll_now(&mut r)), Vec::<usize>::new(), "fired a thousand years early");
    // The wheel may wake earlier than the deadline to cascade (its top level spans about two
    // years), but never at once.
    let next = r.next_deadline().expect("still armed");
    assert!(next > r.now(), "due now");
    assert_eq!(timers(&poll_now(&mut r)), Vec::<usize>::new());
}

/// The same on the real clock: a far timer leaves a non-blocking turn with nothing to do.
fn far_timer_on_the_real_clock_is_idle<R: Reactor>(make: fn(Clock) -> R) {
    let mut r = make(Clock::system());
    let at = r.now().checked_add(Duration::from_secs(1 << 62)).expect("representable");
    r.add_timer(at, Token(1));
    let mut out = Vec::new();
    assert_eq!(r.turn(Some(Duration::ZERO), &mut out).unwrap(), 0);
    assert!(out.is_empty());
    r.add_timer(r.now() + MS, Token(2));
    while out.is_empty() {
        r.turn(Some(Duration::from_secs(5)), &mut out).unwrap();
    }
    assert_eq!(out, [Event::Timer(Token(2))]);
}

fn real_clock_timer_wakes_a_blocking_turn<R: Reactor>(make: fn(Clock) -> R) {
    let mut r = make(Clock::system());
    let due = r.now() + MS * 15;
    r.add_timer(due, Token(1));
    let mut out = Vec::new();
    while out.is_empty() {
        r.turn(None, &mut out).unwrap();
    }
    assert_eq!(out, [Event::Timer(Token(1))]);
    assert!(r.now() >= due, "fired early");
}

each_reactor!(
    fire_in_deadline_order_never_early,
    reset_and_cancel_at_every_point,
    hundred_thousand_mostly_cancelled,
    far_deadlines_cascade,
    deadlines_beyond_every_tick_never_fire,
    far_timer_on_the_real_clock_is_idle,
    real_clock_timer_wakes_a_blocking_turn,
);
