//! The spool journal: a write-ahead log of per-recipient outcomes with
//! group commit (DESIGN §4).
//!
//! A delivery's outcome must be on disk before the connection starts its
//! next transaction, or a crash repeats a whole batch of deliveries. An
//! fsync of each message's state file would cap a node near one
//! transaction per fsync; instead, every outcome that completes while the
//! previous fsync is running is appended to `journal/<seq>.log` together
//! and made durable with one `fdatasync`, after which each waiter is told.
//!
//! New messages go through it too: the store writes a message's data file
//! without an fsync and appends a [`Record::Put`] holding the same bytes;
//! the group commit's fdatasync is the one that makes the message durable
//! before its `250` (messages that finish DATA together share it). The
//! checkpoint's `syncfs` makes the data files durable before the segment
//! holding their records is deleted, and a replay writes again any data
//! file that a crash lost or tore.
//!
//! Segments are `journal/<seq:016x>.log`, their frames described in
//! [`segment`]; a checkpointed segment is kept and used again, so that a
//! group commit's fdatasync is one write, not two.
//!
//! The journal thread applies each record after its fsync: a finished
//! message is unlinked at once, changed recipients are collected per
//! message. About once a second (or every 8 MiB) the segment is closed and
//! handed to the checkpoint thread, which writes the collected state files
//! (temp files, `syncfs`, renames, `syncfs`) and only then retires the
//! segment (kept as a spare for a later one, or deleted). At start-up,
//! before the spool is listed, the segments left by a crash are replayed
//! the same way, so recovery sees every outcome that was acknowledged.
//! Operations that move files (re-laning, quarantine) run on the journal
//! thread after a checkpoint, so they never race a state file write.

use std::collections::HashMap;
use std::fs::{self, File};
use std::future::Future;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use laneway_common::{MessageId, Priority};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

pub(crate) use crate::layout::Layout;
use crate::state::{MessageState, RcptState};

mod segment;
use segment::{HEADER_LEN, Spares, decode_segment, encode, segment_name, segments};

/// A segment is closed after this long with records in it.
const ROTATE_AFTER: Duration = Duration::from_secs(1);
/// … or once it is this large.
const MAX_SEGMENT: u64 = 8 << 20;
/// Most operations gathered into one group commit.
const MAX_BATCH: usize = 4096;

/// Where events written with the journal's records go at each checkpoint
/// (the durable event log of `laneway-events`): they must be durable there
/// when `persist` returns, before the journal segment is deleted.
pub trait EventPersist: Send + Sync {
    /// Stores events (JSON, in journal order), durably.
    fn persist(&self, events: Vec<Vec<u8>>) -> io::Result<()>;
}

/// What changed for some recipients of a message (absolute values, so
/// applying a delta twice is harmless).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Delta {
    /// Number of recipients of the message.
    pub n: u32,
    /// The message's attempt count.
    pub attempts: u32,
    /// Whether a delay DSN has been sent.
    pub delay_warned: bool,
    /// The recipients that changed, by index.
    pub rcpts: Vec<(u32, RcptState)>,
}

impl Delta {
    pub(crate) fn apply(&self, st: &mut MessageState) {
        if st.recipients.len() != self.n as usize {
            *st = MessageState::new(self.n as usize);
        }
        st.attempts = st.attempts.max(self.attempts);
        st.delay_warned |= self.delay_warned;
        for (i, r) in &self.rcpts {
            if let Some(slot) = st.recipients.get_mut(*i as usize) {
                *slot = r.clone();
            }
        }
        st.next_attempt_ms = st
            .recipients
            .iter()
            .filter(|r| !r.status.is_final())
            .map(|r| r.next_attempt_ms)
            .min()
            .unwrap_or(0);
    }

    fn merge(&mut self, later: Delta) {
        self.n = later.n;
        self.attempts = self.attempts.max(later.attempts);
        self.delay_warned |= later.delay_warned;
        for (i, r) in later.rcpts {
            match self.rcpts.iter_mut().find(|(j, _)| *j == i) {
                Some(slot) => slot.1 = r,
                None => self.rcpts.push((i, r)),
            }
        }
    }
}

