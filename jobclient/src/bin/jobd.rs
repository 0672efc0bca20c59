//! `jobd`: the embedded Gearman job server as a program, with gearmand's flags.
//!
//! `jobd --help` lists every flag. In short: `-L ADDRESS` (default 127.0.0.1), `-p PORT`
//! (default 4730), `-t THREADS` (event loops, each on a thread of its own; default the
//! number of cores, as is 0; gearmand's default is 4 and its 0 a guess of its own), `-l
//! stderr|FILE` (where the log goes; default stderr), `--verbose LEVEL` (gearmand's level
//! names; default INFO) or `-v` (more detail, repeatable, over `--verbose`; `RUST_LOG`
//! filters further; `--verbose` without a level, the count it was before, is now an error
//! naming the levels), `-q FILE` / `--queue-file FILE` to keep
//! background jobs in a file across restarts, and the limits beyond gearmand's flags (see the
//! server's "Limits and defaults"): `--max-connections N` (default 65,536),
//! `--admin-from ADDRESS[/BITS]` (repeatable: the peers that may use `shutdown`,
//! `cancel job` and `maxqueue`; default loopback only) and `--queue-sync always|batch|never`
//! (default batch: when the durable queue's records are synced, before `JOB_CREATED`).
//! gearmand's scheduling flags: `-j N` (drop a job after N attempts), `-w N` (wake N sleeping
//! workers per job; 0 all), `-R` (round robin), `--keepalive` and its `-idle`, `-interval`,
//! `-count`; see [`jobclient::Policy`].
//!
//! # Stopping
//!
//! SIGTERM, SIGINT or SIGUSR1 (or admin `shutdown graceful`) begins a graceful shutdown: the
//! listener closes, nothing more is handed out or accepted, running jobs finish and their
//! replies are written (for up to `--shutdown-timeout`, default 30 s), background jobs stay in
//! the durable queue, and the exit status is 0. A second signal, or admin `shutdown`, stops at
//! once. A deliberate difference: gearmand drains only on SIGUSR1, and SIGTERM or SIGINT stop
//! it at once, cutting off the clients of running jobs; here the signal a service manager
//! sends is the one that loses nothing (`tests/shutdown.rs` shows both servers side by
//! side). SIGUSR1 is gearmand's graceful signal and so is ours: it does not reopen the log,
//! as some daemons' SIGUSR1 does. `-P FILE` writes the pid to FILE and removes it at exit. `jobd.service` beside this
//! crate's README is a systemd unit for it.
//!
//! Exit status: 0 after a shutdown, 1 when the server cannot start or fails, 2 for a
//! usage error (an unknown flag, a bad value: the message names it).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use evcore::{signal, Executor, Signals};
use jobclient::{Policy, QueueSync, Server};

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
    /// Event loops serving connections, each on a thread of its own (default, and 0: the
    /// cores; at most 1024; gearmand's default is 4).
    #[arg(short, long, value_name = "THREADS",
          value_parser = clap::value_parser!(u16).range(0..=1024))]
    threads: Option<u16>,
    /// Where the log goes: `stderr`, or a file to append to.
    #[arg(short = 'l', long = "log-file", value_name = "stderr|FILE", default_value = "stderr")]
    log_file: String,
    /// More detail in the log: -v for debug, -vv for trace (RUST_LOG overrides).
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    more: u8,
    /// The log's level by gearmand's names: FATAL, ALERT, CRITICAL, ERROR, WARNING, NOTICE,
    /// INFO, DEBUG (default INFO; FATAL to CRITICAL log as ERROR, NOTICE as INFO, and admin
    /// `verbose` names the level logged; -v overrides it).
    #[arg(long, value_name = "LEVEL", value_parser = parse_level)]
    verbose: Option<log::LevelFilter>,
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
    /// Peers allowed `shutdown`, `cancel job`, `maxqueue`, `create`/`drop function`
    /// (repeatable; default loopback).
    #[arg(long, value_name = "ADDRESS[/BITS]", value_parser = jobclient::Limits::parse_prefix)]
    admin_from: Vec<(IpAddr, u8)>,
    /// Attempts a job gets before it is dropped (its clients get WORK_FAIL); 0: no limit.
    #[arg(short = 'j', long = "job-retries", value_name = "N", default_value_t = 0)]
    job_retries: u32,
    /// Sleeping workers woken per queued job; 0: all of them.
    #[arg(short = 'w', long = "worker-wakeup", value_name = "N", default_value_t = 0)]
    worker_wakeup: usize,
    /// Hand each worker its functions' jobs in turn, not in the order it registered them.
    #[arg(short = 'R', long = "round-robin")]
    round_robin: bool,
    /// Turn on TCP keepalive for every connection, to find peers that vanished.
    #[arg(long)]
    keepalive: bool,
    /// Seconds idle before the first keepalive probe, up to 32767 (-1: the system's).
    #[arg(long, value_name = "SECONDS", default_value_t = -1, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(-1..=32_767))]
    keepalive_idle: i64,
    /// Seconds between keepalive probes, up to 32767 (-1: the system's).
    #[arg(long, value_name = "SECONDS", default_value_t = -1, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(-1..=32_767))]
    keepalive_interval: i64,
    /// Unanswered keepalive probes before the connection is dropped, up to 127 (-1: the
    /// system's).
    #[arg(long, value_name = "N", default_value_t = -1, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(-1..=127))]
    keepalive_count: i64,
    /// Seconds a graceful shutdown (SIGTERM, SIGINT) waits for running jobs.
    #[arg(long, value_name = "SECONDS", default_value_t = jobclient::DEFAULT_SHUTDOWN_TIMEOUT.as_secs())]
    shutdown_timeout: u64,
    /// Microseconds each event loop polls before it sleeps: a reply that comes within it is
    /// taken without a wake-up (0: sleep at once).
    #[arg(long, value_name = "MICROSECONDS", default_value_t = jobclient::DEFAULT_BUSY_POLL.as_micros() as u64,
          value_parser = clap::value_parser!(u64).range(0..=100_000))]
    busy_poll: u64,
    /// Write the process id to FILE (removed at exit).
    #[arg(short = 'P', long = "pid-file", value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Serve /metrics (Prometheus), /status.json and a live status page at / on
    /// ADDRESS:PORT (off by default; no authentication: bind it to a trusted address).
    #[arg(long, value_name = "ADDRESS:PORT")]
    http: Option<SocketAddr>,
    /// A host name the --http side answers to, besides IP addresses and localhost
    /// (repeatable; a Prometheus scraping by name needs it); requests naming other hosts
    /// are refused (DNS rebinding).
    #[arg(long, value_name = "NAME")]
    http_host: Vec<String>,
    #[command(flatten)]
    tls: TlsArgs,
}

