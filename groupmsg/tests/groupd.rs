//! `groupd` and `groupcat` as processes, and the daemon backend of `Cpg`.

use std::io::{BufRead, BufReader, IoSlice, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use groupmsg::{Backend, Collect, Cpg, CpgEvent, CsError, Dispatch, GroupName, Guarantee};

const GROUPD: &str = env!("CARGO_BIN_EXE_groupd");
const GROUPCAT: &str = env!("CARGO_BIN_EXE_groupcat");

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A groupd on a socket of its own.
struct Daemon {
    socket: PathBuf,
    _proc: Proc,
}

impl Daemon {
    fn start() -> Daemon {
        Daemon::start_with(None)
    }

    /// A groupd run under `prlimit --nofile=N` when `nofile` is given.
    fn start_with(nofile: Option<u32>) -> Daemon {
        Daemon::start_full(nofile, &[])
    }

    /// A groupd with extra arguments.
    fn start_args(args: &[&str]) -> Daemon {
        Daemon::start_full(None, args)
    }

    fn start_full(nofile: Option<u32>, args: &[&str]) -> Daemon {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let socket =
            std::env::temp_dir().join(format!("groupd-test-{}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&socket);
        Daemon::start_at(socket, nofile, args)
    }

    /// A groupd on `socket` (a stale socket there, of one that died, is replaced).
    fn start_at(socket: PathBuf, nofile: Option<u32>, args: &[&str]) -> Daemon {
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}")).arg(GROUPD);
                c
            }
            None => Command::new(GROUPD),
        };
        let child =
            cmd.arg("--socket").arg(&socket).args(args).stderr(Stdio::null()).spawn().unwrap();
        let start = Instant::now();
        while UnixStream::connect(&socket).is_err() {
            assert!(start.elapsed() < Duration::from_secs(10), "groupd did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        Daemon { socket, _proc: Proc(child) }
    }

    fn handle(&self) -> Cpg<Collect> {
        Cpg::initialize(Backend::Daemon(self.socket.clone()), Collect::default()).unwrap()
    }
}

/// A groupcat process whose output lines arrive on a channel.
struct Cat {
    proc: Proc,
    lines: Receiver<String>,
}

impl Cat {
    fn start(d: &Daemon, group: &str) -> Cat {
        Cat::start_args(d, group, &[])
    }

    fn start_args(d: &Daemon, group: &str, args: &[&str]) -> Cat {
        let mut child = Command::new(GROUPCAT)
            .arg("--socket")
            .arg(&d.socket)
            .args(args)
            .args(["--json", group])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Cat { proc: Proc(child), lines: rx }
    }

    fn pid(&self) -> u32 {
        self.proc.0.id()
    }

    fn say(&mut self, line: &str) {
        writeln!(self.proc.0.stdin.as_mut().unwrap(), "{line}").unwrap();
    }

    /// Lines until one contains `needle` (bounded wait); returns them all.
    fn until(&self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("no {needle:?} in {seen:?}"));
            let done = line.contains(needle);
            seen.push(line);
            if done {
                return seen;
            }
        }
    }
}

#[test]
fn groupcat_processes_share_a_group_and_see_a_killed_member_as_procdown() {
    let d = Daemon::start();
    let mut a = Cat::start(&d, "demo");
    a.until("\"event\":\"confchg\"");
    let b = Cat::start(&d, "demo");
    let joined = format!("\"joined\":[{{\"nodeid\":1,\"pid\":{},\"reason\":\"join\"}}]", b.pid());
    a.until(&joined);
    b.until(&joined);
    a.say("hello \"group\"");
    let deliver = format!(
        "{{\"event\":\"deliver\",\"group\":\"demo\",\"nodeid\":1,\"pid\":{},\"msg\":\"hello \\\"group\\\"\"}}",
        a.pid()
    );
    assert_eq!(a.until("deliver").last().unwrap(), &deliver);
    assert_eq!(b.until("deliver").last().unwrap(), &deliver, "same line at both members");
    let b_pid = b.pid();
    drop(b); // SIGKILL
    let procdown = format!("\"left\":[{{\"nodeid\":1,\"pid\":{b_pid},\"reason\":\"procdown\"}}]");
    a.until(&procdown);
    // End of input: a leaves and exits cleanly, having printed its own leave.
    drop(a.proc.0.stdin.take());
    let leave = format!("\"left\":[{{\"nodeid\":1,\"pid\":{},\"reason\":\"leave\"}}]", a.pid());
    a.until(&leave);
    assert!(a.proc.0.wait().unwrap().success());
}

