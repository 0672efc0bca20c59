//! groupmsg: Corosync CPG semantics (closed process groups with total-order multicast and
//! membership changes).
//!
//! This crate is a skeleton today: the CPG API (`initialize`, `dispatch`, `join`, `mcast_joined`,
//! the deliver and confchg callbacks), the local backend with its `groupd` daemon, and the
//! corosync backend land with its own issue, on the shared [`evcore`] reactor and its
//! [`evcore::Dispatch`] modes.

#![forbid(unsafe_code)]

pub use evcore::Dispatch;
