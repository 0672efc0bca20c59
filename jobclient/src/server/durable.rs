//! The durable queue's side of the server: opening and replaying the file, writing and
//! syncing each batch's records before their jobs are acknowledged, online compaction, and
//! the sync policy ([`QueueSync`]).

use std::io;

use bytes::BytesMut;

use super::core::{self, Now};
use super::{journal, Server, Shared};

impl Shared {
    /// Writes the journal records of the packets just handled, syncs them as the policy
    /// says, then lets the core acknowledge (or refuse) the background jobs waiting for them.
    pub(super) fn sync_journal(&mut self) {
        use std::io::Write as _;
        let unacked = self.core.has_unacked();
        let Some(buf) = self.core.journal.as_mut() else { return };
        if buf.is_empty() && !unacked {
            return;
        }
        let records = buf.split();
        // No file (it could not be reopened): nothing is durable, so nothing is acknowledged.
        let mut ok = self.journal_file.is_some();
        if let Some(file) = self.journal_file.as_mut() {
            // One fdatasync for every record of this batch (group commit), before any client
            // hears JOB_CREATED for them: acknowledged jobs survive a power cut, not a kill
            // only.
            let written = file.write_all(&records).and_then(|()| match self.queue_sync {
                QueueSync::Never => Ok(()),
                QueueSync::Batch | QueueSync::Always => file.sync_data(),
            });
            match written {
                Ok(()) => {
                    self.journal_len += records.len() as u64;
                    self.compact_if_mostly_dead();
                }
                Err(e) => {
                    ok = false;
                    // Nothing half-done: a partial write is cut off again, so that the next
                    // record follows the last whole one.
                    let cut = file.set_len(self.journal_len);
                    let msg = match cut {
                        Ok(()) => format!("durable queue write failed, jobs refused: {e}"),
                        Err(c) => format!(
                            "durable queue write failed ({e}), and so did cutting it back ({c})"
                        ),
                    };
                    self.log(&msg);
                }
            }
        }
        self.core.commit(ok, Now::system());
    }

    /// Online compaction: once the file is mostly records of finished jobs (more than twice
    /// what the live jobs take, and at least [`COMPACT_MIN`] bytes), it is rewritten with the
    /// live jobs only, exactly as at start (new file, synced, renamed, directory synced). Runs
    /// right after a successful write, when every live job's record is on disk. A compaction
    /// that fails (a full disk) is logged and retried once the file has grown by as much again.
    pub(super) fn compact_if_mostly_dead(&mut self) {
        let live = self.core.journal_live + journal::MAGIC.len() as u64;
        if self.journal_len < self.compact_at.max(COMPACT_MIN) || self.journal_len < 2 * live {
            return;
        }
        let Some(path) = self.journal_path.clone() else { return };
        let mut fresh = BytesMut::from(&journal::MAGIC[..]);
        for job in self.core.saved_jobs() {
            journal::add(&mut fresh, &job);
        }
        match compact(&path, &fresh) {
            Ok(warning) => {
                if let Some(w) = warning {
                    let msg =
                        format!("durable queue {}: directory sync failed: {w}", path.display());
                    self.log(&msg);
                }
                // The old handle names the replaced file now: writing on through it would
                // lose every later job. Reopen, or refuse background jobs until a restart.
                match std::fs::OpenOptions::new().append(true).open(&path) {
                    Ok(file) => {
                        self.journal_file = Some(file);
                        self.journal_len = fresh.len() as u64;
                        self.core.journal_live = fresh.len() as u64 - journal::MAGIC.len() as u64;
                        self.compact_at = 0;
                    }
                    Err(e) => {
                        self.journal_file = None;
                        let msg = format!(
                            "durable queue {}: cannot reopen after compaction ({e}); background \
                             jobs are refused until a restart",
                            path.display()
                        );
                        self.log(&msg);
                    }
                }
            }
            Err(e) => {
                self.compact_at = self.journal_len * 2;
                let msg = format!("durable queue {}: compaction failed: {e}", path.display());
                self.log(&msg);
            }
        }
    }
}

/// The smallest durable queue file worth compacting while running.
const COMPACT_MIN: u64 = 1 << 20;

/// Replaces the queue file at `path` with `fresh`: a new file, synced, renamed over the old,
/// and the directory synced, so that a crash leaves one whole file or the other. An error
/// means the old file is still in place, untouched; once the rename is done this succeeds,
/// and a failed directory sync comes back as the warning (the caller must then reopen `path`,
/// since its old handle names the replaced file).
fn compact(path: &std::path::Path, fresh: &[u8]) -> io::Result<Option<io::Error>> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let written = std::fs::File::create(&tmp).and_then(|mut new| {
        new.write_all(fresh)?;
        new.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)?;
    // The rename is durable only once the directory is synced.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    Ok(std::fs::File::open(dir).and_then(|d| d.sync_all()).err())
}

/// When the durable queue's records reach the disk, before the background jobs they hold are
/// acknowledged with `JOB_CREATED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueSync {
    /// After each packet that adds records: one `write` and one `fdatasync` per background
    /// submission. The slowest; nothing acknowledged is lost to a power cut.
    Always,
    /// After each batch of packets read from one connection at once (and each round of
    /// timers): one `write` and one `fdatasync` for all of that batch's records, then every
    /// `JOB_CREATED` of the batch. A client that pipelines submissions gets group commit;
    /// nothing acknowledged is lost to a power cut. The default.
    Batch,
    /// Written after each batch, never synced: acknowledged jobs survive the process being
    /// killed, not a power cut or a kernel crash.
    Never,
}

