//! Verifying a trail against its digests (`custody verify`; the procedure is
//! `docs/verify.md`'s, step by step):
//!
//! 1. List the sink: audit files (`*.parquet`), digests (`digests/**.json`) and
//!    their signatures (`<digest>.sig`).
//! 2. Each digest: its signature must verify with the trusted key its
//!    `key_fingerprint` names; it must parse, be of a known version, and be stored
//!    under the key its own fields give. Only digests that pass are trusted.
//! 3. Chains (instance, spool id): every trusted digest either links to a previous
//!    digest — which must be there, with the hash and signature the link names,
//!    and linked from no other digest — or says why the chain starts. A chain whose
//!    newest digest is not a shutdown digest and ended more than one interval
//!    before `to` is unclosed.
//! 4. Files: every file a trusted digest lists must be there, under its key, with
//!    its SHA-256 — unless a trusted compaction record (signed like a digest, under
//!    `compactions/`) replaced exactly that file: then the record's output must be
//!    there instead, and every file a record replaced must be one a digest (or an
//!    earlier record) lists. Every audit file on the sink must be listed by a trusted
//!    digest or record, except the files of a running chain's current period (after
//!    its newest digest, when that is not a shutdown digest): those are pending.
//! 5. Rows: the `row_seq` values of a chain's files (schema v7) are 1, 2, … with no
//!    number missing and none twice (from the lowest one when `from` is given).

use super::compaction::{COMPACTION_PREFIX, Compaction};
use super::keys::PublicKey;
use super::{Digest, FileEntry, Kind, PREFIX, SIGNATURE_SUFFIX, signed};
use crate::read::now_micros;
use crate::ship::{ShipError, Shipper};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// What to check.
#[derive(Clone, Debug)]
pub struct Options {
    /// The keys digests may be signed with (several across a rotation).
    pub keys: Vec<PublicKey>,
    /// Check files whose hour partition starts at or after this (µs since the epoch).
    pub from: Option<i64>,
    /// ... and before this; also the time chains are judged unclosed at. `None`: now.
    pub to: Option<i64>,
    /// `audit.digests.interval` of the writers.
    pub interval: Duration,
}

/// One thing wrong with the trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What (see `docs/verify.md`): `file_missing`, `file_moved`, `file_modified`,
    /// `file_not_covered`, `digest_unsigned`, `digest_bad_signature`,
    /// `digest_unknown_key`, `digest_unreadable`, `digest_misplaced`,
    /// `digest_missing`, `digest_modified`, `chain_fork`, `chain_break`,
    /// `chain_unclosed`, `policy_missing`, `policy_modified`, `row_seq_hole`,
    /// `row_seq_duplicate`, and for compaction records the `compaction_` versions of
    /// the digest kinds plus `compaction_inconsistent`, `compaction_input_unlisted`,
    /// `compaction_input_mismatch` and `compaction_unfinished`.
    pub kind: &'static str,
    /// The object it is about.
    pub key: String,
    /// The details.
    pub detail: String,
}

/// The outcome.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Audit files checked against a digest.
    pub files: u64,
    /// Rows in them (as the digests say).
    pub rows: u64,
    /// Files after their chain's newest digest (not yet covered).
    pub files_pending: u64,
    /// Files a compaction replaced (their rows are counted in its output).
    pub files_compacted: u64,
    /// Compaction records read.
    pub compactions: u64,
    /// Policy files checked against a digest (digest version 2).
    pub policies: u64,
    /// Digests read.
    pub digests: u64,
    /// Chains (instance and spool).
    pub chains: u64,
    /// Digest periods covered, summed over the chains (seconds).
    pub period_seconds: f64,
    /// Everything wrong, in a stable order.
    pub findings: Vec<Finding>,
}

struct Loaded {
    digest: Digest,
}

