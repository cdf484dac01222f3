use super::*;
use crate::ship::SinkUrl;
use custody_core::{Action, ActionKind};
use parquet::file::reader::{FileReader, SerializedFileReader};
use std::path::PathBuf;
use std::time::SystemTime;

fn row(id: &str) -> AuditRecord {
    AuditRecord::new(
        SystemTime::now(),
        id.into(),
        Action::new(ActionKind::Http, "GET", "/"),
    )
}

fn config(root: &Path, max_bytes: u64, on_full: OnFull) -> TrailConfig {
    let mut spool = SpoolConfig::new(root.join("spool"));
    spool.max_bytes = max_bytes;
    spool.segment_bytes = (max_bytes / 4).max(4096);
    TrailConfig {
        ship: ShipConfig::new(SinkUrl::Local {
            dir: root.join("audit"),
        }),
        spool,
        on_full,
        roll_rows: 100_000,
        roll_age: Duration::from_secs(3600),
        instance: "test".into(),
        digests: None,
        ephemeral_spool: false,
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|x| x == "parquet") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

/// `(request_id, outcome.error)` of every row under `dir`.
fn rows(dir: &Path) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for path in files(dir) {
        let reader =
            SerializedFileReader::new(std::fs::File::open(&path).expect("open")).expect("parquet");
        for r in reader.get_row_iter(None).expect("rows") {
            use parquet::record::RowAccessor;
            let r = r.expect("row");
            let outcome = r.get_group(10).expect("outcome");
            out.push((
                r.get_string(1).expect("id").clone(),
                outcome.get_string(2).ok().cloned(),
            ));
        }
    }
    out
}

async fn exchange(sink: &AuditTrail, id: &str) {
    let r = row(id);
    match sink.intent(&r) {
        Admission::Spooled(key) => {
            sink.sync().await.expect("durable");
            sink.complete(key, &r);
        }
        other => panic!("not spooled: {other:?}"),
    }
}

async fn wait_for(mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met in 5 s");
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

#[tokio::test]
async fn rows_roll_by_count_and_by_age_into_the_local_sink() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path(), 1 << 30, OnFull::Reject);
    c.roll_rows = 3;
    let handle = AuditHandle::spawn(c).expect("spawn");
    let sink = handle.trail();
    exchange(&sink, "a").await;
    sink.record(&row("denied"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(files(&dir.path().join("audit")).is_empty());
    exchange(&sink, "b").await;
    wait_for(|| files(&dir.path().join("audit")).len() == 1).await;
    assert_eq!(rows(&dir.path().join("audit")).len(), 3);
    wait_for(|| sink.stats().segments_processed.load(Ordering::Relaxed) == 1).await;
    // Uploaded: the segment is gone, only the (empty) active one is left.
    wait_for(|| sink.spool_stats().live_segments.load(Ordering::Relaxed) == 1).await;
    let report = handle.shutdown(deadline()).await;
    assert!(report.drained, "{report:?}");
    assert_eq!(sink.stats().rows_uploaded.load(Ordering::Relaxed), 3);
    drop(sink);

    let mut c = config(dir.path(), 1 << 30, OnFull::Reject);
    c.roll_age = Duration::from_millis(200);
    let handle = AuditHandle::spawn(c).expect("respawn");
    let sink = handle.trail();
    exchange(&sink, "c").await;
    wait_for(|| files(&dir.path().join("audit")).len() == 2).await;
    handle.shutdown(deadline()).await;
    let names: Vec<String> = files(&dir.path().join("audit"))
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    let spool_id = std::fs::read_to_string(dir.path().join("spool/SPOOL_ID")).expect("id");
    for name in &names {
        assert!(name.starts_with(&format!("test-{spool_id}-")), "{name}");
    }
}

#[tokio::test]
async fn unfinished_intents_become_incomplete_rows_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let handle = AuditHandle::spawn(config(dir.path(), 1 << 30, OnFull::Reject)).expect("spawn");
    let sink = handle.trail();
    exchange(&sink, "done").await;
    // Forwarded, never finished: as if the process was killed mid-request.
    let Admission::Spooled(_) = sink.intent(&row("killed")) else {
        panic!("not spooled")
    };
    handle.shutdown(deadline()).await;
    drop(sink);
    assert_eq!(
        rows(&dir.path().join("audit")),
        [("done".to_owned(), None)],
        "the open intent is carried, not written"
    );

    let handle = AuditHandle::spawn(config(dir.path(), 1 << 30, OnFull::Reject)).expect("spawn");
    let sink = handle.trail();
    let report = handle.shutdown(deadline()).await;
    assert!(report.drained, "{report:?}");
    let mut got = rows(&dir.path().join("audit"));
    got.sort();
    assert_eq!(
        got,
        [
            ("done".to_owned(), None),
            ("killed".to_owned(), Some(INCOMPLETE.to_owned()))
        ]
    );
    assert_eq!(sink.stats().incomplete_rows.load(Ordering::Relaxed), 1);
    drop(sink);

    // Nothing is left to replay: a third start adds no row.
    let handle = AuditHandle::spawn(config(dir.path(), 1 << 30, OnFull::Reject)).expect("spawn");
    handle.shutdown(deadline()).await;
    assert_eq!(rows(&dir.path().join("audit")).len(), 2);
}

