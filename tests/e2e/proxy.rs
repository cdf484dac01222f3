//! Forwarding: JSON and SSE, over the Unix socket and TCP, and what reaches the upstream.

use crate::routes;
use bytes::Bytes;
use custody_tests::client::{post_json, request, send, send_collect};
use custody_tests::harness::Custody;
use custody_tests::rows::is_key;
use custody_tests::stub::Stub;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::time::Duration;

fn chat(stream: bool) -> Value {
    json!({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn json_completion_over_unix_and_tcp_yields_one_row_each() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&routes(&stub));
    let mut keys = Vec::new();
    for target in [custody.unix(), custody.tcp()] {
        let (parts, body) = send_collect(
            &target,
            post_json("/openai/v1/chat/completions", &chat(false)),
        )
        .await
        .expect("request");
        assert_eq!(parts.status, 200);
        // No id from the client: `x-request-id` is custody's key.
        let key = parts.headers["x-custody-request-id"]
            .to_str()
            .expect("ascii");
        assert!(is_key(key), "{key}");
        assert_eq!(parts.headers["x-request-id"], key);
        keys.push(key.to_owned());
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            v["choices"][0]["message"]["content"],
            "Hello from the stub."
        );
    }
    custody.stop();
    let rows = custody.rows();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let mut row_keys: Vec<_> = rows
        .iter()
        .map(|r| r["request_id"].as_str().expect("key").to_owned())
        .collect();
    row_keys.sort();
    keys.sort();
    assert_eq!(row_keys, keys);
    assert_eq!(
        stub.request_ids().len(),
        2,
        "the key went upstream as x-request-id"
    );
    for row in &rows {
        assert_eq!(row["schema_version"], custody_audit::SCHEMA_VERSION);
        assert!(row["client_request_id"].is_null());
        assert!(row["action"]["raw_path"].is_null());
        assert_eq!(row["policy"]["decision"], "allow");
        assert_eq!(row["policy"]["rule"], "no-policy:allow-all");
        assert!(row["policy"]["version"].is_null());
        assert_eq!(row["action"]["kind"], "llm");
        assert_eq!(row["action"]["route"], "openai");
        assert_eq!(row["action"]["method"], "POST");
        assert_eq!(row["action"]["path"], "/openai/v1/chat/completions");
        assert_eq!(
            row["action"]["upstream"],
            format!("{}/v1/chat/completions", stub.url())
        );
        assert_eq!(row["usage"]["model"], "gpt-4o-mini");
        assert_eq!(row["action"]["operation"], "chat.completions");
        assert_eq!(row["action"]["inspected"], true);
        assert_eq!(row["action"]["model_tool_calls"], json!([]));
        assert_eq!(row["usage"]["input_tokens"], 12);
        assert_eq!(row["usage"]["output_tokens"], 3);
        // gpt-4o-mini: $0.15 in, $0.60 out per million tokens (data/prices.yaml).
        let cost = row["usage"]["estimated_cost_usd"].as_f64().expect("cost");
        assert!(
            (cost - (12.0 * 0.15 + 3.0 * 0.60) / 1e6).abs() < 1e-12,
            "{cost}"
        );
        assert_eq!(row["outcome"]["status"], 200);
        assert!(row["outcome"]["error"].is_null());
        assert!(row["outcome"]["bytes_in"].as_i64().expect("bytes_in") > 50);
        assert!(row["outcome"]["bytes_out"].as_i64().expect("bytes_out") > 100);
        assert!(row["outcome"]["duration_ms"].as_f64().expect("duration") > 0.0);
        assert!(row["principal"]["sub"].is_null());
    }
    assert_ne!(rows[0]["request_id"], rows[1]["request_id"]);
}

#[tokio::test]
async fn sse_reaches_the_client_event_by_event() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&routes(&stub));
    let mut req = post_json("/openai/v1/chat/completions", &chat(true));
    req.headers_mut()
        .insert("x-stub-gate", "1".parse().expect("value"));
    let response = send(&custody.unix(), req).await.expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    // The stub holds the rest of the stream until released: the first event can only
    // arrive here if custody relays it without waiting for the whole body.
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("first event arrives while the upstream is still streaming")
        .expect("frame")
        .expect("ok");
    let first = first.into_data().expect("data");
    assert!(first.starts_with(b"data: {"), "{first:?}");
    assert!(std::str::from_utf8(&first).expect("utf8").contains("part0"));
    stub.release();
    let rest = body.collect().await.expect("rest").to_bytes();
    let rest = std::str::from_utf8(&rest).expect("utf8");
    assert!(rest.contains("part2"));
    assert!(rest.trim_end().ends_with("data: [DONE]"));
    custody.stop();
    let rows = custody.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["outcome"]["status"], 200);
    assert!(rows[0]["outcome"]["error"].is_null(), "{:#?}", rows[0]);
    assert_eq!(
        rows[0]["outcome"]["bytes_out"].as_u64().expect("bytes_out") as usize,
        first.len() + rest.len()
    );
}