/// Connect-and-close leaked the bus handle (and its eventfd) of every connection that closed
/// before its greeting went out; under a descriptor limit `accept` then failed and the daemon
/// exited. Here it runs with 128 descriptors and takes 1,500 such connections, in waves, each
/// followed by a real member's round trip. While the flood's connections still hold
/// descriptors the daemon may refuse a connection (that is the limit doing its work), so the
/// member tries again, within a deadline; a daemon that exited never answers.
#[test]
fn connect_and_close_floods_leak_nothing_and_never_stop_the_daemon() {
    let d = Daemon::start_with(Some(128));
    for wave in 0..15 {
        for _ in 0..100 {
            // A refused connect is the daemon's listen backlog being full: fine, it is a flood.
            drop(UnixStream::connect(&d.socket));
        }
        let start = Instant::now();
        let round_trip = || -> Result<(), CsError> {
            let mut h = Cpg::initialize(Backend::Daemon(d.socket.clone()), Collect::default())?;
            h.join(&GroupName::new(format!("wave{wave}"))?)?;
            h.mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"ping")])?;
            while !h.handler().events.iter().any(|e| matches!(e, CpgEvent::Deliver { .. })) {
                h.dispatch(Dispatch::One)?;
            }
            Ok(())
        };
        while let Err(e) = round_trip() {
            assert!(start.elapsed() < Duration::from_secs(20), "wave {wave}: {e:?}");
        }
    }
}

/// Runs `groupcat` on `d` as the unprivileged uid 65534 (nobody) until it prints its first
/// line or exits; returns its exit status (None: still running, joined) and stderr.
fn groupcat_as_nobody(d: &Daemon) -> (Option<std::process::ExitStatus>, String) {
    let mut child = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", GROUPCAT, "--socket"])
        .arg(&d.socket)
        .args(["--json", "access"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    if line.contains("confchg") {
        let _ = child.kill();
        let _ = child.wait();
        return (None, String::new());
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (Some(status), err)
}

/// Anyone who could reach the socket joined any group, listed every group and pid, and could
/// stall senders. Now the socket is 0660 and the peer's uid must be allowed.
#[test]
fn only_allowed_users_may_join() {
    use std::os::unix::fs::PermissionsExt;
    let d = Daemon::start();
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    // The mode keeps nobody out before the daemon is even asked.
    let (status, err) = groupcat_as_nobody(&d);
    assert!(!status.expect("refused").success());
    assert!(err.contains("access"), "{err}");
    // With the socket open to all, the uid check refuses.
    let open = Daemon::start_args(&["--mode", "0666"]);
    let (status, err) = groupcat_as_nobody(&open);
    assert!(!status.expect("refused").success());
    assert!(err.contains("access"), "{err}");
    // An allowed uid joins.
    let allowed = Daemon::start_args(&["--mode", "0666", "--allow-uid", "65534"]);
    assert_eq!(groupcat_as_nobody(&allowed).0, None, "uid 65534 joined");
    // The list replaces the default: root, not listed there, is refused with a typed error.
    let refused = Cpg::initialize(Backend::Daemon(allowed.socket.clone()), Collect::default());
    assert!(matches!(refused, Err(CsError::Access)), "root was let in");
    // The default list has the daemon's own user (root here).
    let mut h = d.handle();
    h.join(&GroupName::new("access").unwrap()).unwrap();
}

/// `bind` deleted any file at the socket path that did not answer; now only a dead socket is
/// replaced.
#[test]
fn bind_never_deletes_a_file_that_is_not_a_socket() {
    let dir = peers::scratch_dir("groupd-bind").unwrap();
    let path = dir.join("precious");
    std::fs::write(&path, b"data").unwrap();
    let e = groupmsg::Groupd::bind(&path).unwrap_err();
    assert!(e.to_string().contains("not a socket"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"data");
    // A live daemon's socket is not taken over either.
    let d = Daemon::start();
    let e = groupmsg::Groupd::bind(&d.socket).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{e}");
    let mut h = d.handle();
    h.join(&GroupName::new("still-served").unwrap()).unwrap();
}

/// A member process that stops reading (SIGSTOP) held flow control on for its group for ever,
/// and its daemon threads blocked on its full socket. Now it is disconnected after the stall
/// limit and the others see it leave as PROCDOWN.
#[test]
fn a_member_that_stops_reading_is_disconnected_and_the_group_goes_on() {
    let d = Daemon::start_args(&["--max-stall", "0.3"]);
    let b = Cat::start(&d, "stall");
    b.until("\"event\":\"confchg\"");
    let b_pid = b.pid();
    assert!(Command::new("kill").args(["-STOP", &b_pid.to_string()]).status().unwrap().success());
    let mut a = d.handle();
    a.join(&GroupName::new("stall").unwrap()).unwrap();
    let chunk = vec![7u8; 16 * 1024];
    let start = Instant::now();
    let gone = |a: &Cpg<Collect>| {
        a.handler().events.iter().any(|e| {
            matches!(e, CpgEvent::ConfChg { left, .. } if left.iter().any(|c| c.member.pid == b_pid))
        })
    };
    while !gone(&a) {
        assert!(start.elapsed() < Duration::from_secs(30), "the stopped member was never removed");
        match a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(&chunk)]) {
            Ok(()) | Err(CsError::TryAgain) => {}
            Err(e) => panic!("{e:?}"),
        }
        a.dispatch(Dispatch::All).unwrap();
    }
    // The group goes on: a's next messages come back to it.
    let before = a.handler().events.len();
    for _ in 0..100 {
        while let Err(CsError::TryAgain) = a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"on")])
        {
            a.dispatch(Dispatch::All).unwrap();
        }
    }
    while a.handler().events.len() < before + 100 {
        a.dispatch(Dispatch::One).unwrap();
    }
    let _ = Command::new("kill").args(["-CONT", &b_pid.to_string()]).status();
}

