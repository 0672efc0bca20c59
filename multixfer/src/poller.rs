//! The thread-safe wake-up for an engine blocked in [`Multi::poll`](crate::Multi::poll). In
//! perform mode the engine watches its sockets with an evcore [`Loop`](evcore::Loop) of its
//! own, so waking it is that loop's [`Remote`](evcore::Remote).

/// Wakes a [`Multi`](crate::Multi) blocked in [`poll`](crate::Multi::poll) from any thread
/// (`curl_multi_wakeup`). Cheap to clone; waking an engine that is gone does nothing.
#[derive(Clone, Debug)]
pub struct MultiWaker(pub(crate) evcore::Remote);

impl MultiWaker {
    /// Makes the current or next `poll` return at once.
    pub fn wakeup(&self) {
        // The only error is that the engine is gone, when there is nothing left to wake.
        let _ = self.0.wake();
    }
}