#[tokio::test]
async fn a_replayed_intent_keeps_its_key_and_the_client_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let handle = AuditHandle::spawn(config(dir.path(), 1 << 30, OnFull::Reject)).expect("spawn");
    let sink = handle.trail();
    let key = custody_core::RequestId::generate().as_str().to_owned();
    let mut intent = row(&key);
    intent.client_request_id = Some("gap_not-a-gap".into());
    intent.action.raw_path = Some("//".into());
    let Admission::Spooled(_) = sink.intent(&intent) else {
        panic!("not spooled")
    };
    handle.shutdown(deadline()).await;
    drop(sink);
    let handle = AuditHandle::spawn(config(dir.path(), 1 << 30, OnFull::Reject)).expect("spawn");
    handle.shutdown(deadline()).await;

    let files = files(&dir.path().join("audit"));
    assert_eq!(files.len(), 1);
    let reader =
        SerializedFileReader::new(std::fs::File::open(&files[0]).expect("open")).expect("parquet");
    let rows: Vec<_> = reader
        .get_row_iter(None)
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect();
    assert_eq!(rows.len(), 1);
    use parquet::record::RowAccessor;
    let r = &rows[0];
    assert_eq!(r.get_string(1).expect("request_id"), &key);
    assert_eq!(
        r.get_string(17).expect("client_request_id"),
        "gap_not-a-gap"
    );
    let action = r.get_group(6).expect("action");
    assert_eq!(action.get_string(10).expect("raw_path"), "//");
    let outcome = r.get_group(10).expect("outcome");
    assert_eq!(outcome.get_string(2).expect("error"), INCOMPLETE);
}

#[test]
fn a_rebuilt_file_has_the_same_name_and_bytes() {
    let build = || {
        let mut f = files::SegmentFiles::starting_at(1);
        for i in 0..2500 {
            let mut r = row(&format!("r{i}"));
            r.event_time = 1_772_807_527_000_000 + i;
            r.usage.estimated_cost_usd = Some(0.1 + i as f64 * 1e-7);
            f.push(&r);
        }
        f.finish("pod", "0192abc", 42).expect("finish")
    };
    let (a, b) = (build(), build());
    assert_eq!(a.len(), 1);
    assert_eq!(
        a[0].key,
        "dt=2026-03-06/hour=14/pod-0192abc-00000042.parquet"
    );
    assert_eq!(a[0].key, b[0].key);
    assert_eq!(a[0].bytes, b[0].bytes, "byte-identical");
    assert_eq!(a[0].rows, 2500);
    let reader = SerializedFileReader::new(a[0].bytes.clone()).expect("parquet");
    assert_eq!(reader.metadata().file_metadata().num_rows(), 2500);
    assert!(
        reader
            .metadata()
            .row_group(0)
            .column(0)
            .statistics()
            .is_some()
    );
}

