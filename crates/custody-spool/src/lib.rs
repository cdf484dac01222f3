//! The durable local spool: an append-only, checksummed log of opaque records in
//! segment files, written before a request is forwarded upstream and kept until the
//! rows made from it are confirmed in an uploaded file.
//!
//! A crate of its own: it knows nothing of audit rows (custody-audit gives the
//! records their meaning), so it can be tested, benchmarked and reasoned about alone.
//!
//! # Use
//! - [`Spool::open`] (blocking; call at start-up) scans, validates and repairs every
//!   segment, seals them all and starts a new active segment. It returns a
//!   [`Recovery`] report and the sealed segments to replay: read each with
//!   [`Spool::read_segment`] or all with [`Spool::read_sealed`] (blocking I/O) and
//!   pair records by the caller's own key; an intent without its completion is a
//!   request whose outcome is unknown (`incomplete: custody restarted`). A [`RecordKind::GAP`] record stands for
//!   records lost to damage (see [`Gap`]) and should become a row too.
//! - [`Spool::append`] (async) writes one record and returns once it is as durable as
//!   [`Durability`] asks. [`Spool::append_nowait`] (sync) returns after the write(2).
//!   Both fail with [`SpoolError::Full`] without writing when the backlog would pass
//!   `max_bytes`.
//! - A roller calls [`Spool::seal`] (or waits for segments to roll at
//!   `segment_bytes`), reads the sealed segments, builds and uploads its file, then
//!   calls [`Spool::release_through`] with the last [`Position`] it made durable
//!   elsewhere. Whole sealed segments whose records all lie at or before it are
//!   deleted; the active segment never is. An intent still open pins its segment:
//!   release only up to just before the oldest open intent, or append such intents
//!   again (pairing is by key, so the copy is harmless) before releasing.
//! - [`mod@peek`] reads a spool another process owns, without its lock and without
//!   repairing anything (a reader such as `custody trail --last`).
//!
//! # Blocking and threads
//! An append encodes and checksums the payload outside any lock, then takes a mutex
//! for one write(2) to the page cache (about a microsecond; when the segment rolls,
//! also a file create and a 32-byte write; never an fsync).
//! With [`Durability::Fsync`] one dedicated thread, `custody-spool-sync`, runs
//! `fdatasync` in a loop: each round covers every record written before it started,
//! so appends arriving during a round share the next one (group commit). `append`
//! awaits a oneshot from that thread and never blocks a runtime thread on a disk
//! flush. An fsync error fails the waiting appends and every later one (the page
//! cache state is unknown after a failed fsync): reopen the spool to recover. The
//! thread is joined when the last [`Spool`] handle is dropped, after a final round,
//! so that drop may block for one fsync.
//!
//! # On-disk format (version 1; all integers little-endian)
//! A directory holds `LOCK` (an advisory `flock`, one process per spool) and segment
//! files `<id:020>.seg`, ids increasing and never reused; `*.seg.tmp` are unfinished
//! repairs and are deleted at open. A segment is a 32-byte header then records:
//! ```text
//! header:  0 magic "CSTDSPL\0" | 8 version u16 = 1 | 10 flags u16 = 0
//!          12 segment id u64   | 20 first_seq u64 | 28 crc32c(bytes 0..28) u32
//! record:  0 magic B5 C7 8E A3 | 4 len u32 (payload bytes, <= 16 MiB)
//!          8 crc u32 = crc32c(payload ++ bytes 4..8 ++ bytes 12..21)
//!          12 kind u8 (0 invalid) | 13 seq u64 | 21 payload
//! ```
//! Kinds: 1 intent, 2 completion, 3 row, other caller kinds up to 0xEF; 0xF0..=0xFE
//! reserved; 0xFF a gap record (payload: first lost seq u64, last lost seq u64,
//! bytes dropped u64; its own seq is the first lost one), written only by repair.
//!
//! Invariants: sequence numbers are global, start at 0 and increase by one per
//! record in file order, across segments (`first_seq` is the seq the segment's first
//! record has or would have); a gap record accounts for its whole range. A segment
//! rolls before an append would take it past `segment_bytes` (a record larger than
//! that gets a segment of its own). A record is valid only if its magic, length,
//! CRC and seq (not below the expected one) all check, so it is either whole or
//! detected as damaged. The record magic is not valid UTF-8 and all four of its
//! bytes are ≥ 0x80, so a payload that is UTF-8, or UTF-8 strings between bytes
//! below 0x80 (the audit trail's binary rows, see custody-audit's `record::binary`), cannot
//! contain a record image that resynchronisation could mistake for a record. Seqs lost in the torn tail of the newest segment are reused (with `fsync`
//! none of them was acknowledged); ids are never reused, because the newest segment
//! is never deleted before a newer one exists.
//!
//! # Recovery at open
//! - Damage followed by a valid record (flipped bit, zeroed sector): the scan resyncs
//!   at the next magic whose record validates and whose seq could follow the damaged
//!   bytes. The bytes count as `corrupt_bytes`; the seqs skipped as `corrupt_records`.
//! - Damage at the end of a segment (torn write, garbage): `truncated_bytes`. If a
//!   later segment's header says where seqs resume, the missing seqs count as
//!   `corrupt_records`; in the last segment they are unknowable (with `fsync` no
//!   acknowledged record can be there).
//! - A missing or damaged header (`bad_headers`): records are still scanned; the
//!   header is rebuilt from the file name and the surrounding seqs. A checksummed
//!   header of an unknown version is refused ([`SpoolError::UnsupportedVersion`])
//!   rather than destroyed.
//! - A damaged segment is rewritten (to `.tmp`, fsync, rename, fsync the directory)
//!   with its valid records and a gap record per lost seq range, so the next open
//!   finds it clean: damage is reported once, never silently skipped, never a crash
//!   loop. Segments without records are deleted. Damage is logged with `tracing`.

