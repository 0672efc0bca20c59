//! `Admin`: the administrative text protocol (`gearadmin`'s commands) as typed calls.

use std::fmt;
use std::future::poll_fn;
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;

use evcore::{Async, Handle, Spawner};
use futures_channel::{mpsc, oneshot};
use futures_core::Stream;
use futures_io::{AsyncRead, AsyncWrite};

use crate::Error;

/// One row of `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionStatus {
    /// The function name.
    pub function: String,
    /// Jobs queued or running.
    pub total: u64,
    /// Jobs running.
    pub running: u64,
    /// Workers able to do it.
    pub workers: u64,
}

/// One row of `prioritystatus`: the jobs queued per priority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriorityStatus {
    /// The function name.
    pub function: String,
    /// High-priority jobs queued.
    pub high: u64,
    /// Normal-priority jobs queued.
    pub normal: u64,
    /// Low-priority jobs queued.
    pub low: u64,
    /// Workers able to do it.
    pub workers: u64,
}

/// One row of `workers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerInfo {
    /// The server's identifier for the connection (gearmand: its descriptor).
    pub id: String,
    /// The worker's address.
    pub address: String,
    /// Its SET_CLIENT_ID, or `-`.
    pub client_id: String,
    /// The functions it registered.
    pub functions: Vec<String>,
}

/// A connection speaking the admin protocol.
///
/// ```no_run
/// use evcore::Executor;
/// use jobclient::Admin;
///
/// let ex = Executor::new()?;
/// let h = ex.handle();
/// ex.block_on(async {
///     let admin = Admin::connect("127.0.0.1:4730".parse().unwrap(), &h).await?;
///     for f in admin.status().await? {
///         println!("{}: {} queued, {} running, {} workers", f.function, f.total, f.running, f.workers);
///     }
///     Ok::<(), jobclient::Error>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// `Send + Sync`: the socket lives on the executor `connect` was given (a task there sends
/// the commands one at a time, in the order they were made), and the calls may come from any
/// thread. The connection closes when the `Admin` is dropped.
pub struct Admin {
    commands: mpsc::UnboundedSender<Command>,
    /// Keeps the executor (an engine thread, say) running while the `Admin` lives.
    _spawner: Spawner,
}

/// One command for the connection's task: its text, the shape of its answer, and where the
/// answer goes.
struct Command {
    text: String,
    list: bool,
    reply: oneshot::Sender<Result<Answer, Error>>,
}

enum Answer {
    Line(String),
    List(Vec<String>),
}

impl Admin {
    /// Connects, on the executor `spawner` leads to (`&handle`, or `&engine` from any
    /// runtime).
    pub async fn connect(addr: SocketAddr, spawner: impl Into<Spawner>) -> Result<Admin, Error> {
        Admin::connect_with(addr, None, spawner.into()).await
    }

    /// Connects over TLS (`gearadmin --ssl`); a refused certificate is [`Error::Tls`].
    #[cfg(feature = "rustls")]
    pub async fn connect_tls(
        addr: SocketAddr,
        tls: crate::ClientTls,
        spawner: impl Into<Spawner>,
    ) -> Result<Admin, Error> {
        Admin::connect_with(addr, Some(tls), spawner.into()).await
    }

    async fn connect_with(
        addr: SocketAddr,
        tls: Option<crate::tls::Connector>,
        spawner: Spawner,
    ) -> Result<Admin, Error> {
        let (tx, rx) = mpsc::unbounded();
        let connected = spawner.spawn(move |h: &Handle| {
            let h = h.clone();
            async move {
                let connect = async {
                    let sock = Async::<TcpStream>::connect(addr, &h).await?;
                    crate::tls::connect(sock, None, tls.as_ref()).await
                };
                let timeout = crate::DEFAULT_CONNECT_TIMEOUT;
                let sock = crate::conn::within(timeout, &h, addr, connect).await?;
                h.spawn_local(serve(AdminConn { sock, buf: Vec::new() }, rx)).detach();
                Ok(())
            }
        });
        match connected.await {
            Ok(Ok(())) => Ok(Admin { commands: tx, _spawner: spawner }),
            Ok(Err(e)) => Err(e),
            Err(evcore::Gone) => Err(Error::Disconnected),
        }
    }

    /// `status`: every function with its queued, running and worker counts.
    pub async fn status(&self) -> Result<Vec<FunctionStatus>, Error> {
        let lines = self.list("status").await?;
        lines
            .iter()
            .map(|l| {
                let (function, [total, running, workers]) =
                    counted_row(l, "malformed status line")?;
                Ok(FunctionStatus { function, total, running, workers })
            })
            .collect()
    }