#[test]
fn daemon_handles_agree_on_one_order() {
    const EACH: usize = 200;
    let d = Daemon::start();
    let g = GroupName::new("order").unwrap();
    let mut handles: Vec<Cpg<Collect>> = (0..3).map(|_| d.handle()).collect();
    for h in &mut handles {
        h.join(&g).unwrap();
    }
    let threads: Vec<_> = handles
        .into_iter()
        .enumerate()
        .map(|(t, mut h)| {
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut sent = 0;
                while seen.len() < 3 * EACH {
                    if sent < EACH {
                        let msg = format!("{t}:{sent}");
                        match h.mcast_joined(Guarantee::Agreed, &[IoSlice::new(msg.as_bytes())]) {
                            Ok(()) => sent += 1,
                            Err(CsError::TryAgain) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                    let _ = h.dispatch(Dispatch::All);
                    for e in h.handler_mut().events.drain(..) {
                        if let CpgEvent::Deliver { msg, .. } = e {
                            seen.push(String::from_utf8(msg).unwrap());
                        }
                    }
                }
                seen
            })
        })
        .collect();
    let orders: Vec<Vec<String>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(orders[0], orders[1]);
    assert_eq!(orders[0], orders[2]);
    for t in 0..3 {
        let mine: Vec<&String> =
            orders[0].iter().filter(|m| m.starts_with(&format!("{t}:"))).collect();
        assert_eq!(mine.len(), EACH);
    }
}

#[test]
fn the_daemon_backend_keeps_the_cpg_contract() {
    let d = Daemon::start();
    let g = GroupName::new("contract").unwrap();
    let mut a = d.handle();
    assert_eq!(a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"x")]), Err(CsError::NotExist));
    assert_eq!(a.dispatch(Dispatch::OneNonBlocking), Err(CsError::TryAgain));
    a.join(&g).unwrap();
    assert_eq!(a.join(&g), Err(CsError::Exist));
    a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"self")]).unwrap();
    // ONE waits for, and delivers, exactly one event: first the join, then the message.
    assert_eq!(a.dispatch(Dispatch::One), Ok(1));
    assert_eq!(a.dispatch(Dispatch::One), Ok(1));
    assert!(
        matches!(a.handler().events.last(), Some(CpgEvent::Deliver { msg, .. }) if msg == b"self")
    );
    assert_eq!(a.membership_get().unwrap(), [a.member()]);
    assert_eq!(a.groups().unwrap().len(), 1);
    a.leave().unwrap();
    a.join(&g).unwrap();
    let stop = a.stopper();
    std::thread::spawn(move || stop.stop()).join().unwrap();
    a.dispatch(Dispatch::Blocking).unwrap();
}