#![deny(missing_docs)]

mod active;
mod format;
#[cfg(test)]
mod known_errors;
#[cfg(test)]
mod model;
mod peek;
mod recover;
mod scan;
#[cfg(test)]
mod tests;

pub use format::{Gap, MAX_PAYLOAD, RECORD_MAGIC};
pub use peek::{Peeked, peek};
pub use scan::SegmentReader;

use active::Shared;
use std::fmt;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

/// When an append counts as written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// After write(2) to the segment file: survives the process being killed, not
    /// power loss.
    #[default]
    Process,
    /// After an fsync covering the record (group-committed): survives power loss.
    Fsync,
}

/// How to open a spool.
#[derive(Clone, Debug)]
pub struct SpoolConfig {
    /// Directory holding the segments (created if missing).
    pub dir: PathBuf,
    /// Cap on the bytes of all live segments; appends past it fail with `Full`.
    pub max_bytes: u64,
    /// A segment rolls before an append would take it past this size.
    pub segment_bytes: u64,
    /// When an append counts as written.
    pub durability: Durability,
}

impl SpoolConfig {
    /// Default segment size: 8 MiB.
    pub const DEFAULT_SEGMENT_BYTES: u64 = 8 << 20;
    /// Default backlog cap: 1 GiB.
    pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

    /// The defaults, spooling into `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            max_bytes: Self::DEFAULT_MAX_BYTES,
            segment_bytes: Self::DEFAULT_SEGMENT_BYTES,
            durability: Durability::Process,
        }
    }
}

/// What a record is, as a byte the caller defines; [`RecordKind::GAP`] is the
/// spool's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKind(u8);

impl RecordKind {
    /// A request is about to be forwarded.
    pub const INTENT: Self = Self(1);
    /// The exchange an intent announced has ended.
    pub const COMPLETION: Self = Self(2);
    /// A complete row with no intent before it (e.g. a denied request).
    pub const ROW: Self = Self(3);
    /// Written by the spool at open: records were lost to damage (see [`Gap`]).
    pub const GAP: Self = Self(0xFF);

    /// A caller-defined kind; `None` for 0 and for 0xF0..=0xFF (reserved).
    pub const fn new(code: u8) -> Option<Self> {
        if code == 0 || code >= 0xF0 {
            None
        } else {
            Some(Self(code))
        }
    }

    /// The byte stored on disk.
    pub const fn code(self) -> u8 {
        self.0
    }
}

/// Where a record sits: its sequence number (which orders records) and segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// Global sequence number, increasing by one per record.
    pub seq: u64,
    /// Id of the segment file holding it.
    pub segment: u64,
}

/// A record read back from a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolRecord {
    /// Where it is.
    pub pos: Position,
    /// What it is.
    pub kind: RecordKind,
    /// The caller's bytes.
    pub payload: Vec<u8>,
}

impl SpoolRecord {
    /// The lost range, if this is a gap record.
    pub fn gap(&self) -> Option<Gap> {
        (self.kind == RecordKind::GAP)
            .then(|| Gap::decode(&self.payload))
            .flatten()
    }
}

