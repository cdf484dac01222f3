use super::*;
use crate::batch::to_record_batch;
use crate::record::{AuditRecord, Redaction, ToolResult};
use crate::{FileNamer, ParquetDirWriter};
use arrow_array::{ArrayRef, RecordBatch};
use custody_core::{Action, ActionKind};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

const T0: i64 = 1_772_807_527_000_000;

fn row(i: i64, session: Option<&str>, step: Option<i64>) -> AuditRecord {
    let at = UNIX_EPOCH + Duration::from_micros(u64::try_from(T0 + i * 1000).expect("positive"));
    let mut r = AuditRecord::new(
        at,
        format!("req-{i}"),
        Action::new(ActionKind::Llm, "POST", "/openai/v1/chat/completions"),
    );
    r.session_id = session.map(str::to_owned);
    r.session_step = step;
    r.session_source = session.map(|_| "header".to_owned());
    r.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    r.action.route = Some("openai".into());
    r.action.operation = Some("chat.completions".into());
    r.principal.sub = Some("auth0|alice".into());
    r.policy.decision = Some("allow".into());
    r.policy.rule = Some("no-policy:allow-all".into());
    r.outcome.status = Some(200);
    r.outcome.duration_ms = 1.5;
    r
}

/// A three-step session with links, plus rows of other sessions.
fn sample() -> Vec<AuditRecord> {
    let s = "hdr:0123456789abcdef:conv-42";
    let mut ask = row(1, Some(s), Some(1));
    ask.action.model_tool_calls = Some(vec![ToolCallRequest {
        id: Some("call_1".into()),
        name: "search_contacts".into(),
    }]);
    ask.usage.model = Some("gpt-4o-mini".into());
    ask.usage.input_tokens = Some(12);
    ask.usage.output_tokens = Some(3);
    ask.usage.estimated_cost_usd = Some(0.000_003_6);
    let mut tool = row(2, Some(s), Some(2));
    tool.action.kind = ActionKind::Tool;
    tool.action.tool = Some("crm:search_contacts".into());
    tool.links.tool_call_id = Some("call_1".into());
    tool.links.model_request_id = Some("req-1".into());
    tool.content_safety.pii_detected = Some(true);
    tool.content_safety.redactions = Some(vec![Redaction {
        kind: "EMAIL".into(),
        path: "response".into(),
        count: 2,
        action: "redact".into(),
        side: Some("response".into()),
        handling: Some("redacted".into()),
    }]);
    let mut answer = row(3, Some(s), Some(3));
    answer.links.tool_results = Some(vec![ToolResult {
        tool_call_id: "call_1".into(),
        model_request_id: Some("req-1".into()),
    }]);
    answer.outcome.error = Some("stream cut".into());
    vec![
        row(0, Some("hdr:0123456789abcdef:other"), Some(1)),
        ask,
        tool,
        row(4, None, None),
        answer,
        row(5, Some("hdr:fedcba9876543210:conv-42"), Some(1)),
    ]
}

fn exact(s: &str) -> SessionMatch {
    SessionMatch::Exact(s.to_owned())
}

#[test]
fn reads_back_the_rows_of_one_session_with_every_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = sample();
    ParquetDirWriter::new(dir.path(), FileNamer::new("t"))
        .write(&rows)
        .expect("write");
    let read = read_session(dir.path(), &exact("hdr:0123456789abcdef:conv-42")).expect("read");
    assert_eq!(read.files, 1);
    assert!(read.warnings.is_empty(), "{:?}", read.warnings);
    let ids: Vec<_> = read.rows.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, ["req-1", "req-2", "req-3"]);
    let (ask, tool, answer) = (&read.rows[0], &read.rows[1], &read.rows[2]);
    assert_eq!(ask.event_time, rows[1].event_time);
    assert_eq!(ask.session_step, Some(1));
    assert_eq!(ask.session_source.as_deref(), Some("header"));
    assert_eq!(ask.schema_version, Some(crate::SCHEMA_VERSION));
    assert_eq!(ask.principal.sub.as_deref(), Some("auth0|alice"));
    assert_eq!(ask.action.kind.as_deref(), Some("llm"));
    assert_eq!(ask.action.operation.as_deref(), Some("chat.completions"));
    assert_eq!(ask.action.model_tool_calls, rows[1].action.model_tool_calls);
    assert_eq!(ask.usage, rows[1].usage);
    assert_eq!(ask.policy, rows[1].policy);
    assert_eq!(ask.outcome.status, Some(200));
    assert_eq!(ask.outcome.duration_ms, Some(1.5));
    assert_eq!(tool.action.tool.as_deref(), Some("crm:search_contacts"));
    assert_eq!(tool.links, rows[2].links);
    assert_eq!(tool.content_safety, rows[2].content_safety);
    assert_eq!(answer.links, rows[4].links);
    assert_eq!(answer.outcome.error.as_deref(), Some("stream cut"));

    let json: serde_json::Value =
        serde_json::from_str(&ask.to_json_line().expect("json")).expect("parse");
    assert_eq!(json["event_time"], "2026-03-06T14:32:07.001000Z");
    assert_eq!(json["action"]["model_tool_calls"][0]["id"], "call_1");
    assert_eq!(json["links"]["tool_call_id"], serde_json::Value::Null);
}