#[test]
fn malformed_frames_close_only_their_connection() {
    let d = Daemon::start();
    let g = GroupName::new("safe").unwrap();
    let mut good = d.handle();
    good.join(&g).unwrap();
    // (bytes, what they are)
    let cases: [(&[u8], &str); 3] = [
        (&[0xff, 0xff, 0xff, 0xff, 1], "oversized length"),
        (&[0, 0, 0, 1, 77], "unknown type"),
        (&[0, 0, 0, 2, 2, 9], "trailing bytes"),
    ];
    for (bytes, what) in cases {
        let mut bad = UnixStream::connect(&d.socket).unwrap();
        bad.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        bad.write_all(bytes).unwrap();
        let mut rest = Vec::new();
        bad.read_to_end(&mut rest).unwrap();
        // Only the daemon's hello came back before it closed the connection.
        assert!(rest.len() < 32, "{what}: {} bytes back", rest.len());
    }
    good.mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"still fine")]).unwrap();
    // The join's confchg, then the message: two events, each dispatched by a blocking ONE.
    for _ in 0..2 {
        good.dispatch(Dispatch::One).unwrap();
    }
    assert!(
        matches!(good.handler().events.last(), Some(CpgEvent::Deliver { msg, .. }) if msg == b"still fine")
    );
}

#[test]
fn flow_control_through_the_daemon_holds_back_and_loses_nothing() {
    let d = Daemon::start();
    let g = GroupName::new("flow").unwrap();
    let (mut fast, mut slow) = (d.handle(), d.handle());
    fast.join(&g).unwrap();
    slow.join(&g).unwrap();
    // The slow member reads nothing: its socket fills, then its backlog at the daemon grows
    // past the limit, and the sender is told to wait.
    let mut sent = 0usize;
    loop {
        match fast
            .mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"0123456789abcdef0123456789abcdef")])
        {
            Ok(()) => sent += 1,
            Err(CsError::TryAgain) => break,
            Err(e) => panic!("{e}"),
        }
        if sent % 256 == 0 {
            fast.dispatch(Dispatch::All).unwrap();
            fast.handler_mut().events.clear();
        }
        assert!(sent < 500_000, "flow control never engaged");
    }
    assert_eq!(fast.flow_control_state(), groupmsg::FlowControl::Enabled);
    // The slow member catches up; the sender may send again; nothing was lost.
    let mut delivered = 0;
    let mut resumed = false;
    while delivered < sent || !resumed {
        slow.dispatch(Dispatch::One).unwrap();
        for e in slow.handler_mut().events.drain(..) {
            if matches!(e, CpgEvent::Deliver { .. }) {
                delivered += 1;
            }
        }
        if !resumed && delivered == sent {
            resumed = fast.mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"after")]).is_ok();
            if resumed {
                sent += 1;
            }
        }
    }
    assert_eq!(delivered, sent, "every accepted message reached the slow member");
}

#[test]
fn a_sender_that_never_dispatches_cannot_deadlock_with_the_daemon() {
    // Its own deliveries pile up towards it while it keeps sending: the client must keep
    // reading while it waits to write, or client and daemon block on each other.
    let d = Daemon::start();
    let g = GroupName::new("no-deadlock").unwrap();
    let mut a = d.handle();
    a.join(&g).unwrap();
    let big = vec![7u8; 16 * 1024];
    let mut sent = 0;
    while sent < 2_000 {
        match a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(&big)]) {
            Ok(()) => sent += 1,
            Err(CsError::TryAgain) => {
                a.dispatch(Dispatch::All).unwrap();
            }
            Err(e) => panic!("{e}"),
        }
    }
    let mut delivered = 0;
    while delivered < sent {
        a.dispatch(Dispatch::One).unwrap();
        delivered =
            a.handler().events.iter().filter(|e| matches!(e, CpgEvent::Deliver { .. })).count();
    }
}

