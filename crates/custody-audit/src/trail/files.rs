//! The Parquet files made from one sealed spool segment: one per UTC hour partition
//! its rows fall in, named deterministically
//! `dt=YYYY-MM-DD/hour=HH/<instance>-<spool id>-<segment id>.parquet`, so building
//! them again from the same segment (after a crash, or a failed upload) gives the
//! same names and the same bytes, and uploading them again is harmless.

use crate::batch::BatchBuilder;
use crate::record::{AuditRecord, Partition};
use crate::schema::audit_schema;
use crate::writer::{WriteError, writer_properties};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use std::collections::BTreeMap;

/// Rows appended to a partition's builder before they are encoded.
///
/// Not a whole row group ([`crate::writer::ROW_GROUP_ROWS`]): holding 4 096 rows
/// as Arrow arrays to sort each row group by session took 6.7 MiB more at peak
/// under load, for files 3 % smaller and no better pruned by their statistics
/// (docs/performance.md, "Files for query engines"). Sorted files come from
/// compaction, which reads a partition whole anyway.
pub(crate) const ENCODE_ROWS: usize = 1024;

/// A finished file, ready to upload.
#[derive(Clone, Debug)]
pub(crate) struct BuiltFile {
    /// The object key relative to the sink (`dt=.../hour=.../name.parquet`).
    pub(crate) key: String,
    /// The file.
    pub(crate) bytes: Bytes,
    /// Rows in it.
    pub(crate) rows: u64,
    /// The earliest and latest `event_time` in it (µs).
    pub(crate) event_times: (i64, i64),
    /// The lowest and highest `row_seq` in it.
    pub(crate) row_seqs: (i64, i64),
}

impl BuiltFile {
    /// What a digest records of it.
    pub(crate) fn entry(&self) -> crate::digest::FileEntry {
        crate::digest::FileEntry {
            key: self.key.clone(),
            sha256: crate::digest::sha256_hex(&self.bytes),
            bytes: self.bytes.len() as u64,
            rows: self.rows,
            event_time_min: crate::read::rfc3339(self.event_times.0),
            event_time_max: crate::read::rfc3339(self.event_times.1),
            row_seq_min: self.row_seqs.0,
            row_seq_max: self.row_seqs.1,
        }
    }
}

/// `dt=YYYY-MM-DD/hour=HH/<instance>-<spool id>-<segment:08>.parquet`.
pub(crate) fn file_key(instance: &str, spool_id: &str, segment: u64, p: Partition) -> String {
    let dir = p.relative_dir();
    let dir: Vec<_> = dir.iter().map(|c| c.to_string_lossy()).collect();
    format!(
        "{}/{instance}-{spool_id}-{segment:08}.parquet",
        dir.join("/")
    )
}

struct PartFile {
    builder: BatchBuilder,
    encoder: ArrowWriter<Vec<u8>>,
    rows: u64,
    event_times: (i64, i64),
    row_seqs: (i64, i64),
}

/// The files of one segment being built, rows encoded as they come (compressed in
/// memory), one file per partition, and numbered (`row_seq`) in the order they come.
pub(crate) struct SegmentFiles {
    parts: BTreeMap<Partition, PartFile>,
    error: Option<WriteError>,
    /// The next row's `row_seq`.
    next_seq: i64,
}

impl SegmentFiles {
    /// Files whose first row is numbered `first`.
    pub(crate) fn starting_at(first: i64) -> Self {
        Self {
            parts: BTreeMap::new(),
            error: None,
            next_seq: first,
        }
    }

    /// The `row_seq` the next segment's first row gets.
    pub(crate) fn next_seq(&self) -> i64 {
        self.next_seq
    }

