//! Behaviour of an undamaged spool: concurrency, group commit, backlog, rolling.

#![allow(clippy::unwrap_used)]

use super::*;
use std::path::Path;

pub(super) fn config(dir: &Path, segment_bytes: u64, durability: Durability) -> SpoolConfig {
    SpoolConfig {
        dir: dir.to_path_buf(),
        max_bytes: 1 << 30,
        segment_bytes,
        durability,
    }
}

/// Every record of every sealed segment, oldest first; damage fails the test.
pub(super) fn replay(spool: &Spool) -> Vec<SpoolRecord> {
    let mut out = Vec::new();
    for seg in spool.sealed_segments() {
        for record in spool.read_segment(seg.id).unwrap() {
            out.push(record.unwrap());
        }
    }
    out
}

/// Checks sequence numbers are consecutive from `first`, gaps accounted for.
pub(super) fn assert_consecutive(records: &[SpoolRecord], first: u64) {
    let mut expected = first;
    for r in records {
        assert_eq!(r.pos.seq, expected, "record {r:?}");
        expected = r.gap().map_or(r.pos.seq + 1, |g| g.last_lost + 1);
    }
}

fn seg_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    names
}

async fn concurrent_appends(spool: &Spool, tasks: usize, per_task: usize) {
    let mut handles = Vec::new();
    for t in 0..tasks {
        let spool = spool.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..per_task {
                let payload = format!("{t}:{i}:{}", "x".repeat(i % 50));
                spool
                    .append(RecordKind::INTENT, payload.as_bytes())
                    .await
                    .unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
}

/// Checks every (task, i) payload appears exactly once and in per-task order.
fn assert_all_present(records: &[SpoolRecord], tasks: usize, per_task: usize) {
    assert_eq!(records.len(), tasks * per_task);
    let mut next = vec![0usize; tasks];
    for r in records {
        let text = std::str::from_utf8(&r.payload).unwrap();
        let mut parts = text.split(':');
        let t: usize = parts.next().unwrap().parse().unwrap();
        let i: usize = parts.next().unwrap().parse().unwrap();
        assert_eq!(i, next[t], "task {t} out of order");
        next[t] += 1;
    }
    assert!(next.iter().all(|&n| n == per_task));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_survive_reopen_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, recovery) = Spool::open(config(dir.path(), 64 << 10, Durability::Process)).unwrap();
    assert!(recovery.is_clean());
    assert_eq!(recovery.segments, 0);
    concurrent_appends(&spool, 8, 2000).await;
    assert_eq!(
        spool.stats().records_appended.load(Ordering::Relaxed),
        16_000
    );
    assert!(spool.segments().len() > 3, "segments should have rolled");
    drop(spool);

    let (spool, recovery) = Spool::open(config(dir.path(), 64 << 10, Durability::Process)).unwrap();
    assert!(recovery.is_clean(), "{recovery:?}");
    assert_eq!(recovery.records_ok, 16_000);
    assert_eq!(recovery.next_seq, 16_000);
    let records = replay(&spool);
    assert_consecutive(&records, 0);
    assert_all_present(&records, 8, 2000);
    let again: Vec<SpoolRecord> = spool.read_sealed().map(Result::unwrap).collect();
    assert_eq!(again, records);
    assert_eq!(
        spool.append_nowait(RecordKind::ROW, b"next").unwrap().seq,
        16_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fsync_mode_group_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(config(dir.path(), 1 << 20, Durability::Fsync)).unwrap();
    concurrent_appends(&spool, 32, 100).await;
    let appends = spool.stats().records_appended.load(Ordering::Relaxed);
    let fsyncs = spool.stats().fsyncs.load(Ordering::Relaxed);
    assert_eq!(appends, 3200);
    assert!(fsyncs > 0);
    eprintln!("group commit: {fsyncs} fsyncs for {appends} appends");
    assert!(
        fsyncs * 4 <= appends,
        "{fsyncs} fsyncs for {appends} appends: no group commit"
    );
    drop(spool);
    let (spool, recovery) = Spool::open(config(dir.path(), 1 << 20, Durability::Fsync)).unwrap();
    assert!(recovery.is_clean());
    assert_all_present(&replay(&spool), 32, 100);
}

#[tokio::test]
async fn flush_syncs_nowait_appends() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(config(dir.path(), 1 << 20, Durability::Fsync)).unwrap();
    spool.append_nowait(RecordKind::COMPLETION, b"a").unwrap();
    spool.flush().await.unwrap();
    assert!(spool.stats().fsyncs.load(Ordering::Relaxed) >= 1);
    let dir2 = tempfile::tempdir().unwrap();
    let (process, _) = Spool::open(config(dir2.path(), 1 << 20, Durability::Process)).unwrap();
    process.flush().await.unwrap();
    assert_eq!(process.stats().fsyncs.load(Ordering::Relaxed), 0);
}

#[test]
fn full_rejects_without_writing_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SpoolConfig {
        max_bytes: 2048,
        ..config(dir.path(), 512, Durability::Process)
    };
    let (spool, _) = Spool::open(cfg.clone()).unwrap();
    let payload = [b'p'; 100];
    let mut last = None;
    let err = loop {
        match spool.append_nowait(RecordKind::INTENT, &payload) {
            Ok(pos) => last = Some(pos),
            Err(e) => break e,
        }
    };
    let SpoolError::Full { used, max } = err else {
        panic!("{err:?}")
    };
    assert_eq!(max, 2048);
    assert_eq!(used, spool.backlog_bytes());
    assert!(used + 121 > 2048 && used <= 2048);
    let seq = spool.next_seq();
    assert!(spool.append_nowait(RecordKind::INTENT, &payload).is_err());
    assert_eq!(spool.next_seq(), seq, "a refused append consumes nothing");
    assert_eq!(spool.stats().rejected_full.load(Ordering::Relaxed), 2);

    spool.seal().unwrap();
    let released = spool.release_through(last.unwrap()).unwrap();
    assert!(!released.is_empty());
    assert!(spool.backlog_bytes() < used);
    spool.append_nowait(RecordKind::INTENT, &payload).unwrap();
}

