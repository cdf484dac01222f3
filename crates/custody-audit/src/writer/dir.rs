//! [`ParquetDirWriter`]: rows straight into `dir/dt=YYYY-MM-DD/hour=HH/` files,
//! named by a [`FileNamer`], encoded like every audit file
//! (`writer_properties` in the parent module). The audit path does not use it; tests and
//! benchmarks do (feature `internals`).

use super::{WriteError, sanitize_instance, writer_properties};
use crate::batch::to_record_batch;
use crate::record::{AuditRecord, Partition};
use crate::schema::{SCHEMA_VERSION_KEY, audit_schema};
use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Names files `<instance>-<boot>-<seq>.parquet`: unique per process (the boot id is a
/// fresh time-ordered UUID) and sortable by time of writing within one process.
#[derive(Debug)]
pub struct FileNamer {
    prefix: String,
    seq: u64,
}

impl FileNamer {
    /// A namer for this process. `instance` is the pod or host name; characters
    /// other than ASCII alphanumerics, `-` and `_` are replaced by `_`.
    pub fn new(instance: &str) -> Self {
        Self {
            prefix: format!(
                "{}-{}",
                sanitize_instance(instance),
                uuid::Uuid::now_v7().simple()
            ),
            seq: 0,
        }
    }

    fn next(&mut self) -> String {
        self.seq += 1;
        format!("{}-{:08}.parquet", self.prefix, self.seq)
    }
}

/// Writes batches of rows into `dir/dt=YYYY-MM-DD/hour=HH/`, one file per partition
/// touched by the batch.
#[derive(Debug)]
pub struct ParquetDirWriter {
    dir: PathBuf,
    namer: FileNamer,
    props: WriterProperties,
}

impl ParquetDirWriter {
    /// A writer into `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>, namer: FileNamer) -> Self {
        Self {
            dir: dir.into(),
            namer,
            props: writer_properties(),
        }
    }

    /// The directory rows are written under.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `rows`, one file per partition they touch, and returns the files
    /// created. On error, files already completed by this call are removed again, so
    /// a retry does not duplicate rows.
    pub fn write(&mut self, rows: &[AuditRecord]) -> Result<Vec<PathBuf>, WriteError> {
        let mut partitions: BTreeMap<Partition, Vec<&AuditRecord>> = BTreeMap::new();
        for row in rows {
            partitions.entry(row.partition()).or_default().push(row);
        }
        let mut written = Vec::new();
        for (partition, rows) in partitions {
            match to_record_batch(&rows)
                .map_err(WriteError::from)
                .and_then(|batch| self.write_batch(partition, &batch))
            {
                Ok(path) => written.push(path),
                Err(e) => {
                    for path in &written {
                        let _ = fs::remove_file(path);
                    }
                    return Err(e);
                }
            }
        }
        Ok(written)
    }

    /// Writes `rows` as files of the earlier schema `version` (1 to
    /// [`crate::SCHEMA_VERSION`]) wrote them: without the columns and fields added
    /// later ([`crate::batch::at_version`]), with `version` in the file's metadata
    /// and in every row's `schema_version`. For test data that mixes versions, as a
    /// sink does across an upgrade.
    pub fn write_version(
        &mut self,
        rows: &[AuditRecord],
        version: i32,
    ) -> Result<Vec<PathBuf>, WriteError> {
        let mut partitions: BTreeMap<Partition, Vec<AuditRecord>> = BTreeMap::new();
        for row in rows {
            let mut row = row.clone();
            row.schema_version = version;
            partitions.entry(row.partition()).or_default().push(row);
        }
        let props = self
            .props
            .clone()
            .into_builder()
            .set_key_value_metadata(Some(vec![KeyValue::new(
                SCHEMA_VERSION_KEY.to_owned(),
                version.to_string(),
            )]))
            .build();
        let mut written = Vec::new();
        for (partition, rows) in partitions {
            let batch = crate::batch::at_version(&to_record_batch(&rows)?, version)?;
            let mut encoder =
                ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props.clone()))?;
            encoder.write(&batch)?;
            let bytes = encoder.into_inner()?;
            written.push(self.write_file(partition, &bytes)?);
        }
        Ok(written)
    }

    /// A Parquet file being built in memory: write batches to it, then hand
    /// `into_inner()` to [`ParquetDirWriter::write_file`]. Rows are held encoded and
    /// compressed, a fraction of their size as Arrow arrays.
    pub fn encoder(&self) -> Result<ArrowWriter<Vec<u8>>, WriteError> {
        Ok(ArrowWriter::try_new(
            Vec::new(),
            audit_schema(),
            Some(self.props.clone()),
        )?)
    }

    /// Writes `batch` as one file in `partition` and returns its path.
    pub fn write_batch(
        &mut self,
        partition: Partition,
        batch: &RecordBatch,
    ) -> Result<PathBuf, WriteError> {
        let mut encoder = self.encoder()?;
        encoder.write(batch)?;
        let bytes = encoder.into_inner()?;
        self.write_file(partition, &bytes)
    }

    /// Stores a complete Parquet file (`bytes`) in `partition`: written under a hidden
    /// temporary name, fsync'd, renamed, and the directory fsync'd. On error no file
    /// is left under a `.parquet` name.
    pub fn write_file(
        &mut self,
        partition: Partition,
        bytes: &[u8],
    ) -> Result<PathBuf, WriteError> {
        let dir = self.dir.join(partition.relative_dir());
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let name = self.namer.next();
        let tmp = dir.join(format!(".{name}.tmp"));
        let path = dir.join(&name);
        let result = (|| {
            let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
            file.write_all(bytes).map_err(io_err(&tmp))?;
            file.sync_all().map_err(io_err(&tmp))?;
            fs::rename(&tmp, &path).map_err(io_err(&path))?;
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(&dir))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| path)
    }
}
