//! Entry points for the fuzz targets (`xtask/fuzz`) and their seeded runs in `cargo test`
//! (`xtask/fuzzers`): the server's decoders and state machine on arbitrary bytes. Not an API.

use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::admin;
use super::core::{Core, Now};
use crate::proto::{Decoder, Frame};

/// The durable queue's replay on any bytes: no panic, no allocation beyond the input, and what
/// it recovers survives a compaction exactly.
pub(crate) fn journal_replay(bytes: &[u8]) {
    super::journal::fuzz_replay(bytes);
}

/// Several connections' byte streams through the server's decoder and core, as the driver
/// runs them, on a clock that moves with the input: binary packets and admin lines of any
/// kind, interleaved, with journal commits that succeed or fail. The input is a sequence of
/// `[selector, length, bytes...]` segments: the selector picks the connection (low two bits),
/// whether the clock moves (bit 2), whether the journal commit fails (bit 3) and whether the
/// connection dies after this segment (bit 4). Nothing may panic; every connection that broke
/// the protocol is dropped, and the server goes on with the others.
pub(crate) fn server_streams(input: &[u8]) {
    let mut core = Core::new("fuzz");
    core.journal = Some(BytesMut::new());
    let mut now = Now { mono: Instant::now(), unix: 1_700_000_000 };
    let decoder = Decoder::server();
    let mut conns: Vec<(usize, BytesMut)> = (0..4)
        .map(|i| (core.connect_with(format!("10.0.0.{i}"), i % 2 == 0), BytesMut::new()))
        .collect();
    let mut rest = input;
    while let [selector, len, tail @ ..] = rest {
        let n = (*len as usize).min(tail.len());
        let (segment, after) = tail.split_at(n);
        rest = after;
        let which = usize::from(selector & 3);
        let (id, buf) = &mut conns[which];
        buf.extend_from_slice(segment);
        let mut broken = false;
        loop {
            match decoder.decode(buf) {
                Ok(Some(Frame::Packet(p))) => {
                    if core.packet(*id, &p, now).is_err() {
                        broken = true;
                        break;
                    }
                }
                Ok(Some(Frame::Admin(line))) => {
                    admin::line(&mut core, *id, &line);
                }
                Ok(None) => break,
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        let _ = core.journal.as_mut().map(BytesMut::split);
        core.commit(selector & 8 == 0, now);
        if selector & 4 != 0 {
            let by = Duration::from_millis(u64::from(*len) * 97);
            now.mono += by;
            now.unix += by.as_secs();
            core.expire(now.mono);
        }
        if broken || selector & 16 != 0 {
            core.disconnect(*id);
            *id = core.connect_with(format!("10.0.1.{which}"), which % 2 == 0);
            buf.clear();
        }
        for id in std::mem::take(&mut core.dirty) {
            if let Some(c) = core.conn_mut(id) {
                c.out.clear();
            }
        }
    }
}
