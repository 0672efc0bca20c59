//! The callback contract, checked by a recording event loop: sockets are announced once per
//! change, Remove comes only for announced sockets and always before their close, the engine
//! cannot be re-entered, and the timer is told only changes.

mod common;

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{nginx, Server};
use evcore::{Clock, Event, Loop, Reactor, Token};
use multixfer::{Easy, Multi, MultiError, Options, SharedMulti, SocketPoll, XferError};

fn is_open(fd: RawFd) -> bool {
    std::path::Path::new(&format!("/proc/self/fd/{fd}")).exists()
}

#[derive(Default)]
struct Recorder {
    announced: HashMap<RawFd, SocketPoll>,
    /// What the loop still has to apply: (fd, poll).
    ops: Vec<(RawFd, SocketPoll)>,
    timer: Option<Option<Duration>>,
    timer_calls: usize,
    announces: usize,
    removes: usize,
    violations: Vec<String>,
}

impl Recorder {
    fn socket(&mut self, fd: RawFd, poll: SocketPoll, value: &mut Option<u64>) {
        if !is_open(fd) {
            self.violations.push(format!("{poll:?} for fd {fd}, which is closed"));
        }
        match poll {
            SocketPoll::Remove => {
                if self.announced.remove(&fd).is_none() {
                    self.violations.push(format!("Remove for fd {fd}, never announced"));
                }
                self.removes += 1;
            }
            p => {
                if self.announced.insert(fd, p) == Some(p) {
                    self.violations.push(format!("fd {fd} announced {p:?} twice"));
                }
                self.announces += 1;
                // The per-socket value: set on first announce, seen again on later calls.
                value.get_or_insert(fd as u64);
                if *value != Some(fd as u64) {
                    self.violations.push(format!("fd {fd} carries another socket's value"));
                }
            }
        }
        self.ops.push((fd, poll));
    }

    /// Every socket the engine has announced and not removed must still be open.
    fn check_open(&mut self) {
        for &fd in self.announced.keys() {
            if !is_open(fd) {
                self.violations.push(format!("fd {fd} closed without a Remove"));
            }
        }
    }
}

/// Runs the engine with callbacks on an evcore loop until nothing is running.
fn run(multi: &mut Multi<u32, u64>, rec: &Arc<Mutex<Recorder>>, lp: &mut Loop) -> usize {
    let mut timer = None;
    let mut done = 0;
    let mut events = Vec::new();
    loop {
        {
            let mut r = rec.lock().unwrap();
            r.check_open();
            for (fd, poll) in r.ops.drain(..) {
                match poll.interest() {
                    Some(i) => {
                        if lp.reregister(fd, Token(fd as usize), i).is_err() {
                            lp.register(fd, Token(fd as usize), i).unwrap();
                        }
                    }
                    None => lp.deregister(fd).unwrap(),
                }
            }
            if let Some(t) = r.timer.take() {
                if let Some(id) = timer.take() {
                    lp.cancel_timer(id);
                }
                if let Some(d) = t {
                    timer = Some(lp.add_timer(lp.now() + d, Token(usize::MAX)));
                }
            }
        }
        while let Some((_, _)) = multi.info_read() {
            done += 1;
        }
        if multi.running() == 0 {
            return done;
        }
        events.clear();
        lp.turn(None, &mut events).unwrap();
        for ev in events.drain(..) {
            match ev {
                Event::Io(Token(fd), ready) => {
                    multi.socket_action(fd as RawFd, ready).unwrap();
                }
                Event::Timer(_) => {
                    timer = None;
                    multi.socket_action_timeout().unwrap();
                }
                _ => {}
            }
        }
    }
}

fn recorded(multi: &mut Multi<u32, u64>) -> Arc<Mutex<Recorder>> {
    let rec = Arc::new(Mutex::new(Recorder::default()));
    let r = rec.clone();
    multi.set_socket_callback(move |fd, poll, value| r.lock().unwrap().socket(fd, poll, value));
    let r = rec.clone();
    multi.set_timer_callback(move |t| {
        let mut r = r.lock().unwrap();
        r.timer = Some(t);
        r.timer_calls += 1;
    });
    rec
}

