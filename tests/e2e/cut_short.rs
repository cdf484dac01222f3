//! Rows for requests cut short say what happened, not what was announced: every
//! path that ends a request early, through the real binary, with the row's status,
//! error, `bytes_in`, `bytes_announced` and `bytes_out` checked against what the
//! test's client actually sent and received, and `/metrics` agreeing with the rows.

use crate::protocol::{PREFACE, frame};
use crate::routes;
use custody_tests::client::{post_json, send};
use custody_tests::harness::Custody;
use custody_tests::stub::Stub;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CHAT: &str = "POST /openai/v1/chat/completions HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json";

/// Writes `bytes` and reads what comes back
/// until custody closes the connection (or 3 s).
async fn raw(custody: &Custody, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(custody.tcp).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut got)).await;
    got
}

/// Writes `bytes` and closes the connection at once, as a client that goes away.
async fn gone(custody: &Custody, bytes: &[u8]) {
    let mut stream = TcpStream::connect(custody.tcp).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    stream.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(stream);
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// The body of a raw HTTP/1.1 response with a `content-length`.
fn response_body(response: &[u8]) -> &[u8] {
    let at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |p| p + 4);
    &response[at..]
}

fn row<'a>(rows: &'a [Value], tag: &str) -> &'a Value {
    let hits: Vec<&Value> = rows
        .iter()
        .filter(|r| r["client_request_id"] == tag)
        .collect();
    assert_eq!(hits.len(), 1, "one row for {tag}: {rows:#?}");
    hits[0]
}

