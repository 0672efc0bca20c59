//! `groupd [--socket PATH] [--mode OCTAL] [--allow-uid UID]... [--max-stall SECONDS] [-v]`
//! (`--help` lists the flags): the local group daemon.
//! Processes on this host that connect to its socket form closed process groups with CPG's
//! ordering and membership rules. The socket defaults to `$GROUPMSG_SOCKET`, else
//! `$XDG_RUNTIME_DIR/groupd.sock`, else `/run/groupd.sock`; it is created with `--mode`
//! (default 0660), and only processes of the `--allow-uid` uids (default: the daemon's own and
//! root) may join. A member that holds flow control on for more than `--max-stall` seconds
//! (default 10) because it stopped reading is disconnected and reported as PROCDOWN.
//!
//! It runs on one thread, a task per connection, and raises its soft limit on open files to
//! the hard limit at start (one descriptor per member; the usual soft limit of 1,024 would
//! otherwise cap it near a thousand members).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// The local group daemon: closed process groups for the processes of this host.
#[derive(Parser, Debug)]
#[command(name = "groupd", version)]
struct Args {
    /// The socket to listen on [default: $GROUPMSG_SOCKET, else $XDG_RUNTIME_DIR/groupd.sock,
    /// else /run/groupd.sock].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// The socket file's mode, in octal.
    #[arg(long, value_name = "OCTAL", value_parser = mode, default_value = "0660")]
    mode: u32,
    /// A uid whose processes may join (repeatable) [default: the daemon's own and root].
    #[arg(long = "allow-uid", value_name = "UID")]
    allow_uids: Vec<u32>,
    /// Disconnect (as PROCDOWN) a member that holds flow control on this long, in seconds,
    /// because it stopped reading [default: 10].
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    max_stall: Option<Duration>,
    /// More detail on standard error: -v for debug, -vv for trace (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn mode(m: &str) -> Result<u32, String> {
    u32::from_str_radix(m, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("not an octal mode such as 0660: {m:?}"))
}

fn seconds(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0 && s.is_finite())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("not a positive number of seconds: {s:?}"))
}

/// Exit status: 1 when the socket cannot be bound or breaks, 2 for a usage error.
fn main() -> ExitCode {
    let args = Args::parse();
    let mut log = env_logger::Builder::new();
    log.filter_level(match args.verbose {
        0 => log::LevelFilter::Info,
        1 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    });
    if let Ok(spec) = std::env::var("RUST_LOG") {
        log.parse_filters(&spec);
    }
    log.init();
    raise_nofile();
    let path = args.socket.unwrap_or_else(groupmsg::default_socket_path);
    let mut daemon = match groupmsg::Groupd::bind_with_mode(&path, args.mode) {
        Ok(d) => d,
        Err(e) => {
            log::error!("{}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    if !args.allow_uids.is_empty() {
        daemon.allow_uids(args.allow_uids);
    }
    if let Some(stall) = args.max_stall {
        daemon.bus().set_max_stall(stall);
    }
    log::info!("listening on {}", path.display());
    match daemon.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The soft limit on open files raised to the hard one: a descriptor per member.
fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            log::warn!("cannot raise the open-file limit: {e}");
        }
    }
}
