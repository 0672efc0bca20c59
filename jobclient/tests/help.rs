//! `jobc` and `jobd` answer `--help` with every flag, `--version`, and refuse an unknown flag
//! with exit status 2, naming it.
#![cfg(feature = "server")]

use std::process::Command;

fn run(program: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(program).args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn check(program: &str, flags: &[&str]) {
    let (code, help, _) = run(program, &["--help"]);
    assert_eq!(code, Some(0), "{program} --help");
    for flag in flags {
        assert!(help.contains(flag), "{program} --help does not name {flag}:\n{help}");
    }
    let (code, version, _) = run(program, &["--version"]);
    assert_eq!(code, Some(0));
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    let (code, _, err) = run(program, &["--no-such-flag"]);
    assert_eq!(code, Some(2), "{program}: an unknown flag is a usage error");
    assert!(err.contains("--no-such-flag"), "{program} names the flag: {err}");
}

#[test]
fn jobc_lists_the_gearman_tools_flags() {
    check(
        env!("CARGO_BIN_EXE_jobc"),
        &[
            "-h, --host",
            "-p, --port",
            "-f, --function",
            "-u, --unique",
            "-b, --background",
            "-I, --high",
            "-L, --low",
            "-s, --no-stdin",
            "-n, --per-line",
            "-w, --worker",
            "-c, --count",
            "-t, --timeout",
            "-v, --verbose",
            "-H, --help",
            "-V, --version",
            "-S, --ssl",
            "--ssl-ca-file",
            "--ssl-certificate",
            "--ssl-key",
        ],
    );
    refuses_tls_it_cannot_use(env!("CARGO_BIN_EXE_jobc"), &["-f", "x", "-s"]);
    // `-h` is the host, as in gearman's tools: `-h` without a value is an error, not help.
    let (code, _, _) = run(env!("CARGO_BIN_EXE_jobc"), &["-h"]);
    assert_eq!(code, Some(2));
}

#[test]
fn jobd_lists_gearmands_flags_and_its_limits() {
    check(
        env!("CARGO_BIN_EXE_jobd"),
        &[
            "-L, --listen",
            "-p, --port",
            "-t, --threads",
            "-l, --log-file",
            "  -v...",
            "--verbose <LEVEL>",
            "-q, --queue-file",
            "--queue-sync",
            "--max-connections",
            "--admin-from",
            "-j, --job-retries",
            "-w, --worker-wakeup",
            "-R, --round-robin",
            "--keepalive",
            "--keepalive-idle",
            "--keepalive-interval",
            "--keepalive-count",
            "--shutdown-timeout",
            "--busy-poll",
            "-P, --pid-file",
            "--ssl",
            "--ssl-port",
            "--ssl-certificate",
            "--ssl-key",
            "--ssl-ca-file",
            "--ssl-verify-client",
            "--admin-cert",
            "--http",
            "--http-host",
            "-h, --help",
            "-V, --version",
        ],
    );
    // A TLS flag never gives a plaintext server: without the feature it is refused; with it,
    // `--ssl` without a certificate is.
    let port = peers::free_port().unwrap().to_string();
    let (code, _, err) = run(env!("CARGO_BIN_EXE_jobd"), &["--ssl", "-p", &port]);
    assert_eq!(code, Some(1), "{err}");
    if cfg!(feature = "rustls") {
        assert!(err.contains("--ssl-certificate"), "{err}");
    } else {
        assert!(err.contains("without TLS"), "{err}");
    }
    // A TLS file with no TLS port would be ignored: refused instead.
    let (code, _, err) =
        run(env!("CARGO_BIN_EXE_jobd"), &["--ssl-certificate", "/nonexistent", "-p", &port]);
    assert_eq!(code, Some(1), "{err}");
    if cfg!(feature = "rustls") {
        assert!(err.contains("without --ssl or --ssl-port"), "{err}");
    } else {
        assert!(err.contains("without TLS"), "{err}");
    }
    // A bad value names the flag too.
    let (code, _, err) = run(env!("CARGO_BIN_EXE_jobd"), &["--queue-sync", "sometimes"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--queue-sync"), "{err}");
}

/// The systemd unit's `ExecStart` flags are ones `jobd` takes, and `systemctl stop` (SIGTERM)
/// ends it with status 0. The paths and port are moved into a scratch directory.
#[test]
fn the_systemd_unit_starts_a_jobd_that_stops_cleanly() {
    let unit =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/jobd.service")).unwrap();
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("an ExecStart");
    let dir = peers::scratch_dir("jobd-unit").unwrap();
    let port = peers::free_port().unwrap().to_string();
    let mut args: Vec<String> = exec.split_whitespace().skip(1).map(String::from).collect();
    for i in 0..args.len().saturating_sub(1) {
        match args[i].as_str() {
            "-q" => args[i + 1] = dir.join("queue.log").to_string_lossy().into_owned(),
            "-p" => args[i + 1] = port.clone(),
            _ => {}
        }
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_jobd"))
        .args(&args)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Ready when the port answers `getpid` with this child's pid (another test's server could
    // have taken the port first).
    let answers = |pid: u32| {
        use std::io::{BufRead, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap()))
        else {
            return false;
        };
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
        let mut line = String::new();
        s.write_all(b"getpid\r\n").is_ok()
            && std::io::BufReader::new(s).read_line(&mut line).is_ok()
            && line.trim_end() == format!("OK {pid}")
    };
    let start = std::time::Instant::now();
    while !answers(child.id()) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("jobd {args:?} exited: {status:?}");
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "jobd did not start");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(dir.join("queue.log").exists(), "the unit's queue file was not used");
}

#[test]
fn jobadmin_lists_gearadmins_flags() {
    check(
        env!("CARGO_BIN_EXE_jobadmin"),
        &[
            "-h, --host",
            "-p, --port",
            "--server-version",
            "--server-verbose",
            "--create-function",
            "--cancel-job",
            "--drop-function",
            "--show-unique-jobs",
            "--show-jobs",
            "--getpid",
            "--status",
            "--priority-status",
            "--workers",
            "--shutdown",
            "--shutdown-graceful",
            "-S, --ssl",
            "--help",
            "-V, --version",
        ],
    );
    // No operation is a usage error, as in gearadmin; so is `-h` without a host.
    assert_eq!(run(env!("CARGO_BIN_EXE_jobadmin"), &[]).0, Some(2));
    assert_eq!(run(env!("CARGO_BIN_EXE_jobadmin"), &["-h"]).0, Some(2));
    refuses_tls_it_cannot_use(env!("CARGO_BIN_EXE_jobadmin"), &["--status"]);
}

/// Without the `rustls` feature, `-S` is refused (never plaintext); with it, TLS files
/// without `-S` are refused (they would be ignored). Either way before any connect: the port
/// here has nobody behind it, so a connect would fail differently.
fn refuses_tls_it_cannot_use(program: &str, rest: &[&str]) {
    let port = ["-p", "1"];
    let mut args = vec!["-S"];
    args.extend_from_slice(&port);
    args.extend_from_slice(rest);
    let (code, _, err) = run(program, &args);
    if cfg!(feature = "rustls") {
        // With TLS, `-S` is accepted and the connect fails (nothing listens on port 1).
        assert_eq!(code, Some(1), "{err}");
        assert!(!err.contains("no TLS"), "{err}");
        let mut args = vec!["--ssl-ca-file", "/nonexistent"];
        args.extend_from_slice(&port);
        args.extend_from_slice(rest);
        let (code, _, err) = run(program, &args);
        assert_eq!(code, Some(1));
        assert!(err.contains("without --ssl"), "{err}");
    } else {
        assert_eq!(code, Some(1));
        assert!(err.contains("no TLS"), "{err}");
    }
}
