//! Journal tests: frames, deltas, group commit, replay after a crash, events.
use std::path::Path;

use super::segment::decode;
use super::*;
use crate::state::RcptStatus;

fn delta(n: u32, i: u32, status: RcptStatus) -> Delta {
    Delta {
        n,
        attempts: 1,
        delay_warned: false,
        rcpts: vec![(
            i,
            RcptState {
                status,
                attempts: 1,
                ..Default::default()
            },
        )],
    }
}

#[test]
fn frames_round_trip_and_a_torn_tail_is_ignored() {
    let lane = Priority::new(3).unwrap();
    let recs = vec![
        Record::Rcpts(
            MessageId::from_u64(1),
            lane,
            delta(2, 1, RcptStatus::Delivered),
        ),
        Record::Remove(MessageId::from_u64(2), lane),
    ];
    let mut buf = Vec::new();
    for r in &recs {
        encode(r, None, &mut buf).unwrap();
    }
    assert_eq!(decode(&buf, None), recs);
    let mut torn = buf.clone();
    torn.truncate(buf.len() - 3);
    assert_eq!(decode(&torn, None), recs[..1]);
    let mut flipped = buf.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert_eq!(decode(&flipped, None), recs[..1]);
}

#[test]
fn deltas_merge_and_apply_idempotently() {
    let mut d = delta(3, 0, RcptStatus::Delivered);
    d.merge(delta(3, 2, RcptStatus::Failed));
    d.merge(delta(3, 0, RcptStatus::Delivered));
    let mut st = MessageState::new(3);
    d.apply(&mut st);
    d.apply(&mut st);
    assert_eq!(st.recipients[0].status, RcptStatus::Delivered);
    assert_eq!(st.recipients[1].status, RcptStatus::Pending);
    assert_eq!(st.recipients[2].status, RcptStatus::Failed);
    assert_eq!(st.attempts, 1);
}

/// Events committed with records reach the event log at the next
/// checkpoint, and those a crash left in the journal at the replay.
#[test]
fn events_move_to_the_event_log_at_checkpoints_and_at_the_replay() {
    use crate::store::DiskStore;
    #[derive(Default)]
    struct Log(Mutex<Vec<Vec<u8>>>);
    impl EventPersist for Log {
        fn persist(&self, events: Vec<Vec<u8>>) -> io::Result<()> {
            self.0.lock().unwrap().extend(events);
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let lane = Priority::new(2).unwrap();
    let id = laneway_common::id::IdGenerator::new(None).next_id();
    let log = Arc::new(Log::default());
    {
        let (s, _) = DiskStore::lock_with(dir.path(), 2, || {
            Ok(Some(log.clone() as Arc<dyn EventPersist>))
        })
        .unwrap();
        s.put(id, lane, &crate::format::tests::envelope(), b"x\r\n")
            .unwrap();
        let c = s.record(vec![
            Record::Rcpts(id, lane, delta(1, 0, RcptStatus::Failed)),
            Record::Event(b"{\"e\":1}".to_vec()),
        ]);
        c.wait().unwrap();
        s.close();
    }
    assert_eq!(
        log.0.lock().unwrap().clone(),
        vec![b"{\"e\":1}".to_vec()],
        "at the final checkpoint"
    );
    // what a crash leaves: an event only in the journal
    let mut buf = Vec::new();
    encode(&Record::Event(b"{\"e\":2}".to_vec()), None, &mut buf).unwrap();
    fs::write(dir.path().join("journal").join(segment_name(99)), &buf).unwrap();
    let (_s, report) = DiskStore::lock_with(dir.path(), 2, || {
        Ok(Some(log.clone() as Arc<dyn EventPersist>))
    })
    .unwrap();
    assert_eq!(report.journal_replayed, 1);
    assert_eq!(log.0.lock().unwrap().len(), 2, "replayed into the log");
    assert_eq!(log.0.lock().unwrap()[1], b"{\"e\":2}".to_vec());
}

#[test]
fn a_crash_leaves_segments_that_the_next_start_replays() {
    use crate::store::DiskStore;
    let dir = tempfile::tempdir().unwrap();
    let lane = Priority::new(2).unwrap();
    let ids = laneway_common::id::IdGenerator::new(None);
    let (kept, gone) = (ids.next_id(), ids.next_id());
    {
        let (s, _, _) = DiskStore::open(dir.path(), 2).unwrap();
        let env = crate::format::tests::envelope();
        s.put(kept, lane, &env, b"x\r\n").unwrap();
        s.put(gone, lane, &env, b"y\r\n").unwrap();
    }
    // what a daemon killed after two group commits leaves behind
    let mut buf = Vec::new();
    encode(
        &Record::Rcpts(kept, lane, delta(1, 0, RcptStatus::Failed)),
        None,
        &mut buf,
    )
    .unwrap();
    encode(&Record::Remove(gone, lane), None, &mut buf).unwrap();
    buf.extend_from_slice(&[7, 0, 0]); // a torn frame
    fs::write(dir.path().join("journal").join(segment_name(9)), &buf).unwrap();
    let (_s, rec, report) = DiskStore::open(dir.path(), 2).unwrap();
    assert_eq!(report.journal_replayed, 2);
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].id, kept);
    assert_eq!(rec[0].state.recipients[0].status, RcptStatus::Failed);
    let left = segments(&dir.path().join("journal")).unwrap();
    assert_eq!(left.len(), 1, "only the new segment");
    assert_eq!(left[0].0, 10);
}

