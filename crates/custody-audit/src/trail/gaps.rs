//! Requests not recorded while the spool was full, counted in memory and in a small
//! file beside the spool (`GAPS`), so that a gap row is written for them even if
//! custody is killed, or stops, before the spool has room again.
//!
//! Two windows are kept:
//! - `open`: where requests not recorded are counted now;
//! - `writing`: a window whose gap row the roller is spooling. Once taken from
//!   `open` it never changes, and its row is built from it alone (its id is the
//!   row's `request_id`), so a row spooled again after a crash (spooled, but the
//!   file not yet cleared) is the same row, which deduplication by `request_id`
//!   removes.
//!
//! The file is rewritten in place (one 128-byte `pwrite`, never extended, so a full
//! disk does not stop it on file systems that overwrite in place, such as ext4 and
//! xfs) each time a count changes: it survives a killed process, not a power loss.
//!
//! A row spooled twice around a crash (spooled, then killed before the file said
//! so) is caught at the next start: the roller holds a restored `writing` window
//! back until the previous process's segments are replayed, and drops it if its
//! row is among them ([`super::roller`]), so each gap row is spooled once.
//!
//! A `GAPS` file that does not decode (damage, or a version this code does not
//! know) is kept as `GAPS.damaged` and stands for a gap of unknown size: its row
//! ([`Lost::row`]) is spooled once there is room, then the file is deleted. Its id
//! comes from the damaged file's bytes and time, so it too is the same row if
//! spooled twice.
//!
//! ```text
//! 0 magic "CSTDGAP\0" | 8 version u16 = 1 | 10 zero u16
//! 12 slot `writing` | 68 slot `open`           (56 bytes each)
//!    slot: 0 present u8 | 1..8 zero | 8 id u128 | 24 first i64 (µs) | 32 last i64
//!          40 count u64 | 48 rejected u64
//! 124 crc32c(bytes 0..124) u32
//! ```

use crate::record::AuditRecord;
use custody_core::{Action, ActionKind};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: [u8; 8] = *b"CSTDGAP\0";
const VERSION: u16 = 1;
const SLOT: usize = 56;
const LEN: usize = 128;
/// The file's name in the spool directory.
pub(super) const FILE_NAME: &str = "GAPS";
/// A `GAPS` that did not decode, kept until its row is spooled.
pub(super) const DAMAGED_NAME: &str = "GAPS.damaged";

/// Requests not recorded, from `first` to `last` (event times, µs since the epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct GapWindow {
    /// Names the gap row: `gap_<id as a simple UUID>`.
    pub(super) id: u128,
    pub(super) first: i64,
    pub(super) last: i64,
    pub(super) count: u64,
    pub(super) rejected: u64,
}

/// The `request_id` of the gap row with id `id`.
pub(super) fn row_id(id: u128) -> String {
    format!("gap_{}", uuid::Uuid::from_u128(id).simple())
}

/// A bare gap row with id `id` at `event_time` (µs since the epoch).
fn gap_row(id: u128, event_time: i64) -> AuditRecord {
    let mut row = AuditRecord::new(
        std::time::UNIX_EPOCH,
        row_id(id),
        Action::new(ActionKind::Http, "", ""),
    );
    row.event_time = event_time;
    row
}

impl GapWindow {
    /// The gap row for this window: the same bytes every time it is built.
    pub(super) fn row(&self) -> AuditRecord {
        let mut row = gap_row(self.id, self.first);
        row.outcome.duration_ms = self.last.saturating_sub(self.first) as f64 / 1000.0;
        row.outcome.error = Some(format!(
            "gap: {} requests not recorded (audit spool full; {} refused with 503, {} forwarded or answered unrecorded)",
            self.count,
            self.rejected,
            self.count - self.rejected
        ));
        row
    }
}

/// The two windows (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Windows {
    pub(super) writing: Option<GapWindow>,
    pub(super) open: Option<GapWindow>,
}

impl Windows {
    pub(super) fn is_empty(&self) -> bool {
        self.writing.is_none() && self.open.is_none()
    }

    /// Requests counted in both windows.
    pub(super) fn count(&self) -> u64 {
        self.writing.map_or(0, |w| w.count) + self.open.map_or(0, |w| w.count)
    }

    /// Counts one request at `event_time` in the open window (opened if need be).
    pub(super) fn add(&mut self, event_time: i64, rejected: bool) {
        let w = self.open.get_or_insert_with(|| GapWindow {
            id: uuid::Uuid::now_v7().as_u128(),
            first: event_time,
            last: event_time,
            count: 0,
            rejected: 0,
        });
        w.first = w.first.min(event_time);
        w.last = w.last.max(event_time);
        w.count += 1;
        w.rejected += u64::from(rejected);
    }

    /// The window whose row is to be spooled next: `writing`, else `open` moved
    /// there. Returns whether anything moved.
    pub(super) fn take_for_writing(&mut self) -> bool {
        if self.writing.is_none() && self.open.is_some() {
            self.writing = self.open.take();
            true
        } else {
            false
        }
    }

    fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&VERSION.to_le_bytes());
        for (slot, w) in [(12, self.writing), (12 + SLOT, self.open)] {
            let Some(w) = w else { continue };
            let s = &mut b[slot..slot + SLOT];
            s[0] = 1;
            s[8..24].copy_from_slice(&w.id.to_le_bytes());
            s[24..32].copy_from_slice(&w.first.to_le_bytes());
            s[32..40].copy_from_slice(&w.last.to_le_bytes());
            s[40..48].copy_from_slice(&w.count.to_le_bytes());
            s[48..56].copy_from_slice(&w.rejected.to_le_bytes());
        }
        let crc = crc32c::crc32c(&b[..LEN - 4]);
        b[LEN - 4..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let b: &[u8; LEN] = b.try_into().ok()?;
        if b[0..8] != MAGIC
            || b[8..10] != VERSION.to_le_bytes()
            || crc32c::crc32c(&b[..LEN - 4]).to_le_bytes() != b[LEN - 4..]
        {
            return None;
        }
        let slot = |at: usize| -> Option<Option<GapWindow>> {
            let s = &b[at..at + SLOT];
            let u64_at = |i: usize| u64::from_le_bytes(s[i..i + 8].try_into().unwrap_or([0; 8]));
            match s[0] {
                0 => Some(None),
                1 => Some(Some(GapWindow {
                    id: u128::from_le_bytes(s[8..24].try_into().ok()?),
                    first: u64_at(24) as i64,
                    last: u64_at(32) as i64,
                    count: u64_at(40),
                    rejected: u64_at(48),
                })),
                _ => None,
            }
        };
        let windows = Self {
            writing: slot(12)?,
            open: slot(12 + SLOT)?,
        };
        // Event times are µs since the epoch: ±2^62 is far beyond any real one.
        let time = |t: i64| t.unsigned_abs() < 1 << 62;
        let sane = |w: Option<GapWindow>| {
            w.is_none_or(|w| {
                w.count > 0
                    && w.rejected <= w.count
                    && w.first <= w.last
                    && time(w.first)
                    && time(w.last)
            })
        };
        (sane(windows.writing) && sane(windows.open)).then_some(windows)
    }
}

/// A damaged `GAPS` file, kept as `GAPS.damaged` until its row is spooled.
#[derive(Clone, Debug)]
pub(super) struct Lost {
    /// Names the row; derived from the file's bytes and modification time.
    pub(super) id: u128,
    /// When the file was last written (µs since the epoch): the row's time.
    time: i64,
    path: PathBuf,
}

impl Lost {
    fn read(path: PathBuf) -> io::Result<Self> {
        let bytes = std::fs::read(&path)?;
        let time = std::fs::metadata(&path)?
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        let id = (u128::from(time as u64) << 64)
            | (u128::from(crc32c::crc32c(&bytes)) << 32)
            | u128::from(bytes.len() as u32);
        Ok(Self { id, time, path })
    }

    /// The row for requests not recorded, of unknown number.
    pub(super) fn row(&self) -> AuditRecord {
        let mut row = gap_row(self.id, self.time);
        row.outcome.error = Some(format!(
            "gap: an unknown number of requests not recorded before a restart (audit spool full; their count in {FILE_NAME} was unreadable, kept as {DAMAGED_NAME})"
        ));
        row
    }

    /// Its row is spooled: the damaged file can go.
    pub(super) fn done(&self) {
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::error!(file = %self.path.display(), error = %e, "cannot delete the damaged gap count after recording it");
        }
    }
}

/// The `GAPS` file.
#[derive(Debug)]
pub(super) struct GapFile {
    file: File,
    path: PathBuf,
    /// The last write failed (logged once until one succeeds).
    failing: bool,
}

/// What the directory held at start.
#[derive(Debug)]
pub(super) struct Loaded {
    /// Windows left by the previous process (empty if none).
    pub(super) windows: Windows,
    /// A damaged count whose row is not spooled yet.
    pub(super) lost: Option<Lost>,
}

