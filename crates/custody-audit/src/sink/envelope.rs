//! What the audit trail stores in spool records (spool format version 1 carries the
//! bytes; this is their meaning).
//!
//! | kind | code | payload | meaning |
//! |---|---|---|---|
//! | [`INTENT`] | 1 | row JSON | a request is about to be forwarded; its key is the record's own seq |
//! | [`COMPLETION`] | 2 | key (u64 LE) ++ row JSON | the exchange announced by intent `key` ended: the final row |
//! | [`ROW`] | 3 | row JSON | a final row with no intent (refused before forwarding; a gap row) |
//! | [`CARRY`] | 4 | key (u64 LE) ++ row JSON | intent `key` copied forward by the roller so its old segment can go |
//! | `GAP` | 0xFF | (spool's own) | records lost to disk damage |
//!
//! Row JSON is the public JSON rendering of [`AuditRecord`] (`serde_json`), which
//! round-trips exactly (floats included), so a file rebuilt from the same records
//! has the same bytes.

use crate::record::AuditRecord;
use crate::spool::RecordKind;

/// A request is about to be forwarded.
pub(crate) const INTENT: RecordKind = RecordKind::INTENT;
/// The exchange announced by an intent ended.
pub(crate) const COMPLETION: RecordKind = RecordKind::COMPLETION;
/// A final row without an intent.
pub(crate) const ROW: RecordKind = RecordKind::ROW;
/// An open intent copied forward by the roller.
pub(crate) const CARRY: RecordKind = match RecordKind::new(4) {
    Some(k) => k,
    None => RecordKind::ROW,
};

/// A row as spool payload (no key).
pub(crate) fn row(record: &AuditRecord) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(record)
}

/// A row behind an intent key.
pub(crate) fn keyed(key: u64, record: &AuditRecord) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&key.to_le_bytes());
    serde_json::to_writer(&mut out, record)?;
    Ok(out)
}

/// Re-keys an already encoded row payload (no JSON work).
pub(crate) fn keyed_raw(key: u64, json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + json.len());
    out.extend_from_slice(&key.to_le_bytes());
    out.extend_from_slice(json);
    out
}

/// Splits a keyed payload into its key and row JSON.
pub(crate) fn split_keyed(payload: &[u8]) -> Option<(u64, &[u8])> {
    let (key, json) = payload.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*key), json))
}

/// Parses row JSON.
pub(crate) fn parse(json: &[u8]) -> Result<AuditRecord, serde_json::Error> {
    serde_json::from_slice(json)
}
