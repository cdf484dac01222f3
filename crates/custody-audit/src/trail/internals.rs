//! Not a stable API: the audit path's internal steps, exposed only so that the
//! `rows` benchmark (`benches/rows.rs`) can time them one by one. Each function is
//! exactly what the request path or the roller does.

use super::envelope;
use super::files::{ENCODE_ROWS, SegmentFiles};
use super::pairing::Pairing;
use super::roller::build_segment;
use crate::batch::BatchBuilder;
use crate::record::AuditRecord;
use crate::schema::audit_schema;
use crate::spool::{RecordKind, Spool};
use crate::writer::writer_properties;
use arrow_array::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;

/// The kind an intent is spooled as.
pub const INTENT: RecordKind = envelope::INTENT;
/// The kind a completion is spooled as.
pub const COMPLETION: RecordKind = envelope::COMPLETION;

/// A built file: its key, bytes and row count.
pub type File = (String, Bytes, u64);

/// The intent payload of a row ([`super::AuditTrail::intent`]).
pub fn intent_payload(row: &AuditRecord) -> Vec<u8> {
    envelope::row(row)
}

/// The completion payload of a row ([`super::AuditTrail::complete`]).
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
    let mut files = SegmentFiles::starting_at(1);
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

/// Rows → Arrow batches of the size the roller encodes ([`super::files`]), built
/// in advance so that [`encode_batches`] times the Parquet encoder alone.
pub fn batches<'a>(rows: impl IntoIterator<Item = &'a AuditRecord>) -> Vec<RecordBatch> {
    let mut builder = BatchBuilder::default();
    let mut out = Vec::new();
    for row in rows {
        builder.append(row);
        if builder.len() >= ENCODE_ROWS {
            out.push(builder.finish().expect("batch"));
        }
    }
    if !builder.is_empty() {
        out.push(builder.finish().expect("batch"));
    }
    out
}

/// Arrow batches → one Parquet file with the audit trail's writer properties: the
/// Parquet encoder (levels, dictionaries, statistics, zstd) and nothing else.
pub fn encode_batches(batches: &[RecordBatch]) -> Vec<u8> {
    let mut w = ArrowWriter::try_new(Vec::new(), audit_schema(), Some(writer_properties()))
        .expect("writer");
    for b in batches {
        w.write(b).expect("encode");
    }
    w.into_inner().expect("finish")
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
        build_segment(spool, &mut self.pairing, id, ("bench", "spool"), &[], 1)
            .expect("segment")
            .files
            .into_iter()
            .map(|f| (f.key, f.bytes, f.rows))
            .collect()
    }
}
