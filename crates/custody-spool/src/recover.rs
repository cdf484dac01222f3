//! Opening a spool: scan, validate and repair every segment, then start a new
//! active segment (the recovery rules are in the [`super`] doc).

use super::active::{Active, Shared, State, create_segment, segment_id, segment_path};
use super::format::{
    GAP_PAYLOAD_LEN, Gap, HEADER_LEN, HeaderCheck, PendingRecord, RECORD_HEADER_LEN, SegmentHeader,
    decode_header, encode_header,
};
use super::scan::{Item, Scanner, Window};
use super::{Position, RecordKind, Recovery, SegmentInfo, SpoolConfig, SpoolError, SpoolStats};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Smallest `segment_bytes` and `max_bytes` accepted.
const MIN_BYTES: u64 = 64;

/// Opens the spool directory; returns its lock file, the shared state and the report.
pub(super) fn open(config: SpoolConfig) -> Result<(File, Arc<Shared>, Recovery), SpoolError> {
    if config.segment_bytes < MIN_BYTES || config.max_bytes < MIN_BYTES {
        return Err(SpoolError::Config(format!(
            "segment_bytes ({}) and max_bytes ({}) must be at least {MIN_BYTES}",
            config.segment_bytes, config.max_bytes
        )));
    }
    let dir = config.dir.clone();
    std::fs::create_dir_all(&dir)
        .map_err(SpoolError::io(format_args!("create {}", dir.display())))?;
    let lock = lock_dir(&dir)?;
    let dir_file =
        File::open(&dir).map_err(SpoolError::io(format_args!("open {}", dir.display())))?;

    let ids = list_segments(&dir)?;
    let mut headers = Vec::with_capacity(ids.len());
    for &id in &ids {
        let path = segment_path(&dir, id);
        let header = read_header(&path)?;
        if let HeaderCheck::UnknownVersion(version) = header {
            return Err(SpoolError::UnsupportedVersion { path, version });
        }
        headers.push(match header {
            HeaderCheck::Valid(h) if h.id == id => Some(h.first_seq),
            _ => None,
        });
    }

    let mut recovery = Recovery {
        segments: ids.len() as u64,
        ..Recovery::default()
    };
    let mut sealed = VecDeque::new();
    let mut empty = Vec::new();
    let mut prev_end = None;
    for (i, &id) in ids.iter().enumerate() {
        let next_first = headers.get(i + 1).copied().flatten();
        let scan = scan_segment(&dir, id, headers[i], prev_end, next_first, &mut recovery)?;
        prev_end = scan.end.or(prev_end);
        match scan.info {
            Some(info) => sealed.push_back(info),
            None => empty.push(id),
        }
    }
    let next_seq = prev_end.unwrap_or(0);
    let next_id = match ids.last() {
        Some(last) => last
            .checked_add(1)
            .ok_or_else(|| SpoolError::Config("segment ids exhausted".into()))?,
        None => 0,
    };
    let file = create_segment(
        &dir,
        SegmentHeader {
            id: next_id,
            first_seq: next_seq,
        },
    )?;
    let path = segment_path(&dir, next_id);
    file.sync_all()
        .map_err(SpoolError::io(format_args!("sync {}", path.display())))?;
    dir_file
        .sync_all()
        .map_err(SpoolError::io(format_args!("sync {}", dir.display())))?;
    for id in empty {
        let path = segment_path(&dir, id);
        std::fs::remove_file(&path)
            .map_err(SpoolError::io(format_args!("delete {}", path.display())))?;
        recovery.removed_empty += 1;
    }

    recovery.sealed = sealed.iter().copied().collect();
    recovery.next_seq = next_seq;
    // The caller reports `recovery` (custody-audit logs it once, with what the
    // damage means for the trail); only per-segment repairs are logged here.
    let stats = Arc::new(SpoolStats::default());
    SpoolStats::add(&stats.segments_created, 1);
    SpoolStats::add(&stats.corrupt_records, recovery.corrupt_records);
    SpoolStats::add(
        &stats.corrupt_bytes,
        recovery.corrupt_bytes + recovery.truncated_bytes,
    );
    let state = State::new(Active::new(next_id, file, next_seq), sealed, next_seq);
    let shared = Arc::new(Shared::new(config, dir_file, state, stats));
    Ok((lock, shared, recovery))
}

