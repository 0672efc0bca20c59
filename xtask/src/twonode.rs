//! Two corosync nodes on one machine, for the groupmsg interop check: one network namespace
//! per node joined by a veth pair, each daemon with its own `/run` and `/var/lib/corosync`
//! (a mount namespace), and a `groupcat --corosync` client in each namespace. Checks that
//! both nodes deliver the same messages in the same order; that cutting the link between them
//! is reported at both as NODEDOWN, and healing it as NODEUP with both in one merged totem
//! ring (the same ring id at both), after which they again deliver one order; and that
//! killing one node's daemon is reported to the other as NODEDOWN. Addresses exist only inside the namespaces this
//! creates; everything is removed afterwards, also on failure.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use crate::util::{cmd, Result};

const ADDRS: [&str; 2] = ["10.250.0.1", "10.250.0.2"];

/// Everything the check creates, removed when dropped.
struct Cluster {
    namespaces: [String; 2],
    daemons: Vec<Child>,
    clients: Vec<Child>,
    dir: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.clients.iter_mut().chain(self.daemons.iter_mut()) {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = &self.dir;
    }
}

fn ip(args: &[&str]) -> Result {
    let status = Command::new("ip").args(args).status().map_err(|e| format!("ip: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`ip {}` failed", args.join(" ")))
    }
}

