//! Helpers shared by the server's test files: a server on a thread of its own, raw protocol
//! connections, admin commands, workers.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use evcore::Executor;
use jobclient::proto::{encode, Decoder, Frame, Magic, Packet, PacketType};
use jobclient::{Error, Limits, Server, Worker};

/// A server on its own thread and loop, stopped with the admin `shutdown` when dropped.
pub struct Running {
    pub addr: SocketAddr,
    pub thread: Option<JoinHandle<std::io::Result<()>>>,
    server_thread: std::thread::ThreadId,
}

/// Every log record of the test process, with the thread that logged it: a server logs from
/// its own thread, so its lines are told from other servers' by that.
static LOG: Mutex<Vec<(std::thread::ThreadId, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = record.args().to_string();
        LOG.lock().unwrap().push((std::thread::current().id(), line));
    }
    fn flush(&self) {}
}

/// Installs the capturing logger (once per test process).
pub fn capture_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
    });
}

impl Running {
    pub fn start() -> Running {
        Running::start_with(None)
    }

    /// A server keeping background jobs in `queue_file`.
    pub fn start_with(queue_file: Option<std::path::PathBuf>) -> Running {
        Running::start_full(queue_file, Limits::default())
    }

    /// A server with these limits.
    pub fn start_limited(limits: Limits) -> Running {
        Running::start_full(None, limits)
    }

    /// A server keeping background jobs in `queue_file`, synced as `sync` says.
    pub fn start_durable(queue_file: std::path::PathBuf, sync: jobclient::QueueSync) -> Running {
        Running::start_inner(Some(queue_file), Limits::default(), sync)
    }

    fn start_full(queue_file: Option<std::path::PathBuf>, limits: Limits) -> Running {
        Running::start_inner(queue_file, limits, jobclient::QueueSync::Batch)
    }

    fn start_inner(
        queue_file: Option<std::path::PathBuf>,
        limits: Limits,
        sync: jobclient::QueueSync,
    ) -> Running {
        Running::start_setup(move |server| {
            server.limits(limits);
            server.queue_sync(sync);
            if let Some(path) = queue_file {
                server.durable_queue(path)?;
            }
            Ok(())
        })
    }

    /// A server on 127.0.0.1 that `setup` configures before it runs (more listeners,
    /// limits); its first, plaintext, address is the one `admin` and the drop use.
    pub fn start_setup(
        setup: impl FnOnce(&mut Server) -> std::io::Result<()> + Send + 'static,
    ) -> Running {
        capture_log();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let ex = Executor::new()?;
            let h = ex.handle();
            let mut server = Server::bind("127.0.0.1:0".parse().unwrap(), &h)?;
            setup(&mut server)?;
            tx.send(server.local_addr()?).unwrap();
            ex.block_on(server.run())
        });
        match rx.recv() {
            Ok(addr) => {
                let server_thread = thread.thread().id();
                Running { addr, thread: Some(thread), server_thread }
            }
            Err(_) => panic!("the server did not start: {:?}", thread.join()),
        }
    }

    pub fn admin(&self, command: &str) -> Vec<String> {
        admin(self.addr, command)
    }

    /// What this server has logged so far.
    pub fn log(&self) -> Vec<String> {
        let log = LOG.lock().unwrap();
        log.iter().filter(|(t, _)| *t == self.server_thread).map(|(_, l)| l.clone()).collect()
    }
}

/// A server with an HTTP port (`Server::http`) besides its job port: (server, HTTP address).
pub fn with_http() -> (Running, SocketAddr) {
    let (tx, rx) = std::sync::mpsc::channel();
    let server = Running::start_setup(move |s| {
        tx.send(s.http("127.0.0.1:0".parse().unwrap())?).unwrap();
        Ok(())
    });
    (server, rx.recv().unwrap())
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            assert_eq!(admin(self.addr, "shutdown"), ["OK"]);
            t.join().unwrap().unwrap();
        }
    }
}

/// Sends one admin command; returns the reply's lines (up to the `.` of a list).
pub fn admin(addr: SocketAddr, command: &str) -> Vec<String> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "{command}\r\n").unwrap();
    let mut lines = Vec::new();
    let list = matches!(command, "status" | "workers" | "show jobs");
    for line in BufReader::new(s).lines() {
        let line = line.unwrap();
        if list && line == "." {
            break;
        }
        let done = !list;
        lines.push(line);
        if done {
            break;
        }
    }
    lines
}

