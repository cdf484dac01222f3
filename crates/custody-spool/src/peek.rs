//! Reading a spool directory without opening the spool: for a reader in another
//! process (`custody trail --last`) while the owner keeps appending.
//!
//! [`peek`] takes no lock and writes nothing: it lists the segment files, checks
//! each header and yields every record that validates, oldest segment first. What
//! it cannot read is counted, not repaired (that is [`crate::Spool::open`]'s job):
//! the bytes at the end of the newest segment may be a record being written right
//! now, and a segment may be released (deleted) between the listing and the read.

use super::active::{segment_id, segment_path};
use super::format::{HEADER_LEN, HeaderCheck, decode_header};
use super::scan::{Item, Scanner};
use super::{Position, RecordKind, SpoolError, SpoolRecord};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// What [`peek`] read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peeked {
    /// Segment files read.
    pub segments: usize,
    /// Valid records yielded (gap records included).
    pub records: u64,
    /// Bytes that held no valid record (damage, or a record still being written at
    /// the end of a segment).
    pub unreadable_bytes: u64,
    /// Segments skipped: a header that is damaged or of an unknown version.
    pub skipped_segments: usize,
}

/// Calls `each` with every valid record of the segments in `dir`, oldest first,
/// without locking or changing anything. Fails only if `dir` cannot be listed;
/// a segment deleted meanwhile is passed over.
pub fn peek(dir: &Path, mut each: impl FnMut(SpoolRecord)) -> Result<Peeked, SpoolError> {
    let io_err = |context: String| move |source| SpoolError::Io { context, source };
    let mut ids: Vec<u64> = std::fs::read_dir(dir)
        .map_err(io_err(format!("list {}", dir.display())))?
        .filter_map(|e| segment_id(e.ok()?.file_name().to_str()?))
        .collect();
    ids.sort_unstable();
    let mut out = Peeked::default();
    for id in ids {
        let path = segment_path(dir, id);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(format!("open {}", path.display()))(e)),
        };
        let mut header = [0u8; HEADER_LEN];
        let first_seq = match file
            .read_exact(&mut header)
            .map(|()| decode_header(&header))
        {
            Ok(HeaderCheck::Valid(h)) => h.first_seq,
            // A segment being created (header not written yet) holds no record.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => continue,
            Ok(_) => {
                out.skipped_segments += 1;
                continue;
            }
            Err(e) => return Err(io_err(format!("read {}", path.display()))(e)),
        };
        out.segments += 1;
        let mut scanner = Scanner::new(file, Some(first_seq))
            .map_err(io_err(format!("read {}", path.display())))?;
        while let Some(item) = scanner
            .next_item()
            .map_err(io_err(format!("read {}", path.display())))?
        {
            match item {
                Item::Record(found) => {
                    out.records += 1;
                    each(SpoolRecord {
                        pos: Position {
                            seq: found.header.seq,
                            segment: id,
                        },
                        kind: RecordKind(found.header.kind),
                        payload: found.payload,
                    });
                }
                Item::Damage { len, .. } => out.unreadable_bytes += len,
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Spool, SpoolConfig};

    #[test]
    fn peek_reads_an_open_spool_without_taking_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = SpoolConfig::new(dir.path());
        config.segment_bytes = 4096;
        let (spool, _) = Spool::open(config).expect("open");
        for i in 0..100u32 {
            spool
                .append_nowait(RecordKind::ROW, &i.to_le_bytes().repeat(20))
                .expect("append");
        }
        let mut seen = Vec::new();
        let peeked = peek(dir.path(), |r| seen.push(r)).expect("peek");
        assert_eq!(peeked.records, 100);
        assert!(peeked.segments > 1, "{peeked:?}");
        assert_eq!(peeked.unreadable_bytes, 0);
        let seqs: Vec<u64> = seen.iter().map(|r| r.pos.seq).collect();
        assert_eq!(seqs, (0..100).collect::<Vec<_>>());
        assert_eq!(seen[7].payload, 7u32.to_le_bytes().repeat(20));
        // The owner still appends: peeking took nothing from it.
        spool
            .append_nowait(RecordKind::ROW, b"more")
            .expect("append");

        // A record being written (a torn tail) is counted, not yielded.
        let last = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .max()
            .expect("a segment");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&last)
            .expect("open");
        std::io::Write::write_all(&mut f, &crate::RECORD_MAGIC).expect("write");
        let peeked = peek(dir.path(), |_| {}).expect("peek");
        assert_eq!((peeked.records, peeked.unreadable_bytes), (101, 4));

        let missing = peek(&dir.path().join("missing"), |_| {}).expect_err("a missing directory");
        assert!(missing.to_string().contains("missing"), "{missing}");
    }
}
