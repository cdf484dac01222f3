//! Pairing intents with completions across segments: the roller's memory.
//!
//! The roller reads sealed segments oldest first and feeds every record to
//! [`Pairing::apply`], which yields the rows of that segment's files:
//! - a completion or a plain row is a row (whether or not its intent is in view);
//! - a gap record (disk damage found at open) is a synthetic row
//!   `gap: N spool records lost to disk damage`;
//! - an intent opens its key; a carry (a copy of an open intent the roller appended
//!   so that the intent's old segment can be deleted) moves it to a newer segment.
//!
//! The rows of a segment depend only on that segment's records, so a file rebuilt
//! after a crash is the same file.
//!
//! Releasing a segment is safe once its files are uploaded and nothing still needs
//! it ([`Pairing::pin`]): an open intent pins the segment of its newest copy until
//! a copy has been carried forward (or a completion written for it). The roller
//! carries an intent only while its completion is not in the spool — the check and
//! the append share the lock that completions are appended under — so a carried
//! copy never follows its own completion, and a replay never mistakes a stale copy
//! for an open request.
//!
//! After a restart, every segment left from before is replayed first and none is
//! released until the replay is over ([`Pairing::end_replay`]). Then every intent
//! still open belonged to a request the killed process never finished: the roller
//! appends an `incomplete: custody restarted` completion for each. (Completions
//! read before a copy of their intent — possible only with spools written by
//! other versions, or damage — still discard that copy and pin their segment.)

use super::envelope::{self, CARRY, COMPLETION, INTENT, ROW};
use crate::record::AuditRecord;
use crate::spool::SpoolRecord;
use custody_core::{Action, ActionKind};
use std::collections::HashMap;
use std::sync::Arc;

/// The error of a row whose request was never finished by the process that
/// forwarded it.
pub const INCOMPLETE: &str = "incomplete: custody restarted";

/// An intent without its completion yet.
#[derive(Clone, Debug)]
pub(crate) struct Open {
    /// The row as it was when the request was forwarded (encoded, either way).
    pub(crate) json: Arc<Vec<u8>>,
    /// The segment holding its newest copy read so far.
    pub(crate) home: u64,
    /// A newer copy has been appended and not read yet.
    pub(crate) carried: bool,
    /// A completion has been appended for it by the roller (`incomplete`).
    pub(crate) finalized: bool,
}

/// What one record gave.
enum Applied {
    /// A row for the segment's files (decoded into the caller's record).
    Row,
    /// An intent or a copy: its payload, and where its row starts in it.
    Intent(Arc<Vec<u8>>, usize),
}

/// Counters of one segment's replay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Rows produced.
    pub(crate) rows: u64,
    /// Gap rows among them (disk damage).
    pub(crate) gaps: u64,
    /// Records lost to damage that the gap rows account for.
    pub(crate) lost_records: u64,
    /// Records that could not be decoded (skipped; a bug or damage the checksum missed).
    pub(crate) undecodable: u64,
}

/// The pairing state (see the module docs).
#[derive(Clone, Debug)]
pub(crate) struct Pairing {
    spool_id: String,
    open: HashMap<u64, Open>,
    /// Keys completed while a carried copy of theirs follows → the completion's
    /// segment.
    awaiting_copy: HashMap<u64, u64>,
    /// While replaying: keys completed without their intent in view (a copy may
    /// follow in the replayed segments) → the completion's segment.
    orphans: HashMap<u64, u64>,
    replaying: bool,
    /// The most recent event time read (for gap rows in segments with no row).
    last_time: Option<i64>,
}

impl Pairing {
    /// A fresh state; `replaying` while segments left by an earlier process remain.
    pub(crate) fn new(spool_id: &str, replaying: bool) -> Self {
        Self {
            spool_id: spool_id.to_owned(),
            open: HashMap::new(),
            awaiting_copy: HashMap::new(),
            orphans: HashMap::new(),
            replaying,
            last_time: None,
        }
    }

    /// Reads one segment's records (in order) and hands its rows to `emit`.
    pub(crate) fn segment(
        &mut self,
        segment: u64,
        records: impl IntoIterator<Item = SpoolRecord>,
        emit: &mut dyn FnMut(&AuditRecord),
    ) -> Tally {
        let mut tally = Tally::default();
        // Every row is decoded into this one record, reusing its allocations.
        let mut row = envelope::empty();
        // Gap rows wait for the next record's time (or the previous one's).
        let mut pending_gaps: Vec<(u64, u64, u64)> = Vec::new();
        let mut seg_time: Option<i64> = None;
        for rec in records {
            if let Some(gap) = rec.gap() {
                pending_gaps.push((gap.first_lost, gap.last_lost, gap.bytes));
                continue;
            }
            let (seq, kind) = (rec.pos.seq, rec.kind.code());
            let applied = match self.apply(segment, rec, &mut row) {
                Ok(a) => a,
                Err(e) => {
                    tally.undecodable += 1;
                    tracing::error!(segment, seq, kind, error = %e, "undecodable audit spool record skipped");
                    continue;
                }
            };
            let time = match &applied {
                Applied::Row => Some(row.event_time),
                // Parsed only when a gap row needs a time.
                Applied::Intent(json, skip) if !pending_gaps.is_empty() => {
                    envelope::parse(&json[*skip..])
                        .ok()
                        .map(|r| r.event_time)
                        .or(self.last_time)
                }
                Applied::Intent(..) => None,
            };
            if let Some(t) = time {
                seg_time = Some(t);
                for (first, last, bytes) in pending_gaps.drain(..) {
                    emit(&self.gap_row(t, first, last, bytes));
                    tally.gaps += 1;
                    tally.lost_records += last - first + 1;
                }
            }
            if let Applied::Row = applied {
                tally.rows += 1;
                emit(&row);
            }
        }
        let t = seg_time.or(self.last_time).unwrap_or(0);
        for (first, last, bytes) in pending_gaps {
            emit(&self.gap_row(t, first, last, bytes));
            tally.gaps += 1;
            tally.lost_records += last - first + 1;
        }
        tally.rows += tally.gaps;
        tally
    }