/// A raw protocol connection, for playing a misbehaving or dying worker.
pub struct Raw(pub TcpStream, pub BytesMut);

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // Packets go out as sent: Nagle's delay on a second small write costs 40 ms.
        s.set_nodelay(true).unwrap();
        Raw(s, BytesMut::new())
    }

    pub fn send(&mut self, kind: PacketType, args: &[&[u8]]) {
        let mut b = BytesMut::new();
        encode(&mut b, Magic::Req, kind, args).unwrap();
        self.0.write_all(&b).unwrap();
    }

    pub fn recv(&mut self) -> Packet {
        let d = Decoder::client();
        loop {
            if let Some(Frame::Packet(p)) = d.decode(&mut self.1).unwrap() {
                return p;
            }
            let mut chunk = [0u8; 4096];
            let n = self.0.read(&mut chunk).unwrap();
            assert!(n > 0, "server closed the connection");
            self.1.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Every background job of `function` a server holds, by data, taken by one worker that
/// completes none of them (so that taking them writes nothing to a durable queue).
pub fn queued_data(addr: SocketAddr, function: &[u8]) -> Vec<Vec<u8>> {
    let mut w = Raw::connect(addr);
    w.send(PacketType::CanDo, &[function]);
    let mut out = Vec::new();
    loop {
        w.send(PacketType::GrabJobAll, &[]);
        let p = w.recv();
        match p.kind() {
            PacketType::NoJob => return out,
            PacketType::JobAssignAll => out.push(p.arg_ref(4).to_vec()),
            other => panic!("{other:?}"),
        }
    }
}

/// A client that submits a foreground job and will never read, and a worker that has taken
/// that job: what the worker reports piles up for the client. Returns both and the handle.
pub fn deaf_client_and_its_worker(addr: SocketAddr) -> (Raw, Raw, bytes::Bytes) {
    running_job(addr, b"f")
}

/// A client that has submitted a foreground job of `function` (its JOB_CREATED read) and a
/// worker running it: (client, worker, handle).
pub fn running_job(addr: SocketAddr, function: &[u8]) -> (Raw, Raw, bytes::Bytes) {
    let mut client = Raw::connect(addr);
    client.send(PacketType::SubmitJob, &[function, b"", b"x"]);
    // Its JOB_CREATED first: on a server of several loops, the worker's GRAB_JOB could
    // otherwise be served before this submission.
    assert_eq!(client.recv().kind(), PacketType::JobCreated);
    let mut w = Raw::connect(addr);
    w.send(PacketType::CanDo, &[function]);
    w.send(PacketType::GrabJob, &[]);
    let p = w.recv();
    assert_eq!(p.kind(), PacketType::JobAssign);
    (client, w, p.arg(0))
}

pub fn block_on<T>(
    f: impl FnOnce(evcore::Handle) -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>>,
) -> T {
    let ex = Executor::new().unwrap();
    let h = ex.handle();
    ex.block_on(f(h))
}

pub fn spawn_worker(
    addr: SocketAddr,
    jobs: u64,
    setup: impl FnOnce(&mut Worker) + Send + 'static,
) -> JoinHandle<Result<u64, Error>> {
    std::thread::spawn(move || {
        let ex = Executor::new().unwrap();
        let h = ex.handle();
        let mut w = Worker::new();
        setup(&mut w);
        ex.block_on(w.work(addr, &h, Some(jobs)))
    })
}

const JOBD: &str = env!("CARGO_BIN_EXE_jobd");

/// A `jobd` process on a free port, killed (SIGKILL) when dropped.
pub struct Jobd(pub Child, pub u16);

impl Jobd {
    /// `jobd` with extra arguments, under `prlimit --nofile=N` when `nofile` is given.
    ///
    /// Ready once the port answers `getpid` with this child's pid: a free port can be taken
    /// by another test's server before this one binds it, and then that server would answer
    /// while this jobd exits on "address in use"; such a start is retried on another port.
    pub fn start(args: &[&str], nofile: Option<u32>) -> Jobd {
        for _ in 0..5 {
            if let Some(j) = Jobd::try_start(args, nofile) {
                return j;
            }
        }
        panic!("jobd {args:?} did not start on any of 5 ports");
    }

    fn try_start(args: &[&str], nofile: Option<u32>) -> Option<Jobd> {
        let port = peers::free_port().unwrap();
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}")).arg(JOBD);
                c
            }
            None => Command::new(JOBD),
        };
        let mut child = cmd
            .args(["-L", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            // The level is the test's to set (a developer's RUST_LOG would change `verbose`).
            .env_remove("RUST_LOG")
            .stderr(if std::env::var_os("JOBD_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .unwrap();
        // A TLS-only port cannot be asked in plaintext: there, a connect and a live child.
        let tls = args.contains(&"--ssl");
        let start = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                // It exited: the port was taken after all.
                return None;
            }
            let ready = if tls {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
            } else {
                Jobd::answers_as(port, child.id())
            };
            if ready {
                return Some(Jobd(child, port));
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("jobd {args:?} did not start");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Whether the server on `port` is the process `pid` (under prlimit, its child: prlimit
    /// execs, so the pid is the same).
    fn answers_as(port: u16, pid: u32) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        if s.write_all(b"getpid\r\n").is_err() {
            return false;
        }
        let mut line = String::new();
        let _ = BufReader::new(s).read_line(&mut line);
        line.trim_end() == format!("OK {pid}")
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        format!("127.0.0.1:{}", self.1).parse().unwrap()
    }

    /// Resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// A round trip that proves the server serves; on one loop (`-t 1`), also that it has
    /// read everything sent before on connections accepted before this one (several loops
    /// serve their connections in parallel).
    pub fn echo(&self) {
        let mut c = Raw::connect(self.addr());
        c.send(PacketType::EchoReq, &[b"alive"]);
        assert_eq!(c.recv().arg_ref(0), b"alive");
    }
}

impl Drop for Jobd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
