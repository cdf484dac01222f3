//! `row_seq`: every row's number in its spool's trail, 1, 2, … with no holes.
//!
//! Rows are numbered when the roller builds a sealed segment into files, in the
//! segment's order (which a rebuild repeats). A segment's first number is the one
//! after the previous segment's last, and is remembered once the segment's files are
//! stored, until the segment leaves the spool: a segment built again — after a crash,
//! or because it stays in the spool for intents still open — gets the numbers it got
//! before, so its files come out byte for byte the same. The state is kept in the
//! spool directory (`ROW_SEQ`, replaced atomically before a segment can be
//! released). Incomplete rows written at replay and gap rows are rows of a segment
//! like any other: each gets a number (a gap row's states how many requests it
//! stands for).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The file's name in the spool directory.
pub(crate) const FILE_NAME: &str = "ROW_SEQ";

/// The numbering state and where it is kept.
#[derive(Debug)]
pub(crate) struct RowSeq {
    path: PathBuf,
    /// The number the next new segment's first row gets.
    next: i64,
    /// First numbers of segments stored but still in the spool, by segment id.
    firsts: BTreeMap<u64, i64>,
}

impl RowSeq {
    /// Reads `<dir>/ROW_SEQ` (`next N`, then a `segment ID FIRST` line per segment
    /// still in the spool); a new spool starts at 1.
    pub(crate) fn open(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join(FILE_NAME);
        let mut state = Self {
            path,
            next: 1,
            firsts: BTreeMap::new(),
        };
        let text = match std::fs::read_to_string(&state.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(state),
            Err(e) => return Err(e),
        };
        let bad = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: not a row_seq state", state.path.display()),
            )
        };
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["next", n] => state.next = n.parse().map_err(|_| bad())?,
                ["segment", id, first] => {
                    let id = id.parse().map_err(|_| bad())?;
                    let first = first.parse().map_err(|_| bad())?;
                    state.firsts.insert(id, first);
                }
                [] => {}
                _ => return Err(bad()),
            }
        }
        Ok(state)
    }

    /// The first number of segment `id`'s rows: what it had if it was stored
    /// before, else the next one.
    pub(crate) fn first_for(&self, id: u64) -> i64 {
        self.firsts.get(&id).copied().unwrap_or(self.next)
    }

    /// Segment `id`, numbered from `first` up to `next - 1`, is stored; segments
    /// below `oldest_kept` have left the spool.
    pub(crate) fn stored(
        &mut self,
        id: u64,
        first: i64,
        next: i64,
        oldest_kept: Option<u64>,
    ) -> std::io::Result<()> {
        self.firsts.insert(id, first);
        if let Some(oldest) = oldest_kept {
            self.firsts.retain(|segment, _| *segment >= oldest);
        }
        self.next = self.next.max(next);
        let mut text = format!("next {}\n", self.next);
        for (segment, first) in &self.firsts {
            text += &format!("segment {segment} {first}\n");
        }
        let tmp = self.path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_segment_keeps_its_numbers_until_it_leaves_the_spool() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seq = RowSeq::open(dir.path()).expect("open");
        assert_eq!(seq.first_for(7), 1);
        seq.stored(7, 1, 41, Some(7)).expect("stored");
        seq.stored(8, 41, 81, Some(7)).expect("stored");
        let seq = RowSeq::open(dir.path()).expect("reopen");
        // Built again (still in the spool): the same numbers.
        assert_eq!(seq.first_for(7), 1);
        assert_eq!(seq.first_for(8), 41);
        // A new segment continues.
        assert_eq!(seq.first_for(9), 81);
        let mut seq = seq;
        seq.stored(9, 81, 90, Some(9)).expect("stored");
        let seq = RowSeq::open(dir.path()).expect("reopen");
        assert_eq!(seq.first_for(7), 90, "segment 7 left the spool");
        std::fs::write(dir.path().join(FILE_NAME), "garbage").expect("damage");
        assert!(RowSeq::open(dir.path()).is_err());
    }
}
