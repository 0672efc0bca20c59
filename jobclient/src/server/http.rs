//! `jobd --http ADDRESS:PORT`: `/metrics` (Prometheus), `/status.json`, and `/`, a status
//! page that updates itself, on the server's own event loop.
//!
//! A request is one `GET` (or `HEAD`) whose head fits in 8 KiB and arrives within 10 s; the
//! answer closes the connection. At most 64 HTTP connections are served at once, 8 from one
//! address (more are closed at once). The snapshot behind each answer is taken in one short hold of the
//! server's lock and formatted outside it, so a page polling once a second costs the job path
//! a few microseconds a second.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use evcore::{Async, Handle};
use futures_io::{AsyncRead, AsyncWrite};

use super::metrics::Snapshot;
use super::Locked;

/// The largest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// How long a request may take to arrive, and its answer to be taken.
const DEADLINE: Duration = Duration::from_secs(10);
/// HTTP connections served at once.
const MAX_CONNECTIONS: usize = 64;
/// HTTP connections served at once from one address: one host cannot take them all.
const MAX_PER_PEER: usize = 8;

/// An HTTP connection counted while it is served; uncounted however its task ends.
struct Counted {
    open: Arc<AtomicUsize>,
    per_peer: Rc<RefCell<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        let mut per_peer = self.per_peer.borrow_mut();
        if let Some(n) = per_peer.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_peer.remove(&self.ip);
            }
        }
    }
}

/// The status page: one file, no network beyond this server (no CDN, no fonts).
const PAGE: &str = include_str!("status.html");

/// Accepts HTTP connections until the listener is dropped with the task.
pub(super) async fn serve(
    listener: Async<TcpListener>,
    shared: Arc<Locked>,
    hosts: Arc<Vec<String>>,
    h: Handle,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let per_peer: Rc<RefCell<HashMap<IpAddr, usize>>> = Rc::default();
    loop {
        if poll_fn(|cx| listener.poll_readable(cx)).await.is_err() {
            h.sleep(Duration::from_millis(10)).await;
            continue;
        }
        loop {
            match listener.get_ref().accept() {
                Ok((stream, peer)) => {
                    let ip = peer.ip();
                    let from_peer = per_peer.borrow().get(&ip).copied().unwrap_or(0);
                    if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS || from_peer >= MAX_PER_PEER
                    {
                        continue;
                    }
                    let Ok(sock) = Async::new(stream, &h) else { continue };
                    open.fetch_add(1, Ordering::Relaxed);
                    *per_peer.borrow_mut().entry(ip).or_default() += 1;
                    let counted = Counted { open: open.clone(), per_peer: per_peer.clone(), ip };
                    let (shared, hosts, h2) = (shared.clone(), hosts.clone(), h.clone());
                    h.spawn_local(async move {
                        let _counted = counted;
                        // The request and its answer within the deadline, or the connection
                        // goes: a client that never sends, or never reads, holds nothing long.
                        let mut sleep = h2.sleep(DEADLINE);
                        let mut answering = std::pin::pin!(answer(sock, &shared, &hosts));
                        let answered = poll_fn(|cx| {
                            if let Poll::Ready(r) = answering.as_mut().poll(cx) {
                                return Poll::Ready(Some(r));
                            }
                            match Pin::new(&mut sleep).poll(cx) {
                                Poll::Ready(()) => Poll::Ready(None),
                                Poll::Pending => Poll::Pending,
                            }
                        })
                        .await;
                        if let Some(Err(e)) = answered {
                            log::debug!("HTTP connection: {e}");
                        }
                    })
                    .detach();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // Out of descriptors, a peer gone before it was taken: the job port matters
                // more than this one; wait a little rather than spin.
                Err(_) => {
                    h.sleep(Duration::from_millis(10)).await;
                    break;
                }
            }
        }
    }
}

/// Whether a request's `Host` may be answered: an IP address, `localhost` (or a name under
/// it), or a name the operator allowed (`jobd --http-host`). Any other name is what a page
/// elsewhere gets when it points its own name at this address (DNS rebinding) to read the
/// status through a browser that can reach it: refused.
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        // `[v6]` or `[v6]:port`: an address, and nothing else after it.
        let Some((addr, after)) = rest.split_once(']') else { return false };
        let port_ok = after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        return port_ok && addr.parse::<IpAddr>().is_ok();
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.parse::<IpAddr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(&name))
}