    /// One record; decodes its row into `row`, if it makes one. Intents and copies
    /// are kept encoded, not decoded: most are paired with their completion and
    /// never needed.
    fn apply(
        &mut self,
        segment: u64,
        rec: SpoolRecord,
        row: &mut AuditRecord,
    ) -> Result<Applied, String> {
        let bad = |e: envelope::RowError| e.to_string();
        match rec.kind {
            k if k == INTENT => {
                let json = Arc::new(rec.payload);
                self.open.insert(
                    rec.pos.seq,
                    Open {
                        json: json.clone(),
                        home: segment,
                        carried: false,
                        finalized: false,
                    },
                );
                Ok(Applied::Intent(json, 0))
            }
            k if k == CARRY => {
                let (key, _) = envelope::split_keyed(&rec.payload).ok_or("short payload")?;
                let json = Arc::new(rec.payload);
                if self.awaiting_copy.remove(&key).is_some() || self.orphans.remove(&key).is_some()
                {
                    // Completed before this copy was read: nothing is open.
                    return Ok(Applied::Intent(json, 8));
                }
                let entry = self.open.entry(key).or_insert_with(|| Open {
                    json: Arc::new(json[8..].to_vec()),
                    home: segment,
                    carried: false,
                    finalized: false,
                });
                entry.home = segment;
                entry.carried = false;
                Ok(Applied::Intent(json, 8))
            }
            k if k == COMPLETION => {
                let (key, encoded) = envelope::split_keyed(&rec.payload).ok_or("short payload")?;
                envelope::parse_into(encoded, row).map_err(bad)?;
                self.last_time = Some(row.event_time);
                match self.open.remove(&key) {
                    Some(open) if open.carried => {
                        self.awaiting_copy.insert(key, segment);
                    }
                    Some(_) => {}
                    None if self.replaying => {
                        self.orphans.insert(key, segment);
                    }
                    None => {}
                }
                Ok(Applied::Row)
            }
            k if k == ROW => {
                envelope::parse_into(&rec.payload, row).map_err(bad)?;
                self.last_time = Some(row.event_time);
                Ok(Applied::Row)
            }
            other => Err(format!("unknown record kind {}", other.code())),
        }
    }

    fn gap_row(&self, time: i64, first: u64, last: u64, bytes: u64) -> AuditRecord {
        let mut row = AuditRecord::new(
            std::time::UNIX_EPOCH,
            format!("gap-{}-{first}-{last}", self.spool_id),
            Action::new(ActionKind::Http, "", ""),
        );
        row.event_time = time;
        row.outcome.error = Some(format!(
            "gap: {} spool records lost to disk damage ({bytes} damaged bytes dropped)",
            last - first + 1
        ));
        row
    }

    /// The oldest segment that must be kept, if any.
    pub(crate) fn pin(&self) -> Option<u64> {
        let open = self
            .open
            .values()
            .filter(|o| !o.carried && !o.finalized)
            .map(|o| o.home);
        open.chain(self.awaiting_copy.values().copied())
            .chain(self.orphans.values().copied())
            .min()
    }

    /// Open intents in segments up to `through` that need a copy carried forward
    /// before those segments go: `(key, encoded row)`.
    pub(crate) fn to_carry(&self, through: u64) -> Vec<(u64, Arc<Vec<u8>>)> {
        self.open_rows(|o| !o.carried && !o.finalized && o.home <= through)
    }

    /// A copy of `key` has been appended.
    pub(crate) fn carried(&mut self, key: u64) {
        if let Some(o) = self.open.get_mut(&key) {
            o.carried = true;
        }
    }

    /// The replay is over: every intent still open was never finished. Returns
    /// those needing an `incomplete` completion: `(key, encoded row)`.
    pub(crate) fn end_replay(&mut self) -> Vec<(u64, Arc<Vec<u8>>)> {
        self.replaying = false;
        // Copies of an orphan's intent could only be in the replayed segments, all
        // read now. Copies the roller carried during the replay are still awaited.
        self.orphans.clear();
        self.open_rows(|o| !o.finalized)
    }

    /// The open intents `keep` picks, by key: `(key, encoded row)`.
    fn open_rows(&self, keep: impl Fn(&Open) -> bool) -> Vec<(u64, Arc<Vec<u8>>)> {
        let mut out: Vec<_> = self
            .open
            .iter()
            .filter(|(_, o)| keep(o))
            .map(|(k, o)| (*k, o.json.clone()))
            .collect();
        out.sort_unstable_by_key(|(k, _)| *k);
        out
    }

    /// An `incomplete` completion has been appended for `key`.
    pub(crate) fn finalized(&mut self, key: u64) {
        if let Some(o) = self.open.get_mut(&key) {
            o.finalized = true;
        }
    }

    /// Intents open now.
    pub(crate) fn open_count(&self) -> usize {
        self.open.len()
    }
}

/// The row for an intent whose request was never finished.
pub(crate) fn incomplete_row(encoded: &[u8]) -> Result<AuditRecord, envelope::RowError> {
    let mut row = envelope::parse(encoded)?;
    row.outcome.error = Some(match row.outcome.error.take() {
        Some(e) => format!("{INCOMPLETE}; {e}"),
        None => INCOMPLETE.to_owned(),
    });
    Ok(row)
}

#[cfg(test)]
mod tests;
