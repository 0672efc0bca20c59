//! The bus model test's checks, on `groupd` with real member processes: `groupcat --json`
//! processes start (join), multicast the lines written to them, leave (end of input) or are
//! killed (SIGKILL), at random. Afterwards every member's printed view must start with its own
//! join, hold every message it sent before its own leave (for members that left on their
//! own), and agree with every other view on the events between their first and last shared
//! one: one sequence, membership changes at the same place in it. About half the members
//! multicast with SAFE delivery (`groupcat --safe`), so the views also hold with messages
//! waiting for acknowledgements among joins, leaves and kills. Fewer steps than the
//! in-process model, since each member is a process; `MODEL_SEED=N` replays one seed.

mod views;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const GROUPD: &str = env!("CARGO_BIN_EXE_groupd");
const GROUPCAT: &str = env!("CARGO_BIN_EXE_groupcat");

/// An event as a view prints it, comparable across views.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Seen {
    Msg(String),
    Change(Vec<(u32, String)>, Vec<u32>),
}

/// The `pid`s in a JSON array of members (`"key":[{...,"pid":N,...},...]`), with reasons.
fn members(line: &str, key: &str) -> Vec<(u32, String)> {
    let Some(start) = line.find(&format!("\"{key}\":[")) else { return Vec::new() };
    let rest = &line[start + key.len() + 4..];
    let body = &rest[..rest.find(']').unwrap_or(rest.len())];
    body.split('}')
        .filter_map(|m| {
            let pid = m.split("\"pid\":").nth(1)?;
            let pid: u32 = pid.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
            let reason = m
                .split("\"reason\":\"")
                .nth(1)
                .map(|r| r.split('"').next().unwrap_or("").to_string());
            Some((pid, reason.unwrap_or_default()))
        })
        .collect()
}

fn parse(line: &str) -> Option<Seen> {
    if line.contains("\"event\":\"deliver\"") {
        let msg = line.split("\"msg\":\"").nth(1)?.trim_end_matches("\"}");
        return Some(Seen::Msg(msg.to_string()));
    }
    if line.contains("\"event\":\"confchg\"") {
        let mut changes: Vec<(u32, String)> =
            members(line, "left").into_iter().chain(members(line, "joined")).collect();
        changes.sort();
        let all = members(line, "members").into_iter().map(|(p, _)| p).collect();
        return Some(Seen::Change(changes, all));
    }
    None
}

struct Member {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    sent: Vec<String>,
    killed: bool,
}

impl Member {
    /// A member process; `safe`: it multicasts with SAFE delivery.
    fn start(socket: &PathBuf, safe: bool) -> Member {
        let mut child = Command::new(GROUPCAT)
            .arg("--socket")
            .arg(socket)
            .args(["--json", "model"])
            .args(safe.then_some("--safe"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
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
        let mut m = Member { child, lines: rx, seen: Vec::new(), sent: Vec::new(), killed: false };
        // Wait for its own join, so that what it is told to send comes after it.
        let me = m.child.id();
        let start = Instant::now();
        while !m
            .seen
            .iter()
            .any(|l| l.contains("confchg") && members(l, "joined").iter().any(|j| j.0 == me))
        {
            let line = m.lines.recv_timeout(Duration::from_secs(20)).expect("groupcat joined");
            m.seen.push(line);
            assert!(start.elapsed() < Duration::from_secs(20));
        }
        m
    }

    /// Ends it (end of input, or SIGKILL) and collects everything it printed.
    fn finish(mut self, kill: bool) -> (u32, Vec<Seen>, Vec<String>, bool) {
        let pid = self.child.id();
        if kill {
            let _ = self.child.kill();
        } else {
            drop(self.child.stdin.take());
        }
        let _ = self.child.wait();
        self.seen.extend(self.lines.iter());
        let events = self.seen.iter().filter_map(|l| parse(l)).collect();
        (pid, events, self.sent, kill || self.killed)
    }
}

struct Daemon(Child, PathBuf);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(seed: u64, steps: usize) {
    let socket =
        std::env::temp_dir().join(format!("groupd-model-{}-{seed}.sock", std::process::id()));
    let _ = std::fs::remove_file(&socket);
    let daemon = Daemon(
        Command::new(GROUPD).arg("--socket").arg(&socket).stderr(Stdio::null()).spawn().unwrap(),
        socket.clone(),
    );
    let start = Instant::now();
    while UnixStream::connect(&daemon.1).is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "groupd did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut alive: Vec<Member> = Vec::new();
    let mut views = Vec::new();
    let mut msg = 0;
    for _ in 0..steps {
        match next() % 10 {
            0 | 1 if alive.len() < 5 => alive.push(Member::start(&socket, next() % 2 == 0)),
            2 if !alive.is_empty() => {
                let m = alive.remove((next() % alive.len() as u64) as usize);
                views.push(m.finish(false));
            }
            3 if !alive.is_empty() => {
                let m = alive.remove((next() % alive.len() as u64) as usize);
                views.push(m.finish(true));
            }
            _ if !alive.is_empty() => {
                let i = (next() % alive.len() as u64) as usize;
                let text = format!("m{msg}");
                msg += 1;
                let m = &mut alive[i];
                if writeln!(m.child.stdin.as_mut().unwrap(), "{text}").is_ok() {
                    m.sent.push(text);
                }
            }
            _ => alive.push(Member::start(&socket, next() % 2 == 0)),
        }
    }
    for m in alive {
        views.push(m.finish(false));
    }
    check(&views);
}

fn check(views: &[(u32, Vec<Seen>, Vec<String>, bool)]) {
    // A run that delivered nothing would check nothing.
    let delivered = views.iter().flat_map(|v| &v.1).filter(|e| matches!(e, Seen::Msg(_))).count();
    assert!(delivered > 0, "no message was delivered in {} views", views.len());
    for (pid, events, sent, killed) in views {
        assert!(
            matches!(events.first(), Some(Seen::Change(c, _)) if c.contains(&(*pid, "join".into()))),
            "view of {pid} does not start with its own join: {:?}",
            events.first()
        );
        if *killed {
            continue;
        }
        let leave = events
            .iter()
            .position(|e| matches!(e, Seen::Change(c, _) if c.contains(&(*pid, "leave".into()))))
            .expect("a member that left on its own saw its leave");
        for m in sent {
            assert!(events[..leave].contains(&Seen::Msg(m.clone())), "{pid} never got its own {m}");
        }
    }
    let shared: Vec<(u32, &[Seen])> = views.iter().map(|v| (v.0, &v.1[..])).collect();
    views::agree(&shared);
}

#[test]
fn every_member_process_sees_one_sequence() {
    let steps = 60;
    if let Some(seed) = std::env::var("MODEL_SEED").ok().and_then(|s| s.parse().ok()) {
        return run(seed, steps);
    }
    let seeds: u64 = std::env::var("MODEL_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    for seed in 0..seeds {
        let r = std::panic::catch_unwind(|| run(seed, steps));
        assert!(r.is_ok(), "groupd model test failed with seed {seed} (replay: MODEL_SEED={seed})");
    }
}