#[test]
fn sockets_are_announced_once_and_removed_before_close() {
    // nginx closes every fifth request's connection; a refused port and a server that resets
    // mid-body add connections that die.
    let server = nginx(5);
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let reset = Server::start(|mut c| {
        common::read_request(&mut c);
        use std::io::Write;
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort");
    });
    let mut opts = Options::default();
    opts.max_host_connections = 3;
    opts.max_connects = Some(2);
    let mut multi: Multi<u32, u64> = Multi::with_options(opts).unwrap();
    let rec = recorded(&mut multi);
    for i in 0..60 {
        multi.add(Easy::get(server.url("r1")).follow_location(true).private(i));
    }
    for i in 60..65 {
        multi.add(Easy::get(format!("http://127.0.0.1:{refused}/")).private(i));
        multi.add(Easy::get(reset.url("/")).private(i + 5));
    }
    let mut lp = Loop::new().unwrap();
    assert_eq!(run(&mut multi, &rec, &mut lp), 70);
    // One more to a server that keeps its connections: an idle one is then surely left
    // (nginx may have closed every one of its own).
    let keep =
        Server::start(|c| common::answer_all(c, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    multi.add(Easy::get(keep.url("/")).private(70));
    assert_eq!(run(&mut multi, &rec, &mut lp), 1);
    let before_drop = rec.lock().unwrap().announced.len();
    assert!(before_drop > 0, "idle connections stay announced (watched for closing)");
    drop(multi);
    let r = rec.lock().unwrap();
    assert!(r.violations.is_empty(), "{:#?}", r.violations);
    assert!(r.announced.is_empty(), "dropping the engine removes every socket: {:?}", r.announced);
    assert!(r.removes >= 14, "removes {}", r.removes);
    // Changes only: far fewer callbacks than socket events.
    assert!(r.announces < 200, "announces {}", r.announces);
}

#[test]
fn timer_is_told_changes_only() {
    let silent = Server::start(|mut c| {
        common::read_request(&mut c);
        let mut b = [0u8; 1];
        let _ = std::io::Read::read(&mut c, &mut b); // never answers; ends when the client closes
    });
    let (clock, mock) = Clock::mock();
    let mut multi: Multi<u32, u64> = Multi::with_clock(Options::default(), clock).unwrap();
    let rec = recorded(&mut multi);
    let id = multi.add(Easy::get(silent.url("/")).timeout(Duration::from_secs(5)).private(0));
    assert_eq!(rec.lock().unwrap().timer.take(), Some(Some(Duration::ZERO)), "added: act at once");
    multi.add(Easy::get(silent.url("/")).timeout(Duration::from_secs(9)).private(1));
    assert_eq!(rec.lock().unwrap().timer, None, "still 'at once': not told again");
    multi.socket_action_timeout().unwrap();
    assert_eq!(
        rec.lock().unwrap().timer.take(),
        Some(Some(Duration::from_secs(5))),
        "the earliest deadline"
    );
    let calls = rec.lock().unwrap().timer_calls;
    multi.socket_action(12345, evcore::Ready::READABLE_ONLY).unwrap();
    assert_eq!(rec.lock().unwrap().timer_calls, calls, "nothing changed, nothing told");
    mock.advance(Duration::from_secs(5));
    multi.socket_action_timeout().unwrap();
    let (done, _) = multi.info_read().unwrap();
    assert_eq!(done.id, id);
    assert!(matches!(done.result, Err(XferError::Timeout(t)) if t == Duration::from_secs(5)));
    assert_eq!(rec.lock().unwrap().timer.take(), Some(Some(Duration::from_secs(4))));
    mock.advance(Duration::from_secs(4));
    multi.socket_action_timeout().unwrap();
    assert!(matches!(multi.info_read().unwrap().0.result, Err(XferError::Timeout(_))));
    assert_eq!(rec.lock().unwrap().timer.take(), Some(None), "nothing left: cancelled");
    assert!(rec.lock().unwrap().violations.is_empty());
}

#[test]
fn callbacks_cannot_reenter_the_engine() {
    let shared: SharedMulti<u32, u64> =
        SharedMulti::new(Multi::with_options(Options::default()).unwrap());
    let results = Arc::new(Mutex::new(Vec::new()));
    let (inner, out) = (shared.clone(), results.clone());
    shared
        .with(|m| {
            m.set_socket_callback(move |_, _, _| {
                out.lock().unwrap().push(inner.socket_action_timeout().map(|_| ()));
            })
        })
        .unwrap();
    let server =
        Server::start(|c| common::answer_all(c, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    shared.add(Easy::get(server.url("/")).private(0)).unwrap();
    shared.socket_action_timeout().unwrap();
    let results = results.lock().unwrap();
    assert!(!results.is_empty());
    assert!(results.iter().all(|r| matches!(r, Err(MultiError::RecursiveApiCall))));
    // Outside a callback the shared engine works.
    assert_eq!(shared.running().unwrap(), 1);
}

#[test]
fn pull_mode_keeps_removed_sockets_open_until_the_next_call() {
    let server = Server::start(|mut c| {
        common::read_request(&mut c);
        use std::io::Write;
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
    });
    let mut multi = Multi::new().unwrap();
    multi.add(Easy::get(server.url("/")));
    let mut lp = Loop::new().unwrap();
    let mut watched: HashMap<RawFd, SocketPoll> = HashMap::new();
    let mut removed = Vec::new();
    let mut events = Vec::new();
    multi.socket_action_timeout().unwrap();
    while multi.running() > 0 {
        for u in multi.drain_updates() {
            if let multixfer::Update::Socket { fd, poll } = u {
                if poll == SocketPoll::Remove {
                    assert!(watched.remove(&fd).is_some(), "Remove for an unannounced socket");
                    assert!(is_open(fd), "a removed socket is open until the next call");
                    lp.deregister(fd).unwrap();
                    removed.push(fd);
                } else {
                    assert_ne!(watched.insert(fd, poll), Some(poll), "duplicate announce");
                    if lp.reregister(fd, Token(fd as usize), poll.interest().unwrap()).is_err() {
                        lp.register(fd, Token(fd as usize), poll.interest().unwrap()).unwrap();
                    }
                }
            }
        }
        events.clear();
        lp.turn(Some(Duration::from_secs(5)), &mut events).unwrap();
        for ev in events.drain(..) {
            if let Event::Io(Token(fd), ready) = ev {
                multi.socket_action(fd as RawFd, ready).unwrap();
            }
        }
    }
    let removes: Vec<_> = multi
        .drain_updates()
        .filter(|u| matches!(u, multixfer::Update::Socket { poll: SocketPoll::Remove, .. }))
        .collect();
    assert_eq!(removes.len() + removed.len(), 1, "the closed connection was removed once");
    assert_eq!(multi.info_read().unwrap().0.result.unwrap().body, b"ok");
}

#[test]
fn socket_all_acts_on_real_readiness() {
    // curl_multi_socket_all with no event loop at all: a connect in progress is not taken
    // for a finished one, so a refused port fails as a connect error.
    let good =
        Server::start(|c| common::answer_all(c, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut multi: Multi<u32, u64> = Multi::with_options(Options::default()).unwrap();
    multi.add(Easy::get(good.url("/")).private(0));
    multi.add(Easy::get(format!("http://[::1]:{refused}/")).private(1));
    multi.add(Easy::get(format!("http://127.0.0.1:{refused}/")).private(2));
    while multi.running() > 0 {
        multi.socket_all().unwrap();
    }
    while let Some((d, _)) = multi.info_read() {
        match d.private {
            0 => assert_eq!(d.result.unwrap().body, b"ok"),
            _ => assert!(matches!(d.result, Err(XferError::Connect { .. })), "{:?}", d.result),
        }
    }
}

#[test]
#[cfg(feature = "http2")]
fn the_contract_holds_when_transfers_share_a_socket_over_http2() {
    // nginx with HTTP/2 on cleartext (prior knowledge), ending each connection with GOAWAY
    // after 10 streams, so that shared sockets come and go.
    let h2_port = peers::free_port().unwrap();
    let config = peers::NginxConfig {
        keepalive_requests: 10,
        server_extra: format!(
            "listen 127.0.0.1:{h2_port} http2;\n    location = /r1 {{ return 302 /ping; }}\n"
        ),
        ..Default::default()
    };
    let _server = peers::Nginx::start(&config).expect("nginx starts with HTTP/2");
    let mut opts = Options::default();
    opts.max_host_connections = 3;
    opts.max_connects = Some(2);
    let mut multi: Multi<u32, u64> = Multi::with_options(opts).unwrap();
    let rec = recorded(&mut multi);
    for i in 0..200 {
        let easy = Easy::get(format!("http://127.0.0.1:{h2_port}/r1"))
            .follow_location(true)
            .http_version(multixfer::HttpVersion::Http2PriorKnowledge)
            .pipewait(i % 2 == 0);
        multi.add(easy.private(i));
    }
    let mut lp = Loop::new().unwrap();
    assert_eq!(run(&mut multi, &rec, &mut lp), 200);
    // 400 requests (each transfer is redirected once); streams already in flight when the
    // GOAWAY comes still complete, so a connection carries 10 or more.
    assert!(multi.connects() >= 10, "{} connections", multi.connects());
    drop(multi);
    let r = rec.lock().unwrap();
    assert!(r.violations.is_empty(), "{:#?}", r.violations);
    assert!(r.announced.is_empty(), "dropping the engine removes every socket: {:?}", r.announced);
    // A socket is announced per change, not per stream.
    assert!(r.announces < 400, "announces {}", r.announces);
}
