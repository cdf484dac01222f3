//! The background audit writer: rows arrive over a channel and are flushed to Parquet
//! when `flush_rows` rows are buffered, every `flush_interval`, and on shutdown.

use crate::record::AuditRecord;
use crate::writer::{FileNamer, ParquetDirWriter};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
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
    /// Failed flush attempts (the rows stay buffered and are retried).
    pub write_errors: AtomicU64,
    /// Rows that could not be handed to the writer because it had stopped.
    pub rows_lost: AtomicU64,
    /// Whether the most recent flush attempt failed.
    pub failing: AtomicBool,
}

enum Msg {
    Row(Box<AuditRecord>),
    Flush(oneshot::Sender<()>),
}

/// A cheap, cloneable handle that records rows.
#[derive(Clone, Debug)]
pub struct AuditSink {
    tx: mpsc::UnboundedSender<Msg>,
    stats: Arc<AuditStats>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Row(_) => "Row",
            Msg::Flush(_) => "Flush",
        })
    }
}

impl AuditSink {
    /// Hands `row` to the writer. Never blocks. If the writer has already stopped
    /// (only possible after [`AuditHandle::shutdown`]), the loss is counted and logged.
    pub fn record(&self, row: AuditRecord) {
        self.stats.rows_received.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::error::SendError(Msg::Row(row))) = self.tx.send(Msg::Row(Box::new(row))) {
            self.stats.rows_lost.fetch_add(1, Ordering::Relaxed);
            tracing::error!(request_id = %row.request_id, "audit writer has stopped; row lost");
        }
    }

    /// Flushes everything recorded so far and waits for the attempt to finish.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Arc<AuditStats> {
        &self.stats
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
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(AuditStats::default());
        let writer = ParquetDirWriter::new(&config.dir, FileNamer::new(&config.instance));
        let task = tokio::spawn(run(rx, writer, config, stats.clone()));
        Self {
            sink: AuditSink { tx, stats },
            task,
        }
    }

    /// A handle for recording rows.
    pub fn sink(&self) -> AuditSink {
        self.sink.clone()
    }

    /// Writes every row recorded so far, then stops the writer. Rows recorded after
    /// this call are counted as lost, so call it once no request can still finish.
    /// Returns the number of rows still unwritten (0 unless the disk is failing).
    pub async fn shutdown(self) -> u64 {
        let Self { sink, task } = self;
        sink.flush().await;
        let stats = sink.stats.clone();
        drop(sink);
        // The task ends once every sender is gone; senders still held elsewhere (a
        // stuck connection) must not hold up the exit.
        task.abort();
        let _ = task.await;
        stats
            .rows_received
            .load(Ordering::Relaxed)
            .saturating_sub(stats.rows_written.load(Ordering::Relaxed))
    }
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<Msg>,
    writer: ParquetDirWriter,
    config: SinkConfig,
    stats: Arc<AuditStats>,
) {
    let writer = Arc::new(Mutex::new(writer));
    let mut buffer: Vec<AuditRecord> = Vec::new();
    let mut ticker = tokio::time::interval(config.flush_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        let msg = tokio::select! {
            msg = rx.recv() => msg,
            _ = ticker.tick() => {
                flush(&writer, &mut buffer, &stats).await;
                continue;
            }
        };
        match msg {
            Some(Msg::Row(row)) => {
                buffer.push(*row);
                if buffer.len() >= config.flush_rows {
                    flush(&writer, &mut buffer, &stats).await;
                }
            }
            Some(Msg::Flush(done)) => {
                flush(&writer, &mut buffer, &stats).await;
                let _ = done.send(());
            }
            None => {
                flush(&writer, &mut buffer, &stats).await;
                return;
            }
        }
    }
}

/// Writes `buffer` on a blocking thread, so a slow disk never stalls the runtime's
/// worker threads; on failure the rows stay in `buffer` for the next attempt.
async fn flush(
    writer: &Arc<Mutex<ParquetDirWriter>>,
    buffer: &mut Vec<AuditRecord>,
    stats: &AuditStats,
) {
    if buffer.is_empty() {
        return;
    }
    let rows = std::mem::take(buffer);
    let writer = writer.clone();
    let joined = tokio::task::spawn_blocking(move || {
        // Only this task ever locks the writer, so the lock is uncontended; a
        // poisoned lock (a panic mid-write) still holds a usable writer.
        let result = writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .write(&rows);
        (rows, result)
    })
    .await;
    let Ok((rows, result)) = joined else {
        tracing::error!("audit writer thread panicked; rows are lost");
        stats.write_errors.fetch_add(1, Ordering::Relaxed);
        stats.failing.store(true, Ordering::Relaxed);
        return;
    };
    match result {
        Ok(files) => {
            stats
                .rows_written
                .fetch_add(rows.len() as u64, Ordering::Relaxed);
            stats
                .files_written
                .fetch_add(files.len() as u64, Ordering::Relaxed);
            stats.failing.store(false, Ordering::Relaxed);
            tracing::debug!(rows = rows.len(), files = files.len(), "audit rows flushed");
        }
        Err(e) => {
            stats.write_errors.fetch_add(1, Ordering::Relaxed);
            stats.failing.store(true, Ordering::Relaxed);
            tracing::error!(error = %e, rows = rows.len(), "audit flush failed; rows kept for retry");
            *buffer = rows;
        }
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
        for _ in 0..7 {
            sink.record(row());
        }
        // Wait for the two full batches without forcing a flush.
        for _ in 0..200 {
            if sink.stats().rows_written.load(Ordering::Relaxed) == 6 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(sink.stats().rows_written.load(Ordering::Relaxed), 6);
        assert_eq!(handle.shutdown().await, 0);
        assert_eq!(sink.stats().rows_written.load(Ordering::Relaxed), 7);
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