/// Reads one request and writes its answer.
async fn answer(mut sock: Async<TcpStream>, shared: &Locked, hosts: &[String]) -> io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let (method, path, host) = loop {
        let n = poll_fn(|cx| Pin::new(&mut sock).poll_read(cx, &mut chunk)).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {
                let mut hosts = req.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("host"));
                let host = hosts.next().map(|h| String::from_utf8_lossy(h.value).into_owned());
                if hosts.next().is_some() {
                    // More than one Host (RFC 9112): which one a proxy believed is unknown.
                    return refuse(&mut sock, "400 Bad Request").await;
                }
                break (
                    req.method.unwrap_or("").to_string(),
                    req.path.unwrap_or("").to_string(),
                    host,
                );
            }
            Ok(httparse::Status::Partial) if head.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => {
                return refuse(&mut sock, "431 Request Header Fields Too Large").await;
            }
            Err(_) => return refuse(&mut sock, "400 Bad Request").await,
        }
    };
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return refuse(&mut sock, "405 Method Not Allowed").await;
    }
    if !host.as_deref().is_none_or(|h| host_allowed(h, hosts)) {
        return refuse(&mut sock, "403 Forbidden").await;
    }
    let path = path.split('?').next().unwrap_or("");
    // The snapshot in its own statement: the lock's guard ends with it, and the formatting
    // runs with the lock released.
    let snapshot = || {
        let mut sh = shared.borrow_mut();
        Snapshot::take(&mut sh)
    };
    let (kind, body) = match path {
        "/metrics" => {
            ("text/plain; version=0.0.4; charset=utf-8", snapshot().prometheus().into_bytes())
        }
        "/status.json" => ("application/json", snapshot().json().into_bytes()),
        "/" => ("text/html; charset=utf-8", PAGE.as_bytes().to_vec()),
        _ => {
            return respond(&mut sock, "404 Not Found", "text/plain", b"not found\n", head_only)
                .await
        }
    };
    respond(&mut sock, "200 OK", kind, &body, head_only).await
}

/// Answers a request refused before all of it was read, then closes gently: the rest of
/// what the client sent is read and dropped (up to 64 KiB, within the deadline), since a
/// close with unread input resets the connection and the client may never see the answer.
async fn refuse(sock: &mut Async<TcpStream>, status: &str) -> io::Result<()> {
    respond(sock, status, "text/plain", b"", false).await?;
    sock.get_ref().shutdown(std::net::Shutdown::Write)?;
    let mut chunk = [0u8; 4096];
    let mut left: usize = 64 * 1024;
    while left > 0 {
        let n = poll_fn(|cx| Pin::new(&mut *sock).poll_read(cx, &mut chunk)).await?;
        if n == 0 {
            break;
        }
        left = left.saturating_sub(n);
    }
    Ok(())
}

async fn respond(
    sock: &mut Async<TcpStream>,
    status: &str,
    kind: &str,
    body: &[u8],
    head_only: bool,
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    let mut sent = 0;
    while sent < out.len() {
        let n = poll_fn(|cx| Pin::new(&mut *sock).poll_write(cx, &out[sent..])).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        sent += n;
    }
    Ok(())
}

/// Binds the HTTP listener.
pub(super) fn bind(addr: SocketAddr, h: &Handle) -> io::Result<Async<TcpListener>> {
    Async::<TcpListener>::bind(addr, h)
}

#[cfg(test)]
mod tests {
    use super::host_allowed;

    #[test]
    fn hosts_by_address_localhost_or_allowed() {
        let allowed = ["jobs.internal".to_string()];
        for ok in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "[::1]:80",
            "[::1]",
            "10.0.0.5:9",
            "localhost",
            "LOCALHOST:80",
            "x.localhost",
            "jobs.internal:8080",
            "Jobs.Internal.",
        ] {
            assert!(host_allowed(ok, &allowed), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "[evil]",
            "127.0.0.1.evil.example",
            "jobs.internal.evil",
            "[::1]junk",
            "[::1]:",
            "[::1",
        ] {
            assert!(!host_allowed(bad, &allowed), "{bad}");
        }
    }
}
