//! The on-disk store (DESIGN §4):
//!
//! ```text
//! <spool_dir>/lock                       flock'ed by the running daemon
//! <spool_dir>/tmp/                       files being written by older versions (discarded at start-up)
//! <spool_dir>/quarantine/                corrupt files, kept for inspection
//! <spool_dir>/lanes/<0-9>/<shard>/<id>   message: envelope + data (immutable)
//! <spool_dir>/lanes/<0-9>/<shard>/<id>.st  delivery state (replaced atomically)
//! <spool_dir>/lanes/<0-9>/<shard>/<name>.<tag>-<n>.tmp  being written (discarded at start-up)
//! ```
//! A priority change is a rename between lane directories.
//!
//! Write path of a new message: its data file (written under its name,
//! no temp file, no fsync) and a journal record holding the same bytes;
//! the journal's group commit (one `fdatasync` for every message and
//! outcome that arrive together) makes it durable, and only then may a
//! front door acknowledge. The journal's checkpoint makes the data files
//! durable (`syncfs`) before it retires the records, and a replay after
//! a crash writes again any data file the crash lost or tore (one cut
//! short with no record left was never acknowledged: quarantined). (A
//! message over [`JOURNALED_UP_TO`] is fsynced on its own instead.) State
//! files written here (`put_state`) are fsynced on their own: a temp file
//! → `fsync` → `rename` → `fsync` of the directory. The methods block:
//! call them from `spawn_blocking` (or await a [`Commit`], or use
//! [`DiskStore::fetch`] to read).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use laneway_common::{Envelope, MessageId, Priority};

use crate::format;
use crate::journal::{Commit, Journal, Layout, Record};
use crate::layout::fsync_dir;
use crate::state::MessageState;

/// Errors opening the spool.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another daemon holds the lock.
    #[error("spool {0} is in use by another laneway process (lock held on {0}/lock)")]
    Locked(PathBuf),
    /// File system trouble.
    #[error("spool {path}: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A message found in the spool at start-up.
#[derive(Debug, Clone)]
pub struct Recovered {
    /// Its id.
    pub id: MessageId,
    /// The lane directory it was found in.
    pub lane: Priority,
    /// Its envelope.
    pub envelope: Envelope,
    /// Its delivery state (fresh if no state file existed).
    pub state: MessageState,
    /// Size of the message data in bytes.
    pub size: u64,
}

/// What start-up found.
#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    /// Messages recovered.
    pub messages: usize,
    /// The highest queue id seen (new ids are issued above it).
    pub max_id: Option<MessageId>,
    /// Half-written temp files removed.
    pub temp_removed: usize,
    /// Files moved to `quarantine/`, with the reason.
    pub quarantined: Vec<(PathBuf, String)>,
    /// State files without a message, removed.
    pub orphans_removed: usize,
    /// Journal records replayed (outcomes recorded since the last
    /// checkpoint before a crash).
    pub journal_replayed: usize,
}

/// A spooled message read back for delivery.
#[derive(Debug, Clone)]
pub struct Spooled {
    /// The envelope as accepted.
    pub envelope: Envelope,
    bytes: Vec<u8>,
    range: std::ops::Range<usize>,
}

impl Spooled {
    /// The message bytes (header and body, CRLF line ends).
    pub fn message(&self) -> &[u8] {
        &self.bytes[self.range.clone()]
    }
}

/// Message counts per lane, read straight from the directories.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LaneCounts {
    /// All messages.
    pub total: u64,
    /// Per lane, "0" to "9".
    pub lanes: std::collections::BTreeMap<String, u64>,
}

/// The largest message (in bytes) that goes through the journal. A larger one
/// is fsynced on its own (temp file, `fsync`, `rename`, `fsync` of the
/// directory): its write, not the fsync, is what it costs, and through the
/// journal it would be written twice and need twice its size free until
/// the next checkpoint.
pub const JOURNALED_UP_TO: usize = 256 << 10;

/// The fsync-durable on-disk spool.
#[derive(Debug)]
pub struct DiskStore {
    pub(crate) layout: Arc<Layout>,
    journal: Journal,
    _lock: File,
}

