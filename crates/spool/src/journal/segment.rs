//! Journal segments on disk: the frame format and the recycling of
//! checkpointed segments.
//!
//! ```text
//! <spool_dir>/journal/<seq:016x>.log   header, then frames
//! header (16 bytes): "LWJ2", 4 zero bytes, seq u64 LE (the file name's)
//! frame: len u32 LE, crc32 u32 LE of (seq u64 LE, payload), payload
//! payload: kind u8, id u64 LE, lane u8, then for kind 1 a JSON `Delta`,
//!          for kind 3 an event's JSON, for kind 4 a data file's bytes
//! <spool_dir>/journal/<n>.spare        a checkpointed segment kept for reuse
//! ```
//! A segment that was just created grows with every group commit, so its
//! `fdatasync` writes the data and then the inode (its size changed): two
//! I/Os one after the other. A checkpointed segment is therefore kept as a
//! spare and taken as a later segment: records overwrite its old ones in
//! place, the size does not change, and the fdatasync is one write (on
//! this machine's disk 114–126 µs and ~50 µs of CPU per commit instead of
//! 191–273 µs and 80–100 µs; see the note of issue 17). Old frames left
//! behind the new ones were salted with another sequence number, so their
//! checksums fail and the replay stops where the new records end, as it
//! does at a torn frame. A segment without the header (written before
//! segments were recycled) is read as it was written: frames checksummed
//! without a salt.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use laneway_common::{MessageId, Priority};

use super::Record;

const KIND_RCPTS: u8 = 1;
const KIND_REMOVE: u8 = 2;
const KIND_EVENT: u8 = 3;
const KIND_PUT: u8 = 4;

const MAGIC: &[u8; 4] = b"LWJ2";
/// Bytes before a segment's first frame.
pub(super) const HEADER_LEN: u64 = 16;
/// Checkpointed segments kept for reuse (each up to a segment's size).
const SPARES: usize = 2;

/// The checksum of a frame: salted with its segment's sequence number
/// (`None`: a segment from before recycling, unsalted).
fn checksum(salt: Option<u64>, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    if let Some(seq) = salt {
        h.update(&seq.to_le_bytes());
    }
    h.update(payload);
    h.finalize()
}