impl std::str::FromStr for QueueSync {
    type Err = String;
    fn from_str(s: &str) -> Result<QueueSync, String> {
        match s {
            "always" => Ok(QueueSync::Always),
            "batch" => Ok(QueueSync::Batch),
            "never" => Ok(QueueSync::Never),
            other => Err(format!("{other:?}: expected always, batch or never")),
        }
    }
}

impl Server {
    /// Keeps background jobs in `path` so that a restart loses none: the file is replayed
    /// (and compacted) now, and every background job added or finished is appended to it and
    /// synced to disk (`fdatasync`, once for all the records of one batch of packets) before
    /// the client hears of it. Compaction writes a new file, syncs it, renames it over the old
    /// one and syncs the directory, so a crash at any point leaves the old file or the new one.
    ///
    /// The file is locked (`flock`, exclusive) for the server's life: a second server on the
    /// same file fails here with `WouldBlock`, naming the file, instead of corrupting it (after
    /// waiting up to two seconds, for a server that is just stopping).
    pub fn durable_queue(&self, path: impl AsRef<std::path::Path>) -> io::Result<usize> {
        let path = path.as_ref();
        // Every failure says which file: an operator (or a test log) must not have to guess.
        self.open_durable_queue(path).map_err(|e| {
            let text = e.to_string();
            if text.contains(&*path.to_string_lossy()) {
                e
            } else {
                io::Error::new(e.kind(), format!("durable queue {}: {text}", path.display()))
            }
        })
    }

    fn open_durable_queue(&self, path: &std::path::Path) -> io::Result<usize> {
        // The lock lives on a file of its own beside the queue, since the queue file itself is
        // replaced by each compaction.
        let lock_path = path.with_extension("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        // A server that is just stopping may hold the lock a moment longer (so may a child
        // process between fork and exec, which shares the open file): wait up to two seconds
        // for it, then refuse.
        let waited = std::time::Instant::now();
        while let Err(e) =
            rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        {
            if waited.elapsed() >= std::time::Duration::from_secs(2) {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "durable queue {} is in use by another server ({}: {e})",
                        path.display(),
                        lock_path.display()
                    ),
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let old = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let (jobs, problems) = journal::replay(&old);
        let mut sh = self.shared.borrow_mut();
        for p in &problems {
            let msg = format!("durable queue {}: {p}", path.display());
            sh.log(&msg);
        }
        let mut keep_as_is = false;
        if problems.iter().any(|p| matches!(p, journal::Problem::Corrupt { .. })) {
            // Damage in the middle: the compaction below keeps only what checked, so the
            // file as it was is kept beside it for whoever investigates. Without room for the
            // copy, the file itself is kept as it is (and appended to) instead.
            let unix = Now::system().unix;
            let copy = path.with_extension(format!("corrupt-{unix}"));
            let msg = match std::fs::write(&copy, &old) {
                Ok(()) => {
                    format!("durable queue {}: damaged; kept as {}", path.display(), copy.display())
                }
                Err(e) => {
                    keep_as_is = true;
                    let _ = std::fs::remove_file(&copy);
                    format!(
                        "durable queue {}: damaged, and no copy could be kept ({e}): not \
                         compacted",
                        path.display()
                    )
                }
            };
            sh.log(&msg);
        }
        let restored = jobs.len();
        sh.core.restore(jobs, core::Now::system());
        // Compact: rewrite the live jobs only, then append from there.
        let mut fresh = BytesMut::from(&journal::MAGIC[..]);
        for job in sh.core.saved_jobs() {
            journal::add(&mut fresh, &job);
        }
        let compacted = if keep_as_is {
            Err(io::Error::other("kept as it is for inspection"))
        } else {
            compact(path, &fresh)
        };
        match compacted {
            Ok(warning) => {
                sh.journal_len = fresh.len() as u64;
                if let Some(w) = warning {
                    let msg =
                        format!("durable queue {}: directory sync failed: {w}", path.display());
                    sh.log(&msg);
                }
            }
            // A full disk has no room for a second copy: go on appending to the file as it
            // is, cut back to its last whole record. (A file of the first format cannot take
            // records of this one, so that is an error.)
            Err(e) if old.starts_with(journal::MAGIC) => {
                let good = problems
                    .iter()
                    .find_map(|p| match p {
                        journal::Problem::TornTail { offset, .. } => Some(*offset),
                        journal::Problem::Corrupt { .. } => None,
                    })
                    .unwrap_or(old.len());
                std::fs::OpenOptions::new().write(true).open(path)?.set_len(good as u64)?;
                sh.journal_len = good as u64;
                let msg = format!(
                    "durable queue {}: compaction failed ({e}); appending to it as it is",
                    path.display()
                );
                sh.log(&msg);
            }
            Err(e) => return Err(e),
        }
        sh.journal_file = Some(std::fs::OpenOptions::new().append(true).open(path)?);
        sh.journal_lock = Some(lock);
        sh.journal_path = Some(path.to_path_buf());
        sh.core.journal_live = fresh.len() as u64 - journal::MAGIC.len() as u64;
        sh.core.journal = Some(BytesMut::new());
        Ok(restored)
    }

    /// When the durable queue syncs its records to disk (`jobd --queue-sync`); see
    /// [`QueueSync`]. The default is [`QueueSync::Batch`].
    pub fn queue_sync(&self, sync: QueueSync) {
        self.shared.borrow_mut().queue_sync = sync;
    }
}
