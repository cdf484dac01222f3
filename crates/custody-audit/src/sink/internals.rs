//! Not a stable API: the audit path's internal steps, exposed only so that the
//! `rows` benchmark (`benches/rows.rs`) can time them one by one. Each function is
//! exactly what the request path or the roller does.

use super::envelope;
use super::files::SegmentFiles;
use super::pairing::Pairing;
use super::roller::build_segment;
use crate::record::AuditRecord;
use crate::spool::{RecordKind, Spool};
use bytes::Bytes;

/// The kind an intent is spooled as.
pub const INTENT: RecordKind = envelope::INTENT;
/// The kind a completion is spooled as.
pub const COMPLETION: RecordKind = envelope::COMPLETION;

/// A built file: its key, bytes and row count.
pub type File = (String, Bytes, u64);

/// The intent payload of a row ([`super::AuditSink::intent`]).
pub fn intent_payload(row: &AuditRecord) -> Vec<u8> {
    envelope::row(row)
}

/// The completion payload of a row ([`super::AuditSink::complete`]).
pub fn completion_payload(key: u64, row: &AuditRecord) -> Vec<u8> {
    envelope::keyed(key, row)
}

/// The intent payload the previous version wrote (JSON), which the roller still
/// reads.
pub fn json_intent_payload(row: &AuditRecord) -> Vec<u8> {
    serde_json::to_vec(row).expect("encodable")
}

/// The completion payload the previous version wrote (key, JSON).
pub fn json_completion_payload(key: u64, row: &AuditRecord) -> Vec<u8> {
    let mut out = key.to_le_bytes().to_vec();
    serde_json::to_writer(&mut out, row).expect("encodable");
    out
}

/// Decodes a completion payload (either encoding) into `out`, as the roller does.
pub fn parse_completion(payload: &[u8], out: &mut AuditRecord) {
    let (_, row) = envelope::split_keyed(payload).expect("keyed");
    envelope::parse_into(row, out).expect("decodable");
}

/// Rows → their Parquet files (the roller's encoder).
pub fn parquet<'a>(rows: impl IntoIterator<Item = &'a AuditRecord>) -> Vec<File> {
    let mut files = SegmentFiles::default();
    for row in rows {
        files.push(row);
    }
    files
        .finish("bench", "spool", 1)
        .expect("files")
        .into_iter()
        .map(|f| (f.key, f.bytes, f.rows))
        .collect()
}

/// The roller's pairing state, across segments.
#[derive(Debug)]
pub struct Roll {
    pairing: Pairing,
}

impl Default for Roll {
    fn default() -> Self {
        Self {
            pairing: Pairing::new("spool", false),
        }
    }
}

impl Roll {
    /// Reads sealed segment `id`, pairs its records and builds its files.
    pub fn segment(&mut self, spool: &Spool, id: u64) -> Vec<File> {
        build_segment(spool, &mut self.pairing, id, "bench", "spool")
            .expect("segment")
            .files
            .into_iter()
            .map(|f| (f.key, f.bytes, f.rows))
            .collect()
    }
}