    /// Adds a row to its partition's file.
    pub(crate) fn push(&mut self, row: &AuditRecord) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.try_push(row) {
            self.error = Some(e);
        }
    }

    fn try_push(&mut self, row: &AuditRecord) -> Result<(), WriteError> {
        let part = match self.parts.entry(row.partition()) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(PartFile {
                builder: BatchBuilder::default(),
                encoder: ArrowWriter::try_new(
                    Vec::new(),
                    audit_schema(),
                    Some(writer_properties()),
                )?,
                rows: 0,
                event_times: (i64::MAX, i64::MIN),
                row_seqs: (i64::MAX, i64::MIN),
            }),
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        part.builder.append_numbered(row, Some(seq));
        part.rows += 1;
        part.row_seqs = (part.row_seqs.0.min(seq), part.row_seqs.1.max(seq));
        part.event_times = (
            part.event_times.0.min(row.event_time),
            part.event_times.1.max(row.event_time),
        );
        if part.builder.len() >= ENCODE_ROWS {
            let batch = part.builder.finish()?;
            part.encoder.write(&batch)?;
        }
        Ok(())
    }

    /// Finishes every file. Encoding into memory fails only on a schema bug.
    pub(crate) fn finish(
        self,
        instance: &str,
        spool_id: &str,
        segment: u64,
    ) -> Result<Vec<BuiltFile>, WriteError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut out = Vec::with_capacity(self.parts.len());
        for (partition, mut part) in self.parts {
            if !part.builder.is_empty() {
                let batch = part.builder.finish_last()?;
                part.encoder.write(&batch)?;
            }
            let bytes = part.encoder.into_inner()?;
            out.push(BuiltFile {
                key: file_key(instance, spool_id, segment, partition),
                bytes: Bytes::from(bytes),
                rows: part.rows,
                event_times: part.event_times,
                row_seqs: part.row_seqs,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::ROW_GROUP_ROWS;
    use custody_core::{Action, ActionKind};
    use parquet::file::reader::FileReader;
    use parquet::file::serialized_reader::SerializedFileReader;
    use std::time::{Duration, UNIX_EPOCH};

    const HOUR_START: i64 = 1_772_805_600_000_000;

    /// Rows arriving in completion order: times out of order, sessions interleaved.
    fn rows(n: usize) -> Vec<AuditRecord> {
        (0..n)
            .map(|i| {
                let at = HOUR_START + ((i * 7_919) % n) as i64 * 1_000;
                let mut r = AuditRecord::new(
                    UNIX_EPOCH + Duration::from_micros(at as u64),
                    format!("req-{i}"),
                    Action::new(ActionKind::Llm, "POST", "/v1/chat/completions"),
                );
                // Every seventh row has no session (refused before identity).
                r.session_id = (i % 7 != 0).then(|| format!("hdr:s{}", i % 5));
                r.principal.sub = Some(format!("user-{}", i % 5));
                r
            })
            .collect()
    }

    fn build(rows: &[AuditRecord]) -> BuiltFile {
        let mut files = SegmentFiles::starting_at(1);
        for r in rows {
            files.push(r);
        }
        let mut built = files.finish("pod", "spool", 1).expect("built");
        assert_eq!(built.len(), 1);
        built.remove(0)
    }

    #[test]
    fn ids_a_query_looks_up_have_bloom_filters() {
        let file = build(&rows(500));
        let options = crate::read::prune::with_bloom_filters();
        let reader =
            SerializedFileReader::new_with_options(file.bytes.clone(), options).expect("parquet");
        let group = reader.get_row_group(0).expect("row group");
        let index = |path: &str| {
            reader
                .metadata()
                .row_group(0)
                .columns()
                .iter()
                .position(|c| c.column_path().string() == path)
                .expect("column")
        };
        let filter = |path: &str| group.get_column_bloom_filter(index(path));
        let sessions = filter("session_id").expect("a filter on session_id");
        assert!(sessions.check(&"hdr:s3"));
        let absent = (0..100)
            .filter(|i| sessions.check(&format!("hdr:other-{i}").as_str()))
            .count();
        assert!(
            absent <= 5,
            "{absent} of 100 absent sessions pass the filter"
        );
        assert!(
            filter("request_id")
                .expect("on request_id")
                .check(&"req-42")
        );
        assert!(
            filter("principal.sub")
                .expect("on principal.sub")
                .check(&"user-4")
        );
        assert!(filter("action.route").is_none());
        assert!(filter("event_time").is_none());
    }

    #[test]
    fn the_same_rows_build_the_same_bytes() {
        let rows = rows(ROW_GROUP_ROWS + 3);
        assert_eq!(build(&rows).bytes, build(&rows).bytes);
    }
}
