//! The durable queue's file format: an append-only log of background jobs added and done.
//!
//! The file starts with the 8 bytes [`MAGIC`]. Each record is framed as a big-endian u32
//! payload length, a big-endian u32 CRC-32 (IEEE) of the payload, then the payload: `A`
//! priority:u8 epoch:u64 then handle, function, unique and data, each as a big-endian u32
//! length and its bytes; `R`, the same with a fifth field, the reducer (a background
//! `SUBMIT_REDUCE_JOB`); or `D` then the handle the same way. `R` came after the format's
//! first release without a new magic (a reader that knows it reads every older file): a
//! jobd from before it would take an `R` record for damage and skip it, so a downgrade loses
//! the background reduce jobs, and only those.
//!
//! # What a replay tells apart
//!
//! - **A torn tail**: the last record cut short or failing its checksum, with nothing valid
//!   after it. That is a process or machine that died mid-write, and the record was never
//!   acknowledged (a client hears `JOB_CREATED` only after the write and its `fdatasync`), so
//!   it is dropped, and said so.
//! - **Corruption in the middle**: a record that fails its checksum (or whose length runs
//!   off) with valid records after it. The replay searches forward for the next record that
//!   checks, keeps everything that checks, and reports each damaged stretch with its offset.
//!   Nothing after a damaged record is silently lost; the server keeps a copy of the damaged
//!   file beside it before compacting.
//! - **A file of the first format** (no [`MAGIC`]: records without lengths or checksums) is
//!   read as before, and rewritten in this format by the compaction at start.
//!
//! Replay is linear: each `D` finds its job through a map, not a scan.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};

/// The first bytes of a durable queue file of this format.
pub(crate) const MAGIC: &[u8; 8] = b"EVJQ\x00\x00\x00\x02";
/// Bytes before each record's payload: its length and its checksum.
const FRAME: usize = 8;

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
    /// The reducer of a `SUBMIT_REDUCE_JOB_BACKGROUND` job; empty for any other.
    pub(crate) reducer: Bytes,
}

/// Something a replay found wrong, with the byte offset in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Problem {
    /// The end of the file holds an incomplete or damaged record (dropped).
    TornTail { offset: usize, bytes: usize },
    /// Bytes in the middle failed their checksum or framing; replay went on after them.
    Corrupt { offset: usize, bytes: usize },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::TornTail { offset, bytes } => write!(
                f,
                "the last record, {bytes} bytes at offset {offset}, was cut short (a write that \
                 never completed, so never acknowledged): dropped"
            ),
            Problem::Corrupt { offset, bytes } => write!(
                f,
                "{bytes} bytes at offset {offset} failed their checksum; the records after them \
                 were kept"
            ),
        }
    }
}

/// Appends the record of a job added.
pub(crate) fn add(out: &mut BytesMut, job: &Saved) {
    framed(out, |out| {
        let reduce = !job.reducer.is_empty();
        out.put_u8(if reduce { b'R' } else { b'A' });
        out.put_u8(job.priority);
        out.put_u64(job.epoch);
        for field in [&job.handle, &job.function, &job.unique, &job.data] {
            out.put_u32(field.len() as u32);
            out.put_slice(field);
        }
        if reduce {
            out.put_u32(job.reducer.len() as u32);
            out.put_slice(&job.reducer);
        }
    });
}

/// The bytes [`add`] appends for `job`.
pub(crate) fn add_len(job: &Saved) -> usize {
    FRAME
        + 1
        + 1
        + 8
        + 4 * 4
        + job.handle.len()
        + job.function.len()
        + job.unique.len()
        + job.data.len()
        + if job.reducer.is_empty() { 0 } else { 4 + job.reducer.len() }
}

/// Appends the record of a job done.
pub(crate) fn done(out: &mut BytesMut, handle: &[u8]) {
    framed(out, |out| {
        out.put_u8(b'D');
        out.put_u32(handle.len() as u32);
        out.put_slice(handle);
    });
}