/// One journal record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// Recipients of a message changed.
    Rcpts(MessageId, Priority, Delta),
    /// The message is done (or deleted): its files go.
    Remove(MessageId, Priority),
    /// An event (JSON) reporting the change it is committed with.
    Event(Vec<u8>),
    /// A new message: the bytes of its data file (`format::encode`),
    /// written beside the record without an fsync of its own. This record's
    /// fdatasync is what makes the message durable; the checkpoint's
    /// `syncfs` makes the file durable before the segment goes, and a
    /// replay writes the file again if a crash lost or tore it.
    Put(MessageId, Priority, Vec<u8>),
}

/// Outcomes collected since the last checkpoint, per message.
#[derive(Debug, Default)]
struct Window {
    dirty: HashMap<MessageId, (Priority, Delta)>,
    events: Vec<Vec<u8>>,
}

impl Window {
    fn add(&mut self, r: &Record, layout: &Layout) -> io::Result<()> {
        match r {
            Record::Rcpts(id, lane, d) => {
                match self.dirty.get_mut(id) {
                    Some((l, old)) => {
                        *l = *lane;
                        old.merge(d.clone());
                    }
                    None => {
                        self.dirty.insert(*id, (*lane, d.clone()));
                    }
                }
                Ok(())
            }
            Record::Remove(id, lane) => {
                self.dirty.remove(id);
                layout.remove(*id, *lane)
            }
            Record::Event(json) => {
                self.events.push(json.clone());
                Ok(())
            }
            // the file was written before the record
            Record::Put(..) => Ok(()),
        }
    }

    /// Writes the collected state files durably: temp files, syncfs,
    /// renames, syncfs. A message that left meanwhile is skipped.
    fn write(self, layout: &Layout) -> io::Result<()> {
        if !self.events.is_empty()
            && let Some(sink) = &layout.events
        {
            // into the event log before the segment holding them goes
            sink.persist(self.events)?;
        }
        let mut renames = Vec::new();
        for (id, (lane, delta)) in self.dirty {
            let Some(lane) = layout.lane_of(id, Some(lane)) else {
                continue;
            };
            let path = layout.state_path(lane, id);
            let mut st = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<MessageState>(&b).ok())
                .unwrap_or_else(|| MessageState::new(delta.n as usize));
            delta.apply(&mut st);
            let tmp = layout.tmp_path(&path);
            let bytes = serde_json::to_vec(&st).map_err(io::Error::other)?;
            fs::write(&tmp, bytes)?;
            renames.push((tmp, path));
        }
        layout.syncfs()?;
        if renames.is_empty() {
            return Ok(());
        }
        for (tmp, path) in &renames {
            fs::rename(tmp, path)?;
        }
        layout.syncfs()
    }
}

/// A pending commit: resolves once its records are on disk.
pub struct Commit(Option<oneshot::Receiver<io::Result<()>>>);

impl Commit {
    /// A commit with nothing left to wait for.
    pub(crate) fn done() -> Commit {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(Ok(()));
        Commit(Some(rx))
    }

    /// Waits for the commit, blocking the thread (as the spool's file
    /// operations do: from async code, `.await` it instead).
    pub fn wait(self) -> io::Result<()> {
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = std::task::Context::from_waker(&waker);
        let mut commit = std::pin::pin!(self);
        loop {
            match commit.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(result) => return result,
                std::task::Poll::Pending => std::thread::park(),
            }
        }
    }
}

impl Future for Commit {
    type Output = io::Result<()>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let Some(rx) = self.0.as_mut() else {
            return std::task::Poll::Ready(Err(io::Error::other("the spool journal is closed")));
        };
        std::pin::Pin::new(rx)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| Err(io::Error::other("the spool journal stopped"))))
    }
}

/// A file operation run on the journal thread, in order with the records.
type FileOp = Box<dyn FnOnce(&Layout) -> io::Result<()> + Send>;

enum Op {
    Append(Vec<Record>, oneshot::Sender<io::Result<()>>),
    /// Checkpoint, then run this (re-lane, quarantine), then answer.
    Run(FileOp, oneshot::Sender<io::Result<()>>),
}

