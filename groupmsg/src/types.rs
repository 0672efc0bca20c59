//! Group names, members, reasons, guarantees and events.

use std::fmt;

use crate::CsError;

/// The longest group name (`CPG_MAX_NAME_LENGTH`).
pub const MAX_NAME: usize = 128;
/// The most members a membership list holds (`CPG_MEMBERS_MAX`).
pub const MAX_MEMBERS: usize = 128;

/// A process group's name: 1 to 128 bytes. Cheap to clone (shared, not copied), since every
/// event carries one.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupName(std::sync::Arc<[u8]>);

impl GroupName {
    /// Checks the length (`CS_ERR_NAME_TOO_LONG` over 128 bytes, `CS_ERR_INVALID_PARAM` when
    /// empty).
    pub fn new(name: impl AsRef<[u8]>) -> Result<GroupName, CsError> {
        let n = name.as_ref();
        if n.is_empty() {
            return Err(CsError::InvalidParam);
        }
        if n.len() > MAX_NAME {
            return Err(CsError::NameTooLong);
        }
        Ok(GroupName(n.into()))
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

/// Why a member joined or left (`CPG_REASON_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// `CPG_REASON_JOIN` (1).
    Join,
    /// `CPG_REASON_LEAVE` (2).
    Leave,
    /// `CPG_REASON_NODEDOWN` (3).
    NodeDown,
    /// `CPG_REASON_NODEUP` (4).
    NodeUp,
    /// `CPG_REASON_PROCDOWN` (5): the process ended (or dropped its handle) without leaving.
    ProcDown,
}

impl Reason {
    /// The C value.
    pub const fn code(self) -> u32 {
        match self {
            Reason::Join => 1,
            Reason::Leave => 2,
            Reason::NodeDown => 3,
            Reason::NodeUp => 4,
            Reason::ProcDown => 5,
        }
    }

    /// The lower-case name `groupcat --json` prints.
    pub const fn name(self) -> &'static str {
        match self {
            Reason::Join => "join",
            Reason::Leave => "leave",
            Reason::NodeDown => "nodedown",
            Reason::NodeUp => "nodeup",
            Reason::ProcDown => "procdown",
        }
    }
}

/// A group member: identity is `(nodeid, pid)`, as in CPG.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Member {
    /// The node.
    pub nodeid: u32,
    /// The process.
    pub pid: u32,
}

/// A member in a membership change, with why it is listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Change {
    /// Who.
    pub member: Member,
    /// Why.
    pub reason: Reason,
}

/// The delivery guarantee asked for (`CPG_TYPE_*`). Corosync delivers every one as AGREED
/// (total order, including to the sender); SAFE is not implemented by corosync, and neither
/// backend here makes it stronger than AGREED.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Guarantee {
    /// `CPG_TYPE_UNORDERED`.
    Unordered,
    /// `CPG_TYPE_FIFO`.
    Fifo,
    /// `CPG_TYPE_AGREED`.
    #[default]
    Agreed,
    /// `CPG_TYPE_SAFE`.
    Safe,
}

/// Whether a sender should hold back (`CPG_FLOW_CONTROL_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowControl {
    /// `CPG_FLOW_CONTROL_DISABLED`: send freely.
    Disabled,
    /// `CPG_FLOW_CONTROL_ENABLED`: some member is behind; multicasts return `TryAgain`.
    Enabled,
}

/// What a dispatch delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CpgEvent {
    /// A message (`cpg_deliver_fn_t`).
    Deliver {
        /// The group.
        group: GroupName,
        /// The sender.
        sender: Member,
        /// The message.
        msg: Vec<u8>,
    },
    /// A membership change (`cpg_confchg_fn_t`).
    ConfChg {
        /// The group.
        group: GroupName,
        /// The members after the change.
        members: Vec<Member>,
        /// Who left, and why.
        left: Vec<Change>,
        /// Who joined.
        joined: Vec<Change>,
    },
}