#[tokio::test]
async fn commits_resolve_after_their_records_are_applied() {
    use crate::store::DiskStore;
    let dir = tempfile::tempdir().unwrap();
    let lane = Priority::new(4).unwrap();
    let ids = laneway_common::id::IdGenerator::new(None);
    let (s, _, _) = DiskStore::open(dir.path(), 2).unwrap();
    let env = crate::format::tests::envelope();
    let msgs: Vec<MessageId> = (0..50).map(|_| ids.next_id()).collect();
    for id in &msgs {
        s.put(*id, lane, &env, b"x\r\n").unwrap();
    }
    let commits: Vec<Commit> = msgs
        .iter()
        .map(|id| s.record(vec![Record::Remove(*id, lane)]))
        .collect();
    for c in commits {
        c.await.unwrap();
    }
    assert_eq!(crate::store::lane_counts(dir.path()).unwrap().total, 0);
}

/// What a power cut leaves after messages were acknowledged on their
/// journal records alone: one data file never reached the disk, one is
/// torn, one message was delivered and removed after it came. The replay
/// writes the first two again from their records and leaves the third gone.
#[test]
fn a_replay_writes_again_the_data_files_a_crash_lost_or_tore() {
    use crate::store::DiskStore;
    let dir = tempfile::tempdir().unwrap();
    let lane = Priority::new(9).unwrap();
    let ids = laneway_common::id::IdGenerator::new(None);
    let (lost, torn, delivered) = (ids.next_id(), ids.next_id(), ids.next_id());
    let env = crate::format::tests::envelope();
    let file = |body: &[u8]| crate::format::encode(&env, body).unwrap();
    let torn_path;
    {
        let (s, _, _) = DiskStore::open(dir.path(), 2).unwrap();
        s.put(torn, lane, &env, b"torn\r\n").unwrap();
        torn_path = s.layout.data_path(lane, torn);
    }
    let bytes = fs::read(&torn_path).unwrap();
    fs::write(&torn_path, &bytes[..bytes.len() / 2]).unwrap();
    let mut buf = Vec::new();
    for r in [
        Record::Put(lost, lane, file(b"lost\r\n")),
        Record::Put(torn, lane, file(b"torn\r\n")),
        Record::Put(delivered, lane, file(b"gone\r\n")),
        Record::Remove(delivered, lane),
    ] {
        encode(&r, None, &mut buf).unwrap();
    }
    assert_eq!(decode(&buf, None).len(), 4, "Put frames round trip");
    fs::write(dir.path().join("journal").join(segment_name(3)), &buf).unwrap();

    let (s, rec, report) = DiskStore::open(dir.path(), 2).unwrap();
    assert_eq!(report.journal_replayed, 4);
    assert!(report.quarantined.is_empty(), "{:?}", report.quarantined);
    let found: Vec<MessageId> = rec.iter().map(|r| r.id).collect();
    assert_eq!(found, vec![lost, torn]);
    assert_eq!(s.get(lost, lane).unwrap().message(), b"lost\r\n");
    assert_eq!(s.get(torn, lane).unwrap().message(), b"torn\r\n");
    assert!(!s.contains(delivered));
    assert_eq!(segments(&dir.path().join("journal")).unwrap().len(), 1);
}

