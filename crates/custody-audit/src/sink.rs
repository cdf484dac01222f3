//! The audit writer thread.
//!
//! [`AuditSink::record`] appends a row to columnar builders under a short mutex (one
//! builder per UTC hour partition) and never waits on I/O. It wakes the writer only
//! every [`ENCODE_ROWS`] rows, to encode them into the partition's Parquet file being
//! built in memory (compressed, so a buffered row costs tens of bytes rather than
//! hundreds), and once `flush_rows` rows are buffered, to flush. The writer also
//! flushes every `flush_interval`, on [`AuditSink::flush`] and at
//! [`AuditHandle::shutdown`]: each in-memory file is finished and stored by
//! [`ParquetDirWriter::write_file`]. A finished file that fails to store is kept (as
//! bytes) and retried at the next flush.
//!
//! The writer is one dedicated OS thread, so encoding and file I/O never run on the
//! request-serving threads, and the process has a fixed number of threads (and
//! allocator arenas) however the load varies.

use crate::batch::BatchBuilder;
use crate::record::{AuditRecord, Partition};
use crate::writer::{FileNamer, ParquetDirWriter, WriteError};
use parquet::arrow::ArrowWriter;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

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
    /// A wake-up has been sent and the writer has not taken the buffer yet.
    woken: bool,
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    buffer: Mutex<Buffer>,
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

#[derive(Debug)]
enum Command {
    /// Encode what is buffered, and flush if `flush_rows` is reached.
    Work,
    /// Flush now and report back.
    Flush(oneshot::Sender<()>),
    /// Flush, report back and stop.
    Stop(oneshot::Sender<()>),
}

/// A cheap, cloneable handle that records rows.
#[derive(Clone, Debug)]
pub struct AuditSink {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
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
        let wake = !buffer.woken
            && (buffer.since_flush >= self.shared.flush_rows || buffer.unencoded >= ENCODE_ROWS);
        buffer.woken |= wake;
        drop(buffer);
        if wake {
            // Fails only once the writer has stopped, after `closed` is set.
            let _ = self.commands.send(Command::Work);
        }
    }

    /// Flushes everything recorded so far and waits for the attempt to finish.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Arc<AuditStats> {
        &self.shared.stats
    }
}

/// Owns the writer thread; [`AuditHandle::shutdown`] flushes and stops it.
#[derive(Debug)]
pub struct AuditHandle {
    sink: AuditSink,
}

impl AuditHandle {
    /// Starts the writer thread.
    pub fn spawn(config: SinkConfig) -> std::io::Result<Self> {
        let (commands, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            buffer: Mutex::default(),
            flush_rows: config.flush_rows.max(1),
            stats: Arc::default(),
        });
        let writer = Writer {
            shared: shared.clone(),
            files: Files {
                dir: ParquetDirWriter::new(&config.dir, FileNamer::new(&config.instance)),
                open: BTreeMap::new(),
            },
            pending: Vec::new(),
        };
        let interval = config.flush_interval;
        std::thread::Builder::new()
            .name("custody-audit".into())
            .spawn(move || writer.run(&rx, interval))?;
        Ok(Self {
            sink: AuditSink { shared, commands },
        })
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
        let sink = self.sink;
        sink.shared.buffer().closed = true;
        let (tx, rx) = oneshot::channel();
        if sink.commands.send(Command::Stop(tx)).is_ok() {
            let _ = rx.await;
        }
        let stats = &sink.shared.stats;
        stats
            .rows_received
            .load(Ordering::Relaxed)
            .saturating_sub(stats.rows_written.load(Ordering::Relaxed))
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

/// The writer thread's state: the in-memory files and the finished files that failed
/// to store and wait for a retry.
struct Writer {
    shared: Arc<Shared>,
    files: Files,
    pending: Vec<Finished>,
}

impl Writer {
    fn run(mut self, commands: &mpsc::Receiver<Command>, interval: Duration) {
        let mut next_tick = Instant::now() + interval;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match commands.recv_timeout(wait) {
                Ok(Command::Work) => {
                    let flush = self.shared.buffer().since_flush >= self.shared.flush_rows;
                    self.step(flush);
                }
                Ok(Command::Flush(done)) => {
                    self.step(true);
                    let _ = done.send(());
                }
                Ok(Command::Stop(done)) => {
                    self.step(true);
                    let _ = done.send(());
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.step(true);
                    next_tick = Instant::now() + interval;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.step(true);
                    return;
                }
            }
        }
    }

    /// Encodes the buffered rows; with `flush`, also finishes every file and stores
    /// it (retrying earlier failures first).
    fn step(&mut self, flush: bool) {
        let taken = {
            let mut buffer = self.shared.buffer();
            buffer.unencoded = 0;
            buffer.woken = false;
            if flush {
                buffer.since_flush = 0;
            }
            std::mem::take(&mut buffer.open)
        };
        let stats = &self.shared.stats;
        self.files.encode(taken, stats);
        if flush {
            let mut finished = std::mem::take(&mut self.pending);
            finished.extend(self.files.finish_all(stats));
            if !finished.is_empty() {
                self.pending = self.files.store(finished, stats);
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
            Action::new(ActionKind::Http, "GET", "/"),
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
        let handle =
            AuditHandle::spawn(config(dir.path(), 3, Duration::from_secs(3600))).expect("spawn");
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
        let handle = AuditHandle::spawn(config(dir.path(), 100_000, Duration::from_secs(3600)))
            .expect("spawn");
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

    #[tokio::test]
    async fn flushes_by_interval() {
        let dir = tempfile::tempdir().expect("tempdir");
        let handle = AuditHandle::spawn(config(dir.path(), 1000, Duration::from_millis(200)))
            .expect("spawn");
        let sink = handle.sink();
        sink.record(row());
        for _ in 0..500 {
            if sink.stats().rows_written.load(Ordering::Relaxed) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
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
        let handle =
            AuditHandle::spawn(config(&target, 1000, Duration::from_secs(3600))).expect("spawn");
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
