//! Compaction records: signed statements that some audit files of one chain and
//! one hour partition were merged into one sorted file (`custody compact`), so a
//! compacted trail still verifies and a row lost in the merge is still found.
//!
//! A record lives beside the digests' tree, under the key its output gives:
//! `compactions/dt=…/hour=…/<instance>-<spool id>-c<id>.json`, its Ed25519
//! signature at `<key>.sig` (base64), signed like a digest. The output file is
//! `dt=…/hour=…/<instance>-<spool id>-c<id>.parquet`, where `<id>` is the first 16
//! hex digits of the SHA-256 of the inputs' keys and hashes ([`Compaction::id_of`]):
//! compacting the same files again gives the same names.

use super::{FileEntry, sha256_hex};
use serde::{Deserialize, Serialize};

/// The version of the compaction record format.
pub const COMPACTION_VERSION: u32 = 1;
/// Where compaction records live on the sink.
pub const COMPACTION_PREFIX: &str = "compactions";
/// The columns a compacted file's rows are sorted by, in order (nulls last).
pub const SORTING_COLUMNS: [&str; 2] = ["session_id", "event_time"];

/// One compaction: the files of one chain in one hour partition it replaced, and
/// the file that holds their rows now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compaction {
    /// [`COMPACTION_VERSION`].
    pub compaction_version: u32,
    /// The instance (pod) whose files were merged.
    pub instance: String,
    /// Their spool: with `instance`, the chain whose `row_seq` numbers they carry.
    pub spool_id: String,
    /// The hour partition, `dt=YYYY-MM-DD/hour=HH`.
    pub partition: String,
    /// When the merge was made (RFC 3339, UTC).
    pub created: String,
    /// The fingerprint of the key that signed it.
    pub key_fingerprint: String,
    /// The output's sort order ([`SORTING_COLUMNS`]).
    pub sorting_columns: Vec<String>,
    /// The files replaced, as a digest (or an earlier compaction record) lists them.
    pub inputs: Vec<FileEntry>,
    /// The file that replaces them.
    pub output: FileEntry,
}

impl Compaction {
    /// The id of a merge of `inputs`: the first 16 hex digits of the SHA-256 of
    /// their `key sha256` lines, sorted by key.
    pub fn id_of(inputs: &[FileEntry]) -> String {
        let mut lines: Vec<String> = inputs
            .iter()
            .map(|f| format!("{} {}\n", f.key, f.sha256))
            .collect();
        lines.sort();
        sha256_hex(lines.concat().as_bytes())[..16].to_owned()
    }

    /// The output's key for a merge with `id` of `instance`'s and `spool_id`'s files
    /// in `partition`.
    pub fn output_key(partition: &str, instance: &str, spool_id: &str, id: &str) -> String {
        format!("{partition}/{instance}-{spool_id}-c{id}.parquet")
    }

    /// The record's key on the sink: derived from its output's.
    pub fn key(&self) -> String {
        let stem = self
            .output
            .key
            .strip_suffix(".parquet")
            .unwrap_or(&self.output.key);
        format!("{COMPACTION_PREFIX}/{stem}.json")
    }

    /// What is wrong with the record's own fields, if anything: its output must be
    /// named for its inputs, and every input must lie in its partition.
    pub fn inconsistency(&self) -> Option<String> {
        let expected = Self::output_key(
            &self.partition,
            &self.instance,
            &self.spool_id,
            &Self::id_of(&self.inputs),
        );
        if self.output.key != expected {
            return Some(format!(
                "its output is {}, its inputs name {expected}",
                self.output.key
            ));
        }
        if let Some(stray) = self
            .inputs
            .iter()
            .find(|f| !f.key.starts_with(&format!("{}/", self.partition)))
        {
            return Some(format!(
                "input {} is outside its partition {}",
                stray.key, self.partition
            ));
        }
        let rows: u64 = self.inputs.iter().map(|f| f.rows).sum();
        if rows != self.output.rows {
            return Some(format!(
                "its inputs hold {rows} rows, its output {}",
                self.output.rows
            ));
        }
        None
    }

    /// The stored bytes: pretty JSON and a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// Whether `key` is a compacted file's name (`…-c<16 hex>.parquet`).
pub fn is_output_key(key: &str) -> bool {
    key.strip_suffix(".parquet")
        .and_then(|stem| stem.rsplit('-').next())
        .and_then(|last| last.strip_prefix('c'))
        .is_some_and(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, sha: &str, rows: u64) -> FileEntry {
        FileEntry {
            key: key.to_owned(),
            sha256: sha.to_owned(),
            bytes: 10,
            rows,
            event_time_min: String::new(),
            event_time_max: String::new(),
            row_seq_min: 1,
            row_seq_max: 1,
        }
    }

    #[test]
    fn names_follow_from_the_inputs() {
        let p = "dt=2026-12-06/hour=07";
        let a = entry(&format!("{p}/pod-s1-00000001.parquet"), "aa", 2);
        let b = entry(&format!("{p}/pod-s1-00000002.parquet"), "bb", 3);
        let id = Compaction::id_of(&[a.clone(), b.clone()]);
        assert_eq!(id, Compaction::id_of(&[b.clone(), a.clone()]), "order-free");
        assert_ne!(
            id,
            Compaction::id_of(&[a.clone(), entry(&b.key, "bc", 3)]),
            "a different file is a different merge"
        );
        let out_key = Compaction::output_key(p, "pod", "s1", &id);
        assert!(is_output_key(&out_key), "{out_key}");
        assert!(!is_output_key(&a.key));
        assert!(!is_output_key("dt=x/hour=01/pod-s1-cafe.parquet"));
        let record = Compaction {
            compaction_version: COMPACTION_VERSION,
            instance: "pod".into(),
            spool_id: "s1".into(),
            partition: p.into(),
            created: String::new(),
            key_fingerprint: String::new(),
            sorting_columns: vec![],
            inputs: vec![a.clone(), b.clone()],
            output: entry(&out_key, "cc", 5),
        };
        assert_eq!(record.key(), format!("compactions/{p}/pod-s1-c{id}.json"));
        assert_eq!(record.inconsistency(), None);
        let mut short = record.clone();
        short.output.rows = 4;
        assert!(short.inconsistency().expect("present").contains("5 rows"));
        let mut renamed = record;
        renamed.inputs[1] = entry(&b.key, "bd", 3);
        assert!(
            renamed
                .inconsistency()
                .expect("present")
                .contains("inputs name")
        );
    }
}
