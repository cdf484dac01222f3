//! Compressed request bodies through the real binary: each coding reaches the
//! upstream decoded (no `Content-Encoding`, the decoded length), the row is read from
//! the decoded body, bombs are refused at the limits, undecodable bodies are refused
//! on an enforcing route and forwarded untouched elsewhere, and `/metrics` agrees.

use bytes::Bytes;
use custody_tests::client::{request, send_collect};
use custody_tests::harness::Custody;
use custody_tests::rows::row;
use custody_tests::stub::Stub;
use http_body_util::Full;
use serde_json::{Value, json};
use std::io::Write;

/// A content coding's encoder.
type Encode = fn(&[u8]) -> Vec<u8>;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("zlib");
    e.finish().expect("zlib")
}

fn br(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(data).expect("br");
    }
    out
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).expect("zstd")
}

/// An OpenAI-kind route and an MCP route to the stub's echo endpoint; content
/// safety blocks e-mail addresses on the MCP route only, so it enforces and the
/// OpenAI route does not.
fn config(stub: &Stub) -> String {
    format!(
        "routes:\n  - {{name: openai, prefix: /openai, upstream: '{u}/echo', kind: openai}}\n  - {{name: mcp, prefix: /mcp, upstream: '{u}/echo', kind: mcp}}\nsafety:\n  routes: {{mcp: {{detectors: {{EMAIL: block}}}}}}\nlimits:\n  max_request_body: 1MiB\n",
        u = stub.url()
    )
}

/// POSTs `body` with `Content-Encoding: encoding`: status, and the JSON answer.
async fn post(
    custody: &Custody,
    path: &str,
    encoding: &str,
    body: Vec<u8>,
    id: &str,
) -> (u16, Value) {
    let req = request("POST", path)
        .header("content-type", "application/json")
        .header("content-encoding", encoding)
        .header("x-request-id", id)
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let (parts, body) = send_collect(&custody.unix(), req).await.expect("send");
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (parts.status.as_u16(), v)
}

fn chat(n: usize) -> Vec<u8> {
    json!({"model": format!("gpt-4o-mini-{n}"), "messages": [{"role": "user", "content": "hello"}]})
        .to_string()
        .into_bytes()
}

/// Digits from a fixed LCG: compresses about 2:1, so it stays under the ratio cap.
fn digits(n: usize) -> Vec<u8> {
    let mut x: u64 = 42;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            b'0' + u8::try_from((x >> 33) % 10).expect("digit")
        })
        .collect()
}

fn metric(custody: &Custody, encoding: &str, result: &str) -> f64 {
    custody
        .metric(&format!(
            "custody_request_decodings_total{{encoding=\"{encoding}\",result=\"{result}\"}}"
        ))
        .unwrap_or(0.0)
}

#[tokio::test]
async fn each_coding_reaches_the_upstream_decoded_and_the_row_reads_the_decoded_body() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&config(&stub));
    let cases: [(&str, Encode); 5] = [
        ("gzip", gzip),
        ("br", br),
        ("zstd", zstd),
        ("deflate", deflate),
        ("gzip, br", |d| br(&gzip(d))),
    ];
    let mut sent = Vec::new();
    for (n, (encoding, encode)) in cases.iter().enumerate() {
        let plain = chat(n);
        let encoded = encode(&plain);
        assert_ne!(encoded, plain);
        let id = format!("chat-{n}");
        let (status, echoed) = post(
            &custody,
            "/openai/v1/chat/completions",
            encoding,
            encoded.clone(),
            &id,
        )
        .await;
        assert_eq!(status, 200, "{encoding}: {echoed}");
        assert_eq!(echoed["path"], "/echo/v1/chat/completions");
        assert_eq!(
            echoed["body"],
            String::from_utf8(plain.clone()).expect("utf-8")
        );
        assert_eq!(echoed["body_len"], plain.len());
        let headers = &echoed["headers"];
        assert!(
            headers.get("content-encoding").is_none(),
            "{encoding}: {headers}"
        );
        assert_eq!(
            headers["content-length"],
            plain.len().to_string(),
            "{encoding}"
        );
        sent.push((id, encoded.len(), n));
    }

    // MCP: the tool comes from the decoded body.
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "search_contacts", "arguments": {"q": "acme"}}});
    let plain = call.to_string().into_bytes();
    let (status, echoed) = post(&custody, "/mcp/mcp", "gzip", gzip(&plain), "mcp-call").await;
    assert_eq!(status, 200, "{echoed}");
    assert_eq!(echoed["body"], call.to_string());
    assert!(echoed["headers"].get("content-encoding").is_none());
    assert_eq!(echoed["headers"]["content-length"], plain.len().to_string());

    assert_eq!(metric(&custody, "gzip", "decoded"), 2.0);
    for encoding in ["br", "zstd", "deflate", "stacked"] {
        assert_eq!(metric(&custody, encoding, "decoded"), 1.0, "{encoding}");
    }
    custody.stop();
    let rows = custody.rows();
    for (id, wire, n) in sent {
        let r = row(&rows, &id);
        assert_eq!(r["action"]["operation"], "chat.completions", "{id}");
        assert_eq!(r["usage"]["model"], format!("gpt-4o-mini-{n}"), "{id}");
        assert_eq!(r["action"]["inspected"], true, "{id}");
        assert_eq!(r["outcome"]["bytes_in"], wire, "bytes on the wire: {id}");
    }
    let r = row(&rows, "mcp-call");
    assert_eq!(r["action"]["tool"], "mcp:search_contacts");
    assert_eq!(r["action"]["operation"], "tools/call");
    assert!(
        r["action"]["parameters"]
            .as_str()
            .is_some_and(|p| p.contains("acme")),
        "{r}"
    );
}

