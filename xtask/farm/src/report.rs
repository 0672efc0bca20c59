//! The report: what ran, what moved, what the group saw, and whether every check held.

use std::time::Duration;

use groupmsg::Reason;

use crate::check::Checked;
use crate::coordinator::{existing, State, Summary};
use crate::group::Where;
use crate::options::Opts;

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Prints the report; returns whether every check held.
pub(crate) fn print(
    o: &Opts,
    st: &State,
    checked: &Checked,
    served: (u64, u64, u64),
    elapsed: Duration,
    me: u32,
    place: &Where,
) -> bool {
    let mut problems: Vec<String> = st.failed_jobs.clone();
    problems.extend(checked.problems.iter().take(10).cloned());
    if checked.problems.len() > 10 {
        problems.push(format!("... and {} more", checked.problems.len() - 10));
    }
    let want_ok = existing(o.urls);
    let want_missing = o.urls as u64 - want_ok;
    let total: Summary = st.done.values().fold(Summary::default(), |a, (_, s)| Summary {
        ok: a.ok + s.ok,
        missing: a.missing + s.missing,
        failed: a.failed + s.failed,
        bytes: a.bytes + s.bytes,
    });
    let finished: usize = st.finished.values().sum();
    if finished != st.jobs_total || st.done.len() != st.jobs_total {
        problems.push(format!(
            "{} jobs submitted, {finished} finished, {} reported done in the group",
            st.jobs_total,
            st.done.len()
        ));
    }
    if (total.ok, total.missing, total.failed) != (want_ok, want_missing, 0) {
        problems.push(format!(
            "workers fetched {} files, {} missing, {} failed; expected {want_ok}, {want_missing}, 0",
            total.ok, total.missing, total.failed
        ));
    }
    if checked.files as u64 != want_ok {
        problems.push(format!("{} of {want_ok} files verified", checked.files));
    }
    // The kill: its job must have been finished by another worker, and the group must have
    // seen the process go down.
    let requeue = match &st.victim {
        Some((w, pid, job)) => {
            let finisher = st.done.get(job).map(|(p, _)| *p);
            match finisher {
                Some(p) if p != *pid => {
                    format!("worker {w} (pid {pid}) killed mid-job; its job {job} was requeued and finished by pid {p}")
                }
                _ => {
                    problems.push(format!(
                        "the job {job} of killed worker {w} was not finished by another"
                    ));
                    format!("worker {w} (pid {pid}) killed, but its job was not requeued")
                }
            }
        }
        None => {
            problems.push("no worker was killed mid-job".into());
            "no worker was killed".into()
        }
    };
    let count = |r: Reason| st.left.iter().filter(|(_, why)| *why == r).count();
    let (leaves, procdowns) = (count(Reason::Leave), count(Reason::ProcDown));
    if let Some((_, pid, _)) = &st.victim {
        if !st.left.contains(&(*pid, Reason::ProcDown)) {
            problems.push(format!("the group did not see pid {pid} go down"));
        }
    }
    let secs = elapsed.as_secs_f64().max(1e-9);
    let transfers = total.ok + total.missing + total.failed;
    let group_place = match place {
        Where::Groupd(_) => "groupd",
        Where::Corosync => "corosync",
    };
    let kinds: Vec<String> = st.finished.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!("fetch farm: jobclient + multixfer + reqqueue + groupmsg on one reactor each");
    println!(
        "  setup       {} URLs ({want_missing} missing on purpose), {} worker processes, {} transfers in flight each",
        o.urls, o.workers, o.parallel
    );
    println!(
        "  jobs        {finished} of {} done ({}), {} status updates, {} warnings",
        st.jobs_total,
        kinds.join(", "),
        st.status_updates,
        st.warnings
    );
    println!("  requeue     {requeue}");
    println!(
        "  transfers   {transfers} ({} ok, {} 404 reported as warnings, {} failed); server saw {} requests on {} connections",
        total.ok, total.missing, total.failed, served.0, served.1
    );
    println!(
        "  bytes       {} fetched, {} in {} output records ({} verified files)",
        mb(total.bytes),
        mb(checked.bytes),
        checked.records,
        checked.files
    );
    println!(
        "  throughput  {:.0} transfers/s, {:.1} MB/s over {:.2} s",
        transfers as f64 / secs,
        total.bytes as f64 / 1e6 / secs,
        secs
    );
    println!(
        "  group       {} on {group_place}: {} joins, {leaves} leaves, {procdowns} process downs (coordinator pid {me})",
        crate::group::NAME,
        st.joined.len()
    );
    for line in st.groupd_log.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        println!("              groupd: {line}");
    }
    if problems.is_empty() {
        println!("  check       OK: every file arrived intact");
        true
    } else {
        println!("  check       FAILED:");
        for p in &problems {
            println!("              - {p}");
        }
        false
    }
}
