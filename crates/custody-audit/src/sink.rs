//! The background audit writer.
//!
//! [`AuditSink::record`] appends a row to columnar builders under a short mutex (one
//! builder per UTC hour partition) and never waits on I/O. It wakes the writer task
//! only every [`ENCODE_ROWS`] rows, to encode them into the partition's Parquet file
//! being built in memory (compressed, so a buffered row costs tens of bytes rather
//! than hundreds), and once `flush_rows` rows are buffered, to flush. The writer also
//! flushes every `flush_interval`, on [`AuditSink::flush`] and at
//! [`AuditHandle::shutdown`]: each in-memory file is finished and stored by
//! [`ParquetDirWriter::write_file`]. Encoding and file I/O run on the blocking pool.
//! A finished file that fails to store is kept (as bytes) and retried at the next
//! flush.

use crate::batch::BatchBuilder;
use crate::record::{AuditRecord, Partition};
use crate::writer::{FileNamer, ParquetDirWriter, WriteError};
use parquet::arrow::ArrowWriter;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

/// How the writer behaves.
#[derive(Clone, Debug)]
pub struct SinkConfig {
    /// Directory the Hive-partitioned files go under.
    pub dir: PathBuf,
    /// Flush when this many rows are buffered.
    pub flush_rows: usize,
    /// Flush buffered rows at least this often.
    pub flush_interval: Duration,
    /// Pod or host name, used in file names.
    pub instance: String,
}

/// Counters describing the writer, shared with the admin endpoints.
#[derive(Debug, Default)]
pub struct AuditStats {
    /// Rows handed to the writer.
    pub rows_received: AtomicU64,
    /// Rows durably written to Parquet files.
    pub rows_written: AtomicU64,
    /// Parquet files written.
    pub files_written: AtomicU64,
    /// Failed file writes (the rows stay buffered and are retried).
    pub write_errors: AtomicU64,
    /// Rows that could not be handed to the writer because it had stopped.
    pub rows_lost: AtomicU64,
    /// Whether the most recent flush attempt failed.
    pub failing: AtomicBool,
}

/// Rows appended to a builder before the writer encodes them.
pub(crate) const ENCODE_ROWS: usize = 1024;

#[derive(Debug, Default)]
struct Buffer {
    /// Rows not yet encoded, per partition.
    open: BTreeMap<Partition, BatchBuilder>,
    /// Rows in `open`.
    unencoded: usize,
    /// Rows recorded since the last flush (encoded or not).
    since_flush: usize,
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    buffer: Mutex<Buffer>,
    /// "Encode" or "flush": the writer reads the counters to tell which.
    wake: Notify,
    flush_rows: usize,
    stats: Arc<AuditStats>,
}

impl Shared {
    fn buffer(&self) -> MutexGuard<'_, Buffer> {
        // A panic while holding the lock cannot leave the builders half-appended in
        // a way that matters more than losing the process; keep going.
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A cheap, cloneable handle that records rows.
#[derive(Clone, Debug)]
pub struct AuditSink {
    shared: Arc<Shared>,
    flushes: mpsc::UnboundedSender<oneshot::Sender<()>>,
}

impl AuditSink {
    /// Buffers `row` for the next flush. Never blocks on I/O. After
    /// [`AuditHandle::shutdown`] has begun, the row is counted as lost and logged.
    pub fn record(&self, row: AuditRecord) {
        let stats = &self.shared.stats;
        stats.rows_received.fetch_add(1, Ordering::Relaxed);
        let mut buffer = self.shared.buffer();
        if buffer.closed {
            drop(buffer);
            stats.rows_lost.fetch_add(1, Ordering::Relaxed);
            tracing::error!(request_id = %row.request_id, "audit writer has stopped; row lost");
            return;
        }
        buffer.open.entry(row.partition()).or_default().append(&row);
        buffer.unencoded += 1;
        buffer.since_flush += 1;
        let wake = buffer.since_flush >= self.shared.flush_rows || buffer.unencoded >= ENCODE_ROWS;
        drop(buffer);
        if wake {
            self.shared.wake.notify_one();
        }
    }

    /// Flushes everything recorded so far and waits for the attempt to finish.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.flushes.send(tx).is_ok() {
            let _ = rx.await;
        }
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Arc<AuditStats> {
        &self.shared.stats
    }
}

/// Owns the writer task; [`AuditHandle::shutdown`] flushes and stops it.
#[derive(Debug)]
pub struct AuditHandle {
    sink: AuditSink,
    task: JoinHandle<()>,
}