fn framed(out: &mut BytesMut, payload: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.put_bytes(0, FRAME);
    payload(out);
    let len = (out.len() - start - FRAME) as u32;
    let crc = crc32fast::hash(&out[start + FRAME..]);
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

/// One record decoded.
enum Record {
    Add(Saved),
    Done(Bytes),
}

/// The live jobs, in the order they were added, found by handle in O(1).
#[derive(Default)]
struct Live {
    jobs: Vec<Option<Saved>>,
    at: HashMap<Bytes, usize>,
}

impl Live {
    fn apply(&mut self, r: Record) {
        match r {
            Record::Add(job) => {
                // A handle added twice (never written by us) keeps its latest record.
                if let Some(old) = self.at.insert(job.handle.clone(), self.jobs.len()) {
                    self.jobs[old] = None;
                }
                self.jobs.push(Some(job));
            }
            Record::Done(h) => {
                if let Some(i) = self.at.remove(&h) {
                    self.jobs[i] = None;
                }
            }
        }
    }

    fn into_jobs(self) -> Vec<Saved> {
        self.jobs.into_iter().flatten().collect()
    }
}

/// Replays a log: the jobs added and not done, in the order they were added, and what was
/// found wrong on the way.
pub(crate) fn replay(bytes: &[u8]) -> (Vec<Saved>, Vec<Problem>) {
    if bytes.is_empty() {
        return (Vec::new(), Vec::new());
    }
    if !bytes.starts_with(MAGIC) {
        return replay_v1(bytes);
    }
    let mut live = Live::default();
    let mut problems = Vec::new();
    let mut at = MAGIC.len();
    while at < bytes.len() {
        if let Some((record, next)) = record_at(bytes, at) {
            live.apply(record);
            at = next;
            continue;
        }
        // Damage: find the next offset where a whole record checks. None: a torn tail.
        match (at + 1..bytes.len()).find(|&o| record_at(bytes, o).is_some()) {
            Some(next) => {
                problems.push(Problem::Corrupt { offset: at, bytes: next - at });
                at = next;
            }
            None => {
                problems.push(Problem::TornTail { offset: at, bytes: bytes.len() - at });
                break;
            }
        }
    }
    (live.into_jobs(), problems)
}

/// The longest payload a record can have: a largest packet body's fields and the fixed part.
const MAX_PAYLOAD: usize = (64 << 20) + 1024;

/// The record framed at `at`, if its length fits, its checksum matches and its payload
/// decodes; and where the next one starts.
///
/// The checks cheap enough to run at every offset come first (the length within bounds, the
/// payload's own field lengths adding up to it), and only a candidate that passes them is
/// checksummed: a search for the next good record after damage then costs about the
/// damaged stretch, not a checksum of up to 64 MiB at every byte of it.
fn record_at(bytes: &[u8], at: usize) -> Option<(Record, usize)> {
    let head = bytes.get(at..at.checked_add(FRAME)?)?;
    let len = u32::from_be_bytes(head[..4].try_into().expect("four bytes")) as usize;
    let crc = u32::from_be_bytes(head[4..].try_into().expect("four bytes"));
    if len > MAX_PAYLOAD {
        return None;
    }
    let start = at + FRAME;
    let payload = bytes.get(start..start.checked_add(len)?)?;
    if !well_formed(payload) || crc32fast::hash(payload) != crc {
        return None;
    }
    let mut r = Reader { bytes: payload, at: 0 };
    let record = r.record()?;
    // A payload is exactly one record.
    (r.at == payload.len()).then_some((record, start + len))
}

/// Whether `payload` has a record's shape: its type, and field lengths that add up to it
/// exactly. Reads a few bytes, copies nothing.
fn well_formed(payload: &[u8]) -> bool {
    let (fixed, fields) = match payload.first() {
        Some(b'A') => (1 + 1 + 8, 4),
        Some(b'R') => (1 + 1 + 8, 5),
        Some(b'D') => (1, 1),
        _ => return false,
    };
    let mut at = fixed;
    for _ in 0..fields {
        let Some(len) = payload.get(at..at + 4) else { return false };
        let len = u32::from_be_bytes(len.try_into().expect("four bytes")) as usize;
        at = match at.checked_add(4 + len) {
            Some(next) if next <= payload.len() => next,
            _ => return false,
        };
    }
    at == payload.len()
}

/// The first format: records back to back, no lengths, no checksums. Anything that does not
/// decode ends the replay there (all such a file can say).
fn replay_v1(bytes: &[u8]) -> (Vec<Saved>, Vec<Problem>) {
    let mut live = Live::default();
    let mut r = Reader { bytes, at: 0 };
    while r.at < bytes.len() {
        let start = r.at;
        match r.record() {
            Some(record) => live.apply(record),
            None => {
                let problem = Problem::TornTail { offset: start, bytes: bytes.len() - start };
                return (live.into_jobs(), vec![problem]);
            }
        }
    }
    (live.into_jobs(), Vec::new())
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
    fn record(&mut self) -> Option<Record> {
        match self.u8()? {
            kind @ (b'A' | b'R') => {
                let priority = self.u8()?;
                let epoch = self.u64()?;
                let mut job = Saved {
                    priority,
                    epoch,
                    handle: self.field()?,
                    function: self.field()?,
                    unique: self.field()?,
                    data: self.field()?,
                    reducer: Bytes::new(),
                };
                if kind == b'R' {
                    job.reducer = self.field()?;
                }
                Some(Record::Add(job))
            }
            b'D' => self.field().map(Record::Done),
            _ => None,
        }
    }
}

/// The fuzzing entry point: a replay of any bytes must not panic, must not allocate beyond
/// what the bytes hold, and must agree with itself on a second look.
pub(crate) fn fuzz_replay(bytes: &[u8]) -> usize {
    let (jobs, problems) = replay(bytes);
    for p in &problems {
        let (Problem::TornTail { offset, bytes: n } | Problem::Corrupt { offset, bytes: n }) = *p;
        assert!(offset + n <= bytes.len(), "a problem beyond the file: {p:?}");
    }
    // Whatever was recovered survives a compaction exactly.
    let mut fresh = BytesMut::from(&MAGIC[..]);
    for job in &jobs {
        add(&mut fresh, job);
    }
    let (again, clean) = replay(&fresh);
    assert_eq!(again, jobs);
    assert!(clean.is_empty(), "{clean:?}");
    jobs.len()
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
