//! Compaction through the real binary: `custody compact` runs again and again while
//! custody writes to the same partitions of a real S3-compatible server; no row is
//! lost or duplicated, `custody verify` passes before and after, the compacted
//! files are sorted and say so, and what a faulty or forged compaction does is
//! found.

use crate::verify::{Place, b64, copy_dir, files, keygen, kinds, verify_at};
use arrow_array::Array as _;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use custody_audit::digest::compaction::{COMPACTION_PREFIX, Compaction, is_output_key};
use custody_audit::digest::{SIGNATURE_SUFFIX, SigningKey, sha256_hex};
use custody_tests::harness::{Custody, custody_bin};
use custody_tests::stub::Stub;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// `custody compact` on `partitions` of `target`: the exit code and one report per
/// partition.
fn compact(
    env: &[(&'static str, String)],
    target: &str,
    key: &Path,
    partitions: &[String],
) -> (i32, Vec<serde_json::Value>) {
    let mut command = Command::new(custody_bin());
    command
        .args(["compact", "--json", "--sink", target, "--signing-key"])
        .arg(key);
    for p in partitions {
        command.args(["--partition", p]);
    }
    command.envs(env.iter().cloned());
    let out = command.output().expect("compact");
    let reports = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON report"))
        .collect();
    assert!(
        out.status.code() != Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), reports)
}

/// The `dt=…/hour=…` partitions with audit files under `root` (walked while
/// custody and the compactor change it: what vanishes meanwhile is skipped).
fn partitions(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for day in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let day_name = day.file_name().to_string_lossy().into_owned();
        if !day_name.starts_with("dt=") {
            continue;
        }
        for hour in std::fs::read_dir(day.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let has_files = std::fs::read_dir(hour.path())
                .into_iter()
                .flatten()
                .flatten()
                .any(|f| f.file_name().to_string_lossy().ends_with(".parquet"));
            if has_files {
                out.push(format!("{day_name}/{}", hour.file_name().to_string_lossy()));
            }
        }
    }
    out.sort();
    out
}

/// `n` requests, spread over seven header sessions.
async fn traffic(custody: &Custody, n: usize, sent: &AtomicU64) {
    for _ in 0..n {
        let i = sent.fetch_add(1, Ordering::Relaxed);
        let req = custody_tests::client::request("GET", "/openai/v1/models")
            .header("x-custody-session", format!("s{}", i % 7))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        custody_tests::client::send_collect(&custody.tcp(), req)
            .await
            .expect("answered");
    }
}