/// Appends a record's frame to `out`, for the segment `salt` (its
/// sequence number; `None` writes the unsalted frames of old segments).
pub(super) fn encode(r: &Record, salt: Option<u64>, out: &mut Vec<u8>) -> io::Result<()> {
    let mut payload = Vec::with_capacity(64);
    let none = (MessageId::from_u64(0), Priority::new(0).expect("lane 0"));
    let (kind, id, lane) = match r {
        Record::Rcpts(id, lane, _) => (KIND_RCPTS, id, lane),
        Record::Remove(id, lane) => (KIND_REMOVE, id, lane),
        Record::Event(_) => (KIND_EVENT, &none.0, &none.1),
        Record::Put(id, lane, _) => (KIND_PUT, id, lane),
    };
    payload.push(kind);
    payload.extend_from_slice(&id.as_u64().to_le_bytes());
    payload.push(lane.get());
    match r {
        Record::Rcpts(_, _, d) => {
            serde_json::to_writer(&mut payload, d).map_err(io::Error::other)?
        }
        Record::Event(bytes) | Record::Put(_, _, bytes) => payload.extend_from_slice(bytes),
        Record::Remove(..) => {}
    }
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum(salt, &payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

/// The header of segment `seq`.
pub(super) fn header(seq: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..4].copy_from_slice(MAGIC);
    h[8..].copy_from_slice(&seq.to_le_bytes());
    h
}

/// Decodes the records of segment `seq` (the number in its name). A
/// header naming another segment (a spare taken as this one, whose new
/// header never reached the disk) holds nothing of this segment's.
pub(super) fn decode_segment(bytes: &[u8], seq: u64) -> Vec<Record> {
    match bytes.strip_prefix(MAGIC.as_slice()) {
        Some(rest) if rest.len() >= 12 => {
            let named = u64::from_le_bytes(rest[4..12].try_into().expect("8 bytes"));
            if named != seq {
                return Vec::new();
            }
            decode(&bytes[HEADER_LEN as usize..], Some(seq))
        }
        Some(_) => Vec::new(),
        None => decode(bytes, None),
    }
}

/// Decodes frames; stops at the first torn or damaged frame (one that was
/// being written when the process died, never acknowledged) or one of an
/// earlier use of the file (salted with another sequence number).
pub(super) fn decode(mut bytes: &[u8], salt: Option<u64>) -> Vec<Record> {
    let mut out = Vec::new();
    while bytes.len() >= 8 {
        let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
        let Some(payload) = bytes.get(8..8 + len) else {
            break;
        };
        if payload.len() < 10 || checksum(salt, payload) != crc {
            break;
        }
        let id = MessageId::from_u64(u64::from_le_bytes(
            payload[1..9].try_into().expect("8 bytes"),
        ));
        let Ok(lane) = Priority::new(payload[9] as i64) else {
            break;
        };
        let rec = match payload[0] {
            KIND_RCPTS => match serde_json::from_slice(&payload[10..]) {
                Ok(d) => Record::Rcpts(id, lane, d),
                Err(_) => break,
            },
            KIND_REMOVE => Record::Remove(id, lane),
            KIND_EVENT => Record::Event(payload[10..].to_vec()),
            KIND_PUT => Record::Put(id, lane, payload[10..].to_vec()),
            _ => break,
        };
        out.push(rec);
        bytes = &bytes[8 + len..];
    }
    out
}

pub(super) fn segment_name(seq: u64) -> String {
    format!("{seq:016x}.log")
}

/// The segments in `dir`, oldest first.
pub(super) fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if let Some(seq) = name
            .strip_suffix(".log")
            .and_then(|s| u64::from_str_radix(s, 16).ok())
        {
            out.push((seq, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Checkpointed segments waiting to be used again, shared by the
/// checkpoint thread (which gives them) and the journal thread (which
/// takes them).
#[derive(Debug)]
pub(super) struct Spares {
    dir: PathBuf,
    /// With their sizes, smallest first.
    free: Mutex<Vec<(PathBuf, u64)>>,
}

impl Spares {
    /// The spares a daemon left in `dir`.
    pub(super) fn open(dir: &Path) -> io::Result<Spares> {
        let spares = Spares {
            dir: dir.to_path_buf(),
            free: Mutex::new(Vec::new()),
        };
        for e in fs::read_dir(dir)? {
            let e = e?;
            if e.file_name().to_string_lossy().ends_with(".spare") {
                spares.keep(e.path(), e.metadata()?.len())?;
            }
        }
        Ok(spares)
    }

    /// A checkpointed segment: kept as a spare (renamed, so that no replay
    /// reads it again) or, with enough larger spares, removed.
    pub(super) fn give(&self, segment: &Path) -> io::Result<()> {
        let name = segment
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned());
        let spare = self.dir.join(format!("{}.spare", name.unwrap_or_default()));
        let len = fs::metadata(segment)?.len();
        fs::rename(segment, &spare)?;
        self.keep(spare, len)
    }

    /// Adds a spare, removing the smallest when there are too many (a
    /// larger one saves more growing writes).
    fn keep(&self, spare: PathBuf, len: u64) -> io::Result<()> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        free.push((spare, len));
        free.sort_by_key(|(_, len)| *len);
        if free.len() > SPARES {
            let (smallest, _) = free.remove(0);
            fs::remove_file(smallest)?;
        }
        Ok(())
    }

    /// Opens segment `seq` for writing, the largest spare renamed if there is one,
    /// else a new file, with its header written; the directory is synced,
    /// so that records committed to it are found by its name.
    pub(super) fn create(&self, seq: u64) -> io::Result<File> {
        let path = self.dir.join(segment_name(seq));
        // the largest
        let spare = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let f = match spare {
            Some((spare, _)) => {
                fs::rename(&spare, &path)?;
                OpenOptions::new().write(true).open(&path)?
            }
            None => OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?,
        };
        f.write_all_at(&header(seq), 0)?;
        File::open(&self.dir)?.sync_all()?;
        Ok(f)
    }
}