/// A segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Id (the file name).
    pub id: u64,
    /// Sequence number of its first record (or of the next record, if empty).
    pub first_seq: u64,
    /// Records in it (gap records included).
    pub records: u64,
    /// Its size in bytes, header included.
    pub bytes: u64,
    /// Position of its last record.
    pub last: Option<Position>,
}

/// What [`Spool::open`] found and repaired; the caller reports it (the spool logs
/// only each segment it repairs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Segment files found.
    pub segments: u64,
    /// Valid records found (gap records included).
    pub records_ok: u64,
    /// Records known lost to damage (from the sequence numbers); gap records now
    /// stand for them.
    pub corrupt_records: u64,
    /// Damaged byte ranges followed by valid records.
    pub corrupt_regions: u64,
    /// Bytes in those ranges.
    pub corrupt_bytes: u64,
    /// Bytes cut from the ends of segments (torn writes, trailing garbage).
    pub truncated_bytes: u64,
    /// Segments whose header was missing or damaged (zero-length files included).
    pub bad_headers: u64,
    /// Segments rewritten to remove damage.
    pub repaired_segments: u64,
    /// Segments deleted because they held no record.
    pub removed_empty: u64,
    /// The sealed segments left to replay, oldest first.
    pub sealed: Vec<SegmentInfo>,
    /// Sequence number of the next record appended.
    pub next_seq: u64,
}

impl Recovery {
    /// Whether nothing was damaged.
    pub fn is_clean(&self) -> bool {
        self.corrupt_records == 0
            && self.corrupt_bytes == 0
            && self.truncated_bytes == 0
            && self.bad_headers == 0
    }
}

/// Counters describing the spool, shared with the admin endpoints.
#[derive(Debug, Default)]
pub struct SpoolStats {
    /// Records appended since open.
    pub records_appended: AtomicU64,
    /// Bytes appended since open (record headers included).
    pub bytes_appended: AtomicU64,
    /// Appends refused because the backlog was full.
    pub rejected_full: AtomicU64,
    /// Fsync rounds completed (each covers every record written before it began).
    pub fsyncs: AtomicU64,
    /// Fsync rounds that failed.
    pub fsync_errors: AtomicU64,
    /// Segment files created since open.
    pub segments_created: AtomicU64,
    /// Segment files deleted by [`Spool::release_through`].
    pub segments_released: AtomicU64,
    /// Bytes in live segments.
    pub backlog_bytes: AtomicU64,
    /// Live segment files (the active one included).
    pub live_segments: AtomicU64,
    /// Records found lost at open.
    pub corrupt_records: AtomicU64,
    /// Damaged bytes dropped at open (`corrupt_bytes` + `truncated_bytes`).
    pub corrupt_bytes: AtomicU64,
}

impl SpoolStats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Why a spool operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The backlog would exceed `max_bytes`; nothing was written.
    #[error("spool full: {used} of {max} bytes in use")]
    Full {
        /// Bytes in live segments.
        used: u64,
        /// The configured cap.
        max: u64,
    },
    /// The payload is larger than [`MAX_PAYLOAD`].
    #[error("record payload of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Payload size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// [`RecordKind::GAP`] cannot be appended.
    #[error("record kind {0} is reserved for the spool")]
    ReservedKind(u8),
    /// The configuration cannot work.
    #[error("invalid spool config: {0}")]
    Config(String),
    /// Another process holds the spool directory.
    #[error("spool directory {0} is locked by another process")]
    Locked(PathBuf),
    /// A segment was written by a newer format version; it is left untouched.
    #[error("segment {path} has format version {version}, this build reads version 1")]
    UnsupportedVersion {
        /// The segment file.
        path: PathBuf,
        /// The version it declares.
        version: u16,
    },
    /// No sealed segment has this id.
    #[error("no sealed segment {0}")]
    UnknownSegment(u64),
    /// A sealed segment was damaged after open; reading resumes after the damage.
    #[error("segment {segment}: {len} damaged bytes at offset {offset}")]
    Corrupt {
        /// The segment.
        segment: u64,
        /// Where the damage starts.
        offset: u64,
        /// Damaged bytes.
        len: u64,
    },
    /// An earlier fsync failed; the spool must be reopened.
    #[error("spool unusable after a failed fsync: {0}")]
    Failed(Arc<str>),
    /// The sync thread is gone.
    #[error("spool sync thread stopped")]
    Closed,
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl SpoolError {
    fn io(context: impl fmt::Display) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Io {
            context: context.to_string(),
            source,
        }
    }
}

