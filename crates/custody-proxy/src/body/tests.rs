//! The exactly-once core in process: every way an [`Exchange`] or an
//! [`AuditedBody`] can end records exactly one row, with the status, error and
//! byte count of how it really ended.
//!
//! The sink is a real [`AuditTrail`] spooling into a temporary directory and
//! shipping to a local one; each test shuts it down (everything spooled is built
//! and uploaded) and reads the Parquet rows back, so a second row, a missing row or
//! an intent left without its completion (`incomplete: ...`) would all show. The
//! upstream is a hyper client connection over an in-memory pipe whose server end
//! the test writes by hand (headers, body bytes, a stall, a hang-up); the client is
//! the test polling, or dropping, the body.

use super::*;
use crate::config::Config;
use custody_audit::ship::{ShipConfig, SinkUrl};
use custody_audit::spool::SpoolConfig;
use custody_audit::{AuditHandle, OnFull, TrailConfig};
use custody_core::{Action, ActionKind};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// An audit path on a temporary directory.
struct Audit {
    dir: tempfile::TempDir,
    handle: AuditHandle,
    metrics: Arc<Metrics>,
    cut: CancellationToken,
}

impl Audit {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = TrailConfig {
            ship: ShipConfig::new(SinkUrl::Local {
                dir: dir.path().join("audit"),
            }),
            spool: SpoolConfig::new(dir.path().join("spool")),
            on_full: OnFull::Reject,
            roll_rows: 100_000,
            roll_age: Duration::from_secs(3600),
            instance: "test".into(),
            digests: None,
            ephemeral_spool: false,
        };
        let handle = AuditHandle::spawn(config).expect("audit path");
        Self {
            dir,
            handle,
            metrics: Arc::new(Metrics::new(&Config::defaults())),
            cut: CancellationToken::new(),
        }
    }

    /// A new exchange for request `id`, as the pipeline makes one.
    fn exchange(&self, id: &str) -> Exchange {
        let record = AuditRecord::new(
            SystemTime::now(),
            id.into(),
            Action::new(ActionKind::Http, "GET", "/"),
        );
        Exchange::new(
            self.handle.trail(),
            self.cut.clone(),
            Instant::now(),
            record,
            self.metrics.clone(),
            None,
        )
    }

    /// An exchange for request `id` whose intent is spooled: about to be forwarded.
    async fn forwarded(&self, id: &str) -> Exchange {
        let mut ex = self.exchange(id);
        ex.spool_intent().await.expect("intent spooled");
        ex
    }

    /// Uploads everything recorded and returns every row in the trail.
    async fn rows(self) -> Vec<Value> {
        self.stop(Duration::from_secs(10), true).await
    }

    /// Shuts the audit path down within `within`, and returns the rows uploaded.
    async fn stop(self, within: Duration, drained: bool) -> Vec<Value> {
        let report = self
            .handle
            .shutdown(std::time::Instant::now() + within)
            .await;
        assert!(report.drained || !drained, "{report:?}");
        let mut rows = Vec::new();
        for path in parquet_files(&self.dir.path().join("audit")) {
            let file = std::fs::File::open(&path).expect("open");
            let reader = SerializedFileReader::new(file).expect("parquet");
            for row in reader.get_row_iter(None).expect("rows") {
                rows.push(json(&Field::Group(row.expect("row"))));
            }
        }
        rows
    }
}

/// The fields this file's assertions read, as JSON (others as their text).
fn json(field: &Field) -> Value {
    match field {
        Field::Group(row) => Value::Object(
            row.get_column_iter()
                .map(|(name, f)| (name.clone(), json(f)))
                .collect(),
        ),
        Field::Null => Value::Null,
        Field::Int(n) => (*n).into(),
        Field::Long(n) => (*n).into(),
        Field::Str(s) => s.as_str().into(),
        other => other.to_string().into(),
    }
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "parquet") {
                out.push(path);
            }
        }
    }
    out
}

/// How request `id`'s one row ended: `(status, error, bytes_out)`. Panics unless
/// the trail holds exactly one row for it.
fn outcome(rows: &[Value], id: &str) -> (Option<i64>, Option<String>, i64) {
    let hits: Vec<&Value> = rows.iter().filter(|r| r["request_id"] == id).collect();
    assert_eq!(hits.len(), 1, "one row for {id}: {rows:#?}");
    let o = &hits[0]["outcome"];
    (
        o["status"].as_i64(),
        o["error"].as_str().map(str::to_owned),
        o["bytes_out"].as_i64().expect("bytes_out"),
    )
}

