//! `jobc`: a Gearman client and worker on the command line, with the `gearman` tool's flags.
//!
//! Client: `jobc [-h HOST] [-p PORT] -f FUNCTION [-u UNIQUE] [-b] [-I|-L] [-s] [-n] [DATA...]`.
//! The workload is standard input, or each argument when there are arguments or `-s` is given;
//! `-n` sends one job per line of input. Results go to standard output.
//!
//! Worker: `jobc -w [-h HOST] [-p PORT] -f FUNCTION [-c COUNT] [-- COMMAND ARGS...]`. Each job's
//! workload is the command's standard input and its standard output is the result (without a
//! command, the workload is echoed). A command that exits non-zero fails the job.
//!
//! `-t MILLISECONDS` sets a client-side deadline per job. `-h` is the host, as in gearman's
//! tools; help is `--help` (or `-H`, as the `gearman` tool has it). Without `-h` and `-p`,
//! the servers are those `GEARMAN_SERVERS` names (`host[:port],host[:port]`, as libgearman
//! reads it), else 127.0.0.1:4730. Host names are looked up at every connect.
//!
//! TLS (feature `rustls`): `-S` with `--ssl-ca-file`, and `--ssl-certificate` and
//! `--ssl-key` for a client certificate; the server's certificate must name the host given.
//!
//! Exit status: 0 when every job succeeded, 1 when any job failed, timed out or could not be
//! submitted (the `gearman` tool exits 0 regardless), 2 for a usage error.