/// The messages whose Put records are in the spool's journal, in order.
fn journaled_puts(root: &Path) -> Vec<MessageId> {
    let mut out = Vec::new();
    for (seq, path) in segments(&root.join("journal")).unwrap() {
        for r in segment::decode_segment(&fs::read(path).unwrap(), seq) {
            if let Record::Put(id, _, _) = r {
                out.push(id);
            }
        }
    }
    out
}

/// A message staged but not yet committed is not acknowledged: the commit
/// is what a front door waits for, and once it resolves the record is in
/// the journal's current segment (fdatasynced) or already checkpointed.
#[tokio::test]
async fn a_staged_message_is_in_the_journal_when_its_commit_resolves() {
    use crate::store::DiskStore;
    let dir = tempfile::tempdir().unwrap();
    let lane = Priority::new(4).unwrap();
    let ids = laneway_common::id::IdGenerator::new(None);
    let (s, _, _) = DiskStore::open(dir.path(), 2).unwrap();
    let env = crate::format::tests::envelope();
    let msgs: Vec<MessageId> = (0..20).map(|_| ids.next_id()).collect();
    let commits: Vec<Commit> = msgs
        .iter()
        .map(|id| s.stage(*id, lane, &env, b"x\r\n", Vec::new()).unwrap())
        .collect();
    for c in commits {
        c.await.unwrap();
    }
    let journaled = journaled_puts(dir.path());
    // in commit order; a checkpoint (every second) may have taken the
    // first ones already, having made their files durable
    assert!(
        msgs.ends_with(&journaled),
        "journaled {} of {}",
        journaled.len(),
        msgs.len()
    );
    for id in &msgs {
        assert_eq!(s.get(*id, lane).unwrap().message(), b"x\r\n");
    }
    // a large message is fsynced on its own, never copied into the journal
    let big = ids.next_id();
    let body = vec![b'a'; crate::store::JOURNALED_UP_TO + 1];
    s.stage(big, lane, &env, &body, Vec::new())
        .unwrap()
        .await
        .unwrap();
    assert!(!journaled_puts(dir.path()).contains(&big));
    assert_eq!(s.get(big, lane).unwrap().message(), &body[..]);
}

/// A spare taken as a later segment still holds its old frames behind
/// the new ones; they were salted with the old sequence number, so the
/// replay stops where the new records end, even when an old frame starts
/// exactly there. A spare whose new header never reached the disk holds
/// nothing of the new segment's.
#[test]
fn a_recycled_segment_replays_only_its_own_records() {
    let lane = Priority::new(5).unwrap();
    let (a, b) = (MessageId::from_u64(7), MessageId::from_u64(8));
    let old = [
        Record::Remove(a, lane),
        Record::Put(b, lane, b"old bytes".to_vec()),
        Record::Remove(b, lane),
    ];
    let mut file = segment::header(5).to_vec();
    for r in &old {
        encode(r, Some(5), &mut file).unwrap();
    }
    assert_eq!(segment::decode_segment(&file, 5), old);
    // the same file taken as segment 6: one record over the first old one,
    // which has the same length, so the second old frame follows at once
    let new = Record::Remove(MessageId::from_u64(9), lane);
    let mut frame = Vec::new();
    encode(&new, Some(6), &mut frame).unwrap();
    let mut first = Vec::new();
    encode(&old[0], Some(5), &mut first).unwrap();
    assert_eq!(frame.len(), first.len());
    let mut reused = file.clone();
    reused[..16].copy_from_slice(&segment::header(6));
    reused[16..16 + frame.len()].copy_from_slice(&frame);
    assert_eq!(segment::decode_segment(&reused, 6), vec![new]);
    assert!(
        segment::decode_segment(&file, 6).is_empty(),
        "an old header: none of segment 6's records"
    );
    // a segment from before recycling: no header, no salt
    let mut legacy = Vec::new();
    encode(&old[0], None, &mut legacy).unwrap();
    assert_eq!(segment::decode_segment(&legacy, 3), old[..1]);
}

