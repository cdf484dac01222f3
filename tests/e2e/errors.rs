//! custody's own answers: every error is JSON with a type, a message and custody's
//! key for the request, and every one leaves exactly one audit row.

use crate::routes;
use bytes::Bytes;
use custody_tests::client::{ChunkedBody, Target, request, send, send_collect};
use custody_tests::harness::{Custody, free_port};
use custody_tests::rows::is_key;
use custody_tests::stub::Stub;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn expect_json_error(
    target: &Target,
    req: http::Request<Full<Bytes>>,
    status: u16,
    error_type: &str,
) -> Value {
    let client_id = req.headers().get("x-request-id").cloned();
    let (parts, body) = send_collect(target, req).await.expect("request");
    assert_eq!(parts.status, status, "{}", String::from_utf8_lossy(&body));
    assert_eq!(parts.headers["content-type"], "application/json");
    let v: Value = serde_json::from_slice(&body).expect("JSON error body");
    assert_eq!(v["error"]["type"], error_type, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    let key = parts.headers["x-custody-request-id"]
        .to_str()
        .expect("ascii");
    assert!(is_key(key), "{key}");
    assert_eq!(
        v["error"]["request_id"], key,
        "the error names custody's key"
    );
    // `x-request-id` answers with the client's own id, else the key.
    match client_id {
        Some(id) => assert_eq!(parts.headers["x-request-id"], id),
        None => assert_eq!(parts.headers["x-request-id"], key),
    }
    v
}

/// The one row of the request sent with `x-request-id: <client_id>`, whose key is
/// the one the error named.
fn row_for<'a>(rows: &'a [Value], client_id: &str) -> &'a Value {
    let matching: Vec<_> = rows
        .iter()
        .filter(|r| r["client_request_id"] == client_id)
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "exactly one row for {client_id}: {rows:#?}"
    );
    assert!(is_key(matching[0]["request_id"].as_str().expect("key")));
    matching[0]
}

#[tokio::test]
async fn unknown_route_is_404() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&routes(&stub));
    let req = request("GET", "/nowhere/x")
        .header("x-request-id", "r404")
        .body(Full::default())
        .expect("req");
    let v = expect_json_error(&custody.unix(), req, 404, "route_not_found").await;
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("message")
            .contains("/openai")
    );
    custody.stop();
    let rows = custody.rows();
    let row = row_for(&rows, "r404");
    assert_eq!(row["request_id"], v["error"]["request_id"], "the row's key");
    assert_eq!(row["outcome"]["status"], 404);
    assert!(row["action"]["route"].is_null());
    assert_eq!(row["action"]["kind"], "http");
    assert!(
        row["outcome"]["error"]
            .as_str()
            .expect("error")
            .contains("no route")
    );
}

#[tokio::test]
async fn oversized_bodies_are_413_whether_declared_or_streamed() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&format!(
        "{}limits:\n  max_request_body: 1KiB\n",
        routes(&stub)
    ));
    let big = Bytes::from(vec![b'a'; 2048]);
    let req = request("POST", "/openai/v1/chat/completions")
        .header("x-request-id", "declared")
        .body(Full::new(big.clone()))
        .expect("req");
    expect_json_error(&custody.tcp(), req, 413, "body_too_large").await;

    // Chunked: no Content-Length, so the limit is enforced while reading.
    let mut sender = custody_tests::client::http1(&custody.tcp())
        .await
        .expect("connect");
    let req = request("POST", "/openai/v1/chat/completions")
        .header("x-request-id", "chunked")
        .body(ChunkedBody::new([big.slice(..600), big.slice(600..)]))
        .expect("req");
    let resp = sender.send_request(req).await.expect("response");
    assert_eq!(resp.status(), 413);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["error"]["type"], "body_too_large");

    // At the limit is fine.
    let req = request("POST", "/tools/echo/x")
        .header("x-request-id", "fits")
        .body(Full::new(big.slice(..1024)))
        .expect("req");
    let (parts, _) = send_collect(&custody.tcp(), req).await.expect("request");
    assert_eq!(parts.status, 200);

    custody.stop();
    let rows = custody.rows();
    assert_eq!(rows.len(), 3);
    assert_eq!(row_for(&rows, "declared")["outcome"]["status"], 413);
    // Refused on its announced length: nothing read (schema v6), the length kept
    // apart.
    assert_eq!(row_for(&rows, "declared")["outcome"]["bytes_in"], 0);
    assert_eq!(
        row_for(&rows, "declared")["outcome"]["bytes_announced"],
        2048
    );
    assert_eq!(row_for(&rows, "chunked")["outcome"]["status"], 413);
    assert_eq!(row_for(&rows, "fits")["outcome"]["bytes_in"], 1024);
}