#[test]
fn a_sender_that_never_dispatches_hears_try_again_at_its_own_backlog() {
    // Its deliveries, read from the socket while it sends, wait in the handle and no longer
    // count at the daemon: they count here instead, at the bus's threshold (1 MiB), so a
    // member that only sends is told to dispatch instead of growing without bound.
    let d = Daemon::start();
    let g = GroupName::new("own-backlog").unwrap();
    let mut a = d.handle();
    a.join(&g).unwrap();
    let big = vec![7u8; 64 * 1024];
    let mut sent = 0;
    let refused = loop {
        match a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(&big)]) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        // 64 MiB: far past the threshold and the daemon's buffers together.
        assert!(sent < 1_000, "a sender that never dispatches was never told to wait");
    };
    assert_eq!(refused, CsError::TryAgain);
    assert_eq!(a.flow_control_state(), groupmsg::FlowControl::Enabled);
    // Dispatching clears it, and every message sent arrives.
    let mut delivered = 0;
    while delivered < sent {
        a.dispatch(Dispatch::One).unwrap();
        delivered =
            a.handler().events.iter().filter(|e| matches!(e, CpgEvent::Deliver { .. })).count();
    }
    assert_eq!(a.flow_control_state(), groupmsg::FlowControl::Disabled);
    a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"after")]).unwrap();
}

/// The daemon's threads, from /proc.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().count()
}

/// 1,000 member connections on one daemon, in 10 groups of 100 (CPG allows 128 members a
/// group): every member sees every message of its group, all in one order, and the daemon's
/// thread count does not change from its first connection to its thousandth (the first
/// version spent two threads on each). The members are handles in this process, so they
/// share one pid: the messages say who sent them.
#[test]
fn a_thousand_members_in_ten_groups_on_one_thread() {
    const GROUPS: usize = 10;
    const PER_GROUP: usize = 100;
    const EACH: usize = 2;
    // Three descriptors a handle here: the soft limit may be the usual 1,024.
    let mut limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    limit.current = limit.maximum;
    rustix::process::setrlimit(rustix::process::Resource::Nofile, limit).unwrap();
    let d = Daemon::start();
    let pid = d._proc.0.id();
    let mut first = d.handle();
    let idle = threads(pid);
    let mut members: Vec<(usize, Cpg<Collect>)> = Vec::new();
    for g in 0..GROUPS {
        let name = GroupName::new(format!("many-{g}")).unwrap();
        for i in 0..PER_GROUP {
            let mut h = if g == 0 && i == 0 {
                std::mem::replace(&mut first, d.handle())
            } else {
                d.handle()
            };
            h.join(&name).unwrap();
            members.push((g, h));
        }
    }
    drop(first);
    assert_eq!(members.len(), GROUPS * PER_GROUP);
    assert_eq!(threads(pid), idle, "threads grew with the connections");
    let deliveries = |c: &Cpg<Collect>| -> Vec<Vec<u8>> {
        c.handler()
            .events
            .iter()
            .filter_map(|e| match e {
                CpgEvent::Deliver { msg, .. } => Some(msg.clone()),
                _ => None,
            })
            .collect()
    };
    // Every member sends EACH messages naming it; everyone dispatches in turn until every
    // member has all of its group's.
    let mut unsent: Vec<usize> = vec![EACH; members.len()];
    let want = PER_GROUP * EACH;
    let start = Instant::now();
    loop {
        let mut done = true;
        for (k, (g, c)) in members.iter_mut().enumerate() {
            if unsent[k] > 0 {
                let msg = format!("{g}:{k}:{}", EACH - unsent[k]);
                match c.mcast_joined(Guarantee::Agreed, &[IoSlice::new(msg.as_bytes())]) {
                    Ok(()) => unsent[k] -= 1,
                    Err(CsError::TryAgain) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            c.dispatch(Dispatch::All).unwrap();
            done &= unsent[k] == 0 && deliveries(c).len() == want;
        }
        if done {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "deliveries stalled");
    }
    for g in 0..GROUPS {
        let in_group: Vec<&Cpg<Collect>> =
            members.iter().filter(|(mg, _)| *mg == g).map(|(_, c)| c).collect();
        let order = deliveries(in_group[0]);
        assert!(order.iter().all(|m| m.starts_with(format!("{g}:").as_bytes())), "group {g}");
        let mut sorted = order.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), want, "group {g}: a message lost or repeated");
        for c in &in_group[1..] {
            assert_eq!(deliveries(c), order, "group {g}: two orders");
        }
    }
    assert_eq!(threads(pid), idle, "threads grew with the traffic");
}