/// The server end of an upstream connection, written by hand.
struct Upstream(DuplexStream);

impl Upstream {
    async fn send(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).await.expect("write");
        self.0.flush().await.expect("flush");
    }
}

/// A request sent to a hand-driven upstream that answers with `head` (status
/// line and headers, without the blank line): the response, its body not yet read.
async fn upstream(head: &str) -> (u16, ResponseBody, Upstream) {
    let (client, server) = tokio::io::duplex(1 << 16);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut upstream = Upstream(server);
    let response = tokio::spawn(
        sender.send_request(
            http::Request::get("/")
                .header("host", "upstream")
                .body(Empty::<Bytes>::new())
                .expect("request"),
        ),
    );
    // Answer only once the request is read, as a server does.
    let mut request = Vec::new();
    while !request.ends_with(b"\r\n\r\n") {
        let mut buf = [0; 1024];
        let n = upstream.0.read(&mut buf).await.expect("read the request");
        assert!(n > 0, "the request ended early");
        request.extend_from_slice(&buf[..n]);
    }
    upstream.send(format!("{head}\r\n\r\n").as_bytes()).await;
    let response = response.await.expect("task").expect("response headers");
    (
        response.status().as_u16(),
        ResponseBody::unpooled(response.into_body()),
        upstream,
    )
}

/// The body the client gets, relaying `inner` for `exchange`.
fn audited(inner: UpstreamBody, exchange: Exchange, status: u16) -> AuditedBody {
    audited_idle(inner, exchange, status, Duration::from_secs(30))
}

fn audited_idle(
    inner: UpstreamBody,
    exchange: Exchange,
    status: u16,
    idle: Duration,
) -> AuditedBody {
    AuditedBody::new(inner, exchange, None, None, status, idle)
}

/// The next data frame's bytes; `None` at the end.
async fn next(body: &mut AuditedBody) -> Option<Result<Bytes, StreamError>> {
    let frame = body.frame().await?;
    Some(frame.map(|f| f.into_data().unwrap_or_default()))
}

const GONE: &str = "client went away before the response body was complete";
const SHUT: &str = "custody shut down before the response body was complete (grace period over)";

#[tokio::test]
async fn a_streamed_body_read_to_the_end_records_one_row_with_every_byte() {
    let audit = Audit::start();
    let (status, incoming, mut up) = upstream("HTTP/1.1 200 OK\r\ncontent-length: 11").await;
    let mut body = audited(
        UpstreamBody::Streaming(incoming),
        audit.forwarded("full").await,
        status,
    );
    up.send(b"hello").await;
    assert_eq!(
        next(&mut body).await.expect("frame").expect("data"),
        "hello"
    );
    up.send(b" world").await;
    assert_eq!(
        next(&mut body).await.expect("frame").expect("data"),
        " world"
    );
    // Recorded at the last frame: the client may close without polling the end.
    assert!(body.exchange.is_none());
    assert!(next(&mut body).await.is_none());
    assert!(next(&mut body).await.is_none(), "stays ended");
    drop(body);

    let rows = audit.rows().await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(outcome(&rows, "full"), (Some(200), None, 11));
}

#[tokio::test]
async fn a_chunked_body_is_recorded_when_the_upstream_ends_it() {
    let audit = Audit::start();
    let (status, incoming, mut up) =
        upstream("HTTP/1.1 201 Created\r\ntransfer-encoding: chunked").await;
    let mut body = audited(
        UpstreamBody::Streaming(incoming),
        audit.forwarded("chunked").await,
        status,
    );
    up.send(b"3\r\nabc\r\n").await;
    assert_eq!(next(&mut body).await.expect("frame").expect("data"), "abc");
    assert!(body.exchange.is_some(), "not over until the last chunk");
    up.send(b"2\r\nde\r\n0\r\n\r\n").await;
    assert_eq!(next(&mut body).await.expect("frame").expect("data"), "de");
    assert!(next(&mut body).await.is_none());
    assert!(body.exchange.is_none());
    drop(body);

    let rows = audit.rows().await;
    assert_eq!(outcome(&rows, "chunked"), (Some(201), None, 5));
}

#[tokio::test]
async fn a_held_body_is_recorded_once_sent() {
    let audit = Audit::start();
    let mut body = audited(
        UpstreamBody::Held(Some(Bytes::from_static(b"redacted body"))),
        audit.forwarded("held").await,
        200,
    );
    assert_eq!(
        next(&mut body).await.expect("frame").expect("data"),
        "redacted body"
    );
    assert!(next(&mut body).await.is_none());
    drop(body);

    let rows = audit.rows().await;
    assert_eq!(outcome(&rows, "held"), (Some(200), None, 13));
}

