//! The response parser: bytes in, head, body chunks and completion out, with no I/O.

use bytes::{Buf, Bytes, BytesMut};

use super::HttpError;

/// Bounds on what a server can make the client buffer.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Limits {
    /// The most bytes a response head (status line and headers) may take.
    pub max_head: usize,
    /// The most header lines.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_head: 64 * 1024, max_headers: 128 }
    }
}

/// A response's status line and headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1, 2 for HTTP/2 (`CURLINFO_HTTP_VERSION`).
    pub version: u8,
    /// Header names (as sent) and values, in order.
    pub headers: Vec<(String, Bytes)>,
}

impl ResponseHead {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&Bytes> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// Whether a header's comma-separated values include `token` (case-insensitive).
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).any(|(_, v)| {
            v.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    }
}

/// What the parser produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// The final response head (1xx interim responses are skipped).
    Head(ResponseHead),
    /// A piece of the body, as it arrived (chunked framing removed).
    Body(Bytes),
    /// The response is complete. `reusable`: the connection may carry another request.
    Done {
        /// Whether the connection can be kept alive.
        reusable: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line.
    Size,
    /// Inside a chunk, this many bytes left.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk, until an empty line.
    Trailers,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    Chunked(Chunk),
    /// Until the connection closes.
    Close,
    Done,
}

/// Reads one response from a connection's bytes.
///
/// ```
/// use bytes::BytesMut;
/// use multixfer::http::{Part, ResponseParser};
///
/// let mut p = ResponseParser::new(false);
/// let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"[..]);
/// let mut parts = Vec::new();
/// while let Some(part) = p.parse(&mut buf)? {
///     parts.push(part);
/// }
/// assert!(matches!(&parts[0], Part::Head(h) if h.status == 200));
/// assert_eq!(parts[1], Part::Body("hello".into()));
/// assert_eq!(parts[2], Part::Done { reusable: true });
/// # Ok::<(), multixfer::http::HttpError>(())
/// ```
#[derive(Debug)]
pub struct ResponseParser {
    state: State,
    head_request: bool,
    limits: Limits,
    reusable: bool,
    /// Whether any byte of a response arrived (to tell "no response" from "cut short").
    started: bool,
}

const MAX_CHUNK_LINE: usize = 1024;

impl ResponseParser {
    /// A parser for the answer to a request; `head_request` for HEAD, whose answer has no
    /// body whatever its headers say.
    pub fn new(head_request: bool) -> ResponseParser {
        ResponseParser::with_limits(head_request, Limits::default())
    }

    /// With explicit limits.
    pub fn with_limits(head_request: bool, limits: Limits) -> ResponseParser {
        ResponseParser { state: State::Head, head_request, limits, reusable: false, started: false }
    }

