//! `custody compact`: merging one hour partition's small files into few large ones
//! sorted by `(session_id, event_time)`, without losing tamper evidence
//! (`docs/lakehouse.md`, "Compaction"; the record format is `docs/verify.md`'s).
//!
//! One run, for one partition `dt=…/hour=…`:
//! 1. **Lock** the partition (`compactions/<partition>/LOCK`, a conditional create;
//!    one older than [`Options::lock_ttl`] is taken over), so two runs never merge
//!    the same files.
//! 2. **Finish** what an interrupted run left: a trusted record whose output is
//!    stored as recorded, yet some inputs are still there — those inputs are removed.
//!    An output-named file no record names (a run that stopped before its record)
//!    is removed: its rows are still in its inputs.
//! 3. **Choose** the inputs: the partition's files a trusted digest lists (digests
//!    of the partition's day and [`Options::digest_days`] after), or a trusted
//!    record names as its output, grouped by chain (instance and spool). Files no
//!    digest lists yet (a writer's current period) are left for a later run.
//! 4. **Merge** each chain's files, up to [`Options::max_rows`] rows per output:
//!    each input's SHA-256 checked against its listing first (a modified file is
//!    refused, never laundered into a signed output), rows read into the current
//!    schema, sorted, encoded; the output stored **first**, then the signed record
//!    (`compactions/<partition>/<instance>-<spool>-c<id>.json` and `.sig`), and only
//!    then the inputs removed. A reader listing the partition meanwhile sees every
//!    row, some twice for a moment; never none.
//!
//! Writers are never waited for: they only add files, and a file enters a merge
//! only once a digest lists it.

mod merge;

use crate::digest::compaction::{
    COMPACTION_PREFIX, COMPACTION_VERSION, Compaction, SORTING_COLUMNS,
};
use crate::digest::signed;
use crate::digest::verify::micros;
use crate::digest::{Digest, FileEntry, PREFIX, PublicKey, SIGNATURE_SUFFIX, SigningKey, b64};
use crate::read::now_micros;
use crate::ship::{ShipError, Shipper};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// What to compact, and how.
#[derive(Clone, Debug)]
pub struct Options {
    /// The partition, `dt=YYYY-MM-DD/hour=HH` ([`parse_partition`]).
    pub partition: String,
    /// The key records are signed with (the writers' digest key).
    pub key: Arc<SigningKey>,
    /// The keys digests and records may be signed with (the signing key's own
    /// public key is always among them).
    pub trusted: Vec<PublicKey>,
    /// Digests are read from the partition's day and this many days after.
    pub digest_days: u32,
    /// Rows per output file at most (a chain's hour with more gets several).
    pub max_rows: u64,
    /// A lock older than this is a dead run's, and is taken over.
    pub lock_ttl: Duration,
    /// Plan and check only: nothing is written or removed.
    pub dry_run: bool,
}

/// What a run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// The partition.
    pub partition: String,
    /// Audit files in the partition before.
    pub files_before: u64,
    /// Audit files in the partition after (with `dry_run`, as before).
    pub files_after: u64,
    /// The merges made (or, with `dry_run`, planned).
    pub merges: Vec<Merge>,
    /// Interrupted merges finished (their remaining inputs removed).
    pub finished: u64,
    /// Output-named files no record names, removed.
    pub orphans_removed: u64,
    /// Files left as they are, and why.
    pub left: Vec<Left>,
    /// Files that are not as their listing says: never merged. Any makes the run
    /// fail (`custody verify` reports them too).
    pub refused: Vec<Left>,
    /// Nothing was written or removed.
    pub dry_run: bool,
}

/// One merge.
#[derive(Clone, Debug, Serialize)]
pub struct Merge {
    /// The output's key.
    pub output: String,
    /// Files merged.
    pub inputs: u64,
    /// Rows in them.
    pub rows: u64,
    /// Their bytes.
    pub bytes_before: u64,
    /// The output's bytes.
    pub bytes_after: u64,
}

