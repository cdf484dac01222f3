//! Validating, resynchronising reads of a segment file.
//!
//! [`Scanner`] walks the record area of a segment and yields either a valid record or
//! a damaged byte range. After damage it searches forward for the next record magic
//! whose record validates (length, CRC, plausible sequence number), so one flipped
//! bit costs one record, not the rest of the segment. Every step advances the read
//! position, so a scan ends after at most one pass over the file, whatever it holds.

use super::format::{
    Gap, HEADER_LEN, RECORD_HEADER_LEN, RECORD_MAGIC, RecordHeader, parse_record_header,
    record_crc_ok,
};
use super::{Position, RecordKind, SpoolError, SpoolRecord};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Bytes read from the file at a time.
const CHUNK: usize = 256 << 10;

/// A read buffer over a file with positional reads.
pub(super) struct Window {
    file: File,
    len: u64,
    buf: Vec<u8>,
    start: u64,
}

impl Window {
    pub(super) fn new(file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(Self {
            file,
            len,
            buf: Vec::new(),
            start: 0,
        })
    }

    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Bytes `[pos, pos + len)`, or `None` if they extend past the end of the file.
    pub(super) fn get(&mut self, pos: u64, len: usize) -> io::Result<Option<&[u8]>> {
        let end = match pos.checked_add(len as u64) {
            Some(end) if end <= self.len => end,
            _ => return Ok(None),
        };
        let buf_end = self.start + self.buf.len() as u64;
        if pos < self.start || end > buf_end {
            let want = (len.max(CHUNK) as u64).min(self.len - pos) as usize;
            self.buf.clear();
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.start = pos;
        }
        let at = (pos - self.start) as usize;
        Ok(Some(&self.buf[at..at + len]))
    }

    /// Offset of the first record magic at or after `from`.
    fn find_magic(&mut self, mut from: u64) -> io::Result<Option<u64>> {
        let magic_len = RECORD_MAGIC.len() as u64;
        while from.saturating_add(magic_len) <= self.len {
            let rest = self.len - from;
            let n = rest.min(CHUNK as u64) as usize;
            let Some(chunk) = self.get(from, n)? else {
                return Ok(None);
            };
            if let Some(i) = chunk
                .windows(RECORD_MAGIC.len())
                .position(|w| w == RECORD_MAGIC)
            {
                return Ok(Some(from + i as u64));
            }
            if n as u64 == rest {
                return Ok(None);
            }
            from += n as u64 - (magic_len - 1);
        }
        Ok(None)
    }
}

/// A record that validated.
#[derive(Debug)]
pub(super) struct Found {
    pub(super) offset: u64,
    pub(super) header: RecordHeader,
    pub(super) payload: Vec<u8>,
    /// The sequence number expected here (`None` when unknown); a larger `seq`
    /// means records between the two are missing.
    pub(super) expected: Option<u64>,
}

impl Found {
    pub(super) fn total_len(&self) -> u64 {
        (RECORD_HEADER_LEN + self.header.len) as u64
    }

    /// One past the last sequence number this record accounts for.
    pub(super) fn next_seq(&self) -> u64 {
        if self.header.kind == RecordKind::GAP.code()
            && let Some(gap) = Gap::decode(&self.payload)
            && gap.first_lost == self.header.seq
        {
            return gap.last_lost.saturating_add(1);
        }
        self.header.seq.saturating_add(1)
    }
}

/// One step of a scan.
#[derive(Debug)]
pub(super) enum Item {
    Record(Found),
    /// Bytes that hold no valid record. `tail` when no valid record follows them.
    Damage {
        offset: u64,
        len: u64,
        tail: bool,
    },
}

/// Walks the record area of one segment.
pub(super) struct Scanner {
    win: Window,
    pos: u64,
    floor: Option<u64>,
    pending: Option<Found>,
}

impl Scanner {
    /// Scans `file` from the end of the segment header. `first_seq` is the lowest
    /// sequence number a record may carry, when known.
    pub(super) fn new(file: File, first_seq: Option<u64>) -> io::Result<Self> {
        Ok(Self {
            win: Window::new(file)?,
            pos: HEADER_LEN as u64,
            floor: first_seq,
            pending: None,
        })
    }

