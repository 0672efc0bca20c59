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
        ],
    );
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
            "-v, --verbose",
            "-q, --queue-file",
            "--queue-sync",
            "--max-connections",
            "--admin-from",
            "-h, --help",
            "-V, --version",
        ],
    );
    // A bad value names the flag too.
    let (code, _, err) = run(env!("CARGO_BIN_EXE_jobd"), &["--queue-sync", "sometimes"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--queue-sync"), "{err}");
}
