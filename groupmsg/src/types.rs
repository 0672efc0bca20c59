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
/// (total order, including to the sender): it never built SAFE. `groupd` does: a SAFE
/// message is delivered once every member has received it (see the crate docs); the
/// in-process bus, where receiving is delivering, and corosync deliver it as AGREED.
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

/// A totem ring's identity (`struct cpg_ring_id`): the node that formed the ring and the
/// ring's sequence number. Programs such as `dlm_controld` compare it to know that the
/// membership they acted on is the current one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RingId {
    /// The node that formed the ring.
    pub nodeid: u32,
    /// The ring's sequence number, growing with every new ring.
    pub seq: u64,
}

impl fmt::Display for RingId {
    /// As corosync prints it: `nodeid.seq`, the sequence in hexadecimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:x}", self.nodeid, self.seq)
    }
}

/// The flags of `cpg_model_v1_data_t`, for [`Cpg::model_initialize`](crate::Cpg::model_initialize).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ModelFlags(u32);

impl ModelFlags {
    /// No flags: totem changes arrive as the ring changes, none at the start.
    pub const NONE: ModelFlags = ModelFlags(0);
    /// `CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF`: the current ring is delivered once, right
    /// after the handle's first join completes, as well as every change after.
    pub const DELIVER_INITIAL_TOTEM_CONF: ModelFlags = ModelFlags(1);

    /// The C value.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Flags from their C value; unknown bits are `InvalidParam`, as libcpg answers.
    pub fn from_bits(bits: u32) -> Result<ModelFlags, CsError> {
        if bits & !Self::DELIVER_INITIAL_TOTEM_CONF.0 != 0 {
            return Err(CsError::InvalidParam);
        }
        Ok(ModelFlags(bits))
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: ModelFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

/// What [`Cpg::iterate`](crate::Cpg::iterate) lists (`cpg_iteration_type_t`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Iteration {
    /// `CPG_ITERATION_NAME_ONLY`: every group with members, once each.
    NameOnly,
    /// `CPG_ITERATION_ONE_GROUP`: the members of one group (none when it has none).
    OneGroup(GroupName),
    /// `CPG_ITERATION_ALL`: every member of every group.
    All,
}

/// One entry of an iteration (`struct cpg_iteration_description_t`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IterationEntry {
    /// The group.
    pub group: GroupName,
    /// The member; `None` for [`Iteration::NameOnly`] (where libcpg gives zeros).
    pub member: Option<Member>,
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
    /// The totem ring changed, or (with [`ModelFlags::DELIVER_INITIAL_TOTEM_CONF`]) the
    /// ring at the first join (`cpg_totem_confchg_fn_t`).
    TotemConfChg {
        /// The ring.
        ring_id: RingId,
        /// The node ids in it.
        nodes: Vec<u32>,
    },
}