/// Copies a spool directory as a `kill -9` leaves it (what is in the page
/// cache is what the next start reads).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A checkpointed segment is kept as a spare and the next segment is
/// written over it: after a crash the replay finds what was committed to
/// it and nothing of its earlier use (here a delivered message's Put).
#[test]
fn a_spare_segment_is_written_over_and_a_crash_replays_only_the_new_records() {
    use crate::store::DiskStore;
    let dir = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let lane = Priority::new(6).unwrap();
    let ids = laneway_common::id::IdGenerator::new(None);
    let (delivered, queued) = (ids.next_id(), ids.next_id());
    let env = crate::format::tests::envelope();
    let journal = dir.path().join("journal");
    let spares = |d: &Path| {
        fs::read_dir(d)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(".spare")
            })
            .count()
    };
    {
        let (s, _, _) = DiskStore::open(dir.path(), 2).unwrap();
        s.put(delivered, lane, &env, &vec![b'd'; 100_000]).unwrap();
        s.close();
    }
    assert_eq!(spares(&journal), 1, "the closed segment kept as a spare");
    let (s, _, _) = DiskStore::open(dir.path(), 2).unwrap();
    // the segment the close began (empty) is a spare now, and the larger
    // one is the new segment
    assert_eq!(spares(&journal), 1);
    let current = segments(&journal).unwrap();
    assert_eq!(current.len(), 1);
    assert!(
        fs::metadata(&current[0].1).unwrap().len() > 100_000,
        "written over, not grown"
    );
    s.record(vec![Record::Remove(delivered, lane)])
        .wait()
        .unwrap();
    s.put(queued, lane, &env, b"queued\r\n").unwrap();
    copy_tree(dir.path(), crashed.path());
    drop(s);
    let (c, rec, report) = DiskStore::open(crashed.path(), 2).unwrap();
    let found: Vec<MessageId> = rec.iter().map(|r| r.id).collect();
    assert_eq!(found, vec![queued], "the delivered message stays gone");
    assert!(report.journal_replayed <= 2, "{report:?}");
    assert_eq!(c.get(queued, lane).unwrap().message(), b"queued\r\n");
}

/// Records staged with a message (its reception events) are in the same
/// commit, right behind its Put: durable when its commit resolves.
#[tokio::test]
async fn records_staged_with_a_message_share_its_commit() {
    use crate::store::DiskStore;
    let dir = tempfile::tempdir().unwrap();
    let lane = Priority::new(4).unwrap();
    let id = laneway_common::id::IdGenerator::new(None).next_id();
    let (s, _, _) = DiskStore::open(dir.path(), 2).unwrap();
    let env = crate::format::tests::envelope();
    let event = Record::Event(b"{\"event\":\"reception\"}".to_vec());
    s.stage(id, lane, &env, b"x\r\n", vec![event.clone()])
        .unwrap()
        .await
        .unwrap();
    // in the segment, or in a spare if a checkpoint (every second) has
    // retired it since: a spare keeps its frames until it is written over
    let mut frames = Vec::new();
    for e in fs::read_dir(dir.path().join("journal")).unwrap() {
        let path = e.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let seq = u64::from_str_radix(&stem, 16).unwrap();
        frames.extend(segment::decode_segment(&fs::read(&path).unwrap(), seq));
    }
    let at = frames
        .iter()
        .position(|r| matches!(r, Record::Put(i, _, _) if *i == id))
        .expect("the Put is in the journal");
    assert_eq!(frames.get(at + 1), Some(&event));
}

/// At most two spares are kept, the largest: a larger one saves more
/// growing writes.
#[test]
fn the_largest_spares_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let spares = segment::Spares::open(dir.path()).unwrap();
    for (seq, len) in [(1u64, 300usize), (2, 100), (3, 200)] {
        let path = dir.path().join(segment_name(seq));
        fs::write(&path, vec![0u8; len]).unwrap();
        spares.give(&path).unwrap();
    }
    let mut kept: Vec<u64> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    kept.sort();
    assert_eq!(kept, vec![200, 300], "the smallest is removed");
    assert!(segments(dir.path()).unwrap().is_empty(), "none is replayed");
    // taken largest first, renamed to the segment's name, with its header
    let f = spares.create(7).unwrap();
    drop(f);
    let taken = fs::read(dir.path().join(segment_name(7))).unwrap();
    assert_eq!(taken.len(), 300);
    assert_eq!(&taken[..16], &segment::header(7));
}
