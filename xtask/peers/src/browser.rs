//! A real browser: Debian's Chromium, headless, driven through `chromedriver` (WebDriver, the
//! W3C protocol) on a loopback port.
//!
//! ```no_run
//! let driver = peers::Chromedriver::start()?;
//! let page = driver.session()?;
//! page.goto("http://127.0.0.1:8080/")?;
//! let title = page.script("return document.title")?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::install::require_binary;
use crate::process::free_port;

/// A `chromedriver` process, stopped when dropped.
#[derive(Debug)]
pub struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    /// Starts `chromedriver` (installing `chromium` and `chromium-driver` when missing) and
    /// waits, bounded, until it reports itself ready.
    pub fn start() -> io::Result<Chromedriver> {
        require_binary("chromium", "chromium")?;
        let driver = require_binary("chromedriver", "chromium-driver")?;
        let port = free_port()?;
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let d = Chromedriver { child, port };
        let start = Instant::now();
        loop {
            if let Ok(status) = request(port, "GET", "/status", None) {
                if status["value"]["ready"] == Value::Bool(true) {
                    return Ok(d);
                }
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "chromedriver did not start"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A new headless Chromium window (1280x900), closed when the session drops.
    pub fn session(&self) -> io::Result<Session> {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900",
                         "--no-first-run", "--disable-extensions"]
            }
        }}});
        let answer = request(self.port, "POST", "/session", Some(&caps))?;
        let id = answer["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| io::Error::other(format!("no session: {answer}")))?
            .to_string();
        Ok(Session { port: self.port, id })
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser window.
#[derive(Debug)]
pub struct Session {
    port: u16,
    id: String,
}

impl Session {
    /// Loads `url` (returns once the page has loaded).
    pub fn goto(&self, url: &str) -> io::Result<()> {
        self.command("POST", "url", &json!({ "url": url })).map(drop)
    }

    /// Runs `script` (a function body: `return ...`) in the page; its result.
    pub fn script(&self, script: &str) -> io::Result<Value> {
        self.command("POST", "execute/sync", &json!({ "script": script, "args": [] }))
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> io::Result<Vec<u8>> {
        let b64 = self.command("GET", "screenshot", &Value::Null)?;
        let b64 = b64.as_str().ok_or_else(|| io::Error::other("no screenshot"))?;
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| io::Error::other(format!("the screenshot is not base64: {e}")))
    }

    fn command(&self, method: &str, what: &str, body: &Value) -> io::Result<Value> {
        let path = format!("/session/{}/{what}", self.id);
        let body = if method == "GET" { None } else { Some(body) };
        let answer = request(self.port, method, &path, body)?;
        if answer["value"]["error"].is_string() {
            return Err(io::Error::other(format!("{what}: {}", answer["value"])));
        }
        Ok(answer["value"].clone())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = request(self.port, "DELETE", &format!("/session/{}", self.id), None);
    }
}

/// One WebDriver request on a connection of its own; the answer's JSON.
fn request(port: u16, method: &str, path: &str, body: Option<&Value>) -> io::Result<Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    // chromedriver keeps the connection open whatever the request says: the answer ends at
    // its Content-Length (or its last chunk), not at the end of the stream.
    let mut out = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let body = loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::other("chromedriver closed before its answer ended"));
        }
        out.extend_from_slice(&chunk[..n]);
        let Some(split) = out.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&out[..split]).to_ascii_lowercase();
        let rest = &out[split + 4..];
        if head.contains("transfer-encoding: chunked") || head.contains("transfer-encoding:chunked")
        {
            if let Some(body) = unchunk(rest) {
                break body;
            }
            continue;
        }
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .ok_or_else(|| io::Error::other("chromedriver sent no Content-Length"))?;
        if rest.len() >= length {
            break rest[..length].to_vec();
        }
    };
    serde_json::from_slice(&body).map_err(|e| io::Error::other(format!("chromedriver: {e}")))
}

/// A chunked body, joined.
fn unchunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line = b.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&b[..line]).ok()?.split(';').next()?.trim();
        let size = usize::from_str_radix(size, 16).ok()?;
        b = &b[line + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn chunks_join() {
        assert_eq!(super::unchunk(b"5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n").unwrap(), b"hello!");
        assert!(super::unchunk(b"5\r\nhel").is_none());
    }
}