/// Verifies the trail on `sink`.
pub async fn verify(sink: &Shipper, options: &Options) -> Result<Report, ShipError> {
    let mut report = Report::default();
    let mut find = |kind, key: &str, detail: String| {
        report.findings.push(Finding {
            kind,
            key: key.to_owned(),
            detail,
        });
    };
    let listing = sink.list("").await?;
    let stored: HashSet<&str> = listing.iter().map(String::as_str).collect();
    let files: Vec<&str> = listing
        .iter()
        .map(String::as_str)
        .filter(|k| !k.starts_with(PREFIX) && k.ends_with(".parquet"))
        .collect();
    let digest_keys: Vec<&str> = listing
        .iter()
        .map(String::as_str)
        .filter(|k| k.starts_with(&format!("{PREFIX}/")) && k.ends_with(".json"))
        .collect();

    // 2. Digests.
    let mut all: HashMap<String, (String, String)> = HashMap::new();
    let mut trusted: Vec<Loaded> = Vec::new();
    for &key in &digest_keys {
        report.digests += 1;
        let signed = stored.contains(format!("{key}{SIGNATURE_SUFFIX}").as_str());
        let read = signed::read::<Digest>(sink, key, signed, &options.keys).await?;
        all.insert(key.to_owned(), (read.sha256, read.signature));
        match read.trusted {
            Ok(digest) => trusted.push(Loaded { digest }),
            Err((kind, detail)) => find(kind, key, detail),
        }
    }

    // 2b. Compaction records, trusted like digests.
    let mut records: Vec<Compaction> = Vec::new();
    for key in listing
        .iter()
        .map(String::as_str)
        .filter(|k| k.starts_with(&format!("{COMPACTION_PREFIX}/")) && k.ends_with(".json"))
    {
        report.compactions += 1;
        let signed = stored.contains(format!("{key}{SIGNATURE_SUFFIX}").as_str());
        match signed::read::<Compaction>(sink, key, signed, &options.keys)
            .await?
            .trusted
        {
            Ok(record) => match record.inconsistency() {
                None => records.push(record),
                Some(detail) => find("compaction_inconsistent", key, detail),
            },
            Err((kind, detail)) => find(kind, key, detail),
        }
    }

    // 3. Chains.
    let mut chains: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, l) in trusted.iter().enumerate() {
        chains
            .entry((l.digest.instance.clone(), l.digest.spool_id.clone()))
            .or_default()
            .push(i);
    }
    report.chains = chains.len() as u64;
    let mut linked: HashMap<&str, &str> = HashMap::new();
    for l in &trusted {
        let key = l.digest.key();
        match (&l.digest.previous, &l.digest.chain_start) {
            (Some(link), _) => {
                match all.get(&link.key) {
                    None => find(
                        "digest_missing",
                        &link.key,
                        format!("named as the previous digest by {key}"),
                    ),
                    Some((sha, sig)) if *sha != link.sha256 || *sig != link.signature => find(
                        "digest_modified",
                        &link.key,
                        format!("{key} names it with another hash or signature than it has"),
                    ),
                    Some(_) => {}
                }
                if let Some(other) = linked.insert(link.key.as_str(), l.digest.start_id.as_str())
                    && other != l.digest.start_id
                {
                    find(
                        "chain_fork",
                        &link.key,
                        format!(
                            "named as the previous digest by more than one digest ({key} among them)"
                        ),
                    );
                }
            }
            (None, Some(_)) => {}
            (None, None) => find(
                "chain_break",
                &key,
                "links to no previous digest and gives no reason".to_owned(),
            ),
        }
    }
    let to = options.to.unwrap_or_else(now_micros);
    let interval = i64::try_from(options.interval.as_micros()).unwrap_or(i64::MAX);
    let mut newest: HashMap<(String, String), &Loaded> = HashMap::new();
    for (chain, members) in &chains {
        let last = members.iter().map(|&i| &trusted[i]).max_by(|a, b| {
            (&a.digest.start_id, a.digest.sequence).cmp(&(&b.digest.start_id, b.digest.sequence))
        });
        for &i in members {
            let d = &trusted[i].digest;
            if let (Some(s), Some(e)) = (micros(&d.period_start), micros(&d.period_end)) {
                report.period_seconds += (e - s) as f64 / 1e6;
            }
        }
        if let Some(last) = last {
            let ended = micros(&last.digest.period_end).unwrap_or(0);
            if last.digest.kind != Kind::Shutdown && ended < to.saturating_sub(interval) {
                find(
                    "chain_unclosed",
                    &last.digest.key(),
                    format!(
                        "the newest digest of {}-{} is not a shutdown digest and ended at {} (more than one interval before {})",
                        chain.0,
                        chain.1,
                        last.digest.period_end,
                        crate::read::rfc3339(to)
                    ),
                );
            }
            newest.insert(chain.clone(), last);
        }
    }

    // 4. Files.
    let in_range = |key: &str| {
        let Some(hour) = partition_micros(key) else {
            return true;
        };
        options.from.is_none_or(|f| hour + 3_600_000_000 > f) && hour < to
    };
    let mut by_name: HashMap<&str, Vec<&str>> = HashMap::new();
    for &f in &files {
        by_name.entry(name_of(f)).or_default().push(f);
    }
    let mut covered: HashSet<&str> = HashSet::new();
    // 5. The row numbers read from each chain's files; `None` once a file of the
    // chain has none (written before schema v7).
    let mut numbers: BTreeMap<(String, String), Option<Vec<i64>>> = BTreeMap::new();
    let mut note_numbers = |chain: Option<(String, String)>, bytes: &bytes::Bytes| {
        if let Some(chain) = chain {
            let seqs = row_seqs(bytes);
            let entry = numbers.entry(chain).or_insert_with(|| Some(Vec::new()));
            match (entry.as_mut(), seqs) {
                (Some(all), Some(seqs)) => all.extend(seqs),
                _ => *entry = None,
            }
        }
    };
    // Every file listing: by a trusted digest, or as a trusted compaction's output.
    let listings: Vec<(&FileEntry, (String, String), String)> = trusted
        .iter()
        .flat_map(|l| {
            let chain = (l.digest.instance.clone(), l.digest.spool_id.clone());
            l.digest
                .files
                .iter()
                .map(move |f| (f, chain.clone(), l.digest.key()))
        })
        .chain(
            records
                .iter()
                .map(|r| (&r.output, (r.instance.clone(), r.spool_id.clone()), r.key())),
        )
        .collect();
    // 4a. What compactions replaced: each input must be a listed file, as listed.
    let mut replaced: HashMap<&str, (&Compaction, &FileEntry)> = HashMap::new();
    for r in &records {
        for input in &r.inputs {
            replaced.insert(input.key.as_str(), (r, input));
            if !listings.iter().any(|(f, _, _)| f.key == input.key) {
                find(
                    "compaction_input_unlisted",
                    &input.key,
                    format!(
                        "{} replaced it, but no trusted digest or compaction lists it",
                        r.key()
                    ),
                );
            }
        }
    }
    for (entry, chain, by) in &listings {
        covered.insert(entry.key.as_str());
        if !in_range(&entry.key) {
            continue;
        }
        if let Some((r, input)) = replaced.get(entry.key.as_str()) {
            if input != entry {
                find(
                    "compaction_input_mismatch",
                    &entry.key,
                    format!(
                        "{} replaced it as {}, {by} lists it as {}",
                        r.key(),
                        describe(input),
                        describe(entry)
                    ),
                );
            } else if stored.contains(entry.key.as_str()) {
                find(
                    "compaction_unfinished",
                    &entry.key,
                    format!(
                        "{} replaced it, yet it is still stored (its rows are there twice until `custody compact` runs again)",
                        r.key()
                    ),
                );
            }
            report.files_compacted += 1;
            continue;
        }
        report.files += 1;
        report.rows += entry.rows;
        if !stored.contains(entry.key.as_str()) {
            match by_name.get(name_of(&entry.key)) {
                Some(elsewhere) => find(
                    "file_moved",
                    &entry.key,
                    format!(
                        "not there; a file of its name is at {}",
                        elsewhere.join(", ")
                    ),
                ),
                None => find("file_missing", &entry.key, format!("listed by {by}")),
            }
            continue;
        }
        match fetch_listed(sink, &entry.key, &entry.sha256, entry.bytes, by).await? {
            Ok(bytes) => note_numbers(Some(chain.clone()), &bytes),
            Err(detail) => find("file_modified", &entry.key, detail),
        }
    }
    // 4b. Policy files (digest version 2): each listed one there, as listed. A
    // policy is content-addressed, so several digests may list the same one.
    let mut policies_checked: HashSet<&str> = HashSet::new();
    for l in &trusted {
        for entry in &l.digest.policies {
            if !policies_checked.insert(entry.key.as_str()) {
                continue;
            }
            report.policies += 1;
            if !stored.contains(entry.key.as_str()) {
                find(
                    "policy_missing",
                    &entry.key,
                    format!("listed by {}", l.digest.key()),
                );
                continue;
            }
            if let Err(detail) = fetch_listed(
                sink,
                &entry.key,
                &entry.sha256,
                entry.bytes,
                &l.digest.key(),
            )
            .await?
            {
                find("policy_modified", &entry.key, detail);
            }
        }
    }
    for &f in &files {
        if covered.contains(f) || !in_range(f) {
            continue;
        }
        let running = chain_of_file(f)
            .and_then(|c| newest.get(&c))
            .is_some_and(|l| l.digest.kind != Kind::Shutdown);
        if running {
            report.files_pending += 1;
            let bytes = sink.get(f).await?;
            note_numbers(chain_of_file(f), &bytes);
        } else {
            find(
                "file_not_covered",
                f,
                "no trusted digest lists it".to_owned(),
            );
        }
    }
    for ((instance, spool), seqs) in numbers {
        let Some(mut seqs) = seqs else { continue };
        seqs.sort_unstable();
        let chain = format!("{instance}-{spool}");
        let mut expected = if options.from.is_some() {
            seqs.first().copied().unwrap_or(1)
        } else {
            1
        };
        for (i, &n) in seqs.iter().enumerate() {
            if n > expected {
                find(
                    "row_seq_hole",
                    &chain,
                    format!("rows {expected}..={} of the chain are in no file", n - 1),
                );
            } else if n < expected && i > 0 {
                find(
                    "row_seq_duplicate",
                    &chain,
                    format!("row {n} of the chain is in more than one row"),
                );
            }
            expected = expected.max(n + 1);
        }
    }
    report
        .findings
        .sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
    Ok(report)
}

