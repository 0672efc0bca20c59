//! `jobadmin`: gearadmin's flags and output, for jobd and gearmand alike.
//!
//! `jobadmin --help` lists every flag. Each operation flag sends one admin command; several
//! run in gearadmin's order (`--getpid` first, `--status` last, `--shutdown` after it), each
//! answer printed as gearadmin prints it: lists with their closing `.`, `--server-version`,
//! `--server-verbose` and `--getpid` as the bare value, `OK` for a command that succeeded,
//! and `Error: ...` on standard error for a command the server refused. `--shutdown` (which
//! gearadmin 1.1.20 lacks) stops jobd; `--shutdown-graceful` lets its running jobs finish.
//!
//! Exit status, as gearadmin's: 0 once every command was answered (refusals included), 1 when
//! the server cannot be reached or the connection fails, 2 for a usage error (exit 1 in
//! gearadmin: clap's convention is 2).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

#[path = "../cli_tls.rs"]
mod cli_tls;

/// Administers a Gearman job server (gearadmin's flags).
#[derive(Parser, Debug)]
#[command(name = "jobadmin", version, disable_help_flag = true)]
struct Args {
    /// Print help (`-h` is the host, as in gearadmin).
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Connect to the host.
    #[arg(short = 'h', long, default_value = "localhost")]
    host: String,
    /// Port number to use for connection.
    #[arg(short, long, default_value_t = 4730)]
    port: u16,
    /// Fetch the version number for the server.
    #[arg(long)]
    server_version: bool,
    /// Fetch the verbose setting for the server.
    #[arg(long)]
    server_verbose: bool,
    /// Create the function from the server.
    #[arg(long, value_name = "FUNCTION")]
    create_function: Option<String>,
    /// Remove a given job from the server's queue.
    #[arg(long, value_name = "HANDLE")]
    cancel_job: Option<String>,
    /// Drop the function from the server.
    #[arg(long, value_name = "FUNCTION")]
    drop_function: Option<String>,
    /// Show unique IDs of jobs on the server.
    #[arg(long)]
    show_unique_jobs: bool,
    /// Show all jobs on the server.
    #[arg(long)]
    show_jobs: bool,
    /// Get Process ID for the server.
    #[arg(long)]
    getpid: bool,
    /// Status for the server.
    #[arg(long)]
    status: bool,
    /// Queued jobs status by priority.
    #[arg(long)]
    priority_status: bool,
    /// Workers for the server.
    #[arg(long)]
    workers: bool,
    /// Shutdown server (jobd; gearmand 1.1.20 refuses it).
    #[arg(long)]
    shutdown: bool,
    /// Shut the server down gracefully: running jobs finish first.
    #[arg(long)]
    shutdown_graceful: bool,
    #[command(flatten)]
    tls: cli_tls::ClientTlsArgs,
}

/// A connection to the server: plaintext or TLS, read and written by one owner.
trait Link: std::io::Read + Write {}
impl<T: std::io::Read + Write> Link for T {}

/// The longest answer line taken from a server.
const MAX_LINE: u64 = 1 << 20;