#[test]
fn prefix_match_finds_every_session_starting_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    ParquetDirWriter::new(dir.path(), FileNamer::new("t"))
        .write(&sample())
        .expect("write");
    let read = read_session(dir.path(), &SessionMatch::Prefix("hdr:0123".into())).expect("read");
    assert_eq!(read.rows.len(), 4);
    let read = read_session(dir.path(), &exact("hdr:0123")).expect("read");
    assert!(read.rows.is_empty());
}

#[test]
fn value_subject_and_time_matches() {
    let dir = tempfile::tempdir().expect("tempdir");
    ParquetDirWriter::new(dir.path(), FileNamer::new("t"))
        .write(&sample())
        .expect("write");
    let ids = |m: &SessionMatch, since: Option<i64>| -> Vec<String> {
        let read = read_rows(dir.path(), m, since).expect("read");
        let mut ids: Vec<String> = read.rows.into_iter().map(|r| r.request_id).collect();
        ids.sort();
        ids
    };
    // The value the application sent, whoever sent it.
    let sent = SessionMatch::Value(vec!["conv-42".into()]);
    assert_eq!(ids(&sent, None), ["req-1", "req-2", "req-3", "req-5"]);
    let user = SessionMatch::Subject("0123456789abcdef".into());
    assert_eq!(ids(&user, None), ["req-0", "req-1", "req-2", "req-3"]);
    // Every row, the one without a session id too; then only the newer ones.
    assert_eq!(ids(&SessionMatch::All, None).len(), 6);
    assert_eq!(
        ids(&SessionMatch::All, Some(T0 + 3000)),
        ["req-3", "req-4", "req-5"]
    );
    assert!(ids(&SessionMatch::All, Some(T0 + 10_000)).is_empty());
    assert_eq!(id_parts("hdr:anon:a:b"), Some(("hdr", "anon", "a:b")));
    assert_eq!(id_parts("hdr:anon"), None);
}

#[test]
fn statistics_bound_the_row_groups_read() {
    assert!(may_contain(b"a", b"c", &exact("b")));
    assert!(!may_contain(b"c", b"d", &exact("b")));
    assert!(!may_contain(b"a", b"az", &exact("b")));
    let prefix = |p: &str| SessionMatch::Prefix(p.to_owned());
    assert!(may_contain(b"hdr:1", b"hdr:9", &prefix("hdr:5")));
    assert!(may_contain(b"hdr:5abc", b"hdr:5abd", &prefix("hdr:5")));
    assert!(!may_contain(b"hdr:6", b"hdr:9", &prefix("hdr:5")));
    assert!(!may_contain(b"hdr:1", b"hdr:4", &prefix("hdr:5")));

    // Sessions sorted into row groups of two rows: only one group is read.
    let dir = tempfile::tempdir().expect("tempdir");
    let rows: Vec<_> = (0..6)
        .map(|i| row(i, Some(&format!("s{}", i / 2)), Some(i % 2 + 1)))
        .collect();
    let path = dir.path().join("groups.parquet");
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(2))
        .build();
    write_batch(&path, &to_record_batch(&rows).expect("batch"), Some(props));
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(File::open(&path).expect("open")).expect("meta");
    let col = prune::leaf(builder.parquet_schema(), "session_id").expect("session_id");
    assert_eq!(builder.metadata().num_row_groups(), 3);
    assert_eq!(
        prune::row_groups(builder.metadata(), col, &exact("s1")),
        [1]
    );
    assert!(prune::row_groups(builder.metadata(), col, &exact("s9")).is_empty());
    let read = read_session(dir.path(), &exact("s1")).expect("read");
    let ids: Vec<_> = read.rows.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, ["req-2", "req-3"]);
}

use prune::may_contain;

fn write_batch(path: &Path, batch: &RecordBatch, props: Option<WriterProperties>) {
    let mut w = ArrowWriter::try_new(File::create(path).expect("create"), batch.schema(), props)
        .expect("writer");
    w.write(batch).expect("write");
    w.close().expect("close");
}

/// `batch` as a file of schema `version` holds it.
fn older(batch: &RecordBatch, version: i32) -> RecordBatch {
    crate::batch::at_version(batch, version).expect("an earlier version's batch")
}

