//! Requests the protocol layer refuses before the pipeline sees them still get a
//! row — one per connection, with a count — so that every request that reached
//! custody is in the trail and a flood cannot fill the spool: HTTP/2 streams reset
//! or ended with GOAWAY for malformed or forbidden headers, a rapid-reset flood,
//! and HTTP/1 requests cut while their headers arrive (header-read timeout, or
//! the client closing).

use crate::routes;
use custody_tests::harness::Custody;
use custody_tests::stub::Stub;
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub(crate) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK block: `GET http://localhost/openai/v1/models` plus `extra` headers as
/// literals without indexing (names sent exactly as given, even upper-case).
pub(crate) fn headers(extra: &[(&str, &str)]) -> Vec<u8> {
    let path = b"/openai/v1/models";
    let mut block = vec![0x82, 0x86, 0x44, path.len() as u8];
    block.extend_from_slice(path);
    block.extend_from_slice(&[0x41, 9]);
    block.extend_from_slice(b"localhost");
    for (name, value) in extra {
        block.push(0x00);
        block.push(name.len() as u8);
        block.extend_from_slice(name.as_bytes());
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    block
}

/// Writes `bytes` on a new connection and reads until custody closes it (or 2 s).
async fn exchange(custody: &Custody, bytes: &[u8]) {
    let mut stream = TcpStream::connect(custody.tcp).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut sink = vec![0; 65536];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while stream.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    })
    .await;
}

/// Rows custody wrote without a method: the ledger's rows.
fn unrecorded(rows: &[Value]) -> Vec<&Value> {
    rows.iter()
        .filter(|r| r["action"]["method"] == "")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_refused_by_the_protocol_layer_leave_one_row_per_connection() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&routes(&stub));
    let end_headers = 0x5; // END_STREAM | END_HEADERS
    for bad in [
        vec![("X-Upper", "v")],
        vec![("connection", "keep-alive")],
        vec![("te", "gzip")],
    ] {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(0x4, 0, 0, &[]));
        bytes.extend(frame(0x1, end_headers, 1, &headers(&bad)));
        exchange(&custody, &bytes).await;
    }
    // A rapid-reset flood: 200 streams opened and cancelled at once.
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(0x4, 0, 0, &[]));
    for i in 0..200u32 {
        let id = 2 * i + 1;
        bytes.extend(frame(0x1, end_headers, id, &headers(&[])));
        bytes.extend(frame(0x3, 0, id, &8u32.to_be_bytes()));
    }
    exchange(&custody, &bytes).await;
    // custody closed the flooding connection (GOAWAY ENHANCE_YOUR_CALM), and
    // counted it.
    assert_eq!(
        custody.metric("custody_http2_connections_closed_total{reason=\"too_many_resets\"}"),
        Some(1.0)
    );
    custody.stop();
    let rows = custody.rows();
    let refused = unrecorded(&rows);
    assert_eq!(refused.len(), 4, "one row per connection: {rows:#?}");
    for r in &refused[..3] {
        let error = r["outcome"]["error"].as_str().expect("error");
        assert!(
            error.starts_with(
                "1 HTTP/2 request(s) on this connection refused by the protocol layer"
            ),
            "{error}"
        );
        assert!(
            r["outcome"]["status"].is_null(),
            "nothing was answered: {r}"
        );
    }
    let flood = refused[3]["outcome"]["error"].as_str().expect("error");
    let count: u64 = flood
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("count");
    // Every stream custody read is in the trail: refused ones counted in one row,
    // accepted ones (if any reached the pipeline before their reset) in their own.
    // custody ends the connection once the flood is detected, so it may not read
    // all 200.
    let served = rows.len() as u64 - 4;
    assert!(count + served <= 200, "{flood}; {served} served");
    assert!(count >= 20, "{flood}");
    assert!(flood.contains("the connection ended"), "{flood}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_requests_cut_while_their_headers_arrive_get_a_row() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&format!(
        "{}limits: {{header_read_timeout: 500ms}}\n",
        routes(&stub)
    ));
    let partial = b"GET /openai/v1/models HTTP/1.1\r\nhost: localhost\r\nx-a";
    // Headers that never finish: cut by the header-read timeout.
    exchange(&custody, partial).await;
    // The client closes in the middle of its headers.
    let mut stream = TcpStream::connect(custody.tcp).await.expect("connect");
    stream.write_all(partial).await.expect("write");
    stream.shutdown().await.expect("shutdown");
    let mut sink = Vec::new();
    let _ = stream.read_to_end(&mut sink).await;
    // A complete request, then an idle kept-alive connection: no extra row.
    let mut stream = TcpStream::connect(custody.tcp).await.expect("connect");
    stream
        .write_all(b"GET /openai/v1/models HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut sink = vec![0; 65536];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while stream.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    })
    .await;
    custody.stop();
    let rows = custody.rows();
    let refused = unrecorded(&rows);
    assert_eq!(refused.len(), 2, "{rows:#?}");
    for r in refused {
        let error = r["outcome"]["error"].as_str().expect("error");
        assert!(
            error.starts_with(&format!(
                "the request's headers were not received in full ({} bytes)",
                partial.len()
            )),
            "{error}"
        );
    }
    assert_eq!(
        rows.len(),
        3,
        "and one row for the complete request: {rows:#?}"
    );
}
