//! One CPG handle shared by many tokio tasks: a blocking thread dispatches while 100 tasks on
//! a multi-threaded runtime multicast through clones of its `CpgSender`.
//! `cargo run -p groupmsg --example tokio_group -- /run/groupd.sock` against a running
//! `groupd` (the test starts one of its own).

use std::error::Error;
use std::io::IoSlice;
use std::path::Path;
use std::sync::{Arc, Mutex};

use groupmsg::{Backend, Cpg, CsError, Dispatch, GroupName, Guarantee, Handler, Member};

/// Counts deliveries per sending task and checks each task's messages arrive in order.
#[derive(Default)]
struct Tally {
    next: Vec<usize>,
    out_of_order: usize,
    total: usize,
}

struct Counter(Arc<Mutex<Tally>>);

impl Handler for Counter {
    fn deliver(&mut self, _: &GroupName, _: Member, msg: &[u8]) {
        let text = String::from_utf8_lossy(msg);
        let Some((task, i)) = text.split_once(':') else { return };
        let (Ok(task), Ok(i)) = (task.parse::<usize>(), i.parse::<usize>()) else { return };
        let mut t = self.0.lock().unwrap();
        if t.next.len() <= task {
            t.next.resize(task + 1, 0);
        }
        if t.next[task] != i {
            t.out_of_order += 1;
        }
        t.next[task] = i + 1;
        t.total += 1;
    }

    fn confchg(
        &mut self,
        _: &GroupName,
        _: &[Member],
        _: &[groupmsg::Change],
        _: &[groupmsg::Change],
    ) {
    }
}

/// Joins `group` through the groupd at `socket`; `tasks` tasks send `each` messages; returns
/// how many arrived, once all have, and how many came out of their sender's order.
pub(crate) async fn run(
    socket: &Path,
    tasks: usize,
    each: usize,
) -> Result<(usize, usize), Box<dyn Error + Send + Sync>> {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut cpg = Cpg::initialize(Backend::Daemon(socket.to_path_buf()), Counter(tally.clone()))?;
    cpg.join(&GroupName::new("tokio-example")?)?;
    let sender = cpg.sender();
    let want = tasks * each;
    // The dispatching side is a C-style loop: a blocking thread of tokio's.
    let seen = tally.clone();
    let dispatcher = tokio::task::spawn_blocking(move || -> Result<(), CsError> {
        while seen.lock().unwrap().total < want {
            cpg.dispatch(Dispatch::One)?;
        }
        cpg.leave()
    });
    let senders: Vec<_> = (0..tasks)
        .map(|t| {
            let sender = sender.clone();
            tokio::spawn(async move {
                for i in 0..each {
                    let msg = format!("{t}:{i}");
                    loop {
                        match sender
                            .mcast_joined(Guarantee::Agreed, &[IoSlice::new(msg.as_bytes())])
                        {
                            Ok(()) => break,
                            // Flow control: the dispatcher is draining; let it.
                            Err(CsError::TryAgain) => tokio::task::yield_now().await,
                            Err(e) => return Err(e),
                        }
                    }
                }
                Ok(())
            })
        })
        .collect();
    for s in senders {
        s.await??;
    }
    dispatcher.await??;
    let t = tally.lock().unwrap();
    Ok((t.total, t.out_of_order))
}

#[allow(dead_code)]
#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let socket =
        std::env::args().nth(1).map(Into::into).unwrap_or_else(groupmsg::default_socket_path);
    let (total, out_of_order) = run(&socket, 100, 100).await?;
    println!("{total} messages delivered, {out_of_order} out of their sender's order");
    Ok(())
}