#[test]
fn older_schema_versions_read_missing_columns_as_null() {
    let dir = tempfile::tempdir().expect("tempdir");
    let batch = to_record_batch(&sample()).expect("batch");
    // Version 3: everything before the v4 columns.
    let v3 = older(&batch, 3);
    std::fs::create_dir_all(dir.path().join("dt=2026-03-06/hour=14")).expect("mkdir");
    write_batch(
        &dir.path().join("dt=2026-03-06/hour=14/v3.parquet"),
        &v3,
        None,
    );
    write_batch(&dir.path().join("v1.parquet"), &older(&batch, 1), None);

    let read = read_session(dir.path(), &exact("hdr:0123456789abcdef:conv-42")).expect("read");
    assert_eq!(read.files, 2);
    assert!(read.warnings.is_empty(), "{:?}", read.warnings);
    assert_eq!(read.rows.len(), 6);
    for r in &read.rows {
        assert_eq!(r.session_step, None);
        assert_eq!(r.span_id, None);
        assert_eq!(r.links, Links::default());
        assert_eq!(r.principal.sub.as_deref(), Some("auth0|alice"));
        assert_eq!(r.outcome.status, Some(200));
    }
    let v1: Vec<_> = read
        .rows
        .iter()
        .filter(|r| r.action.operation.is_none())
        .collect();
    assert_eq!(v1.len(), 3, "the v1 file has no action.operation");
    assert!(v1.iter().all(|r| r.action.model_tool_calls.is_none()));
    assert!(
        v1.iter()
            .all(|r| r.policy.version.is_none() && r.policy.rule.is_some())
    );
    let v3_ask = read
        .rows
        .iter()
        .find(|r| r.request_id == "req-1" && r.action.operation.is_some())
        .expect("v3 row");
    assert_eq!(
        v3_ask.action.model_tool_calls.as_ref().map(Vec::len),
        Some(1)
    );
}

#[test]
fn a_bad_file_is_a_warning_and_the_others_are_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = ParquetDirWriter::new(dir.path(), FileNamer::new("t"))
        .write(&sample())
        .expect("write");
    let good = std::fs::read(&files[0]).expect("read");
    let part = files[0].parent().expect("partition dir");
    std::fs::write(part.join("garbage.parquet"), b"not parquet at all").expect("write");
    std::fs::write(part.join("truncated.parquet"), &good[..good.len() / 2]).expect("write");
    let mut flipped = good.clone();
    for b in &mut flipped[8..good.len() / 2] {
        *b ^= 0x5a;
    }
    std::fs::write(part.join("flipped.parquet"), &flipped).expect("write");
    // A file being written (hidden) is not read.
    std::fs::write(part.join(".t-1.parquet.tmp"), b"partial").expect("write");
    std::fs::write(part.join(".hidden.parquet"), b"partial").expect("write");
    // A Parquet file that is not an audit file.
    let other = RecordBatch::try_from_iter([(
        "x",
        Arc::new(arrow_array::Int64Array::from(vec![1_i64])) as ArrayRef,
    )])
    .expect("batch");
    write_batch(&dir.path().join("other.parquet"), &other, None);

    let read = read_session(dir.path(), &exact("hdr:0123456789abcdef:conv-42")).expect("read");
    assert_eq!(read.files, 5);
    assert_eq!(read.rows.len(), 3, "the good file is read");
    let bad: Vec<_> = read
        .warnings
        .iter()
        .map(|w| w.path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    assert_eq!(read.warnings.len(), 4, "{:?}", read.warnings);
    for name in [
        "garbage.parquet",
        "truncated.parquet",
        "flipped.parquet",
        "other.parquet",
    ] {
        assert!(bad.contains(&Some(name.to_owned())), "{name}: {bad:?}");
    }
    let message = read
        .warnings
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>();
    assert!(
        message.iter().any(|m| m.contains("not an audit file")),
        "{message:?}"
    );
}

#[test]
fn a_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope");
    let err = read_session(&missing, &exact("x")).expect_err("missing");
    assert!(matches!(err, ReadError::Dir { .. }), "{err}");
    let file = dir.path().join("f");
    std::fs::write(&file, b"").expect("write");
    assert!(matches!(
        read_session(&file, &exact("x")),
        Err(ReadError::NotADirectory(_))
    ));
}