impl GapFile {
    /// Opens (creating, at its full size) `<dir>/GAPS` and reads what it holds; a
    /// file that does not decode is kept as `GAPS.damaged` (see the module docs).
    pub(super) fn open(dir: &Path) -> io::Result<(Self, Loaded)> {
        let path = dir.join(FILE_NAME);
        let damaged = dir.join(DAMAGED_NAME);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let windows = if bytes.is_empty() {
            Windows::default()
        } else if let Some(w) = Windows::decode(&bytes) {
            w
        } else {
            if damaged.exists() {
                // An older damaged count is still waiting: its row covers this one.
                std::fs::remove_file(&path)?;
            } else {
                std::fs::rename(&path, &damaged)?;
            }
            Windows::default()
        };
        let lost = if damaged.exists() {
            Some(Lost::read(damaged)?)
        } else {
            None
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        if file.metadata()?.len() != LEN as u64 {
            // Allocate the whole file now, so that later rewrites never need space.
            file.set_len(0)?;
            file.write_all_at(&windows.encode(), 0)?;
        }
        let me = Self {
            file,
            path,
            failing: false,
        };
        Ok((me, Loaded { windows, lost }))
    }

    /// Rewrites the file. A failure is logged (once until a write succeeds); the
    /// count stays in memory.
    pub(super) fn store(&mut self, windows: &Windows) {
        match self.file.write_all_at(&windows.encode(), 0) {
            Ok(()) => {
                if std::mem::take(&mut self.failing) {
                    tracing::info!(file = %self.path.display(), "the count of requests not recorded is written again");
                }
            }
            Err(e) => {
                if !std::mem::replace(&mut self.failing, true) {
                    tracing::error!(file = %self.path.display(), error = %e, "cannot record the count of requests not recorded; it is kept in memory only until a write succeeds");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(id: u128, count: u64) -> GapWindow {
        GapWindow {
            id,
            first: 1_700_000_000_000_000,
            last: 1_700_000_000_500_000,
            count,
            rejected: count / 2,
        }
    }

    #[test]
    fn windows_round_trip_through_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut file, loaded) = GapFile::open(dir.path()).expect("open");
        assert!(loaded.windows.is_empty() && loaded.lost.is_none());
        let windows = Windows {
            writing: Some(window(7, 3)),
            open: Some(window(u128::MAX, 9)),
        };
        file.store(&windows);
        drop(file);
        let (_, loaded) = GapFile::open(dir.path()).expect("reopen");
        assert_eq!(loaded.windows, windows);
        assert!(loaded.lost.is_none());
        assert_eq!(
            std::fs::metadata(dir.path().join(FILE_NAME))
                .expect("stat")
                .len(),
            LEN as u64
        );
    }

    #[test]
    fn a_damaged_file_is_kept_and_stands_for_an_unknown_gap_until_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut file, _) = GapFile::open(dir.path()).expect("open");
        file.store(&Windows {
            writing: None,
            open: Some(window(1, 2)),
        });
        drop(file);
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[70] ^= 0x10;
        std::fs::write(&path, &bytes).expect("write");

        let (_, loaded) = GapFile::open(dir.path()).expect("reopen");
        assert!(loaded.windows.is_empty());
        let lost = loaded.lost.expect("an unknown gap");
        assert_eq!(
            std::fs::read(dir.path().join(DAMAGED_NAME)).expect("kept"),
            bytes
        );
        // Not recorded yet: the next start still knows, with the same row.
        let (_, again) = GapFile::open(dir.path()).expect("reopen");
        let again = again.lost.expect("still unknown");
        assert_eq!(again.id, lost.id);
        let row = again.row();
        assert_eq!(row.request_id, lost.row().request_id);
        assert!(
            row.outcome
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("gap: an unknown number of requests")),
            "{row:?}"
        );
        again.done();
        let (_, last) = GapFile::open(dir.path()).expect("reopen");
        assert!(last.lost.is_none() && last.windows.is_empty());
    }

    #[test]
    fn a_file_of_another_version_is_not_read_as_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut b = Windows {
            writing: None,
            open: Some(window(1, 2)),
        }
        .encode();
        b[8] = 2;
        let crc = crc32c::crc32c(&b[..LEN - 4]);
        b[LEN - 4..].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(dir.path().join(FILE_NAME), b).expect("write");
        let (_, loaded) = GapFile::open(dir.path()).expect("open");
        assert!(loaded.windows.is_empty());
        assert!(loaded.lost.is_some(), "kept, and reported as unknown");
        assert_eq!(
            std::fs::read(dir.path().join(DAMAGED_NAME)).expect("kept"),
            b
        );
    }

    #[test]
    fn extreme_times_do_not_decode() {
        let mut w = window(1, 2);
        w.first = i64::MIN;
        let b = Windows {
            writing: Some(w),
            open: None,
        }
        .encode();
        assert!(Windows::decode(&b).is_none());
    }

    #[test]
    fn a_window_is_frozen_once_taken_for_writing_and_its_row_is_stable() {
        let mut w = Windows::default();
        w.add(10, true);
        w.add(5, false);
        assert!(w.take_for_writing());
        let frozen = w.writing.expect("writing");
        w.add(20, false);
        assert!(!w.take_for_writing());
        assert_eq!(w.writing, Some(frozen));
        assert_eq!(w.open.map(|o| o.count), Some(1));
        assert_ne!(w.open.map(|o| o.id), Some(frozen.id));
        assert_eq!(
            (frozen.first, frozen.last, frozen.count, frozen.rejected),
            (5, 10, 2, 1)
        );
        let (a, b) = (frozen.row(), frozen.row());
        assert_eq!(a.request_id, b.request_id);
        assert_eq!(
            serde_json::to_string(&a).expect("json"),
            serde_json::to_string(&b).expect("json")
        );
        assert_eq!(a.event_time, 5);
        assert!(
            a.outcome
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("gap: 2 requests not recorded")),
            "{a:?}"
        );
    }
}
