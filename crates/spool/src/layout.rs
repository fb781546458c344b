//! Where a spool's files live: lane and shard directories, data, state and
//! temp file names, and the file operations the store and the journal
//! threads share (removal wherever a message's lane, the lane that holds
//! it, `syncfs`).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use laneway_common::{MessageId, Priority};

use crate::journal::EventPersist;

/// fsyncs a directory (its entries: a rename or a new file in it).
pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Marks `dir` as the top of a directory hierarchy for ext4's Orlov
/// allocator (`chattr +T`), so that the directories made in it are spread
/// over the file system's block groups instead of packed into its own.
/// Why: ext4 allocates a file's inode in its directory's group, and without
/// a journal it skips, one by one, every inode freed there in the last
/// minute; a spool made where another was just removed (or beside a queue
/// that just drained) paid three times its CPU per message for a minute or
/// more. Best effort: a file system without the flag refuses or ignores it.
pub(crate) fn spread_subdirs(dir: &Path) {
    use rustix::fs::{IFlags, ioctl_getflags, ioctl_setflags};
    let Ok(f) = File::open(dir) else {
        return;
    };
    if let Ok(flags) = ioctl_getflags(&f)
        && !flags.contains(IFlags::TOPDIR)
    {
        let _ = ioctl_setflags(&f, flags | IFlags::TOPDIR);
    }
}

/// Where a spool's files live (shared by the store and its threads).
pub(crate) struct Layout {
    pub(crate) root: PathBuf,
    pub(crate) shards: u32,
    tmp_seq: AtomicU64,
    /// Marks this process's temp files, so that recovery removes only
    /// those an earlier process left.
    pub(crate) tmp_tag: u32,
    pub(crate) events: Option<Arc<dyn EventPersist>>,
}

impl std::fmt::Debug for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layout")
            .field("root", &self.root)
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}

