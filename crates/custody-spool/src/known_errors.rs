//! Damage on purpose: truncated, bit-flipped, zeroed, padded, emptied and missing
//! segments. Each case checks that open succeeds, reports exactly what was
//! damaged, keeps every undamaged record byte for byte, and that a second open
//! finds nothing left to repair.

#![allow(clippy::unwrap_used)]

use super::format::{FORMAT_VERSION, HEADER_LEN, RECORD_HEADER_LEN, RECORD_MAGIC, SEGMENT_MAGIC};
use super::tests::{assert_consecutive, config, replay};
use super::*;
use std::fs::OpenOptions;
use std::path::Path;

const SMALL: u64 = 1 << 20;

/// Writes `n` records with `payload_len`-byte ASCII payloads; returns the payloads.
fn fill(dir: &Path, n: usize, payload_len: usize, segment_bytes: u64) -> Vec<Vec<u8>> {
    let (spool, _) = Spool::open(config(dir, segment_bytes, Durability::Process)).unwrap();
    let payloads: Vec<Vec<u8>> = (0..n).map(|i| payload(i, payload_len)).collect();
    for p in &payloads {
        spool.append_nowait(RecordKind::INTENT, p).unwrap();
    }
    payloads
}

fn payload(i: usize, len: usize) -> Vec<u8> {
    let mut p = format!("{i}-").into_bytes();
    p.extend((0..len).map(|j| b'a' + ((i + j) % 26) as u8));
    p.truncate(len);
    p
}

fn seg(dir: &Path, id: u64) -> std::path::PathBuf {
    dir.join(format!("{id:020}.seg"))
}

/// Offset of record `k` in a segment of `rec`-byte records.
fn off(k: usize, rec: usize) -> u64 {
    (HEADER_LEN + k * rec) as u64
}

fn modify(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    f(&mut bytes);
    std::fs::write(path, bytes).unwrap();
}

/// Opens twice: the second open must be clean and see the same records.
fn open_twice(dir: &Path, segment_bytes: u64) -> (Recovery, Vec<SpoolRecord>) {
    let (spool, first) = Spool::open(config(dir, segment_bytes, Durability::Process)).unwrap();
    let records = replay(&spool);
    drop(spool);
    let (spool, second) = Spool::open(config(dir, segment_bytes, Durability::Process)).unwrap();
    assert!(
        second.is_clean(),
        "second open still finds damage: {second:?}"
    );
    assert_eq!(second.repaired_segments, 0);
    assert_eq!(replay(&spool), records, "records changed between opens");
    (first, records)
}

/// Checks `records` are `payloads` in order, except the given gaps.
fn assert_records(records: &[SpoolRecord], payloads: &[Vec<u8>], gaps: &[Gap]) {
    assert_consecutive(records, 0);
    let mut found_gaps = Vec::new();
    for r in records {
        match r.gap() {
            Some(g) => found_gaps.push(g),
            None => assert_eq!(r.payload, payloads[r.pos.seq as usize], "seq {}", r.pos.seq),
        }
    }
    assert_eq!(found_gaps, gaps);
    let lost: u64 = gaps.iter().map(|g| g.last_lost - g.first_lost + 1).sum();
    assert_eq!(
        records.len() as u64 - gaps.len() as u64 + lost,
        payloads.len() as u64
    );
}

#[test]
fn torn_last_record_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let payloads = fill(dir.path(), 10, 40, SMALL);
    let rec = RECORD_HEADER_LEN + 40;
    let file = OpenOptions::new()
        .write(true)
        .open(seg(dir.path(), 0))
        .unwrap();
    file.set_len(off(9, rec) + 7).unwrap();
    let (r, records) = open_twice(dir.path(), SMALL);
    assert_eq!(
        (
            r.truncated_bytes,
            r.corrupt_records,
            r.corrupt_bytes,
            r.bad_headers
        ),
        (7, 0, 0, 0)
    );
    assert_eq!((r.records_ok, r.repaired_segments, r.next_seq), (9, 1, 9));
    assert_records(&records, &payloads[..9], &[]);
}

