//! The `jobd` and `jobc` programs, as processes, with each other and with gearmand and the
//! `gearman` tool.

#![cfg(feature = "server")]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const JOBC: &str = env!("CARGO_BIN_EXE_jobc");
const JOBD: &str = env!("CARGO_BIN_EXE_jobd");

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A job server process: ours or gearmand.
enum Server {
    // The process is held only to be killed when the server is dropped.
    Jobd(#[allow(dead_code)] Proc, u16),
    Gearmand(peers::Gearmand),
}

impl Server {
    fn jobd() -> Server {
        let port = peers::free_port().unwrap();
        let child = Command::new(JOBD)
            .args(["-L", "127.0.0.1", "-p", &port.to_string()])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server::Jobd(Proc(child), port);
        wait_until("jobd answers", || {
            admin(port, "version").first().is_some_and(|l| l.starts_with("OK"))
        });
        server
    }

    fn gearmand() -> Server {
        Server::Gearmand(peers::Gearmand::start(&[]).unwrap())
    }

    fn port(&self) -> u16 {
        match self {
            Server::Jobd(_, p) => *p,
            Server::Gearmand(g) => g.port(),
        }
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn admin(port: u16, command: &str) -> Vec<String> {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return Vec::new() };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = write!(s, "{command}\r\n");
    let list = command == "status";
    let mut out = Vec::new();
    for line in BufReader::new(s).lines() {
        let Ok(line) = line else { break };
        if list && line == "." {
            break;
        }
        out.push(line);
        if !list {
            break;
        }
    }
    out
}

fn jobc(port: u16, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(JOBC)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn jobc_worker(port: u16, function: &str, count: Option<u32>, command: &[&str]) -> Proc {
    let port = port.to_string();
    let mut args = vec!["-w", "-h", "127.0.0.1", "-p", &port, "-f", function];
    let c = count.map(|c| c.to_string());
    if let Some(c) = &c {
        args.extend(["-c", c]);
    }
    args.push("--");
    args.extend_from_slice(command);
    Proc(
        Command::new(JOBC).args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap(),
    )
}

#[test]
fn jobc_client_and_worker_on_both_servers() {
    for server in [Server::jobd(), Server::gearmand()] {
        let port = server.port();
        let _w = jobc_worker(port, "rev", None, &["rev"]);
        let out = jobc(port, &["-f", "rev"], b"stressed\n");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "desserts", "{out:?}");
        // One job per line.
        let out = jobc(port, &["-f", "rev", "-n"], b"abc\nxyz\n");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "cba\nzyx\n", "{out:?}");
        // Arguments as workloads, background submission.
        let out = jobc(port, &["-f", "later", "-b", "one"], b"");
        assert!(
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).starts_with("Task created: H:"),
            "{out:?}"
        );
    }
}

#[test]
fn gearman_tool_client_with_jobc_worker_on_jobd() {
    let server = Server::jobd();
    let port = server.port();
    let _w = jobc_worker(port, "upper", None, &["tr", "a-z", "A-Z"]);
    let bin = peers::require_binary("gearman", "gearman-tools").unwrap();
    let mut cli = Command::new(bin)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-f", "upper"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    cli.stdin.take().unwrap().write_all(b"loud").unwrap();
    assert_eq!(cli.wait_with_output().unwrap().stdout, b"LOUD");
}

#[test]
fn exit_status_reports_failure_and_timeout() {
    let server = Server::jobd();
    let port = server.port();
    let _w = jobc_worker(port, "fails", None, &["false"]);
    let out = jobc(port, &["-f", "fails", "-s"], b"");
    assert!(!out.status.success(), "a failed job must fail jobc: {out:?}");
    let out = jobc(port, &["-f", "nobody", "-t", "100", "x"], b"");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("deadline"), "{out:?}");
    let out = Command::new(JOBC).args(["-f"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "usage error");
}

#[test]
fn a_worker_killed_mid_job_loses_nothing() {
    for server in [Server::jobd(), Server::gearmand()] {
        let port = server.port();
        // The first worker takes the job and hangs; it is killed with SIGKILL mid-job.
        let mut hung = jobc_worker(port, "job", None, &["sleep", "600"]);
        let client = std::thread::spawn(move || jobc(port, &["-f", "job", "payload"], b""));
        wait_until("the job runs", || {
            admin(port, "status").iter().any(|l| l.starts_with("job\t1\t1\t"))
        });
        hung.0.kill().unwrap();
        hung.0.wait().unwrap();
        // Another worker picks up the requeued job.
        let _good = jobc_worker(port, "job", Some(1), &["tr", "a-z", "A-Z"]);
        let out = client.join().unwrap();
        assert_eq!(out.stdout, b"PAYLOAD", "{out:?}");
        assert!(out.status.success());
    }
}
