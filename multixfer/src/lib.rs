//! multixfer: libcurl multi semantics for HTTP/1.1 transfers, in pure Rust.
//!
//! This crate is being built in increments. Today it has its sans-I/O HTTP/1.1 core
//! ([`http`]): request encoding and an incremental response parser that frames bodies by RFC
//! 9112 (Content-Length, chunked, close-delimited, none for HEAD/1xx/204/304), decides
//! connection reuse, and bounds what a server can make the client buffer, with typed
//! [`http::HttpError`]s. Still to come, on top of it: the `Multi` engine with `perform()` and
//! `socket_action()`, the socket and timer callbacks (In, Out, InOut, Remove, as
//! [`evcore::Interest`]) and the pull-style `drain_updates()`; connection reuse and limits;
//! timeouts; redirects; the `mxfer` program; tests against nginx and the benchmarks against
//! libcurl.
//!
//! Dependencies: `httparse` (status line and headers: a well-kept parser rather than our own),
//! `bytes`, `thiserror`, `evcore`.
#![forbid(unsafe_code)]

pub mod http;

pub use evcore::{Interest, Ready};
