//! The admin protocol byte for byte against gearmand 1.1.20: the same state on both servers,
//! the same commands, the same bytes back (descriptors, pids, versions and listing order
//! aside); `gearadmin` and our `jobadmin` print the same for every flag.

#![cfg(feature = "server")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::{Jobd, Raw};
use jobclient::proto::PacketType as T;
use peers::Gearmand;

/// One admin command on a connection of its own; the exact bytes of its answer (up to the
/// `.` line of a listing, or one line).
fn exact(addr: SocketAddr, command: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "{command}\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut all = String::new();
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "{command:?}: closed after {all:?}");
        let single = all.is_empty() && (line.starts_with("OK") || line.starts_with("ERR"));
        all.push_str(&line);
        if single || line == ".\n" {
            return all;
        }
    }
}

/// A listing with its rows sorted (the servers' orders differ: gearmand's is hash order) and
/// the first field of `workers` rows (a descriptor) replaced. Every line keeps its own ending
/// (`\n` or `\r\n`, as each server wrote it), so the comparison is of bytes.
fn normalized(command: &str, answer: &str) -> String {
    let mut rows: Vec<String> = answer
        .split_inclusive('\n')
        .map(|l| {
            if command == "workers" && l != ".\n" {
                let (_, rest) = l.split_once(' ').unwrap();
                format!("FD {rest}")
            } else {
                l.to_string()
            }
        })
        .collect();
    if rows.last().is_some_and(|l| l == ".\n") {
        rows.pop();
        rows.sort();
        // `workers` lists every connection, and how many admin connections of this test a
        // server has yet to see closed is timing: each distinct row counts once.
        if command == "workers" {
            rows.dedup();
        }
        rows.push(".\n".into());
    }
    rows.concat()
}

/// The same state on a server: two background jobs of `f` (one high with a unique ID, one
/// low without), a worker named "w one" that can do `f` and `g`. The connections stay open.
fn populate(addr: SocketAddr) -> Vec<Raw> {
    let mut client = Raw::connect(addr);
    client.send(T::SubmitJobHighBg, &[b"f", b"u1", b"x"]);
    assert_eq!(client.recv().kind(), T::JobCreated);
    client.send(T::SubmitJobLowBg, &[b"f", b"", b"y"]);
    assert_eq!(client.recv().kind(), T::JobCreated);
    let mut worker = Raw::connect(addr);
    worker.send(T::SetClientId, &[b"w one"]);
    worker.send(T::CanDo, &[b"f"]);
    worker.send(T::CanDo, &[b"g"]);
    worker.send(T::EchoReq, &[b"registered"]);
    assert_eq!(worker.recv().kind(), T::EchoRes);
    vec![client, worker]
}

/// `verbose` names the log level: the same level on both servers (gearmand's `--verbose`,
/// which jobd takes too) answers the same bytes.
#[test]
fn verbose_answers_as_gearmand_at_the_same_level() {
    // The peer helper starts gearmand at --verbose=ERROR.
    let gearmand = Gearmand::start(&[]).unwrap();
    let jobd = Jobd::start(&["--verbose=ERROR"], None);
    assert_eq!(exact(gearmand.addr(), "verbose"), "OK ERROR\n");
    assert_eq!(exact(jobd.addr(), "verbose"), exact(gearmand.addr(), "verbose"));
    // And jobd's default (info), and -v (debug), by gearmand's names.
    assert_eq!(exact(Jobd::start(&[], None).addr(), "verbose"), "OK INFO\n");
    assert_eq!(exact(Jobd::start(&["-v"], None).addr(), "verbose"), "OK DEBUG\n");
    assert_eq!(
        exact(Jobd::start(&["--verbose", "warning"], None).addr(), "verbose"),
        "OK WARNING\n"
    );
}