#[test]
fn version_4_files_read_intercepted_host_as_null() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rows = sample();
    for r in &mut rows {
        r.intercepted_host = Some("api.openai.com:443".into());
    }
    let batch = to_record_batch(&rows).expect("batch");
    let v4 = older(&batch, 4);
    write_batch(&dir.path().join("v4.parquet"), &v4, None);
    write_batch(&dir.path().join("v5.parquet"), &older(&batch, 5), None);
    let read = read_session(dir.path(), &exact("hdr:0123456789abcdef:conv-42")).expect("read");
    assert!(read.warnings.is_empty(), "{:?}", read.warnings);
    assert_eq!(read.rows.len(), 6);
    let hosts: Vec<_> = read
        .rows
        .iter()
        .map(|r| r.intercepted_host.as_deref())
        .collect();
    assert_eq!(hosts.iter().filter(|h| h.is_none()).count(), 3, "{hosts:?}");
    assert_eq!(
        hosts
            .iter()
            .filter(|h| **h == Some("api.openai.com:443"))
            .count(),
        3
    );
    assert!(read.rows.iter().all(|r| r.session_step.is_some()));
}

#[test]
fn version_5_files_read_the_client_id_and_raw_path_as_null() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rows = sample();
    for r in &mut rows {
        r.client_request_id = Some(format!("client-{}", r.request_id));
        r.action.raw_path = Some("/openai//v1/chat/completions".into());
    }
    let batch = to_record_batch(&rows).expect("batch");
    // 18 columns in version 6, version 7's row_seq and version 9's anomalies.
    assert_eq!(batch.num_columns(), 20);
    let v5 = older(&batch, 5);
    assert_eq!(
        v5.schema().field(v5.num_columns() - 1).name(),
        "intercepted_host"
    );
    write_batch(&dir.path().join("v5.parquet"), &v5, None);
    write_batch(&dir.path().join("v6.parquet"), &batch, None);
    let read = read_session(dir.path(), &exact("hdr:0123456789abcdef:conv-42")).expect("read");
    assert!(read.warnings.is_empty(), "{:?}", read.warnings);
    assert_eq!(read.rows.len(), 6);
    let (v6, v5): (Vec<_>, Vec<_>) = read
        .rows
        .iter()
        .partition(|r| r.client_request_id.is_some());
    assert_eq!((v6.len(), v5.len()), (3, 3));
    for r in &v5 {
        assert_eq!(r.action.raw_path, None);
        assert_eq!(
            r.action.path.as_deref(),
            Some("/openai/v1/chat/completions")
        );
        assert!(r.session_step.is_some());
    }
    for r in &v6 {
        assert_eq!(
            r.client_request_id.as_deref(),
            Some(format!("client-{}", r.request_id).as_str())
        );
        assert_eq!(
            r.action.raw_path.as_deref(),
            Some("/openai//v1/chat/completions")
        );
    }
    let keys = |rows: &[&TrailRow]| {
        let mut k: Vec<_> = rows.iter().map(|r| r.request_id.clone()).collect();
        k.sort();
        k
    };
    assert_eq!(keys(&v5), keys(&v6));
}

#[test]
fn bloom_filters_skip_row_groups_whose_range_spans_an_absent_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut w = ParquetDirWriter::new(dir.path(), FileNamer::new("pod"));
    // Sessions "s-a" to "s-z": min/max of the one row group span every id between.
    let rows: Vec<_> = (b'a'..=b'z')
        .map(|c| row(i64::from(c), Some(&format!("s-{}", c as char)), Some(1)))
        .collect();
    let files = w.write(&rows).expect("write");
    let file = File::open(&files[0]).expect("open");
    let meta = parquet::file::serialized_reader::SerializedFileReader::new(
        File::open(&files[0]).expect("open"),
    )
    .expect("parquet");
    let schema = parquet::file::reader::FileReader::metadata(&meta)
        .file_metadata()
        .schema_descr_ptr();
    let col = prune::leaf(&schema, "session_id").expect("session_id");
    let kept = |id: &str| prune::by_bloom_filter(&file, col, vec![0], &exact(id));
    assert_eq!(kept("s-m"), [0], "a session that is there is never skipped");
    // Ids inside the min/max range that are not there: the filter rules out nearly
    // all (it is sized for a 1 % false-positive rate).
    let passed = (0..100)
        .filter(|i| !kept(&format!("s-m{i}")).is_empty())
        .count();
    assert!(passed <= 5, "{passed} of 100 absent sessions passed");
    // A prefix cannot be looked up: nothing is skipped for it.
    assert_eq!(
        prune::by_bloom_filter(&file, col, vec![0], &SessionMatch::Prefix("s-q9".into())),
        [0]
    );
    // And reading still finds exactly the rows that are there.
    let read = read_session(dir.path(), &exact("s-k")).expect("read");
    assert_eq!(read.rows.len(), 1);
    assert!(
        read_session(dir.path(), &exact("s-k7"))
            .expect("read")
            .rows
            .is_empty()
    );
}
