//! `jobd`: the embedded Gearman job server as a program, with gearmand's flags.
//!
//! `jobd --help` lists every flag. In short: `-L ADDRESS` (default 127.0.0.1), `-p PORT`
//! (default 4730), `-t THREADS` (accepted for compatibility; one event loop serves all
//! connections), `-l stderr|FILE` (where the log goes; default stderr), `-v` (more detail,
//! repeatable; `RUST_LOG` filters further), `-q FILE` / `--queue-file FILE` to keep
//! background jobs in a file across restarts, and the limits beyond gearmand's flags (see the
//! server's "Limits and defaults"): `--max-connections N` (default 65,536),
//! `--admin-from ADDRESS[/BITS]` (repeatable: the peers that may use `shutdown`,
//! `cancel job` and `maxqueue`; default loopback only) and `--queue-sync always|batch|never`
//! (default batch: when the durable queue's records are synced, before `JOB_CREATED`).
//!
//! Exit status: 0 after a `shutdown`, 1 when the server cannot start or fails, 2 for a
//! usage error (an unknown flag, a bad value: the message names it).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use evcore::Executor;
use jobclient::{QueueSync, Server};

/// A Gearman job server (gearmand's protocol, flags and admin commands).
#[derive(Parser, Debug)]
#[command(name = "jobd", version)]
struct Args {
    /// Address to listen on.
    #[arg(short = 'L', long = "listen", value_name = "ADDRESS", default_value = "127.0.0.1")]
    listen: IpAddr,
    /// Port to listen on.
    #[arg(short, long, default_value_t = 4730)]
    port: u16,
    /// I/O threads: accepted for gearmand compatibility; one event loop serves everything.
    #[arg(short, long, value_name = "THREADS")]
    threads: Option<u32>,
    /// Where the log goes: `stderr`, or a file to append to.
    #[arg(short = 'l', long = "log-file", value_name = "stderr|FILE", default_value = "stderr")]
    log_file: String,
    /// More detail in the log: -v for debug, -vv for trace (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Keep background jobs in FILE, synced before they are acknowledged, across restarts.
    #[arg(short = 'q', long = "queue-file", value_name = "FILE")]
    queue_file: Option<PathBuf>,
    /// When the durable queue's records reach the disk: after each packet, once per batch
    /// read, or left to the kernel.
    #[arg(long, value_name = "always|batch|never", default_value = "batch")]
    queue_sync: QueueSync,
    /// The most client and worker connections at once; more are refused.
    #[arg(long, value_name = "N", default_value_t = jobclient::Limits::default().max_connections)]
    max_connections: usize,
    /// Peers allowed `shutdown`, `cancel job` and `maxqueue` (repeatable; default loopback).
    #[arg(long, value_name = "ADDRESS[/BITS]", value_parser = jobclient::Limits::parse_prefix)]
    admin_from: Vec<(IpAddr, u8)>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = init_log(&args.log_file, args.verbose) {
        eprintln!("jobd: {}: {e}", args.log_file);
        return ExitCode::FAILURE;
    }
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The log, through the `log` facade: info and up by default, debug with -v, trace with -vv,
/// `RUST_LOG` (env_logger's syntax: `jobclient=debug`) over both; to standard error, or
/// appended to a file.
fn init_log(dest: &str, verbose: u8) -> std::io::Result<()> {
    let mut log = env_logger::Builder::new();
    log.filter_level(match verbose {
        0 => log::LevelFilter::Info,
        1 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    });
    if let Ok(spec) = std::env::var("RUST_LOG") {
        log.parse_filters(&spec);
    }
    if dest != "stderr" {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(dest)?;
        log.target(env_logger::Target::Pipe(Box::new(file)));
    }
    log.init();
    Ok(())
}

fn serve(args: Args) -> std::io::Result<()> {
    let mut limits = jobclient::Limits::default();
    limits.max_connections = args.max_connections;
    if !args.admin_from.is_empty() {
        limits.admin_from = args.admin_from;
    }
    let ex = Executor::new()?;
    let h = ex.handle();
    let server = Server::bind(SocketAddr::new(args.listen, args.port), &h)?;
    server.limits(limits);
    server.queue_sync(args.queue_sync);
    if let Some(path) = &args.queue_file {
        let restored = server.durable_queue(path)?;
        log::info!("durable queue {}: {restored} background jobs restored", path.display());
    }
    log::info!("listening on {}", server.local_addr()?);
    ex.block_on(server.run())
}
