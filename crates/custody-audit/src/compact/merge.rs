//! Merging audit files into one sorted file: every input read into the current
//! schema (fields older files lack read as null), the rows sorted by
//! `(session_id, event_time)` (nulls last; `row_seq`, then `request_id` break ties,
//! so the same inputs always give the same bytes), encoded as every audit file is,
//! with the sort order declared.

use crate::digest::FileEntry;
use crate::schema::audit_schema;
use crate::writer::{WriteError, sorted_writer_properties};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{
    Array, ArrayRef, ListArray, RecordBatch, StructArray, UInt32Array, new_null_array,
};
use arrow_schema::{ArrowError, DataType, Field};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::sync::Arc;

/// Every row of the Parquet file `bytes`, in the current schema.
pub(crate) fn read(bytes: Bytes) -> Result<Vec<RecordBatch>, ArrowError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| ArrowError::ParquetError(e.to_string()))?
        .with_batch_size(8192)
        .build()
        .map_err(|e| ArrowError::ParquetError(e.to_string()))?;
    reader
        .map(|batch| conform_batch(&batch?))
        .collect::<Result<Vec<_>, _>>()
}

/// `batch` (of any schema version) in the current schema.
pub(crate) fn conform_batch(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = audit_schema();
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) => conform(column, field),
            None => absent(field, batch.num_rows()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema, columns)
}