use std::io::{Read, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use bytes::Bytes;
use clap::{ArgAction, Parser};
use evcore::Executor;
use jobclient::{Client, ClientOptions, Job, Priority, ServerAddr, WorkError, Worker};

#[path = "../cli_tls.rs"]
mod cli_tls;

/// A Gearman client and worker, with the gearman tool's flags.
#[derive(Parser, Debug)]
#[command(name = "jobc", version, disable_help_flag = true)]
struct Opts {
    /// Job server host (default: GEARMAN_SERVERS, else 127.0.0.1).
    #[arg(short = 'h', long)]
    host: Option<String>,
    /// Job server port (default 4730).
    #[arg(short, long)]
    port: Option<u16>,
    /// Function name (repeatable: each job goes to each function).
    #[arg(short = 'f', long = "function", value_name = "FUNCTION", required = true)]
    functions: Vec<String>,
    /// Unique ID: jobs with the same one are coalesced by the server.
    #[arg(short, long)]
    unique: Option<String>,
    /// Run the jobs in the background (print each handle, wait for nothing).
    #[arg(short, long)]
    background: bool,
    /// High priority.
    #[arg(short = 'I', long, conflicts_with = "low")]
    high: bool,
    /// Low priority.
    #[arg(short = 'L', long)]
    low: bool,
    /// Do not read standard input: the workloads are the arguments (or one empty workload).
    #[arg(short = 's', long = "no-stdin")]
    no_stdin: bool,
    /// One job per line of standard input; results end with a newline.
    #[arg(short = 'n', long = "per-line")]
    per_line: bool,
    /// Worker mode: do jobs of the functions given with -f.
    #[arg(short, long)]
    worker: bool,
    /// Worker: exit after this many jobs.
    #[arg(short, long, value_name = "COUNT")]
    count: Option<u64>,
    /// Client: a deadline per job, in milliseconds.
    #[arg(short = 't', long = "timeout", value_name = "MILLISECONDS")]
    timeout_ms: Option<u64>,
    /// More detail on standard error: -v for debug, -vv for trace (RUST_LOG overrides).
    #[arg(short, long, action = ArgAction::Count)]
    verbose: u8,
    /// Print help.
    #[arg(short = 'H', long, action = ArgAction::Help)]
    help: Option<bool>,
    /// Client: workloads (each argument is one job).
    #[arg(value_name = "DATA")]
    data: Vec<String>,
    /// Worker: the command each job's workload is fed to (after `--`).
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
    #[command(flatten)]
    tls: cli_tls::ClientTlsArgs,
}

impl Opts {
    fn priority(&self) -> Priority {
        match (self.high, self.low) {
            (true, _) => Priority::High,
            (_, true) => Priority::Low,
            _ => Priority::Normal,
        }
    }

    fn timeout(&self) -> Option<Duration> {
        self.timeout_ms.map(Duration::from_millis)
    }
}

fn main() -> ExitCode {
    let o = Opts::parse();
    init_log(o.verbose);
    if let Err(e) = o.tls.check() {
        eprintln!("jobc: {e}");
        return ExitCode::FAILURE;
    }
    let result = if o.worker { work(&o) } else { submit(&o) };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("jobc: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Warnings and errors of the libraries on standard error (-v: debug, -vv: trace; `RUST_LOG`
/// over both).
fn init_log(verbose: u8) {
    let mut log = env_logger::Builder::new();
    log.filter_level(match verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    });
    if let Ok(spec) = std::env::var("RUST_LOG") {
        log.parse_filters(&spec);
    }
    log.init();
}

/// The servers: `-h`/`-p` if given, else `GEARMAN_SERVERS`, else 127.0.0.1:4730.
fn servers(o: &Opts) -> Result<Vec<ServerAddr>, String> {
    if o.host.is_none() && o.port.is_none() {
        if let Some(list) = ServerAddr::from_env() {
            return list.map_err(|e| format!("GEARMAN_SERVERS: {e}"));
        }
    }
    let host = o.host.as_deref().unwrap_or("127.0.0.1");
    let port = o.port.unwrap_or(jobclient::DEFAULT_PORT);
    Ok(vec![ServerAddr::new(host, port).map_err(|e| format!("{host}: {e}"))?])
}

/// Client mode; returns whether every job succeeded.
fn submit(o: &Opts) -> Result<bool, String> {
    let workloads: Vec<Bytes> = if !o.data.is_empty() {
        o.data.iter().map(|d| Bytes::from(d.clone())).collect()
    } else if o.no_stdin {
        // As the `gearman` tool: -s with no arguments sends one job with an empty workload.
        vec![Bytes::new()]
    } else {
        let mut input = Vec::new();
        std::io::stdin().read_to_end(&mut input).map_err(|e| format!("stdin: {e}"))?;
        if o.per_line {
            input
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(Bytes::copy_from_slice)
                .collect()
        } else {
            vec![Bytes::from(input)]
        }
    };
    let servers = servers(o)?;
    let ex = Executor::new().map_err(|e| e.to_string())?;
    // A reply within 50 µs is taken without a wake-up (see `Loop::set_spin`).
    ex.handle().set_spin(jobclient::DEFAULT_BUSY_POLL);
    let h = ex.handle();
    ex.block_on(async {
        #[allow(unused_mut)]
        let mut options = ClientOptions::default();
        #[cfg(feature = "rustls")]
        {
            options.tls = o.tls.client_tls()?;
        }
        let client = Client::with_servers(&servers, &h, options);
        let mut ok = true;
        let mut out = std::io::stdout().lock();
        for function in &o.functions {
            for w in &workloads {
                let mut job = Job::new(function.clone(), w.clone()).priority(o.priority());
                if let Some(u) = &o.unique {
                    job = job.unique(u.clone());
                }
                if let Some(t) = o.timeout() {
                    job = job.timeout(t);
                }
                if o.background {
                    match client.submit_background(job).await {
                        Ok(handle) => {
                            let _ = writeln!(
                                out,
                                "Task created: {}",
                                String::from_utf8_lossy(&handle.handle)
                            );
                        }
                        Err(e) => {
                            eprintln!("jobc: {function}: {e}");
                            ok = false;
                        }
                    }
                    continue;
                }
                let result = match client.submit(job).await {
                    Ok(mut job) => job.result().await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(bytes) => {
                        let _ = out.write_all(&bytes);
                        if o.per_line {
                            let _ = out.write_all(b"\n");
                        }
                    }
                    Err(e) => {
                        eprintln!("jobc: {function}: {e}");
                        ok = false;
                    }
                }
            }
        }
        let _ = out.flush();
        Ok(ok)
    })
}

/// Worker mode: runs until `-c COUNT` jobs are done, or forever.
fn work(o: &Opts) -> Result<bool, String> {
    let servers = servers(o)?;
    let ex = Executor::new().map_err(|e| e.to_string())?;
    // A reply within 50 µs is taken without a wake-up (see `Loop::set_spin`).
    ex.handle().set_spin(jobclient::DEFAULT_BUSY_POLL);
    let h = ex.handle();
    let mut worker = Worker::new();
    #[cfg(feature = "rustls")]
    if let Some(tls) = o.tls.client_tls()? {
        worker.tls(tls);
    }
    for f in &o.functions {
        let command = o.command.clone();
        worker.register(f.clone(), move |job| run_command(&command, job.workload()));
    }
    match servers.as_slice() {
        // One server: its failure ends the worker, with the reason.
        [one] => {
            ex.block_on(worker.work(one.clone(), &h, o.count)).map_err(|e| e.to_string())?;
        }
        // Several: each connection reconnects on its own until the count is done.
        many => {
            ex.block_on(worker.run(many, &h, o.count, jobclient::Stopper::new()));
        }
    }
    Ok(true)
}

fn run_command(command: &[String], input: &[u8]) -> Result<Bytes, WorkError> {
    let Some((program, args)) = command.split_first() else {
        return Ok(Bytes::copy_from_slice(input));
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| WorkError::Exception(Bytes::from(format!("{program}: {e}"))))?;
    // Feed standard input from a thread so that a command writing as it reads cannot deadlock
    // against a full pipe (the `gearman` tool's worker has that problem).
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let output =
        child.wait_with_output().map_err(|e| WorkError::Exception(Bytes::from(e.to_string())))?;
    let _ = feeder.join();
    if output.status.success() {
        Ok(Bytes::from(output.stdout))
    } else {
        Err(WorkError::Fail)
    }
}