#[tokio::test]
async fn request_is_rewritten_for_the_upstream() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&routes(&stub));
    let req = request("PUT", "/tools/echo/contacts/42?q=a%20b&x=1")
        .header("x-request-id", "caller-chosen-id-1")
        .header("x-custody-request-id", "forged-by-the-client")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("authorization", "Bearer upstream-credential")
        .header("x-custody-user-token", "a-user-token")
        .body(Full::new(Bytes::from_static(b"{\"a\":1}")))
        .expect("request");
    let (parts, body) = send_collect(&custody.tcp(), req).await.expect("request");
    assert_eq!(parts.status, 200);
    assert_eq!(parts.headers["x-request-id"], "caller-chosen-id-1");
    let key = parts.headers["x-custody-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(is_key(&key), "{key}");
    let seen: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(seen["method"], "PUT");
    assert_eq!(
        seen["path"], "/echo/contacts/42",
        "prefix stripped, base path kept"
    );
    assert_eq!(seen["query"], "q=a%20b&x=1", "query kept verbatim");
    let headers = &seen["headers"];
    assert_eq!(
        headers["host"],
        stub.addr.to_string(),
        "Host is the upstream's authority"
    );
    assert_eq!(headers["x-request-id"], "caller-chosen-id-1");
    assert_eq!(
        headers["x-custody-request-id"], key,
        "the upstream gets custody's key, never the client's"
    );
    assert_eq!(headers["authorization"], "Bearer upstream-credential");
    assert!(
        headers.get("x-custody-user-token").is_none(),
        "user token never forwarded"
    );
    for hop in ["x-hop", "keep-alive", "connection"] {
        assert!(headers.get(hop).is_none(), "{hop} forwarded: {headers}");
    }
    assert_eq!(seen["body_len"], 7);
    custody.stop();
    let rows = custody.rows();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row["request_id"], key);
    assert_eq!(row["client_request_id"], "caller-chosen-id-1");
    assert_eq!(row["action"]["kind"], "http");
    assert_eq!(row["action"]["route"], "echo");
    assert_eq!(row["action"]["path"], "/tools/echo/contacts/42");
    assert_eq!(
        row["action"]["upstream"],
        format!("{}/echo/contacts/42", stub.url())
    );
    assert!(
        row["usage"]["model"].is_null(),
        "model is read on LLM routes only"
    );
}

/// Every hop-by-hop header of the upstream's response, and each it names in
/// `Connection`, stops at custody; the end-to-end ones reach the client, and the
/// row counts the body the client got.
#[tokio::test]
async fn the_upstreams_hop_by_hop_headers_stop_at_custody() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&routes(&stub));
    let hop_by_hop = [
        "connection=x-private, x-other",
        "x-private=1",
        "x-other=2",
        "keep-alive=timeout=5",
        "proxy-connection=keep-alive",
        "proxy-authenticate=Basic",
        "te=trailers",
        "trailer=x-checksum",
        "upgrade=h2c",
    ];
    let end_to_end = ["x-kept=3", "cache-control=no-store", "x-private-not=4"];
    let req = request("GET", "/tools/echo/hops")
        .header("x-request-id", "hops")
        .header(
            "x-stub-reply-headers",
            hop_by_hop
                .iter()
                .chain(&end_to_end)
                .copied()
                .collect::<Vec<_>>()
                .join("; "),
        )
        .body(Full::new(Bytes::new()))
        .expect("request");
    let (parts, body) = send_collect(&custody.tcp(), req).await.expect("request");
    assert_eq!(parts.status, 200);
    for pair in hop_by_hop {
        let name = pair.split_once('=').expect("pair").0;
        assert!(
            parts
                .headers
                .get(name)
                .is_none_or(|v| name == "connection" && v == "keep-alive"),
            "{name} reached the client: {:?}",
            parts.headers
        );
    }
    for pair in end_to_end {
        let (name, value) = pair.split_once('=').expect("pair");
        assert_eq!(parts.headers[name], value, "{name}");
    }
    custody.stop();
    let rows = custody.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["client_request_id"], "hops");
    assert_eq!(rows[0]["outcome"]["status"], 200);
    assert_eq!(rows[0]["outcome"]["bytes_out"], body.len());
}