/// gearmand's TLS flags, and ours beside them.
#[derive(clap::Args, Debug)]
struct TlsArgs {
    /// The -p port speaks TLS only (a plaintext client is refused, never served).
    #[arg(long)]
    ssl: bool,
    /// Also listen on PORT, TLS only, beside the -p port (to move a fleet over).
    #[arg(long, value_name = "PORT")]
    ssl_port: Option<u16>,
    /// The server's certificate chain (PEM).
    #[arg(long, value_name = "FILE")]
    ssl_certificate: Option<PathBuf>,
    /// The server's private key (PEM).
    #[arg(long, value_name = "FILE")]
    ssl_key: Option<PathBuf>,
    /// CAs that clients' certificates are checked against (PEM); clients without one are
    /// still served unless --ssl-verify-client.
    #[arg(long, value_name = "FILE")]
    ssl_ca_file: Option<PathBuf>,
    /// Refuse TLS clients that present no certificate signed by --ssl-ca-file.
    #[arg(long)]
    ssl_verify_client: bool,
    /// Allow the state-changing admin commands only over TLS from a client presenting this
    /// certificate (PEM; repeatable), as well as from an --admin-from address.
    #[arg(long, value_name = "FILE")]
    admin_cert: Vec<PathBuf>,
}

impl TlsArgs {
    /// Whether any TLS flag was given.
    fn any(&self) -> bool {
        self.ssl
            || self.ssl_port.is_some()
            || self.ssl_certificate.is_some()
            || self.ssl_key.is_some()
            || self.ssl_ca_file.is_some()
            || self.ssl_verify_client
            || !self.admin_cert.is_empty()
    }

