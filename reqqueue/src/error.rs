//! The errors of reqqueue.

/// Why an entry did not run, or an operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue was closed (or its last handle dropped) before the entry was triggered.
    /// tevent leaves such requests hanging forever; here they end.
    #[error("the queue was closed")]
    Closed,
    /// The entry's deadline passed while it waited or ran.
    #[error("the entry's deadline passed")]
    TimedOut,
    /// `untrigger` on a running queue (tevent aborts the process here).
    #[error("untrigger needs a stopped queue")]
    NotStopped,
    /// `untrigger` on an entry that is not the head (tevent aborts the process here).
    #[error("untrigger needs the head entry")]
    NotHead,
    /// An entry future was polled again after it had completed.
    #[error("the entry has already completed")]
    Finished,
    /// More than 4 billion entries at once.
    #[error("the queue is full")]
    Full,
    /// [`try_add`](crate::QueueHandle::try_add) found the queue at the limit it was given.
    #[error("the queue holds as many entries as allowed")]
    AtLimit,
}
