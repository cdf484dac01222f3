//! Reading the trail for a report: the audit files of the hour partitions that
//! overlap the period (and the one before it), from a local directory or an object
//! store through the same shipper `custody verify` reads with, one file at a time,
//! only the columns the report uses.

use crate::rows::{COLUMNS, Columns};
use bytes::Bytes;
use custody_audit::ship::Shipper;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

const HOUR: i64 = 3_600_000_000;

/// The sink a report reads.
pub struct Sink {
    shipper: Shipper,
}

/// A file that could not be read, and why (reported, not fatal).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Unreadable {
    /// Its key.
    pub key: String,
    /// Why.
    pub error: String,
}

impl Sink {
    /// Opens `sink`: a directory or an object-store URL.
    pub fn open(sink: &str) -> Result<Self, String> {
        Ok(Self {
            shipper: Shipper::open_existing(sink)?,
        })
    }

    /// The shipper (for `custody verify`'s checks).
    pub fn shipper(&self) -> &Shipper {
        &self.shipper
    }

    /// The audit files whose hour partition overlaps `[from, to)`, sorted.
    pub async fn files(&self, from: i64, to: i64) -> Result<Vec<String>, String> {
        let keys = self.shipper.list("").await.map_err(|e| e.to_string())?;
        Ok(keys
            .into_iter()
            .filter(|k| k.ends_with(".parquet"))
            .filter(|k| match partition_start(k) {
                Some(start) => start < to && start + HOUR > from,
                None => false,
            })
            .collect())
    }

    /// Every batch of `key`'s report columns, handed to `each`.
    pub async fn read(&self, key: &str, mut each: impl FnMut(&Columns<'_>)) -> Result<(), String> {
        let bytes: Bytes = self.shipper.get(key).await.map_err(|e| e.to_string())?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| e.to_string())?;
        let mask = ProjectionMask::columns(builder.parquet_schema(), COLUMNS.iter().copied());
        let reader = builder
            .with_projection(mask)
            .with_batch_size(8192)
            .build()
            .map_err(|e| e.to_string())?;
        for batch in reader {
            let batch = batch.map_err(|e| e.to_string())?;
            each(&Columns::of(&batch));
        }
        Ok(())
    }
}

/// The start (µs) of the hour partition `dt=YYYY-MM-DD/hour=HH/…` names.
fn partition_start(key: &str) -> Option<i64> {
    let mut parts = key.split('/');
    let date = parts.next()?.strip_prefix("dt=")?;
    let hour: i64 = parts.next()?.strip_prefix("hour=")?.parse().ok()?;
    let day: jiff::civil::Date = date.parse().ok()?;
    let midnight = day.to_zoned(jiff::tz::TimeZone::UTC).ok()?;
    Some(midnight.timestamp().as_microsecond() + hour * HOUR)
}

#[cfg(test)]
mod tests {
    #[test]
    fn partitions_name_their_hour() {
        assert_eq!(
            super::partition_start("dt=1970-01-02/hour=01/x.parquet"),
            Some(25 * super::HOUR)
        );
        assert_eq!(super::partition_start("digests/dt=1970-01-02/x.json"), None);
    }
}
