//! The durable audit path: request → spool → Parquet → sink.
//!
//! # Request path ([`AuditTrail`])
//! - [`AuditTrail::intent`], called right before a request is forwarded upstream,
//!   appends the row as it stands (an *intent*) to the on-disk [spool](crate::spool)
//!   and returns its key; with `durability: fsync` the caller then awaits
//!   [`AuditTrail::sync`], a group fsync covering it. A request whose intent cannot be written (the backlog is at
//!   `max_bytes`, or the disk fails) is refused ([`OnFull::Reject`]: the caller
//!   answers 503) or forwarded unrecorded ([`OnFull::Drop`]); either way it is
//!   counted and a *gap row* (`gap: N requests not recorded ...`) is spooled once
//!   space returns; the count is kept in the spool directory too ([`gaps`]), so a
//!   restart before then still writes it.
//! - [`AuditTrail::complete`] appends the final row (a *completion*, with the
//!   intent's key) when the exchange ends; [`AuditTrail::record`] appends a final row
//!   for a request that was never forwarded (refused by custody). Neither waits for
//!   an fsync. A completion the spool cannot take is kept in memory and retried by
//!   the roller (its request reached the upstream: it must get its row); a refused
//!   request's row the spool cannot take is counted as dropped and joins the gap.
//! - New work (intents and refused requests' rows) is admitted only while the
//!   backlog leaves a reserve (an eighth of `max_bytes`, at most 16 MiB) for the
//!   completions of requests already in flight.
//! - Every append is a compact binary encoding of the row ([`envelope`]) outside
//!   any lock and one write(2) under the
//!   spool's mutex: nothing on the request path waits on disk except the fsync mode's
//!   group commit, which is awaited, never blocked on.
//!
//! # The roller (one thread, `custody-audit`, with its own current-thread runtime)
//! Seals the active segment when `roll_rows` rows are waiting or the oldest is
//! `roll_age` old (the spool also rolls a segment at `roll_bytes`), turns each sealed
//! segment into one Parquet file per hour partition ([`files`]), uploads them with
//! the [`Shipper`] (retries with backoff; conditional create), and deletes the
//! segment once every file is stored and no open intent or pending carry needs it
//! ([`pairing`]). At start it first replays what the last process left; intents that
//! never completed become rows with `outcome.error = "incomplete: custody
//! restarted"`; records lost to disk damage become `gap:` rows.
//!
//! The roller runs at a lower scheduling priority than the request threads
//! ([`ROLLER_NICE`]): when they compete for a core, the kernel runs the request
//! first.
//!
//! # Shutdown
//! [`AuditHandle::shutdown`] seals, builds and uploads everything within a deadline;
//! what is not uploaded by then stays in the spool for the next start.

pub(crate) mod envelope;
mod files;
mod gaps;
#[cfg(feature = "internals")]
pub mod internals;
mod pairing;
mod roller;
mod row_seq;
#[cfg(test)]
mod tests;

pub use pairing::INCOMPLETE;

use crate::record::AuditRecord;
use crate::ship::{RetryPolicy, ShipConfig, ShipStats, Shipper, SinkError};
use crate::spool::{Durability, Recovery, Spool, SpoolConfig, SpoolError, SpoolStats};
use std::collections::{HashSet, VecDeque};
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// What to do with a request whose intent the spool cannot take.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFull {
    /// Refuse it (the caller answers 503): fail closed.
    #[default]
    Reject,
    /// Forward it without a row, and count it.
    Drop,
}

/// How the audit path is set up.
#[derive(Clone, Debug)]
pub struct TrailConfig {
    /// Where finished files go.
    pub ship: ShipConfig,
    /// The spool: directory, backlog cap, segment size (the roll-by-bytes
    /// threshold) and durability.
    pub spool: SpoolConfig,
    /// What to do when the spool is full.
    pub on_full: OnFull,
    /// Seal a segment (and so write a file) once this many rows wait.
    pub roll_rows: usize,
    /// Seal a segment once its oldest waiting row is this old.
    pub roll_age: Duration,
    /// Pod or host name, used in file names.
    pub instance: String,
    /// Signed digests over the delivered files; `None`: none are written.
    pub digests: Option<crate::digest::DigestConfig>,
    /// The spool goes away with this process's pod (an `emptyDir`): rows left in it
    /// at shutdown are lost, not uploaded at a next start. Shutdown then reports
    /// them as abandoned ([`StopReport::rows_abandoned`]) and logs at ERROR.
    pub ephemeral_spool: bool,
}