#[tokio::test]
async fn a_full_spool_refuses_new_requests_and_writes_a_gap_row_when_space_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The sink is blocked (a file where its directory should be): nothing uploads.
    let blocker = dir.path().join("audit");
    std::fs::write(&blocker, b"not a directory").expect("write");
    let handle = AuditHandle::spawn(config(dir.path(), 64 << 10, OnFull::Reject)).expect("spawn");
    let sink = handle.trail();
    let mut admitted = 0;
    let mut refused = 0;
    for i in 0..400 {
        let r = row(&format!("r{i}"));
        match sink.intent(&r) {
            Admission::Spooled(key) => {
                sink.complete(key, &r);
                admitted += 1;
            }
            Admission::Refused(Refusal::Full { .. }) => refused += 1,
            other => panic!("{other:?}"),
        }
        if i % 50 == 0 {
            sink.flush().await;
        }
    }
    assert!(admitted > 0 && refused > 0, "{admitted} {refused}");
    assert!(!sink.accepting());
    assert!(sink.spool_stats().backlog_bytes.load(Ordering::Relaxed) <= 64 << 10);
    assert_eq!(
        sink.stats().rows_rejected.load(Ordering::Relaxed),
        refused as u64
    );
    assert!(sink.stats().failing.load(Ordering::Relaxed));

    std::fs::remove_file(&blocker).expect("unblock");
    sink.flush().await;
    sink.flush().await;
    assert!(sink.accepting());
    handle.shutdown(deadline()).await;
    let got = rows(&blocker);
    let gaps: Vec<_> = got
        .iter()
        .filter(|(id, _)| id.starts_with("gap_"))
        .collect();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    let error = gaps[0].1.as_deref().expect("error");
    assert!(
        error.starts_with(&format!("gap: {refused} requests not recorded")),
        "{error}"
    );
    assert_eq!(got.len(), admitted + 1);
}

/// 400 exchanges in `drop` mode (the spool fills up): returns how many went
/// unrecorded.
fn exchanges_dropping(sink: &AuditTrail) -> u64 {
    let mut dropped = 0u64;
    for i in 0..400 {
        let r = row(&format!("r{i}"));
        match sink.intent(&r) {
            Admission::Spooled(key) => sink.complete(key, &r),
            Admission::Unrecorded(_) => dropped += 1,
            other => panic!("{other:?}"),
        }
    }
    dropped
}

#[tokio::test]
async fn drop_mode_forwards_unrecorded_and_counts_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = dir.path().join("audit");
    std::fs::write(&blocker, b"not a directory").expect("write");
    let handle = AuditHandle::spawn(config(dir.path(), 64 << 10, OnFull::Drop)).expect("spawn");
    let sink = handle.trail();
    let dropped = exchanges_dropping(&sink);
    assert!(dropped > 0);
    assert_eq!(sink.stats().rows_dropped.load(Ordering::Relaxed), dropped);
    std::fs::remove_file(&blocker).expect("unblock");
    sink.flush().await;
    handle.shutdown(deadline()).await;
    let got = rows(&blocker);
    let gap = got
        .iter()
        .find(|(id, _)| id.starts_with("gap_"))
        .expect("gap row");
    assert!(
        gap.1
            .as_deref()
            .is_some_and(|e| e.starts_with(&format!("gap: {dropped} requests not recorded"))),
        "{gap:?}"
    );
    assert_eq!(got.len() as u64, 400 - dropped + 1);
}

#[tokio::test]
async fn fsync_durability_spools_and_uploads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path(), 1 << 30, OnFull::Reject);
    c.spool.durability = Durability::Fsync;
    let handle = AuditHandle::spawn(c).expect("spawn");
    let sink = handle.trail();
    for i in 0..20 {
        exchange(&sink, &format!("f{i}")).await;
    }
    handle.shutdown(deadline()).await;
    assert_eq!(rows(&dir.path().join("audit")).len(), 20);
    assert!(sink.spool_stats().fsyncs.load(Ordering::Relaxed) > 0);
}

#[test]
fn sequence_numbers_continue_after_every_segment_was_released() {
    use crate::spool::RecordKind;
    let dir = tempfile::tempdir().expect("tempdir");
    let (spool, _) = Spool::open(SpoolConfig::new(dir.path())).expect("open");
    for _ in 0..3 {
        spool.append_nowait(RecordKind::ROW, b"x").expect("append");
    }
    let sealed = spool.seal().expect("seal").expect("segment");
    spool
        .release_through(sealed.last.expect("last"))
        .expect("release");
    drop(spool);
    let (spool, _) = Spool::open(SpoolConfig::new(dir.path())).expect("reopen");
    assert_eq!(spool.next_seq(), 3);
    drop(spool);
    let (spool, _) = Spool::open(SpoolConfig::new(dir.path())).expect("reopen");
    assert_eq!(spool.next_seq(), 3);
}

