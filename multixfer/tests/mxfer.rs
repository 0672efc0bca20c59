//! The `mxfer` program against nginx: globs, config lists, output files, the summary line and
//! the exit status.

mod common;

use std::process::Command;

use common::nginx;

fn mxfer(args: &[&str]) -> (bool, String, Vec<u8>) {
    let out = Command::new(env!("CARGO_BIN_EXE_mxfer")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned(), out.stdout)
}

#[test]
fn globs_lists_outputs_and_failures() {
    let server = nginx(1_000_000);
    for i in 1..=300 {
        std::fs::write(server.root().join(format!("f{i}")), format!("body {i}")).unwrap();
    }
    let dir = peers::scratch_dir("mxfer-out").unwrap();
    let (ok, err, _) = mxfer(&[
        "--parallel-max",
        "20",
        "--output-dir",
        dir.to_str().unwrap(),
        &server.url("f[1-300]"),
    ]);
    assert!(ok, "{err}");
    for i in 1..=300 {
        assert_eq!(
            std::fs::read(dir.join(format!("f{i}"))).unwrap(),
            format!("body {i}").as_bytes()
        );
    }
    assert!(err.contains("transfers 300 failures 0"), "summary: {err}");
    assert!(err.contains("req/s"), "summary: {err}");

    // A curl-style config list, to /dev/null and to a named file.
    let list = dir.join("list");
    let named = dir.join("named");
    std::fs::write(
        &list,
        format!(
            "url = \"{}\"\noutput = \"/dev/null\"\nurl = \"{}\"\noutput = \"{}\"\n{}\n-o /dev/null\n",
            server.url("f1"),
            server.url("f2"),
            named.display(),
            server.url("f3")
        ),
    )
    .unwrap();
    let (ok, err, stdout) = mxfer(&["-K", list.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(err.contains("transfers 3 failures 0"), "{err}");
    assert!(stdout.is_empty());
    assert_eq!(std::fs::read(&named).unwrap(), b"body 2");

    // Redirects with -L, a body to stdout, HEAD with -I.
    let (ok, _, stdout) = mxfer(&["-s", "-L", &server.url("r1")]);
    assert!(ok);
    assert_eq!(stdout, b"pong");
    let (ok, _, stdout) = mxfer(&["-s", "-I", &server.url("f1")]);
    assert!(ok);
    assert!(stdout.is_empty());

    // Any failure makes the exit status non-zero and is counted.
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (ok, err, _) = mxfer(&[&server.url("f1"), &format!("http://127.0.0.1:{refused}/x")]);
    assert!(!ok);
    assert!(err.contains("transfers 2 failures 1"), "{err}");
    // A bad flag is a usage error.
    let (ok, err, _) = mxfer(&["--no-such-flag"]);
    assert!(!ok && err.contains("--no-such-flag"), "{err}");
}
