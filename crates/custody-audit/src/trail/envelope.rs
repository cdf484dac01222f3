//! What the audit trail stores in spool records (spool format version 1 carries the
//! bytes; this is their meaning).
//!
//! | kind | code | payload | meaning |
//! |---|---|---|---|
//! | [`INTENT`] | 1 | row | a request is about to be forwarded; its key is the record's own seq |
//! | [`COMPLETION`] | 2 | key (u64 LE) ++ row | the exchange announced by intent `key` ended: the final row |
//! | [`ROW`] | 3 | row | a final row with no intent (refused before forwarding; a gap row) |
//! | [`CARRY`] | 4 | key (u64 LE) ++ row | intent `key` copied forward by the roller so its old segment can go |
//! | `GAP` | 0xFF | (spool's own) | records lost to disk damage |
//!
//! A row is encoded one of two ways, told apart by its first byte:
//! - `0x01`: the compact binary encoding of [`AuditRecord`]
//!   ([`crate::record::binary`]), which this version writes (no field names, no
//!   escaping or number formatting; decoded without allocating per row);
//! - `{` (0x7B): its JSON rendering (`serde_json`), which earlier versions wrote;
//!   still read, so a spool they left replays after an upgrade. A carried intent
//!   keeps the encoding it was written in.
//!
//! Both round-trip exactly (floats included), so a file rebuilt from the same
//! records has the same bytes. A binary row never contains the spool's record
//! magic; the 8-byte key before a keyed row is a spool sequence number, which no
//! client chooses.

use crate::record::{AuditRecord, binary};
use crate::spool::RecordKind;
use custody_core::{Action, ActionKind};

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

/// Room for a typical row, so that encoding rarely grows the buffer.
const TYPICAL_ROW: usize = 1024;

/// Why a row payload could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RowError {
    /// A binary row that does not decode.
    #[error(transparent)]
    Binary(#[from] binary::DecodeError),
    /// A JSON row (written by an earlier version) that does not parse.
    #[error("JSON row: {0}")]
    Json(#[from] serde_json::Error),
    /// Neither encoding.
    #[error("unknown row encoding (first byte {0:#04x})")]
    Unknown(u8),
    /// No bytes at all.
    #[error("empty row payload")]
    Empty,
}

/// A row as spool payload (no key).
pub(crate) fn row(record: &AuditRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(TYPICAL_ROW);
    binary::encode(record, &mut out);
    out
}

/// A row behind an intent key.
pub(crate) fn keyed(key: u64, record: &AuditRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + TYPICAL_ROW);
    out.extend_from_slice(&key.to_le_bytes());
    binary::encode(record, &mut out);
    out
}

/// Re-keys an already encoded row payload (no decoding; either encoding).
pub(crate) fn keyed_raw(key: u64, row: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + row.len());
    out.extend_from_slice(&key.to_le_bytes());
    out.extend_from_slice(row);
    out
}

/// Splits a keyed payload into its key and row.
pub(crate) fn split_keyed(payload: &[u8]) -> Option<(u64, &[u8])> {
    let (key, row) = payload.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*key), row))
}

/// Decodes a row (either encoding) into `out`, reusing its allocations when the
/// row is binary. On error `out` holds a partly decoded row.
pub(crate) fn parse_into(payload: &[u8], out: &mut AuditRecord) -> Result<(), RowError> {
    match payload.first() {
        Some(&binary::TAG) => Ok(binary::decode_into(payload, out)?),
        Some(b'{') => {
            *out = serde_json::from_slice(payload)?;
            Ok(())
        }
        Some(&other) => Err(RowError::Unknown(other)),
        None => Err(RowError::Empty),
    }
}

/// Decodes a row (either encoding).
pub(crate) fn parse(payload: &[u8]) -> Result<AuditRecord, RowError> {
    let mut out = empty();
    parse_into(payload, &mut out)?;
    Ok(out)
}

/// A record to decode into.
pub(crate) fn empty() -> AuditRecord {
    AuditRecord::new(
        std::time::UNIX_EPOCH,
        String::new(),
        Action::new(ActionKind::Http, "", ""),
    )
}