/// A row as the JSON-era spool stored it (custody before the binary encoding):
/// the `serde_json` rendering of a schema-v4 record, every field present.
const JSON_ERA_ROW: &str = r#"{"event_time":"2026-03-06T14:32:07.891234Z","request_id":"json-done","session_id":"sess_1","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","schema_version":4,"principal":{"sub":"alice","org":"example","role":"clinician","roles":["clinician","reader"],"issuer":"https://idp.example.org"},"action":{"kind":"llm","route":"openai","method":"POST","path":"/openai/v1/chat/completions","upstream":"https://api.openai.com/v1/chat/completions","tool":null,"parameters":"{\"model\":\"gpt-4o\"}","operation":"chat.completions","inspected":true,"model_tool_calls":[{"id":"call_1","name":"search"}]},"policy":{"decision":"allow","rule":"r1","scopes":["llm:chat"],"version":"sha256:9f1c"},"content_safety":{"pii_detected":true,"redactions":[{"kind":"EMAIL","path":"$.messages[0].content","count":1,"action":"redact"}]},"usage":{"model":"gpt-4o","input_tokens":12,"output_tokens":34,"estimated_cost_usd":0.30000000000000004,"cached_input_tokens":null,"cache_creation_input_tokens":null},"outcome":{"status":200,"duration_ms":812.5,"error":null,"bytes_in":100,"bytes_out":200},"session_step":3,"session_source":"header","span_id":"00f067aa0ba902b7","parent_span_id":null,"links":{"tool_call_id":null,"model_request_id":null,"tool_results":[{"tool_call_id":"call_0","model_request_id":"req_0"}]}}"#;

#[tokio::test]
async fn a_spool_written_with_json_rows_replays_after_an_upgrade() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), 1 << 30, OnFull::Reject);
    let done: AuditRecord = serde_json::from_str(JSON_ERA_ROW).expect("json-era row");
    let json = |id: &str| JSON_ERA_ROW.replace("json-done", id).into_bytes();
    let keyed = |key: u64, id: &str| {
        let mut p = key.to_le_bytes().to_vec();
        p.extend_from_slice(&json(id));
        p
    };
    {
        // What the previous version left: a completed exchange, an intent whose
        // request never finished (carried once), and a refused request's row.
        let (spool, _) = Spool::open(cfg.spool.clone()).expect("open");
        let intent = spool
            .append_nowait(envelope::INTENT, &json("json-done"))
            .expect("append");
        let killed = spool
            .append_nowait(envelope::INTENT, &json("json-killed"))
            .expect("append");
        spool
            .append_nowait(envelope::COMPLETION, &keyed(intent.seq, "json-done"))
            .expect("append");
        spool
            .append_nowait(envelope::ROW, &json("json-denied"))
            .expect("append");
        spool.seal().expect("seal");
        spool
            .append_nowait(envelope::CARRY, &keyed(killed.seq, "json-killed"))
            .expect("append");
    }
    let handle = AuditHandle::spawn(cfg).expect("spawn");
    let sink = handle.trail();
    // A new request, binary-encoded, in the same trail.
    exchange(&sink, "binary").await;
    let report = handle.shutdown(deadline()).await;
    assert!(report.drained, "{report:?}");
    assert_eq!(sink.stats().undecodable_records.load(Ordering::Relaxed), 0);
    let mut got = rows(&dir.path().join("audit"));
    got.sort();
    assert_eq!(
        got,
        [
            ("binary".to_owned(), None),
            ("json-denied".to_owned(), None),
            ("json-done".to_owned(), None),
            ("json-killed".to_owned(), Some(INCOMPLETE.to_owned())),
        ]
    );
    // The JSON-era row reached Parquet with every field intact.
    let file = files(&dir.path().join("audit"))
        .into_iter()
        .next()
        .expect("a file");
    let bytes = bytes::Bytes::from(std::fs::read(file).expect("read"));
    let batch = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .expect("parquet")
        .build()
        .expect("reader")
        .next()
        .expect("a batch")
        .expect("batch");
    // With the number the file gave it.
    let numbered = batch
        .column_by_name("row_seq")
        .and_then(|c| c.as_any().downcast_ref::<arrow_array::Int64Array>())
        .expect("row_seq")
        .value(0);
    let want = crate::batch::to_record_batch(&[AuditRecord {
        row_seq: Some(numbered),
        ..done
    }])
    .expect("batch");
    assert_eq!(batch.slice(0, 1).columns(), want.columns());
}