#[tokio::test]
async fn a_client_gone_mid_stream_records_one_row_with_the_bytes_it_got() {
    let audit = Audit::start();
    let (status, incoming, mut up) = upstream("HTTP/1.1 200 OK\r\ncontent-length: 100").await;
    let mut body = audited(
        UpstreamBody::Streaming(incoming),
        audit.forwarded("gone").await,
        status,
    );
    up.send(b"0123456789").await;
    assert_eq!(
        next(&mut body).await.expect("frame").expect("data").len(),
        10
    );
    drop(body);
    // The upstream keeps sending to nobody: nothing more is recorded.
    up.send(&[b'x'; 90]).await;

    // A held body the client never read.
    let held = audited(
        UpstreamBody::Held(Some(Bytes::from_static(b"never read"))),
        audit.forwarded("unread").await,
        200,
    );
    drop(held);

    let rows = audit.rows().await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(outcome(&rows, "gone"), (Some(200), Some(GONE.into()), 10));
    assert_eq!(outcome(&rows, "unread"), (Some(200), Some(GONE.into()), 0));
}

#[tokio::test]
async fn a_body_cut_at_shutdown_says_so() {
    let audit = Audit::start();
    let (status, incoming, mut up) = upstream("HTTP/1.1 200 OK\r\ncontent-length: 100").await;
    let mut body = audited(
        UpstreamBody::Streaming(incoming),
        audit.forwarded("cut").await,
        status,
    );
    up.send(b"abcd").await;
    assert_eq!(next(&mut body).await.expect("frame").expect("data"), "abcd");
    audit.cut.cancel();
    drop(body);

    let rows = audit.rows().await;
    assert_eq!(outcome(&rows, "cut"), (Some(200), Some(SHUT.into()), 4));
}

#[tokio::test]
async fn an_upstream_failure_mid_body_records_one_row_with_its_error() {
    let audit = Audit::start();
    let (status, incoming, mut up) = upstream("HTTP/1.1 200 OK\r\ncontent-length: 100").await;
    let mut body = audited(
        UpstreamBody::Streaming(incoming),
        audit.forwarded("failed").await,
        status,
    );
    up.send(b"0123456").await;
    assert_eq!(
        next(&mut body).await.expect("frame").expect("data").len(),
        7
    );
    // The upstream hangs up 93 bytes short.
    drop(up);
    let err = match next(&mut body).await {
        Some(Err(e)) => e,
        other => panic!("an error frame, got {other:?}"),
    };
    assert!(matches!(err, StreamError::Upstream(_)), "{err:?}");
    assert!(body.exchange.is_none(), "recorded at the error");
    // The client drops the failed body: still the one row, with the upstream's error.
    assert!(next(&mut body).await.is_none());
    drop(body);

    let rows = audit.rows().await;
    let (status, error, bytes) = outcome(&rows, "failed");
    assert_eq!((status, bytes), (Some(200), 7));
    let error = error.expect("error");
    assert_eq!(error, err.to_string());
    assert!(
        error.starts_with("upstream response body failed: "),
        "{error}"
    );
}