/// Counters describing the audit path, shared with the admin endpoints. The
/// spool's and the shipper's own counters are in [`AuditTrail::spool_stats`] and
/// [`AuditTrail::ship_stats`].
#[derive(Debug, Default)]
pub struct AuditStats {
    /// Intents appended to the spool.
    pub intents_spooled: AtomicU64,
    /// Final rows appended to the spool (completions and rows without an intent,
    /// gap and incomplete rows included).
    pub rows_spooled: AtomicU64,
    /// Parquet files built from sealed segments (rebuilds included).
    pub files_built: AtomicU64,
    /// Files stored in the sink (created, or found already there).
    pub files_uploaded: AtomicU64,
    /// Rows in those files.
    pub rows_uploaded: AtomicU64,
    /// Upload rounds that failed (the segment stays and is retried with backoff).
    pub upload_failures: AtomicU64,
    /// Uploads that found a different object under the file's name (left alone,
    /// logged; the segment is treated as shipped).
    pub upload_conflicts: AtomicU64,
    /// Requests refused with 503 because their intent could not be spooled.
    pub rows_rejected: AtomicU64,
    /// Requests that got no row because the spool could not take it (`on_full:
    /// drop` forwards, or a request custody answered itself while full).
    pub rows_dropped: AtomicU64,
    /// Gap rows written for rejected or dropped requests.
    pub gap_rows: AtomicU64,
    /// Upload rounds retried while shutting down (the sink failed; retried with
    /// backoff until the deadline).
    pub shutdown_upload_retries: AtomicU64,
    /// Signed digests stored (`audit.digests`).
    pub digests_written: AtomicU64,
    /// Digests that could not be written (retried), and delivered files that could
    /// not be recorded for one.
    pub digest_failures: AtomicU64,
    /// Rows made from intents whose request was never finished (after a restart).
    pub incomplete_rows: AtomicU64,
    /// Spool records found lost to damage at start.
    pub corrupt_records: AtomicU64,
    /// Damaged spool bytes dropped at start (torn tails included).
    pub corrupt_bytes: AtomicU64,
    /// Gap rows written for records lost to disk damage, or for an unreadable
    /// count of requests not recorded (`GAPS`).
    pub damage_gap_rows: AtomicU64,
    /// Spool records that could not be decoded (skipped, logged).
    pub undecodable_records: AtomicU64,
    /// Open intents copied forward so their segment could be deleted.
    pub intents_carried: AtomicU64,
    /// Completions waiting in memory for spool space.
    pub completions_waiting: AtomicU64,
    /// Rows lost for good (a completion still waiting at exit).
    pub rows_lost: AtomicU64,
    /// Rows a shutdown left in an ephemeral spool (`ephemeral_spool`): not
    /// uploaded before the deadline, and gone with the pod.
    pub rows_abandoned: AtomicU64,
    /// Sealed segments processed.
    pub segments_processed: AtomicU64,
    /// Whether the most recent upload round failed.
    pub failing: AtomicBool,
}

/// Why a request's intent could not be spooled.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Refusal {
    /// The backlog is at its cap.
    #[error("audit backlog full: {used} of {max} bytes spooled; retry later")]
    Full {
        /// Bytes in the spool.
        used: u64,
        /// `audit.spool.max_bytes`.
        max: u64,
    },
    /// The spool failed.
    #[error("the audit spool cannot record the request: {0}")]
    Unavailable(String),
}

/// The key of a spooled intent; its completion carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntentKey(u64);

/// What [`AuditTrail::intent`] decided.
#[derive(Debug)]
pub enum Admission {
    /// The intent is spooled: forward, then [`AuditTrail::complete`] with this key.
    Spooled(IntentKey),
    /// `on_full: drop`: forward without a row (already counted; do not record it).
    Unrecorded(Refusal),
    /// `on_full: reject`: refuse the request (already counted; do not record it).
    Refused(Refusal),
}

