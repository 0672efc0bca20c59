//! multixfer: libcurl multi semantics for HTTP/1.1 transfers, in pure Rust.
//!
//! This crate is a skeleton today: the `Multi` engine with `perform` and `socket_action`, the
//! socket and timer callbacks, the HTTP/1.1 state machine and the `mxfer` binary land with its
//! own issue. The socket callback's `In`/`Out`/`InOut` are [`evcore::Interest`], and the
//! readiness bits passed to `socket_action` are [`evcore::Ready`].

#![forbid(unsafe_code)]

pub use evcore::{Interest, Ready};
