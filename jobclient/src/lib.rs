//! jobclient: a Gearman client, worker and embedded job server (libgearman's semantics).
//!
//! This crate is a skeleton today: the sans-I/O codec, the client (`gearman_client_do`, task
//! sets), the worker, the admin client and the embedded server land with its own issue, on the
//! shared [`evcore`] reactor.

#![forbid(unsafe_code)]