fn lock_dir(dir: &Path) -> Result<File, SpoolError> {
    let path = dir.join("LOCK");
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(SpoolError::io(format_args!("open {}", path.display())))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(TryLockError::WouldBlock) => Err(SpoolError::Locked(dir.to_path_buf())),
        Err(TryLockError::Error(source)) => Err(SpoolError::Io {
            context: format!("lock {}", path.display()),
            source,
        }),
    }
}

/// Segment ids in `dir`, ascending; deletes leftovers of interrupted repairs.
fn list_segments(dir: &Path) -> Result<Vec<u64>, SpoolError> {
    let ctx = || format!("list {}", dir.display());
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(SpoolError::io(ctx()))? {
        let entry = entry.map_err(SpoolError::io(ctx()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".seg.tmp") {
            let path = entry.path();
            std::fs::remove_file(&path)
                .map_err(SpoolError::io(format_args!("delete {}", path.display())))?;
        } else if let Some(id) = segment_id(name) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

fn read_header(path: &Path) -> Result<HeaderCheck, SpoolError> {
    let mut file =
        File::open(path).map_err(SpoolError::io(format_args!("open {}", path.display())))?;
    let mut buf = Vec::with_capacity(HEADER_LEN);
    (&mut file)
        .take(HEADER_LEN as u64)
        .read_to_end(&mut buf)
        .map_err(SpoolError::io(format_args!("read {}", path.display())))?;
    Ok(decode_header(&buf))
}

/// What scanning one segment produced.
struct Scanned {
    /// `None` when the segment holds no record and is to be deleted.
    info: Option<SegmentInfo>,
    /// The sequence number expected after this segment, when known.
    end: Option<u64>,
}

/// One piece of a repaired segment.
enum Piece {
    Copy { offset: u64, len: u64 },
    Gap(Gap),
}

/// The content a segment keeps, in order.
struct Pieces {
    id: u64,
    pieces: Vec<Piece>,
    records: u64,
    size: u64,
    last: Option<Position>,
}

impl Pieces {
    fn copy(&mut self, seq: u64, offset: u64, len: u64) {
        self.push(seq, Piece::Copy { offset, len }, len);
    }

    fn gap(&mut self, gap: Gap, recovery: &mut Recovery) {
        recovery.corrupt_records += gap.last_lost - gap.first_lost + 1;
        self.push(
            gap.first_lost,
            Piece::Gap(gap),
            (RECORD_HEADER_LEN + GAP_PAYLOAD_LEN) as u64,
        );
    }

    fn push(&mut self, seq: u64, piece: Piece, len: u64) {
        self.pieces.push(piece);
        self.records += 1;
        self.size += len;
        self.last = Some(Position {
            seq,
            segment: self.id,
        });
    }
}

fn scan_segment(
    dir: &Path,
    id: u64,
    header_first_seq: Option<u64>,
    prev_end: Option<u64>,
    next_first: Option<u64>,
    recovery: &mut Recovery,
) -> Result<Scanned, SpoolError> {
    let path = segment_path(dir, id);
    let ctx = || format!("read {}", path.display());
    let file = File::open(&path).map_err(SpoolError::io(ctx()))?;
    let floor = header_first_seq.or(prev_end);
    let mut scanner = Scanner::new(file, floor).map_err(SpoolError::io(ctx()))?;
    let mut damaged = header_first_seq.is_none();
    if damaged {
        recovery.bad_headers += 1;
    }
    let mut out = Pieces {
        id,
        pieces: Vec::new(),
        records: 0,
        size: HEADER_LEN as u64,
        last: None,
    };
    let mut first_seq = floor;
    let mut damage_before = 0;
    let mut tail = 0;
    while let Some(item) = scanner.next_item().map_err(SpoolError::io(ctx()))? {
        match item {
            Item::Record(found) => {
                let seq = found.header.seq;
                if let Some(expected) = found.expected.filter(|&e| seq > e) {
                    out.gap(
                        Gap {
                            first_lost: expected,
                            last_lost: seq - 1,
                            bytes: damage_before,
                        },
                        recovery,
                    );
                    damaged = true;
                }
                recovery.records_ok += 1;
                damage_before = 0;
                first_seq.get_or_insert(seq);
                out.copy(seq, found.offset, found.total_len());
            }
            Item::Damage {
                len, tail: false, ..
            } => {
                recovery.corrupt_regions += 1;
                recovery.corrupt_bytes += len;
                damage_before += len;
                damaged = true;
            }
            Item::Damage {
                len, tail: true, ..
            } => {
                recovery.truncated_bytes += len;
                tail = len;
                damaged = true;
            }
        }
    }
    let file_len = scanner.file_len();
    let mut end = scanner.floor();
    if let (Some(next), Some(e)) = (next_first, end)
        && next > e
    {
        out.gap(
            Gap {
                first_lost: e,
                last_lost: next - 1,
                bytes: tail,
            },
            recovery,
        );
        damaged = true;
        end = Some(next);
    }
    let Pieces {
        pieces,
        records,
        size,
        last,
        ..
    } = out;
    if records == 0 {
        if damaged {
            tracing::warn!(segment = %path.display(), "spool segment held no valid record");
        }
        return Ok(Scanned { info: None, end });
    }
    let first_seq = first_seq.unwrap_or(0);
    if damaged {
        tracing::warn!(segment = %path.display(), file_len, kept_bytes = size, "repairing spool segment");
        rewrite(dir, &path, SegmentHeader { id, first_seq }, &pieces)?;
        recovery.repaired_segments += 1;
    }
    Ok(Scanned {
        info: Some(SegmentInfo {
            id,
            first_seq,
            records,
            bytes: size,
            last,
        }),
        end,
    })
}

/// Replaces `path` with a header and `pieces` (copied records and gap records),
/// atomically: write a `.tmp`, fsync it, rename it over `path`, fsync the directory.
fn rewrite(
    dir: &Path,
    path: &Path,
    header: SegmentHeader,
    pieces: &[Piece],
) -> Result<(), SpoolError> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let wctx = || format!("write {}", tmp.display());
    let rctx = || format!("read {}", path.display());
    let source = File::open(path).map_err(SpoolError::io(rctx()))?;
    let mut source = Window::new(source).map_err(SpoolError::io(rctx()))?;
    let out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(SpoolError::io(wctx()))?;
    let mut out = BufWriter::new(out);
    out.write_all(&encode_header(header))
        .map_err(SpoolError::io(wctx()))?;
    for piece in pieces {
        match piece {
            Piece::Copy { offset, len } => {
                let bytes = source
                    .get(*offset, *len as usize)
                    .map_err(SpoolError::io(rctx()))?;
                let bytes = bytes.ok_or_else(|| SpoolError::Io {
                    context: rctx(),
                    source: std::io::ErrorKind::UnexpectedEof.into(),
                })?;
                out.write_all(bytes).map_err(SpoolError::io(wctx()))?;
            }
            Piece::Gap(gap) => {
                let mut record = PendingRecord::new(RecordKind::GAP, &gap.encode());
                out.write_all(record.seal(gap.first_lost))
                    .map_err(SpoolError::io(wctx()))?;
            }
        }
    }
    let out = out.into_inner().map_err(|e| SpoolError::Io {
        context: wctx(),
        source: e.into_error(),
    })?;
    out.sync_all().map_err(SpoolError::io(wctx()))?;
    drop(out);
    std::fs::rename(&tmp, path)
        .map_err(SpoolError::io(format_args!("rename {}", tmp.display())))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(SpoolError::io(format_args!("sync {}", dir.display())))
}