/// A file a run left alone.
#[derive(Clone, Debug, Serialize)]
pub struct Left {
    /// Its key.
    pub key: String,
    /// Why.
    pub reason: String,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    /// The sink failed.
    #[error(transparent)]
    Sink(#[from] ShipError),
    /// Another run holds the partition.
    #[error("{0}")]
    Locked(String),
    /// A file could not be read or merged.
    #[error("{key}: {detail}")]
    File {
        /// The file.
        key: String,
        /// What went wrong.
        detail: String,
    },
}

/// `dt=YYYY-MM-DD/hour=HH` (a trailing `/` allowed), checked and normalised.
pub fn parse_partition(text: &str) -> Result<String, String> {
    let bad = || format!("{text:?}: expected dt=YYYY-MM-DD/hour=HH");
    let mut parts = text.trim_matches('/').split('/');
    let (Some(dt), Some(hour), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let date = dt.strip_prefix("dt=").ok_or_else(bad)?;
    let hour: u8 = hour
        .strip_prefix("hour=")
        .and_then(|h| (h.len() == 2).then_some(h))
        .and_then(|h| h.parse().ok())
        .filter(|h| *h < 24)
        .ok_or_else(bad)?;
    if date.len() != 10 || micros(&format!("{date}T00:00:00Z")).is_none() {
        return Err(bad());
    }
    Ok(format!("dt={date}/hour={hour:02}"))
}

/// The partitions of the `n` whole hours before the one `now` (µs) is in, oldest
/// first.
pub fn hours_before(now: i64, n: u32) -> Vec<String> {
    let hour = now.div_euclid(3_600_000_000);
    (1..=i64::from(n))
        .rev()
        .map(|back| {
            let dir = crate::Partition::of((hour - back) * 3_600_000_000).relative_dir();
            dir.to_string_lossy().replace('\\', "/")
        })
        .collect()
}

/// Compacts `options.partition` on `sink`.
pub async fn compact(sink: &Shipper, options: &Options) -> Result<Report, CompactError> {
    let mut report = Report {
        partition: options.partition.clone(),
        dry_run: options.dry_run,
        ..Report::default()
    };
    let lock = if options.dry_run {
        None
    } else {
        Some(take_lock(sink, &options.partition, options.lock_ttl).await?)
    };
    let result = run(sink, options, &mut report).await;
    if let Some(lock) = lock
        && let Err(e) = sink.delete(&lock).await
    {
        tracing::warn!(key = %lock, error = %e, "could not remove the compaction lock");
    }
    result.map(|()| report)
}

async fn run(sink: &Shipper, o: &Options, report: &mut Report) -> Result<(), CompactError> {
    let partition = &o.partition;
    let mut files: BTreeSet<String> = BTreeSet::new();
    for key in sink.list(partition).await? {
        if key.ends_with(".parquet") {
            files.insert(key);
        }
    }
    report.files_before = files.len() as u64;
    let record_dir = format!("{COMPACTION_PREFIX}/{partition}");
    let record_keys: HashSet<String> = sink.list(&record_dir).await?.into_iter().collect();

    // 2. Trusted records; what they replaced; interrupted merges finished.
    let mut records: Vec<Compaction> = Vec::new();
    for key in record_keys.iter().filter(|k| k.ends_with(".json")) {
        let signed = record_keys.contains(&format!("{key}{SIGNATURE_SUFFIX}"));
        match signed::read::<Compaction>(sink, key, signed, &o.trusted)
            .await?
            .trusted
        {
            Ok(r) if r.inconsistency().is_none() => records.push(r),
            Ok(r) => report.left.push(Left {
                key: key.clone(),
                reason: r.inconsistency().unwrap_or_default(),
            }),
            Err((kind, detail)) => report.left.push(Left {
                key: key.clone(),
                reason: format!("{kind}: {detail}"),
            }),
        }
    }
    let mut replaced: HashSet<String> = HashSet::new();
    for r in &records {
        let waiting: Vec<&FileEntry> = r.inputs.iter().filter(|f| files.contains(&f.key)).collect();
        replaced.extend(r.inputs.iter().map(|f| f.key.clone()));
        if waiting.is_empty() {
            continue;
        }
        let output_ok =
            files.contains(&r.output.key) && fetch_checked(sink, &r.output).await?.is_ok();
        if !output_ok {
            for f in waiting {
                report.refused.push(Left {
                    key: f.key.clone(),
                    reason: format!(
                        "{} replaced it, but its output {} is not stored as recorded",
                        r.key(),
                        r.output.key
                    ),
                });
            }
            continue;
        }
        for f in waiting {
            if fetch_checked(sink, f).await?.is_err() {
                report.refused.push(Left {
                    key: f.key.clone(),
                    reason: format!("not the file {} replaced (another SHA-256)", r.key()),
                });
                continue;
            }
            if !o.dry_run {
                sink.delete(&f.key).await?;
                files.remove(&f.key);
            }
        }
        report.finished += 1;
    }
    let recorded_outputs: HashSet<String> = record_keys
        .iter()
        .filter_map(|k| k.strip_suffix(".json"))
        .filter_map(|k| k.strip_prefix(&format!("{COMPACTION_PREFIX}/")))
        .map(|stem| format!("{stem}.parquet"))
        .collect();
    let orphans: Vec<String> = files
        .iter()
        .filter(|k| crate::digest::compaction::is_output_key(k) && !recorded_outputs.contains(*k))
        .cloned()
        .collect();
    for key in orphans {
        if !o.dry_run {
            sink.delete(&key).await?;
            files.remove(&key);
        }
        report.orphans_removed += 1;
    }

    // 3. What lists each file: records (their outputs), and digests of the
    // partition's day and after — per chain, only its own digests, oldest first,
    // until every file of the chain here is found.
    let mut listed: HashMap<String, (FileEntry, (String, String))> = HashMap::new();
    for r in &records {
        if files.contains(&r.output.key) && !replaced.contains(&r.output.key) {
            listed.insert(
                r.output.key.clone(),
                (r.output.clone(), (r.instance.clone(), r.spool_id.clone())),
            );
        }
    }
    let mut wanted: BTreeMap<String, HashSet<&str>> = BTreeMap::new();
    for key in &files {
        if listed.contains_key(key) || replaced.contains(key) {
            continue;
        }
        if let Some(prefix) = chain_prefix(key) {
            wanted.entry(prefix).or_default().insert(key.as_str());
        }
    }
    let day = &partition[3..13];
    let first_day = micros(&format!("{day}T00:00:00Z")).unwrap_or(0);
    let mut digest_keys: Vec<String> = Vec::new();
    if !wanted.is_empty() {
        for n in 0..=i64::from(o.digest_days) {
            let date = &crate::read::rfc3339(first_day + n * 86_400_000_000)[..10];
            digest_keys.extend(sink.list(&format!("{PREFIX}/dt={date}")).await?);
        }
    }
    let stored_digests: HashSet<&str> = digest_keys.iter().map(String::as_str).collect();
    for (prefix, mut missing) in wanted {
        // Digest names sort by start (a time-ordered id), then sequence, within a day.
        let mut own: Vec<&String> = digest_keys
            .iter()
            .filter(|k| k.ends_with(".json"))
            .filter(|k| k.rsplit('/').next().is_some_and(|n| n.starts_with(&prefix)))
            .collect();
        own.sort_by_key(|k| (&k[..PREFIX.len() + 14], k.rsplit('/').next()));
        for key in own {
            if missing.is_empty() {
                break;
            }
            let signed = stored_digests.contains(format!("{key}{SIGNATURE_SUFFIX}").as_str());
            let Ok(digest) = signed::read::<Digest>(sink, key, signed, &o.trusted)
                .await?
                .trusted
            else {
                continue;
            };
            for f in digest.files {
                if missing.remove(f.key.as_str()) {
                    let chain = (digest.instance.clone(), digest.spool_id.clone());
                    listed.insert(f.key.clone(), (f, chain));
                }
            }
        }
    }

    // 4. Merge each chain's listed files.
    let mut chains: BTreeMap<(String, String), Vec<FileEntry>> = BTreeMap::new();
    for key in &files {
        if replaced.contains(key) {
            continue;
        }
        match listed.remove(key) {
            Some((entry, chain)) => chains.entry(chain).or_default().push(entry),
            None => report.left.push(Left {
                key: key.clone(),
                reason: "no trusted digest lists it yet".into(),
            }),
        }
    }
    for ((instance, spool_id), mut entries) in chains {
        entries.sort_by_key(|e| (e.row_seq_min, e.key.clone()));
        for group in groups(entries, o.max_rows) {
            if group.len() < 2 {
                continue;
            }
            merge_group(
                sink, o, report, &records, &instance, &spool_id, group, &mut files,
            )
            .await?;
        }
    }
    report.files_after = files.len() as u64;
    Ok(())
}

/// `<instance>-<spool id>-` of a pod's file `…/<instance>-<spool id>-<segment>.parquet`:
/// how its chain's digests are named.
fn chain_prefix(key: &str) -> Option<String> {
    let name = key.rsplit('/').next()?.strip_suffix(".parquet")?;
    let (chain, _segment) = name.rsplit_once('-')?;
    Some(format!("{chain}-"))
}

/// Runs of `entries` (in order) of at most `max_rows` rows together.
fn groups(entries: Vec<FileEntry>, max_rows: u64) -> Vec<Vec<FileEntry>> {
    let mut out: Vec<Vec<FileEntry>> = Vec::new();
    let mut rows = 0;
    for e in entries {
        match out.last_mut() {
            Some(group) if rows + e.rows <= max_rows => {
                rows += e.rows;
                group.push(e);
            }
            _ => {
                rows = e.rows;
                out.push(vec![e]);
            }
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
async fn merge_group(
    sink: &Shipper,
    o: &Options,
    report: &mut Report,
    records: &[Compaction],
    instance: &str,
    spool_id: &str,
    inputs: Vec<FileEntry>,
    files: &mut BTreeSet<String>,
) -> Result<(), CompactError> {
    let id = Compaction::id_of(&inputs);
    let output_key = Compaction::output_key(&o.partition, instance, spool_id, &id);
    if records.iter().any(|r| r.output.key == output_key) {
        for f in &inputs {
            report.refused.push(Left {
                key: f.key.clone(),
                reason: format!(
                    "already merged into {output_key}, which is not stored as recorded"
                ),
            });
        }
        return Ok(());
    }
    let mut batches = Vec::new();
    for f in &inputs {
        match fetch_checked(sink, f).await? {
            Ok(bytes) => batches.extend(merge::read(bytes).map_err(|e| CompactError::File {
                key: f.key.clone(),
                detail: e.to_string(),
            })?),
            Err(detail) => {
                report.refused.push(Left {
                    key: f.key.clone(),
                    reason: detail,
                });
                return Ok(());
            }
        }
    }
    let sorted = merge::sorted(&batches).map_err(|e| CompactError::File {
        key: output_key.clone(),
        detail: e.to_string(),
    })?;
    drop(batches);
    let (bytes, output) =
        merge::encode(&sorted, output_key.clone()).map_err(|e| CompactError::File {
            key: output_key.clone(),
            detail: e.to_string(),
        })?;
    drop(sorted);
    report.merges.push(Merge {
        output: output_key.clone(),
        inputs: inputs.len() as u64,
        rows: output.rows,
        bytes_before: inputs.iter().map(|f| f.bytes).sum(),
        bytes_after: output.bytes,
    });
    if o.dry_run {
        return Ok(());
    }
    put_replacing(sink, &output_key, bytes).await?;
    files.insert(output_key);
    let record = Compaction {
        compaction_version: COMPACTION_VERSION,
        instance: instance.to_owned(),
        spool_id: spool_id.to_owned(),
        partition: o.partition.clone(),
        created: crate::read::rfc3339(now_micros()),
        key_fingerprint: o.key.public().fingerprint().to_owned(),
        sorting_columns: SORTING_COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
        inputs,
        output,
    };
    let body = record.to_bytes();
    let signature = format!("{}\n", b64(&o.key.sign(&body)));
    let key = record.key();
    put_replacing(sink, &key, Bytes::from(body)).await?;
    put_replacing(
        sink,
        &format!("{key}{SIGNATURE_SUFFIX}"),
        Bytes::from(signature),
    )
    .await?;
    for f in &record.inputs {
        sink.delete(&f.key).await?;
        files.remove(&f.key);
    }
    tracing::info!(output = %record.output.key, inputs = record.inputs.len(), rows = record.output.rows, "files compacted");
    Ok(())
}

/// Stores `bytes` at `key`; what an interrupted run left there (under the lock,
/// nothing else writes these keys) is replaced.
async fn put_replacing(sink: &Shipper, key: &str, bytes: Bytes) -> Result<(), ShipError> {
    match sink.upload(key, bytes.clone()).await {
        Ok(_) => Ok(()),
        Err(ShipError::Conflict { .. }) => {
            sink.delete(key).await?;
            sink.upload(key, bytes).await.map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// The stored bytes of `entry`'s file: `Err` with what differs when its SHA-256
/// is not the listed one.
async fn fetch_checked(
    sink: &Shipper,
    entry: &FileEntry,
) -> Result<Result<Bytes, String>, ShipError> {
    let bytes = sink.get(&entry.key).await?;
    let sha = crate::digest::sha256_hex(&bytes);
    Ok(if sha == entry.sha256 {
        Ok(bytes)
    } else {
        Err(format!(
            "SHA-256 {sha} ({} bytes), listed as {} ({} bytes)",
            bytes.len(),
            entry.sha256,
            entry.bytes
        ))
    })
}

#[derive(Serialize, Deserialize)]
struct LockBody {
    run: String,
    host: String,
    since: String,
}

/// Takes the partition's lock: its key.
async fn take_lock(sink: &Shipper, partition: &str, ttl: Duration) -> Result<String, CompactError> {
    let key = format!("{COMPACTION_PREFIX}/{partition}/LOCK");
    let body = LockBody {
        run: uuid::Uuid::now_v7().simple().to_string(),
        host: std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".into()),
        since: crate::read::rfc3339(now_micros()),
    };
    let bytes = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    for attempt in 0..2 {
        match sink.upload(&key, bytes.clone()).await {
            Ok(_) => return Ok(key),
            Err(ShipError::Conflict { .. }) => {
                let held = serde_json::from_slice::<LockBody>(&sink.get(&key).await?).ok();
                let since = held.as_ref().and_then(|h| micros(&h.since));
                let ttl = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
                let stale = since.is_none_or(|s| now_micros() - s > ttl);
                if attempt == 0 && stale {
                    tracing::warn!(%key, "taking over a compaction lock older than --lock-ttl");
                    sink.delete(&key).await?;
                    continue;
                }
                let (host, since) = held.map_or(("?".into(), "?".into()), |h| (h.host, h.since));
                return Err(CompactError::Locked(format!(
                    "another compaction of {partition} holds {key} (on {host}, since {since}); \
                     run again later, or remove {key} if that run is dead"
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(CompactError::Locked(format!("could not take {key}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_parse_and_count_back() {
        assert_eq!(
            parse_partition("dt=2026-12-06/hour=07/").as_deref(),
            Ok("dt=2026-12-06/hour=07")
        );
        for bad in [
            "dt=2026-12-06",
            "dt=2026-13-06/hour=07",
            "dt=2026-12-06/hour=24",
            "hour=07/dt=2026-12-06",
            "dt=2026-12-06/hour=7",
        ] {
            assert!(parse_partition(bad).is_err(), "{bad}");
        }
        let now = micros("2026-12-06T01:20:00Z").expect("present");
        assert_eq!(
            hours_before(now, 3),
            vec![
                "dt=2026-12-05/hour=22",
                "dt=2026-12-05/hour=23",
                "dt=2026-12-06/hour=00"
            ]
        );
    }

    #[test]
    fn a_files_chain_names_its_digests() {
        assert_eq!(
            chain_prefix("dt=2026-12-06/hour=07/my-pod-0199abc-00000012.parquet").as_deref(),
            Some("my-pod-0199abc-")
        );
        assert_eq!(chain_prefix("dt=2026-12-06/hour=07/notes.txt"), None);
    }

    #[test]
    fn groups_stay_under_the_row_limit() {
        let e = |rows| FileEntry {
            key: String::new(),
            sha256: String::new(),
            bytes: 0,
            rows,
            event_time_min: String::new(),
            event_time_max: String::new(),
            row_seq_min: 0,
            row_seq_max: 0,
        };
        let sizes = |g: Vec<Vec<FileEntry>>| {
            g.iter()
                .map(|g| g.iter().map(|e| e.rows).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            sizes(groups(vec![e(5), e(5), e(5)], 10)),
            vec![vec![5, 5], vec![5]]
        );
        assert_eq!(
            sizes(groups(vec![e(20), e(1), e(1)], 10)),
            vec![vec![20], vec![1, 1]]
        );
    }
}
