//! `groupcat [--socket PATH | --corosync] [--json] [-v] GROUP` (`--help` lists the flags): joins GROUP through `groupd` (or,
//! with `--corosync` in a build with that feature, through real corosync), multicasts each
//! line of standard input, and prints every delivery and membership change, one per line.
//! At the end of input it leaves the group and exits once its own leave comes back.
//!
//! With `--json`, one object per line:
//! `{"event":"deliver","group":G,"nodeid":N,"pid":P,"msg":TEXT}` and
//! `{"event":"confchg","group":G,"members":[{"nodeid":N,"pid":P}],"left":[{"nodeid":N,"pid":P,"reason":"procdown"}],"joined":[...]}`.
//! With `--totem`, ring changes too (and the current ring after joining):
//! `totem ring=NODEID.SEQ nodes=1,2` (SEQ in hexadecimal, as corosync prints it), or
//! `{"event":"totem","ring":{"nodeid":N,"seq":S},"nodes":[1,2]}`.

use std::io::{BufRead, IoSlice, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use groupmsg::{
    Backend, Change, Cpg, Dispatch, GroupName, Guarantee, Handler, Member, ModelFlags, RingId,
};
use rustix::event::{PollFd, PollFlags};

struct Printer {
    json: bool,
    totem: bool,
    me: Member,
    left: bool,
}

fn json_str(s: &[u8]) -> String {
    let mut out = String::from("\"");
    for c in String::from_utf8_lossy(s).chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn members_json(ms: &[Member]) -> String {
    let items: Vec<String> =
        ms.iter().map(|m| format!("{{\"nodeid\":{},\"pid\":{}}}", m.nodeid, m.pid)).collect();
    format!("[{}]", items.join(","))
}

fn changes_json(cs: &[Change]) -> String {
    let items: Vec<String> = cs
        .iter()
        .map(|c| {
            format!(
                "{{\"nodeid\":{},\"pid\":{},\"reason\":\"{}\"}}",
                c.member.nodeid,
                c.member.pid,
                c.reason.name()
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

impl Handler for Printer {
    fn deliver(&mut self, group: &GroupName, sender: Member, msg: &[u8]) {
        let line = if self.json {
            format!(
                "{{\"event\":\"deliver\",\"group\":{},\"nodeid\":{},\"pid\":{},\"msg\":{}}}",
                json_str(group.as_bytes()),
                sender.nodeid,
                sender.pid,
                json_str(msg)
            )
        } else {
            format!(
                "deliver {group} {}:{} {}",
                sender.nodeid,
                sender.pid,
                String::from_utf8_lossy(msg)
            )
        };
        println!("{line}");
    }

    fn confchg(
        &mut self,
        group: &GroupName,
        members: &[Member],
        left: &[Change],
        joined: &[Change],
    ) {
        if left.iter().any(|c| c.member == self.me) {
            self.left = true;
        }
        let line = if self.json {
            format!(
                "{{\"event\":\"confchg\",\"group\":{},\"members\":{},\"left\":{},\"joined\":{}}}",
                json_str(group.as_bytes()),
                members_json(members),
                changes_json(left),
                changes_json(joined)
            )
        } else {
            let list = |cs: &[Change]| {
                cs.iter()
                    .map(|c| format!("{}:{}({})", c.member.nodeid, c.member.pid, c.reason.name()))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let ms: Vec<String> =
                members.iter().map(|m| format!("{}:{}", m.nodeid, m.pid)).collect();
            format!(
                "confchg {group} members={} left={} joined={}",
                ms.join(","),
                list(left),
                list(joined)
            )
        };
        println!("{line}");
    }

    fn totem_confchg(&mut self, ring_id: RingId, nodes: &[u32]) {
        if self.totem {
            println!("{}", self.totem_line(ring_id, nodes));
        }
    }
}

impl Printer {
    fn totem_line(&self, ring_id: RingId, nodes: &[u32]) -> String {
        let list: Vec<String> = nodes.iter().map(u32::to_string).collect();
        if self.json {
            format!(
                "{{\"event\":\"totem\",\"ring\":{{\"nodeid\":{},\"seq\":{}}},\"nodes\":[{}]}}",
                ring_id.nodeid,
                ring_id.seq,
                list.join(",")
            )
        } else {
            format!("totem ring={ring_id} nodes={}", list.join(","))
        }
    }
}

/// Joins a closed process group, multicasts each line of standard input, prints every
/// delivery and membership change.
#[derive(clap::Parser, Debug)]
#[command(name = "groupcat", version)]
struct Args {
    /// The group to join.
    group: String,
    /// groupd's socket [default: $GROUPMSG_SOCKET, else $XDG_RUNTIME_DIR/groupd.sock, else
    /// /run/groupd.sock].
    #[arg(long, value_name = "PATH", conflicts_with = "corosync")]
    socket: Option<PathBuf>,
    /// Through real corosync (libcpg) instead of groupd; needs a build with feature corosync.
    #[arg(long)]
    corosync: bool,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    /// When the daemon (groupd or corosync) goes away, connect again and rejoin the group by
    /// itself (retrying every 100 ms to 2 s) instead of exiting.
    #[arg(long)]
    reconnect: bool,
    /// Also print totem ring changes, and the current ring once after joining
    /// (CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF).
    #[arg(long)]
    totem: bool,
    /// Multicast with SAFE delivery (CPG_TYPE_SAFE): on groupd, each line is delivered once
    /// every member has received it; elsewhere it is AGREED.
    #[arg(long)]
    safe: bool,
    /// More detail on standard error: -v for debug, -vv for trace (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// Exit status: 0 once the member's own leave came back, 1 when the group fails, 2 for a
/// usage error.
fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    init_log(args.verbose);
    if args.corosync && !cfg!(feature = "corosync") {
        eprintln!("groupcat: --corosync: built without the corosync feature");
        return ExitCode::from(2);
    }
    let backend = if args.corosync {
        corosync_backend()
    } else {
        Backend::Daemon(args.socket.unwrap_or_else(groupmsg::default_socket_path))
    };
    let guarantee = if args.safe { Guarantee::Safe } else { Guarantee::Agreed };
    match run(backend, args.json, args.totem, args.reconnect, guarantee, &args.group) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("groupcat: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Warnings and errors of the library on standard error (-v: debug, -vv: trace; `RUST_LOG`
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

#[cfg(feature = "corosync")]
fn corosync_backend() -> Backend {
    Backend::Corosync
}

#[cfg(not(feature = "corosync"))]
fn corosync_backend() -> Backend {
    unreachable!("refused when parsing the arguments")
}

fn run(
    backend: Backend,
    json: bool,
    totem: bool,
    reconnect: bool,
    guarantee: Guarantee,
    group: &str,
) -> Result<(), String> {
    let name = GroupName::new(group).map_err(|e| e.to_string())?;
    let what = format!("{backend:?}");
    let flags = if totem { ModelFlags::DELIVER_INITIAL_TOTEM_CONF } else { ModelFlags::NONE };
    let printer = Printer { json, totem, me: Member { nodeid: 0, pid: 0 }, left: false };
    let mut cpg =
        Cpg::model_initialize(backend, printer, flags).map_err(|e| format!("{what}: {e}"))?;
    cpg.handler_mut().me = cpg.member();
    join(&mut cpg, &name)?;
    // A reader of our own over a copy of descriptor 0: std's stdin would buffer behind our back,
    // and the poll below must know when no line is waiting in userspace.
    let input = std::io::stdin().as_fd().try_clone_to_owned().map_err(|e| e.to_string())?;
    let mut lines = std::io::BufReader::new(std::fs::File::from(input));
    let mut input_open = true;
    loop {
        if let Err(e) = cpg.dispatch(Dispatch::All) {
            if !(reconnect && cpg.is_lost()) {
                return Err(e.to_string());
            }
            rejoin(&mut cpg, &name, input_open);
            continue;
        }
        let _ = std::io::stdout().flush();
        if cpg.handler().left {
            return Ok(());
        }
        let stdin_fd = std::io::stdin();
        let mut fds = vec![PollFd::new(&cpg, PollFlags::IN)];
        if input_open {
            fds.push(PollFd::from_borrowed_fd(stdin_fd.as_fd(), PollFlags::IN));
        }
        rustix::event::poll(&mut fds, None).map_err(|e| e.to_string())?;
        let stdin_ready = input_open && !fds[1].revents().is_empty();
        drop(fds);
        if stdin_ready {
            // Read every line already buffered, not just one: the descriptor will not signal
            // for bytes the reader has taken in.
            loop {
                let mut line = String::new();
                match lines.read_line(&mut line) {
                    Ok(0) => {
                        input_open = false;
                        cpg.leave().map_err(|e| e.to_string())?;
                        break;
                    }
                    Ok(_) => {
                        let msg = line.trim_end_matches('\n');
                        // Flow control (or corosync's membership sync): let the group catch
                        // up, then send. Waiting for an event is not enough: corosync sends
                        // no notice when its TRY_AGAIN ends, and no event may come, so the
                        // wait is for an event or a pause (1 ms doubling to 50 ms),
                        // dispatching what came meanwhile. A line sent into a lost
                        // connection is sent again once reconnected.
                        let mut pause = std::time::Duration::from_millis(1);
                        loop {
                            match cpg.mcast_joined(guarantee, &[IoSlice::new(msg.as_bytes())]) {
                                Ok(()) => break,
                                Err(groupmsg::CsError::TryAgain) => {
                                    let mut fds = [PollFd::new(&cpg, PollFlags::IN)];
                                    let limit = rustix::event::Timespec::try_from(pause)
                                        .map_err(|e| e.to_string())?;
                                    let _ = rustix::event::poll(&mut fds, Some(&limit));
                                    if cpg.dispatch(Dispatch::All).is_err() && !cpg.is_lost() {
                                        return Err("dispatch failed".into());
                                    }
                                    pause = (pause * 2).min(std::time::Duration::from_millis(50));
                                }
                                Err(e) if reconnect && cpg.is_lost() => {
                                    log::warn!("{e}: reconnecting");
                                    rejoin(&mut cpg, &name, true);
                                }
                                Err(e) => return Err(e.to_string()),
                            }
                        }
                    }
                    Err(e) => return Err(e.to_string()),
                }
                if lines.buffer().is_empty() {
                    break;
                }
            }
        }
    }
}

/// Connects again until it works (pausing 100 ms, doubling to 2 s) and, while input is
/// open, joins the group again.
fn rejoin(cpg: &mut Cpg<Printer>, name: &GroupName, join_too: bool) {
    let mut pause = std::time::Duration::from_millis(100);
    loop {
        let joined = cpg.reinitialize().map_err(|e| e.to_string()).and_then(|()| {
            if join_too {
                join(cpg, name)
            } else {
                Ok(())
            }
        });
        match joined {
            Ok(()) => {
                cpg.handler_mut().me = cpg.member();
                log::warn!("reconnected");
                return;
            }
            Err(e) => log::debug!("reconnect: {e}"),
        }
        std::thread::sleep(pause);
        pause = pause.saturating_mul(2).min(std::time::Duration::from_secs(2));
    }
}

/// Joins, waiting while the daemon answers `TryAgain` (groupd does while a SAFE message in
/// the group waits for its members' acknowledgements; corosync during a membership change):
/// pauses of 1 ms doubling to 100 ms.
fn join(cpg: &mut Cpg<Printer>, name: &GroupName) -> Result<(), String> {
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match cpg.join(name) {
            Err(groupmsg::CsError::TryAgain) => {
                std::thread::sleep(pause);
                pause = pause.saturating_mul(2).min(std::time::Duration::from_millis(100));
            }
            other => return other.map_err(|e| e.to_string()),
        }
    }
}
