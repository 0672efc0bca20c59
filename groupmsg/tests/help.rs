//! `groupd` and `groupcat` answer `--help` with every flag, `--version`, and refuse an
//! unknown flag with exit status 2, naming it.

use std::process::Command;

fn check(program: &str, flags: &[&str]) {
    let out = Command::new(program).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{program} --help");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in flags {
        assert!(help.contains(flag), "{program} --help does not name {flag}:\n{help}");
    }
    let out = Command::new(program).arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = Command::new(program).args(["--no-such-flag", "g"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{program}: an unknown flag is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
}

#[test]
fn groupd_lists_its_flags() {
    check(
        env!("CARGO_BIN_EXE_groupd"),
        &["--socket", "--mode", "--allow-uid", "--max-stall", "-v, --verbose", "-h, --help"],
    );
    let out = Command::new(env!("CARGO_BIN_EXE_groupd")).args(["--mode", "999"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a bad mode is a usage error");
}

#[test]
fn groupcat_lists_its_flags() {
    check(
        env!("CARGO_BIN_EXE_groupcat"),
        &[
            "<GROUP>",
            "--socket",
            "--corosync",
            "--json",
            "--reconnect",
            "--totem",
            "--safe",
            "-v, --verbose",
            "-h, --help",
        ],
    );
}
