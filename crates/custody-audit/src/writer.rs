//! Writing audit rows as Parquet files under a Hive-partitioned directory.

use crate::schema::{SCHEMA_VERSION, SCHEMA_VERSION_KEY, audit_schema};
use parquet::arrow::ArrowSchemaConverter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use std::io;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Why a batch of rows could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The rows could not be turned into an Arrow batch (a bug: the schema and the
    /// builder disagree).
    #[error("building the Arrow batch: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// Parquet encoding failed.
    #[error("encoding Parquet: {0}")]
    Parquet(#[from] ParquetError),
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// Not used on the audit path (the roller builds files from spool segments):
/// a direct writer of rows into a Parquet directory, for this crate's tests and
/// benchmarks (feature `internals`).
#[cfg(any(test, feature = "internals"))]
mod dir;
#[cfg(any(test, feature = "internals"))]
pub use dir::{FileNamer, ParquetDirWriter};

/// How every audit file is encoded: zstd, row groups of at most [`ROW_GROUP_ROWS`]
/// rows, bloom filters on the columns analysts look single values up by
/// ([`BLOOM_COLUMNS`]), row-group (column chunk) statistics,
/// dictionary encoding only where values repeat across rows ([`DICTIONARY_COLUMNS`]),
/// the schema version in the key-value metadata, and nothing that varies between
/// two encodings of the same rows (no timestamps), so a rebuilt file has the same
/// bytes.
///
/// Page-level statistics (the column index) are not written: nothing here reads
/// them (`custody trail` prunes by row group), and they cost a comparison per value
/// and column. Unique values (ids, timestamps, durations, parameters) are stored
/// plain and left to zstd: hashing each into a dictionary that never repeats costs
/// more than it saves.
pub(crate) fn writer_properties() -> WriterProperties {
    static PROPS: OnceLock<WriterProperties> = OnceLock::new();
    PROPS.get_or_init(|| properties().build()).clone()
}

/// [`writer_properties`] for a compacted file, whose rows are sorted by
/// [`SORTING_COLUMNS`](crate::digest::compaction::SORTING_COLUMNS) (nulls last):
/// declared in each row group's `sorting_columns`.
pub(crate) fn sorted_writer_properties() -> WriterProperties {
    static PROPS: OnceLock<WriterProperties> = OnceLock::new();
    PROPS
        .get_or_init(|| {
            let leaves = ArrowSchemaConverter::new()
                .convert(&audit_schema())
                .map(|d| {
                    d.columns()
                        .iter()
                        .map(|c| c.path().string())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            let sorting = crate::digest::compaction::SORTING_COLUMNS
                .iter()
                .filter_map(|name| leaves.iter().position(|l| l == name))
                .map(|i| SortingColumn {
                    column_idx: i as i32,
                    descending: false,
                    nulls_first: false,
                })
                .collect();
            properties().set_sorting_columns(Some(sorting)).build()
        })
        .clone()
}

fn properties() -> parquet::file::properties::WriterPropertiesBuilder {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_dictionary_enabled(false)
        .set_data_page_size_limit(PAGE_BYTES)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(format!("custody {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata(Some(vec![KeyValue::new(
            SCHEMA_VERSION_KEY.to_owned(),
            SCHEMA_VERSION.to_string(),
        )]));
    for path in dictionary_leaves() {
        builder = builder.set_column_dictionary_enabled(path, true);
    }
    for path in BLOOM_COLUMNS {
        let path = ColumnPath::new(path.iter().map(|p| (*p).to_owned()).collect());
        builder = builder
            .set_column_bloom_filter_enabled(path.clone(), true)
            .set_column_bloom_filter_max_ndv(path.clone(), ROW_GROUP_ROWS as u64)
            .set_column_bloom_filter_fpp(path, BLOOM_FPP);
    }

    // Canonical request parameters: long values sharing long prefixes, so
    // min/max costs a long comparison per row and prunes nothing.
    builder = builder.set_column_statistics_enabled(
        ColumnPath::new(vec!["action".into(), "parameters".into()]),
        EnabledStatistics::None,
    );
    builder
}

/// Target size of a data page before compression: small enough that a column's
/// page buffer is reused from the heap rather than grown and faulted in afresh.
const PAGE_BYTES: usize = 64 << 10;

/// Rows per row group. The encoder holds a row group's pages in memory until the
/// group is complete, so this (not `audit.roll.rows`, the rows per file) bounds
/// the roller's memory: a 10 000-row file in one group took ~3.5 MiB more at peak
/// than in groups of 4 096, for 3 % larger files (a footer entry per group).
/// Smaller groups also let `custody trail` skip more of a file by its statistics.
pub(crate) const ROW_GROUP_ROWS: usize = 4096;

/// Columns with a bloom filter per row group: the ids a query looks one value up
/// by (one session, one request, one user), which min/max statistics cannot
/// rule out when the row group's range spans the value. Each filter is sized for
/// a row group of distinct values at [`BLOOM_FPP`] false positives: about 5 KiB.
const BLOOM_COLUMNS: &[&[&str]] = &[&["session_id"], &["request_id"], &["principal", "sub"]];

/// The false-positive rate the bloom filters are sized for.
const BLOOM_FPP: f64 = 0.01;

/// Leaf columns whose values repeat across rows, so a dictionary pays: every leaf
/// under one of these paths (a list's leaves included). Everything else is unique
/// per row, or nearly.
const DICTIONARY_COLUMNS: &[&[&str]] = &[
    &["session_id"],
    &["schema_version"],
    &["principal"],
    &["action", "kind"],
    &["action", "route"],
    &["action", "method"],
    &["action", "path"],
    &["action", "upstream"],
    &["action", "tool"],
    &["action", "operation"],
    &["policy"],
    &["content_safety"],
    &["usage", "model"],
    &["outcome", "status"],
    &["outcome", "error"],
    &["session_step"],
    &["session_source"],
    &["intercepted_host"],
];

/// The leaf column paths of the audit schema that get a dictionary.
fn dictionary_leaves() -> Vec<ColumnPath> {
    let schema = match ArrowSchemaConverter::new().convert(&audit_schema()) {
        Ok(s) => s,
        // The schema is static; its conversion is covered by every write test.
        Err(_) => return Vec::new(),
    };
    schema
        .columns()
        .iter()
        .map(|c| c.path().clone())
        .filter(|path| DICTIONARY_COLUMNS.iter().any(|prefix| under(path, prefix)))
        .collect()
}

/// Whether leaf column `path` lies under `prefix` (or is it).
fn under(path: &ColumnPath, prefix: &[&str]) -> bool {
    let parts = path.parts();
    parts.len() >= prefix.len() && parts.iter().zip(prefix).all(|(a, b)| a == b)
}

/// The pod or host name as it appears in file names: at most 63 characters, those
/// other than ASCII alphanumerics, `-` and `_` replaced by `_`; `custody` if empty.
pub(crate) fn sanitize_instance(instance: &str) -> String {
    let instance: String = instance
        .chars()
        .take(63)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if instance.is_empty() {
        "custody".to_owned()
    } else {
        instance
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::AuditRecord;
    use custody_core::{Action, ActionKind};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use std::fs::{self, File};
    use std::time::{Duration, UNIX_EPOCH};

    fn row(micros: i64) -> AuditRecord {
        AuditRecord::new(
            UNIX_EPOCH + Duration::from_micros(u64::try_from(micros).expect("positive")),
            "req".into(),
            Action::new(ActionKind::Http, "GET", "/"),
        )
    }

    #[test]
    fn writes_one_file_per_partition_with_zstd() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = ParquetDirWriter::new(dir.path(), FileNamer::new("pod/a b"));
        let hour = 3_600_000_000;
        let base = 1_772_807_527_000_000 / hour * hour;
        let files = w
            .write(&[row(base), row(base + 1), row(base + hour)])
            .expect("write");
        assert_eq!(files.len(), 2);
        let first = files[0].strip_prefix(dir.path()).expect("under dir");
        let parts: Vec<_> = first
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        assert_eq!(parts[0], "dt=2026-03-06");
        assert_eq!(parts[1], "hour=14");
        assert!(parts[2].starts_with("pod_a_b-"), "{}", parts[2]);
        assert!(parts[2].ends_with("-00000001.parquet"));

        let reader = SerializedFileReader::new(File::open(&files[0]).expect("open")).expect("read");
        let meta = reader.metadata();
        assert_eq!(meta.file_metadata().num_rows(), 2);
        let col = meta.row_group(0).column(0);
        assert_eq!(col.compression(), Compression::ZSTD(ZstdLevel::default()));
        assert!(
            col.statistics().is_some(),
            "row-group statistics are written"
        );
        let kv = meta.file_metadata().key_value_metadata().expect("kv");
        assert!(
            kv.iter()
                .any(|k| k.key == crate::schema::SCHEMA_VERSION_KEY)
        );
    }

    #[test]
    fn a_large_file_is_written_in_bounded_row_groups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = ParquetDirWriter::new(dir.path(), FileNamer::new("pod"));
        let rows: Vec<_> = (0..2 * ROW_GROUP_ROWS as i64 + 10)
            .map(|i| row(1_772_807_527_000_000 + i))
            .collect();
        let files = w.write(&rows).expect("write");
        assert_eq!(files.len(), 1);
        let reader = SerializedFileReader::new(File::open(&files[0]).expect("open")).expect("read");
        let groups: Vec<i64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        let full = ROW_GROUP_ROWS as i64;
        assert_eq!(groups, [full, full, 10]);
    }

    #[test]
    fn only_repeating_columns_get_a_dictionary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = ParquetDirWriter::new(dir.path(), FileNamer::new("pod"));
        let rows: Vec<_> = (0..100)
            .map(|i| {
                let mut r = row(1_772_807_527_000_000 + i);
                r.request_id = format!("req_{i}");
                r.principal.sub = Some(format!("user-{}", i % 3));
                r.action.parameters = Some(format!("{{\"seed\":{i}}}"));
                r
            })
            .collect();
        let files = w.write(&rows).expect("write");
        let reader = SerializedFileReader::new(File::open(&files[0]).expect("open")).expect("read");
        let rg = reader.metadata().row_group(0);
        let column = |path: &str| {
            rg.columns()
                .iter()
                .find(|c| c.column_path().string() == path)
                .unwrap_or_else(|| panic!("no column {path}"))
        };
        let dictionary = |path: &str| column(path).dictionary_page_offset().is_some();
        assert!(dictionary("principal.sub"));
        assert!(dictionary("session_id"));
        assert!(dictionary("action.route"));
        assert!(!dictionary("request_id"));
        assert!(!dictionary("event_time"));
        assert!(!dictionary("action.parameters"));
        assert!(column("request_id").statistics().is_some());
        assert!(
            column("session_id").statistics().is_some(),
            "custody trail prunes by it"
        );
        assert!(column("action.parameters").statistics().is_none());
        assert!(
            rg.columns()
                .iter()
                .all(|c| c.column_index_offset().is_none()),
            "no page-level statistics"
        );
        for prefix in DICTIONARY_COLUMNS {
            assert!(
                rg.columns().iter().any(|c| under(c.column_path(), prefix)),
                "{prefix:?} names no column"
            );
        }
        for c in rg.columns() {
            let path = c.column_path().parts().to_vec();
            let listed = DICTIONARY_COLUMNS.iter().any(|p| under(c.column_path(), p));
            assert_eq!(
                listed,
                dictionary_leaves().contains(c.column_path()),
                "{path:?}"
            );
        }
    }

    #[test]
    fn failed_write_leaves_no_parquet_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir.path().join("audit");
        fs::write(&blocker, b"not a directory").expect("write");
        let mut w = ParquetDirWriter::new(&blocker, FileNamer::new("x"));
        let err = w.write(&[row(0)]).expect_err("must fail");
        assert!(matches!(err, WriteError::Io { .. }), "{err}");
    }
}
