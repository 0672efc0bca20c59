//! The durable queue's file format: an append-only log of background jobs added and done.
//!
//! Records: `A` priority:u8 epoch:u64 then handle, function, unique and data, each as a
//! big-endian u32 length and its bytes; `D` then the handle the same way. A record cut short
//! at the end of the file (the process died mid-write) is ignored; anything else malformed
//! stops the replay there, with what came before kept.

use bytes::{BufMut, Bytes, BytesMut};

/// A background job as the log keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Saved {
    pub(crate) handle: Bytes,
    pub(crate) function: Bytes,
    pub(crate) unique: Bytes,
    pub(crate) data: Bytes,
    pub(crate) priority: u8,
    /// Unix time to run at; 0 for at once.
    pub(crate) epoch: u64,
}

pub(crate) fn add(out: &mut BytesMut, job: &Saved) {
    out.put_u8(b'A');
    out.put_u8(job.priority);
    out.put_u64(job.epoch);
    for field in [&job.handle, &job.function, &job.unique, &job.data] {
        out.put_u32(field.len() as u32);
        out.put_slice(field);
    }
}

pub(crate) fn done(out: &mut BytesMut, handle: &[u8]) {
    out.put_u8(b'D');
    out.put_u32(handle.len() as u32);
    out.put_slice(handle);
}

/// Replays a log: the jobs added and not done, in the order they were added. The second value
/// says why the replay stopped early, if it did.
pub(crate) fn replay(bytes: &[u8]) -> (Vec<Saved>, Option<&'static str>) {
    let mut live: Vec<Saved> = Vec::new();
    let mut r = Reader { bytes, at: 0 };
    while r.at < bytes.len() {
        let start = r.at;
        let parsed = match r.u8() {
            Some(b'A') => (|| {
                let priority = r.u8()?;
                let epoch = r.u64()?;
                let mut f = || r.field();
                Some(Some(Saved {
                    priority,
                    epoch,
                    handle: f()?,
                    function: f()?,
                    unique: f()?,
                    data: f()?,
                }))
            })(),
            Some(b'D') => r.field().map(|h| {
                live.retain(|j| j.handle != h);
                None
            }),
            Some(_) => return (live, Some("unknown record type")),
            None => None,
        };
        match parsed {
            Some(Some(job)) => live.push(job),
            Some(None) => {}
            None => {
                r.at = start;
                break;
            }
        }
    }
    let why = (r.at < bytes.len()).then_some("a record was cut short at the end (ignored)");
    (live, why)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| u64::from_be_bytes(b.try_into().expect("eight bytes")))
    }
    fn field(&mut self) -> Option<Bytes> {
        let len = u32::from_be_bytes(self.take(4)?.try_into().expect("four bytes")) as usize;
        // The length is checked against what is there before anything is allocated.
        self.take(len).map(Bytes::copy_from_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(h: &str, data: &str) -> Saved {
        Saved {
            handle: Bytes::copy_from_slice(h.as_bytes()),
            function: Bytes::from_static(b"f"),
            unique: Bytes::new(),
            data: Bytes::copy_from_slice(data.as_bytes()),
            priority: 1,
            epoch: 0,
        }
    }

    #[test]
    fn replay_keeps_what_is_not_done_in_order() {
        let mut log = BytesMut::new();
        add(&mut log, &job("H:1", "a"));
        add(&mut log, &job("H:2", "b"));
        add(&mut log, &job("H:3", "c"));
        done(&mut log, b"H:2");
        let (live, why) = replay(&log);
        assert_eq!(live, [job("H:1", "a"), job("H:3", "c")]);
        assert_eq!(why, None);
    }

    #[test]
    fn a_torn_tail_is_ignored_at_every_cut() {
        let mut log = BytesMut::new();
        add(&mut log, &job("H:1", "a"));
        let whole = log.len();
        add(&mut log, &job("H:2", "bbbb"));
        for cut in whole..log.len() {
            let (live, why) = replay(&log[..cut]);
            assert_eq!(live, [job("H:1", "a")], "cut at {cut}");
            assert_eq!(why.is_some(), cut > whole, "cut at {cut}");
        }
    }

    #[test]
    fn garbage_never_panics_or_over_allocates() {
        let (live, why) = replay(&[b'A', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert!(live.is_empty() && why.is_some());
        let (live, why) = replay(b"Zgarbage");
        assert!(live.is_empty() && why == Some("unknown record type"));
    }
}