#[test]
fn a_flipped_bit_anywhere_in_a_middle_record_costs_that_record_only() {
    let template = tempfile::tempdir().unwrap();
    let payloads = fill(template.path(), 10, 40, SMALL);
    let rec = RECORD_HEADER_LEN + 40;
    let original = std::fs::read(seg(template.path(), 0)).unwrap();
    for byte in 0..rec {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = original.clone();
        bytes[off(4, rec) as usize + byte] ^= 1 << (byte % 8);
        std::fs::write(seg(dir.path(), 0), bytes).unwrap();
        let (r, records) = open_twice(dir.path(), SMALL);
        let counts = (
            r.corrupt_records,
            r.corrupt_regions,
            r.corrupt_bytes,
            r.truncated_bytes,
        );
        assert_eq!(counts, (1, 1, rec as u64, 0), "flip in byte {byte}");
        assert_eq!(r.records_ok, 9);
        let gap = Gap {
            first_lost: 4,
            last_lost: 4,
            bytes: rec as u64,
        };
        assert_records(&records, &payloads, &[gap]);
    }
}

#[test]
fn a_zeroed_sector_costs_the_records_it_touches() {
    let dir = tempfile::tempdir().unwrap();
    let payloads = fill(dir.path(), 40, 100, SMALL);
    let rec = RECORD_HEADER_LEN + 100;
    modify(&seg(dir.path(), 0), |b| b[1024..1536].fill(0));
    let (first, last) = ((1024 - HEADER_LEN) / rec, (1535 - HEADER_LEN) / rec);
    let bytes = off(last + 1, rec) - off(first, rec);
    let (r, records) = open_twice(dir.path(), SMALL);
    assert_eq!((first, last), (8, 12));
    let counts = (
        r.corrupt_records,
        r.corrupt_regions,
        r.corrupt_bytes,
        r.truncated_bytes,
    );
    assert_eq!(counts, (5, 1, bytes, 0));
    assert_records(
        &records,
        &payloads,
        &[Gap {
            first_lost: 8,
            last_lost: 12,
            bytes,
        }],
    );
}

#[test]
fn garbage_after_the_last_record_is_truncated() {
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let mut garbage: Vec<u8> = (0..1000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    // A record magic with a plausible header inside the garbage must not fool the scan.
    garbage[100..104].copy_from_slice(&RECORD_MAGIC);
    garbage[104..108].copy_from_slice(&10u32.to_le_bytes());
    garbage[112] = 1;
    garbage[113..121].copy_from_slice(&10u64.to_le_bytes());
    for tail in [garbage, vec![0; 4096]] {
        let dir = tempfile::tempdir().unwrap();
        let payloads = fill(dir.path(), 10, 40, SMALL);
        modify(&seg(dir.path(), 0), |b| b.extend_from_slice(&tail));
        let (r, records) = open_twice(dir.path(), SMALL);
        assert_eq!(
            (r.truncated_bytes, r.corrupt_records, r.corrupt_bytes),
            (tail.len() as u64, 0, 0)
        );
        assert_eq!(r.records_ok, 10);
        assert_records(&records, &payloads, &[]);
    }
}

#[test]
fn an_empty_segment_file_and_a_leftover_repair_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let payloads = fill(dir.path(), 10, 40, SMALL);
    std::fs::write(seg(dir.path(), 1), b"").unwrap();
    let tmp = dir.path().join(format!("{:020}.seg.tmp", 0));
    std::fs::write(&tmp, b"half a repair").unwrap();
    let (r, records) = open_twice(dir.path(), SMALL);
    assert_eq!(
        (
            r.segments,
            r.bad_headers,
            r.removed_empty,
            r.truncated_bytes
        ),
        (2, 1, 1, 0)
    );
    assert_eq!((r.corrupt_records, r.records_ok, r.next_seq), (0, 10, 10));
    assert!(!tmp.exists());
    assert!(!seg(dir.path(), 1).exists());
    assert_records(&records, &payloads, &[]);
}

#[test]
fn a_bad_header_keeps_its_records() {
    for damaged in [0, 1, 2] {
        let dir = tempfile::tempdir().unwrap();
        // 121-byte records, 8 per 1024-byte segment: segments 0, 1 and 2.
        let payloads = fill(dir.path(), 24, 100, 1024);
        modify(&seg(dir.path(), damaged), |b| b[..HEADER_LEN].fill(0));
        let (r, records) = open_twice(dir.path(), 1024);
        assert_eq!(
            (r.bad_headers, r.repaired_segments, r.records_ok),
            (1, 1, 24),
            "segment {damaged}"
        );
        assert_eq!(
            (r.corrupt_records, r.corrupt_bytes, r.truncated_bytes),
            (0, 0, 0)
        );
        assert_records(&records, &payloads, &[]);
    }
}

