//! Without the `http2` feature no connection speaks HTTP/2: these types cannot exist and the
//! calls have nothing to do (no pool key asks for HTTP/2, so none is ever reached).

use super::Multi;
use crate::XferId;

/// No HTTP/2 connection exists without the feature.
pub(crate) enum H2Conn {}

/// No stream exists without the feature.
pub(crate) enum Stream {}

impl<T, S> Multi<T, S> {
    pub(super) fn h2_start(&mut self, _: usize, id: XferId) {
        let e = crate::XferError::BadRequest("HTTP/2 needs multixfer's `http2` feature".into());
        self.fail(id, e);
    }
    pub(super) fn h2_room(&mut self, _: usize) -> bool {
        false
    }
    pub(super) fn h2_attach(&mut self, _: usize, id: XferId) {
        self.h2_start(0, id);
    }
    pub(super) fn h2_ready(&mut self, _: usize) {}
    pub(super) fn h2_detach(&mut self, _: usize, _: XferId) {}
    pub(super) fn h2_run_kicks(&mut self) -> bool {
        false
    }
}
