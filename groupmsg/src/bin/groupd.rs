//! `groupd [--socket PATH]`: the local group daemon. Processes on this host that connect to
//! its socket form closed process groups with CPG's ordering and membership rules.
//! The socket defaults to `$GROUPMSG_SOCKET`, else `$XDG_RUNTIME_DIR/groupd.sock`, else
//! `/run/groupd.sock`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut socket: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--socket" => match args.next() {
                Some(p) => socket = Some(PathBuf::from(p)),
                None => return usage("--socket needs a path"),
            },
            "--help" => return usage(""),
            other => return usage(&format!("unknown argument {other}")),
        }
    }
    let path = socket.unwrap_or_else(groupmsg::default_socket_path);
    let daemon = match groupmsg::Groupd::bind(&path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("groupd: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    eprintln!("groupd: listening on {}", path.display());
    match daemon.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("groupd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    if !problem.is_empty() {
        eprintln!("groupd: {problem}");
    }
    eprintln!("usage: groupd [--socket PATH]");
    ExitCode::from(2)
}