    /// `workers`: every connection with its address, client ID and functions.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, Error> {
        let lines = self.list("workers").await?;
        Ok(lines
            .iter()
            .map(|l| {
                // `FD ADDRESS CLIENT-ID : FUNCTION...`; a client ID may hold spaces.
                let (left, right) = l.rsplit_once(" :").unwrap_or((l.as_str(), ""));
                let mut it = left.splitn(3, ' ');
                WorkerInfo {
                    id: it.next().unwrap_or_default().to_string(),
                    address: it.next().unwrap_or_default().to_string(),
                    client_id: it.next().unwrap_or_default().to_string(),
                    functions: right.split_whitespace().map(str::to_string).collect(),
                }
            })
            .collect())
    }

    /// `prioritystatus`: every function with its queued jobs per priority and its workers.
    pub async fn priority_status(&self) -> Result<Vec<PriorityStatus>, Error> {
        let lines = self.list("prioritystatus").await?;
        lines
            .iter()
            .map(|l| {
                let (function, [high, normal, low, workers]) =
                    counted_row(l, "malformed prioritystatus line")?;
                Ok(PriorityStatus { function, high, normal, low, workers })
            })
            .collect()
    }

    /// `show unique jobs`: the unique ID of every job the server holds (empty for a job
    /// submitted without one).
    pub async fn show_unique_jobs(&self) -> Result<Vec<String>, Error> {
        self.list("show unique jobs").await
    }

    /// `create function NAME`: the server lists the function from now on.
    pub async fn create_function(&self, function: &str) -> Result<(), Error> {
        let function = word(function, "a function name for create function")?;
        self.ok_line(&format!("create function {function}")).await.map(drop)
    }

    /// `drop function NAME`: the server forgets a function nobody can do and no job uses; an
    /// error ([`Error::Server`]) names why not.
    pub async fn drop_function(&self, function: &str) -> Result<(), Error> {
        let function = word(function, "a function name for drop function")?;
        self.ok_line(&format!("drop function {function}")).await.map(drop)
    }

    /// `verbose`: the server's log level, by gearmand's names (`ERROR`, `WARNING`, `INFO`,
    /// `DEBUG`, ...).
    pub async fn verbose(&self) -> Result<String, Error> {
        self.ok_line("verbose").await
    }

    /// `version`: the server's version (without the `OK `).
    pub async fn version(&self) -> Result<String, Error> {
        self.ok_line("version").await
    }

    /// `getpid`: the server's process ID.
    pub async fn getpid(&self) -> Result<u32, Error> {
        self.ok_line("getpid")
            .await?
            .trim()
            .parse()
            .map_err(|_| Error::InvalidArgument("malformed getpid answer"))
    }

    /// `maxqueue FUNCTION N`: at most `max` queued jobs per priority (0: no limit).
    pub async fn set_max_queue(&self, function: &str, max: u32) -> Result<(), Error> {
        let function = word(function, "a function name for maxqueue")?;
        self.ok_line(&format!("maxqueue {function} {max}")).await.map(drop)
    }

    /// `cancel job HANDLE`: removes a queued job. Servers that lack it answer an error.
    ///
    /// A handle that is not one word of printable ASCII is refused with
    /// [`Error::InvalidArgument`] before anything is sent: `"x\r\nshutdown"` would otherwise be
    /// two commands.
    pub async fn cancel_job(&self, handle: &str) -> Result<(), Error> {
        let handle = word(handle, "a job handle for cancel job")?;
        self.ok_line(&format!("cancel job {handle}")).await.map(drop)
    }

    /// `show jobs`: the raw rows (handle, retries, ignore flag, queued flag).
    pub async fn show_jobs(&self) -> Result<Vec<String>, Error> {
        self.list("show jobs").await
    }

    /// `shutdown`: stops the server (ours; gearmand 1.1.20 lacks it and answers an error).
    pub async fn shutdown(&self) -> Result<(), Error> {
        self.ok_line("shutdown").await.map(drop)
    }

    /// `shutdown graceful`: the server stops taking and handing out work, lets running jobs
    /// finish and then exits (see `Server::run`).
    pub async fn shutdown_graceful(&self) -> Result<(), Error> {
        self.ok_line("shutdown graceful").await.map(drop)
    }

    async fn ask(&self, text: String, list: bool) -> Result<Answer, Error> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .unbounded_send(Command { text, list, reply })
            .map_err(|_| Error::Disconnected)?;
        answer.await.unwrap_or(Err(Error::Disconnected))
    }

    async fn ok_line(&self, command: &str) -> Result<String, Error> {
        match self.ask(command.to_string(), false).await? {
            Answer::Line(line) => Ok(line),
            Answer::List(_) => Err(Error::Disconnected),
        }
    }

    async fn list(&self, command: &str) -> Result<Vec<String>, Error> {
        match self.ask(command.to_string(), true).await? {
            Answer::List(lines) => Ok(lines),
            Answer::Line(_) => Err(Error::Disconnected),
        }
    }
}