#[test]
fn admin_answers_match_gearmand_byte_for_byte() {
    let gearmand = Gearmand::start(&[]).unwrap();
    let jobd = Jobd::start(&[], None);
    let _g = populate(gearmand.addr());
    let mut j = populate(jobd.addr());
    let same = [
        "status",
        "STATUS",
        "prioritystatus",
        "workers",
        "show unique jobs",
        "create function newf",
        "status",
        "drop function newf",
        "drop function nosuch",
        "drop function f",
        "cancel job H:nowhere:1",
        "maxqueue f 5",
        "maxqueue f 1 2 3",
        "maxqueue f x",
        "maxqueue",
        "create function",
        "drop function",
        "drop",
        "show",
        "show unique",
        "show nothing",
        "cancel job",
        "cancel jobs x",
        "bogus",
        "",
    ];
    for command in same {
        let (ours, theirs) = (exact(jobd.addr(), command), exact(gearmand.addr(), command));
        assert_eq!(
            normalized(command, &ours),
            normalized(command, &theirs),
            "{command:?}: ours {ours:?}, gearmand's {theirs:?}"
        );
    }
    // Values that differ by nature keep gearmand's shape.
    for (command, prefix) in [("getpid", "OK "), ("version", "OK ")] {
        let ours = exact(jobd.addr(), command);
        let theirs = exact(gearmand.addr(), command);
        assert!(
            ours.starts_with(prefix) && ours.ends_with('\n') && !ours.ends_with("\r\n"),
            "{ours:?}"
        );
        assert!(theirs.starts_with(prefix) && theirs.ends_with('\n') && !theirs.ends_with("\r\n"));
    }
    assert_eq!(exact(jobd.addr(), "getpid"), format!("OK {}\n", jobd.0.id()));
    // `show jobs`: both list the two jobs, queued (the handles are each server's own).
    for addr in [jobd.addr(), gearmand.addr()] {
        let rows = exact(addr, "show jobs");
        let queued: Vec<_> = rows.lines().filter(|l| l.ends_with("\t0\t0\t1")).collect();
        assert_eq!(queued.len(), 2, "{rows:?}");
    }
    // Where we differ on purpose: a function with jobs queued is not dropped (gearmand says
    // OK and strands the jobs where no worker can reach them).
    // The worker gives up its functions (its echo answered: the server has seen it).
    j[1].send(T::ResetAbilities, &[]);
    j[1].send(T::EchoReq, &[b"reset"]);
    assert_eq!(j[1].recv().kind(), T::EchoRes);
    assert_eq!(exact(jobd.addr(), "drop function f"), "ERR there are still queued jobs\r\n");
}

fn program(bin: &str, port: u16, args: &[&str]) -> (String, String, i32) {
    let out = Command::new(bin)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (text(&out.stdout), text(&out.stderr), out.status.code().unwrap_or(-1))
}

