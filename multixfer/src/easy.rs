//! One transfer's request and options: libcurl's easy handle.

use std::fmt;
use std::io::Read;
use std::time::Duration;

use bytes::Bytes;

use crate::http::ResponseHead;

/// What a write, header or progress callback tells the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Stop this transfer; it fails with [`XferError::Aborted`](crate::XferError::Aborted).
    Abort,
}

/// Transfer progress, as libcurl's `CURLOPT_XFERINFOFUNCTION` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Body bytes expected, when the response said (Content-Length).
    pub download_total: Option<u64>,
    /// Body bytes received so far.
    pub downloaded: u64,
    /// Request body bytes to send, when known.
    pub upload_total: Option<u64>,
    /// Request body bytes sent so far.
    pub uploaded: u64,
}

// `Send`, so that a transfer, and the engine holding it, can move between threads.
type WriteFn = Box<dyn FnMut(&[u8]) -> Flow + Send>;
type HeaderFn = Box<dyn FnMut(&ResponseHead) -> Flow + Send>;
type ProgressFn = Box<dyn FnMut(Progress) -> Flow + Send>;

/// Where a response body goes.
pub(crate) enum Sink {
    /// Kept in memory and returned in [`Response::body`](crate::Response::body).
    Collect,
    /// Counted and dropped.
    Discard,
    /// Handed to the caller's function as it arrives (`CURLOPT_WRITEFUNCTION`).
    Write(WriteFn),
}

/// Which HTTP version a transfer asks for (`CURLOPT_HTTP_VERSION`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpVersion {
    /// HTTP/1.1 only (`CURL_HTTP_VERSION_1_1`): over TLS, ALPN offers `http/1.1` alone.
    Http11,
    /// HTTP/2 over TLS when the server picks it by ALPN, HTTP/1.1 otherwise; cleartext is
    /// HTTP/1.1 (`CURL_HTTP_VERSION_2TLS`, libcurl's default since 7.62, and ours).
    #[default]
    Http2Tls,
    /// HTTP/2 without asking: on cleartext the connection starts with HTTP/2's preface, and
    /// over TLS ALPN offers `h2` alone (`CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE`).
    Http2PriorKnowledge,
}

/// A request body.
pub(crate) enum Body {
    None,
    Bytes(Bytes),
    /// Read on demand; `Some(len)` sends a Content-Length, `None` sends it chunked.
    Reader(Box<dyn Read + Send>, Option<u64>),
}

/// One transfer to run: a URL, a method, headers, a body, options, callbacks and a typed
/// private value that comes back with the result (`CURLOPT_PRIVATE`).
///
/// ```
/// use std::time::Duration;
/// use multixfer::Easy;
///
/// let easy = Easy::get("http://127.0.0.1:8080/index.html")
///     .header("Accept", "text/html")
///     .follow_location(true)
///     .timeout(Duration::from_secs(10))
///     .private(42u32);
/// assert_eq!(*easy.private_ref(), 42);
/// ```
pub struct Easy<T = ()> {
    pub(crate) url: String,
    pub(crate) method: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Body,
    pub(crate) follow: bool,
    pub(crate) unrestricted_auth: bool,
    pub(crate) max_redirs: u32,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) max_filesize: Option<u64>,
    /// Addresses given for (host, port), used instead of a lookup (`CURLOPT_RESOLVE`).
    pub(crate) resolve: Vec<(String, u16, Vec<std::net::IpAddr>)>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) low_speed: Option<(u64, Duration)>,
    pub(crate) buffer_size: usize,
    pub(crate) sink: Sink,
    pub(crate) on_header: Option<HeaderFn>,
    pub(crate) on_progress: Option<ProgressFn>,
    pub(crate) tls: crate::tls::TlsKey,
    pub(crate) version: HttpVersion,
    pub(crate) pipewait: bool,
    pub(crate) private: T,
}

/// libcurl's default receive buffer (`CURLOPT_BUFFERSIZE`).
pub const DEFAULT_BUFFER_SIZE: usize = 16 * 1024;

