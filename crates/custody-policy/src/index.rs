//! Lookup structures built at load time so evaluation touches few rules and
//! patterns: a fast hasher for tables keyed by policy-defined names, and an index
//! of candidates by the first `:`-separated segment of a name (`crm` in
//! `crm:contacts:search`).
//!
//! The segment index returns a *superset* of the entries that can match a name,
//! in the order the entries were given, so "first match wins" and "most specific
//! first" are preserved: an entry is left out of a segment's list only when none
//! of its patterns can match any name in that segment.

use crate::glob::Glob;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FxHash (rotate-xor-multiply, a word at a time). Not DoS-resistant, which is
/// fine here: tables are built from the policy file, and lookups with untrusted
/// names cannot degrade a table they do not insert into.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FxHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by names from the policy.
pub(crate) type NameMap<V> = HashMap<Box<str>, V, BuildHasherDefault<FxHasher>>;

/// The first `:`-separated segment of a name (the whole name if it has no `:`).
#[inline]
pub(crate) fn segment(name: &str) -> &str {
    name.split_once(':').map_or(name, |(s, _)| s)
}

/// The literal text every match of `glob` starts with.
fn head(glob: &Glob) -> &str {
    let src = glob.source();
    src.find('*').map_or(src, |i| &src[..i])
}

/// Whether `glob` can match a name whose first segment is `seg`.
fn may_match(glob: &Glob, seg: &str) -> bool {
    let head = head(glob);
    match head.split_once(':') {
        Some((first, _)) => first == seg,
        None => seg.starts_with(head),
    }
}

/// Candidates by first segment.
#[derive(Clone, Debug, Default)]
pub(crate) struct SegmentIndex {
    /// Candidate lists; `lists[other]` is for names whose segment no pattern
    /// names explicitly.
    lists: Vec<Box<[u32]>>,
    by_segment: NameMap<usize>,
    other: usize,
}

impl SegmentIndex {
    /// `items`: (entry, its patterns; `None` = matches any name), in the order
    /// candidates must be tried.
    pub(crate) fn build(items: &[(u32, Option<&[Glob]>)]) -> Self {
        let mut segments: Vec<&str> = items
            .iter()
            .filter_map(|(_, globs)| *globs)
            .flatten()
            .filter_map(|g| head(g).split_once(':').map(|(s, _)| s))
            .collect();
        segments.sort_unstable();
        segments.dedup();
        let mut lists = Vec::with_capacity(segments.len() + 1);
        let mut by_segment = NameMap::default();
        for seg in segments {
            let list = items
                .iter()
                .filter(|(_, globs)| globs.is_none_or(|gs| gs.iter().any(|g| may_match(g, seg))))
                .map(|&(i, _)| i)
                .collect();
            by_segment.insert(Box::from(seg), lists.len());
            lists.push(list);
        }
        let other = lists.len();
        lists.push(
            items
                .iter()
                .filter(|(_, globs)| {
                    globs.is_none_or(|gs| gs.iter().any(|g| !head(g).contains(':')))
                })
                .map(|&(i, _)| i)
                .collect(),
        );
        Self {
            lists,
            by_segment,
            other,
        }
    }

    /// Which list holds the candidates for `name`.
    #[inline]
    pub(crate) fn slot(&self, name: &str) -> usize {
        self.by_segment
            .get(segment(name))
            .copied()
            .unwrap_or(self.other)
    }

    /// The candidates for `name`, in order.
    #[inline]
    pub(crate) fn get(&self, name: &str) -> &[u32] {
        self.lists.get(self.slot(name)).map_or(&[], |l| l)
    }

    /// Every candidate list, by slot.
    pub(crate) fn lists(&self) -> impl Iterator<Item = &[u32]> {
        self.lists.iter().map(|l| &**l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> Glob {
        Glob::parse(s).expect("glob")
    }

    #[test]
    fn candidates_are_a_superset_in_order() {
        let crm = [g("crm:*")];
        let contacts = [g("crm:contacts:read")];
        let any = [g("*:read")];
        let cr = [g("cr*")];
        let hr = [g("hr:*"), g("crm:deals:*")];
        let items: Vec<(u32, Option<&[Glob]>)> = vec![
            (0, Some(&crm)),
            (1, None),
            (2, Some(&contacts)),
            (3, Some(&any)),
            (4, Some(&cr)),
            (5, Some(&hr)),
        ];
        let index = SegmentIndex::build(&items);
        assert_eq!(index.get("crm:contacts:read"), [0, 1, 2, 3, 4, 5]);
        assert_eq!(index.get("hr:payroll"), [1, 3, 5]);
        assert_eq!(
            index.get("billing:read"),
            [1, 3, 4],
            "unknown segment: every head without ':'"
        );
        assert_eq!(index.get("crm"), [0, 1, 2, 3, 4, 5]);
        // Exhaustive check against plain matching on a few names.
        for name in [
            "crm:contacts:read",
            "crm:x",
            "hr:a",
            "crx:read",
            "cr",
            "zzz",
            "",
        ] {
            let list = index.get(name);
            for (i, globs) in &items {
                let matches = globs.is_none_or(|gs| gs.iter().any(|g| g.matches(name)));
                assert!(!matches || list.contains(i), "{name}: {i} missing");
            }
        }
    }

    #[test]
    fn fx_hash_distinguishes_names() {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let b = BuildHasherDefault::<FxHasher>::default();
        let names = [
            "crm:contacts:search",
            "crm:contacts:searcH",
            "a",
            "b",
            "",
            "ab",
            "ba",
        ];
        let mut hashes: Vec<u64> = names.iter().map(|n| b.hash_one(n)).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), names.len());
    }
}
