//! `jobd`: the embedded Gearman job server as a program.
//!
//! Flags follow gearmand's: `-L ADDRESS` (default 127.0.0.1), `-p PORT` (default 4730),
//! `-t THREADS` (accepted for compatibility; one event loop serves all connections), `-l LOG`
//! (`stderr`, or a file to append to; default: no log), and `-q FILE` / `--queue-file FILE`
//! to keep background jobs in a file across restarts. Stop it with the admin `shutdown`
//! command or a signal.
//!
//! Limits beyond gearmand's flags (see the server's "Limits and defaults"):
//! `--max-connections N` (default 65,536), `--admin-from ADDRESS[/BITS]` (repeatable):
//! the peers that may use `shutdown`, `cancel job` and `maxqueue`; default loopback only, and
//! `--queue-sync always|batch|never` (default batch): when the durable queue's records are
//! synced to disk, before `JOB_CREATED` (see `jobclient::QueueSync`).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use evcore::Executor;
use jobclient::Server;

const USAGE: &str = "usage: jobd [-L ADDRESS] [-p PORT] [-t THREADS] [-l stderr|FILE] \
                     [-q QUEUE_FILE] [--queue-sync always|batch|never] [--max-connections N] \
                     [--admin-from ADDRESS[/BITS]]... [-V]";

fn main() -> ExitCode {
    let mut ip: IpAddr = [127, 0, 0, 1].into();
    let mut port = 4730u16;
    let mut log: Option<String> = None;
    let mut queue: Option<String> = None;
    let mut limits = jobclient::Limits::default();
    let mut admin_from: Vec<(IpAddr, u8)> = Vec::new();
    let mut queue_sync = jobclient::QueueSync::Batch;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let parsed: Result<(), String> = match flag.as_str() {
            "-L" | "--listen" => {
                value().and_then(|v| v.parse().map(|v| ip = v).map_err(|e| format!("-L {v}: {e}")))
            }
            "-p" | "--port" => value()
                .and_then(|v| v.parse().map(|v| port = v).map_err(|e| format!("-p {v}: {e}"))),
            "-t" | "--threads" => value()
                .and_then(|v| v.parse::<u32>().map(|_| ()).map_err(|e| format!("-t {v}: {e}"))),
            "-l" | "--log-file" => value().map(|v| log = Some(v)),
            "-q" | "--queue-file" => value().map(|v| queue = Some(v)),
            "--queue-sync" => value().and_then(|v| v.parse().map(|q| queue_sync = q)),
            "--max-connections" => value().and_then(|v| {
                v.parse()
                    .map(|n| limits.max_connections = n)
                    .map_err(|e| format!("{flag} {v}: {e}"))
            }),
            "--admin-from" => value()
                .and_then(|v| jobclient::Limits::parse_prefix(&v).map(|p| admin_from.push(p))),
            "-V" | "--version" => {
                println!("{}", jobclient::VERSION);
                return ExitCode::SUCCESS;
            }
            "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => Err(format!("unknown flag {other}\n{USAGE}")),
        };
        if let Err(e) = parsed {
            eprintln!("jobd: {e}");
            return ExitCode::from(2);
        }
    }
    if !admin_from.is_empty() {
        limits.admin_from = admin_from;
    }
    match serve(SocketAddr::new(ip, port), log, queue, limits, queue_sync) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jobd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(
    addr: SocketAddr,
    log: Option<String>,
    queue: Option<String>,
    limits: jobclient::Limits,
    queue_sync: jobclient::QueueSync,
) -> std::io::Result<()> {
    let ex = Executor::new()?;
    let h = ex.handle();
    let server = Server::bind(addr, &h)?;
    server.limits(limits);
    server.queue_sync(queue_sync);
    match log.as_deref() {
        None => {}
        Some("stderr") => server.log_to(|line| eprintln!("jobd: {line}")),
        Some(path) => {
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
            server.log_to(move |line| {
                let _ = writeln!(file, "{line}");
            });
        }
    }
    if let Some(path) = queue {
        let restored = server.durable_queue(&path)?;
        eprintln!("jobd: durable queue {path}: {restored} background jobs restored");
    }
    eprintln!("jobd: listening on {}", server.local_addr()?);
    ex.block_on(server.run())
}