impl Easy<()> {
    /// A GET of `url` with libcurl's defaults: no redirects followed, a 300 s connect timeout,
    /// no total timeout, the body kept in memory.
    pub fn get(url: impl Into<String>) -> Easy<()> {
        Easy {
            url: url.into(),
            method: "GET".into(),
            headers: Vec::new(),
            body: Body::None,
            follow: false,
            unrestricted_auth: false,
            max_redirs: 50,
            connect_timeout: Some(Duration::from_secs(300)),
            max_filesize: None,
            resolve: Vec::new(),
            timeout: None,
            low_speed: None,
            buffer_size: DEFAULT_BUFFER_SIZE,
            sink: Sink::Collect,
            on_header: None,
            on_progress: None,
            tls: crate::tls::TlsKey::default(),
            version: HttpVersion::default(),
            pipewait: false,
            private: (),
        }
    }

    /// A POST of `body` to `url` (`CURLOPT_POSTFIELDS`).
    pub fn post(url: impl Into<String>, body: impl Into<Bytes>) -> Easy<()> {
        Easy::get(url).method("POST").body(body)
    }

    /// A HEAD of `url` (`CURLOPT_NOBODY`).
    pub fn head(url: impl Into<String>) -> Easy<()> {
        Easy::get(url).method("HEAD")
    }
}

impl<T> Easy<T> {
    /// Replaces the private value, changing its type (`CURLOPT_PRIVATE`). It comes back in
    /// [`Done::private`](crate::Done::private).
    pub fn private<U>(self, private: U) -> Easy<U> {
        self.map_private(|_| private)
    }

    /// Replaces the private value with one made from it.
    pub fn map_private<U>(self, f: impl FnOnce(T) -> U) -> Easy<U> {
        Easy {
            url: self.url,
            method: self.method,
            headers: self.headers,
            body: self.body,
            follow: self.follow,
            unrestricted_auth: self.unrestricted_auth,
            max_redirs: self.max_redirs,
            connect_timeout: self.connect_timeout,
            max_filesize: self.max_filesize,
            resolve: self.resolve,
            timeout: self.timeout,
            low_speed: self.low_speed,
            buffer_size: self.buffer_size,
            sink: self.sink,
            on_header: self.on_header,
            on_progress: self.on_progress,
            tls: self.tls,
            version: self.version,
            pipewait: self.pipewait,
            private: f(self.private),
        }
    }

    /// The private value.
    pub fn private_ref(&self) -> &T {
        &self.private
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The request method (`CURLOPT_CUSTOMREQUEST`); `HEAD` expects no body in the answer.
    #[must_use]
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = method.into();
        self
    }