/// Why the audit path could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The spool could not be opened.
    #[error("audit spool: {0}")]
    Spool(#[from] SpoolError),
    /// The sink is not usable.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What, with the path.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

#[derive(Debug)]
enum Command {
    /// Rows are waiting: maybe seal.
    Work,
    /// Seal, build and upload everything now; report back.
    Flush(oneshot::Sender<()>),
    /// Like flush, by the deadline, then stop.
    Stop(Instant, oneshot::Sender<StopReport>),
    /// Store a policy file on the sink (see [`AuditTrail::publish_policy`]).
    Policy(bytes::Bytes),
}

#[derive(Debug)]
struct Shared {
    spool: Spool,
    on_full: OnFull,
    /// `TrailConfig::ephemeral_spool`.
    ephemeral: bool,
    fsync: bool,
    max_bytes: u64,
    reserve: u64,
    roll_rows: u64,
    unsealed_rows: AtomicU64,
    woken: AtomicBool,
    commands: mpsc::UnboundedSender<Command>,
    /// Keys of this process's intents whose completion is not in the spool yet.
    /// Appending an intent or a completion and updating this set happen under its
    /// lock, and so does the roller's carry of an open intent: a carried copy is
    /// never appended after its completion.
    live: Mutex<HashSet<u64>>,
    /// Completions the spool could not take (keyed payloads).
    overflow: Mutex<VecDeque<Vec<u8>>>,
    /// Requests not recorded, waiting for their gap row ([`gaps`]).
    gap: Mutex<Gaps>,
    stats: Arc<AuditStats>,
    ship_stats: Arc<ShipStats>,
}

/// The gap windows and the file that keeps them across restarts.
#[derive(Debug)]
struct Gaps {
    windows: gaps::Windows,
    file: gaps::GapFile,
    /// A damaged count left by an earlier process, its row not spooled yet.
    lost: Option<gaps::Lost>,
}

impl Gaps {
    /// Whether a gap row is still to be written.
    fn pending(&self) -> bool {
        !self.windows.is_empty() || self.lost.is_some()
    }

    /// The `request_id`s of the rows that may already be spooled, by an earlier
    /// process killed before it could say so.
    fn restored_ids(&self) -> Vec<String> {
        let writing = self.windows.writing.map(|w| gaps::row_id(w.id));
        let lost = self.lost.as_ref().map(|l| gaps::row_id(l.id));
        writing.into_iter().chain(lost).collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Whether new work (`need` bytes) fits below the reserve.
    fn admits(&self, need: u64) -> Result<(), Refusal> {
        let used = self.spool.backlog_bytes();
        if used + need + self.reserve > self.max_bytes {
            Err(Refusal::Full {
                used,
                max: self.max_bytes,
            })
        } else {
            Ok(())
        }
    }

    fn note_row(&self) {
        self.stats.rows_spooled.fetch_add(1, Ordering::Relaxed);
        let n = self.unsealed_rows.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.roll_rows && !self.woken.swap(true, Ordering::AcqRel) {
            let _ = self.commands.send(Command::Work);
        }
    }

    /// Counts a request that gets no row and adds it to the gap window.
    fn unrecorded(&self, event_time: i64, rejected: bool) {
        let counter = if rejected {
            &self.stats.rows_rejected
        } else {
            &self.stats.rows_dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let mut guard = lock(&self.gap);
        let gap = &mut *guard;
        gap.windows.add(event_time, rejected);
        gap.file.store(&gap.windows);
    }
}

/// A cheap, cloneable handle that records rows.
#[derive(Clone, Debug)]
pub struct AuditTrail {
    shared: Arc<Shared>,
}

impl AuditTrail {
    /// Stores the policy file custody now enforces on the sink, as
    /// `policies/<16 hex>.yaml` (its version: the first 16 hex digits of the
    /// SHA-256 of `bytes`), so the entitlements in force at any time can be read
    /// back; with `audit.digests`, the next digest lists it. Call it at start and
    /// after each reload. Returns at once; the roller uploads it (a conditional
    /// create: the same version again is already there), retrying at each round
    /// until it is stored.
    pub fn publish_policy(&self, bytes: bytes::Bytes) {
        let _ = self.shared.commands.send(Command::Policy(bytes));
    }

    /// Spools the intent of a request about to be forwarded (see the module docs).
    /// Returns at once; with `durability: fsync`, await [`AuditTrail::sync`] before
    /// forwarding. Keep the key even if that wait is cancelled: the request must
    /// still be completed with it.
    pub fn intent(&self, record: &AuditRecord) -> Admission {
        let sh = &self.shared;
        let refuse = |refusal: Refusal| match sh.on_full {
            OnFull::Reject => {
                sh.unrecorded(record.event_time, true);
                Admission::Refused(refusal)
            }
            OnFull::Drop => {
                sh.unrecorded(record.event_time, false);
                Admission::Unrecorded(refusal)
            }
        };
        let payload = envelope::row(record);
        if let Err(full) = sh.admits(payload.len() as u64 + 64) {
            return refuse(full);
        }
        let appended = {
            let mut live = lock(&sh.live);
            let appended = sh.spool.append_nowait(envelope::INTENT, &payload);
            if let Ok(pos) = &appended {
                live.insert(pos.seq);
            }
            appended
        };
        match appended {
            Ok(pos) => {
                sh.stats.intents_spooled.fetch_add(1, Ordering::Relaxed);
                Admission::Spooled(IntentKey(pos.seq))
            }
            Err(SpoolError::Full { used, max }) => refuse(Refusal::Full { used, max }),
            Err(e) => refuse(Refusal::Unavailable(e.to_string())),
        }
    }

    /// With `durability: fsync`, waits for a group fsync covering every intent
    /// spooled so far; with `process`, returns at once. An error means the intent
    /// is not durable: refuse the request (it is counted as rejected), and still
    /// complete it with its key.
    pub async fn sync(&self) -> Result<(), Refusal> {
        let sh = &self.shared;
        if !sh.fsync {
            return Ok(());
        }
        sh.spool.flush().await.map_err(|e| {
            sh.stats.rows_rejected.fetch_add(1, Ordering::Relaxed);
            Refusal::Unavailable(e.to_string())
        })
    }

    /// Spools the final row of a request whose intent was spooled. Never blocks on
    /// I/O beyond one write(2); if the spool cannot take it, the row waits in memory
    /// for the roller.
    pub fn complete(&self, key: IntentKey, row: &AuditRecord) {
        let sh = &self.shared;
        let payload = envelope::keyed(key.0, row);
        let appended = {
            let mut live = lock(&sh.live);
            let appended = sh.spool.append_nowait(envelope::COMPLETION, &payload);
            if appended.is_ok() {
                live.remove(&key.0);
            }
            appended
        };
        match appended {
            Ok(_) => sh.note_row(),
            Err(e) => {
                tracing::warn!(request_id = %row.request_id, error = %e, "audit spool cannot take a completion; kept in memory");
                lock(&sh.overflow).push_back(payload);
                sh.stats.completions_waiting.fetch_add(1, Ordering::Relaxed);
                let _ = sh.commands.send(Command::Work);
            }
        }
    }

    /// Spools the final row of a request that was not forwarded. If the spool
    /// cannot take it, the request is counted as dropped and joins the gap row.
    pub fn record(&self, row: &AuditRecord) {
        let sh = &self.shared;
        let payload = envelope::row(row);
        let result = sh.admits(payload.len() as u64 + 64).and_then(|()| {
            sh.spool
                .append_nowait(envelope::ROW, &payload)
                .map_err(|e| Refusal::Unavailable(e.to_string()))
        });
        match result {
            Ok(_) => sh.note_row(),
            Err(e) => {
                tracing::debug!(request_id = %row.request_id, error = %e, "audit row not recorded");
                sh.unrecorded(row.event_time, false);
            }
        }
    }

    /// Seals, builds and uploads everything recorded so far; waits for the attempt.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.shared.commands.send(Command::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// The audit path's counters.
    pub fn stats(&self) -> &Arc<AuditStats> {
        &self.shared.stats
    }

    /// The spool's counters.
    pub fn spool_stats(&self) -> &Arc<SpoolStats> {
        self.shared.spool.stats()
    }

    /// The shipper's counters.
    pub fn ship_stats(&self) -> &Arc<ShipStats> {
        &self.shared.ship_stats
    }

    /// `audit.spool.max_bytes`.
    pub fn max_bytes(&self) -> u64 {
        self.shared.max_bytes
    }

    /// Whether new requests can be recorded now (the backlog is below the reserve).
    pub fn accepting(&self) -> bool {
        self.shared.admits(4096).is_ok()
    }

    /// What is done when the spool is full.
    pub fn on_full(&self) -> OnFull {
        self.shared.on_full
    }
}

/// What [`AuditHandle::shutdown`] left behind.
#[derive(Clone, Debug, Default)]
pub struct StopReport {
    /// Whether everything was uploaded.
    pub drained: bool,
    /// Bytes left in the spool (uploaded at the next start).
    pub backlog_bytes: u64,
    /// Rows left in the spool, not uploaded (0 when drained).
    pub rows_left: u64,
    /// Rows lost for good (completions the spool never took).
    pub rows_lost: u64,
    /// `rows_left` when the spool is ephemeral: they go with the pod.
    pub rows_abandoned: u64,
}

/// Owns the roller thread; [`AuditHandle::shutdown`] drains and stops it.
#[derive(Debug)]
pub struct AuditHandle {
    trail: AuditTrail,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The retries of one upload inside a roller round; the roller retries the whole
/// segment later, with its own backoff, if they run out.
fn roller_retry() -> RetryPolicy {
    RetryPolicy {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(2),
        max_attempts: 4,
        max_elapsed: Duration::from_secs(5),
        jitter: true,
    }
}

impl AuditHandle {
    /// Opens (and repairs) the spool, builds the shipper and starts the roller.
    /// Blocking (the spool scan); call it at start-up.
    pub fn spawn(mut config: TrailConfig) -> Result<Self, AuditError> {
        config.ship.retry = roller_retry();
        let shipper = Shipper::new(config.ship.clone())?;
        let spool_id = spool_id(&config.spool.dir)?;
        let max_bytes = config.spool.max_bytes;
        let fsync = config.spool.durability == Durability::Fsync;
        let (spool, recovery) = Spool::open(config.spool.clone())?;
        let stats = Arc::new(AuditStats::default());
        report_recovery(&config.spool.dir, &recovery, &stats);
        if recovery.truncated_bytes > 0 {
            record_truncation(&spool, &recovery, &stats);
        }
        let gap = load_gaps(&config.spool.dir)?;
        let (commands, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            spool,
            on_full: config.on_full,
            ephemeral: config.ephemeral_spool,
            fsync,
            max_bytes,
            reserve: (max_bytes / 8).min(16 << 20),
            roll_rows: config.roll_rows.max(1) as u64,
            unsealed_rows: AtomicU64::new(0),
            woken: AtomicBool::new(false),
            commands,
            live: Mutex::default(),
            overflow: Mutex::default(),
            gap: Mutex::new(gap),
            stats,
            ship_stats: shipper.stats(),
        });
        let chain = config
            .digests
            .clone()
            .map(|d| crate::digest::Chain::open(d, &config.spool.dir, &config.instance, &spool_id))
            .transpose()
            .map_err(|source| AuditError::Io {
                context: format!(
                    "read the digest chain's state in {}",
                    config.spool.dir.display()
                ),
                source,
            })?;
        let row_seq =
            row_seq::RowSeq::open(&config.spool.dir).map_err(|source| AuditError::Io {
                context: format!(
                    "read {}",
                    config.spool.dir.join(row_seq::FILE_NAME).display()
                ),
                source,
            })?;
        let roller = roller::Roller::new(
            shared.clone(),
            shipper,
            &config.instance,
            &spool_id,
            recovery.sealed.last().map(|s| s.id),
            config.roll_age,
            (chain, row_seq),
        );
        let thread = std::thread::Builder::new()
            .name("custody-audit".into())
            .spawn(move || {
                yield_to_requests();
                roller.run(rx)
            })
            .map_err(|source| AuditError::Io {
                context: "starting the audit thread".into(),
                source,
            })?;
        Ok(Self {
            trail: AuditTrail { shared },
            thread: Some(thread),
        })
    }

    /// A handle for recording rows.
    pub fn trail(&self) -> AuditTrail {
        self.trail.clone()
    }

    /// Seals what is spooled, uploads it until `deadline`, and stops the roller.
    /// Call it once no request can still finish: rows recorded later stay in the
    /// spool for the next start.
    pub async fn shutdown(mut self, deadline: Instant) -> StopReport {
        let (tx, rx) = oneshot::channel();
        let report = if self
            .trail
            .shared
            .commands
            .send(Command::Stop(deadline, tx))
            .is_ok()
        {
            rx.await.unwrap_or_default()
        } else {
            StopReport::default()
        };
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        report
    }
}

/// Reads the spool's id (`<dir>/SPOOL_ID`), creating it on first use: a fresh
/// time-ordered UUID, the "boot id" in file names. It lives as long as the spool, so
/// files rebuilt after a restart get the names they had.
fn spool_id(dir: &Path) -> Result<String, AuditError> {
    let io = |context: String| move |source| AuditError::Io { context, source };
    std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    let path = dir.join("SPOOL_ID");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Ok(id.to_owned());
            }
            tracing::warn!(file = %path.display(), "unreadable spool id; starting a new one");
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(format!("read {}", path.display()))(e)),
    }
    let id = uuid::Uuid::now_v7().simple().to_string();
    let tmp = dir.join("SPOOL_ID.tmp");
    (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(id.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    })()
    .map_err(io(format!("write {}", path.display())))?;
    Ok(id)
}

