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
    /// `CS_ERR_NO_SPACE` (15).
    #[error("no space")]
    NoSpace,
    /// `CS_ERR_INTERRUPT` (16): a membership change cut a fragmented multicast (over 1 MB through libcpg); retryable.
    #[error("interrupted")]
    Interrupt,
    /// `CS_ERR_NAME_NOT_FOUND` (17).
    #[error("name not found")]
    NameNotFound,
    /// `CS_ERR_NO_RESOURCES` (18).
    #[error("no resources")]
    NoResources,
    /// `CS_ERR_NOT_SUPPORTED` (19).
    #[error("not supported")]
    NotSupported,
    /// `CS_ERR_BAD_OPERATION` (20).
    #[error("bad operation")]
    BadOperation,
    /// `CS_ERR_FAILED_OPERATION` (21).
    #[error("operation failed")]
    FailedOperation,
    /// `CS_ERR_MESSAGE_ERROR` (22).
    #[error("message error")]
    MessageError,
    /// `CS_ERR_QUEUE_FULL` (23): the IPC queue is full; retryable.
    #[error("queue full")]
    QueueFull,
    /// `CS_ERR_QUEUE_NOT_AVAILABLE` (24).
    #[error("queue not available")]
    QueueNotAvailable,
    /// `CS_ERR_BAD_FLAGS` (25).
    #[error("bad flags")]
    BadFlags,
    /// `CS_ERR_TOO_BIG` (26): a message over the backend's limit.
    #[error("too big")]
    TooBig,
    /// `CS_ERR_NO_SECTIONS` (27).
    #[error("no sections")]
    NoSections,
    /// `CS_ERR_CONTEXT_NOT_FOUND` (28).
    #[error("context not found")]
    ContextNotFound,
    /// `CS_ERR_TOO_MANY_GROUPS` (30).
    #[error("too many groups")]
    TooManyGroups,
    /// `CS_ERR_SECURITY` (100).
    #[error("security error")]
    Security,
}

impl CsError {
    /// Whether the same call may succeed if made again later, as Pacemaker treats these:
    /// `TryAgain` (nothing to dispatch, flow control), `QueueFull` and `Interrupt` (a
    /// membership change cut a fragmented multicast).
    pub const fn is_retryable(self) -> bool {
        matches!(self, CsError::TryAgain | CsError::QueueFull | CsError::Interrupt)
    }

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
            CsError::NoSpace => 15,
            CsError::Interrupt => 16,
            CsError::NameNotFound => 17,
            CsError::NoResources => 18,
            CsError::NotSupported => 19,
            CsError::BadOperation => 20,
            CsError::FailedOperation => 21,
            CsError::MessageError => 22,
            CsError::QueueFull => 23,
            CsError::QueueNotAvailable => 24,
            CsError::BadFlags => 25,
            CsError::TooBig => 26,
            CsError::NoSections => 27,
            CsError::ContextNotFound => 28,
            CsError::TooManyGroups => 30,
            CsError::Security => 100,
        }
    }

    /// The error for a `cs_error_t` value: every one corosync defines (2 to 28, 30 and 100);
    /// `None` for `CS_OK` (1) and for codes it does not define.
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
            15 => CsError::NoSpace,
            16 => CsError::Interrupt,
            17 => CsError::NameNotFound,
            18 => CsError::NoResources,
            19 => CsError::NotSupported,
            20 => CsError::BadOperation,
            21 => CsError::FailedOperation,
            22 => CsError::MessageError,
            23 => CsError::QueueFull,
            24 => CsError::QueueNotAvailable,
            25 => CsError::BadFlags,
            26 => CsError::TooBig,
            27 => CsError::NoSections,
            28 => CsError::ContextNotFound,
            30 => CsError::TooManyGroups,
            100 => CsError::Security,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::CsError;

    #[test]
    fn every_cs_error_t_code_maps_one_to_one() {
        let defined: Vec<u32> = (2..=28).chain([30, 100]).collect();
        assert_eq!(defined.len(), 29);
        for code in 0..=200 {
            match CsError::from_code(code) {
                Some(e) => {
                    assert!(defined.contains(&code), "{code} is not corosync's");
                    assert_eq!(e.code(), code);
                }
                None => assert!(!defined.contains(&code), "{code} unmapped"),
            }
        }
        let retryable: Vec<u32> = defined
            .iter()
            .copied()
            .filter(|&c| CsError::from_code(c).unwrap().is_retryable())
            .collect();
        assert_eq!(retryable, [6, 16, 23]);
    }
}
