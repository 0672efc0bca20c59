//! A handle's connection to its backend, one interface over the three, and what happens when
//! the connection is lost.
//!
//! A `groupd` or corosync connection that fails (the daemon went away: a closed socket, an IPC
//! error from libcpg) answers that call with [`CsError::Library`], as libcpg does, and is then
//! dropped: every later call is [`CsError::BadHandle`] until
//! [`Cpg::reinitialize`](crate::Cpg::reinitialize) opens a new one. So the failure is reported
//! once, with a typed error, and nothing waits on a dead socket.

use std::io::IoSlice;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::daemon_client::DaemonClient;
use crate::local::LocalBus;
use crate::{Backend, CpgEvent, CsError, GroupName, Iteration, IterationEntry, Member, ModelFlags};

pub(crate) enum Conn {
    Local {
        bus: LocalBus,
        id: u64,
    },
    Daemon(Box<DaemonClient>),
    #[cfg(feature = "corosync")]
    Corosync(Box<crate::corosync::CorosyncConn>),
    /// The connection failed and was dropped.
    Lost,
}

/// A new connection: it, the member it is, what to poll, what a stopper writes.
pub(crate) type Opened = (Conn, Member, Arc<OwnedFd>, Arc<OwnedFd>);

impl Conn {
    pub(crate) fn open(backend: &Backend, flags: ModelFlags) -> Result<Opened, CsError> {
        Ok(match backend {
            Backend::Local(bus) => {
                let (id, member, signal) = bus.register()?;
                bus.set_flags(id, flags);
                (Conn::Local { bus: bus.clone(), id }, member, signal.clone(), signal)
            }
            Backend::Daemon(path) => {
                let client = DaemonClient::connect(path, flags)?;
                let (member, signal, wake) =
                    (client.member, client.epoll.clone(), client.wake.clone());
                (Conn::Daemon(Box::new(client)), member, signal, wake)
            }
            #[cfg(feature = "corosync")]
            Backend::Corosync => {
                let c = crate::corosync::CorosyncConn::connect(flags)?;
                let (member, signal, wake) = (c.member, c.epoll.clone(), c.wake.clone());
                (Conn::Corosync(Box::new(c)), member, signal, wake)
            }
        })
    }

    /// Runs `f` on a live connection; a remote connection that fails with `Library` is
    /// dropped (see the module docs).
    fn guard<T>(&mut self, f: impl FnOnce(&mut Conn) -> Result<T, CsError>) -> Result<T, CsError> {
        if matches!(self, Conn::Lost) {
            return Err(CsError::BadHandle);
        }
        let result = f(self);
        if result.as_ref().err() == Some(&CsError::Library) && !matches!(self, Conn::Local { .. }) {
            log::warn!("the connection to the group backend was lost");
            *self = Conn::Lost;
        }
        result
    }

    pub(crate) fn is_lost(&self) -> bool {
        matches!(self, Conn::Lost)
    }

    /// Finalizes a local handle (a remote one is finalized by closing it).
    pub(crate) fn finalize(&mut self) {
        if let Conn::Local { bus, id } = self {
            bus.finalize(*id);
        }
        *self = Conn::Lost;
    }

    pub(crate) fn pop(&mut self) -> Result<Option<CpgEvent>, CsError> {
        self.guard(|c| match c {
            Conn::Local { bus, id } => bus.pop(*id),
            Conn::Daemon(c) => c.pop(),
            #[cfg(feature = "corosync")]
            Conn::Corosync(c) => c.pop(),
            Conn::Lost => Err(CsError::BadHandle),
        })
    }

    /// Events ready to pop, and whether more may wait behind them (corosync's batches).
    pub(crate) fn pending(&mut self) -> Result<(usize, bool), CsError> {
        self.guard(|c| match c {
            Conn::Local { bus, id } => Ok((bus.pending(*id)?, false)),
            Conn::Daemon(c) => Ok((c.pending()?, false)),
            #[cfg(feature = "corosync")]
            Conn::Corosync(c) => {
                let n = c.pending()?;
                Ok((n, c.may_have_more()))
            }
            Conn::Lost => Err(CsError::BadHandle),
        })
    }