/// After groupd restarts, a handle reports the loss once as `Library`, then `BadHandle`
/// (never a hang), and works again after `reinitialize` and a join; a sender made before
/// sends on the new connection. `groupcat --reconnect` rejoins by itself.
#[test]
fn a_restarted_daemon_is_reported_once_and_rejoined() {
    let d = Daemon::start();
    let socket = d.socket.clone();
    let g = GroupName::new("restart").unwrap();
    let mut h = d.handle();
    h.join(&g).unwrap();
    let sender = h.sender();
    let cat = Cat::start_args(&d, "restart", &["--reconnect"]);
    cat.until(&format!("\"pid\":{}", cat.pid()));
    drop(d);
    let first = loop {
        match h.dispatch(Dispatch::All) {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(first, CsError::Library);
    assert!(h.is_lost());
    assert_eq!(h.dispatch(Dispatch::All), Err(CsError::BadHandle));
    assert_eq!(h.mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"x")]), Err(CsError::BadHandle));
    assert_eq!(h.group(), Some(&g));
    // A new daemon on the same path.
    let _d2 = Daemon::start_at(socket, None, &[]);
    h.reinitialize().unwrap();
    assert!(!h.is_lost());
    h.join(&g).unwrap();
    // groupcat comes back by itself: its join is seen by the new member.
    let pid = cat.pid();
    let rejoined = |h: &Cpg<Collect>| {
        h.handler().events.iter().any(|e| {
            matches!(e, CpgEvent::ConfChg { members, .. } if members.iter().any(|m| m.pid == pid))
        })
    };
    while !rejoined(&h) {
        h.dispatch(Dispatch::One).unwrap();
    }
    sender.mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"after restart")]).unwrap();
    cat.until("after restart");
}

/// A client that sends requests as fast as it can and reads its answers as fast as it can
/// (a busy socket the daemon never finds empty) does not keep the daemon's one thread: two
/// other members' messages still go round. Before the task budget the flooder's task never
/// yielded and this hung.
#[test]
fn a_flooding_client_does_not_starve_the_others() {
    let d = Daemon::start();
    let mut raw = UnixStream::connect(&d.socket).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    raw.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut reader = raw.try_clone().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let drain = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if matches!(reader.read(&mut buf), Ok(0) | Err(_)) {
                    return;
                }
            }
        })
    };
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // Membership queries (type 4, no payload): tiny requests, each answered.
            let batch = [0u8, 0, 0, 1, 4].repeat(4096);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if raw.write_all(&batch).is_err() {
                    return;
                }
            }
        })
    };
    // The members run on a thread of their own, so that a starved daemon (their calls then
    // block) shows as a timeout here rather than as a hang.
    let (done, finished) = channel();
    let socket = d.socket.clone();
    std::thread::spawn(move || {
        let g = GroupName::new("unstarved").unwrap();
        let handle = || Cpg::initialize(Backend::Daemon(socket.clone()), Collect::default());
        let (mut a, mut b) = (handle().unwrap(), handle().unwrap());
        a.join(&g).unwrap();
        b.join(&g).unwrap();
        let count = |c: &Cpg<Collect>| {
            c.handler().events.iter().filter(|e| matches!(e, CpgEvent::Deliver { .. })).count()
        };
        let mut sent = 0;
        while count(&b) < 200 {
            if sent < 200 {
                match a.mcast_joined(Guarantee::Agreed, &[IoSlice::new(b"through")]) {
                    Ok(()) => sent += 1,
                    Err(CsError::TryAgain) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            a.dispatch(Dispatch::All).unwrap();
            b.dispatch(Dispatch::All).unwrap();
        }
        let _ = done.send(());
    });
    finished.recv_timeout(Duration::from_secs(60)).expect("the flooder starved the others");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(d);
    let _ = (flood.join(), drain.join());
}
