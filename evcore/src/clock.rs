//! Where a reactor reads the time: the system's monotonic clock, or a mock that tests move by hand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The time source of a reactor.
///
/// Protocol engines never call `Instant::now()` themselves: they ask the reactor, so that a test
/// can drive every timeout with a [`MockClock`] and no sleeping.
#[derive(Clone, Debug)]
pub struct Clock {
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    System,
    Mock(MockClock),
}

impl Clock {
    /// The system's monotonic clock.
    pub fn system() -> Clock {
        Clock { kind: Kind::System }
    }

    /// A clock that stands still until its [`MockClock`] handle moves it.
    pub fn mock() -> (Clock, MockClock) {
        let handle = MockClock { base: Instant::now(), offset_ns: Arc::new(AtomicU64::new(0)) };
        (Clock { kind: Kind::Mock(handle.clone()) }, handle)
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        match &self.kind {
            Kind::System => Instant::now(),
            Kind::Mock(m) => m.now(),
        }
    }

    /// Whether this clock is a mock. A reactor on a mock clock never sleeps waiting for a timer,
    /// since time only moves when the test moves it.
    pub fn is_mock(&self) -> bool {
        matches!(self.kind, Kind::Mock(_))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

/// The handle that moves a mock [`Clock`]; clones share the same time, across threads.
#[derive(Clone, Debug)]
pub struct MockClock {
    base: Instant,
    offset_ns: Arc<AtomicU64>,
}

impl MockClock {
    /// The mock's current time.
    pub fn now(&self) -> Instant {
        self.base + Duration::from_nanos(self.offset_ns.load(Ordering::Acquire))
    }

    /// Moves the time forward.
    pub fn advance(&self, by: Duration) {
        let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.offset_ns.fetch_add(ns, Ordering::AcqRel);
    }
}
