//! Skipping what cannot match: row groups whose `session_id` statistics exclude the
//! id, then those whose `session_id` bloom filter says it is not there (an exact
//! id; files from schema v8's writer on carry the filters), and (inside the row
//! groups that remain) rows whose `session_id` does not match, before any other
//! column is decoded.

use super::SessionMatch;
use arrow_array::cast::AsArray;
use arrow_array::{Array, BooleanArray, RecordBatch};
use arrow_schema::{ArrowError, DataType};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowPredicateFn, RowFilter};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;
use parquet::schema::types::SchemaDescriptor;

/// The leaf index of the top-level column `name`.
pub(super) fn leaf(schema: &SchemaDescriptor, name: &str) -> Option<usize> {
    schema
        .columns()
        .iter()
        .position(|c| c.path().parts() == [name])
}

/// The row groups that may hold a row matching `m` (by the min/max statistics of
/// the `session_id` leaf column `col`; a row group without statistics is kept).
pub(super) fn row_groups(meta: &ParquetMetaData, col: usize, m: &SessionMatch) -> Vec<usize> {
    (0..meta.num_row_groups())
        .filter(|&i| {
            if *m == SessionMatch::All {
                return true; // rows without a session id too
            }
            let rg = meta.row_group(i);
            let Some(Statistics::ByteArray(s)) = rg.column(col).statistics() else {
                return true;
            };
            let rows = u64::try_from(rg.num_rows()).unwrap_or(u64::MAX);
            if s.null_count_opt() == Some(rows) {
                return false; // only nulls
            }
            match (s.min_bytes_opt(), s.max_bytes_opt()) {
                (Some(min), Some(max)) => may_contain(min, max, m),
                _ => true,
            }
        })
        .collect()
}

/// Of `groups`, those whose bloom filter on the `session_id` leaf column `col`
/// may hold the id `m` names: only an exact id can be looked up, and a row group
/// without a filter (files written before the filters) is kept, as is every one
/// when the filters cannot be read. A filter answers "not there" for certain and
/// "maybe" with a 1 % false-positive rate.
pub(super) fn by_bloom_filter(
    file: &std::fs::File,
    col: usize,
    groups: Vec<usize>,
    m: &SessionMatch,
) -> Vec<usize> {
    use parquet::file::reader::FileReader;
    use parquet::file::serialized_reader::SerializedFileReader;
    let SessionMatch::Exact(id) = m else {
        return groups;
    };
    let options = with_bloom_filters();
    let Ok(reader) = file
        .try_clone()
        .map_err(parquet::errors::ParquetError::from)
        .and_then(|f| SerializedFileReader::new_with_options(f, options))
    else {
        return groups;
    };
    groups
        .into_iter()
        .filter(|&i| {
            reader
                .get_row_group(i)
                .ok()
                .and_then(|rg| {
                    rg.get_column_bloom_filter(col)
                        .map(|f| f.check(&id.as_str()))
                })
                .unwrap_or(true)
        })
        .collect()
}

/// Options for a file reader that also reads the row groups' bloom filters.
pub(crate) fn with_bloom_filters() -> parquet::file::serialized_reader::ReadOptions {
    use parquet::file::properties::ReaderProperties;
    parquet::file::serialized_reader::ReadOptionsBuilder::new()
        .with_reader_properties(
            ReaderProperties::builder()
                .set_read_bloom_filter(true)
                .build(),
        )
        .build()
}

/// Whether a string column bounded by `min..=max` (byte-wise, possibly truncated
/// bounds that still bound every value) may hold a value matching `m`.
pub(super) fn may_contain(min: &[u8], max: &[u8], m: &SessionMatch) -> bool {
    match m {
        SessionMatch::Exact(id) => min <= id.as_bytes() && id.as_bytes() <= max,
        SessionMatch::Prefix(p) => {
            let p = p.as_bytes();
            // Some value v with p <= v (v starts with p) and v <= max, and the
            // smallest value's first |p| bytes are not past p.
            max >= p && &min[..min.len().min(p.len())] <= p
        }
        SessionMatch::Value(_) | SessionMatch::Subject(_) | SessionMatch::All => true,
    }
}

/// Whether row group `g` may hold an `event_time` (leaf column `col`, microseconds)
/// at or after `since`, by its max statistic (kept when there is none).
pub(super) fn may_end_after(meta: &ParquetMetaData, g: usize, col: usize, since: i64) -> bool {
    match meta.row_group(g).column(col).statistics() {
        Some(Statistics::Int64(s)) => s.max_opt().is_none_or(|&max| max >= since),
        _ => true,
    }
}

/// A row filter keeping rows whose `session_id` matches `m`.
pub(super) fn row_filter(schema: &SchemaDescriptor, col: usize, m: &SessionMatch) -> RowFilter {
    let m = m.clone();
    let predicate = ArrowPredicateFn::new(
        ProjectionMask::leaves(schema, [col]),
        move |batch: RecordBatch| matches(&batch, &m),
    );
    RowFilter::new(vec![Box::new(predicate)])
}

fn matches(batch: &RecordBatch, m: &SessionMatch) -> Result<BooleanArray, ArrowError> {
    let col = batch.column(0);
    let test = |v: Option<&str>| Some(m.matches(v));
    let out: BooleanArray = match col.data_type() {
        DataType::Utf8 => col.as_string::<i32>().iter().map(test).collect(),
        DataType::LargeUtf8 => col.as_string::<i64>().iter().map(test).collect(),
        DataType::Utf8View => col.as_string_view().iter().map(test).collect(),
        other => {
            return Err(ArrowError::SchemaError(format!(
                "session_id: expected a string column, found {other}"
            )));
        }
    };
    debug_assert_eq!(out.len(), batch.num_rows());
    Ok(out)
}