/// How an answer reads: a list up to `.`, a value after `OK `, or `OK` alone.
#[derive(Clone, Copy)]
enum Shape {
    List,
    Value,
    Ok,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = args.tls.check() {
        eprintln!("jobadmin: {e}");
        return ExitCode::FAILURE;
    }
    // gearadmin's order: it pushes the commands on a stack and runs the last pushed first.
    let mut commands: Vec<(String, Shape)> = Vec::new();
    let mut push = |on: bool, text: String, shape: Shape| {
        if on {
            commands.push((text, shape));
        }
    };
    push(args.getpid, "getpid".into(), Shape::Value);
    if let Some(f) = &args.create_function {
        push(true, format!("create function {f}"), Shape::Ok);
    }
    if let Some(f) = &args.drop_function {
        push(true, format!("drop function {f}"), Shape::Ok);
    }
    push(args.show_jobs, "show jobs".into(), Shape::List);
    push(args.show_unique_jobs, "show unique jobs".into(), Shape::List);
    if let Some(h) = &args.cancel_job {
        push(true, format!("cancel job {h}"), Shape::Ok);
    }
    push(args.server_verbose, "verbose".into(), Shape::Value);
    push(args.server_version, "version".into(), Shape::Value);
    push(args.workers, "workers".into(), Shape::List);
    push(args.priority_status, "prioritystatus".into(), Shape::List);
    push(args.status, "status".into(), Shape::List);
    push(args.shutdown_graceful, "shutdown graceful".into(), Shape::Ok);
    push(args.shutdown, "shutdown".into(), Shape::Ok);
    if commands.is_empty() {
        eprintln!("No option execution operation given.\n\nSee jobadmin --help.");
        return ExitCode::from(2);
    }
    // A line break inside an argument would be a second command.
    if commands.iter().any(|(c, _)| c.contains(['\r', '\n'])) {
        eprintln!("jobadmin: an argument holds a line break");
        return ExitCode::from(2);
    }
    match run(&args.host, args.port, &args.tls, &commands) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("Failed to connect on {host}:{port} with {e}"))?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => format!("Error connecting to {host}: {e}"),
        None => format!("Error connecting to {host}: no address"),
    })
}

/// Over TLS when asked: the handshake is done here, so that a refused certificate is an
/// error before any command.
fn link(
    host: &str,
    sock: TcpStream,
    tls: &cli_tls::ClientTlsArgs,
) -> Result<Box<dyn Link>, String> {
    #[cfg(feature = "rustls")]
    if let Some(tls) = tls.client_tls()? {
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| format!("{host}: {e}"))?;
        let conn = rustls::ClientConnection::new(tls.config(), name).map_err(|e| e.to_string())?;
        let mut stream = rustls::StreamOwned::new(conn, sock);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| format!("TLS with {host} failed: {e}"))?;
        }
        return Ok(Box::new(stream));
    }
    let _ = (host, tls);
    Ok(Box::new(sock))
}

fn run(
    host: &str,
    port: u16,
    tls: &cli_tls::ClientTlsArgs,
    commands: &[(String, Shape)],
) -> Result<(), String> {
    let sock = connect(host, port)?;
    sock.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(link(host, sock, tls)?);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (command, shape) in commands {
        let writer = reader.get_mut();
        writer.write_all(format!("{command}\r\n").as_bytes()).map_err(|e| e.to_string())?;
        writer.flush().map_err(|e| e.to_string())?;
        let mut first = true;
        loop {
            // One line is at most 1 MiB: a server that sends an endless line gets an error,
            // not all of this process's memory.
            let mut line = String::new();
            let n = std::io::Read::take(&mut reader, MAX_LINE)
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
            if n as u64 == MAX_LINE && !line.ends_with('\n') {
                return Err(format!("an answer line to {command:?} passed {MAX_LINE} bytes"));
            }
            if n == 0 {
                // A server that stops on `shutdown` may close before or after its OK.
                if command.starts_with("shutdown") {
                    return Ok(());
                }
                return Err(format!("the server closed the connection during {command:?}"));
            }
            if first {
                // gearadmin prints a refusal as it came, carriage return included.
                if let Some(err) = line.strip_prefix("ERR ") {
                    eprint!("Error: {}", err.strip_suffix('\n').unwrap_or(err));
                    eprintln!();
                    break;
                }
            }
            let line = line.trim_end_matches(['\r', '\n']);
            first = false;
            match shape {
                Shape::List => {
                    let _ = writeln!(out, "{line}");
                    if line == "." {
                        break;
                    }
                }
                Shape::Value => {
                    let _ = writeln!(out, "{}", line.strip_prefix("OK ").unwrap_or(line));
                    break;
                }
                Shape::Ok => {
                    let _ = writeln!(out, "{line}");
                    break;
                }
            }
        }
    }
    Ok(())
}
