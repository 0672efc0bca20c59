//! multixfer: libcurl multi semantics for HTTP/1.1 and HTTP/2 transfers, in pure Rust.
//!
//! Many concurrent transfers on one thread, driven by any event loop, with the contract
//! libcurl's users rely on, and without C.
//!
//! # Design
//!
//! - **A sans-I/O HTTP/1.1 core** ([`http`]): request encoding and an incremental response
//!   parser that frames bodies by RFC 9112 (Content-Length, chunked, close-delimited, none for
//!   HEAD/1xx/204/304), decides reuse, and bounds what a server can make the client buffer
//!   (64 KiB of head, 1 KiB chunk-size lines), with typed [`http::HttpError`]s.
//! - **The engine** ([`Multi`]) owns transfers ([`Easy`]) and connections, and a pool keyed by
//!   host and port. A kept-alive connection is handed to the next transfer for its host
//!   without telling the driver anything (its interest stays In), so a busy engine's socket
//!   callback is mostly silent. Idle connections stay watched, so a server closing one is seen
//!   at once rather than on reuse. Deadlines (total, connect, low-speed windows, idle age)
//!   live in one ordered set; the timer is its first entry.
//! - **Three layers in the engine**: the transfer layer (resolve, connection caps, redirects,
//!   retries, deadlines, completion), the exchange a connection's protocol runs (HTTP/1.1:
//!   a request written, a response parsed, one at a time), and the connection's transport
//!   (TCP, TLS, the idle pool). The transfer layer starts an exchange on a connection and
//!   passes it the connection's readiness; the exchange hands back the head, body bytes, the
//!   end (reusable or not) or a failure. HTTP/2 (`multi/h2.rs`, feature `http2`) is the
//!   second kind of exchange: it carries several transfers on one connection as streams,
//!   and the transfer layer places a transfer on a free stream before it looks for an idle
//!   or new connection (see "HTTP/2").
//! - **Two ways to drive it**, as in libcurl: `perform` + `poll` on the engine's own evcore
//!   `Loop`, or the socket interface (callbacks, or [`Multi::drain_updates`] to pull the same
//!   changes).
//!   [`drive::Driver`] is the socket-interface loop written once for any evcore reactor;
//!   [`client::Client`] is the async API (a future per transfer, a stream of completions),
//!   `Clone + Send + Sync` with `Send` futures: see "Send, and any runtime".
//! - **Bodies without copies where it counts**: each read lands in one receive buffer
//!   (`CURLOPT_BUFFERSIZE`, 16 KiB by default) and body bytes go from there to the write
//!   function or the response.
//! - **Name resolution never blocks the loop**: IP literals and `localhost` are answered at
//!   once; other names go to a thread per lookup, which signals an eventfd that the engine
//!   announces like a socket; answers are cached for 60 s.
//!
//! # Send, and any runtime
//!
//! - [`Multi`] is `Send` (for `Send` private and socket values): build it on one thread and
//!   move it to the thread that drives it, as a libcurl multi handle may be moved (one thread
//!   at a time; it is not `Sync`, and needs `&mut` anyway). The price is that every callback
//!   ([`Easy::write_function`], the socket and timer callbacks, a body reader) is `Send`:
//!   state they share with the caller goes in an `Arc<Mutex<_>>` or an atomic, not an `Rc`.
//! - [`SharedMulti`] is `Send + Sync`: another thread's call waits while the engine is busy;
//!   only a callback re-entering its own engine gets [`MultiError::RecursiveApiCall`].
//! - [`client::Client`] is `Clone + Send + Sync`, its [`Fetch`](client::Fetch) futures
//!   `Send`. The engine is owned by a driver task on one evcore executor: the `&handle`
//!   given to [`Client::new`](client::Client::new) (this thread's; on tokio's I/O driver
//!   through `evcore::TokioReactor`, feature `tokio`), or an [`evcore::Engine`], an executor
//!   on a thread of its own, for callers on a multi-threaded tokio runtime or any other
//!   executor (`examples/tokio_fetch.rs`, `tests/shared.rs`). On tokio there is also
//!   [`Client::on_tokio`](client::Client::on_tokio) (feature `tokio`): the driver is a tokio
//!   task, with the engine's descriptor on tokio's I/O driver, and no thread of its own. The
//!   handles share only small queues
//!   behind one mutex (transfers to add or cancel, finished submissions) and one slot per
//!   fetch; no handle ever waits for a `perform`. This is isahc's agent-thread design; the
//!   reasons for it over a runtime-specific driver are in jobclient's crate docs ("Send
//!   handles").
//!
//! # The contract
//!
//! - The socket callback gets changes only: In, Out, InOut, Remove. Remove comes strictly
//!   before the close, and only for announced sockets. With callbacks, the socket is closed as
//!   the Remove callback returns, so act on it inside the callback (as libcurl requires);
//!   with [`Multi::drain_updates`], it stays open until the next call into the engine.
//! - The per-socket value ([`Multi::assign`], or set through the callback's `&mut Option<S>`)
//!   is dropped after Remove.
//! - One timer: a new value replaces the old, `None` cancels, zero means now. A fired timer is
//!   consumed: the next value is told even if unchanged.
//! - Callbacks cannot call back into the engine: `&mut Multi` rules it out at compile time,
//!   and [`SharedMulti`] turns it into [`MultiError::RecursiveApiCall`].
//! - Any drop order is sound: transfers, messages and the engine own what they hold; dropping
//!   the engine tells every announced socket Remove first.
//!
//! # From libcurl to multixfer
//!
//! | libcurl | multixfer |
//! |---|---|
//! | `curl_easy_perform` | [`blocking::get`], [`blocking::perform`]; a multi run to its end: [`blocking::fetch_all`] |
//! | `curl_multi_init`, `curl_multi_setopt(MAX_HOST_CONNECTIONS / MAX_TOTAL_CONNECTIONS / MAXCONNECTS)` | [`Multi::new`], [`Multi::with_options`] with [`Options`] |
//! | `curl_easy_init` + `curl_easy_setopt` | [`Easy::get`], [`Easy::post`], [`Easy::head`] and the builder methods |
//! | `CURLOPT_PRIVATE` | [`Easy::private`], returned in [`Done::private`] |
//! | `CURLOPT_WRITEFUNCTION`, `HEADERFUNCTION`, `XFERINFOFUNCTION` | [`Easy::write_function`], [`Easy::header_function`], [`Easy::progress_function`] ([`Flow::Abort`] stops) |
//! | `CURLOPT_TIMEOUT`, `CONNECTTIMEOUT`, `LOW_SPEED_LIMIT`/`TIME` | [`Easy::timeout`], [`Easy::connect_timeout`], [`Easy::low_speed`] |
//! | `CURLOPT_FOLLOWLOCATION`, `MAXREDIRS` | [`Easy::follow_location`], [`Easy::max_redirs`] |
//! | `CURLOPT_POSTFIELDS`, `READFUNCTION` + `INFILESIZE`, `CUSTOMREQUEST`, `NOBODY`, `HTTPHEADER`, `BUFFERSIZE` | [`Easy::body`], [`Easy::body_reader`], [`Easy::method`], [`Easy::head`], [`Easy::header`], [`Easy::buffer_size`] |
//! | `CURLOPT_CAINFO`, `CURLOPT_SSL_VERIFYPEER` | [`Easy::ca_file`], [`Easy::verify_peer`] (feature `rustls`) |
//! | `curl_multi_add_handle` / `_remove_handle` | [`Multi::add`] / [`Multi::remove`] |
//! | `curl_multi_perform`, `curl_multi_poll` / `_wait`, `curl_multi_wakeup` | [`Multi::perform`], [`Multi::poll`] / [`Multi::wait`], [`MultiWaker::wakeup`] |
//! | `curl_multi_socket_action(fd, mask)` / `(CURL_SOCKET_TIMEOUT)`, `curl_multi_socket_all` | [`Multi::socket_action`], [`Multi::socket_action_timeout`], [`Multi::socket_all`] |
//! | `CURLMOPT_SOCKETFUNCTION`, `CURLMOPT_TIMERFUNCTION`, `curl_multi_assign` | [`Multi::set_socket_callback`], [`Multi::set_timer_callback`], [`Multi::assign`]; or [`Multi::drain_updates`] |
//! | `CURL_POLL_IN/OUT/INOUT/REMOVE`, `CURL_CSELECT_IN/OUT/ERR` | [`SocketPoll`], [`Ready`] |
//! | `curl_multi_timeout`, `curl_multi_info_read`, `running_handles` | [`Multi::timeout`], [`Multi::info_read`], [`Multi::running`] |
//! | `CURLcode`, `CURLMcode` | [`XferError`], [`MultiError`] |
//! | `CURLINFO_RESPONSE_CODE`, `EFFECTIVE_URL`, `REDIRECT_COUNT`, `SIZE_DOWNLOAD_T`, `TOTAL_TIME_T` | [`Response`] fields |
//! | `CURLOPT_HTTP_VERSION` (`_1_1`, `_2TLS`, `_2_PRIOR_KNOWLEDGE`), `CURLOPT_PIPEWAIT` | [`Easy::http_version`] with [`HttpVersion`], [`Easy::pipewait`] |
//! | `CURLMOPT_PIPELINING` = `CURLPIPE_MULTIPLEX`, `CURLMOPT_MAX_CONCURRENT_STREAMS` | always on with HTTP/2; [`Options::max_concurrent_streams`] |
//! | `CURLE_HTTP2`, `CURLE_HTTP2_STREAM`, `CURLINFO_HTTP_VERSION` | [`XferError::Http2`], [`XferError::StreamReset`], [`http::ResponseHead::version`] |
//!
//! Deliberate differences: an HTTP error status is a response, not an error (libcurl without
//! `FAILONERROR`); a body is kept in memory unless a write function or
//! [`Easy::discard_body`] says otherwise; the header function gets a whole head at a time;
//! `poll` and `wait` both return early on a wake-up.
//!
//! # HTTPS
//!
//! Feature `rustls`: TLS 1.2 and 1.3 through rustls with its `ring` provider, checked against
//! the system bundle (`SSL_CERT_FILE`, else `/etc/ssl/certs/ca-certificates.crt`) or
//! [`Easy::ca_file`] (`CURLOPT_CAINFO`); [`Easy::verify_peer`] (`CURLOPT_SSL_VERIFYPEER`).
//! Connections are shared only between transfers with the same TLS settings. Without the
//! feature an `https://` URL fails with [`XferError::BadUrl`] when it is added.
//!
//! # HTTP/2
//!
//! Feature `http2` (a default). As libcurl since 7.62: over TLS, ALPN offers `h2` then
//! `http/1.1` and the server's pick decides ([`HttpVersion::Http2Tls`], the default, needs
//! `rustls` too); [`HttpVersion::Http2PriorKnowledge`] starts cleartext connections with
//! HTTP/2's preface (and offers `h2` alone over TLS); [`HttpVersion::Http11`] never speaks
//! HTTP/2. Transfers to one origin with the same settings share an HTTP/2 connection as
//! streams, up to [`Options::max_concurrent_streams`] (100) and never past the server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS`; a connection takes a second stream only once the
//! server's SETTINGS have been read. When every connection of the origin is full, a new one
//! opens within the per-host and total caps, unless the transfer has [`Easy::pipewait`]: then
//! it waits for a stream of a connection that is being set up (and may turn out to
//! multiplex) or is busy. Timeouts, low-speed limits, caps, redirects, bodies and callbacks
//! are per transfer, as over HTTP/1.1; a transfer that fails or is removed resets its stream
//! only (RST_STREAM CANCEL). A GOAWAY stops new streams on its connection: the streams above
//! its last-stream id, which the server did not process, go again on another connection in
//! their order, as does a stream refused with `REFUSED_STREAM` (at most 5 times, libcurl's
//! `CONN_MAX_RETRIES`); the others finish. Windows are 10 MiB per stream (libcurl's) and
//! 32 MiB per connection, so one large body does not crawl at the protocol's 64 KiB;
//! response headers are limited to 64 KiB, as HTTP/1.1's head; PING is answered.
//!
//! **Sockets shared by transfers.** An HTTP/2 connection's socket is announced once, and
//! stays watched for reading (also when it carries no stream, since SETTINGS, PING and
//! GOAWAY come at any time), and for writing while a write would block. It is removed, strictly
//! before it closes, when the connection ends, not when one of its transfers does. So
//! [`Multi::socket_action`] on it moves every stream of the connection, and the per-socket
//! value ([`Multi::assign`]) belongs to the connection, as libcurl's do.
//!
//! **Why the `h2` crate, and what it costs.** HTTP/2 done properly (flow control on both
//! sides, HPACK with its table-size and header-list limits, stream states, SETTINGS
//! acknowledgements, GOAWAY and RST_STREAM, the CONTINUATION and reset floods of the last
//! years' CVEs) is several thousand lines; `h2` is hyperium's, used by hyper, reqwest and
//! tonic, kept up and fuzzed, with one `unsafe` block of its own (a UTF-8 view of a value
//! HPACK has already checked). A
//! sans-I/O framing layer of our own on an HPACK crate would keep tokio's traits out, at
//! the cost of owning all of that. `h2` adds 13 crates to the tree (`http`, `indexmap` with
//! `equivalent` and `hashbrown`, `fnv`, `atomic-waker`, `futures-sink`, `itoa`, `tokio` with
//! no runtime (its `AsyncRead`/`AsyncWrite` only), `tokio-util`, `tracing` with
//! `tracing-core`, `pin-project-lite`). It is written for an executor; here nothing runs
//! unless the engine is called, so the engine polls it itself: the connection when its
//! socket is ready or a stream was opened or dropped, and each stream when its own waker
//! recorded it (`multi/h2.rs` says how). Its transport (`multi/h2io.rs`) is the engine's
//! socket and rustls session behind tokio's traits: a read or write that would block returns
//! `Pending` and records the interest. Two facts `h2` does not expose (the server's first
//! SETTINGS read, GOAWAY's last-stream id) are read off the frame headers as bytes pass.
//!
//! Deliberate differences: `CURL_HTTP_VERSION_2_0` on cleartext would try an `Upgrade: h2c`;
//! we have no upgrade, so cleartext is HTTP/1.1 unless prior knowledge is asked for. A `Host`
//! header given by the caller is dropped over HTTP/2 (`:authority` comes from the URL).
//! Server push is refused (SETTINGS_ENABLE_PUSH 0), as libcurl does without a push callback.
//!
//! # Logging and the programs
//!
//! The library logs through the `log` facade (the de facto standard, which `tracing` can
//! also collect through `tracing-log`; a facade with no subscriber costs one relaxed atomic
//! load per call site), never to stderr itself: install any logger to see its warnings.
//! The programs are behind the default feature `cli` (`default-features = false` leaves
//! clap, env_logger and indicatif (the progress line) out of a library user's build). They parse arguments with clap
//! (derive: `--help` lists every flag with its line, `--version`, an unknown flag or bad
//! value is exit status 2 naming it; lexopt would have meant writing all of that by hand),
//! and log with env_logger (`-v` for debug, `-vv` for trace, `RUST_LOG` over both).
//!
//! # Dependencies
//!
//! `httparse` parses status lines and headers (a well-kept parser rather than our own); `url`
//! parses and joins URLs, as the design names it (it brings `idna` and its ICU tables, about
//! 40 crates in `cargo tree`; a hand-written URL parser would save them at the cost of
//! getting relative references and IDNs wrong); `rustix` for non-blocking sockets with
//! `MSG_NOSIGNAL` and the engine's epoll; `slab` for transfer and connection tables; `bytes`,
//! `thiserror`, `futures-core` (the completions stream) and `evcore`. Feature `rustls` adds
//! `rustls` with `ring` (a TLS stack in Rust; `ring` builds some C and assembly, which is why
//! it is a feature and not a default). Feature `http2` (a default) adds `h2` and `http`, see
//! "HTTP/2".
// Unsafe only where tokio demands it: registering the engine's descriptor (`tokio_fd.rs`).
#![deny(unsafe_code)]
// On docs.rs, items show the features they need.
#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod blocking;
pub mod client;
mod done;
pub mod drive;
mod easy;
mod error;
pub mod glob;
pub mod http;
mod multi;
mod poller;
mod resolve;
mod shared;
mod sock;
mod target;
mod tls;
#[cfg(feature = "tokio")]
#[allow(unsafe_code)]
mod tokio_fd;

pub use done::{Done, Response, XferId};
pub use easy::{Easy, Flow, HttpVersion, Progress, DEFAULT_BUFFER_SIZE};
pub use error::{MultiError, XferError};
pub use evcore::{Interest, Ready};
pub use multi::{Multi, Options, SocketPoll, Update};
pub use poller::MultiWaker;
pub use shared::SharedMulti;