#[tokio::test]
async fn bombs_and_undecodable_bodies_are_refused_with_a_row() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&config(&stub));

    // 4 MiB of zeros: ~4 KiB of gzip, far more than 100 times that.
    let bomb = gzip(&vec![0u8; 4 << 20]);
    let (status, body) = post(
        &custody,
        "/openai/v1/chat/completions",
        "gzip",
        bomb,
        "bomb",
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["type"], "decompression_ratio_exceeded");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("limits.max_decompression_ratio"),
        "{message}"
    );

    // 1.5 MiB of digits compress about 2:1: within the ratio, over the body limit.
    let big = zstd(&digits(3 << 19));
    assert!(big.len() < 1 << 20);
    let (status, body) = post(&custody, "/openai/v1/chat/completions", "zstd", big, "big").await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["type"], "decoded_body_too_large");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("limits.max_request_body"), "{message}");

    // The MCP route enforces content safety: what custody cannot read is refused.
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "search_contacts", "arguments": {"q": "acme"}}})
    .to_string()
    .into_bytes();
    let req = request("POST", "/mcp/mcp")
        .header("content-encoding", "compress")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "search_contacts")
        .header("x-request-id", "unknown")
        .body(Full::new(Bytes::from(call.clone())))
        .expect("request");
    let (parts, body) = send_collect(&custody.unix(), req).await.expect("send");
    assert_eq!(parts.status, 415);
    assert_eq!(parts.headers["accept-encoding"], "gzip, deflate, br, zstd");
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["error"]["type"], "unsupported_content_encoding");
    let mut cut = gzip(&call);
    cut.truncate(cut.len() - 4);
    let (status, body) = post(&custody, "/mcp/mcp", "gzip", cut, "malformed").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["type"], "malformed_content_encoding");

    // The OpenAI route enforces nothing: forwarded exactly as received.
    let (status, echoed) = post(
        &custody,
        "/openai/v1/chat/completions",
        "compress",
        chat(0),
        "forwarded",
    )
    .await;
    assert_eq!(status, 200, "{echoed}");
    assert_eq!(echoed["headers"]["content-encoding"], "compress");
    assert_eq!(echoed["body_len"], chat(0).len());

    assert_eq!(metric(&custody, "gzip", "ratio"), 1.0);
    assert_eq!(metric(&custody, "zstd", "too_large"), 1.0);
    assert_eq!(metric(&custody, "gzip", "malformed"), 1.0);
    assert_eq!(metric(&custody, "other", "unsupported"), 2.0);
    let reached = stub.request_ids();
    for id in ["bomb", "big", "unknown", "malformed"] {
        assert!(
            !reached.iter().any(|r| r == id),
            "{id} reached the upstream"
        );
    }
    assert!(reached.iter().any(|r| r == "forwarded"));

    custody.stop();
    let rows = custody.rows();
    assert_eq!(rows.len(), 5);
    for (id, status, rule) in [
        ("bomb", 413, "integrity:decompression_ratio"),
        ("big", 413, "integrity:decoded_body_too_large"),
        ("unknown", 415, "integrity:content_encoding"),
        ("malformed", 400, "integrity:content_encoding"),
    ] {
        let r = row(&rows, id);
        assert_eq!(r["outcome"]["status"], status, "{id}");
        assert_eq!(r["policy"]["decision"], "deny", "{id}");
        assert_eq!(r["policy"]["rule"], rule, "{id}");
        assert!(r["outcome"]["error"].as_str().is_some(), "{id}");
    }
    let r = row(&rows, "forwarded");
    assert_eq!(r["outcome"]["status"], 200);
    assert_eq!(r["action"]["inspected"], false);
    let error = r["outcome"]["error"].as_str().expect("note");
    assert!(
        error.contains("compress") && error.contains("not inspected"),
        "{error}"
    );
}
