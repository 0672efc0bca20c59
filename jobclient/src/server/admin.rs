//! The administrative text protocol on the binary port: `status`, `workers`, `version`,
//! `maxqueue`, `cancel job`, `show jobs`, `getpid`, and `shutdown` (which gearmand 1.1.20
//! lacks). Multi-line answers end with a line holding a single `.`.

use std::fmt::Write;

use super::core::{Action, ConnId, Core};

/// The version string the admin `version` command answers with (after `OK `).
pub const VERSION: &str = concat!("jobd ", env!("CARGO_PKG_VERSION"));

/// The reply to a state-changing command from a peer the admin policy does not allow.
const DENIED: &str = "ERR PERMISSION_DENIED Permission+denied\n";

pub(crate) fn line(core: &mut Core, from: ConnId, line: &str) -> Action {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut out = String::new();
    let changes_state = matches!(words.first(), Some(&"shutdown" | &"maxqueue"))
        || words.starts_with(&["cancel", "job"]);
    if changes_state && !core.may_admin(from) {
        core.send_text(from, DENIED);
        return Action::Continue;
    }
    let action = match words.as_slice() {
        ["status"] => {
            for (f, total, running, workers) in core.status_rows() {
                let _ = writeln!(out, "{f}\t{total}\t{running}\t{workers}");
            }
            out.push_str(".\n");
            Action::Continue
        }
        ["workers"] => {
            for (id, peer, client_id, functions) in core.worker_rows() {
                let _ = writeln!(out, "{id} {peer} {client_id} : {}", functions.join(" "));
            }
            out.push_str(".\n");
            Action::Continue
        }
        ["version"] => {
            let _ = writeln!(out, "OK {VERSION}");
            Action::Continue
        }
        ["getpid"] => {
            let _ = writeln!(out, "OK {}", std::process::id());
            Action::Continue
        }
        ["maxqueue", function, sizes @ ..] => {
            let parse = |s: &str| s.parse::<i64>().map(|n| n.max(0) as usize);
            let max = match sizes {
                [] => Ok([0; 3]),
                [n] => parse(n).map(|n| [n; 3]),
                [h, n, l] => parse(h).and_then(|h| Ok([h, parse(n)?, parse(l)?])),
                _ => "not a count".parse::<i64>().map(|_| [0; 3]),
            };
            match max {
                Ok(max) => {
                    core.set_max_queue(function, max);
                    out.push_str("OK\n");
                }
                Err(_) => out.push_str(
                    "ERR INVALID_ARGUMENTS An+error+occurred+while+trying+to+parse+the+arguments\n",
                ),
            }
            Action::Continue
        }
        ["cancel", "job", handle] => {
            if core.cancel(handle) {
                out.push_str("OK\n");
            } else {
                out.push_str("ERR UNKNOWN_JOB Job+does+not+exist+or+is+running\n");
            }
            Action::Continue
        }
        ["show", "jobs"] => {
            for (handle, retries, running) in core.job_rows() {
                let _ = writeln!(out, "{handle}\t{retries}\t0\t{}", u8::from(!running));
            }
            out.push_str(".\n");
            Action::Continue
        }
        ["shutdown"] => {
            out.push_str("OK\n");
            Action::Shutdown
        }
        ["shutdown", "graceful"] => {
            out.push_str("OK\n");
            Action::Drain
        }
        [] => Action::Continue,
        _ => {
            out.push_str("ERR UNKNOWN_COMMAND Unknown+server+command\n");
            Action::Continue
        }
    };
    core.send_text(from, &out);
    action
}
