//! evcore: placeholder docs (filled in below).
#![deny(unsafe_code)]

mod clock;
mod core;
mod error;
mod exec;
mod event;
// The only modules that speak to the OS directly, each unsafe block with its reason.
#[allow(unsafe_code)]
mod poll_loop;
mod reactor;
#[cfg(feature = "tokio")]
#[allow(unsafe_code)]
mod tokio;
mod remote;
mod wheel;

pub use clock::{Clock, MockClock};
pub use error::{DispatchError, RemoteError};
pub use exec::{Async, Executor, Handle, Sleep};
pub use async_task::Task;
pub use event::{Dispatch, Event, Interest, Ready, Token};
pub use poll_loop::Loop;
pub use reactor::{DispatchState, Reactor};
pub use remote::Remote;
#[cfg(feature = "tokio")]
pub use crate::tokio::TokioReactor;
pub use wheel::{TimerId, TimerWheel};