/// Whether a directory entry name is a message data file (16 hex digits).
pub fn is_message_name(name: &str) -> bool {
    name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

impl DiskStore {
    /// Opens (creating if needed) the spool at `root`, takes its lock and
    /// recovers the messages in it. Temp files are discarded; corrupt files
    /// are quarantined and reported, never delivered.
    pub fn open(
        root: &Path,
        shards: u32,
    ) -> Result<(DiskStore, Vec<Recovered>, RecoveryReport), OpenError> {
        let (store, mut report) = DiskStore::lock(root, shards)?;
        let mut found = Vec::new();
        store
            .recover(&mut report, &mut |r| found.push(r))
            .map_err(at(root))?;
        found.sort_by_key(|r| r.id);
        Ok((store, found, report))
    }

    /// Opens the spool and takes its lock without reading the messages:
    /// call [`DiskStore::recover`] next. (The daemon recovers straight into
    /// its scheduler, so that a spool of a million messages never holds
    /// every envelope in memory at once.)
    pub fn lock(root: &Path, shards: u32) -> Result<(DiskStore, RecoveryReport), OpenError> {
        DiskStore::lock_with(root, shards, || Ok(None))
    }

    /// [`DiskStore::lock`] with an event log, opened by `events` once the
    /// lock is held: the events written with the journal's records go
    /// there at each checkpoint (and at the replay after a crash, before
    /// this returns).
    pub fn lock_with(
        root: &Path,
        shards: u32,
        events: impl FnOnce() -> io::Result<Option<Arc<dyn crate::journal::EventPersist>>>,
    ) -> Result<(DiskStore, RecoveryReport), OpenError> {
        fs::create_dir_all(root).map_err(at(root))?;
        let lock_path = root.join("lock");
        let mut lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(at(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(OpenError::Locked(root.to_path_buf())),
            Err(fs::TryLockError::Error(e)) => return Err(at(&lock_path)(e)),
        }
        lock.set_len(0).map_err(at(&lock_path))?;
        writeln!(lock, "{}", std::process::id()).map_err(at(&lock_path))?;

        let events = events().map_err(at(&root.join("events.redb")))?;
        let layout = Arc::new(Layout::new(root, shards, events));
        for d in ["tmp", "quarantine"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(at(&p))?;
        }
        for lane in Priority::all() {
            // the lane's shard directories, each in a block group of its own
            let p = layout.lane_dir(lane);
            fs::create_dir_all(&p).map_err(at(&p))?;
            crate::layout::spread_subdirs(&p);
            for shard in 0..layout.shards {
                let p = layout.shard_dir(lane, shard);
                fs::create_dir_all(&p).map_err(at(&p))?;
            }
        }
        let mut report = RecoveryReport::default();
        let tmp = root.join("tmp");
        for e in fs::read_dir(&tmp).map_err(at(&tmp))? {
            let e = e.map_err(at(&tmp))?;
            if fs::remove_file(e.path()).is_ok() {
                report.temp_removed += 1;
            }
        }
        fsync_dir(root).map_err(at(root))?;
        // outcomes recorded since the last checkpoint, before the listing
        let (journal, replayed) =
            Journal::open(layout.clone()).map_err(at(&root.join("journal")))?;
        report.journal_replayed = replayed;
        let store = DiskStore {
            layout,
            journal,
            _lock: lock,
        };
        Ok((store, report))
    }

    /// Records outcomes in the journal (group commit); the returned
    /// [`Commit`] resolves once they are durable. Never blocks: call it
    /// under the lock that orders a message's changes.
    pub fn record(&self, records: Vec<Record>) -> Commit {
        self.journal.append(records)
    }

    /// Ends the journal with a final checkpoint (on shutdown, after the
    /// drain): the next start has nothing to replay.
    pub fn close(&self) {
        self.journal.close();
    }

    /// The spool's root directory.
    pub fn root(&self) -> &Path {
        &self.layout.root
    }

    fn data_path(&self, lane: Priority, id: MessageId) -> PathBuf {
        self.layout.data_path(lane, id)
    }

    fn state_path(&self, lane: Priority, id: MessageId) -> PathBuf {
        self.layout.state_path(lane, id)
    }

    /// Stores a new message durably in `lane`. When this returns `Ok` the
    /// message survives a crash or power loss. Blocks for the group
    /// commit; see [`DiskStore::stage`].
    pub fn put(
        &self,
        id: MessageId,
        lane: Priority,
        envelope: &Envelope,
        message: &[u8],
    ) -> io::Result<()> {
        let result = self.stage(id, lane, envelope, message, Vec::new())?.wait();
        if result.is_err() {
            // never acknowledged: its file must not be delivered either
            let _ = self.remove(id, lane);
        }
        result
    }

    /// Writes a new message's data file in `lane` (no fsync of its own)
    /// and hands the same bytes to the journal, with `with` (the events
    /// reporting its reception) in the same commit; the returned
    /// [`Commit`] resolves once that group commit has made the message
    /// durable — only then may a front door acknowledge it. Messages staged
    /// together share one fdatasync. Blocks on the file write only.
    pub fn stage(
        &self,
        id: MessageId,
        lane: Priority,
        envelope: &Envelope,
        message: &[u8],
        with: Vec<Record>,
    ) -> io::Result<Commit> {
        let bytes = format::encode(envelope, message)?;
        if message.len() > JOURNALED_UP_TO {
            self.layout
                .write_file(&self.data_path(lane, id), &bytes, true)?;
            return Ok(if with.is_empty() {
                Commit::done()
            } else {
                self.journal.append(with)
            });
        }
        self.layout.write_new(&self.data_path(lane, id), &bytes)?;
        let mut records = Vec::with_capacity(1 + with.len());
        records.push(Record::Put(id, lane, bytes));
        records.extend(with);
        Ok(self.journal.append(records))
    }

    /// Replaces the delivery state of a message atomically and durably.
    pub fn put_state(&self, id: MessageId, lane: Priority, state: &MessageState) -> io::Result<()> {
        let bytes = serde_json::to_vec(state).map_err(io::Error::other)?;
        self.layout
            .write_file(&self.state_path(lane, id), &bytes, true)
    }

    /// Whether a message with this id is spooled here (in any lane).
    pub fn contains(&self, id: MessageId) -> bool {
        self.layout.lane_of(id, None).is_some()
    }

    /// [`DiskStore::get`] from async code: on the calling worker when
    /// `inline` (for a delivery, [`crate::queue::WorkItem::read_inline`]),
    /// else on a blocking thread.
    pub async fn fetch(
        self: &Arc<Self>,
        id: MessageId,
        lane: Priority,
        inline: bool,
    ) -> io::Result<Spooled> {
        if inline {
            return self.get(id, lane);
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.get(id, lane))
            .await
            .map_err(io::Error::other)?
    }

    /// Reads a message back, verifying its checksum.
    pub fn get(&self, id: MessageId, lane: Priority) -> io::Result<Spooled> {
        let bytes = fs::read(self.data_path(lane, id))?;
        let (envelope, range) = format::decode(&bytes)?;
        Ok(Spooled {
            envelope,
            bytes,
            range,
        })
    }

    /// Removes a message at once, outside the journal (offline tools and
    /// tests; the daemon records a [`Record::Remove`] instead).
    pub fn remove(&self, id: MessageId, lane: Priority) -> io::Result<()> {
        self.layout.remove(id, lane)
    }

    /// Moves a message to another lane, in order with the journal's
    /// records: state file first, then the data, so that a crash in
    /// between leaves a state file recovery re-attaches.
    pub fn relane(&self, id: MessageId, from: Priority, to: Priority) -> Commit {
        self.journal.run(Box::new(move |l: &Layout| {
            if from == to {
                return Ok(());
            }
            let (st_from, st_to) = (l.state_path(from, id), l.state_path(to, id));
            match fs::rename(&st_from, &st_to) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            fs::rename(l.data_path(from, id), l.data_path(to, id))?;
            fsync_dir(st_to.parent().expect("parent"))?;
            fsync_dir(st_from.parent().expect("parent"))
        }))
    }

    /// Moves a message's files to `quarantine/` (e.g. a checksum failure
    /// found at delivery time), in order with the journal's records.
    pub fn quarantine(&self, id: MessageId, lane: Priority) -> Commit {
        self.journal.run(Box::new(move |l: &Layout| {
            let q = l.root.join("quarantine");
            fs::rename(l.data_path(lane, id), q.join(id.to_string()))?;
            let _ = fs::rename(l.state_path(lane, id), q.join(format!("{id}.st")));
            fsync_dir(&q)
        }))
    }

    /// Where a quarantined message's data file is.
    pub fn quarantined_path(&self, id: MessageId) -> PathBuf {
        self.layout.root.join("quarantine").join(id.to_string())
    }

    /// Bytes available to Laneway on the spool's file system.
    pub fn free_bytes(&self) -> io::Result<u64> {
        free_bytes(&self.layout.root)
    }

    /// Reads every message in the spool, handing each to `on_message`;
    /// corrupt files are quarantined and noted in `report`.
    pub fn recover(
        &self,
        report: &mut RecoveryReport,
        on_message: &mut dyn FnMut(Recovered),
    ) -> io::Result<()> {
        let scan = self.scan(report)?;
        self.load(scan, report, &mut |m| {
            on_message(m);
            true
        })
    }

    /// The first, quick half of recovery: lists the spool (names only, 16
    /// bytes a message) and fills in `report.messages` and `report.max_id`,
    /// which is all a daemon needs to start accepting mail. [`DiskStore::load`]
    /// then reads the files, highest lane first.
    pub fn scan(&self, report: &mut RecoveryReport) -> io::Result<Scan> {
        // A million messages: keep 16 bytes each (id, lane, directory
        // index), not a path each, or the list alone costs 100 MB.
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut found: Vec<Job> = Vec::new();
        let mut states: HashMap<MessageId, u32> = HashMap::new();
        for lane in Priority::all_desc() {
            let lane_dir = self.layout.root.join("lanes").join(lane.to_string());
            for shard in fs::read_dir(&lane_dir)? {
                let shard = shard?;
                if !shard.file_type()?.is_dir() {
                    continue;
                }
                let dir = u32::try_from(dirs.len()).map_err(io::Error::other)?;
                dirs.push(shard.path());
                for e in fs::read_dir(shard.path())? {
                    let e = e?;
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    if let Some(stem) = name.strip_suffix(".st")
                        && let Ok(id) = stem.parse::<MessageId>()
                    {
                        states.insert(id, dir);
                    } else if is_message_name(&name)
                        && let Ok(id) = name.parse::<MessageId>()
                    {
                        found.push(Job {
                            id,
                            lane,
                            dir,
                            state_dir: None,
                        });
                    } else if let Some(other) = self.layout.tmp_of_other_process(&name) {
                        // half written when a daemon stopped: never acknowledged
                        if other && fs::remove_file(e.path()).is_ok() {
                            report.temp_removed += 1;
                        }
                    } else {
                        tracing::warn!(path = %e.path().display(), "unexpected file in spool left alone");
                    }
                }
            }
        }
        // Urgent lanes first, oldest first within a lane: a daemon that
        // delivers while it recovers starts with what matters most.
        found.sort_unstable_by_key(|j| (std::cmp::Reverse(j.lane), j.id));
        for j in &mut found {
            j.state_dir = states.remove(&j.id);
        }
        report.messages = found.len();
        report.max_id = found.iter().map(|j| j.id).max();
        let orphans = states
            .into_iter()
            .map(|(id, dir)| dirs[dir as usize].join(format!("{id}.st")))
            .collect();
        Ok(Scan {
            dirs,
            jobs: found,
            orphans,
        })
    }

    /// The second half of recovery: reads and verifies every listed file on
    /// several threads (from a cold page cache recovery waits on the disk,
    /// and more reads in flight is what makes it fast), hands each message
    /// to `on_message` in the scan's order, more or less, quarantines
    /// corrupt ones and removes state files without a message. It stops
    /// early (leaving the rest on disk) when `on_message` returns false.
    pub fn load(
        &self,
        scan: Scan,
        report: &mut RecoveryReport,
        on_message: &mut dyn FnMut(Recovered) -> bool,
    ) -> io::Result<()> {
        let Scan {
            dirs,
            jobs,
            orphans,
        } = scan;
        let next = std::sync::atomic::AtomicUsize::new(0);
        let threads = RECOVERY_THREADS.min(jobs.len()).max(1);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Found>(1024);
        std::thread::scope(|scope| -> io::Result<()> {
            for _ in 0..threads {
                let (tx, jobs, dirs, next) = (tx.clone(), &jobs, &dirs, &next);
                scope.spawn(move || {
                    let mut buf = Vec::with_capacity(64 * 1024);
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else { break };
                        if tx.send(self.recover_one(job, dirs, &mut buf)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let mut fatal = None;
            let mut stopped = false;
            for found in rx {
                if stopped {
                    continue;
                }
                match found {
                    Found::Message(m) => {
                        if !on_message(*m) {
                            next.store(usize::MAX / 2, Ordering::Relaxed);
                            stopped = true;
                        }
                    }
                    Found::Quarantined(dest, why) => {
                        report.messages -= 1;
                        report.quarantined.push((dest, why));
                    }
                    Found::Fatal(e) => {
                        // stop the workers, then report the first error
                        next.store(usize::MAX / 2, Ordering::Relaxed);
                        fatal.get_or_insert(e);
                    }
                }
            }
            fatal.map_or(Ok(()), Err)
        })?;
        for p in orphans {
            if fs::remove_file(&p).is_ok() {
                report.orphans_removed += 1;
            }
        }
        Ok(())
    }
}

/// The spool as listed by [`DiskStore::scan`], waiting to be read.
#[derive(Debug)]
pub struct Scan {
    dirs: Vec<PathBuf>,
    jobs: Vec<Job>,
    orphans: Vec<PathBuf>,
}

impl Scan {
    /// Messages listed.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether the spool was empty.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

/// Threads reading spool files at start-up.
const RECOVERY_THREADS: usize = 8;

/// One message to recover: where its data (and state) file was found, as
/// an index into [`Scan::dirs`].
#[derive(Debug, Clone, Copy)]
struct Job {
    id: MessageId,
    lane: Priority,
    dir: u32,
    state_dir: Option<u32>,
}

/// What recovering one file gave.
enum Found {
    Message(Box<Recovered>),
    Quarantined(PathBuf, String),
    Fatal(io::Error),
}

impl DiskStore {
    /// Reads, verifies and (if the shard count changed) moves one message;
    /// a corrupt one is quarantined.
    fn recover_one(&self, job: &Job, dirs: &[PathBuf], buf: &mut Vec<u8>) -> Found {
        let (id, lane) = (job.id, job.lane);
        let path = &dirs[job.dir as usize].join(id.to_string());
        let state_path = &job
            .state_dir
            .map(|d| dirs[d as usize].join(format!("{id}.st")));
        let result = match read_envelope(path, buf) {
            Ok((envelope, size)) => (|| {
                let mut state = state_path
                    .as_ref()
                    .and_then(|p| fs::read(p).ok())
                    .and_then(|b| serde_json::from_slice::<MessageState>(&b).ok())
                    .unwrap_or_else(|| MessageState::new(envelope.recipients.len()));
                if state.recipients.len() != envelope.recipients.len() {
                    state = MessageState::new(envelope.recipients.len());
                }
                // Put files where this configuration expects them (the
                // shard count may have changed, or a relane was cut short).
                let want = self.data_path(lane, id);
                if *path != want {
                    fs::rename(path, &want)?;
                }
                if let Some(sp) = state_path {
                    let want = self.state_path(lane, id);
                    if *sp != want {
                        fs::rename(sp, &want)?;
                    }
                }
                Ok(Found::Message(Box::new(Recovered {
                    id,
                    lane,
                    envelope,
                    state,
                    size,
                })))
            })(),
            Err(e) => (|| {
                let q = self.layout.root.join("quarantine");
                let dest = q.join(id.to_string());
                fs::rename(path, &dest)?;
                if let Some(sp) = state_path {
                    let _ = fs::rename(sp, q.join(format!("{id}.st")));
                }
                tracing::error!(id = %id, lane = %lane, path = %dest.display(), error = %e, "corrupt spool file quarantined");
                Ok(Found::Quarantined(dest, e.to_string()))
            })(),
        };
        result.unwrap_or_else(Found::Fatal)
    }
}

/// Reads a whole data file into `buf` and verifies it (length, trailer and
/// checksum), so that corruption anywhere in it is found at start-up rather
/// than at delivery. Returns the envelope and the message size.
fn read_envelope(path: &Path, buf: &mut Vec<u8>) -> io::Result<(Envelope, u64)> {
    buf.clear();
    File::open(path)?.read_to_end(buf)?;
    let (envelope, msg) = format::decode(buf)?;
    Ok((envelope, msg.len() as u64))
}

/// Bytes available to unprivileged users on the file system holding `path`.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let s = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// Counts messages per lane by reading the directories only — works whether
/// or not a daemon is running; temp files, state files, the lock and
/// sockets are not messages.
pub fn lane_counts(root: &Path) -> io::Result<LaneCounts> {
    let mut counts = LaneCounts::default();
    for lane in Priority::all() {
        let mut n = 0u64;
        let lane_dir = root.join("lanes").join(lane.to_string());
        match fs::read_dir(&lane_dir) {
            Ok(shards) => {
                for shard in shards {
                    let shard = shard?;
                    if !shard.file_type()?.is_dir() {
                        continue;
                    }
                    for e in fs::read_dir(shard.path())? {
                        if is_message_name(&e?.file_name().to_string_lossy()) {
                            n += 1;
                        }
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        counts.total += n;
        counts.lanes.insert(lane.to_string(), n);
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tests::envelope;

    fn lane(n: i64) -> Priority {
        Priority::new(n).unwrap()
    }

    #[test]
    fn put_recover_relane_remove() {
        let dir = tempfile::tempdir().unwrap();
        let ids = laneway_common::id::IdGenerator::new(None);
        let (a, b) = (ids.next_id(), ids.next_id());
        {
            let (s, rec, _) = DiskStore::open(dir.path(), 4).unwrap();
            assert!(rec.is_empty());
            s.put(a, lane(0), &envelope(), b"Subject: a\r\n\r\na\r\n")
                .unwrap();
            s.put(b, lane(9), &envelope(), b"Subject: b\r\n\r\nb\r\n")
                .unwrap();
            let mut st = MessageState::new(1);
            st.attempts = 3;
            s.put_state(a, lane(0), &st).unwrap();
            assert_eq!(
                s.get(a, lane(0)).unwrap().message(),
                b"Subject: a\r\n\r\na\r\n"
            );
            let c = lane_counts(dir.path()).unwrap();
            assert_eq!(c.total, 2);
            assert_eq!(c.lanes["0"], 1);
            assert_eq!(c.lanes["9"], 1);
            s.relane(a, lane(0), lane(7)).wait().unwrap();
        }
        let (s, rec, report) = DiskStore::open(dir.path(), 4).unwrap();
        assert!(report.quarantined.is_empty());
        assert_eq!(rec.len(), 2);
        assert_eq!(
            (rec[0].id, rec[0].lane, rec[0].state.attempts),
            (a, lane(7), 3)
        );
        assert_eq!((rec[1].id, rec[1].lane), (b, lane(9)));
        s.remove(a, lane(7)).unwrap();
        assert_eq!(lane_counts(dir.path()).unwrap().total, 1);
    }

    #[test]
    fn second_opener_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = DiskStore::open(dir.path(), 2).unwrap();
        assert!(matches!(
            DiskStore::open(dir.path(), 2),
            Err(OpenError::Locked(_))
        ));
    }

    #[test]
    fn corrupt_and_temp_files_are_handled_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let ids = laneway_common::id::IdGenerator::new(None);
        let (good, bad) = (ids.next_id(), ids.next_id());
        {
            let (s, _, _) = DiskStore::open(dir.path(), 2).unwrap();
            s.put(good, lane(4), &envelope(), b"x\r\n").unwrap();
            s.put(bad, lane(4), &envelope(), b"y\r\n").unwrap();
            let p = s.data_path(lane(4), bad);
            let bytes = fs::read(&p).unwrap();
            fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
            // an older version's temp file, and one beside its destination
            fs::write(dir.path().join("tmp").join("half.tmp"), b"LANEWAY").unwrap();
            let other = s.layout.tmp_path(&s.data_path(lane(4), ids.next_id()));
            let other = other.to_string_lossy().replace(
                &format!(".{:08x}-", s.layout.tmp_tag),
                &format!(".{:08x}-", s.layout.tmp_tag ^ 1),
            );
            fs::write(&other, b"LANEWAY").unwrap();
        }
        let (_s, rec, report) = DiskStore::open(dir.path(), 2).unwrap();
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].id, good);
        assert_eq!(report.temp_removed, 2);
        assert_eq!(report.quarantined.len(), 1);
        assert!(dir.path().join("quarantine").join(bad.to_string()).exists());
    }

    #[test]
    fn shard_count_change_relocates_files() {
        let dir = tempfile::tempdir().unwrap();
        let ids = laneway_common::id::IdGenerator::new(None);
        let msgs: Vec<_> = (0..20).map(|_| ids.next_id()).collect();
        {
            let (s, _, _) = DiskStore::open(dir.path(), 2).unwrap();
            for id in &msgs {
                s.put(*id, lane(1), &envelope(), b"x\r\n").unwrap();
            }
        }
        let (s, rec, _) = DiskStore::open(dir.path(), 8).unwrap();
        assert_eq!(rec.len(), 20);
        for id in &msgs {
            assert!(s.get(*id, lane(1)).is_ok());
        }
    }
}
