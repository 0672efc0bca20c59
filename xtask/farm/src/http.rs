//! The farm's HTTP/1.1 file server: a thread per connection, keep-alive, files from
//! [`content`](crate::content). Small on purpose; the interesting HTTP is the client's.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::content;

/// Counters the report shows.
#[derive(Debug, Default)]
pub(crate) struct Served {
    pub(crate) requests: AtomicU64,
    pub(crate) connections: AtomicU64,
    pub(crate) bytes: AtomicU64,
}

/// Starts serving on an ephemeral port of 127.0.0.1.
pub(crate) fn start() -> std::io::Result<(SocketAddr, Arc<Served>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let served = Arc::new(Served::default());
    let s = served.clone();
    std::thread::Builder::new().name("farm-http".into()).spawn(move || {
        for conn in listener.incoming().flatten() {
            s.connections.fetch_add(1, Ordering::Relaxed);
            let s = s.clone();
            let _ = std::thread::Builder::new()
                .name("farm-http-conn".into())
                .spawn(move || serve(conn, &s));
        }
    })?;
    Ok((addr, served))
}

fn serve(conn: TcpStream, served: &Served) {
    let _ = conn.set_nodelay(true);
    let Ok(mut out) = conn.try_clone() else { return };
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("").to_string());
        // The rest of the head; the farm's requests have no body.
        let mut close = false;
        loop {
            let mut h = String::new();
            match reader.read_line(&mut h) {
                Ok(0) | Err(_) => return,
                Ok(_) if h == "\r\n" || h == "\n" => break,
                Ok(_) => close |= h.to_ascii_lowercase().starts_with("connection: close"),
            }
        }
        served.requests.fetch_add(1, Ordering::Relaxed);
        let file = content::index_of(&path).filter(|&i| content::exists(i));
        let result = match (method, file) {
            ("GET" | "HEAD", Some(i)) => {
                let body = content::body(i);
                served.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                out.write_all(head.as_bytes()).and_then(|()| {
                    if method == "GET" {
                        out.write_all(&body)
                    } else {
                        Ok(())
                    }
                })
            }
            ("GET" | "HEAD", None) => {
                out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\nnot found\n")
            }
            _ => out.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n"),
        };
        if result.is_err() || close {
            return;
        }
    }
}