/// `array` as `field`'s type: struct fields it lacks added as null, at any depth.
fn conform(array: &ArrayRef, field: &Field) -> Result<ArrayRef, ArrowError> {
    if array.data_type() == field.data_type() {
        return Ok(Arc::clone(array));
    }
    match (field.data_type(), array.data_type()) {
        (DataType::Struct(target), DataType::Struct(_)) => {
            let source = array.as_struct();
            let children = target
                .iter()
                .map(|f| match source.column_by_name(f.name()) {
                    Some(c) => conform(c, f),
                    None => absent(f, source.len()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arc::new(StructArray::try_new(
                target.clone(),
                children,
                source.nulls().cloned(),
            )?))
        }
        (DataType::List(item), DataType::List(_)) => {
            let source = array.as_list::<i32>();
            let values = conform(source.values(), item)?;
            Ok(Arc::new(ListArray::try_new(
                Arc::clone(item),
                source.offsets().clone(),
                values,
                source.nulls().cloned(),
            )?))
        }
        (expected, found) => Err(ArrowError::SchemaError(format!(
            "column {} is {found}, the audit schema has {expected}: not a custody file",
            field.name()
        ))),
    }
}

/// A column of `len` rows for a field the file lacks: null, or (a required struct)
/// a struct of nulls.
fn absent(field: &Field, len: usize) -> Result<ArrayRef, ArrowError> {
    if field.is_nullable() {
        return Ok(new_null_array(field.data_type(), len));
    }
    match field.data_type() {
        DataType::Struct(children) => {
            let columns = children
                .iter()
                .map(|c| absent(c, len))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arc::new(StructArray::try_new(
                children.clone(),
                columns,
                None,
            )?))
        }
        _ => Err(ArrowError::SchemaError(format!(
            "the required column {} is missing: not a custody file",
            field.name()
        ))),
    }
}

/// The rows of `batches` (current schema) in one batch, sorted.
pub(crate) fn sorted(batches: &[RecordBatch]) -> Result<RecordBatch, ArrowError> {
    let all = arrow_select::concat::concat_batches(&audit_schema(), batches)?;
    let column = |name: &str| {
        all.column_by_name(name)
            .ok_or_else(|| ArrowError::SchemaError(format!("no {name} column")))
    };
    let sessions = column("session_id")?.as_string::<i32>();
    let times = column("event_time")?.as_primitive::<TimestampMicrosecondType>();
    let seqs = column("row_seq")?.as_primitive::<Int64Type>();
    let ids = column("request_id")?.as_string::<i32>();
    let key = |i: usize| {
        (
            sessions.is_null(i),
            sessions.is_valid(i).then(|| sessions.value(i)),
            times.value(i),
            seqs.is_valid(i).then(|| seqs.value(i)),
            ids.value(i),
        )
    };
    let mut order: Vec<u32> = (0..all.num_rows() as u32).collect();
    order.sort_by(|&a, &b| key(a as usize).cmp(&key(b as usize)));
    arrow_select::take::take_record_batch(&all, &UInt32Array::from(order))
}

/// `batch` encoded as a compacted file, and its entry under `key`.
pub(crate) fn encode(batch: &RecordBatch, key: String) -> Result<(Bytes, FileEntry), WriteError> {
    let mut writer =
        ArrowWriter::try_new(Vec::new(), audit_schema(), Some(sorted_writer_properties()))?;
    writer.write(batch)?;
    let bytes = Bytes::from(writer.into_inner()?);
    let times = batch
        .column_by_name("event_time")
        .map(|c| c.as_primitive::<TimestampMicrosecondType>().clone());
    let seqs = batch
        .column_by_name("row_seq")
        .map(|c| c.as_primitive::<Int64Type>().clone());
    let range = |values: Option<Vec<i64>>| {
        let values = values.unwrap_or_default();
        (
            values.iter().copied().min().unwrap_or(0),
            values.iter().copied().max().unwrap_or(0),
        )
    };
    let (t0, t1) = range(times.map(|t| t.iter().flatten().collect()));
    let (s0, s1) = range(seqs.map(|s| s.iter().flatten().collect()));
    let entry = FileEntry {
        key,
        sha256: crate::digest::sha256_hex(&bytes),
        bytes: bytes.len() as u64,
        rows: batch.num_rows() as u64,
        event_time_min: crate::read::rfc3339(t0),
        event_time_max: crate::read::rfc3339(t1),
        row_seq_min: s0,
        row_seq_max: s1,
    };
    Ok((bytes, entry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuditRecord;
    use crate::batch::{at_version, to_record_batch};
    use custody_core::{Action, ActionKind};
    use std::time::{Duration, UNIX_EPOCH};

    fn rows() -> Vec<AuditRecord> {
        (0..40)
            .map(|i| {
                let mut r = AuditRecord::new(
                    UNIX_EPOCH
                        + Duration::from_micros(1_772_805_600_000_000 + (i * 37 % 40) * 1000),
                    format!("req-{i:02}"),
                    Action::new(ActionKind::Llm, "POST", "/v1/chat/completions"),
                );
                r.session_id = (i % 5 != 0).then(|| format!("s{}", i % 3));
                r.action.model = Some("gpt".into());
                r.row_seq = Some(i as i64 + 1);
                r
            })
            .collect()
    }

    #[test]
    fn older_versions_read_into_the_current_schema_and_sort() {
        let rows = rows();
        let current = to_record_batch(&rows[..20]).expect("batch");
        let old = at_version(&to_record_batch(&rows[20..]).expect("batch"), 3).expect("v3");
        assert!(old.column_by_name("row_seq").is_none());
        let old = conform_batch(&old).expect("conformed");
        assert_eq!(old.schema(), audit_schema());
        let model = old
            .column_by_name("action")
            .expect("present")
            .as_struct()
            .column_by_name("model")
            .expect("present")
            .clone();
        assert_eq!(model.null_count(), 20, "a v3 row has no action.model");

        let merged = sorted(&[current, old]).expect("sorted");
        assert_eq!(merged.num_rows(), 40);
        let sessions = merged
            .column_by_name("session_id")
            .expect("present")
            .as_string::<i32>();
        let times = merged
            .column_by_name("event_time")
            .expect("present")
            .as_primitive::<TimestampMicrosecondType>();
        let keys: Vec<_> = (0..40)
            .map(|i| {
                (
                    sessions.is_null(i),
                    sessions.is_valid(i).then(|| sessions.value(i)),
                    times.value(i),
                )
            })
            .collect();
        let mut expected = keys.clone();
        expected.sort();
        assert_eq!(keys, expected);
        assert!(keys[39].0, "nulls last");

        let (bytes, entry) =
            encode(&merged, "dt=x/hour=01/p-s-c0.parquet".into()).expect("encoded");
        assert_eq!(entry.rows, 40);
        assert_eq!(entry.row_seq_min, 1);
        assert_eq!(entry.row_seq_max, 20, "the v3 rows have no numbers");
        let again = encode(
            &sorted(&read(bytes.clone()).expect("read")).expect("sorted"),
            entry.key.clone(),
        )
        .expect("encoded");
        assert_eq!(again.0, bytes, "the same rows give the same bytes");
        let meta = parquet::file::reader::FileReader::metadata(
            &parquet::file::serialized_reader::SerializedFileReader::new(bytes).expect("parquet"),
        )
        .row_group(0)
        .sorting_columns()
        .cloned()
        .expect("sorting columns declared");
        assert_eq!(meta.len(), 2);
        assert!(!meta[0].nulls_first && !meta[0].descending);
    }
}
