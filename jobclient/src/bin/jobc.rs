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
//! `-t MILLISECONDS` sets a client-side deadline per job. The exit status is non-zero when any
//! job failed, timed out or could not be submitted (the `gearman` tool exits 0 regardless).

use std::io::{Read, Write};
use std::net::ToSocketAddrs;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use bytes::Bytes;
use evcore::Executor;
use jobclient::{Client, Job, Priority, WorkError, Worker};

#[derive(Debug, Default)]
struct Opts {
    host: String,
    port: u16,
    functions: Vec<String>,
    unique: Option<String>,
    background: bool,
    priority: Priority,
    no_stdin: bool,
    per_line: bool,
    worker: bool,
    count: Option<u64>,
    timeout: Option<Duration>,
    data: Vec<String>,
    command: Vec<String>,
}

const USAGE: &str = "usage: jobc [-h HOST] [-p PORT] -f FUNCTION [-u UNIQUE] [-b] [-I|-L] [-s] [-n] [-t MS] [DATA...]\n       jobc -w [-h HOST] [-p PORT] -f FUNCTION [-c COUNT] [-- COMMAND ARGS...]";

fn parse() -> Result<Opts, String> {
    let mut o = Opts { host: "127.0.0.1".into(), port: 4730, ..Opts::default() };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "-h" => o.host = value()?,
            "-p" => o.port = value()?.parse().map_err(|e| format!("-p: {e}"))?,
            "-f" => o.functions.push(value()?),
            "-u" => o.unique = Some(value()?),
            "-b" => o.background = true,
            "-I" => o.priority = Priority::High,
            "-L" => o.priority = Priority::Low,
            "-s" => o.no_stdin = true,
            "-n" => o.per_line = true,
            "-w" => o.worker = true,
            "-c" => o.count = Some(value()?.parse().map_err(|e| format!("-c: {e}"))?),
            "-t" => {
                o.timeout =
                    Some(Duration::from_millis(value()?.parse().map_err(|e| format!("-t: {e}"))?))
            }
            "--help" => return Err(USAGE.into()),
            "--" => {
                o.command = args.by_ref().collect();
                break;
            }
            flag if flag.starts_with('-') && flag.len() > 1 => {
                return Err(format!("unknown flag {flag}\n{USAGE}"))
            }
            _ => o.data.push(a),
        }
    }
    if o.functions.is_empty() {
        return Err(format!("-f FUNCTION is required\n{USAGE}"));
    }
    Ok(o)
}

fn main() -> ExitCode {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("jobc: {e}");
            return ExitCode::from(2);
        }
    };
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

fn addr(o: &Opts) -> Result<std::net::SocketAddr, String> {
    (o.host.as_str(), o.port)
        .to_socket_addrs()
        .map_err(|e| format!("{}:{}: {e}", o.host, o.port))?
        .next()
        .ok_or_else(|| format!("{}:{}: no address", o.host, o.port))
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
    let addr = addr(o)?;
    let ex = Executor::new().map_err(|e| e.to_string())?;
    let h = ex.handle();
    ex.block_on(async {
        let client = Client::connect(addr, &h).await.map_err(|e| e.to_string())?;
        let mut ok = true;
        let mut out = std::io::stdout().lock();
        for function in &o.functions {
            for w in &workloads {
                let mut job = Job::new(function.clone(), w.clone()).priority(o.priority);
                if let Some(u) = &o.unique {
                    job = job.unique(u.clone());
                }
                if let Some(t) = o.timeout {
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
    let addr = addr(o)?;
    let ex = Executor::new().map_err(|e| e.to_string())?;
    let h = ex.handle();
    let mut worker = Worker::new();
    for f in &o.functions {
        let command = o.command.clone();
        worker.register(f.clone(), move |job| run_command(&command, job.workload()));
    }
    ex.block_on(worker.work(addr, &h, o.count)).map_err(|e| e.to_string())?;
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
