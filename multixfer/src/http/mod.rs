//! HTTP/1.1 as a state machine, with no I/O: request heads out, responses in.
//!
//! The response parser frames bodies by the rules of RFC 9112: no body for HEAD, 1xx, 204
//! and 304; chunked when `Transfer-Encoding` says so (its trailers read and dropped); else
//! `Content-Length` (two that disagree are an error); else until the connection closes. It
//! decides whether the connection can carry another request (HTTP/1.1 unless
//! `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`; never after a
//! close-delimited body). Limits on the head and on chunk-size lines are checked on what is
//! buffered, so a hostile server cannot make the client hold more than the limit.

mod error;
mod request;
mod response;

pub use error::HttpError;
pub use request::encode_request;
pub use response::{Limits, Part, ResponseHead, ResponseParser};

#[cfg(test)]
mod tests;