/// The connection's task: one command at a time, until the `Admin` is dropped or the
/// connection fails (then every later command hears [`Error::Disconnected`]).
async fn serve(mut conn: AdminConn, mut rx: mpsc::UnboundedReceiver<Command>) {
    while let Some(cmd) = poll_fn(|cx| Pin::new(&mut rx).poll_next(cx)).await {
        let answer = if cmd.list {
            conn.list(&cmd.text).await.map(Answer::List)
        } else {
            conn.ok_line(&cmd.text).await.map(Answer::Line)
        };
        // An ERR answer leaves the connection in step; anything else (a dead socket, an
        // over-long line) does not, so the task ends and later commands are refused.
        let failed =
            !matches!(answer, Ok(_) | Err(Error::Server { .. } | Error::InvalidArgument(_)));
        let _ = cmd.reply.send(answer);
        if failed {
            return;
        }
    }
}

struct AdminConn {
    sock: crate::tls::Stream,
    buf: Vec<u8>,
}

impl AdminConn {
    /// Sends a command whose answer is one line starting `OK`; an `ERR` line is an error.
    /// Commands are built from [`word`]-checked arguments only, so each is exactly one line.
    async fn ok_line(&mut self, command: &str) -> Result<String, Error> {
        self.send(command).await?;
        let line = self.line().await?;
        if let Some(rest) = line.strip_prefix("OK") {
            return Ok(rest.trim_start().to_string());
        }
        let mut words = line.splitn(3, ' ');
        let _err = words.next();
        let code = words.next().unwrap_or("ERR").to_string();
        let text = words.next().unwrap_or_default().replace('+', " ");
        Err(Error::Server { code, text })
    }

    /// Sends a command whose answer is lines up to a `.` line.
    async fn list(&mut self, command: &str) -> Result<Vec<String>, Error> {
        self.send(command).await?;
        let mut out = Vec::new();
        loop {
            let line = self.line().await?;
            if line == "." {
                return Ok(out);
            }
            if line.starts_with("ERR ") && out.is_empty() {
                return Err(Error::Server { code: "ERR".into(), text: line });
            }
            out.push(line);
        }
    }

    async fn send(&mut self, command: &str) -> Result<(), Error> {
        let data = format!("{command}\r\n").into_bytes();
        let mut sent = 0;
        while sent < data.len() {
            let n = poll_fn(|cx| Pin::new(&mut self.sock).poll_write(cx, &data[sent..])).await?;
            if n == 0 {
                return Err(Error::Disconnected);
            }
            sent += n;
        }
        poll_fn(|cx| Pin::new(&mut self.sock).poll_flush(cx)).await?;
        Ok(())
    }

    async fn line(&mut self) -> Result<String, Error> {
        loop {
            if let Some(p) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=p).collect();
                return Ok(String::from_utf8_lossy(&line)
                    .trim_end_matches(['\r', '\n'])
                    .to_string());
            }
            if self.buf.len() > crate::proto::MAX_LINE {
                return Err(crate::proto::ProtoError::LineTooLong(crate::proto::MAX_LINE).into());
            }
            let mut chunk = [0u8; 4096];
            let n = poll_fn(|cx| Pin::new(&mut self.sock).poll_read(cx, &mut chunk)).await?;
            if n == 0 {
                return Err(Error::Disconnected);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A `status`-style row: a name, then `N` tab-separated counts.
fn counted_row<const N: usize>(
    line: &str,
    what: &'static str,
) -> Result<(String, [u64; N]), Error> {
    let mut fields = line.split('\t');
    let name = fields.next().unwrap_or_default().to_string();
    let mut counts = [0u64; N];
    for c in &mut counts {
        *c = fields
            .next()
            .and_then(|v| v.trim().parse().ok())
            .ok_or(Error::InvalidArgument(what))?;
    }
    Ok((name, counts))
}

/// An argument of an admin command: one non-empty word of printable ASCII, since the text
/// protocol splits commands at line ends and arguments at spaces.
fn word<'a>(arg: &'a str, what: &'static str) -> Result<&'a str, Error> {
    if !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(arg)
    } else {
        Err(Error::InvalidArgument(what))
    }
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}