impl AuditHandle {
    /// Starts the writer.
    pub fn spawn(config: SinkConfig) -> Self {
        let (flushes, flush_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            buffer: Mutex::default(),
            wake: Notify::new(),
            flush_rows: config.flush_rows.max(1),
            stats: Arc::default(),
        });
        let writer = ParquetDirWriter::new(&config.dir, FileNamer::new(&config.instance));
        let task = tokio::spawn(run(flush_rx, writer, config.flush_interval, shared.clone()));
        Self {
            sink: AuditSink { shared, flushes },
            task,
        }
    }

    /// A handle for recording rows.
    pub fn sink(&self) -> AuditSink {
        self.sink.clone()
    }

    /// Stops accepting rows, writes every row recorded so far, then stops the writer.
    /// Call it once no request can still finish: later rows are counted as lost.
    /// Returns the number of rows that could not be written (0 unless the disk is
    /// failing).
    pub async fn shutdown(self) -> u64 {
        let Self { sink, task } = self;
        sink.shared.buffer().closed = true;
        sink.flush().await;
        task.abort();
        let _ = task.await;
        let stats = &sink.shared.stats;
        stats
            .rows_received
            .load(Ordering::Relaxed)
            .saturating_sub(stats.rows_written.load(Ordering::Relaxed))
    }
}

async fn run(
    mut flushes: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    writer: ParquetDirWriter,
    interval: Duration,
    shared: Arc<Shared>,
) {
    let mut writer = Writer {
        files: Arc::new(Mutex::new(Files {
            dir: writer,
            open: BTreeMap::new(),
        })),
        pending: Vec::new(),
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = shared.wake.notified() => {
                let flush = shared.buffer().since_flush >= shared.flush_rows;
                writer.run(&shared, flush).await;
            }
            _ = ticker.tick() => writer.run(&shared, true).await,
            request = flushes.recv() => {
                writer.run(&shared, true).await;
                match request {
                    Some(done) => {
                        let _ = done.send(());
                    }
                    None => return,
                }
            }
        }
    }
}

/// The Parquet files being built in memory, one per partition, with their row counts.
struct Files {
    dir: ParquetDirWriter,
    open: BTreeMap<Partition, (ArrowWriter<Vec<u8>>, usize)>,
}

/// A finished file waiting to be stored.
struct Finished {
    partition: Partition,
    bytes: Vec<u8>,
    rows: usize,
}

/// The writer task's state: the in-memory files and the finished files that failed
/// to store and wait for a retry.
struct Writer {
    files: Arc<Mutex<Files>>,
    pending: Vec<Finished>,
}

impl Writer {
    /// Encodes the buffered rows; with `flush`, also finishes every file and stores
    /// it (retrying earlier failures first).
    async fn run(&mut self, shared: &Shared, flush: bool) {
        let taken = {
            let mut buffer = shared.buffer();
            buffer.unencoded = 0;
            if flush {
                buffer.since_flush = 0;
            }
            std::mem::take(&mut buffer.open)
        };
        let stats = shared.stats.clone();
        let files = self.files.clone();
        let mut pending = if flush {
            std::mem::take(&mut self.pending)
        } else {
            Vec::new()
        };
        let joined = tokio::task::spawn_blocking(move || {
            let mut files = files.lock().unwrap_or_else(PoisonError::into_inner);
            files.encode(taken, &stats);
            if flush {
                pending.extend(files.finish_all(&stats));
                pending = files.store(pending, &stats);
            }
            pending
        })
        .await;
        match joined {
            Ok(still_pending) => self.pending.extend(still_pending),
            Err(_) => {
                shared.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                shared.stats.failing.store(true, Ordering::Relaxed);
                tracing::error!("audit writer thread panicked; rows lost");
            }
        }
    }
}

impl Files {
    fn encode(&mut self, taken: BTreeMap<Partition, BatchBuilder>, stats: &AuditStats) {
        for (partition, mut builder) in taken {
            let rows = builder.len();
            let result = builder
                .finish()
                .map_err(WriteError::from)
                .and_then(|batch| {
                    let (encoder, count) = match self.open.entry(partition) {
                        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::btree_map::Entry::Vacant(e) => {
                            e.insert((self.dir.encoder()?, 0))
                        }
                    };
                    encoder.write(&batch)?;
                    *count += rows;
                    Ok(())
                });
            if let Err(e) = result {
                // Encoding into memory fails only on a schema bug, caught by tests.
                stats.write_errors.fetch_add(1, Ordering::Relaxed);
                stats.rows_lost.fetch_add(rows as u64, Ordering::Relaxed);
                tracing::error!(error = %e, rows, "cannot encode audit rows; rows lost");
            }
        }
    }

    fn finish_all(&mut self, stats: &AuditStats) -> Vec<Finished> {
        let mut finished = Vec::new();
        for (partition, (encoder, rows)) in std::mem::take(&mut self.open) {
            match encoder.into_inner() {
                Ok(bytes) => finished.push(Finished {
                    partition,
                    bytes,
                    rows,
                }),
                Err(e) => {
                    stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    stats.rows_lost.fetch_add(rows as u64, Ordering::Relaxed);
                    tracing::error!(error = %e, rows, "cannot finish an audit file; rows lost");
                }
            }
        }
        finished
    }

