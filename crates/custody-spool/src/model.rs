//! A model-based test of the spool: random sequences of appends (any kind, any
//! size, reserved kinds included), seals, releases, clean reopens and crashes that
//! tear the active segment's tail at a random byte, applied both to a real
//! [`Spool`] in a temporary directory and to [`Model`], a list of segments holding
//! records with their sequence numbers. After every step the spool must report
//! what the model holds: every append's result (its position, or `Full` exactly
//! when the model's backlog says so), the segments (ids, first seqs, record counts,
//! sizes, last positions), the bytes of the backlog and its bound, the next seq,
//! the segment files on disk, and every sealed record read back byte for byte.
//! After every reopen the [`Recovery`] report must say exactly what the crash
//! lost: only the records after the cut, the torn bytes as `truncated_bytes`.
//!
//! `PROPTEST_CASES=2000 cargo test -p custody-audit --lib spool::model` runs
//! longer (docs/development.md).

#![allow(clippy::unwrap_used)]

use super::active::segment_path;
use super::format::{HEADER_LEN, RECORD_HEADER_LEN};
use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::path::Path;

/// `cases` cases, unless `PROPTEST_CASES` asks for another number.
fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    c
}

/// One step against the spool.
#[derive(Clone, Debug)]
enum Op {
    /// Appends a record of kind `kind` (reserved kinds included).
    Append {
        kind: u8,
        payload: Vec<u8>,
    },
    Seal,
    /// Releases through a sequence number: this, modulo the next seq + 2.
    Release(u64),
    /// Drops the spool (what a killed process leaves: every write(2) is in the
    /// file), optionally cutting the active segment's file at a random byte after
    /// its header (this, modulo its record bytes + 1), then reopens it.
    Reopen {
        tear: Option<u64>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![
        8 => 1u8..=3,
        2 => 4u8..0xF0,
        1 => prop_oneof![Just(0u8), 0xF0u8..=0xFF],
    ];
    let payload = prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 0..120),
        1 => prop::collection::vec(any::<u8>(), 300..700),
    ];
    prop_oneof![
        12 => (kind, payload).prop_map(|(kind, payload)| Op::Append { kind, payload }),
        2 => Just(Op::Seal),
        2 => any::<u64>().prop_map(Op::Release),
        1 => Just(Op::Reopen { tear: None }),
        2 => any::<u64>().prop_map(|t| Op::Reopen { tear: Some(t) }),
    ]
}

#[derive(Clone, Debug)]
struct Rec {
    seq: u64,
    kind: u8,
    payload: Vec<u8>,
}

impl Rec {
    fn len(&self) -> u64 {
        (RECORD_HEADER_LEN + self.payload.len()) as u64
    }
}

#[derive(Clone, Debug)]
struct Seg {
    id: u64,
    first_seq: u64,
    recs: Vec<Rec>,
}

impl Seg {
    fn new(id: u64, first_seq: u64) -> Self {
        Self {
            id,
            first_seq,
            recs: Vec::new(),
        }
    }

    fn bytes(&self) -> u64 {
        HEADER_LEN as u64 + self.recs.iter().map(Rec::len).sum::<u64>()
    }

    fn info(&self) -> SegmentInfo {
        SegmentInfo {
            id: self.id,
            first_seq: self.first_seq,
            records: self.recs.len() as u64,
            bytes: self.bytes(),
            last: self.recs.last().map(|r| Position {
                seq: r.seq,
                segment: self.id,
            }),
        }
    }
}

/// What the spool should hold.
#[derive(Debug)]
struct Model {
    segment_bytes: u64,
    max_bytes: u64,
    sealed: Vec<Seg>,
    active: Seg,
    next_seq: u64,
}

/// How an append should end.
#[derive(Debug, PartialEq, Eq)]
enum Appended {
    At(Position),
    Full { used: u64 },
    Reserved,
}

impl Model {
    fn backlog(&self) -> u64 {
        self.sealed.iter().map(Seg::bytes).sum::<u64>() + self.active.bytes()
    }

    fn roll(&mut self) -> SegmentInfo {
        let next = Seg::new(self.active.id + 1, self.next_seq);
        let old = std::mem::replace(&mut self.active, next);
        let info = old.info();
        self.sealed.push(old);
        info
    }

    fn append(&mut self, kind: u8, payload: &[u8]) -> Appended {
        if kind == 0 || kind >= 0xF0 {
            return Appended::Reserved;
        }
        let rec = Rec {
            seq: self.next_seq,
            kind,
            payload: payload.to_vec(),
        };
        let roll =
            !self.active.recs.is_empty() && self.active.bytes() + rec.len() > self.segment_bytes;
        let need = rec.len() + if roll { HEADER_LEN as u64 } else { 0 };
        if self.backlog() + need > self.max_bytes {
            return Appended::Full {
                used: self.backlog(),
            };
        }
        if roll {
            self.roll();
        }
        self.active.recs.push(rec);
        self.next_seq += 1;
        Appended::At(Position {
            seq: self.next_seq - 1,
            segment: self.active.id,
        })
    }

    fn seal(&mut self) -> Option<SegmentInfo> {
        (!self.active.recs.is_empty()).then(|| self.roll())
    }

    fn release_through(&mut self, seq: u64) -> Vec<SegmentInfo> {
        let n = self
            .sealed
            .iter()
            .take_while(|s| s.recs.last().is_none_or(|r| r.seq <= seq))
            .count();
        self.sealed.drain(..n).map(|s| s.info()).collect()
    }