    /// Whether the response is complete.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Takes the next part off the front of `buf`, or `None` when more bytes are needed.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Part>, HttpError> {
        if !buf.is_empty() {
            self.started = true;
        }
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Head => {
                    let Some(head) = self.parse_head(buf)? else { return Ok(None) };
                    if (100..200).contains(&head.status) && head.status != 101 {
                        continue; // interim response: the real one follows
                    }
                    self.state = self.body_state(&head)?;
                    return Ok(Some(Part::Head(head)));
                }
                State::Length(0) => return Ok(Some(self.finish())),
                State::Length(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = (buf.len() as u64).min(left) as usize;
                    self.state = State::Length(left - n as u64);
                    return Ok(Some(Part::Body(buf.split_to(n).freeze())));
                }
                State::Close => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    return Ok(Some(Part::Body(buf.split().freeze())));
                }
                State::Chunked(c) => match c {
                    Chunk::Size => {
                        let Some(line) = take_line(buf, MAX_CHUNK_LINE)? else { return Ok(None) };
                        let size = parse_chunk_size(&line)?;
                        self.state = State::Chunked(if size == 0 {
                            Chunk::Trailers
                        } else {
                            Chunk::Data(size)
                        });
                    }
                    Chunk::Data(left) => {
                        if buf.is_empty() {
                            return Ok(None);
                        }
                        let n = (buf.len() as u64).min(left) as usize;
                        let rest = left - n as u64;
                        self.state = State::Chunked(if rest == 0 {
                            Chunk::DataEnd
                        } else {
                            Chunk::Data(rest)
                        });
                        return Ok(Some(Part::Body(buf.split_to(n).freeze())));
                    }
                    Chunk::DataEnd => {
                        if buf.len() < 2 {
                            return Ok(None);
                        }
                        if &buf[..2] != b"\r\n" {
                            return Err(HttpError::BadChunk);
                        }
                        buf.advance(2);
                        self.state = State::Chunked(Chunk::Size);
                    }
                    Chunk::Trailers => {
                        let Some(line) = take_line(buf, self.limits.max_head)? else {
                            return Ok(None);
                        };
                        if line.is_empty() {
                            return Ok(Some(self.finish()));
                        }
                    }
                },
            }
        }
    }

    /// When the parser is inside a body and nothing is buffered before it, how many of the next
    /// `available` bytes are body data; they count as consumed. This lets a caller hand body
    /// bytes from its receive buffer straight to their destination, without a copy.
    pub fn take_body(&mut self, available: usize) -> usize {
        let n = match self.state {
            State::Length(left) => (available as u64).min(left) as usize,
            State::Close => available,
            State::Chunked(Chunk::Data(left)) => (available as u64).min(left) as usize,
            _ => 0,
        };
        if n > 0 {
            self.started = true;
            self.state = match self.state {
                State::Length(left) => State::Length(left - n as u64),
                State::Chunked(Chunk::Data(left)) if left == n as u64 => {
                    State::Chunked(Chunk::DataEnd)
                }
                State::Chunked(Chunk::Data(left)) => State::Chunked(Chunk::Data(left - n as u64)),
                other => other,
            };
        }
        n
    }

    /// The connection closed: completes a close-delimited body, or says what was cut short.
    pub fn eof(&mut self) -> Result<Option<Part>, HttpError> {
        match self.state {
            State::Done => Ok(None),
            State::Close => {
                self.reusable = false;
                self.state = State::Done;
                Ok(Some(Part::Done { reusable: false }))
            }
            State::Head if !self.started => Err(HttpError::NoResponse),
            State::Head => Err(HttpError::MalformedHead("the head was cut short".into())),
            State::Length(left) => Err(HttpError::Truncated(left)),
            State::Chunked(Chunk::Data(left)) => Err(HttpError::Truncated(left)),
            State::Chunked(_) => Err(HttpError::Truncated(0)),
        }
    }

    fn finish(&mut self) -> Part {
        self.state = State::Done;
        Part::Done { reusable: self.reusable }
    }

    fn parse_head(&mut self, buf: &mut BytesMut) -> Result<Option<ResponseHead>, HttpError> {
        let mut headers = vec![httparse::EMPTY_HEADER; self.limits.max_headers];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(buf) {
            Ok(httparse::Status::Complete(len)) => {
                if len > self.limits.max_head {
                    return Err(HttpError::HeadTooLarge(self.limits.max_head));
                }
                // Header values are slices of the head's bytes: one buffer, no copy per value.
                let status = resp.code.unwrap_or(0);
                let reason = resp.reason.unwrap_or("").to_string();
                let version = resp.version.unwrap_or(1);
                let spans: Vec<(String, usize, usize)> = resp
                    .headers
                    .iter()
                    .map(|h| {
                        let start = h.value.as_ptr() as usize - buf.as_ptr() as usize;
                        (h.name.to_string(), start, start + h.value.len())
                    })
                    .collect();
                let raw = buf.split_to(len).freeze();
                let headers =
                    spans.into_iter().map(|(name, a, b)| (name, raw.slice(a..b))).collect();
                Ok(Some(ResponseHead { status, reason, version, headers }))
            }
            Ok(httparse::Status::Partial) => {
                // The limit is checked on what is buffered, so a server that never ends its head
                // cannot make the client hold more than the limit.
                if buf.len() > self.limits.max_head {
                    Err(HttpError::HeadTooLarge(self.limits.max_head))
                } else {
                    Ok(None)
                }
            }
            Err(httparse::Error::TooManyHeaders) => {
                Err(HttpError::TooManyHeaders(self.limits.max_headers))
            }
            Err(e) => Err(HttpError::MalformedHead(e.to_string())),
        }
    }

    /// How the body is framed (RFC 9112 section 6), and whether the connection stays usable.
    fn body_state(&mut self, head: &ResponseHead) -> Result<State, HttpError> {
        let close = head.has_token("connection", "close");
        let keep = head.has_token("connection", "keep-alive");
        self.reusable = if head.version == 0 { keep && !close } else { !close };
        if self.head_request
            || head.status == 204
            || head.status == 304
            || (100..200).contains(&head.status)
        {
            return Ok(State::Length(0));
        }
        if head.has_token("transfer-encoding", "chunked") {
            return Ok(State::Chunked(Chunk::Size));
        }
        let mut length = None;
        for (_, v) in head.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        {
            let n: u64 = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or(HttpError::BadContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(HttpError::BadContentLength);
            }
            length = Some(n);
        }
        Ok(match length {
            Some(n) => State::Length(n),
            None => {
                self.reusable = false;
                State::Close
            }
        })
    }
}

/// One CRLF-terminated line (without the CRLF), or `None` until it is complete.
fn take_line(buf: &mut BytesMut, max: usize) -> Result<Option<BytesMut>, HttpError> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(p) => {
            let line = buf.split_to(p);
            buf.advance(2);
            Ok(Some(line))
        }
        None if buf.len() > max => Err(HttpError::BadChunk),
        None => Ok(None),
    }
}

/// A chunk-size line: hex digits, then optional `;extensions`.
fn parse_chunk_size(line: &[u8]) -> Result<u64, HttpError> {
    let hex = line.split(|&b| b == b';').next().unwrap_or_default();
    let hex = std::str::from_utf8(hex).map_err(|_| HttpError::BadChunk)?.trim();
    if hex.is_empty() || hex.len() > 15 {
        return Err(HttpError::BadChunk);
    }
    u64::from_str_radix(hex, 16).map_err(|_| HttpError::BadChunk)
}