fn report_recovery(dir: &Path, r: &Recovery, stats: &AuditStats) {
    stats
        .corrupt_records
        .store(r.corrupt_records, Ordering::Relaxed);
    stats
        .corrupt_bytes
        .store(r.corrupt_bytes + r.truncated_bytes, Ordering::Relaxed);
    if r.is_clean() {
        tracing::info!(
            dir = %dir.display(),
            segments = r.sealed.len(),
            records = r.records_ok,
            "audit spool opened"
        );
    } else {
        tracing::error!(
            dir = %dir.display(),
            segments = r.sealed.len(),
            records = r.records_ok,
            corrupt_records = r.corrupt_records,
            corrupt_regions = r.corrupt_regions,
            corrupt_bytes = r.corrupt_bytes,
            truncated_bytes = r.truncated_bytes,
            bad_headers = r.bad_headers,
            repaired_segments = r.repaired_segments,
            "audit spool was damaged: repaired; the lost records are reported as gap rows"
        );
    }
}

/// Reads the requests the previous process could not record (their gap rows are
/// written once the spool has room; see [`gaps`]).
fn load_gaps(dir: &Path) -> Result<Gaps, AuditError> {
    let (file, loaded) = gaps::GapFile::open(dir).map_err(|source| AuditError::Io {
        context: format!("open {}", dir.join(gaps::FILE_NAME).display()),
        source,
    })?;
    if loaded.lost.is_some() {
        tracing::error!(
            file = %dir.join(gaps::DAMAGED_NAME).display(),
            "the count of requests not recorded before a restart is unreadable; a gap row of unknown size is written once the spool has room"
        );
    }
    if !loaded.windows.is_empty() {
        tracing::warn!(
            requests = loaded.windows.count(),
            "requests not recorded before the last restart (audit spool full); their gap row is written once the spool has room"
        );
    }
    Ok(Gaps {
        windows: loaded.windows,
        file,
        lost: loaded.lost,
    })
}

