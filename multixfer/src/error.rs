//! Why a transfer failed, and why an engine call was refused.

use std::io;

use crate::http::HttpError;

/// Why one transfer failed (libcurl's `CURLcode`). Each failure ends only its own transfer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XferError {
    /// The URL could not be parsed, or names a scheme this build does not speak
    /// (`CURLE_URL_MALFORMAT`, `CURLE_UNSUPPORTED_PROTOCOL`).
    #[error("bad URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The host name did not resolve (`CURLE_COULDNT_RESOLVE_HOST`).
    #[error("could not resolve {host}: {reason}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
    /// No address of the host accepted a connection (`CURLE_COULDNT_CONNECT`).
    #[error("could not connect to {host}:{port}: {source}")]
    Connect {
        /// The host name.
        host: String,
        /// The port.
        port: u16,
        /// The last address's error.
        source: io::Error,
    },
    /// The request cannot be sent as given: a method or header name that is not an HTTP
    /// token, or a header value with CR, LF or NUL in it (`CURLE_BAD_FUNCTION_ARGUMENT`).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Sending the request failed (`CURLE_SEND_ERROR`).
    #[error("sending failed: {0}")]
    Send(io::Error),
    /// Receiving the response failed, for example a reset mid-body (`CURLE_RECV_ERROR`).
    #[error("receiving failed: {0}")]
    Recv(io::Error),
    /// The response broke HTTP/1.1 (`CURLE_WEIRD_SERVER_REPLY`, `CURLE_PARTIAL_FILE`, ...).
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The server reset this transfer's HTTP/2 stream (`RST_STREAM`) with this error code
    /// (RFC 9113, 7: 2 is INTERNAL_ERROR, 8 CANCEL, 11 ENHANCE_YOUR_CALM, ...); the other
    /// transfers on the connection go on (`CURLE_HTTP2_STREAM`).
    #[error("the server reset the HTTP/2 stream (error code {0})")]
    StreamReset(u32),
    /// The HTTP/2 connection under the transfer failed: a protocol error, a GOAWAY with an
    /// error code, or the connection ending before the stream did (`CURLE_HTTP2`).
    #[error("HTTP/2: {0}")]
    Http2(String),
    /// The TLS handshake or a TLS record failed, or the CA file could not be read
    /// (`CURLE_SSL_CONNECT_ERROR`, `CURLE_PEER_FAILED_VERIFICATION`, `CURLE_SSL_CACERT_BADFILE`).
    #[error("TLS: {0}")]
    Tls(String),
    /// The connect timeout passed before a connection was established
    /// (`CURLE_OPERATION_TIMEDOUT` during connect).
    #[error("connecting timed out after {0:?}")]
    ConnectTimeout(std::time::Duration),
    /// The total timeout passed; time spent queued for a connection counts
    /// (`CURLE_OPERATION_TIMEDOUT`).
    #[error("the transfer timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The transfer ran slower than the low-speed limit for the low-speed time
    /// (`CURLE_OPERATION_TIMEDOUT` from `CURLOPT_LOW_SPEED_LIMIT`).
    #[error("slower than {limit} bytes/s for {time:?}")]
    TooSlow {
        /// The limit, in bytes per second.
        limit: u64,
        /// For how long.
        time: std::time::Duration,
    },
    /// The response body is larger than [`Easy::max_filesize`](crate::Easy::max_filesize)
    /// allows (`CURLE_FILESIZE_EXCEEDED`).
    #[error("the body is larger than the {0}-byte limit")]
    FileTooLarge(u64),
    /// More redirects than allowed (`CURLE_TOO_MANY_REDIRECTS`).
    #[error("more than {0} redirects")]
    TooManyRedirects(u32),
    /// A redirect needs the request body again, but it came from a reader that cannot be
    /// rewound (`CURLE_SEND_FAIL_REWIND`).
    #[error("the request body cannot be sent again for a redirect")]
    CannotRewind,
    /// Reading the request body from its reader failed (`CURLE_READ_ERROR`).
    #[error("reading the request body failed: {0}")]
    ReadBody(io::Error),
    /// A write, header or progress callback asked to stop (`CURLE_WRITE_ERROR`,
    /// `CURLE_ABORTED_BY_CALLBACK`).
    #[error("aborted by the {0} callback")]
    Aborted(&'static str),
    /// The transfer was removed before it finished, or the engine was dropped.
    #[error("the transfer was cancelled")]
    Cancelled,
}

/// Why an engine call was refused (libcurl's `CURLMcode`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MultiError {
    /// A callback called back into the engine (`CURLM_RECURSIVE_API_CALL`). Only possible
    /// through a [`SharedMulti`](crate::SharedMulti); a `&mut Multi` rules it out at compile
    /// time.
    #[error("the engine was called from one of its own callbacks")]
    RecursiveApiCall,
    /// The transfer id is not (or no longer) in this engine (`CURLM_BAD_EASY_HANDLE`).
    #[error("no such transfer")]
    UnknownTransfer,
    /// The descriptor is not one the engine announced (`CURLM_BAD_SOCKET`).
    #[error("descriptor {0} is not one of the engine's sockets")]
    UnknownSocket(std::os::fd::RawFd),
    /// The operating system refused (creating the poller or the wake-up descriptor).
    #[error("system call failed: {0}")]
    Io(#[from] io::Error),
}