/// The spool: a cheap, cloneable handle; the files close (and the sync thread
/// stops) when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Spool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    sync_thread: Mutex<Option<JoinHandle<()>>>,
    /// Serialises releases.
    release: Mutex<()>,
    /// Holds the directory's advisory lock.
    _lock: File,
}

impl Spool {
    /// Opens (creating if needed) the spool in `config.dir`: validates and repairs
    /// every segment, seals them and starts a new active segment. Blocking.
    pub fn open(config: SpoolConfig) -> Result<(Self, Recovery), SpoolError> {
        let (lock, shared, recovery) = recover::open(config)?;
        let sync_thread = active::start_sync_thread(&shared)?;
        let inner = Inner {
            shared,
            sync_thread: Mutex::new(sync_thread),
            release: Mutex::new(()),
            _lock: lock,
        };
        Ok((
            Self {
                inner: Arc::new(inner),
            },
            recovery,
        ))
    }

    /// Appends a record and returns once it is durable as configured: written with
    /// write(2) (`process`) or covered by a completed group fsync (`fsync`).
    pub async fn append(&self, kind: RecordKind, payload: &[u8]) -> Result<Position, SpoolError> {
        let (pos, wait) = self.inner.shared.write(kind, payload, true)?;
        if let Some(wait) = wait {
            wait.await.map_err(|_| SpoolError::Closed)??;
        }
        Ok(pos)
    }

    /// Appends a record and returns after its write(2), without waiting for an
    /// fsync (in `fsync` mode the next group fsync will cover it; it does not start
    /// one, so it never delays a waiting append). Short; sync.
    pub fn append_nowait(&self, kind: RecordKind, payload: &[u8]) -> Result<Position, SpoolError> {
        self.inner
            .shared
            .write(kind, payload, false)
            .map(|(pos, _)| pos)
    }

    /// In `fsync` mode, waits for an fsync covering every record written so far; in
    /// `process` mode returns at once.
    pub async fn flush(&self) -> Result<(), SpoolError> {
        match self.inner.shared.request_sync() {
            Some(wait) => wait.await.map_err(|_| SpoolError::Closed)?,
            None => Ok(()),
        }
    }

    /// Seals the active segment if it holds records, so a roller can read it, and
    /// starts a new one. Returns the sealed segment. Short blocking file create.
    pub fn seal(&self) -> Result<Option<SegmentInfo>, SpoolError> {
        self.inner.shared.seal()
    }

    /// The sealed segments, oldest first.
    pub fn sealed_segments(&self) -> Vec<SegmentInfo> {
        self.inner.shared.sealed()
    }

    /// All live segments, oldest first; the last is the active one.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.inner.shared.segments()
    }

    /// Reads a sealed segment's records (blocking I/O).
    pub fn read_segment(&self, id: u64) -> Result<SegmentReader, SpoolError> {
        self.inner.shared.read_segment(id)
    }

    /// Reads every currently sealed segment's records, oldest first (blocking I/O):
    /// the replay after [`Spool::open`]. A segment released meanwhile yields
    /// [`SpoolError::UnknownSegment`].
    pub fn read_sealed(&self) -> impl Iterator<Item = Result<SpoolRecord, SpoolError>> + use<> {
        let spool = self.clone();
        self.sealed_segments().into_iter().flat_map(move |seg| {
            let records: Box<dyn Iterator<Item = _>> = match spool.read_segment(seg.id) {
                Ok(reader) => Box::new(reader),
                Err(e) => Box::new(std::iter::once(Err(e))),
            };
            records
        })
    }

    /// Deletes every sealed segment whose records all lie at or before `pos`, oldest
    /// first, and frees their backlog. Returns the segments deleted. Blocking
    /// (unlink); the active segment is never deleted.
    pub fn release_through(&self, pos: Position) -> Result<Vec<SegmentInfo>, SpoolError> {
        let _serial = self
            .inner
            .release
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.inner.shared.release_through(pos)
    }

    /// Bytes in live segments (what `max_bytes` caps).
    pub fn backlog_bytes(&self) -> u64 {
        self.inner
            .shared
            .stats
            .backlog_bytes
            .load(Ordering::Relaxed)
    }

    /// Sequence number the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.inner.shared.next_seq()
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<SpoolStats> {
        &self.inner.shared.stats
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.shutdown();
        let handle = self
            .sync_thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            // A panic in the sync thread already failed its waiters; nothing to add.
            let _ = handle.join();
        }
    }
}