#[test]
fn a_torn_tail_before_a_later_segment_counts_the_lost_records() {
    let dir = tempfile::tempdir().unwrap();
    let payloads = fill(dir.path(), 24, 100, 1024);
    let rec = RECORD_HEADER_LEN + 100;
    let file = OpenOptions::new()
        .write(true)
        .open(seg(dir.path(), 0))
        .unwrap();
    file.set_len(off(7, rec) + 50).unwrap();
    let (r, records) = open_twice(dir.path(), 1024);
    assert_eq!(
        (r.truncated_bytes, r.corrupt_records, r.corrupt_bytes),
        (50, 1, 0)
    );
    assert_records(
        &records,
        &payloads,
        &[Gap {
            first_lost: 7,
            last_lost: 7,
            bytes: 50,
        }],
    );
}

#[test]
fn a_missing_middle_segment_becomes_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let payloads = fill(dir.path(), 24, 100, 1024);
    std::fs::remove_file(seg(dir.path(), 1)).unwrap();
    let (r, records) = open_twice(dir.path(), 1024);
    assert_eq!(
        (
            r.corrupt_records,
            r.corrupt_bytes,
            r.truncated_bytes,
            r.records_ok
        ),
        (8, 0, 0, 16)
    );
    assert_records(
        &records,
        &payloads,
        &[Gap {
            first_lost: 8,
            last_lost: 15,
            bytes: 0,
        }],
    );
}

#[test]
fn an_unknown_version_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 3, 10, SMALL);
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..10].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let crc = crc32c::crc32c(&header[..28]);
    header[28..].copy_from_slice(&crc.to_le_bytes());
    modify(&seg(dir.path(), 0), |b| {
        b[..HEADER_LEN].copy_from_slice(&header)
    });
    let before = std::fs::read(seg(dir.path(), 0)).unwrap();
    let err = Spool::open(config(dir.path(), SMALL, Durability::Process)).unwrap_err();
    assert!(
        matches!(err, SpoolError::UnsupportedVersion { version: 2, .. }),
        "{err}"
    );
    assert_eq!(std::fs::read(seg(dir.path(), 0)).unwrap(), before);
}

#[test]
fn random_damage_never_panics_and_never_returns_wrong_data() {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let mut rand = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n.max(1)
    };
    for round in 0..40 {
        let dir = tempfile::tempdir().unwrap();
        let payloads = fill(dir.path(), 60, rand(200) as usize, 2048);
        let mut ids: Vec<u64> = (0..)
            .take_while(|&id| seg(dir.path(), id).exists())
            .collect();
        for _ in 0..=rand(3) {
            let id = ids[rand(ids.len() as u64) as usize];
            let path = seg(dir.path(), id);
            match rand(5) {
                0 => modify(&path, |b| {
                    let i = rand(b.len() as u64) as usize;
                    if let Some(byte) = b.get_mut(i) {
                        *byte ^= 1 << rand(8);
                    }
                }),
                1 => modify(&path, |b| {
                    let i = rand(b.len() as u64) as usize;
                    let end = (i + rand(600) as usize).min(b.len());
                    b[i..end].fill(0);
                }),
                2 => modify(&path, |b| b.truncate(rand(b.len() as u64) as usize)),
                3 => modify(&path, |b| b.extend((0..rand(300)).map(|_| rand(256) as u8))),
                _ => {
                    std::fs::remove_file(&path).unwrap();
                    ids.retain(|&i| i != id);
                    if ids.is_empty() {
                        break;
                    }
                }
            }
        }
        let (_, records) = open_twice(dir.path(), 2048);
        let mut expected = records.first().map_or(0, |r| r.pos.seq);
        for r in &records {
            assert_eq!(r.pos.seq, expected, "round {round}");
            match r.gap() {
                Some(g) => expected = g.last_lost + 1,
                None => {
                    assert_eq!(r.payload, payloads[r.pos.seq as usize], "round {round}");
                    expected += 1;
                }
            }
        }
    }
}
