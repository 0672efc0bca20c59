//! `groupd [--socket PATH] [--mode OCTAL] [--allow-uid UID]...`: the local group daemon.
//! Processes on this host that connect to its socket form closed process groups with CPG's
//! ordering and membership rules. The socket defaults to `$GROUPMSG_SOCKET`, else
//! `$XDG_RUNTIME_DIR/groupd.sock`, else `/run/groupd.sock`; it is created with `--mode`
//! (default 0660), and only processes of the `--allow-uid` uids (default: the daemon's own and
//! root) may join. A member that holds flow control on for more than `--max-stall` seconds
//! (default 10) because it stopped reading is disconnected and reported as PROCDOWN.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut socket: Option<PathBuf> = None;
    let mut mode = groupmsg::DEFAULT_MODE;
    let mut uids: Vec<u32> = Vec::new();
    let mut max_stall: Option<f64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--socket" => match args.next() {
                Some(p) => socket = Some(PathBuf::from(p)),
                None => return usage("--socket needs a path"),
            },
            "--mode" => match args.next().and_then(|m| u32::from_str_radix(&m, 8).ok()) {
                Some(m) if m <= 0o777 => mode = m,
                _ => return usage("--mode needs an octal mode such as 0660"),
            },
            "--allow-uid" => match args.next().and_then(|u| u.parse().ok()) {
                Some(u) => uids.push(u),
                None => return usage("--allow-uid needs a numeric uid"),
            },
            "--max-stall" => match args.next().and_then(|s| s.parse::<f64>().ok()) {
                Some(secs) if secs > 0.0 && secs.is_finite() => max_stall = Some(secs),
                _ => return usage("--max-stall needs a number of seconds"),
            },
            "--help" => return usage(""),
            other => return usage(&format!("unknown argument {other}")),
        }
    }
    let path = socket.unwrap_or_else(groupmsg::default_socket_path);
    let mut daemon = match groupmsg::Groupd::bind_with_mode(&path, mode) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("groupd: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    if !uids.is_empty() {
        daemon.allow_uids(uids);
    }
    if let Some(secs) = max_stall {
        daemon.bus().set_max_stall(std::time::Duration::from_secs_f64(secs));
    }
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
    eprintln!(
        "usage: groupd [--socket PATH] [--mode OCTAL] [--allow-uid UID]... [--max-stall SECONDS]"
    );
    ExitCode::from(2)
}
