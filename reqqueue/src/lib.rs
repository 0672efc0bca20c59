//! reqqueue: Samba's `tevent_queue` semantics in Rust.
//!
//! A queue that serializes asynchronous requests: one entry at a time is active, strictly in
//! FIFO order; the queue can be stopped and started; barriers wait for everything queued before
//! them. This crate is a skeleton today: its API and the mapping of every `tevent_queue_*` call
//! are specified in the workspace design and land with its own issue.
//!
//! The thread proxy (`tevent_thread_proxy_*`) is [`evcore::Remote`], re-exported here.

#![forbid(unsafe_code)]

pub use evcore::Remote;
