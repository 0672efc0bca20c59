//! multixfer: libcurl multi semantics for HTTP/1.1 transfers, in pure Rust.
#![forbid(unsafe_code)]

pub mod client;
mod done;
pub mod drive;
mod easy;
mod error;
pub mod http;
mod multi;
mod poller;
mod resolve;
mod sock;
mod target;

pub use done::{Done, Response, XferId};
pub use easy::{Easy, Flow, Progress, DEFAULT_BUFFER_SIZE};
pub use error::{MultiError, XferError};
pub use evcore::{Interest, Ready};
pub use multi::{Multi, Options, SocketPoll, Update};
pub use poller::MultiWaker;
