//! The errors of jobclient.

use bytes::Bytes;

use crate::proto::ProtoError;

impl From<std::io::Error> for Error {
    /// A TLS failure inside an I/O error becomes [`Error::Tls`].
    fn from(e: std::io::Error) -> Error {
        match crate::tls::tls_failure(&e) {
            Some(text) => Error::Tls(text),
            None => Error::Io(e),
        }
    }
}

/// Why a client, worker or job operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket failed.
    #[error("connection failed: {0}")]
    Io(std::io::Error),
    /// TLS failed: the peer's certificate was refused (unknown issuer, expired, another
    /// name), the peer refused ours, or it did not speak TLS. The text is rustls's.
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The server sent bytes that are not the protocol.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtoError),
    /// The server answered with an ERROR packet.
    #[error("server error {code}: {text}")]
    Server {
        /// The error code string, e.g. `ERR_UNKNOWN_OPTION`.
        code: String,
        /// The error text.
        text: String,
    },
    /// The connection closed before the answer came; a job in flight may or may not have run.
    #[error("disconnected from the job server")]
    Disconnected,
    /// The job's client-side deadline passed (whether or not any worker exists).
    #[error("the job's deadline passed")]
    TimedOut,
    /// The worker reported WORK_FAIL.
    #[error("the job failed")]
    JobFailed,
    /// The worker reported WORK_EXCEPTION with this data.
    #[error("the job raised an exception ({} bytes)", .0.len())]
    JobException(Bytes),
    /// The job has already ended: no more events.
    #[error("the job has already ended")]
    Finished,
    /// An argument the protocol cannot carry (a NUL in a function name, an over-long unique ID).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}