enum Check {
    Window(Window, PathBuf),
    Barrier(mpsc::Sender<()>),
}

/// The journal of a spool; see the module docs.
pub(crate) struct Journal {
    tx: Mutex<Option<mpsc::Sender<Op>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").finish_non_exhaustive()
    }
}

impl Journal {
    /// Replays what a crash left, then starts the journal and checkpoint
    /// threads. Returns the journal and the number of records replayed.
    pub(crate) fn open(layout: Arc<Layout>) -> io::Result<(Journal, usize)> {
        let dir = layout.journal_dir();
        fs::create_dir_all(&dir)?;
        let old = segments(&dir)?;
        let mut window = Window::default();
        let (mut replayed, mut restored) = (0, 0);
        for (seq, path) in &old {
            let mut bytes = Vec::new();
            File::open(path)?.read_to_end(&mut bytes)?;
            for r in decode_segment(&bytes, *seq) {
                match &r {
                    Record::Put(id, lane, file) => {
                        restored += layout.restore(*id, *lane, file)? as usize
                    }
                    _ => window.add(&r, &layout)?,
                }
                replayed += 1;
            }
        }
        if restored > 0 {
            tracing::warn!(
                restored,
                "spool: message files a crash lost were written again from the journal"
            );
        }
        // the restored files and the replayed outcomes, durable (syncfs)
        // before the segments go
        window.write(&layout)?;
        let spares = Arc::new(Spares::open(&dir)?);
        for (_, path) in &old {
            spares.give(path)?;
        }
        let seq = old.last().map_or(0, |(s, _)| s + 1);
        let (tx, rx) = mpsc::channel::<Op>();
        let (ctx, crx) = mpsc::channel::<Check>();
        let (l, sp) = (layout.clone(), spares.clone());
        let checkpoint = std::thread::Builder::new()
            .name("spool-checkpoint".into())
            .spawn(move || checkpoint_thread(&l, &sp, crx))?;
        let writer = Writer::new(layout, spares, seq, ctx)?;
        let journal = std::thread::Builder::new()
            .name("spool-journal".into())
            .spawn(move || writer.run(rx))?;
        Ok((
            Journal {
                tx: Mutex::new(Some(tx)),
                threads: Mutex::new(vec![journal, checkpoint]),
            },
            replayed,
        ))
    }

    fn send(&self, op: impl FnOnce(oneshot::Sender<io::Result<()>>) -> Op) -> Commit {
        let (done, rx) = oneshot::channel();
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        match tx.as_ref().map(|t| t.send(op(done))) {
            Some(Ok(())) => Commit(Some(rx)),
            _ => Commit(None),
        }
    }

    /// Appends records; the returned commit resolves once they are durable.
    /// Never blocks (call it under a lock to fix the order of records).
    pub(crate) fn append(&self, records: Vec<Record>) -> Commit {
        self.send(|done| Op::Append(records, done))
    }

    /// Runs a file operation after every record sent so far is applied
    /// and checkpointed.
    pub(crate) fn run(&self, f: FileOp) -> Commit {
        self.send(|done| Op::Run(f, done))
    }

