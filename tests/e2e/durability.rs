//! The durable audit path: SIGKILL under load loses no row and duplicates none;
//! damaged spool segments are repaired, counted and reported; an S3-compatible sink
//! (s3s-fs) gets every row once through an outage; a full spool refuses (`reject`)
//! or forwards and counts (`drop`).

use crate::routes;
use custody_tests::client::{Target, post_json, send};
use custody_tests::harness::{Custody, admin_get, free_port};
use custody_tests::rows::{is_key, read_dir};
use custody_tests::s3::S3Server;
use custody_tests::stub::Stub;
use http_body_util::BodyExt;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Sends one chat request with `id`; the status, or `None` if custody was not there.
async fn call(target: &Target, id: &str) -> Option<u16> {
    let mut req = post_json(
        "/openai/v1/chat/completions",
        &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    );
    req.headers_mut()
        .insert("x-request-id", id.parse().expect("header"));
    let resp = send(target, req).await.ok()?;
    let status = resp.status().as_u16();
    resp.into_body().collect().await.ok()?;
    Some(status)
}

/// A tiny deterministic generator (the seed is printed so a failure can be rerun).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// The values of the string column `column` in `rows`, with how often each
/// appears (rows where it is null are left out).
fn counts_of(rows: &[serde_json::Value], column: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in rows {
        if let Some(id) = r[column].as_str() {
            *counts.entry(id.to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

/// The clients' ids (`client_request_id`, the `x-request-id` each request was
/// sent with, unique in these tests) of `rows`, with how often each appears.
fn id_counts(rows: &[serde_json::Value]) -> HashMap<String, usize> {
    counts_of(rows, "client_request_id")
}

/// custody's keys (`request_id`) that appear more than once in `rows`.
fn repeated_keys(rows: &[serde_json::Value]) -> Vec<(String, usize)> {
    let mut repeated: Vec<_> = counts_of(rows, "request_id")
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    repeated.sort();
    repeated
}

async fn start(extra: String) -> Custody {
    tokio::task::spawn_blocking(move || Custody::start(&extra))
        .await
        .expect("start")
}

/// Load from `clients` tasks until `stop`, each request a fresh id, against
/// whichever custody `target` names.
fn load(
    clients: usize,
    target: &Arc<RwLock<Target>>,
    stop: &Arc<AtomicBool>,
    statuses: &Arc<std::sync::Mutex<HashMap<u16, u64>>>,
    prefix: &str,
) -> Vec<tokio::task::JoinHandle<u64>> {
    (0..clients)
        .map(|c| {
            let (target, stop, statuses) = (target.clone(), stop.clone(), statuses.clone());
            let prefix = prefix.to_owned();
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let t = target.read().expect("lock").clone();
                    match call(&t, &format!("{prefix}-{c}-{n}")).await {
                        Some(s) => *statuses.lock().expect("lock").entry(s).or_default() += 1,
                        None => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
                n
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_no_row_and_duplicates_none() {
    let stub = Stub::start().await;
    let shared = tempfile::tempdir().expect("tempdir");
    let audit = shared.path().join("audit");
    // Signed digests too: the chain must verify across every kill.
    let key = shared.path().join("digest.pem");
    let made = std::process::Command::new(custody_tests::harness::custody_bin())
        .args(["keygen", "--out"])
        .arg(&key)
        .output()
        .expect("keygen");
    assert!(made.status.success(), "{made:?}");
    let extra = format!(
        "{}audit:\n  sink: '{}'\n  roll: {{rows: 40, age: 100ms}}\n  digests: {{interval: 1s, signing_key_file: '{}'}}\nshutdown: {{grace_period: 20s}}\n",
        routes(&stub),
        audit.display(),
        key.display()
    );
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    eprintln!("kill test seed {seed}");
    let mut rng = Rng(seed);
    let mut custody = start(extra.clone()).await;
    let target = Arc::new(RwLock::new(custody.tcp()));
    let stop = Arc::new(AtomicBool::new(false));
    let statuses = Arc::default();
    let clients = load(4, &target, &stop, &statuses, "kill");
    let kills = 15;
    let mut logs = String::new();
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(150 + rng.next() % 450)).await;
        custody.kill();
        logs += &custody.log();
        custody = start(extra.clone()).await;
        *target.write().expect("lock") = custody.tcp();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut sent = 0;
    for c in clients {
        sent += c.await.expect("client");
    }
    custody.stop();
    logs += &custody.log();
    if std::env::var_os("KEEP").is_some() {
        std::fs::write(shared.path().join("logs"), &logs).expect("logs");
        eprintln!("kept {}", shared.keep().display());
    }

    let rows = read_dir(&audit);
    let counts = id_counts(&rows);
    let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    let dup_rows: Vec<_> = rows
        .iter()
        .filter(|r| {
            duplicates
                .iter()
                .take(3)
                .any(|(id, _)| r["client_request_id"] == id.as_str())
        })
        .map(|r| (&r["client_request_id"], &r["request_id"], &r["outcome"]))
        .collect();
    assert!(
        duplicates.is_empty(),
        "{} duplicated rows: {duplicates:?}\n{dup_rows:#?}",
        duplicates.len()
    );
    // Every row has its own key: a replayed row keeps the key its intent was
    // spooled with, and no two requests share one.
    let repeated = repeated_keys(&rows);
    assert!(repeated.is_empty(), "keys on several rows: {repeated:?}");
    for r in &rows {
        let key = r["request_id"].as_str().expect("request_id");
        assert!(
            key.starts_with("gap_") || is_key(key),
            "{key} is custody's UUIDv7 or a gap row's id"
        );
    }
    // Rows are numbered 1, 2, … across all the kills: none missing, none twice.
    let mut numbers: Vec<i64> = rows
        .iter()
        .map(|r| r["row_seq"].as_i64().expect("row_seq"))
        .collect();
    numbers.sort_unstable();
    let expected: Vec<i64> = (1..=rows.len() as i64).collect();
    assert!(
        numbers == expected,
        "row_seq is not 1..={}: {:?}",
        rows.len(),
        numbers
            .windows(2)
            .filter(|w| w[1] != w[0] + 1)
            .take(10)
            .collect::<Vec<_>>()
    );
    // One chain across the kills, every file covered, nothing to report.
    let verified = std::process::Command::new(custody_tests::harness::custody_bin())
        .arg("verify")
        .arg(&audit)
        .arg("--public-key")
        .arg(format!("{}.pub", key.display()))
        .args(["--json", "--interval", "1s"])
        .output()
        .expect("verify");
    let report: serde_json::Value =
        serde_json::from_slice(&verified.stdout).expect("verify report");
    assert!(verified.status.success(), "{report:#}");
    assert_eq!(report["chains"], 1, "{report:#}");
    assert_eq!(report["rows"], rows.len(), "{report:#}");
    let received: HashSet<String> = stub
        .request_ids()
        .into_iter()
        .filter(|id| id.starts_with("kill-"))
        .collect();
    let missing: Vec<_> = received
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} requests the upstream received have no row: {:?}",
        missing.len(),
        received.len(),
        missing.iter().take(10).collect::<Vec<_>>()
    );
    let incomplete = rows
        .iter()
        .filter(|r| {
            r["outcome"]["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("incomplete"))
        })
        .count();
    eprintln!(
        "kill test: {kills} kills, {sent} requests sent, {} reached the upstream, {} rows, {incomplete} incomplete, statuses {:?}",
        received.len(),
        rows.len(),
        statuses.lock().expect("lock")
    );
    assert!(received.len() > 200, "too little load to mean anything");
}

/// Record boundaries `(offset, len)` of a spool segment file (format version 1).
fn records(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 32;
    while at + 21 <= bytes.len() && bytes[at..at + 4] == [0xB5, 0xC7, 0x8E, 0xA3] {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        out.push((at, 21 + len));
        at += 21 + len;
    }
    out
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .expect("spool dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn damaged_spool_segments_are_repaired_counted_and_reported_as_gaps() {
    let stub = Stub::start().await;
    let shared = tempfile::tempdir().expect("tempdir");
    let audit = shared.path().join("audit");
    let spool = shared.path().join("spool");
    let extra = format!(
        "{}audit:\n  sink: '{}'\n  spool: {{dir: '{}'}}\n  roll: {{rows: 1000000, age: 1h, bytes: 8KiB}}\n",
        routes(&stub),
        audit.display(),
        spool.display()
    );
    let mut custody = start(extra.clone()).await;
    // Uploads fail (a file where the sink's directory should be), so every segment
    // stays in the spool.
    std::fs::remove_dir(&audit).expect("empty sink dir");
    std::fs::write(&audit, b"blocked").expect("blocker");
    for i in 0..120 {
        assert_eq!(call(&custody.tcp(), &format!("dmg-{i}")).await, Some(200));
    }
    custody.kill();

    let segs = segments(&spool);
    assert!(segs.len() >= 8, "{} segments", segs.len());
    let mut expected_lost = 0;
    // A flipped bit in the third record of segment 1.
    let mut bytes = std::fs::read(&segs[1]).expect("read");
    let (at, len) = records(&bytes)[2];
    bytes[at + len / 2] ^= 0x10;
    std::fs::write(&segs[1], &bytes).expect("write");
    expected_lost += 1;
    // A zeroed 512-byte sector in segment 3.
    let mut bytes = std::fs::read(&segs[3]).expect("read");
    let (from, to) = (1024, 1536);
    expected_lost += records(&bytes)
        .iter()
        .filter(|(at, len)| *at < to && at + len > from)
        .count();
    bytes[from..to].fill(0);
    std::fs::write(&segs[3], &bytes).expect("write");
    // A record cut short at the end of segment 5 (a torn write; the next segment's
    // header says which sequence numbers are missing).
    let bytes = std::fs::read(&segs[5]).expect("read");
    let (at, len) = *records(&bytes).last().expect("records");
    std::fs::write(&segs[5], &bytes[..at + len / 2]).expect("write");
    expected_lost += 1;
    // A torn tail on the newest segment: what was there is unknowable.
    let last = segs.last().expect("segments");
    let bytes = std::fs::read(last).expect("read");
    std::fs::write(last, &bytes[..bytes.len() - 7]).expect("write");

    std::fs::remove_file(&audit).expect("unblock");
    let mut custody = start(extra.clone()).await;
    assert_eq!(
        custody.metric("custody_audit_spool_corrupt_records_total"),
        Some(expected_lost as f64),
        "{}",
        custody.log()
    );
    assert!(custody.log().contains("audit spool was damaged"));
    custody.stop();
    let rows = read_dir(&audit);
    let gaps: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["outcome"]["error"].as_str())
        .filter(|e| e.starts_with("gap:"))
        .collect();
    let lost_in_gaps: usize = gaps
        .iter()
        .filter_map(|g| {
            g.strip_prefix("gap: ")?
                .split_once(" spool records lost")
                .and_then(|(n, _)| n.parse::<usize>().ok())
        })
        .sum();
    assert_eq!(lost_in_gaps, expected_lost, "{gaps:#?}");
    assert!(
        gaps.iter().any(|g| g.contains("truncated")),
        "the torn tail is reported: {gaps:#?}"
    );
    // Every request has its row, or lost records (counted above) stand for it.
    let counts = id_counts(&rows);
    let without: usize = (0..120)
        .filter(|i| !counts.contains_key(&format!("dmg-{i}")))
        .count();
    assert!(
        without <= expected_lost + 1,
        "{without} requests without a row"
    );
    assert!(counts.values().all(|n| *n == 1), "no duplicates");

    // The repair is done once: the next start finds the spool clean.
    let mut custody = start(extra).await;
    assert_eq!(
        custody.metric("custody_audit_spool_corrupt_records_total"),
        Some(0.0)
    );
    custody.stop();
}

/// Waits until `f` holds, for up to `secs`.
async fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_sink_survives_an_outage_under_load_and_gets_every_row_once() {
    let stub = Stub::start().await;
    let shared = tempfile::tempdir().expect("tempdir");
    let root = shared.path().join("s3");
    std::fs::create_dir_all(&root).expect("root");
    let port = free_port();
    let mut s3 = S3Server::start(&root, port);
    let max_bytes = 64 << 20;
    let extra = format!(
        "{}{}  spool: {{dir: '{}', max_bytes: {max_bytes}}}\n  roll: {{rows: 50, age: 200ms}}\n",
        routes(&stub),
        s3.audit_yaml("audit", "trail/prod", &shared.path().join("secret")),
        shared.path().join("spool").display()
    );
    let mut custody = start(extra).await;
    let objects = root.join("audit/trail/prod");
    for i in 0..60 {
        assert_eq!(call(&custody.tcp(), &format!("s3-a-{i}")).await, Some(200));
    }
    eventually(20, "objects in the bucket", || {
        read_dir(&objects).len() == 60
    })
    .await;
    let files = custody_tests::rows::parquet_files(&objects);
    let rel = files[0]
        .strip_prefix(&objects)
        .expect("under prefix")
        .to_string_lossy()
        .into_owned();
    assert!(
        rel.starts_with("dt=") && rel.contains("/hour=") && rel.contains("/e2e-"),
        "{rel}"
    );

    // Outage under load: the backlog grows, within the cap; requests still succeed.
    s3.stop();
    let target = Arc::new(RwLock::new(custody.tcp()));
    let stop = Arc::new(AtomicBool::new(false));
    let statuses: Arc<std::sync::Mutex<HashMap<u16, u64>>> = Arc::default();
    let clients = load(4, &target, &stop, &statuses, "s3-b");
    let mut peak = 0.0f64;
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let backlog = custody
            .metric("custody_audit_backlog_bytes")
            .expect("metric");
        assert!(
            backlog <= max_bytes as f64,
            "backlog {backlog} over the cap"
        );
        peak = peak.max(backlog);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(peak > 10_000.0, "the backlog grew: {peak}");
    assert!(
        custody
            .metric("custody_audit_uploads_total{result=\"failed\"}")
            .is_some_and(|n| n > 0.0)
    );

    // Recovery: the backlog drains and every row arrives once.
    let _s3 = S3Server::start(&root, port);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    assert_eq!(
        statuses
            .lock()
            .expect("lock")
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        [200],
        "the outage never failed a request"
    );
    eventually(30, "the backlog to drain", || {
        custody
            .metric("custody_audit_backlog_bytes")
            .is_some_and(|b| b < 10_000.0)
    })
    .await;
    custody.stop();
    let rows = read_dir(&objects);
    let counts = id_counts(&rows);
    assert!(counts.values().all(|n| *n == 1), "duplicates");
    assert_eq!(repeated_keys(&rows), [], "keys on several rows");
    let received: Vec<String> = stub
        .request_ids()
        .into_iter()
        .filter(|id| id.starts_with("s3-"))
        .collect();
    for id in &received {
        assert!(counts.contains_key(id), "{id} has no row");
    }
    assert_eq!(rows.len(), received.len());
    eprintln!("s3 outage: {} rows, peak backlog {peak} bytes", rows.len());
}

/// A custody whose sink never answers (nothing listens on its port), with a
/// 64 KiB spool.
async fn full_spool_custody(stub: &Stub, dir: &Path, on_full: &str, port: u16) -> Custody {
    let secret = dir.join("secret");
    std::fs::write(&secret, custody_tests::s3::SECRET_KEY).expect("secret");
    start(format!(
        "{}audit:\n  sink: 's3://audit/full'\n  on_full: {on_full}\n  spool: {{dir: '{}', max_bytes: 64KiB}}\n  roll: {{rows: 10, age: 100ms}}\n  s3: {{endpoint: 'http://127.0.0.1:{port}', region: us-east-1, path_style: true, access_key_id: {}, secret_access_key_file: '{}'}}\n",
        routes(stub),
        dir.join("spool").display(),
        custody_tests::s3::ACCESS_KEY,
        secret.display()
    ))
    .await
}

#[tokio::test]
async fn a_full_spool_rejects_with_503_until_space_returns_then_records_a_gap() {
    let stub = Stub::start().await;
    let shared = tempfile::tempdir().expect("tempdir");
    let root = shared.path().join("s3");
    std::fs::create_dir_all(root.join("audit")).expect("bucket");
    let port = free_port();
    let mut custody = full_spool_custody(&stub, shared.path(), "reject", port).await;
    let mut refused = 0;
    let mut i = 0;
    while refused < 5 {
        i += 1;
        assert!(i < 2000, "the spool never filled");
        let mut req = post_json("/openai/v1/chat/completions", &json!({"model": "m"}));
        req.headers_mut()
            .insert("x-request-id", format!("full-{i}").parse().expect("id"));
        let resp = send(&custody.tcp(), req).await.expect("response");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        if status == 503 {
            let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
            assert_eq!(v["error"]["type"], "audit_backlog_full", "{v}");
            assert_eq!(headers["x-request-id"], format!("full-{i}").as_str());
            assert_eq!(
                v["error"]["request_id"],
                headers["x-custody-request-id"].to_str().expect("ascii"),
                "the error names custody's key"
            );
            refused += 1;
        } else {
            assert_eq!(status, 200);
        }
    }
    assert!(
        !stub.request_ids().contains(&format!("full-{i}")),
        "not forwarded"
    );
    assert_eq!(
        custody.metric("custody_audit_rows_rejected_total"),
        Some(f64::from(refused))
    );
    // A full spool refuses requests but leaves the sidecar ready: an object-store
    // outage must not take every agent pod out of its Services at once.
    let (code, body) = admin_get(custody.admin, "/readyz").expect("readyz");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"audit_spool_has_room\":false"), "{body}");
    assert_eq!(custody.metric("custody_audit_accepting"), Some(0.0));
    assert!(
        custody
            .metric("custody_audit_backlog_bytes")
            .expect("metric")
            <= 65536.0
    );

    // The sink comes back: space frees, requests pass again, and a gap row says
    // how many were refused.
    let _s3 = S3Server::start(&root, port);
    eventually(30, "the spool to accept again", || {
        custody.metric("custody_audit_accepting") == Some(1.0)
    })
    .await;
    assert_eq!(call(&custody.tcp(), "after").await, Some(200));
    custody.stop();
    let rows = read_dir(&root.join("audit/full"));
    let gap = rows
        .iter()
        .filter_map(|r| r["outcome"]["error"].as_str())
        .find(|e| e.starts_with("gap:"))
        .expect("a gap row");
    assert!(
        gap.starts_with(&format!("gap: {refused} requests not recorded")),
        "{gap}"
    );
    let counts = id_counts(&rows);
    for id in stub
        .request_ids()
        .iter()
        .filter(|id| id.starts_with("full-") || *id == "after")
    {
        assert_eq!(counts.get(id), Some(&1), "{id}");
    }
}

#[tokio::test]
async fn a_full_spool_in_drop_mode_forwards_and_counts_every_unrecorded_request() {
    let stub = Stub::start().await;
    let shared = tempfile::tempdir().expect("tempdir");
    let root = shared.path().join("s3");
    std::fs::create_dir_all(root.join("audit")).expect("bucket");
    let port = free_port();
    let mut custody = full_spool_custody(&stub, shared.path(), "drop", port).await;
    let sent = 400;
    for i in 0..sent {
        assert_eq!(call(&custody.tcp(), &format!("drop-{i}")).await, Some(200));
    }
    let dropped = custody
        .metric("custody_audit_rows_dropped_total")
        .expect("metric") as usize;
    assert!(dropped > 0, "the spool filled");
    let (code, _) = admin_get(custody.admin, "/readyz").expect("readyz");
    assert_eq!(code, 200, "drop mode stays ready");
    let _s3 = S3Server::start(&root, port);
    eventually(30, "the gap row", || {
        custody
            .metric("custody_audit_gap_rows_total")
            .is_some_and(|n| n >= 1.0)
    })
    .await;
    custody.stop();
    let rows = read_dir(&root.join("audit/full"));
    let counts = id_counts(&rows);
    let unrecorded = (0..sent)
        .filter(|i| !counts.contains_key(&format!("drop-{i}")))
        .count();
    assert_eq!(
        unrecorded, dropped,
        "every unrecorded request is counted exactly"
    );
    let gapped: usize = rows
        .iter()
        .filter_map(|r| r["outcome"]["error"].as_str())
        .filter_map(|e| {
            e.strip_prefix("gap: ")?
                .split_once(" requests not recorded")
                .and_then(|(n, _)| n.parse::<usize>().ok())
        })
        .sum();
    assert_eq!(gapped, dropped);
    assert_eq!(
        stub.request_ids()
            .iter()
            .filter(|id| id.starts_with("drop-"))
            .count(),
        sent
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_keeps_retrying_a_sink_that_is_down_for_a_moment() {
    let stub = Stub::start().await;
    let shared = tempfile::tempdir().expect("tempdir");
    let root = shared.path().join("s3");
    std::fs::create_dir_all(&root).expect("root");
    let port = free_port();
    let mut s3 = S3Server::start(&root, port);
    let extra = format!(
        "{}{}  spool: {{dir: '{}'}}\n  roll: {{age: 1h}}\nshutdown: {{grace_period: 20s}}\n",
        routes(&stub),
        s3.audit_yaml("audit", "down", &shared.path().join("secret")),
        shared.path().join("spool").display()
    );
    let mut custody = start(extra).await;
    for i in 0..20 {
        assert_eq!(call(&custody.tcp(), &format!("down-{i}")).await, Some(200));
    }
    // The sink goes down; custody is told to stop; the sink is back 1.5 s later.
    s3.stop();
    custody.signal_term();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _s3 = S3Server::start(&root, port);
    let status = custody.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", custody.log());
    // Every row reached the sink: the rows of a pod whose spool goes with it.
    let rows = read_dir(&root.join("audit/down"));
    assert_eq!(rows.len(), 20, "{}", custody.log());
    assert!(
        custody
            .log()
            .contains("audit upload failed while shutting down; retrying until the deadline"),
        "{}",
        custody.log()
    );
}

/// A sink that stays down past the deadline: with `audit.spool.ephemeral` (the
/// pod's `emptyDir`) the rows left are lost with the pod, so custody says so at
/// ERROR with their number and exits 3; without it they stay for the next start
/// (exit 0), and that start uploads every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_rows_left_in_an_ephemeral_spool_fails_loudly() {
    let stub = Stub::start().await;
    let shared = tempfile::tempdir().expect("tempdir");
    let root = shared.path().join("s3");
    std::fs::create_dir_all(&root).expect("root");
    let port = free_port();
    for (ephemeral, sent) in [(true, 7), (false, 5)] {
        let spool = shared.path().join(format!("spool-{ephemeral}"));
        let mut s3 = S3Server::start(&root, port);
        let extra = format!(
            "{}{}  spool: {{dir: '{}', ephemeral: {ephemeral}}}\n  roll: {{age: 1h}}\nshutdown: {{grace_period: 2s}}\n",
            routes(&stub),
            s3.audit_yaml("audit", "gone", &shared.path().join("secret")),
            spool.display()
        );
        let mut custody = start(extra.clone()).await;
        for i in 0..sent {
            let id = format!("gone-{ephemeral}-{i}");
            assert_eq!(call(&custody.tcp(), &id).await, Some(200));
        }
        s3.stop();
        custody.signal_term();
        let status = custody.wait_exit(Duration::from_secs(30));
        let log = custody.log();
        let metrics_said =
            log.contains(&format!("rows={sent}")) || log.contains(&format!("\"rows\":{sent}"));
        assert!(
            metrics_said,
            "the shutdown names the {sent} rows left\n{log}"
        );
        if ephemeral {
            assert_eq!(status.code(), Some(3), "{status}\n{log}");
            assert!(
                log.contains("ERROR") || log.contains("\"level\":\"ERROR\""),
                "{log}"
            );
            assert!(log.contains("the spool is ephemeral"), "{log}");
        } else {
            assert!(status.success(), "{status}\n{log}");
            assert!(log.contains("stays spooled for the next start"), "{log}");
            assert!(!log.contains("the spool is ephemeral"), "{log}");
            // The next start (the spool survived) ships every row.
            let _s3 = S3Server::start(&root, port);
            let mut again = start(extra).await;
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while read_dir(&root.join("audit/gone")).len() < sent
                && std::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            again.signal_term();
            assert!(again.wait_exit(Duration::from_secs(30)).success());
            assert_eq!(read_dir(&root.join("audit/gone")).len(), sent);
        }
    }
}