#[tokio::test]
async fn unreachable_upstream_is_502_and_slow_upstream_is_504() {
    let stub = Stub::start().await;
    let dead = free_port();
    let mut custody = Custody::start(&format!(
        "routes:\n  - {{name: dead, prefix: /dead, upstream: 'http://127.0.0.1:{dead}', kind: http}}\n  - {{name: slow, prefix: /slow, upstream: '{}', kind: http}}\nupstream:\n  response_header_timeout: 300ms\n",
        stub.url()
    ));
    let req = request("GET", "/dead/x")
        .header("x-request-id", "r502")
        .body(Full::default())
        .expect("req");
    let v = expect_json_error(&custody.unix(), req, 502, "upstream_unreachable").await;
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("message")
            .contains(&format!("127.0.0.1:{dead}"))
    );
    let req = request("GET", "/slow/slow?ms=3000")
        .header("x-request-id", "r504")
        .body(Full::default())
        .expect("req");
    let v = expect_json_error(&custody.unix(), req, 504, "upstream_timeout").await;
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("message")
            .contains("300ms"),
        "{v}"
    );
    custody.stop();
    let rows = custody.rows();
    assert_eq!(rows.len(), 2);
    let r502 = row_for(&rows, "r502");
    assert_eq!(r502["outcome"]["status"], 502);
    assert_eq!(
        r502["action"]["upstream"],
        format!("http://127.0.0.1:{dead}/x")
    );
    let r504 = row_for(&rows, "r504");
    assert_eq!(r504["outcome"]["status"], 504);
    let ms = r504["outcome"]["duration_ms"].as_f64().expect("duration");
    assert!(
        ms >= 300.0,
        "timed out after the configured 300ms, took {ms}"
    );
}

#[tokio::test]
async fn an_upstream_that_accepts_then_closes_is_upstream_closed_not_unreachable() {
    // Accepts, reads the request, and closes without a byte of answer.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf).await;
            drop(conn);
        }
    });
    let mut custody = Custody::start(&format!(
        "routes:\n  - {{name: closing, prefix: /closing, upstream: 'http://{addr}', kind: http}}\n"
    ));
    let req = request("GET", "/closing/x")
        .header("x-request-id", "closed")
        .body(Full::default())
        .expect("req");
    let v = expect_json_error(&custody.unix(), req, 502, "upstream_closed").await;
    let message = v["error"]["message"].as_str().expect("message");
    assert!(
        message.contains(&format!(
            "upstream http://{addr} closed the connection before answering"
        )),
        "{message}"
    );
    custody.stop();
    let rows = custody.rows();
    let r = row_for(&rows, "closed");
    assert_eq!(r["outcome"]["status"], 502);
    let error = r["outcome"]["error"].as_str().expect("outcome.error");
    assert!(
        error.contains("closed the connection before answering"),
        "{error}"
    );
    assert!(!error.contains("unreachable"), "{error}");
}

#[tokio::test]
async fn malformed_http_gets_400_and_a_row() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&routes(&stub));
    let mut s = tokio::net::UnixStream::connect(&custody.socket)
        .await
        .expect("connect");
    s.write_all(b"THIS IS NOT HTTP\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    // A broken chunked body reaches the pipeline and gets custody's JSON 400.
    let mut s = tokio::net::TcpStream::connect(custody.tcp)
        .await
        .expect("connect");
    s.write_all(b"POST /openai/v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nx-request-id: badchunk\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nxx\r\n").await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("\"type\":\"bad_request\""), "{text}");
    custody.stop();
    let rows = custody.rows();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let garbage = rows
        .iter()
        .find(|r| r["client_request_id"] != "badchunk")
        .expect("row for the garbage");
    assert_eq!(garbage["outcome"]["status"], 400);
    assert!(
        garbage["outcome"]["error"]
            .as_str()
            .expect("error")
            .starts_with("malformed HTTP request")
    );
    assert_eq!(row_for(&rows, "badchunk")["outcome"]["status"], 400);
}

#[tokio::test]
async fn stalled_stream_is_cut_by_the_idle_timeout_and_recorded() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&format!(
        "{}upstream:\n  idle_timeout: 300ms\n",
        routes(&stub)
    ));
    // The openai route's upstream base is the stub's root, so /openai/stall → /stall.
    let req = request("GET", "/openai/stall")
        .header("x-request-id", "stalled")
        .body(Full::default())
        .expect("req");
    let resp = send(&custody.tcp(), req).await.expect("response");
    assert_eq!(resp.status(), 200);
    let result = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .expect("cut in time");
    assert!(result.is_err(), "the client sees the stream end abnormally");
    custody.stop();
    let rows = custody.rows();
    let row = row_for(&rows, "stalled");
    assert_eq!(row["outcome"]["status"], 200);
    assert_eq!(row["outcome"]["bytes_out"], 12);
    assert!(
        row["outcome"]["error"]
            .as_str()
            .expect("error")
            .contains("idle"),
        "{row}"
    );
}

#[tokio::test]
async fn client_leaving_mid_stream_is_recorded() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&routes(&stub));
    let req = request("GET", "/openai/stall")
        .header("x-request-id", "left")
        .body(Full::default())
        .expect("req");
    let resp = send(&custody.unix(), req).await.expect("response");
    let mut body = resp.into_body();
    let first = body.frame().await.expect("frame").expect("ok");
    assert!(first.is_data());
    drop(body);
    // Give custody a moment to notice the closed connection before stopping it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    custody.stop();
    let rows = custody.rows();
    let row = row_for(&rows, "left");
    assert!(
        row["outcome"]["error"]
            .as_str()
            .expect("error")
            .contains("went away"),
        "{row}"
    );
}