    /// Stops the threads after a final checkpoint (a clean shutdown leaves
    /// no journal to replay). Later commits fail.
    pub(crate) fn close(&self) {
        drop(self.tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

/// The journal thread's state.
struct Writer {
    layout: Arc<Layout>,
    spares: Arc<Spares>,
    seq: u64,
    file: File,
    /// Bytes of frames in the segment (they start after its header).
    len: u64,
    since: Option<Instant>,
    window: Window,
    checkpoint: mpsc::Sender<Check>,
}

impl Writer {
    fn new(
        layout: Arc<Layout>,
        spares: Arc<Spares>,
        seq: u64,
        checkpoint: mpsc::Sender<Check>,
    ) -> io::Result<Writer> {
        let file = spares.create(seq)?;
        Ok(Writer {
            layout,
            spares,
            seq,
            file,
            len: 0,
            since: None,
            window: Window::default(),
            checkpoint,
        })
    }

    fn run(mut self, rx: mpsc::Receiver<Op>) {
        loop {
            let first = match self.since {
                Some(t) => match rx.recv_timeout(ROTATE_AFTER.saturating_sub(t.elapsed())) {
                    Ok(op) => op,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.rotate();
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
                None => match rx.recv() {
                    Ok(op) => op,
                    Err(_) => break,
                },
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.commit(batch);
            if self.len >= MAX_SEGMENT || self.since.is_some_and(|t| t.elapsed() >= ROTATE_AFTER) {
                self.rotate();
            }
        }
        self.rotate();
        // the checkpoint thread ends once this sender is gone
    }

    /// One group commit: all records of the batch in one write and one
    /// fdatasync, then each operation applied and answered in order.
    fn commit(&mut self, batch: Vec<Op>) {
        let mut buf = Vec::new();
        let mut encoded = Ok(());
        for op in &batch {
            if let Op::Append(records, _) = op {
                for r in records {
                    if let Err(e) = encode(r, Some(self.seq), &mut buf) {
                        encoded = Err(e);
                    }
                }
            }
        }
        let written = encoded.and_then(|()| self.write(&buf));
        for op in batch {
            match op {
                Op::Append(records, done) => {
                    let result = match &written {
                        Ok(()) => Ok(()),
                        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                    };
                    // applied before the answer, so that a finished
                    // message's files are gone when its commit resolves
                    if result.is_ok() {
                        for r in &records {
                            if let Err(e) = self.window.add(r, &self.layout) {
                                tracing::error!(error = %e, record = ?r, "spool journal: applying a record failed");
                            }
                        }
                    }
                    let _ = done.send(result);
                }
                Op::Run(f, done) => {
                    self.rotate();
                    let (ack, wait) = mpsc::channel();
                    let _ = self.checkpoint.send(Check::Barrier(ack));
                    let _ = wait.recv();
                    let _ = done.send(f(&self.layout));
                }
            }
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        // in place: over a spare's old frames, the size stays the same
        let result = self
            .file
            .write_all_at(buf, HEADER_LEN + self.len)
            .and_then(|()| self.file.sync_data());
        match result {
            Ok(()) => {
                self.len += buf.len() as u64;
                self.since.get_or_insert_with(Instant::now);
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "spool journal write failed");
                // never leave a torn frame in front of later records
                if self.file.set_len(HEADER_LEN + self.len).is_err() {
                    self.rotate();
                }
                Err(e)
            }
        }
    }

    /// Closes the segment and hands it, with the outcomes collected while
    /// it was written, to the checkpoint thread.
    fn rotate(&mut self) {
        if self.len == 0 && self.window.dirty.is_empty() {
            self.since = None;
            return;
        }
        let next = match self.spares.create(self.seq + 1) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "spool journal: cannot start a new segment");
                return;
            }
        };
        let old = self.layout.journal_dir().join(segment_name(self.seq));
        self.seq += 1;
        self.file = next;
        self.len = 0;
        self.since = None;
        let window = std::mem::take(&mut self.window);
        let _ = self.checkpoint.send(Check::Window(window, old));
    }
}

fn checkpoint_thread(layout: &Layout, spares: &Spares, rx: mpsc::Receiver<Check>) {
    // After a failed checkpoint every later segment stays too: a replay
    // must see a message's records in order (a later segment's removal
    // without the earlier one's new message, or the reverse, would lose
    // or resurrect mail).
    let mut failed = false;
    for c in rx {
        match c {
            Check::Window(w, segment) => match w.write(layout) {
                Ok(()) if failed => {
                    tracing::error!(segment = %segment.display(), "spool journal: segment kept for the next start (an earlier checkpoint failed)");
                }
                Ok(()) => {
                    if let Err(e) = spares.give(&segment) {
                        tracing::error!(error = %e, segment = %segment.display(), "spool journal: cannot retire a checkpointed segment");
                    }
                }
                // the segment stays and is replayed at the next start
                Err(e) => {
                    failed = true;
                    tracing::error!(error = %e, segment = %segment.display(), "spool checkpoint failed")
                }
            },
            Check::Barrier(ack) => {
                let _ = ack.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests;