    /// Cuts the active segment at `tear` (see [`Op::Reopen`]) and reopens: returns
    /// the file length to cut to and what the recovery must report.
    fn reopen(&mut self, tear: Option<u64>) -> (Option<u64>, Recovery) {
        let files = self.sealed.len() as u64 + 1;
        let mut truncated = 0;
        let cut = tear.filter(|_| !self.active.recs.is_empty()).map(|t| {
            let header = HEADER_LEN as u64;
            let cut = header + t % (self.active.bytes() - header + 1);
            let mut end = header;
            let kept = self
                .active
                .recs
                .iter()
                .take_while(|r| {
                    let fits = end + r.len() <= cut;
                    if fits {
                        end += r.len();
                    }
                    fits
                })
                .count();
            self.active.recs.truncate(kept);
            truncated = cut - end;
            cut
        });
        // Seqs lost in the torn tail are reused.
        self.next_seq = self.active.first_seq + self.active.recs.len() as u64;
        let torn_empty = self.active.recs.is_empty();
        let next_id = self.active.id + 1;
        if !torn_empty {
            self.roll();
        }
        self.active = Seg::new(next_id, self.next_seq);
        let recovery = Recovery {
            segments: files,
            records_ok: self.sealed.iter().map(|s| s.recs.len() as u64).sum(),
            truncated_bytes: truncated,
            repaired_segments: u64::from(truncated > 0 && !torn_empty),
            removed_empty: u64::from(torn_empty),
            sealed: self.sealed.iter().map(Seg::info).collect(),
            next_seq: self.next_seq,
            ..Recovery::default()
        };
        (cut, recovery)
    }
}

fn seg_files(dir: &Path) -> BTreeSet<u64> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".seg")?.parse().ok()
        })
        .collect()
}

/// Everything the spool reports agrees with the model.
fn check(spool: &Spool, model: &Model, dir: &Path) {
    let sealed: Vec<SegmentInfo> = model.sealed.iter().map(Seg::info).collect();
    let mut all = sealed.clone();
    all.push(model.active.info());
    assert_eq!(spool.sealed_segments(), sealed);
    assert_eq!(spool.segments(), all);
    assert_eq!(spool.next_seq(), model.next_seq);
    assert_eq!(spool.backlog_bytes(), model.backlog());
    // Only a seal (or an open) adds a header beyond the cap.
    assert!(spool.backlog_bytes() <= model.max_bytes + HEADER_LEN as u64);
    let stats = spool.stats();
    assert_eq!(
        stats.live_segments.load(Ordering::Relaxed),
        all.len() as u64
    );
    assert_eq!(
        seg_files(dir),
        all.iter().map(|s| s.id).collect::<BTreeSet<_>>()
    );
    let expected: Vec<SpoolRecord> = model
        .sealed
        .iter()
        .flat_map(|s| {
            s.recs.iter().map(|r| SpoolRecord {
                pos: Position {
                    seq: r.seq,
                    segment: s.id,
                },
                kind: RecordKind(r.kind),
                payload: r.payload.clone(),
            })
        })
        .collect();
    let read: Vec<SpoolRecord> = spool.read_sealed().map(Result::unwrap).collect();
    assert_eq!(read, expected);
}

fn run(segment_bytes: u64, max_bytes: u64, ops: &[Op]) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SpoolConfig {
        dir: dir.path().to_path_buf(),
        max_bytes,
        segment_bytes,
        durability: Durability::Process,
    };
    let (mut spool, recovery) = Spool::open(cfg.clone()).unwrap();
    assert_eq!(
        recovery,
        Recovery {
            next_seq: 0,
            ..Recovery::default()
        }
    );
    let mut model = Model {
        segment_bytes,
        max_bytes,
        sealed: Vec::new(),
        active: Seg::new(0, 0),
        next_seq: 0,
    };
    check(&spool, &model, dir.path());
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Append { kind, payload } => {
                let got = match spool.append_nowait(RecordKind(*kind), payload) {
                    Ok(pos) => Appended::At(pos),
                    Err(SpoolError::Full { used, max }) => {
                        assert_eq!(max, max_bytes);
                        Appended::Full { used }
                    }
                    Err(SpoolError::ReservedKind(k)) => {
                        assert_eq!(k, *kind);
                        Appended::Reserved
                    }
                    Err(e) => panic!("step {step}: {e}"),
                };
                assert_eq!(got, model.append(*kind, payload), "step {step}: {op:?}");
            }
            Op::Seal => assert_eq!(spool.seal().unwrap(), model.seal(), "step {step}"),
            Op::Release(at) => {
                let seq = at % (model.next_seq + 2);
                let pos = Position { seq, segment: 0 };
                let got = spool.release_through(pos).unwrap();
                assert_eq!(got, model.release_through(seq), "step {step}: {seq}");
            }
            Op::Reopen { tear } => {
                let active = segment_path(dir.path(), model.active.id);
                drop(spool);
                let (cut, expected) = model.reopen(*tear);
                if let Some(cut) = cut {
                    let file = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&active)
                        .unwrap();
                    file.set_len(cut).unwrap();
                }
                let (reopened, recovery) = Spool::open(cfg.clone()).unwrap();
                spool = reopened;
                assert_eq!(recovery, expected, "step {step}: {op:?}");
            }
        }
        check(&spool, &model, dir.path());
    }
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn the_spool_behaves_as_its_model_through_crashes_and_torn_tails(
        segment_bytes in 64u64..1500,
        max_bytes in 300u64..5000,
        ops in prop::collection::vec(op(), 1..40),
    ) {
        run(segment_bytes, max_bytes, &ops);
    }
}