#[tokio::test]
async fn requests_not_recorded_before_a_stop_get_their_gap_row_after_the_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = dir.path().join("audit");
    std::fs::write(&blocker, b"not a directory").expect("write");
    let handle = AuditHandle::spawn(config(dir.path(), 64 << 10, OnFull::Drop)).expect("spawn");
    let sink = handle.trail();
    let dropped = exchanges_dropping(&sink);
    assert!(dropped > 0);
    // Stops with the spool still full and the sink still blocked: the gap row
    // cannot be spooled, so only the GAPS file knows the count.
    let report = handle
        .shutdown(Instant::now() + Duration::from_millis(200))
        .await;
    assert!(!report.drained);
    assert_eq!(sink.stats().gap_rows.load(Ordering::Relaxed), 0);
    drop(sink);

    std::fs::remove_file(&blocker).expect("unblock");
    let handle = AuditHandle::spawn(config(dir.path(), 64 << 10, OnFull::Drop)).expect("respawn");
    let sink = handle.trail();
    sink.flush().await;
    sink.flush().await;
    assert_eq!(sink.stats().gap_rows.load(Ordering::Relaxed), 1);
    handle.shutdown(deadline()).await;
    let got = rows(&blocker);
    let gaps: Vec<_> = got
        .iter()
        .filter(|(id, _)| id.starts_with("gap_"))
        .collect();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert!(
        gaps[0]
            .1
            .as_deref()
            .is_some_and(|e| e.starts_with(&format!("gap: {dropped} requests not recorded"))),
        "{gaps:?}"
    );
    assert_eq!(got.len() as u64, 400 - dropped + 1);
    drop(sink);

    // Written once: a third start has nothing left to report.
    let handle = AuditHandle::spawn(config(dir.path(), 64 << 10, OnFull::Drop)).expect("respawn");
    handle.trail().flush().await;
    assert_eq!(handle.trail().stats().gap_rows.load(Ordering::Relaxed), 0);
    handle.shutdown(deadline()).await;
    assert_eq!(rows(&blocker).len(), got.len());
}

/// Leaves what a process killed inside the roller's `write_gap` leaves: a spool
/// segment not uploaded yet, and `GAPS` with `window` being written; with
/// `spooled`, its row is in that segment already (killed after the append, before
/// the file was cleared). Returns the sink's directory.
async fn killed_while_writing_a_gap_row(
    root: &Path,
    window: super::gaps::GapWindow,
    spooled: bool,
) -> PathBuf {
    let blocker = root.join("audit");
    std::fs::write(&blocker, b"not a directory").expect("write");
    let handle = AuditHandle::spawn(config(root, 1 << 20, OnFull::Drop)).expect("spawn");
    let sink = handle.trail();
    exchange(&sink, "before").await;
    if spooled {
        sink.record(&window.row());
    }
    handle
        .shutdown(Instant::now() + Duration::from_millis(200))
        .await;
    drop(sink);
    let (mut file, _) = super::gaps::GapFile::open(&root.join("spool")).expect("gaps");
    file.store(&super::gaps::Windows {
        writing: Some(window),
        open: None,
    });
    std::fs::remove_file(&blocker).expect("unblock");
    blocker
}

fn a_window() -> super::gaps::GapWindow {
    super::gaps::GapWindow {
        id: 0x0123_4567_89ab_cdef_0123_4567_89ab_cdef,
        first: 1_790_000_000_000_000,
        last: 1_790_000_001_000_000,
        count: 7,
        rejected: 0,
    }
}

