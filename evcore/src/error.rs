//! The errors of evcore.

use std::io;

/// Why a [`Remote`](crate::Remote) could not reach its loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The loop has been dropped; the closure was not scheduled and has been dropped.
    #[error("the event loop is gone")]
    LoopGone,
}

/// Why a [`Reactor::dispatch`](crate::Reactor::dispatch) call returned early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// `Dispatch::OneNonBlocking` found nothing pending (`CS_ERR_TRY_AGAIN`).
    #[error("nothing to dispatch, try again")]
    TryAgain,
    /// Waiting for events failed.
    #[error("waiting for events failed: {0}")]
    Io(#[from] io::Error),
}
