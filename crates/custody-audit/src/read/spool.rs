//! The rows still in a spool directory: recorded, not yet rolled into an audit file
//! (or rolled, and their segment not yet released). Read with
//! [`crate::spool::peek`], without the owner's lock, while custody runs.
//!
//! Records are paired as the roller pairs them (`trail/envelope.rs`): a completion
//! or a row is a final row; an intent (or a carried intent) without its completion
//! is a request still in flight, shown with [`IN_FLIGHT`] as its error. A row may
//! also be in a file already: the caller keeps one row per `request_id`.

use super::{SessionMatch, TrailRow, decode};
use crate::record::AuditRecord;
use crate::spool::{Peeked, RecordKind, SpoolError, peek};
use crate::trail::envelope::{self, CARRY, COMPLETION, INTENT, ROW};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// The error of a row whose request was forwarded and has not ended (or whose
/// process stopped before it ended: the next start completes it as
/// `incomplete: custody restarted`).
pub const IN_FLIGHT: &str = "in flight: spooled before forwarding, no final row yet";

/// What [`read_spool`] found.
#[derive(Debug, Default)]
pub struct SpoolRead {
    /// Matching rows, in spool order (final rows, then those in flight).
    pub rows: Vec<TrailRow>,
    /// The segments and records read.
    pub peeked: Peeked,
    /// Records whose row did not decode.
    pub undecodable: usize,
}

/// The rows in the spool directory `dir` whose `session_id` matches `m` and whose
/// `event_time` is not before `since`. Fails only if `dir` cannot be listed.
pub fn read_spool(
    dir: &Path,
    m: &SessionMatch,
    since: Option<i64>,
) -> Result<SpoolRead, SpoolError> {
    let mut finals: Vec<AuditRecord> = Vec::new();
    let mut open: BTreeMap<u64, AuditRecord> = BTreeMap::new();
    // Completed keys: a carried copy of an intent can follow its completion.
    let mut done: HashSet<u64> = HashSet::new();
    let mut undecodable = 0;
    let wanted = |r: &AuditRecord| {
        m.matches(r.session_id.as_deref()) && since.is_none_or(|s| r.event_time >= s)
    };
    let peeked = peek(dir, |rec| {
        let (key, payload) = match rec.kind {
            k if k == INTENT || k == ROW => (rec.pos.seq, rec.payload.as_slice()),
            k if k == COMPLETION || k == CARRY => match envelope::split_keyed(&rec.payload) {
                Some(split) => split,
                None => {
                    undecodable += 1;
                    return;
                }
            },
            _ => return, // gap records: lost to damage, reported when custody opens the spool
        };
        if rec.kind == COMPLETION {
            open.remove(&key);
            done.insert(key);
        } else if rec.kind == CARRY && done.contains(&key) {
            return;
        }
        let Ok(row) = envelope::parse(payload) else {
            undecodable += 1;
            return;
        };
        if !wanted(&row) {
            return;
        }
        match rec.kind {
            k if k == INTENT || k == CARRY => {
                open.insert(key, row);
            }
            _ => finals.push(row),
        }
    })?;
    for mut row in open.into_values() {
        row.outcome.error = Some(IN_FLIGHT.to_owned());
        finals.push(row);
    }
    let mut read = SpoolRead {
        peeked,
        undecodable,
        ..SpoolRead::default()
    };
    if finals.is_empty() {
        return Ok(read);
    }
    let batch = crate::batch::to_record_batch(&finals).map_err(|e| io_error(dir, e))?;
    decode::decode(&batch, &mut read.rows).map_err(|e| io_error(dir, e))?;
    Ok(read)
}

/// A spool's rows that do not convert (a bug, not damage): reported as the
/// directory's error.
fn io_error(dir: &Path, e: impl std::fmt::Display) -> SpoolError {
    SpoolError::Io {
        context: format!("decode the rows of {}", dir.display()),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Ensures the kinds this module pairs are the roller's.
const _: () = assert!(RecordKind::INTENT.code() == 1 && RecordKind::COMPLETION.code() == 2);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{Spool, SpoolConfig};
    use custody_core::{Action, ActionKind};

    fn row(id: &str, session: &str, micros: i64) -> AuditRecord {
        let mut r = AuditRecord::new(
            std::time::UNIX_EPOCH,
            id.to_owned(),
            Action::new(ActionKind::Llm, "openai", "POST"),
        );
        r.event_time = micros;
        r.session_id = Some(session.to_owned());
        r
    }

    #[test]
    fn pairs_intents_and_completions_and_keeps_what_matches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (spool, _) = Spool::open(SpoolConfig::new(dir.path())).expect("open");
        let append = |kind, payload: Vec<u8>| spool.append_nowait(kind, &payload).expect("append");
        let done = append(INTENT, envelope::row(&row("a", "hdr:anon:conv-42", 10)));
        append(
            INTENT,
            envelope::row(&row("b", "hdr:0123456789abcdef:conv-42", 20)),
        );
        let mut a = row("a", "hdr:anon:conv-42", 10);
        a.outcome.status = Some(200);
        append(COMPLETION, envelope::keyed(done.seq, &a));
        // A carried copy after its completion reopens nothing.
        append(
            CARRY,
            envelope::keyed(done.seq, &row("a", "hdr:anon:conv-42", 10)),
        );
        append(ROW, envelope::row(&row("c", "auto:anon:1-2", 30)));

        let read = read_spool(dir.path(), &SessionMatch::All, None).expect("read");
        let got: Vec<_> = read
            .rows
            .iter()
            .map(|r| {
                (
                    r.request_id.as_str(),
                    r.outcome.status,
                    r.outcome.error.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a", Some(200), None),
                ("c", None, None),
                ("b", None, Some(IN_FLIGHT))
            ]
        );
        assert_eq!((read.peeked.records, read.undecodable), (5, 0));

        let value = SessionMatch::Value(vec!["conv-42".into()]);
        let read = read_spool(dir.path(), &value, Some(15)).expect("read");
        assert_eq!(read.rows.len(), 1);
        assert_eq!(read.rows[0].request_id, "b");
        let user = SessionMatch::Subject("anon".into());
        let ids: Vec<_> = read_spool(dir.path(), &user, None)
            .expect("read")
            .rows
            .into_iter()
            .map(|r| r.request_id)
            .collect();
        assert_eq!(ids, ["a", "c"]);
    }
}