/// The stored object at `key`, which `lister` (a digest's or compaction's key) lists with `sha256` and `bytes`:
/// `Ok` with its bytes when they hash as listed, else `Err` with what differs.
async fn fetch_listed(
    sink: &Shipper,
    key: &str,
    sha256: &str,
    bytes: u64,
    lister: &str,
) -> Result<Result<bytes::Bytes, String>, ShipError> {
    let stored = sink.get(key).await?;
    let sha = super::sha256_hex(&stored);
    Ok(if sha == sha256 {
        Ok(stored)
    } else {
        Err(format!(
            "SHA-256 {sha} ({} bytes), {lister} lists {sha256} ({bytes} bytes)",
            stored.len()
        ))
    })
}

/// A file entry's facts, for a finding.
fn describe(f: &FileEntry) -> String {
    format!(
        "SHA-256 {}, {} bytes, {} rows, row_seq {}..={}",
        f.sha256, f.bytes, f.rows, f.row_seq_min, f.row_seq_max
    )
}

/// The `row_seq` column of a Parquet file; `None` when it has none (a file written
/// before schema v7) or cannot be read.
fn row_seqs(bytes: &bytes::Bytes) -> Option<Vec<i64>> {
    use arrow_array::{Array as _, Int64Array};
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes.clone()).ok()?;
    let schema = builder.parquet_schema();
    let index = schema
        .columns()
        .iter()
        .position(|c| c.path().string() == "row_seq")?;
    let mask = ProjectionMask::leaves(schema, [index]);
    let reader = builder.with_projection(mask).build().ok()?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.ok()?;
        let column = batch.column(0).as_any().downcast_ref::<Int64Array>()?;
        if column.null_count() > 0 {
            return None;
        }
        out.extend(column.values().iter().copied());
    }
    Some(out)
}