#[tokio::test]
async fn a_gap_row_spooled_just_before_a_kill_is_not_written_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = a_window();
    let audit = killed_while_writing_a_gap_row(dir.path(), w, true).await;
    let handle = AuditHandle::spawn(config(dir.path(), 1 << 20, OnFull::Drop)).expect("respawn");
    handle.trail().flush().await;
    handle.trail().flush().await;
    assert_eq!(handle.trail().stats().gap_rows.load(Ordering::Relaxed), 0);
    handle.shutdown(deadline()).await;
    let got = rows(&audit);
    let id = super::gaps::row_id(w.id);
    assert_eq!(got.iter().filter(|(r, _)| *r == id).count(), 1, "{got:?}");
    assert_eq!(got.len(), 2, "{got:?}");
    // And the file no longer holds it: a third start writes nothing.
    let handle = AuditHandle::spawn(config(dir.path(), 1 << 20, OnFull::Drop)).expect("respawn");
    handle.trail().flush().await;
    assert_eq!(handle.trail().stats().gap_rows.load(Ordering::Relaxed), 0);
    handle.shutdown(deadline()).await;
    assert_eq!(rows(&audit).len(), 2);
}

#[tokio::test]
async fn a_gap_row_not_yet_spooled_at_a_kill_is_written_after_the_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = a_window();
    let audit = killed_while_writing_a_gap_row(dir.path(), w, false).await;
    let handle = AuditHandle::spawn(config(dir.path(), 1 << 20, OnFull::Drop)).expect("respawn");
    handle.trail().flush().await;
    handle.trail().flush().await;
    assert_eq!(handle.trail().stats().gap_rows.load(Ordering::Relaxed), 1);
    handle.shutdown(deadline()).await;
    let got = rows(&audit);
    let id = super::gaps::row_id(w.id);
    let gap: Vec<_> = got.iter().filter(|(r, _)| *r == id).collect();
    assert_eq!(gap.len(), 1, "{got:?}");
    assert!(
        gap[0]
            .1
            .as_deref()
            .is_some_and(|e| e.starts_with("gap: 7 requests not recorded")),
        "{gap:?}"
    );
    assert_eq!(got.len(), 2, "{got:?}");
}

#[tokio::test]
async fn policy_files_are_stored_by_their_hash_and_listed_by_the_next_digest() {
    use crate::digest::{Digest, DigestConfig, PolicyEntry, SigningKey};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path(), 1 << 30, OnFull::Reject);
    let (_, key) = SigningKey::generate().expect("key");
    c.digests = Some(DigestConfig {
        interval: Duration::from_secs(3600),
        key: std::sync::Arc::new(key),
    });
    let sink = dir.path().join("audit");
    let first = bytes::Bytes::from_static(b"roles: {}\n");
    let second = bytes::Bytes::from_static(b"# reloaded\nroles: {}\n");
    // Something else is already stored under the second policy's name: it is left
    // as it is, and the digest lists what custody enforced, for verify to flag.
    let (first_entry, second_entry) = (PolicyEntry::of(&first), PolicyEntry::of(&second));
    std::fs::create_dir_all(sink.join("policies")).expect("mkdir");
    std::fs::write(
        sink.join(&second_entry.key),
        b"roles: {everyone: {grants: [\"*\"]}}\n",
    )
    .expect("write");
    let handle = AuditHandle::spawn(c).expect("spawn");
    let trail = handle.trail();
    trail.publish_policy(first.clone());
    trail.publish_policy(second.clone());
    // The same policy again (a reload back to it) is stored and listed once.
    trail.publish_policy(first.clone());
    handle.shutdown(deadline()).await;

    assert!(first_entry.key.starts_with("policies/") && first_entry.key.ends_with(".yaml"));
    assert_eq!(
        std::fs::read(sink.join(&first_entry.key)).expect("stored"),
        first
    );
    assert_ne!(
        std::fs::read(sink.join(&second_entry.key)).expect("kept"),
        second
    );
    let mut listed = Vec::new();
    for entry in walkdir(&sink.join(crate::digest::PREFIX)) {
        if entry.extension().is_some_and(|x| x == "json") {
            let digest: Digest =
                serde_json::from_slice(&std::fs::read(&entry).expect("read")).expect("digest");
            assert_eq!(digest.digest_version, crate::digest::DIGEST_VERSION);
            listed.extend(digest.policies);
        }
    }
    assert_eq!(listed, [first_entry, second_entry]);
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path);
        }
    }
    out
}
