//! The progress group: a groupmsg handle as an event stream that tasks share, and the text
//! messages workers and the coordinator exchange in it.

use std::cell::RefCell;
use std::io::IoSlice;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use evcore::Handle;
use futures_util::StreamExt;
use groupmsg::{Backend, Collect, Cpg, CpgEvent, CsError, EventStream, GroupName, Guarantee};

/// The group every farm process joins.
pub(crate) const NAME: &str = "fetch-farm";

/// Where the group lives.
#[derive(Clone, Debug)]
pub(crate) enum Where {
    /// groupd at this socket path.
    Groupd(PathBuf),
    /// Real corosync (feature `corosync`).
    Corosync,
}

impl Where {
    fn backend(&self) -> Result<Backend, String> {
        match self {
            Where::Groupd(path) => Ok(Backend::Daemon(path.clone())),
            #[cfg(feature = "corosync")]
            Where::Corosync => Ok(Backend::Corosync),
            #[cfg(not(feature = "corosync"))]
            Where::Corosync => Err("this build has no corosync backend: run \
                 `cargo run -p farm --features corosync -- --corosync`"
                .into()),
        }
    }

    /// As command-line arguments for a worker.
    pub(crate) fn to_args(&self) -> Vec<String> {
        match self {
            Where::Groupd(p) => vec!["--group-socket".into(), p.display().to_string()],
            Where::Corosync => vec!["--corosync".into()],
        }
    }
}

/// A joined member, shared by the tasks of one process.
#[derive(Clone)]
pub(crate) struct Group(Rc<RefCell<EventStream>>);

impl Group {
    pub(crate) fn join(place: &Where, handle: &Handle) -> Result<Group, String> {
        let cpg = Cpg::initialize(place.backend()?, Collect::default())
            .map_err(|e| format!("joining the progress group: {e}"))?;
        let mut stream = EventStream::new(cpg, handle).map_err(|e| e.to_string())?;
        stream
            .cpg_mut()
            .join(&GroupName::new(NAME).expect("a valid name"))
            .map_err(|e| format!("joining the progress group: {e}"))?;
        Ok(Group(Rc::new(RefCell::new(stream))))
    }

    /// Multicasts one message, waiting out flow control.
    pub(crate) async fn send(&self, handle: &Handle, msg: &str) -> Result<(), String> {
        loop {
            let sent = self
                .0
                .borrow_mut()
                .cpg_mut()
                .mcast_joined(Guarantee::Agreed, &[IoSlice::new(msg.as_bytes())]);
            match sent {
                Ok(()) => return Ok(()),
                // Members are behind: give the loop (and our own event task) a moment.
                Err(CsError::TryAgain) => handle.sleep(Duration::from_millis(1)).await,
                Err(e) => return Err(format!("multicast: {e}")),
            }
        }
    }

    /// The next event.
    pub(crate) async fn next(&self) -> Option<CpgEvent> {
        futures_util::future::poll_fn(|cx| self.0.borrow_mut().poll_next_unpin(cx)).await?.ok()
    }

    /// Leaves the group (members see Leave, not ProcDown).
    pub(crate) fn leave(&self) {
        let _ = self.0.borrow_mut().cpg_mut().leave();
    }

    /// This process's pid as the group knows it.
    pub(crate) fn pid(&self) -> u32 {
        self.0.borrow_mut().cpg_mut().member().pid
    }
}