#[test]
fn jobadmin_prints_what_gearadmin_prints() {
    let gearadmin = peers::require_binary("gearadmin", "gearman-tools").unwrap();
    let gearadmin = gearadmin.to_str().unwrap();
    let jobadmin = env!("CARGO_BIN_EXE_jobadmin");
    let jobd = Jobd::start(&[], None);
    let _conns = populate(jobd.addr());
    for flags in [
        &["--status"][..],
        &["--priority-status"],
        &["--workers"],
        &["--show-unique-jobs"],
        &["--show-jobs"],
        &["--getpid"],
        &["--server-version"],
        &["--server-verbose"],
        &["--create-function", "made"],
        &["--drop-function", "made"],
        &["--drop-function", "nosuch"],
        &["--cancel-job", "H:nowhere:9"],
        &["--status", "--workers", "--getpid", "--server-version", "--priority-status"],
    ] {
        // Each program meets the same state: a function to drop is there for both.
        let setup = || {
            if flags == ["--drop-function", "made"] {
                assert_eq!(exact(jobd.addr(), "create function made"), "OK\r\n");
            }
        };
        setup();
        let theirs = program(gearadmin, jobd.1, flags);
        setup();
        let ours = program(jobadmin, jobd.1, flags);
        if flags.contains(&"--workers") {
            // Each program sees its own connection (its descriptor the server's choice), and
            // maybe the other's not yet closed.
            let rows = |out: &str| {
                let mut r: Vec<String> = out
                    .lines()
                    .map(|l| match l.split_once(' ') {
                        Some((fd, rest)) if fd.parse::<u32>().is_ok() => format!("FD {rest}"),
                        _ => l.to_string(),
                    })
                    .collect();
                r.sort();
                r.dedup();
                r
            };
            assert_eq!(rows(&ours.0), rows(&theirs.0), "{flags:?}");
            assert_eq!((&ours.1, ours.2), (&theirs.1, theirs.2), "{flags:?}");
        } else {
            assert_eq!(ours, theirs, "{flags:?}");
        }
    }
    // Against gearmand too, for the flags whose answers are the same on every server.
    let gearmand = Gearmand::start(&[]).unwrap();
    for flags in
        [&["--getpid"][..], &["--server-version"], &["--cancel-job", "H:x:1"], &["--status"]]
    {
        assert_eq!(
            program(jobadmin, gearmand.port(), flags),
            program(gearadmin, gearmand.port(), flags)
        );
    }
    // Ours stops jobd; a server that cannot be reached is exit 1, as gearadmin's.
    let (_, _, code) = program(jobadmin, jobd.1, &["--shutdown-graceful"]);
    assert_eq!(code, 0);
    let (_, err, code) = program(jobadmin, peers::free_port().unwrap(), &["--status"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("Error: "), "{err}");
}

/// `Admin`'s methods for the commands gearadmin has, on both servers.
#[test]
fn the_admin_client_on_both_servers() {
    let gearmand = Gearmand::start(&[]).unwrap();
    let jobd = Jobd::start(&[], None);
    for addr in [gearmand.addr(), jobd.addr()] {
        let _conns = populate(addr);
        common::block_on(|h| {
            Box::pin(async move {
                let admin = jobclient::Admin::connect(addr, &h).await.unwrap();
                let rows = admin.priority_status().await.unwrap();
                let f = rows.iter().find(|r| r.function == "f").unwrap();
                assert_eq!((f.high, f.normal, f.low, f.workers), (1, 0, 1, 1), "{addr}");
                let mut uniques = admin.show_unique_jobs().await.unwrap();
                uniques.sort();
                assert_eq!(uniques, ["", "u1"], "{addr}");
                admin.create_function("made").await.unwrap();
                assert!(admin.status().await.unwrap().iter().any(|r| r.function == "made"));
                admin.drop_function("made").await.unwrap();
                assert!(!admin.status().await.unwrap().iter().any(|r| r.function == "made"));
                assert!(matches!(
                    admin.drop_function("f").await,
                    Err(jobclient::Error::Server { .. })
                ));
                let workers = admin.workers().await.unwrap();
                let w = workers.iter().find(|w| w.client_id == "w one").unwrap();
                assert_eq!(w.functions, ["g", "f"], "{addr}");
                let level = admin.verbose().await.unwrap();
                assert!(["ERROR", "WARNING", "INFO", "DEBUG"].contains(&level.as_str()), "{level}");
                assert!(admin.drop_function("two words").await.is_err(), "refused before sending");
            })
        });
    }
}

/// A client cannot name a function or a unique ID so that a listing ends early or reads as
/// an answer: such a name's first character is shown as `?` (gearmand shows it as it is).
#[test]
fn names_cannot_forge_the_end_of_a_listing_or_an_answer() {
    let jobd = Jobd::start(&[], None);
    let mut c = Raw::connect(jobd.addr());
    for (f, u) in [(&b"ERR x"[..], &b"."[..]), (b"OK", b"ERR y"), (b"a", b"")] {
        c.send(T::SubmitJobBg, &[f, u, b"x"]);
        assert_eq!(c.recv().kind(), T::JobCreated);
    }
    assert_eq!(exact(jobd.addr(), "status"), "?K\t1\t0\t0\n?RR x\t1\t0\t0\na\t1\t0\t0\n.\n");
    let mut uniques: Vec<String> =
        exact(jobd.addr(), "show unique jobs").lines().map(String::from).collect();
    uniques.sort();
    assert_eq!(uniques, ["", ".", "?", "?RR y"]);
    let addr = jobd.addr();
    common::block_on(|h| {
        Box::pin(async move {
            let admin = jobclient::Admin::connect(addr, &h).await.unwrap();
            assert_eq!(admin.status().await.unwrap().len(), 3);
            assert_eq!(admin.show_unique_jobs().await.unwrap().len(), 3);
        })
    });
}
