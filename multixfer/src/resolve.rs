//! Name resolution that never blocks the loop: IP literals and `localhost` at once, other names
//! on a short-lived thread per host (at most eight at once), answers cached for a minute
//! (libcurl's DNS cache timeout).
//!
//! The threads report through an eventfd that the engine announces like any socket while a
//! lookup is pending, as libcurl's threaded resolver does with its socket pair.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rustix::event::{eventfd, EventfdFlags};

/// At most this many lookups run at once; more hosts wait their turn.
const MAX_THREADS: usize = 8;

/// How long an answer is reused (`CURLOPT_DNS_CACHE_TIMEOUT`'s default).
const CACHE_TTL: Duration = Duration::from_secs(60);

type Answer = (Arc<str>, Result<Vec<IpAddr>, String>);

/// An eventfd that any thread can signal.
#[derive(Debug)]
pub(crate) struct Signal(OwnedFd);

impl Signal {
    pub(crate) fn new() -> io::Result<Signal> {
        Ok(Signal(eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC)?))
    }

    pub(crate) fn raise(&self) {
        // A full counter (never reached) or a closed descriptor only means the reader is
        // already woken or gone.
        let _ = rustix::io::write(&self.0, &1u64.to_ne_bytes());
    }

    /// Clears the signal; true when it was raised.
    pub(crate) fn clear(&self) -> bool {
        let mut b = [0u8; 8];
        rustix::io::read(&self.0, &mut b).is_ok()
    }

    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// What a lookup gave.
#[derive(Debug)]
pub(crate) enum Lookup {
    Ready(Result<Vec<IpAddr>, String>),
    Pending,
}

#[derive(Debug)]
pub(crate) struct Resolver {
    cache: HashMap<Arc<str>, (Vec<IpAddr>, Instant)>,
    /// Hosts being looked up, or waiting for a thread.
    pending: HashMap<Arc<str>, ()>,
    /// Hosts waiting for a lookup thread.
    queued: std::collections::VecDeque<Arc<str>>,
    /// Lookup threads running.
    threads: usize,
    tx: mpsc::Sender<Answer>,
    rx: mpsc::Receiver<Answer>,
    signal: Arc<Signal>,
}

impl Resolver {
    pub(crate) fn new() -> io::Result<Resolver> {
        let (tx, rx) = mpsc::channel();
        Ok(Resolver {
            cache: HashMap::new(),
            pending: HashMap::new(),
            queued: std::collections::VecDeque::new(),
            threads: 0,
            tx,
            rx,
            signal: Arc::new(Signal::new()?),
        })
    }

    pub(crate) fn signal(&self) -> &Signal {
        &self.signal
    }

    /// Whether answers are awaited (the signal should be watched).
    pub(crate) fn busy(&self) -> bool {
        !self.pending.is_empty()
    }

    pub(crate) fn lookup(&mut self, host: &Arc<str>, now: Instant) -> Lookup {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Lookup::Ready(Ok(vec![ip]));
        }
        // RFC 6761: localhost is the loopback, without asking anyone (as libcurl does).
        if host.eq_ignore_ascii_case("localhost") || host.ends_with(".localhost") {
            return Lookup::Ready(Ok(vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]));
        }
        if let Some((addrs, at)) = self.cache.get(host) {
            if now.duration_since(*at) < CACHE_TTL {
                return Lookup::Ready(Ok(addrs.clone()));
            }
        }
        if self.pending.insert(host.clone(), ()).is_none() {
            if self.threads >= MAX_THREADS {
                self.queued.push_back(host.clone());
                return Lookup::Pending;
            }
            if let Err(e) = self.spawn(host.clone()) {
                self.pending.remove(host);
                return Lookup::Ready(Err(format!("cannot start a resolver thread: {e}")));
            }
        }
        Lookup::Pending
    }

    /// Starts a lookup thread for `name`.
    fn spawn(&mut self, name: Arc<str>) -> std::io::Result<()> {
        let (tx, signal) = (self.tx.clone(), self.signal.clone());
        std::thread::Builder::new().name("mxfer-resolve".into()).spawn(move || {
            let answer = (&*name, 0u16)
                .to_socket_addrs()
                .map(|it| it.map(|a| a.ip()).collect::<Vec<_>>())
                .map_err(|e| e.to_string());
            let _ = tx.send((name, answer));
            signal.raise();
        })?;
        self.threads += 1;
        Ok(())
    }

    /// Answers that arrived since the last call.
    pub(crate) fn answers(&mut self, now: Instant) -> Vec<Answer> {
        self.signal.clear();
        let mut out = Vec::new();
        while let Ok((host, answer)) = self.rx.try_recv() {
            self.threads -= 1;
            self.pending.remove(&host);
            let answer = match answer {
                Ok(v) if v.is_empty() => Err("no addresses".to_string()),
                other => other,
            };
            if let Ok(addrs) = &answer {
                self.cache.insert(host.clone(), (addrs.clone(), now));
            }
            out.push((host, answer));
        }
        // Hosts that waited for a thread get one now.
        while self.threads < MAX_THREADS {
            let Some(host) = self.queued.pop_front() else { break };
            if let Err(e) = self.spawn(host.clone()) {
                self.pending.remove(&host);
                out.push((host, Err(format!("cannot start a resolver thread: {e}"))));
            }
        }
        out
    }
}