/// A gap row for damaged segment ends cut at open: their records are unknown (the
/// spool's own gap records cover only the ranges whose sequence numbers are known).
fn record_truncation(spool: &Spool, r: &Recovery, stats: &AuditStats) {
    let mut row = AuditRecord::new(
        std::time::SystemTime::now(),
        format!("gap_{}", uuid::Uuid::now_v7().simple()),
        custody_core::Action::new(custody_core::ActionKind::Http, "", ""),
    );
    row.outcome.error = Some(format!(
        "gap: {} damaged bytes truncated from audit spool segment ends at start (records there unknown)",
        r.truncated_bytes
    ));
    match spool.append_nowait(envelope::ROW, &envelope::row(&row)) {
        Ok(_) => {
            stats.damage_gap_rows.fetch_add(1, Ordering::Relaxed);
            stats.rows_spooled.fetch_add(1, Ordering::Relaxed);
        }
        _ => tracing::error!("cannot spool the gap row for the truncated spool damage"),
    }
}

/// How much lower the roller thread's scheduling priority is than the request
/// threads' (a nice increment). When the two compete for one core, Linux's
/// scheduler shares it by weight, 1024 to 335 at nice 0 and 5, so a request gets
/// about three quarters of the core and the roller the rest. The roller needs
/// under a tenth of custody's CPU, so it keeps up even then, and otherwise runs
/// as before: priority matters only while both want the same core.
pub const ROLLER_NICE: i32 = 5;

/// Lowers the calling thread's scheduling priority by [`ROLLER_NICE`]. On Linux
/// the nice value is a thread's own, so the request threads keep theirs (on other
/// systems it may be the whole process's, so nothing is changed there). Raising
/// one's nice value needs no privilege; a failure is logged and ignored.
fn yield_to_requests() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        let result = getpriority_process(None)
            .and_then(|nice| setpriority_process(None, nice.saturating_add(ROLLER_NICE)));
        if let Err(error) = result {
            tracing::debug!(%error, "the roller's priority was not lowered");
        }
    }
}