#[tokio::test]
async fn upstream_statuses_are_relayed_not_treated_as_custody_errors() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&routes(&stub));
    let (parts, _) = send_collect(
        &custody.unix(),
        request("GET", "/tools/echo/../status/503")
            .body(Full::default())
            .expect("req"),
    )
    .await
    .expect("request");
    // custody resolves `..` once, before routing (docs/security.md): the path is
    // `/tools/status/503`, which no route serves; the upstream never sees `..`.
    assert_eq!(parts.status, 404);
    let req = request("GET", "/openai/status/429")
        .body(Full::default())
        .expect("req");
    let (parts, _) = send_collect(&custody.unix(), req).await.expect("request");
    assert_eq!(parts.status, 429);
    custody.stop();
    let rows = custody.rows();
    assert_eq!(rows.len(), 2);
    let relayed = rows
        .iter()
        .find(|r| r["outcome"]["status"] == 429)
        .expect("429 row");
    assert!(relayed["outcome"]["error"].is_null());
}

#[tokio::test]
async fn many_requests_on_one_keep_alive_connection_multi_threaded_runtime() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&format!("{}runtime:\n  worker_threads: 2\n", routes(&stub)));
    let mut sender = custody_tests::client::http1(&custody.unix())
        .await
        .expect("connect");
    for _ in 0..20 {
        sender.ready().await.expect("connection ready");
        let resp = sender
            .send_request(post_json("/openai/v1/chat/completions", &chat(false)))
            .await
            .expect("response");
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.expect("body");
    }
    drop(sender);
    assert_eq!(
        stub.connections(),
        1,
        "upstream connections are pooled and reused"
    );
    custody.stop();
    assert_eq!(custody.rows().len(), 20);
}

#[tokio::test]
async fn https_upstream_trusted_through_extra_ca_speaks_http2() {
    let (stub, ca_pem) = Stub::start_tls().await;
    let ca_dir = tempfile::tempdir().expect("tempdir");
    let ca_file = ca_dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("write CA");
    let route = format!(
        "routes:\n  - {{name: secure, prefix: /secure, upstream: 'https://localhost:{}/echo', kind: http}}\n",
        stub.addr.port()
    );
    let mut custody = Custody::start(&format!(
        "{route}upstream_tls:\n  extra_ca_file: '{}'\n",
        ca_file.display()
    ));
    let (parts, body) = send_collect(
        &custody.unix(),
        request("GET", "/secure/x?y=1")
            .body(Full::default())
            .expect("req"),
    )
    .await
    .expect("request");
    assert_eq!(parts.status, 200, "{}", String::from_utf8_lossy(&body));
    let seen: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(seen["version"], "HTTP/2.0", "ALPN negotiated h2");
    assert_eq!(seen["path"], "/echo/x");
    assert_eq!(seen["query"], "y=1");
    custody.stop();
    assert_eq!(custody.rows().len(), 1);

    // Without the extra CA the same upstream is untrusted: 502, and the message says why.
    let mut custody = Custody::start(&route);
    let (parts, body) = send_collect(
        &custody.unix(),
        request("GET", "/secure/x")
            .body(Full::default())
            .expect("req"),
    )
    .await
    .expect("request");
    assert_eq!(parts.status, 502);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("message")
            .contains("certificate"),
        "{v}"
    );
    custody.stop();
}

// Multi-threaded: the h2 client must answer custody's GOAWAY/PING while the test
// thread blocks waiting for custody to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_clients_are_served_too() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&routes(&stub));
    let mut sender = custody_tests::client::h2c_unix(&custody.socket).await;
    let req = http::Request::post("http://localhost/openai/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(chat(true).to_string())))
        .expect("req");
    let resp = sender.send_request(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("[DONE]"));
    drop(sender);
    custody.stop();
    assert!(
        !custody.log().contains("grace period over"),
        "idle h2 connection closed promptly"
    );
    let rows = custody.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["usage"]["model"], "gpt-4o-mini");
    assert!(rows[0]["outcome"]["error"].is_null());
}
