//! The administrative text protocol on the binary port, answered byte for byte as gearmand
//! 1.1.20 answers it (measured, `tests/gearadmin.rs`): `status`, `prioritystatus`, `workers`,
//! `show jobs`, `show unique jobs`, `maxqueue`, `cancel job`, `create function`,
//! `drop function`, `verbose`, `version`, `getpid`, and `shutdown [graceful]` (which gearmand
//! 1.1.20 lacks). Commands are case-insensitive, as gearmand's; multi-line answers end with a
//! line holding a single `.`; single-line `OK` and `ERR` answers end with CR LF where
//! gearmand's do.
//!
//! Where we differ on purpose: `version` names jobd; `status` lists functions sorted by name
//! (gearmand: in hash order); `drop function` refuses a function with jobs still queued
//! (gearmand answers OK and leaves those jobs in memory where no worker can reach them);
//! `maxqueue` for a function not yet known applies once it is (gearmand ignores it).

use std::fmt::Write;

use super::core::{Action, ConnId, Core};

/// The version string the admin `version` command answers with (after `OK `).
pub const VERSION: &str = concat!("jobd ", env!("CARGO_PKG_VERSION"));

/// The reply to a state-changing command from a peer the admin policy does not allow.
const DENIED: &str = "ERR PERMISSION_DENIED Permission+denied\r\n";
const SUCCESS: &str = "OK\r\n";
const UNKNOWN_SHOW: &str = "ERR UNKNOWN_SHOW_ARGUMENTS\r\n";
const UNKNOWN_JOB: &str = "ERR UNKNOWN_JOB\r\n";
const INTERNAL: &str = "ERR UNKNOWN_ERROR\r\n";

fn bad_args(command: &str) -> String {
    format!(
        "ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+{command}\r\n"
    )
}

fn unknown(command: &str) -> String {
    format!("ERR UNKNOWN_COMMAND Unknown+server+command{command}\r\n")
}

/// C's `atoi`, as gearmand reads `maxqueue` sizes: leading blanks, a sign, digits up to the
/// first non-digit; anything else is 0. Negative sizes are 0 (no limit).
fn atoi(s: &str) -> usize {
    let s = s.trim_start();
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let end = digits.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(digits.len());
    let n = digits[..end].parse::<u64>().unwrap_or(if end == 0 { 0 } else { u64::MAX });
    if negative {
        0
    } else {
        // gearmand keeps the limit in a u32.
        n.min(u64::from(u32::MAX)) as usize
    }
}

/// The name gearmand gives the log level (`verbose`).
fn verbose_name() -> &'static str {
    match log::max_level() {
        log::LevelFilter::Off | log::LevelFilter::Error => "ERROR",
        log::LevelFilter::Warn => "WARNING",
        log::LevelFilter::Info => "INFO",
        log::LevelFilter::Debug | log::LevelFilter::Trace => "DEBUG",
    }
}

pub(crate) fn line(core: &mut Core, from: ConnId, line: &str) -> Action {
    let words: Vec<&str> = line.split_whitespace().collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    let mut out = String::new();
    let changes_state =
        matches!(lower.first(), Some(&"shutdown" | &"maxqueue" | &"cancel" | &"drop" | &"create"));
    if changes_state && !core.may_admin(from) {
        core.send_text(from, DENIED);
        return Action::Continue;
    }
    let mut action = Action::Continue;
    match lower.as_slice() {
        [] => out.push_str(&unknown("")),
        ["status", ..] => {
            for (f, total, running, workers) in core.status_rows() {
                let _ = writeln!(out, "{f}\t{total}\t{running}\t{workers}");
            }
            out.push_str(".\n");
        }
        ["prioritystatus", ..] => {
            for (f, [high, normal, low], workers) in core.priority_rows() {
                let _ = writeln!(out, "{f}\t{high}\t{normal}\t{low}\t{workers}");
            }
            out.push_str(".\n");
        }
        ["workers", ..] => {
            for (fd, peer, client_id, functions) in core.worker_rows() {
                let _ = write!(out, "{fd} {peer} {client_id} :");
                for f in functions {
                    let _ = write!(out, " {f}");
                }
                out.push('\n');
            }
            out.push_str(".\n");
        }
        ["version", ..] => {
            let _ = writeln!(out, "OK {VERSION}");
        }
        ["getpid", ..] => {
            let _ = writeln!(out, "OK {}", std::process::id());
        }
        ["verbose", ..] => {
            let _ = writeln!(out, "OK {}", verbose_name());
        }
        ["maxqueue"] => out.push_str(&bad_args(words[0])),
        ["maxqueue", _, sizes @ ..] => {
            // gearmand's reading: one size applies to every priority; with more, each in
            // turn (high, normal, low) and a missing one is no limit.
            let mut max = [0usize; 3];
            for (i, s) in sizes.iter().take(3).enumerate() {
                max[i] = atoi(s);
            }
            if sizes.len() <= 1 {
                max = [max[0]; 3];
            }
            core.set_max_queue(words[1], max);
            out.push_str(SUCCESS);
        }
        ["cancel", "job", _] => {
            out.push_str(if core.cancel(words[2]) { SUCCESS } else { UNKNOWN_JOB });
        }
        ["cancel", _, _, ..] => out.push_str(INTERNAL),
        ["show", "unique", "jobs"] => {
            for unique in core.unique_rows() {
                let _ = writeln!(out, "{unique}");
            }
            out.push_str(".\n");
        }
        ["show", "jobs"] => {
            for (handle, retries, running) in core.job_rows() {
                let _ = writeln!(out, "{handle}\t{retries}\t0\t{}", u8::from(!running));
            }
            out.push_str(".\n");
        }
        ["show", _, ..] => out.push_str(UNKNOWN_SHOW),
        ["create", "function", _] => {
            core.create_function(words[2]);
            out.push_str(SUCCESS);
        }
        ["create", ..] => out.push_str(&bad_args(words[0])),
        ["drop", "function", _] => out.push_str(match core.drop_function(words[2]) {
            Dropped::Done => SUCCESS,
            Dropped::Busy => "ERR there are still connected workers or executing clients\r\n",
            Dropped::Queued => "ERR there are still queued jobs\r\n",
            Dropped::NotFound => "ERR function not found\r\n",
        }),
        ["drop", ..] => out.push_str(&bad_args(words[0])),
        ["shutdown"] => {
            out.push_str(SUCCESS);
            action = Action::Shutdown;
        }
        ["shutdown", "graceful"] => {
            out.push_str(SUCCESS);
            action = Action::Drain;
        }
        _ => out.push_str(&unknown(words[0])),
    }
    core.send_text(from, &out);
    action
}

/// What `drop function` found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// Forgotten.
    Done,
    /// Workers can do it, or jobs of it run.
    Busy,
    /// Jobs of it wait in its queues (or for their time): dropping it would strand them.
    Queued,
    /// No such function.
    NotFound,
}
