//! `CsError`: corosync's `cs_error_t`, code for code.

/// A corosync error, numbered exactly as `cs_error_t` (`CS_OK` is `Ok(())`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum CsError {
    /// `CS_ERR_LIBRARY` (2): the backend failed.
    #[error("library error")]
    Library,
    /// `CS_ERR_VERSION` (3).
    #[error("version mismatch")]
    Version,
    /// `CS_ERR_INIT` (4).
    #[error("initialization failed")]
    Init,
    /// `CS_ERR_TIMEOUT` (5).
    #[error("timed out")]
    Timeout,
    /// `CS_ERR_TRY_AGAIN` (6): nothing to dispatch now, or flow control is on.
    #[error("try again")]
    TryAgain,
    /// `CS_ERR_INVALID_PARAM` (7).
    #[error("invalid parameter")]
    InvalidParam,
    /// `CS_ERR_NO_MEMORY` (8).
    #[error("out of memory")]
    NoMemory,
    /// `CS_ERR_BAD_HANDLE` (9): the handle was finalized.
    #[error("bad handle")]
    BadHandle,
    /// `CS_ERR_BUSY` (10).
    #[error("busy")]
    Busy,
    /// `CS_ERR_ACCESS` (11).
    #[error("access denied")]
    Access,
    /// `CS_ERR_NOT_EXIST` (12): not joined (also for a multicast before join, which corosync
    /// silently drops instead).
    #[error("does not exist")]
    NotExist,
    /// `CS_ERR_NAME_TOO_LONG` (13): a group name over 128 bytes.
    #[error("name too long")]
    NameTooLong,
    /// `CS_ERR_EXIST` (14): already joined.
    #[error("already exists")]
    Exist,
    /// `CS_ERR_TOO_BIG` (26): a message over the backend's limit.
    #[error("too big")]
    TooBig,
    /// `CS_ERR_TOO_MANY_GROUPS` (30).
    #[error("too many groups")]
    TooManyGroups,
}

impl CsError {
    /// The `cs_error_t` value.
    pub const fn code(self) -> u32 {
        match self {
            CsError::Library => 2,
            CsError::Version => 3,
            CsError::Init => 4,
            CsError::Timeout => 5,
            CsError::TryAgain => 6,
            CsError::InvalidParam => 7,
            CsError::NoMemory => 8,
            CsError::BadHandle => 9,
            CsError::Busy => 10,
            CsError::Access => 11,
            CsError::NotExist => 12,
            CsError::NameTooLong => 13,
            CsError::Exist => 14,
            CsError::TooBig => 26,
            CsError::TooManyGroups => 30,
        }
    }

    /// The error for a `cs_error_t` value; `None` for `CS_OK` (1) and codes not mapped here.
    pub const fn from_code(code: u32) -> Option<CsError> {
        Some(match code {
            2 => CsError::Library,
            3 => CsError::Version,
            4 => CsError::Init,
            5 => CsError::Timeout,
            6 => CsError::TryAgain,
            7 => CsError::InvalidParam,
            8 => CsError::NoMemory,
            9 => CsError::BadHandle,
            10 => CsError::Busy,
            11 => CsError::Access,
            12 => CsError::NotExist,
            13 => CsError::NameTooLong,
            14 => CsError::Exist,
            26 => CsError::TooBig,
            30 => CsError::TooManyGroups,
            _ => return None,
        })
    }
}