fn batches(path: &Path) -> Vec<arrow_array::RecordBatch> {
    let bytes = bytes::Bytes::from(std::fs::read(path).expect("read"));
    ParquetRecordBatchReaderBuilder::try_new(bytes)
        .expect("parquet")
        .build()
        .expect("reader")
        .map(|b| b.expect("batch"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_under_concurrent_writes_loses_and_duplicates_nothing() {
    let work = tempfile::tempdir().expect("tempdir");
    let root = tempfile::tempdir().expect("s3 root");
    let place = Place::S3(custody_tests::s3::S3Server::start(
        root.path(),
        custody_tests::harness::free_port(),
    ));
    let (private, public) = keygen(work.path(), "digest.pem");
    let stub = Stub::start().await;
    let config = format!(
        "routes:\n  - {{name: openai, prefix: /openai, upstream: '{}', kind: openai}}\naudit:\n{}  spool: {{dir: {}}}\n  roll: {{age: 200ms}}\n  digests: {{interval: 1s, signing_key_file: {}}}\n",
        stub.url(),
        place.sink_config(work.path(), "sink"),
        work.path().join("spool").display(),
        private.display()
    );
    let sink = place.dir(work.path(), "sink");
    let target = place.target(work.path(), "sink");
    let mut custody = Custody::start(&config);

    // A compactor that keeps running over every partition while custody writes.
    let stop = Arc::new(AtomicBool::new(false));
    let merged = Arc::new(AtomicU64::new(0));
    let compactor = {
        let (stop, merged) = (Arc::clone(&stop), Arc::clone(&merged));
        let (sink, target, private) = (sink.clone(), target.clone(), private.clone());
        let env = place.env_vars();
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                let parts = partitions(&sink);
                if !parts.is_empty() {
                    let (code, reports) = compact(&env, &target, &private, &parts);
                    assert_eq!(code, 0, "{reports:#?}");
                    let merges: usize = reports
                        .iter()
                        .map(|r| r["merges"].as_array().map_or(0, Vec::len))
                        .sum();
                    merged.fetch_add(merges as u64, Ordering::Relaxed);
                    runs += 1;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            runs
        })
    };
    let sent = AtomicU64::new(0);
    // Writes go on until the compactor has merged under them, and some more after.
    for _ in 0..60 {
        traffic(&custody, 15, &sent).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if merged.load(Ordering::Relaxed) > 0 && sent.load(Ordering::Relaxed) >= 150 {
            break;
        }
    }
    assert!(merged.load(Ordering::Relaxed) > 0, "no merge while writing");
    traffic(&custody, 45, &sent).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let runs = compactor.join().expect("compactor");
    assert!(runs >= 2, "{runs} compaction runs");
    // Rows no compaction has seen yet: files the last one below merges (and the
    // tampering checks forge), however fast the compactor kept up.
    traffic(&custody, 10, &sent).await;
    custody.stop();
    let total = sent.load(Ordering::Relaxed);

    // Verified with the compactions so far, before the last one.
    let (code, report) = verify_at(&place, &target, &public, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["rows"], total, "{report:#}");
    assert!(report["files_compacted"].as_u64() > Some(0), "{report:#}");
    let before = place.dir(work.path(), "before");
    std::fs::create_dir_all(before.parent().expect("parent")).expect("mkdir");
    copy_dir(&sink, &before);

    // The last compaction: one sorted file per partition (one chain), every row
    // once, and the trail verifies.
    let parts = partitions(&sink);
    let (code, reports) = compact(&place.env_vars(), &target, &private, &parts);
    assert_eq!(code, 0, "{reports:#?}");
    let (code, report) = verify_at(&place, &target, &public, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["rows"], total, "{report:#}");
    assert_eq!(report["files"], parts.len(), "{report:#}");
    let outputs = files(&sink, ".parquet");
    assert_eq!(outputs.len(), parts.len(), "{outputs:?}");
    let mut ids = HashSet::new();
    for path in &outputs {
        assert!(is_output_key(&path.to_string_lossy()), "{path:?}");
        let file = std::fs::File::open(path).expect("open");
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet");
        let sorting = reader.metadata().row_group(0).sorting_columns().cloned();
        assert_eq!(
            sorting.map(|s| s.len()),
            Some(2),
            "sorting columns declared"
        );
        let mut keys = Vec::new();
        for batch in batches(path) {
            let sessions = batch
                .column_by_name("session_id")
                .expect("s")
                .as_string::<i32>();
            let times = batch
                .column_by_name("event_time")
                .expect("t")
                .as_primitive::<TimestampMicrosecondType>();
            let requests = batch
                .column_by_name("request_id")
                .expect("r")
                .as_string::<i32>();
            for i in 0..batch.num_rows() {
                assert!(ids.insert(requests.value(i).to_owned()), "a row twice");
                keys.push((
                    sessions.is_null(i),
                    sessions.is_valid(i).then(|| sessions.value(i).to_owned()),
                    times.value(i),
                ));
            }
        }
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(
            keys, sorted,
            "{path:?} is sorted by (session_id, event_time)"
        );
    }
    assert_eq!(ids.len() as u64, total);

    // The report reads the compacted trail on the object store too, and checks it
    // against the digests and compaction records.
    let day = |micros: i64| custody_audit::read::rfc3339(micros)[..10].to_owned();
    let first = day(now_micros() - 86_400_000_000);
    let after = day(now_micros() + 86_400_000_000);
    let mut command = Command::new(custody_bin());
    command
        .args([
            "report",
            "--format",
            "json",
            "--digest-interval",
            "1s",
            "--sink",
            &target,
        ])
        .args(["--from", &first, "--to", &after, "--public-key"])
        .arg(&public)
        .envs(place.env_vars());
    let out = command.output().expect("report");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["coverage"]["rows"], total, "{report:#}");
    assert_eq!(
        report["coverage"]["integrity"]["verifies"], true,
        "{report:#}"
    );
    assert_eq!(
        report["incidents"]["sessions_total"], 7,
        "seven header sessions"
    );

    // Again: nothing to do.
    let (code, reports) = compact(&place.env_vars(), &target, &private, &parts);
    assert_eq!(code, 0);
    for r in &reports {
        assert_eq!(r["merges"], serde_json::json!([]), "{r:#}");
        assert_eq!(r["files_before"], r["files_after"], "{r:#}");
    }

    tampering(&place, work.path(), &sink, &before, &private, &public);
}

/// Each on a copy of the compacted trail (or of the one before the last
/// compaction): what is done, and the finding `custody verify` must report.
fn tampering(
    place: &Place,
    work: &Path,
    sink: &Path,
    before: &Path,
    private: &Path,
    public: &Path,
) {
    let key = SigningKey::read(private).expect("key");
    // A record whose output is still there (earlier outputs were merged again).
    let record = |root: &Path| -> PathBuf {
        files(&root.join(COMPACTION_PREFIX), ".json")
            .into_iter()
            .find(|p| {
                let r: Compaction =
                    serde_json::from_slice(&std::fs::read(p).expect("read")).expect("parse");
                root.join(&r.output.key).exists()
            })
            .expect("a compaction record")
    };
    type Tamper<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, Tamper, &[&str])> = vec![
        (
            "a compactor drops a row and signs a record that adds up",
            Box::new(|root: &Path| {
                let path = record(root);
                let mut r: Compaction =
                    serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("parse");
                let output = root.join(&r.output.key);
                let batches = batches(&output);
                let mut w =
                    ArrowWriter::try_new(Vec::new(), batches[0].schema(), None).expect("writer");
                w.write(&batches[0].slice(1, batches[0].num_rows() - 1))
                    .expect("write");
                for b in &batches[1..] {
                    w.write(b).expect("write");
                }
                let bytes = w.into_inner().expect("bytes");
                std::fs::write(&output, &bytes).expect("write");
                r.output.sha256 = sha256_hex(&bytes);
                r.output.bytes = bytes.len() as u64;
                r.output.rows -= 1;
                r.inputs[0].rows -= 1;
                let body = r.to_bytes();
                std::fs::write(&path, &body).expect("record");
                std::fs::write(
                    format!("{}{SIGNATURE_SUFFIX}", path.display()),
                    b64(&key.sign(&body)),
                )
                .expect("sig");
            }),
            &["row_seq_hole", "compaction_input_mismatch"],
        ),
        (
            "flip a byte of a compacted file",
            Box::new(|root: &Path| {
                let path = root.join(
                    serde_json::from_slice::<Compaction>(
                        &std::fs::read(record(root)).expect("read"),
                    )
                    .expect("parse")
                    .output
                    .key,
                );
                let mut bytes = std::fs::read(&path).expect("read");
                let i = bytes.len() / 2;
                bytes[i] ^= 1;
                std::fs::write(&path, bytes).expect("write");
            }),
            &["file_modified"],
        ),
        (
            "remove a compaction record",
            Box::new(|root: &Path| {
                let path = record(root);
                std::fs::remove_file(format!("{}{SIGNATURE_SUFFIX}", path.display()))
                    .expect("rm sig");
                std::fs::remove_file(path).expect("rm");
            }),
            &["file_missing", "file_not_covered"],
        ),
    ];
    for (i, (what, tamper, expected)) in cases.iter().enumerate() {
        let name = format!("compacted-{i}");
        let copy = place.dir(work, &name);
        std::fs::create_dir_all(copy.parent().expect("parent")).expect("mkdir");
        copy_dir(sink, &copy);
        tamper(&copy);
        let (code, report) = verify_at(place, &place.target(work, &name), public, &[]);
        assert_eq!(code, 1, "{what}: {report:#}");
        for k in *expected {
            assert!(
                kinds(&report).iter().any(|f| f == k),
                "{what}: expected {k} in {report:#}"
            );
        }
    }

    // A file modified before compaction is refused, never merged into a signed file.
    let name = "forged-input";
    let copy = place.dir(work, name);
    std::fs::create_dir_all(copy.parent().expect("parent")).expect("mkdir");
    copy_dir(before, &copy);
    let small = files(&copy, ".parquet")
        .into_iter()
        .find(|p| !is_output_key(&p.to_string_lossy()))
        .expect("an uncompacted file");
    let mut bytes = std::fs::read(&small).expect("read");
    let i = bytes.len() / 2;
    bytes[i] ^= 1;
    std::fs::write(&small, bytes).expect("write");
    let (code, reports) = compact(
        &place.env_vars(),
        &place.target(work, name),
        private,
        &partitions(&copy),
    );
    assert_eq!(code, 1, "{reports:#?}");
    assert!(small.exists(), "the refused file stays");
    let refused: Vec<String> = reports
        .iter()
        .flat_map(|r| r["refused"].as_array().cloned().unwrap_or_default())
        .filter_map(|l| l["key"].as_str().map(str::to_owned))
        .collect();
    assert!(refused.iter().any(|k| small.ends_with(k)), "{reports:#?}");
    let (code, report) = verify_at(place, &place.target(work, name), public, &[]);
    assert_eq!(code, 1);
    assert!(
        kinds(&report).iter().any(|k| k == "file_modified"),
        "{report:#}"
    );
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