fn conf() -> String {
    let nodes: String = ADDRS
        .iter()
        .enumerate()
        .map(|(i, a)| format!("    node {{\n        name: n{n}\n        nodeid: {n}\n        ring0_addr: {a}\n    }}\n", n = i + 1))
        .collect();
    format!(
        "totem {{\n    version: 2\n    cluster_name: evstack2\n    transport: knet\n    crypto_cipher: none\n    crypto_hash: none\n    token: 1000\n}}\nnodelist {{\n{nodes}}}\nquorum {{\n}}\nlogging {{\n    to_stderr: yes\n    to_logfile: no\n    to_syslog: no\n}}\n"
    )
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Result {
    let start = Instant::now();
    while !ok() {
        if start.elapsed() > limit {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// A client's output lines, arriving on a channel.
fn lines(child: &mut Child) -> Receiver<String> {
    let out = child.stdout.take().expect("piped");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(std::result::Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    rx
}

/// Lines until `n` of them contain `needle`.
fn collect(rx: &Receiver<String>, needle: &str, n: usize) -> Result<Vec<String>> {
    let mut hits = Vec::new();
    let mut other = Vec::new();
    while hits.len() < n {
        let l = rx.recv_timeout(Duration::from_secs(30)).map_err(|_| {
            format!("only {} of {n} {needle:?} lines; other lines: {other:?}", hits.len())
        })?;
        if l.contains(needle) {
            hits.push(l);
        } else {
            other.push(l);
        }
    }
    Ok(hits)
}

/// Reads lines until each needle has been seen in some line; returns the first line for each
/// (lines seen meanwhile are dropped, whatever order the needles come in).
fn collect_each(rx: &Receiver<String>, needles: &[&str]) -> Result<Vec<String>> {
    let mut found: Vec<Option<String>> = vec![None; needles.len()];
    let mut other = Vec::new();
    while found.iter().any(Option::is_none) {
        let l = rx.recv_timeout(Duration::from_secs(30)).map_err(|_| {
            let missing: Vec<&&str> =
                needles.iter().zip(&found).filter(|(_, f)| f.is_none()).map(|(n, _)| n).collect();
            format!("no line with {missing:?}; other lines: {other:?}")
        })?;
        match needles.iter().zip(found.iter_mut()).find(|(n, f)| f.is_none() && l.contains(**n)) {
            Some((_, slot)) => *slot = Some(l),
            None => other.push(l),
        }
    }
    Ok(found.into_iter().flatten().collect())
}

/// Messages sent by each node's client at once.
const EACH: usize = 20;

/// Both clients send [`EACH`] lines at once (named by `prefix`, node and number); both nodes
/// must deliver all of them in the same order. Gives the inputs back.
fn send_both(
    inputs: Vec<ChildStdin>,
    prefix: &str,
    ra: &Receiver<String>,
    rb: &Receiver<String>,
) -> Result<Vec<ChildStdin>> {
    let writers: Vec<_> = inputs
        .into_iter()
        .enumerate()
        .map(|(i, mut input)| {
            let prefix = prefix.to_string();
            std::thread::spawn(move || {
                for k in 0..EACH {
                    let _ = writeln!(input, "{prefix}n{}-{k}", i + 1);
                }
                input
            })
        })
        .collect();
    let inputs = writers.into_iter().map(|w| w.join().expect("writer")).collect();
    let seq_a = collect(ra, "\"event\":\"deliver\"", 2 * EACH)?;
    let seq_b = collect(rb, "\"event\":\"deliver\"", 2 * EACH)?;
    if seq_a != seq_b {
        return Err(format!("the nodes delivered different orders:\n{seq_a:?}\n{seq_b:?}"));
    }
    Ok(inputs)
}

/// The ring of a `groupcat --totem --json` line: `"ring":{...}`.
fn ring_of(line: &str) -> &str {
    line.split("\"ring\":").nth(1).and_then(|r| r.split('}').next()).unwrap_or(line)
}

pub(crate) fn run() -> Result<String> {
    let dir = peers::scratch_dir("twonode").map_err(|e| e.to_string())?;
    check(&dir).map_err(|e| {
        // What the daemons and clients said, to tell a setup problem from a real one.
        let mut report = e;
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            let log = if p.is_dir() { p.join("log") } else { p.clone() };
            if let Ok(text) = std::fs::read_to_string(&log) {
                let tail: Vec<&str> = text.lines().rev().take(5).collect();
                report.push_str(&format!(
                    "\n  {}: {}",
                    log.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                ));
            }
        }
        report
    })
}

fn check(dir: &Path) -> Result<String> {
    // The client program, built with the corosync backend.
    cmd(
        "cargo",
        &[
            "build",
            "--quiet",
            "--package",
            "groupmsg",
            "--features",
            "corosync",
            "--bin",
            "groupcat",
        ],
        &[],
    )?;
    let groupcat = peers::workspace_root().join("target/debug/groupcat");
    let tag = std::process::id() % 100_000;
    let dir = dir.to_path_buf();
    let mut cluster = Cluster {
        namespaces: [format!("evs{tag}a"), format!("evs{tag}b")],
        daemons: Vec::new(),
        clients: Vec::new(),
        dir: dir.clone(),
    };
    let veth = [format!("eva{tag}"), format!("evb{tag}")];
    for ns in &cluster.namespaces {
        ip(&["netns", "add", ns])?;
    }
    ip(&["link", "add", &veth[0], "type", "veth", "peer", "name", &veth[1]])?;
    for i in 0..2 {
        let ns = &cluster.namespaces[i];
        ip(&["link", "set", &veth[i], "netns", ns])?;
        ip(&[
            "netns",
            "exec",
            ns,
            "ip",
            "addr",
            "add",
            &format!("{}/24", ADDRS[i]),
            "dev",
            &veth[i],
        ])?;
        ip(&["netns", "exec", ns, "ip", "link", "set", "lo", "up"])?;
        ip(&["netns", "exec", ns, "ip", "link", "set", &veth[i], "up"])?;
    }
    let corosync = peers::require_binary("corosync", "corosync").map_err(|e| e.to_string())?;
    for i in 0..2 {
        let node = dir.join(format!("n{}", i + 1));
        for sub in ["run", "lib"] {
            std::fs::create_dir_all(node.join(sub)).map_err(|e| e.to_string())?;
        }
        std::fs::write(node.join("corosync.conf"), conf()).map_err(|e| e.to_string())?;
        let script = format!(
            "mount --bind {run} /run && mount --bind {lib} /var/lib/corosync && exec {bin} -f -c {conf}",
            run = node.join("run").display(),
            lib = node.join("lib").display(),
            bin = corosync.display(),
            conf = node.join("corosync.conf").display()
        );
        let log = std::fs::File::create(node.join("log")).map_err(|e| e.to_string())?;
        let child = Command::new("ip")
            .args(["netns", "exec", &cluster.namespaces[i], "unshare", "-m", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| e.to_string())?;
        cluster.daemons.push(child);
    }
    let ns0 = cluster.namespaces[0].clone();
    wait_for("the two-node ring", Duration::from_secs(30), || {
        Command::new("ip")
            .args(["netns", "exec", &ns0, "corosync-cfgtool", "-s"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("connected"))
    })?;
    let start_client = |ns: &str| -> Result<Child> {
        let err = std::fs::File::create(dir.join(format!("{ns}.client.err")))
            .map_err(|e| e.to_string())?;
        Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(&groupcat)
            .args(["--corosync", "--json", "--totem", "evstack-two-nodes"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .map_err(|e| e.to_string())
    };
    let mut a = start_client(&cluster.namespaces[0])?;
    let ra = lines(&mut a);
    collect(&ra, "\"event\":\"confchg\"", 1)?;
    let mut b = start_client(&cluster.namespaces[1])?;
    let rb = lines(&mut b);
    let (a_pid, b_pid) = (a.id(), b.id());
    let ins: Vec<ChildStdin> = vec![a.stdin.take().expect("piped"), b.stdin.take().expect("piped")];
    cluster.clients.push(a);
    cluster.clients.push(b);
    // Both members see the two-member group before anyone speaks. Node 2's member reaches
    // node 1 as JOIN or, while the ring is settling, as NODEUP: corosync reports either.
    collect(&ra, &format!("\"joined\":[{{\"nodeid\":2,\"pid\":{b_pid},"), 1)?;
    collect(&rb, "\"event\":\"confchg\"", 1)?;
    // Both nodes send at once; both must deliver the same sequence.
    let inputs = send_both(ins, "", &ra, &rb)?;
    // The link between the nodes goes down: each reports the other's member as NODEDOWN,
    // each in a ring of its own.
    let link = |state: &str| {
        ip(&["netns", "exec", &cluster.namespaces[0], "ip", "link", "set", &veth[0], state])
    };
    link("down")?;
    let down_a = collect_each(&ra, &[&format!("\"pid\":{b_pid},\"reason\":\"nodedown\"")])?;
    let down_b = collect_each(&rb, &[&format!("\"pid\":{a_pid},\"reason\":\"nodedown\"")])?;
    // It comes back: the rings merge, each reports the other's member as NODEUP, and both
    // are in the same new ring of both nodes.
    link("up")?;
    let up_a = collect_each(
        &ra,
        &["\"event\":\"totem\"", &format!("\"pid\":{b_pid},\"reason\":\"nodeup\"")],
    )?;
    let up_b = collect_each(
        &rb,
        &["\"event\":\"totem\"", &format!("\"pid\":{a_pid},\"reason\":\"nodeup\"")],
    )?;
    // The first ring reported after the link came back may be a transitional one; wait for
    // both to report the ring with both nodes in it.
    let merged = |rx: &Receiver<String>, first: &str| -> Result<String> {
        if first.contains("\"nodes\":[1,2]") {
            return Ok(first.to_string());
        }
        Ok(collect(rx, "\"nodes\":[1,2]", 1)?.remove(0))
    };
    let (ring_a, ring_b) = (merged(&ra, &up_a[0])?, merged(&rb, &up_b[0])?);
    if ring_of(&ring_a) != ring_of(&ring_b) {
        return Err(format!("the nodes merged into different rings:\n{ring_a}\n{ring_b}"));
    }
    let _ = (down_a, down_b);
    // Both nodes send at once again: one order on both, throughout.
    let inputs = send_both(inputs, "after-", &ra, &rb)?;
    // Node 2's daemon dies: node 1 must report its member as NODEDOWN.
    let daemon_b = &mut cluster.daemons[1];
    daemon_b.kill().map_err(|e| e.to_string())?;
    let _ = daemon_b.wait();
    collect(&ra, &format!("\"pid\":{b_pid},\"reason\":\"nodedown\""), 1)?;
    drop(inputs);
    Ok(format!(
        "2 nodes in network namespaces: {} deliveries in one order on both; the link cut \
         (NODEDOWN at both) and healed (NODEUP at both, one merged ring {}}}); a killed node \
         seen as NODEDOWN",
        4 * EACH,
        ring_of(&ring_a)
    ))
}
