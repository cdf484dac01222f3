use super::*;
use crate::spool::{Position, RecordKind};
use std::time::{Duration, UNIX_EPOCH};

fn row(id: &str, micros: u64) -> AuditRecord {
    AuditRecord::new(
        UNIX_EPOCH + Duration::from_micros(micros),
        id.into(),
        Action::new(ActionKind::Llm, "POST", "/x"),
    )
}

struct Log {
    seq: u64,
    keys: HashMap<String, u64>,
}

impl Log {
    fn new() -> Self {
        Self {
            seq: 0,
            keys: HashMap::new(),
        }
    }

    fn rec(&mut self, segment: u64, kind: RecordKind, payload: Vec<u8>) -> SpoolRecord {
        self.seq += 1;
        SpoolRecord {
            pos: Position {
                seq: self.seq,
                segment,
            },
            kind,
            payload,
        }
    }

    fn intent(&mut self, segment: u64, id: &str) -> SpoolRecord {
        let r = self.rec(segment, INTENT, envelope::row(&row(id, 1_000)));
        self.keys.insert(id.to_owned(), r.pos.seq);
        r
    }

    fn carry(&mut self, segment: u64, id: &str) -> SpoolRecord {
        let key = self.keys[id];
        let payload = envelope::keyed(key, &row(id, 1_000));
        self.rec(segment, CARRY, payload)
    }

    fn completion(&mut self, segment: u64, id: &str) -> SpoolRecord {
        let key = self.keys[id];
        let mut r = row(id, 1_000);
        r.outcome.status = Some(200);
        let payload = envelope::keyed(key, &r);
        self.rec(segment, COMPLETION, payload)
    }
}

fn run(p: &mut Pairing, segment: u64, records: Vec<SpoolRecord>) -> Vec<AuditRecord> {
    let mut rows = Vec::new();
    p.segment(segment, records, &mut |r| rows.push(r.clone()));
    rows
}

fn ids(rows: &[AuditRecord]) -> Vec<&str> {
    rows.iter().map(|r| r.request_id.as_str()).collect()
}

#[test]
fn intent_and_completion_in_one_segment_make_one_row_and_pin_nothing() {
    let mut log = Log::new();
    let mut p = Pairing::new("s", false);
    let recs = vec![
        log.intent(1, "a"),
        log.completion(1, "a"),
        log.rec(1, ROW, envelope::row(&row("denied", 5))),
    ];
    let rows = run(&mut p, 1, recs);
    assert_eq!(ids(&rows), ["a", "denied"]);
    assert_eq!(p.pin(), None);
    assert_eq!(p.open_count(), 0);
}

#[test]
fn an_open_intent_pins_its_segment_until_carried_and_the_copy_pairs_later() {
    let mut log = Log::new();
    let mut p = Pairing::new("s", false);
    let r1 = vec![log.intent(1, "long")];
    assert!(run(&mut p, 1, r1).is_empty());
    assert_eq!(p.pin(), Some(1));
    let carry = p.to_carry(1);
    assert_eq!(carry.len(), 1);
    p.carried(carry[0].0);
    assert_eq!(p.pin(), None, "carried: segment 1 may go");
    let r2 = vec![log.carry(2, "long")];
    assert!(run(&mut p, 2, r2).is_empty());
    assert_eq!(p.pin(), Some(2), "the copy pins its own segment");
    let r3 = vec![log.completion(3, "long")];
    assert_eq!(ids(&run(&mut p, 3, r3)), ["long"]);
    assert_eq!(p.pin(), None);
}

#[test]
fn a_completion_racing_the_carry_pins_until_the_stale_copy_is_discarded() {
    let mut log = Log::new();
    let mut p = Pairing::new("s", false);
    run(&mut p, 1, vec![log.intent(1, "r")]);
    let (key, _) = p.to_carry(1)[0].clone();
    p.carried(key);
    // The completion was written before the copy: segment 2 has it, 3 the copy.
    let rows = run(&mut p, 2, vec![log.completion(2, "r")]);
    assert_eq!(ids(&rows), ["r"]);
    assert_eq!(p.pin(), Some(2), "a crash now must replay 2 before 3");
    assert!(run(&mut p, 3, vec![log.carry(3, "r")]).is_empty());
    assert_eq!(p.pin(), None);
    assert_eq!(p.open_count(), 0, "the stale copy opened nothing");
    assert!(p.end_replay().is_empty());
}

