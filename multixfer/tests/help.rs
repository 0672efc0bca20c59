//! `mxfer` answers `--help` with every flag in curl's words, `--version`, and refuses an
//! unknown flag with exit status 2, naming it.

use std::process::Command;

#[test]
fn mxfer_lists_curls_flags() {
    let mxfer = env!("CARGO_BIN_EXE_mxfer");
    let out = Command::new(mxfer).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--url",
        "-K, --config",
        "-Z, --parallel",
        "--parallel-immediate",
        "--parallel-max",
        "--http1.1",
        "--http2",
        "--http2-prior-knowledge",
        "-o, --output",
        "-O, --remote-name",
        "--output-dir",
        "-L, --location",
        "--max-redirs",
        "-m, --max-time",
        "--connect-timeout",
        "-Y, --speed-limit",
        "-y, --speed-time",
        "-H, --header",
        "-d, --data",
        "-X, --request",
        "-I, --head",
        "-s, --silent",
        "-k, --insecure",
        "--cacert",
        "-v, --verbose",
        "-h, --help",
        "-V, --version",
    ] {
        assert!(help.contains(flag), "mxfer --help does not name {flag}:\n{help}");
    }
    let out = Command::new(mxfer).arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = Command::new(mxfer).args(["--no-such-flag", "http://127.0.0.1:9/"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
    let out = Command::new(mxfer).args(["--max-time", "soon", "http://127.0.0.1:9/"]).output();
    let out = out.unwrap();
    assert_eq!(out.status.code(), Some(2), "a bad value is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-time"));
}