    pub(super) fn file_len(&self) -> u64 {
        self.win.len()
    }

    /// The sequence number the next record should carry, when known.
    pub(super) fn floor(&self) -> Option<u64> {
        self.floor
    }

    pub(super) fn next_item(&mut self) -> io::Result<Option<Item>> {
        if let Some(found) = self.pending.take() {
            self.accept(&found);
            return Ok(Some(Item::Record(found)));
        }
        if self.pos >= self.win.len() {
            return Ok(None);
        }
        if let Some(found) = self.try_record(self.pos, None)? {
            self.accept(&found);
            return Ok(Some(Item::Record(found)));
        }
        let start = self.pos;
        let mut from = start + 1;
        loop {
            let Some(at) = self.win.find_magic(from)? else {
                self.pos = self.win.len();
                return Ok(Some(Item::Damage {
                    offset: start,
                    len: self.pos - start,
                    tail: true,
                }));
            };
            if let Some(found) = self.try_record(at, Some(start))? {
                self.pos = at;
                self.pending = Some(found);
                return Ok(Some(Item::Damage {
                    offset: start,
                    len: at - start,
                    tail: false,
                }));
            }
            from = at + 1;
        }
    }

    fn accept(&mut self, found: &Found) {
        self.pos = found.offset + found.total_len();
        self.floor = Some(found.next_seq());
    }

    /// The record at `at`, if it validates. `damage_start` is set while
    /// resynchronising: a candidate's sequence number must then be reachable from
    /// the floor by the records that could have fit in the damaged bytes.
    fn try_record(&mut self, at: u64, damage_start: Option<u64>) -> io::Result<Option<Found>> {
        let Some(bytes) = self.win.get(at, RECORD_HEADER_LEN)? else {
            return Ok(None);
        };
        let Some(header) = parse_record_header(bytes) else {
            return Ok(None);
        };
        let mut header_bytes = [0u8; RECORD_HEADER_LEN];
        header_bytes.copy_from_slice(bytes);
        if let Some(floor) = self.floor {
            if header.seq < floor {
                return Ok(None);
            }
            if let Some(start) = damage_start {
                let fit = (at - start) / RECORD_HEADER_LEN as u64;
                if header.seq - floor > fit {
                    return Ok(None);
                }
            }
        }
        let Some(payload) = self.win.get(at + RECORD_HEADER_LEN as u64, header.len)? else {
            return Ok(None);
        };
        if !record_crc_ok(&header_bytes, &header, payload) {
            return Ok(None);
        }
        Ok(Some(Found {
            offset: at,
            header,
            payload: payload.to_vec(),
            expected: self.floor,
        }))
    }
}

/// Iterates the records of a sealed segment, oldest first (from [`super::Spool::read_segment`]).
///
/// Reads are blocking file I/O: use it from a blocking thread. Damage found here
/// (the file changed after the spool opened it) is yielded as
/// [`SpoolError::Corrupt`] and the iteration goes on after it; an I/O error ends it.
pub struct SegmentReader {
    segment: u64,
    scanner: Scanner,
    done: bool,
}

impl SegmentReader {
    pub(super) fn new(segment: u64, file: File, first_seq: u64) -> io::Result<Self> {
        Ok(Self {
            segment,
            scanner: Scanner::new(file, Some(first_seq))?,
            done: false,
        })
    }

    /// The segment being read.
    pub fn segment(&self) -> u64 {
        self.segment
    }
}

impl Iterator for SegmentReader {
    type Item = Result<SpoolRecord, SpoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.scanner.next_item() {
            Ok(Some(Item::Record(found))) => Some(Ok(SpoolRecord {
                pos: Position {
                    seq: found.header.seq,
                    segment: self.segment,
                },
                kind: RecordKind(found.header.kind),
                payload: found.payload,
            })),
            Ok(Some(Item::Damage { offset, len, .. })) => Some(Err(SpoolError::Corrupt {
                segment: self.segment,
                offset,
                len,
            })),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(source) => {
                self.done = true;
                Some(Err(SpoolError::Io {
                    context: format!("read segment {}", self.segment),
                    source,
                }))
            }
        }
    }
}