/// `(status, error, bytes_in, bytes_announced, bytes_out)`.
fn facts(r: &Value) -> (Option<i64>, String, i64, Option<i64>, i64) {
    let o = &r["outcome"];
    (
        o["status"].as_i64(),
        o["error"].as_str().unwrap_or("").to_owned(),
        o["bytes_in"].as_i64().expect("bytes_in"),
        o["bytes_announced"].as_i64(),
        o["bytes_out"].as_i64().expect("bytes_out"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_cut_short_are_recorded_as_they_ended() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&format!(
        "{}limits: {{max_request_body: 64KiB}}\n",
        routes(&stub)
    ));
    let body30 = &br#"{"model":"gpt-4o-mini","messag"#[..];
    assert_eq!(body30.len(), 30);

    // 1. Content-Length 1000, 30 bytes sent, then the client closes.
    let head = format!("{CHAT}\r\nx-request-id: cl\r\ncontent-length: 1000\r\n\r\n");
    gone(&custody, &[head.as_bytes(), body30].concat()).await;

    // 2. A chunked body cut after one 45-byte chunk.
    let chunk = [b'x'; 45];
    let head =
        format!("{CHAT}\r\nx-request-id: chunked\r\ntransfer-encoding: chunked\r\n\r\n2d\r\n");
    gone(&custody, &[head.as_bytes(), &chunk, b"\r\n"].concat()).await;

    // 3. A malformed chunk size: 400, and the client gets the answer.
    let head = format!("{CHAT}\r\nx-request-id: bad-chunk\r\ntransfer-encoding: chunked\r\n\r\n");
    let got = raw(
        &custody,
        &[head.as_bytes(), b"5\r\nhello\r\nzz\r\n"].concat(),
    )
    .await;
    assert!(
        got.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let bad_chunk_answer = response_body(&got).len() as i64;

    // 4. A body announced larger than limits.max_request_body: refused unread.
    let head = format!("{CHAT}\r\nx-request-id: too-large\r\ncontent-length: 100000\r\n\r\n");
    let got = raw(&custody, head.as_bytes()).await;
    assert!(
        got.starts_with(b"HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let too_large_answer = response_body(&got).len() as i64;

    // 5. HTTP/2: 30 bytes of a 1000-byte body, then the client resets the stream.
    let path = b"/openai/v1/chat/completions";
    let mut block = vec![0x83, 0x86, 0x44, path.len() as u8];
    block.extend_from_slice(path);
    block.extend_from_slice(&[0x41, 9]);
    block.extend_from_slice(b"localhost");
    for (name, value) in [("content-length", "1000"), ("x-request-id", "h2-reset")] {
        block.push(0x00);
        block.push(name.len() as u8);
        block.extend_from_slice(name.as_bytes());
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(0x4, 0, 0, &[]));
    bytes.extend(frame(0x1, 0x4, 1, &block)); // END_HEADERS
    bytes.extend(frame(0x0, 0, 1, body30));
    let mut stream = TcpStream::connect(custody.tcp).await.expect("connect");
    stream.write_all(&bytes).await.expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream
        .write_all(&frame(0x3, 0, 1, &8u32.to_be_bytes())) // RST_STREAM CANCEL
        .await
        .expect("reset");
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stream);

    // 6. The client goes away while custody waits for the upstream.
    let head =
        "GET /openai/slow?ms=3000 HTTP/1.1\r\nhost: localhost\r\nx-request-id: waiting\r\n\r\n";
    let mut stream = TcpStream::connect(custody.tcp).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stream);

    // 7. The client goes away mid-response: it reads the first event of a held
    // stream, then closes.
    let mut req = post_json(
        "/openai/v1/chat/completions",
        &json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    req.headers_mut()
        .insert("x-stub-gate", "1".parse().expect("header"));
    req.headers_mut()
        .insert("x-request-id", "mid-response".parse().expect("header"));
    let response = send(&custody.tcp(), req).await.expect("response");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut received = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("frame").into_data() {
            received += data.len() as i64;
            break;
        }
    }
    drop(body);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stub.release();

    // Wait for the slow upstream's row (its exchange ends when custody notices).
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let none: f64 = ["allow", "deny", "none"]
        .iter()
        .filter_map(|d| {
            custody.metric(&format!(
                "custody_requests_total{{route=\"openai\",decision=\"{d}\",code=\"none\"}}"
            ))
        })
        .sum();
    custody.stop();
    let rows = custody.rows();

    let (status, error, bytes_in, announced, bytes_out) = facts(row(&rows, "cl"));
    assert_eq!(
        (status, bytes_in, announced, bytes_out),
        (None, 30, Some(1000), 0)
    );
    assert_eq!(
        error,
        "the client closed the connection while sending the request body, after 30 of 1000 bytes"
    );

    let (status, error, bytes_in, announced, bytes_out) = facts(row(&rows, "chunked"));
    assert_eq!(
        (status, bytes_in, announced, bytes_out),
        (None, 45, None, 0)
    );
    assert!(
        error.starts_with(
            "the client closed the connection while sending the request body, after 45 bytes"
        ),
        "{error}"
    );

    let (status, error, bytes_in, _, bytes_out) = facts(row(&rows, "bad-chunk"));
    assert_eq!(
        (status, bytes_in, bytes_out),
        (Some(400), 5, bad_chunk_answer)
    );
    assert!(
        error.starts_with("malformed request: reading the request body"),
        "{error}"
    );

    let (status, error, bytes_in, announced, bytes_out) = facts(row(&rows, "too-large"));
    assert_eq!(
        (status, bytes_in, announced, bytes_out),
        (Some(413), 0, Some(100_000), too_large_answer)
    );
    assert!(error.contains("limits.max_request_body"), "{error}");

    let (status, error, bytes_in, announced, bytes_out) = facts(row(&rows, "h2-reset"));
    assert_eq!(
        (status, bytes_in, announced, bytes_out),
        (None, 30, Some(1000), 0),
        "{error}"
    );
    assert!(error.starts_with("the client closed the connection while sending the request body, after 30 of 1000 bytes"), "{error}");

    let (status, error, bytes_in, _, bytes_out) = facts(row(&rows, "waiting"));
    assert_eq!((status, bytes_in, bytes_out), (None, 0, 0), "{error}");
    assert!(error.starts_with("client went away"), "{error}");

    let (status, error, _, _, bytes_out) = facts(row(&rows, "mid-response"));
    assert_eq!((status, bytes_out), (Some(200), received), "{error}");
    assert!(
        error.starts_with("client went away before the response body was complete"),
        "{error}"
    );

    // /metrics counts what the rows say: requests nobody was answered are code none.
    let unanswered = rows
        .iter()
        .filter(|r| r["action"]["route"] == "openai" && r["outcome"]["status"].is_null())
        .count();
    assert_eq!(none, unanswered as f64);
}
