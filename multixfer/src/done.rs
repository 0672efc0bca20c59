//! What a finished transfer gives back: libcurl's `CURLMsg` with `CURLINFO_*`, owned.

use std::time::Duration;

use crate::http::ResponseHead;
use crate::XferError;

/// Names one transfer in one engine. Ids are never reused within an engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct XferId {
    pub(crate) idx: u32,
    pub(crate) gen: u32,
}

/// A completed response.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Response {
    /// The final response's head (after redirects that were followed).
    pub head: ResponseHead,
    /// The body, when it was kept in memory (the default); empty when it was discarded or
    /// handed to a write function.
    pub body: Vec<u8>,
    /// The URL that answered (`CURLINFO_EFFECTIVE_URL`).
    pub effective_url: String,
    /// Redirects followed (`CURLINFO_REDIRECT_COUNT`).
    pub redirects: u32,
    /// Body bytes received, whatever the sink (`CURLINFO_SIZE_DOWNLOAD_T`).
    pub downloaded: u64,
    /// Request body bytes sent (`CURLINFO_SIZE_UPLOAD_T`).
    pub uploaded: u64,
    /// From being added to being done (`CURLINFO_TOTAL_TIME_T`), queueing included.
    pub elapsed: Duration,
    /// Whether the last request went over a connection that had served another before
    /// (`CURLINFO_NUM_CONNECTS` was 0).
    pub reused: bool,
}

impl Response {
    /// The status code (`CURLINFO_RESPONSE_CODE`).
    pub fn status(&self) -> u16 {
        self.head.status
    }
}

/// A finished transfer, as [`Multi::info_read`](crate::Multi::info_read) returns it
/// (`CURLMSG_DONE`): its id, its outcome, and the private value it was added with.
#[derive(Debug)]
#[non_exhaustive]
pub struct Done<T = ()> {
    /// Which transfer.
    pub id: XferId,
    /// How it ended. An HTTP error status is a response, not an error, as in libcurl without
    /// `CURLOPT_FAILONERROR`.
    pub result: Result<Response, XferError>,
    /// The private value from [`Easy::private`](crate::Easy::private).
    pub private: T,
}