#[test]
fn segments_roll_release_and_resume_without_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 1024, Durability::Process);
    let (spool, _) = Spool::open(cfg.clone()).unwrap();
    // 121-byte records: 8 fit after the 32-byte header of a 1024-byte segment.
    let positions: Vec<Position> = (0..30)
        .map(|i| {
            spool
                .append_nowait(RecordKind::INTENT, format!("{i:0100}").as_bytes())
                .unwrap()
        })
        .collect();
    let segs = spool.segments();
    assert_eq!(
        segs.iter().map(|s| s.records).collect::<Vec<_>>(),
        [8, 8, 8, 6]
    );
    assert!(segs.iter().all(|s| s.bytes <= 1024));
    assert_eq!(
        spool.backlog_bytes(),
        segs.iter().map(|s| s.bytes).sum::<u64>()
    );

    // Record 12 is in the second segment: only the first is fully released.
    let released = spool.release_through(positions[12]).unwrap();
    assert_eq!(released.iter().map(|s| s.id).collect::<Vec<_>>(), [0]);
    assert_eq!(seg_files(dir.path()).len(), 3);
    assert_eq!(spool.sealed_segments()[0].first_seq, 8);
    // The active segment is never released, even past its last record.
    spool.release_through(positions[29]).unwrap();
    assert_eq!(spool.segments().len(), 1);
    assert_eq!(spool.segments()[0].records, 6);
    drop(spool);

    let (spool, recovery) = Spool::open(cfg.clone()).unwrap();
    assert!(recovery.is_clean());
    assert_eq!(recovery.next_seq, 30);
    assert_eq!(recovery.sealed.len(), 1);
    let pos = spool.append_nowait(RecordKind::INTENT, b"after").unwrap();
    assert_eq!(
        pos,
        Position {
            seq: 30,
            segment: 4
        }
    );
    spool.seal().unwrap();
    let released = spool.release_through(pos).unwrap();
    assert_eq!(released.iter().map(|s| s.id).collect::<Vec<_>>(), [3, 4]);
    drop(spool);

    // Only an empty segment was left: its header carried the next seq and id.
    let (spool, recovery) = Spool::open(cfg).unwrap();
    assert!(recovery.is_clean());
    assert_eq!(
        (
            recovery.removed_empty,
            recovery.sealed.len(),
            recovery.next_seq
        ),
        (1, 0, 31)
    );
    assert_eq!(seg_files(dir.path()), ["00000000000000000006.seg"]);
    let pos = spool.append_nowait(RecordKind::INTENT, b"later").unwrap();
    assert_eq!(
        pos,
        Position {
            seq: 31,
            segment: 6
        }
    );
}

#[test]
fn seal_and_read_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(config(dir.path(), 1 << 20, Durability::Process)).unwrap();
    assert_eq!(spool.seal().unwrap(), None, "nothing to seal");
    let a = spool.append_nowait(RecordKind::INTENT, b"a").unwrap();
    let b = spool.append_nowait(RecordKind::COMPLETION, b"b").unwrap();
    let active = spool.segments()[0].id;
    assert!(matches!(
        spool.read_segment(active),
        Err(SpoolError::UnknownSegment(_))
    ));
    let sealed = spool.seal().unwrap().unwrap();
    assert_eq!(
        (sealed.id, sealed.records, sealed.last),
        (active, 2, Some(b))
    );
    let records: Vec<_> = spool
        .read_segment(sealed.id)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(
        (records[0].pos, records[0].kind, &records[0].payload[..]),
        (a, RecordKind::INTENT, &b"a"[..])
    );
    assert_eq!(
        (records[1].pos, records[1].kind),
        (b, RecordKind::COMPLETION)
    );
}

#[test]
fn refuses_bad_input_and_a_second_process() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(config(dir.path(), 1 << 20, Durability::Process)).unwrap();
    let big = vec![0u8; MAX_PAYLOAD + 1];
    assert!(matches!(
        spool.append_nowait(RecordKind::ROW, &big),
        Err(SpoolError::TooLarge { .. })
    ));
    assert!(matches!(
        spool.append_nowait(RecordKind::GAP, b"x"),
        Err(SpoolError::ReservedKind(0xFF))
    ));
    assert_eq!(RecordKind::new(0), None);
    assert_eq!(RecordKind::new(7).map(RecordKind::code), Some(7));
    assert!(matches!(
        Spool::open(config(dir.path(), 1 << 20, Durability::Process)),
        Err(SpoolError::Locked(_))
    ));
    assert!(matches!(
        Spool::open(config(dir.path(), 10, Durability::Process)),
        Err(SpoolError::Config(_))
    ));
    assert_eq!(spool.next_seq(), 0);
}

#[test]
fn empty_payload_and_max_payload_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(config(dir.path(), 1 << 20, Durability::Process)).unwrap();
    spool.append_nowait(RecordKind::ROW, b"").unwrap();
    let big: Vec<u8> = (0..MAX_PAYLOAD).map(|i| (i % 251) as u8).collect();
    spool.append_nowait(RecordKind::ROW, &big).unwrap();
    drop(spool);
    let (spool, recovery) = Spool::open(config(dir.path(), 1 << 20, Durability::Process)).unwrap();
    assert!(recovery.is_clean());
    let records = replay(&spool);
    assert_eq!(records[0].payload, b"");
    assert_eq!(records[1].payload, big);
}
