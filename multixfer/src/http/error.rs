//! Why a response could not be read.

/// What is wrong with the bytes a server sent (each fails only its own transfer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The status line or a header is not HTTP/1.x.
    #[error("malformed response head: {0}")]
    MalformedHead(String),
    /// The head grew past the limit before it ended; nothing more was buffered for it.
    #[error("response head exceeds {0} bytes")]
    HeadTooLarge(usize),
    /// More header lines than the limit.
    #[error("more than {0} header lines")]
    TooManyHeaders(usize),
    /// A Content-Length that is not a number, or two that disagree.
    #[error("invalid Content-Length")]
    BadContentLength,
    /// A chunk-size line that is not hexadecimal, too long, or overflowing.
    #[error("invalid chunk size")]
    BadChunk,
    /// The connection ended before the body did (a Content-Length or chunked body cut short).
    #[error("the connection closed {0} body bytes early")]
    Truncated(u64),
    /// The connection ended before any response head arrived.
    #[error("the connection closed before a response")]
    NoResponse,
}