impl Layout {
    pub(crate) fn new(root: &Path, shards: u32, events: Option<Arc<dyn EventPersist>>) -> Layout {
        Layout {
            root: root.to_path_buf(),
            shards: shards.max(1),
            tmp_seq: AtomicU64::new(0),
            tmp_tag: std::process::id()
                ^ std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0),
            events,
        }
    }

    fn shard_of(&self, id: MessageId) -> u32 {
        // Fibonacci hashing spreads ids whose low bits are a counter.
        let h = id.as_u64().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        (h % self.shards as u64) as u32
    }

    pub(crate) fn lane_dir(&self, lane: Priority) -> PathBuf {
        self.root.join("lanes").join(lane.to_string())
    }

    pub(crate) fn shard_dir(&self, lane: Priority, shard: u32) -> PathBuf {
        let name = if self.shards <= 256 {
            format!("{shard:02x}")
        } else {
            format!("{shard:03x}")
        };
        self.lane_dir(lane).join(name)
    }

    pub(crate) fn data_path(&self, lane: Priority, id: MessageId) -> PathBuf {
        self.shard_dir(lane, self.shard_of(id)).join(id.to_string())
    }

    pub(crate) fn state_path(&self, lane: Priority, id: MessageId) -> PathBuf {
        self.shard_dir(lane, self.shard_of(id))
            .join(format!("{id}.st"))
    }

    /// A temp file beside `dest` (`<name>.<tag>-<n>.tmp`), renamed onto
    /// it once written: in the shard directory rather than one directory
    /// for all, because ext4 allocates a file's inode near its directory,
    /// and one directory for every new file made all of them contend for
    /// one block group's inode bitmap (and scan past its recently deleted
    /// inodes): half the daemon's CPU time at 20 sessions.
    pub(crate) fn tmp_path(&self, dest: &Path) -> PathBuf {
        let n = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        dest.with_file_name(format!("{name}.{:08x}-{n}.tmp", self.tmp_tag))
    }

    /// Whether `name` is a temp file, and whether another process left it.
    pub(crate) fn tmp_of_other_process(&self, name: &str) -> Option<bool> {
        let stem = name.strip_suffix(".tmp")?;
        Some(!stem.contains(&format!(".{:08x}-", self.tmp_tag)))
    }

    pub(crate) fn journal_dir(&self) -> PathBuf {
        self.root.join("journal")
    }

    /// Removes a message's files, wherever its lane (a message moved to
    /// another lane while its removal was queued is still removed).
    pub(crate) fn remove(&self, id: MessageId, lane: Priority) -> io::Result<()> {
        let lanes = std::iter::once(lane).chain(Priority::all().filter(|l| *l != lane));
        for l in lanes {
            match fs::remove_file(self.data_path(l, id)) {
                Ok(()) => {
                    return match fs::remove_file(self.state_path(l, id)) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                        _ => Ok(()),
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes `bytes` to `dest` as a temp file beside it, renamed onto it.
    /// `durable`: the file is fsynced before the rename and the directory
    /// after it. Without: made durable by a journal record, and on disk
    /// after the checkpoint's `syncfs`.
    pub(crate) fn write_file(&self, dest: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
        let tmp = self.tmp_path(dest);
        let result = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            f.write_all(bytes)?;
            if durable {
                f.sync_all()?;
            }
            drop(f);
            fs::rename(&tmp, dest)?;
            if durable {
                fsync_dir(dest.parent().expect("spool paths have a parent"))?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Writes a new message's data file straight under its name, no temp
    /// file, no rename, no fsync (about a quarter less of a file's cost on
    /// ext4: 42–46 vs 54–65 µs of CPU here): its journal record makes it durable, and
    /// nothing reads it before that record's commit. A process killed
    /// in the middle of the write leaves a file cut short, never
    /// acknowledged, which recovery quarantines as it does any cut-short
    /// file. Fails if `dest` exists.
    pub(crate) fn write_new(&self, dest: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)?;
        let result = f.write_all(bytes);
        if result.is_err() {
            drop(f);
            let _ = fs::remove_file(dest);
        }
        result
    }

    /// At a replay: writes a message's data file again from its journal
    /// record unless a complete one (length, trailer and checksum) is
    /// there. Returns whether it wrote one.
    pub(crate) fn restore(&self, id: MessageId, lane: Priority, bytes: &[u8]) -> io::Result<bool> {
        let lane = self.lane_of(id, Some(lane)).unwrap_or(lane);
        match fs::read(self.data_path(lane, id)) {
            Ok(b) if crate::format::decode(&b).is_ok() => return Ok(false),
            Ok(_) => {
                tracing::warn!(id = %id, lane = %lane, "spool: a torn data file is written again from the journal")
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.write_file(&self.data_path(lane, id), bytes, false)?;
        Ok(true)
    }

    /// The lane whose directory holds the message's data file.
    pub(crate) fn lane_of(&self, id: MessageId, hint: Option<Priority>) -> Option<Priority> {
        let lanes = hint.into_iter().chain(Priority::all_desc());
        lanes.into_iter().find(|l| self.data_path(*l, id).exists())
    }

    pub(crate) fn syncfs(&self) -> io::Result<()> {
        let root = File::open(&self.root)?;
        rustix::fs::syncfs(&root).map_err(io::Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each lane directory is marked as a top directory (`chattr +T`) on
    /// a file system that takes the flag (ext4, as here and in CI), so
    /// that its shard directories are spread over block groups.
    #[test]
    fn lane_directories_spread_their_shards() {
        use rustix::fs::{IFlags, ioctl_getflags};
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe");
        fs::create_dir(&probe).unwrap();
        spread_subdirs(&probe);
        let flags = |p: &Path| ioctl_getflags(File::open(p).unwrap()).ok();
        let takes_it = flags(&probe).is_some_and(|f| f.contains(IFlags::TOPDIR));
        let (_s, _, _) = crate::store::DiskStore::open(&dir.path().join("spool"), 4).unwrap();
        for l in Priority::all() {
            let p = dir.path().join("spool").join("lanes").join(l.to_string());
            assert!(p.join("00").is_dir());
            let marked = flags(&p).is_some_and(|f| f.contains(IFlags::TOPDIR));
            assert_eq!(marked, takes_it, "lane {l}");
        }
    }
}