#[tokio::test]
async fn an_idle_upstream_is_cut_after_the_idle_timeout_with_one_row() {
    let audit = Audit::start();
    let (status, incoming, mut up) = upstream("HTTP/1.1 200 OK\r\ncontent-length: 100").await;
    let idle = Duration::from_millis(800);
    let mut body = audited_idle(
        UpstreamBody::Streaming(incoming),
        audit.forwarded("idle").await,
        status,
        idle,
    );
    // Frames arriving within the timeout of each other keep the body alive, however
    // long the whole takes (here longer than the timeout).
    for _ in 0..3 {
        up.send(b"abc").await;
        assert_eq!(next(&mut body).await.expect("frame").expect("data"), "abc");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let waited = Instant::now();
    let err = match next(&mut body).await {
        Some(Err(e)) => e,
        other => panic!("an idle error, got {other:?}"),
    };
    // The timer restarted at the last frame, 300 ms before.
    let waited = waited.elapsed();
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert!(matches!(err, StreamError::Idle(d) if d == idle), "{err:?}");
    assert!(next(&mut body).await.is_none());
    drop(body);
    drop(up);

    let rows = audit.rows().await;
    assert_eq!(
        outcome(&rows, "idle"),
        (
            Some(200),
            Some("upstream response body idle for more than 800ms".into()),
            9
        )
    );
}

#[tokio::test]
async fn an_exchange_finished_explicitly_records_one_row() {
    let audit = Audit::start();
    // A request custody answered itself: no intent, a row of its own.
    audit
        .exchange("answered")
        .finish(Some(403), Some("denied".into()), 42);
    // A forwarded request: its row completes its intent.
    audit
        .forwarded("forwarded")
        .await
        .finish(Some(502), None, 0);

    let rows = audit.rows().await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(
        outcome(&rows, "answered"),
        (Some(403), Some("denied".into()), 42)
    );
    assert_eq!(outcome(&rows, "forwarded"), (Some(502), None, 0));
}

#[tokio::test]
async fn an_exchange_dropped_unfinished_records_why() {
    let audit = Audit::start();
    // A handler cancelled while waiting for the upstream.
    drop(audit.forwarded("cancelled").await);
    // Never forwarded either.
    drop(audit.exchange("early"));
    // An error the call reported already is kept, with the transport's after it.
    let mut ex = audit.forwarded("reported").await;
    ex.record().outcome.error = Some("tool failed".into());
    drop(ex);
    // Cut at shutdown.
    let ex = audit.forwarded("shutdown").await;
    audit.cut.cancel();
    drop(ex);

    let rows = audit.rows().await;
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let gone = "client went away before the response was complete";
    assert_eq!(outcome(&rows, "cancelled"), (None, Some(gone.into()), 0));
    assert_eq!(outcome(&rows, "early"), (None, Some(gone.into()), 0));
    assert_eq!(
        outcome(&rows, "reported"),
        (None, Some(format!("tool failed; then: {gone}")), 0)
    );
    assert_eq!(
        outcome(&rows, "shutdown"),
        (
            None,
            Some("custody shut down before the response was complete (grace period over)".into()),
            0
        )
    );
}

#[tokio::test]
async fn finishing_again_or_dropping_after_the_end_adds_no_row() {
    let audit = Audit::start();
    let mut body = audited(
        UpstreamBody::Held(Some(Bytes::from_static(b"xyz"))),
        audit.forwarded("once").await,
        200,
    );
    assert_eq!(next(&mut body).await.expect("frame").expect("data"), "xyz");
    assert!(next(&mut body).await.is_none());
    // Finishing again (as a later end or error would) and the drop are no-ops.
    body.finish(Some("late error".into()));
    body.finish(None);
    drop(body);

    let rows = audit.rows().await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(outcome(&rows, "once"), (Some(200), None, 3));
}

#[tokio::test]
async fn a_request_the_spool_refused_records_no_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = SpoolConfig::new(dir.path().join("spool"));
    spool.max_bytes = 4096;
    spool.segment_bytes = 4096;
    let handle = AuditHandle::spawn(TrailConfig {
        ship: ShipConfig::new(SinkUrl::Local {
            dir: dir.path().join("audit"),
        }),
        spool,
        on_full: OnFull::Reject,
        roll_rows: 100_000,
        roll_age: Duration::from_secs(3600),
        instance: "test".into(),
        digests: None,
        ephemeral_spool: false,
    })
    .expect("audit path");
    let audit = Audit {
        dir,
        handle,
        metrics: Arc::new(Metrics::new(&Config::defaults())),
        cut: CancellationToken::new(),
    };
    // Rows of requests custody answered itself fill the spool until one no longer
    // fits beside the reserve kept for completions...
    let stats = audit.handle.trail().stats().clone();
    let dropped = || {
        stats
            .rows_dropped
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    for i in 0.. {
        assert!(i < 1000, "the spool never filled");
        audit.exchange(&format!("f{i}")).finish(Some(400), None, 0);
        if dropped() > 0 {
            break;
        }
    }
    // ...and then neither does the intent of a request (a longer one).
    let mut ex = audit.exchange("refused-because-the-spool-is-full");
    assert!(ex.spool_intent().await.is_err());
    ex.finish(Some(503), Some("audit unavailable".into()), 0);
    assert_eq!(
        stats
            .rows_rejected
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(dropped(), 1);

    // (Not drained: the gap row for the requests not recorded waits for room.)
    let rows = audit.stop(Duration::from_millis(500), false).await;
    assert!(rows.iter().any(|r| r["request_id"] == "f0"), "{rows:#?}");
    assert!(
        rows.iter()
            .all(|r| r["request_id"] != "refused-because-the-spool-is-full"),
        "counted, not recorded: {rows:#?}"
    );
}