#[test]
fn replay_pins_orphan_completions_and_ends_with_the_unfinished_intents() {
    let mut log = Log::new();
    // What a killed process left: an intent carried to segment 5 whose completion
    // landed in 4 (before the copy), and an intent that never completed.
    log.intent(1, "raced");
    log.intent(1, "killed");
    let seg4 = vec![log.completion(4, "raced")];
    let seg5 = vec![log.carry(5, "raced"), log.carry(5, "killed")];
    let mut p = Pairing::new("s", true);
    assert_eq!(ids(&run(&mut p, 4, seg4)), ["raced"]);
    assert_eq!(p.pin(), Some(4));
    assert!(run(&mut p, 5, seg5).is_empty());
    let unfinished = p.end_replay();
    assert_eq!(unfinished.len(), 1);
    let row = incomplete_row(&unfinished[0].1).expect("row");
    assert_eq!(row.request_id, "killed");
    assert_eq!(row.outcome.error.as_deref(), Some(INCOMPLETE));
    p.finalized(unfinished[0].0);
    assert_eq!(p.pin(), None, "finalized intents pin nothing");
}

#[test]
fn gap_records_become_rows_timed_by_their_neighbours() {
    let mut log = Log::new();
    let mut gap = Vec::new();
    gap.extend_from_slice(&7u64.to_le_bytes());
    gap.extend_from_slice(&9u64.to_le_bytes());
    gap.extend_from_slice(&100u64.to_le_bytes());
    let recs = vec![
        log.rec(1, RecordKind::GAP, gap),
        log.rec(1, ROW, envelope::row(&row("after", 3_600_000_123))),
    ];
    let mut p = Pairing::new("spool1", false);
    let mut rows = Vec::new();
    let tally = p.segment(1, recs, &mut |r| rows.push(r.clone()));
    assert_eq!(tally.gaps, 1);
    assert_eq!(tally.lost_records, 3);
    assert_eq!(rows[0].request_id, "gap-spool1-7-9");
    assert_eq!(rows[0].event_time, 3_600_000_123);
    assert!(
        rows[0]
            .outcome
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("gap: 3 spool records lost"))
    );
    // The same segment gives the same rows again (rebuilt files are identical).
    let mut again = Vec::new();
    Pairing::new("spool1", false).segment(
        1,
        vec![
            SpoolRecord {
                pos: Position { seq: 1, segment: 1 },
                kind: RecordKind::GAP,
                payload: [7u64, 9, 100]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            },
            SpoolRecord {
                pos: Position { seq: 2, segment: 1 },
                kind: ROW,
                payload: envelope::row(&row("after", 3_600_000_123)),
            },
        ],
        &mut |r| again.push(r.clone()),
    );
    assert_eq!(again, rows);
}

#[test]
fn a_copy_carried_during_the_replay_stays_awaited_after_it() {
    let mut log = Log::new();
    // Left by a killed process: an intent in 1, its completion in 2.
    let seg1 = vec![log.intent(1, "r")];
    let mut p = Pairing::new("s", true);
    run(&mut p, 1, seg1);
    // The replay carries the intent (into 9, written after the restart)...
    let (key, _) = p.to_carry(1)[0].clone();
    p.carried(key);
    let seg2 = vec![log.completion(2, "r")];
    assert_eq!(ids(&run(&mut p, 2, seg2)), ["r"]);
    // ...and the replay ends before segment 9 is read.
    assert!(p.end_replay().is_empty(), "r completed");
    assert_eq!(p.pin(), Some(2), "2 must stay until the copy in 9 is read");
    assert!(run(&mut p, 9, vec![log.carry(9, "r")]).is_empty());
    assert_eq!(p.open_count(), 0, "the stale copy opens nothing");
    assert_eq!(p.pin(), None);
}