    pub(crate) fn join(&mut self, group: &GroupName) -> Result<(), CsError> {
        self.guard(|c| match c {
            Conn::Local { bus, id } => bus.join(*id, group),
            Conn::Daemon(c) => c.join(group),
            #[cfg(feature = "corosync")]
            Conn::Corosync(c) => c.join(group),
            Conn::Lost => Err(CsError::BadHandle),
        })
    }

    pub(crate) fn leave(&mut self) -> Result<(), CsError> {
        self.guard(|c| match c {
            Conn::Local { bus, id } => bus.leave(*id),
            Conn::Daemon(c) => c.leave(),
            #[cfg(feature = "corosync")]
            Conn::Corosync(c) => c.leave(),
            Conn::Lost => Err(CsError::BadHandle),
        })
    }

    /// A multicast; `block: false` never waits on a `groupd` connection (see
    /// `DaemonClient::mcast`). `safe`: SAFE delivery, which only `groupd` gives (the local
    /// bus delivers on receipt, corosync never built it: AGREED on both).
    pub(crate) fn mcast(
        &mut self,
        iov: &[IoSlice<'_>],
        block: bool,
        safe: bool,
    ) -> Result<(), CsError> {
        self.guard(|c| {
            // libcpg takes the slices as they are; the other backends need one buffer.
            #[cfg(feature = "corosync")]
            if let Conn::Corosync(c) = c {
                return c.mcast(iov);
            }
            let mut msg = Vec::with_capacity(iov.iter().map(|s| s.len()).sum());
            for s in iov {
                msg.extend_from_slice(s);
            }
            match c {
                Conn::Local { bus, id } => bus.mcast(*id, msg),
                Conn::Daemon(c) => c.mcast(msg, block, safe),
                #[cfg(feature = "corosync")]
                Conn::Corosync(c) => c.mcast(&[IoSlice::new(&msg)]),
                Conn::Lost => Err(CsError::BadHandle),
            }
        })
    }

    /// Before sleeping, a `groupd` connection polls its socket briefly: true when that found
    /// an event.
    pub(crate) fn spin(&mut self) -> Result<bool, CsError> {
        self.guard(|c| match c {
            Conn::Daemon(c) => c.spin(crate::daemon::SPIN),
            _ => Ok(false),
        })
    }

    pub(crate) fn members(&mut self) -> Result<Vec<Member>, CsError> {
        self.guard(|c| match c {
            Conn::Local { bus, id } => bus.members(*id),
            Conn::Daemon(c) => c.members(),
            #[cfg(feature = "corosync")]
            Conn::Corosync(c) => c.members(),
            Conn::Lost => Err(CsError::BadHandle),
        })
    }

    pub(crate) fn iterate(&mut self, kind: &Iteration) -> Result<Vec<IterationEntry>, CsError> {
        self.guard(|c| match c {
            Conn::Local { bus, .. } => Ok(crate::local::iterate(bus.groups(), kind)),
            Conn::Daemon(c) => Ok(crate::local::iterate(c.groups()?, kind)),
            #[cfg(feature = "corosync")]
            Conn::Corosync(c) => c.iterate(kind),
            Conn::Lost => Err(CsError::BadHandle),
        })
    }

    pub(crate) fn max_atomic(&self) -> usize {
        #[cfg(feature = "corosync")]
        if let Conn::Corosync(c) = self {
            return c.max_atomic();
        }
        crate::local::LOCAL_MAX_MESSAGE
    }

    pub(crate) fn flow_control(&self) -> bool {
        match self {
            Conn::Local { bus, id } => bus.flow_control(*id),
            Conn::Daemon(c) => c.flow_control(),
            #[cfg(feature = "corosync")]
            Conn::Corosync(c) => c.flow_control(),
            Conn::Lost => false,
        }
    }

    /// The local bus and handle id, for a waiter on the bus's flow control.
    pub(crate) fn local(&self) -> Option<(LocalBus, u64)> {
        match self {
            Conn::Local { bus, id } => Some((bus.clone(), *id)),
            _ => None,
        }
    }
}