    /// Adds a request header (`CURLOPT_HTTPHEADER`).
    ///
    /// A name that is not an HTTP token, or a value holding CR, LF or NUL (which would split
    /// the request in two), fails the transfer when it is added, with
    /// [`XferError::BadRequest`](crate::XferError::BadRequest); so does such a method. A
    /// `Content-Length` or `Transfer-Encoding` given here is replaced by the engine's own
    /// when the transfer has a body, so that a request never carries two framings.
    /// `Authorization`, `Cookie` and `Proxy-Authorization` are not sent on to another scheme,
    /// host or port after a redirect, unless [`unrestricted_auth`](Easy::unrestricted_auth).
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends `body` with a Content-Length (`CURLOPT_POSTFIELDS`, `CURLOPT_COPYPOSTFIELDS`).
    #[must_use]
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Body::Bytes(body.into());
        self
    }

    /// Sends the body read from `reader` (`CURLOPT_READFUNCTION`): with a Content-Length when
    /// `len` is given (`CURLOPT_INFILESIZE`), chunked otherwise. The reader is called on the
    /// loop's thread when the socket can take more, so it should not block for long.
    #[must_use]
    pub fn body_reader(mut self, reader: impl Read + Send + 'static, len: Option<u64>) -> Self {
        self.body = Body::Reader(Box::new(reader), len);
        self
    }

    /// Sends credential headers (`Authorization`, `Cookie`, `Proxy-Authorization`) on after a
    /// redirect to another scheme, host or port (`CURLOPT_UNRESTRICTED_AUTH`; off by default,
    /// as in libcurl since CVE-2018-1000007). Off, they go only to the origin they were given
    /// for.
    #[must_use]
    pub fn unrestricted_auth(mut self, unrestricted: bool) -> Self {
        self.unrestricted_auth = unrestricted;
        self
    }

    /// Follows redirects (`CURLOPT_FOLLOWLOCATION`).
    #[must_use]
    pub fn follow_location(mut self, follow: bool) -> Self {
        self.follow = follow;
        self
    }

    /// The most redirects to follow (`CURLOPT_MAXREDIRS`, 50 by default as in the curl tool).
    #[must_use]
    pub fn max_redirs(mut self, max: u32) -> Self {
        self.max_redirs = max;
        self
    }

    /// How long connecting may take (`CURLOPT_CONNECTTIMEOUT`; 300 s by default); `None` for
    /// no limit.
    ///
    /// As libcurl's, the limit covers the whole connect phase: name resolution, TCP to each
    /// address of the host in turn, and the TLS handshake. Each address but the last gets half
    /// of the time left, so one that never answers leaves time for the next; an address that
    /// times out is given up for the next one, and only when the whole budget is spent does
    /// the transfer fail with [`XferError::ConnectTimeout`](crate::XferError::ConnectTimeout).
    /// Time spent queued for a connection slot does not count here (it counts against
    /// [`timeout`](Easy::timeout)).
    #[must_use]
    pub fn connect_timeout(mut self, limit: impl Into<Option<Duration>>) -> Self {
        self.connect_timeout = limit.into();
        self
    }

    /// The largest response body accepted (`CURLOPT_MAXFILESIZE_LARGE`; `curl --max-filesize`),
    /// whatever the sink: a `Content-Length` above it fails the transfer before the body is
    /// read, and a body without one fails where it passes it, with
    /// [`XferError::FileTooLarge`](crate::XferError::FileTooLarge). No limit by default, as in
    /// libcurl; set one for bodies collected in memory from servers you do not trust.
    #[must_use]
    pub fn max_filesize(mut self, max: impl Into<Option<u64>>) -> Self {
        self.max_filesize = max.into();
        self
    }

    /// Uses `addrs` for `host` on `port` instead of looking the name up (`CURLOPT_RESOLVE`,
    /// `curl --resolve HOST:PORT:ADDR[,ADDR]...`); they are tried in the order given.
    #[must_use]
    pub fn resolve(
        mut self,
        host: impl Into<String>,
        port: u16,
        addrs: impl IntoIterator<Item = std::net::IpAddr>,
    ) -> Self {
        self.resolve.push((host.into(), port, addrs.into_iter().collect()));
        self
    }

    /// How long the whole transfer may take, from when it was added, so time queued for a
    /// connection counts (`CURLOPT_TIMEOUT`).
    #[must_use]
    pub fn timeout(mut self, limit: impl Into<Option<Duration>>) -> Self {
        self.timeout = limit.into();
        self
    }

    /// Fails the transfer when it runs below `bytes_per_sec` for `time`
    /// (`CURLOPT_LOW_SPEED_LIMIT`, `CURLOPT_LOW_SPEED_TIME`).
    #[must_use]
    pub fn low_speed(mut self, bytes_per_sec: u64, time: Duration) -> Self {
        self.low_speed = Some((bytes_per_sec, time));
        self
    }

    /// The receive buffer size (`CURLOPT_BUFFERSIZE`, 16 KiB by default; the curl tool uses
    /// 100 KiB, which pays off on large bodies). Clamped to 1 KiB ..= 10 MiB as libcurl does.
    #[must_use]
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        self.buffer_size = bytes.clamp(1024, 10 * 1024 * 1024);
        self
    }

    /// Checks HTTPS servers against the certificates in this PEM file instead of the system's
    /// (`CURLOPT_CAINFO`). Transfers with different files never share a connection.
    #[must_use]
    pub fn ca_file(mut self, path: impl AsRef<std::path::Path>) -> Self {
        self.tls.ca_file = Some(path.as_ref().into());
        self
    }

    /// Whether HTTPS servers' certificates are checked (`CURLOPT_SSL_VERIFYPEER`, on by
    /// default; curl's `-k` turns it off). Off, the handshake's signatures are still checked.
    #[must_use]
    pub fn verify_peer(mut self, verify: bool) -> Self {
        self.tls.verify = verify;
        self
    }

    /// Which HTTP version to ask for (`CURLOPT_HTTP_VERSION`); by default HTTP/2 when a TLS
    /// server offers it, as libcurl. HTTP/2 needs the `http2` feature (a default): without
    /// it [`HttpVersion::Http2PriorKnowledge`] fails the transfer with
    /// [`XferError::BadRequest`](crate::XferError::BadRequest), and the default speaks
    /// HTTP/1.1.
    #[must_use]
    pub fn http_version(mut self, version: HttpVersion) -> Self {
        self.version = version;
        self
    }

    /// Waits for a connection that can multiplex rather than opening a new one
    /// (`CURLOPT_PIPEWAIT`, off by default; the curl tool turns it on for `--parallel`).
    /// While a connection to the origin that may speak HTTP/2 is being set up, or the
    /// origin's HTTP/2 connections have no free stream, the transfer waits for a stream
    /// instead of opening a connection of its own.
    #[must_use]
    pub fn pipewait(mut self, wait: bool) -> Self {
        self.pipewait = wait;
        self
    }

    /// Counts the body and drops it (`-o /dev/null`).
    #[must_use]
    pub fn discard_body(mut self) -> Self {
        self.sink = Sink::Discard;
        self
    }

    /// Hands the body to `write` as it arrives (`CURLOPT_WRITEFUNCTION`); [`Flow::Abort`]
    /// fails the transfer. Bodies of redirects that are followed are not passed on.
    #[must_use]
    pub fn write_function(mut self, write: impl FnMut(&[u8]) -> Flow + Send + 'static) -> Self {
        self.sink = Sink::Write(Box::new(write));
        self
    }

    /// Calls `header` with each response head as it arrives, redirects included
    /// (`CURLOPT_HEADERFUNCTION`, a head at a time rather than a line at a time).
    #[must_use]
    pub fn header_function(
        mut self,
        header: impl FnMut(&ResponseHead) -> Flow + Send + 'static,
    ) -> Self {
        self.on_header = Some(Box::new(header));
        self
    }

    /// Calls `progress` whenever bytes move (`CURLOPT_XFERINFOFUNCTION`); [`Flow::Abort`]
    /// fails the transfer.
    #[must_use]
    pub fn progress_function(
        mut self,
        progress: impl FnMut(Progress) -> Flow + Send + 'static,
    ) -> Self {
        self.on_progress = Some(Box::new(progress));
        self
    }
}

impl<T: fmt::Debug> fmt::Debug for Easy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Easy")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("follow", &self.follow)
            .field("timeout", &self.timeout)
            .field("private", &self.private)
            .finish_non_exhaustive()
    }
}

/// Checks what the request line and head will carry: a method and header names that are HTTP
/// tokens (RFC 9110, 5.6.2), and header values free of CR, LF and NUL. Anything else could end
/// the head early and smuggle a second request.
pub(crate) fn check_request(method: &str, headers: &[(String, String)]) -> Result<(), String> {
    fn token(s: &str) -> bool {
        !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    }
    if !token(method) {
        return Err(format!("the method {method:?} is not an HTTP token"));
    }
    for (name, value) in headers {
        if !token(name) {
            return Err(format!("the header name {name:?} is not an HTTP token"));
        }
        if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(format!("the value of header {name} holds CR, LF or NUL"));
        }
    }
    Ok(())
}

/// The headers that carry credentials for one origin.
pub(crate) fn is_credential(name: &str) -> bool {
    ["authorization", "cookie", "proxy-authorization"].iter().any(|c| name.eq_ignore_ascii_case(c))
}