    /// The listener settings, when TLS is asked for.
    #[cfg(feature = "rustls")]
    fn server_tls(&self) -> std::io::Result<Option<jobclient::ServerTls>> {
        if !self.ssl && self.ssl_port.is_none() {
            // TLS settings with no TLS port would be ignored, and the server would look
            // configured for TLS while it served plaintext only.
            if self.any() {
                return Err(std::io::Error::other(
                    "TLS settings given without --ssl or --ssl-port: refusing to serve \
                     plaintext only",
                ));
            }
            return Ok(None);
        }
        if !self.admin_cert.is_empty() && self.ssl_ca_file.is_none() {
            return Err(std::io::Error::other(
                "--admin-cert needs --ssl-ca-file: client certificates are asked for only \
                 with a CA to check them against",
            ));
        }
        let (Some(cert), Some(key)) = (&self.ssl_certificate, &self.ssl_key) else {
            return Err(std::io::Error::other("TLS needs --ssl-certificate and --ssl-key"));
        };
        jobclient::ServerTls::from_files(
            cert,
            key,
            self.ssl_ca_file.as_deref(),
            self.ssl_verify_client,
        )
        .map(Some)
        .map_err(std::io::Error::other)
    }
}

fn main() -> ExitCode {
    // Before any thread exists (every later thread inherits the mask): SIGTERM, SIGINT and
    // SIGUSR1 are read from a signalfd on the server's loop, never delivered to a thread's default action.
    if let Err(e) = evcore::block_signals(&[signal::TERM, signal::INT, signal::USR1]) {
        eprintln!("jobd: cannot block SIGTERM, SIGINT and SIGUSR1: {e}");
        return ExitCode::FAILURE;
    }
    let args = Args::parse();
    if cfg!(not(feature = "rustls")) && args.tls.any() {
        eprintln!(
            "jobd: this jobd was built without TLS (the `rustls` feature): refusing the TLS \
             flags rather than serve in plaintext"
        );
        return ExitCode::FAILURE;
    }
    if let Err(e) = init_log(&args.log_file, args.verbose, args.more) {
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

/// gearmand's `--verbose` level names, in any case, as the `log` facade's levels.
fn parse_level(name: &str) -> Result<log::LevelFilter, String> {
    Ok(match name.to_ascii_uppercase().as_str() {
        "FATAL" | "ALERT" | "CRITICAL" | "ERROR" => log::LevelFilter::Error,
        "WARNING" => log::LevelFilter::Warn,
        "NOTICE" | "INFO" => log::LevelFilter::Info,
        "DEBUG" => log::LevelFilter::Debug,
        _ => {
            return Err("one of FATAL, ALERT, CRITICAL, ERROR, WARNING, NOTICE, INFO, DEBUG".into())
        }
    })
}

/// The log, through the `log` facade: info and up by default, debug with -v, trace with -vv,
/// `RUST_LOG` (env_logger's syntax: `jobclient=debug`) over both; to standard error, or
/// appended to a file.
fn init_log(dest: &str, level: Option<log::LevelFilter>, more: u8) -> std::io::Result<()> {
    let mut log = env_logger::Builder::new();
    log.filter_level(match more {
        0 => level.unwrap_or(log::LevelFilter::Info),
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
    let mut policy = Policy::default();
    policy.job_retries = args.job_retries;
    policy.worker_wakeup = args.worker_wakeup;
    policy.round_robin = args.round_robin;
    policy.keepalive = args.keepalive;
    let positive = |n: i64| u64::try_from(n).ok().filter(|&n| n > 0);
    policy.keepalive_idle = positive(args.keepalive_idle).map(Duration::from_secs);
    policy.keepalive_interval = positive(args.keepalive_interval).map(Duration::from_secs);
    policy.keepalive_count = positive(args.keepalive_count).map(|n| n.min(u32::MAX.into()) as u32);
    let spin = Duration::from_micros(args.busy_poll);
    let mut lp = evcore::Loop::new()?;
    lp.set_spin(spin);
    let ex = Executor::with_reactor(lp);
    let h = ex.handle();
    let addr = SocketAddr::new(args.listen, args.port);
    #[cfg(feature = "rustls")]
    let mut server = {
        for path in &args.tls.admin_cert {
            limits.admin_certs.push(jobclient::Limits::read_certificate(path)?);
        }
        let tls = args.tls.server_tls()?;
        let mut server = match (&tls, args.tls.ssl) {
            (Some(tls), true) => Server::bind_tls(addr, tls.clone(), &h)?,
            _ => Server::bind(addr, &h)?,
        };
        if let (Some(tls), Some(port)) = (tls, args.tls.ssl_port) {
            let bound = server.listen_tls(SocketAddr::new(args.listen, port), tls)?;
            log::info!("listening on {bound} (TLS)");
        }
        server
    };
    #[cfg(not(feature = "rustls"))]
    let mut server = Server::bind(addr, &h)?;
    server.busy_poll(spin);
    // 0 is gearmand's "guess": the cores, as when -t is not given.
    let threads = args.threads.map(usize::from).filter(|&t| t > 0).unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    server.io_threads(threads)?;
    server.limits(limits);
    server.policy(policy);
    server.shutdown_timeout(Duration::from_secs(args.shutdown_timeout));
    server.queue_sync(args.queue_sync);
    if let Some(path) = &args.queue_file {
        let restored = server.durable_queue(path)?;
        log::info!("durable queue {}: {restored} background jobs restored", path.display());
    }
    if let Some(addr) = args.http {
        server.http_hosts(args.http_host.clone());
        let bound = server.http(addr)?;
        log::info!("status page on http://{bound}/, metrics on http://{bound}/metrics");
    }
    // Once the port and the durable queue are ours: a second jobd that fails to start (the
    // port in use, the queue locked) must not overwrite or remove the running one's file.
    let pid_file = match &args.pid_file {
        Some(path) => Some(PidFile::write(path)?),
        None => None,
    };
    let signals = Signals::new(&[signal::TERM, signal::INT, signal::USR1], &h)?;
    let stopper = server.stopper();
    h.spawn_local(async move {
        let mut seen = 0;
        while let Ok(sig) = signals.recv().await {
            let name = match sig {
                signal::TERM => "SIGTERM",
                signal::INT => "SIGINT",
                _ => "SIGUSR1",
            };
            seen += 1;
            if seen == 1 {
                log::info!("{name}: shutting down gracefully (a second signal stops at once)");
                stopper.graceful();
            } else {
                log::warn!("{name} again: stopping at once");
                stopper.now();
            }
        }
    })
    .detach();
    let tls = if cfg!(feature = "rustls") && args.tls.ssl { " (TLS)" } else { "" };
    log::info!("listening on {}{tls} with {} event loops", server.local_addr()?, threads.max(1));
    let result = ex.block_on(server.run());
    drop(pid_file);
    result
}

/// The `-P` file: the process id, written once the server has its port and durable queue,
/// removed at exit if it still holds ours.
struct PidFile(PathBuf);

impl PidFile {
    fn write(path: &std::path::Path) -> std::io::Result<PidFile> {
        // Written beside and renamed into place: a reader finds no file or a whole one,
        // never an empty file between its creation and its write.
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = std::path::PathBuf::from(tmp);
        std::fs::write(&tmp, format!("{}\n", std::process::id()))
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                std::io::Error::new(e.kind(), format!("pid file {}: {e}", path.display()))
            })?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only our own: a later server may have written its pid there since.
        let ours = format!("{}\n", std::process::id());
        if std::fs::read_to_string(&self.0).is_ok_and(|s| s == ours) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}
