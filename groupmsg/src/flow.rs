//! Waiting for flow control: a bounded retry for the C-style API, and the pauses the async
//! API falls back on.
//!
//! How a sender learns that flow control has cleared differs by backend:
//!
//! - **Local bus**: a sender refused with `TryAgain` (or that read the state as on) is marked;
//!   when its group's backlog falls back under the threshold, or the member holding it on
//!   leaves or is removed, the bus raises that sender's signal descriptor. The blocking helper
//!   waits on the bus's condition variable instead.
//! - **groupd**: the same mark in the daemon's bus; the wake-up becomes a frame to the client
//!   (its socket, and so its descriptor, becomes readable), and reading it clears the
//!   client's flow state. A daemon-side check drops the notice when flow control is on again
//!   by the time it would be sent. The client also counts its own backlog (events read from
//!   the socket, not yet dispatched) against the same threshold; dispatching is what clears
//!   that, and its descriptor is readable meanwhile.
//! - **corosync**: libcpg has no such notice (its state changes only as it dispatches, and a
//!   full IPC queue answers `TryAgain` with the state off), so senders retry after growing
//!   pauses, as Pacemaker does; the async API also retries whenever the descriptor is
//!   readable.

use std::time::{Duration, Instant};

use crate::CsError;

/// The first pause between attempts.
pub(crate) const FIRST_PAUSE: Duration = Duration::from_micros(100);
/// The longest pause between attempts: short enough that a cleared flow is noticed quickly,
/// long enough that a stalled group costs little CPU.
pub(crate) const MAX_PAUSE: Duration = Duration::from_millis(50);

/// Pauses that double from [`FIRST_PAUSE`] up to [`MAX_PAUSE`].
#[derive(Debug)]
pub(crate) struct Backoff(Duration);

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff(FIRST_PAUSE)
    }

    /// Whether a pause has been taken.
    pub(crate) fn started(&self) -> bool {
        self.0 > FIRST_PAUSE
    }

    /// Whether the pauses have reached [`MAX_PAUSE`].
    pub(crate) fn at_max(&self) -> bool {
        self.0 >= MAX_PAUSE
    }

    /// The next pause.
    pub(crate) fn next(&mut self) -> Duration {
        let p = self.0;
        self.0 = self.0.saturating_mul(2).min(MAX_PAUSE);
        p
    }
}

/// Runs `attempt` until it returns something other than a retryable error
/// ([`CsError::is_retryable`]) or `timeout` has passed (then the last error), calling
/// `wait` with each pause (cut to what is left) in between.
pub(crate) fn retry(
    timeout: Duration,
    mut attempt: impl FnMut() -> Result<(), CsError>,
    mut wait: impl FnMut(Duration),
) -> Result<(), CsError> {
    // A timeout past what the clock can represent (`Duration::MAX`) means no deadline.
    let deadline = Instant::now().checked_add(timeout);
    let mut backoff = Backoff::new();
    loop {
        let err = match attempt() {
            Err(e) if e.is_retryable() => e,
            other => return other,
        };
        let left = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => Duration::MAX,
        };
        if left.is_zero() {
            return Err(err);
        }
        wait(backoff.next().min(left));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap() {
        let mut b = Backoff::new();
        let pauses: Vec<Duration> = (0..12).map(|_| b.next()).collect();
        assert_eq!(pauses[0], FIRST_PAUSE);
        assert_eq!(pauses[1], FIRST_PAUSE * 2);
        assert_eq!(*pauses.last().unwrap(), MAX_PAUSE);
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn retry_stops_at_success_at_a_final_error_and_at_the_deadline() {
        let mut n = 0;
        let ok = retry(
            Duration::from_secs(10),
            || {
                n += 1;
                if n < 3 {
                    Err(CsError::TryAgain)
                } else {
                    Ok(())
                }
            },
            |_| {},
        );
        assert_eq!((ok, n), (Ok(()), 3));
        let mut waits = 0;
        let final_error = retry(Duration::from_secs(10), || Err(CsError::NotExist), |_| waits += 1);
        assert_eq!((final_error, waits), (Err(CsError::NotExist), 0));
        let timed_out = retry(Duration::ZERO, || Err(CsError::QueueFull), |_| unreachable!());
        assert_eq!(timed_out, Err(CsError::QueueFull));
        // The longest timeout a caller can pass is no deadline, not a panic.
        let mut tries = 0;
        let unbounded = retry(
            Duration::MAX,
            || {
                tries += 1;
                if tries < 3 {
                    Err(CsError::TryAgain)
                } else {
                    Ok(())
                }
            },
            |pause| assert!(pause <= MAX_PAUSE),
        );
        assert_eq!(unbounded, Ok(()));
    }
}