    /// Stores finished files; returns those that failed, for a retry.
    fn store(&mut self, finished: Vec<Finished>, stats: &AuditStats) -> Vec<Finished> {
        let mut failed = Vec::new();
        for file in finished {
            match self.dir.write_file(file.partition, &file.bytes) {
                Ok(path) => {
                    stats
                        .rows_written
                        .fetch_add(file.rows as u64, Ordering::Relaxed);
                    stats.files_written.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(rows = file.rows, file = %path.display(), "audit file written");
                }
                Err(e) => {
                    stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, rows = file.rows, "storing an audit file failed; kept for retry");
                    failed.push(file);
                }
            }
        }
        stats.failing.store(!failed.is_empty(), Ordering::Relaxed);
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_core::{Action, ActionKind};
    use std::time::SystemTime;

    fn row() -> AuditRecord {
        AuditRecord::new(
            SystemTime::now(),
            "req".into(),
            Action {
                kind: ActionKind::Http,
                route: None,
                method: "GET".into(),
                path: "/".into(),
                upstream: None,
                tool: None,
                parameters: None,
            },
        )
    }

    fn parquet_files(dir: &std::path::Path) -> usize {
        fn walk(p: &std::path::Path, n: &mut usize) {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, n);
                } else if path.extension().is_some_and(|x| x == "parquet") {
                    *n += 1;
                }
            }
        }
        let mut n = 0;
        walk(dir, &mut n);
        n
    }

    fn config(dir: &std::path::Path, rows: usize, interval: Duration) -> SinkConfig {
        SinkConfig {
            dir: dir.to_owned(),
            flush_rows: rows,
            flush_interval: interval,
            instance: "test".into(),
        }
    }

    #[tokio::test]
    async fn flushes_by_row_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let handle = AuditHandle::spawn(config(dir.path(), 3, Duration::from_secs(3600)));
        let sink = handle.sink();
        sink.record(row());
        sink.record(row());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(sink.stats().rows_written.load(Ordering::Relaxed), 0);
        sink.record(row());
        // The third row reaches flush_rows: written without an explicit flush.
        for _ in 0..500 {
            if sink.stats().rows_written.load(Ordering::Relaxed) == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(sink.stats().rows_written.load(Ordering::Relaxed), 3);
        assert_eq!(parquet_files(dir.path()), 1);
        sink.record(row());
        assert_eq!(handle.shutdown().await, 0);
        assert_eq!(sink.stats().rows_written.load(Ordering::Relaxed), 4);
        // After shutdown, rows are counted as lost, not silently dropped.
        sink.record(row());
        assert_eq!(sink.stats().rows_lost.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn rows_encoded_in_chunks_land_in_one_file_per_partition() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let dir = tempfile::tempdir().expect("tempdir");
        let handle = AuditHandle::spawn(config(dir.path(), 100_000, Duration::from_secs(3600)));
        let sink = handle.sink();
        let n = ENCODE_ROWS * 2 + 7;
        for _ in 0..n {
            sink.record(row());
            tokio::task::yield_now().await;
        }
        let mut old = row();
        old.event_time -= 3_600_000_000 * 2;
        sink.record(old);
        sink.flush().await;
        assert_eq!(
            sink.stats().rows_written.load(Ordering::Relaxed),
            n as u64 + 1
        );
        let mut counts = Vec::new();
        fn walk(p: &std::path::Path, out: &mut Vec<i64>) {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    let reader =
                        SerializedFileReader::new(std::fs::File::open(&path).expect("open"))
                            .expect("read");
                    out.push(reader.metadata().file_metadata().num_rows());
                }
            }
        }
        walk(dir.path(), &mut counts);
        counts.sort();
        assert_eq!(counts, vec![1, n as i64]);
        handle.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn flushes_by_interval() {
        let dir = tempfile::tempdir().expect("tempdir");
        let handle = AuditHandle::spawn(config(dir.path(), 1000, Duration::from_secs(10)));
        let sink = handle.sink();
        sink.record(row());
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(sink.stats().rows_written.load(Ordering::Relaxed), 0);
        tokio::time::sleep(Duration::from_secs(6)).await;
        // The flush runs on a blocking thread: give it real time to finish.
        for _ in 0..500 {
            if sink.stats().rows_written.load(Ordering::Relaxed) == 1 {
                break;
            }
            tokio::task::yield_now().await;
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(sink.stats().rows_written.load(Ordering::Relaxed), 1);
        assert_eq!(parquet_files(dir.path()), 1);
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn failed_flush_keeps_rows_and_retries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("audit");
        std::fs::write(&target, b"a file where a directory should be").expect("write");
        let handle = AuditHandle::spawn(config(&target, 1000, Duration::from_secs(3600)));
        let sink = handle.sink();
        sink.record(row());
        sink.flush().await;
        assert!(sink.stats().failing.load(Ordering::Relaxed));
        assert_eq!(sink.stats().rows_written.load(Ordering::Relaxed), 0);
        std::fs::remove_file(&target).expect("unblock");
        sink.flush().await;
        assert!(!sink.stats().failing.load(Ordering::Relaxed));
        assert_eq!(sink.stats().rows_written.load(Ordering::Relaxed), 1);
        assert_eq!(parquet_files(&target), 1);
        handle.shutdown().await;
    }
}