fn name_of(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// `(instance, spool id)` of `<instance>-<spool id>-<segment>.parquet`.
fn chain_of_file(key: &str) -> Option<(String, String)> {
    let stem = name_of(key).strip_suffix(".parquet")?;
    let mut parts = stem.rsplitn(3, '-');
    let _segment = parts.next()?;
    let spool = parts.next()?;
    let instance = parts.next()?;
    Some((instance.to_owned(), spool.to_owned()))
}

/// The start of the hour partition `dt=YYYY-MM-DD/hour=HH/...` names (µs).
fn partition_micros(key: &str) -> Option<i64> {
    let mut parts = key.split('/');
    let date = parts.next()?.strip_prefix("dt=")?;
    let hour: i64 = parts.next()?.strip_prefix("hour=")?.parse().ok()?;
    micros(&format!("{date}T00:00:00Z")).map(|day| day + hour * 3_600_000_000)
}

/// An RFC 3339 time in µs since the epoch.
pub fn micros(text: &str) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_partitions_parse() {
        assert_eq!(
            chain_of_file("dt=2026-12-05/hour=07/my-pod-0199abc-00000012.parquet"),
            Some(("my-pod".to_owned(), "0199abc".to_owned()))
        );
        assert_eq!(
            partition_micros("dt=1970-01-02/hour=01/x.parquet"),
            Some((24 + 1) * 3_600_000_000)
        );
        assert_eq!(micros("1970-01-01T00:00:01.5Z"), Some(1_500_000));
    }
}
