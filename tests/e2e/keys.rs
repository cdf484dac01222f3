//! Row keys: `request_id` is custody's own UUIDv7 for every request, whatever the
//! client sends in `x-request-id` (kept as `client_request_id`, forwarded upstream and
//! echoed); every response names the key in `x-custody-request-id`.

use crate::routes;
use bytes::Bytes;
use custody_tests::client::{post_json, request, send_collect};
use custody_tests::harness::Custody;
use custody_tests::rows::is_key;
use custody_tests::stub::Stub;
use http_body_util::Full;
use serde_json::{Value, json};
use std::collections::HashSet;

fn chat() -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
}

/// The response's `x-custody-request-id` and `x-request-id`.
fn ids(parts: &http::response::Parts) -> (String, String) {
    let get = |name: &str| parts.headers[name].to_str().expect("ascii").to_owned();
    (get("x-custody-request-id"), get("x-request-id"))
}

#[tokio::test]
async fn one_client_id_on_six_requests_gives_six_rows_with_six_keys() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&routes(&stub));
    let mut keys = Vec::new();
    for i in 0..6 {
        let mut req = post_json("/openai/v1/chat/completions", &chat());
        req.headers_mut()
            .insert("x-request-id", "same-id".parse().expect("id"));
        let target = if i % 2 == 0 {
            custody.unix()
        } else {
            custody.tcp()
        };
        let (parts, _) = send_collect(&target, req).await.expect("request");
        assert_eq!(parts.status, 200);
        let (key, echoed) = ids(&parts);
        assert_eq!(echoed, "same-id", "the client's id is echoed");
        keys.push(key);
    }
    assert_eq!(
        stub.request_ids(),
        vec!["same-id"; 6],
        "the upstream saw the client's id"
    );
    custody.stop();
    let rows = custody.rows();
    assert_eq!(rows.len(), 6, "{rows:#?}");
    let row_keys: HashSet<&str> = rows
        .iter()
        .map(|r| r["request_id"].as_str().expect("key"))
        .collect();
    assert_eq!(row_keys.len(), 6, "six distinct keys: {rows:#?}");
    assert!(row_keys.iter().all(|k| is_key(k)), "{row_keys:?}");
    assert!(rows.iter().all(|r| r["client_request_id"] == "same-id"));
    let answered: HashSet<&str> = keys.iter().map(String::as_str).collect();
    assert_eq!(answered, row_keys, "each response named its row's key");
}

#[tokio::test]
async fn a_client_cannot_give_a_row_a_gap_id() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&routes(&stub));
    let gap = "gap_0196a1b2c3d47e5f8a9b0c1d2e3f4a5b";
    // Forwarded, refused by custody (no route) and refused as malformed: each row
    // gets custody's key.
    let forwarded = request("POST", "/tools/echo/x")
        .header("x-request-id", gap)
        .body(Full::new(Bytes::from_static(b"{}")))
        .expect("request");
    let (parts, body) = send_collect(&custody.tcp(), forwarded)
        .await
        .expect("request");
    assert_eq!(parts.status, 200);
    let (forwarded_key, echoed) = ids(&parts);
    assert_eq!(echoed, gap);
    let seen: Value = serde_json::from_slice(&body).expect("echo");
    assert_eq!(seen["headers"]["x-request-id"], gap);
    assert_eq!(seen["headers"]["x-custody-request-id"], forwarded_key);

    let unrouted = request("GET", "/nowhere")
        .header("x-request-id", gap)
        .body(Full::default())
        .expect("request");
    let (parts, body) = send_collect(&custody.unix(), unrouted)
        .await
        .expect("request");
    assert_eq!(parts.status, 404);
    let (refused_key, echoed) = ids(&parts);
    assert_eq!(echoed, gap);
    let error: Value = serde_json::from_slice(&body).expect("JSON error");
    assert_eq!(
        error["error"]["request_id"], refused_key,
        "the JSON error names the key"
    );
    custody.stop();

    let rows = custody.rows();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    for r in &rows {
        let key = r["request_id"].as_str().expect("key");
        assert!(!key.starts_with("gap"), "{r:#?}");
        assert!(is_key(key), "{key}");
        assert_eq!(r["client_request_id"], gap);
    }
    let keys: HashSet<&str> = rows
        .iter()
        .map(|r| r["request_id"].as_str().expect("key"))
        .collect();
    assert_eq!(
        keys,
        HashSet::from([forwarded_key.as_str(), refused_key.as_str()])
    );
}

#[tokio::test]
async fn an_unusable_client_id_is_not_recorded_and_the_key_is_forwarded() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&routes(&stub));
    let long = "x".repeat(129);
    let req = request("GET", "/tools/echo/y")
        .header("x-request-id", long.as_str())
        .body(Full::default())
        .expect("request");
    let (parts, body) = send_collect(&custody.tcp(), req).await.expect("request");
    assert_eq!(parts.status, 200);
    let (key, echoed) = ids(&parts);
    assert_eq!(echoed, key, "the key stands in for an unusable id");
    let seen: Value = serde_json::from_slice(&body).expect("echo");
    assert_eq!(seen["headers"]["x-request-id"], key.as_str());
    custody.stop();
    let rows = custody.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["request_id"], key.as_str());
    assert!(rows[0]["client_request_id"].is_null());
}
