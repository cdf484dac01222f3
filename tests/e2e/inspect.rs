//! Inspection end to end: what the row says a call did (operation, tool,
//! parameters, usage, cost), forced stream usage, and bad bodies still forwarded.

use bytes::Bytes;
use custody_tests::client::{post_json, request, send_collect};
use custody_tests::harness::Custody;
use custody_tests::rows::row;
use custody_tests::stub::Stub;
use http_body_util::Full;
use serde_json::{Value, json};

fn tagged(mut req: http::Request<Full<Bytes>>, id: &str) -> http::Request<Full<Bytes>> {
    req.headers_mut()
        .insert("x-request-id", id.parse().expect("id"));
    req
}

/// `force_stream_usage` as OpenAI routes have it by default.
#[tokio::test]
async fn forced_stream_usage_is_recorded_and_kept_from_the_client() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&format!(
        "routes:\n  - {{name: openai, prefix: /openai, upstream: '{}', kind: openai}}\n",
        stub.url()
    ));
    let stream = |include_usage: bool| {
        let mut body = json!({"model": "gpt-4o", "stream": true,
                              "messages": [{"role": "user", "content": "hi"}]});
        if include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        post_json("/openai/v1/chat/completions", &body)
    };
    let (parts, body) = send_collect(&custody.unix(), tagged(stream(false), "forced"))
        .await
        .expect("request");
    assert_eq!(parts.status, 200);
    assert!(parts.headers.get("content-length").is_none());
    let text = String::from_utf8(body.to_vec()).expect("utf-8");
    assert!(
        !text.contains("\"usage\""),
        "usage chunk reached the client:\n{text}"
    );
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert_eq!(
        text.matches("data: ").count(),
        5,
        "3 parts, stop, [DONE]:\n{text}"
    );

    // A client that asked for usage itself gets the chunk, untouched.
    let (_, body) = send_collect(&custody.unix(), tagged(stream(true), "asked"))
        .await
        .expect("request");
    let text = String::from_utf8(body.to_vec()).expect("utf-8");
    assert!(text.contains("\"usage\":{"), "{text}");

    custody.stop();
    let rows = custody.rows();
    for id in ["forced", "asked"] {
        let r = row(&rows, id);
        assert_eq!(r["usage"]["input_tokens"], 12, "{id}");
        assert_eq!(r["usage"]["output_tokens"], 3, "{id}");
        assert_eq!(r["usage"]["model"], "gpt-4o");
        assert!(r["usage"]["estimated_cost_usd"].as_f64().expect("cost") > 0.0);
        assert_eq!(r["action"]["model_tool_calls"], json!([]));
        assert!(r["outcome"]["error"].is_null(), "{r}");
    }
    let forced = row(&rows, "forced")["outcome"]["bytes_out"].as_i64();
    let asked = row(&rows, "asked")["outcome"]["bytes_out"].as_i64();
    assert!(forced < asked, "bytes_out counts what the client got");
}

/// Media types are case-insensitive: a stream labelled `Text/Event-Stream` (or
/// with parameters) is read as a stream by every stage that reads the response
/// (inspection, the usage-chunk stripper, the response safety scan), exactly as
/// one labelled `text/event-stream`.
#[tokio::test]
async fn a_stream_is_a_stream_whatever_the_case_of_its_content_type() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&format!(
        "routes:\n  - {{name: openai, prefix: /openai, upstream: '{}', kind: openai}}\n",
        stub.url()
    ));
    let email = "ada.lovelace@example.org";
    let labels = [
        "text/event-stream",
        "Text/Event-Stream",
        "TEXT/EVENT-STREAM; charset=utf-8",
        "text/event-STREAM;charset=UTF-8",
    ];
    let mut bodies = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        let chat = json!({"model": "gpt-4o", "stream": true,
                          "messages": [{"role": "user", "content": format!("Write to {email}.")}]});
        let mut req = tagged(
            post_json("/openai/v1/chat/completions", &chat),
            &format!("s{i}"),
        );
        for (name, value) in [
            ("x-stub-content-type", *label),
            ("x-stub-echo", "1"),
            ("x-stub-chunks", "9"),
        ] {
            req.headers_mut()
                .insert(name, value.parse().expect("value"));
        }
        let (parts, body) = send_collect(&custody.unix(), req).await.expect("request");
        assert_eq!(parts.status, 200, "{label}");
        assert_eq!(parts.headers["content-type"], *label, "relayed as sent");
        let text = String::from_utf8(body.to_vec()).expect("utf-8");
        assert!(
            !text.contains("\"usage\""),
            "{label}: usage chunk reached the client:\n{text}"
        );
        assert!(text.ends_with("data: [DONE]\n\n"), "{label}: {text}");
        bodies.push(text.matches("data: ").count());
    }
    assert!(
        bodies.iter().all(|n| *n == bodies[0]),
        "same events for every label: {bodies:?}"
    );
    custody.stop();
    let rows = custody.rows();
    for (i, label) in labels.iter().enumerate() {
        let r = row(&rows, &format!("s{i}"));
        assert!(r["outcome"]["error"].is_null(), "{label}: {r}");
        assert_eq!(r["usage"]["output_tokens"], 9, "{label}: read as a stream");
        assert!(
            r["usage"]["input_tokens"].as_i64().is_some_and(|n| n > 0),
            "{label}"
        );
        // The address is cut across the deltas: only the stream's scan finds it.
        let found = r["content_safety"]["redactions"].as_array().expect("list");
        assert!(
            found
                .iter()
                .any(|f| f["kind"] == "EMAIL" && f["path"] == "response.choices[0]"),
            "{label}: {found:?}"
        );
    }
}

#[tokio::test]
async fn malformed_json_is_forwarded_and_the_row_says_why_it_was_not_inspected() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&crate::routes(&stub));
    let req = request("POST", "/openai/v1/chat/completions")
        .header("content-type", "application/json")
        .header("x-request-id", "garbled")
        .body(Full::new(Bytes::from_static(b"{\"model\": \"gpt-4o\", ")))
        .expect("req");
    let (parts, body) = send_collect(&custody.unix(), req).await.expect("request");
    assert_eq!(parts.status, 400, "the upstream answered it");
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["error"]["message"], "body is not JSON");
    custody.stop();
    let rows = custody.rows();
    let r = row(&rows, "garbled");
    assert_eq!(r["outcome"]["status"], 400);
    assert_eq!(r["action"]["inspected"], false);
    let error = r["outcome"]["error"].as_str().expect("error");
    assert!(error.starts_with("request body is not JSON"), "{error}");
    assert!(r["usage"]["input_tokens"].is_null());
}

#[tokio::test]
async fn rest_calls_are_mapped_to_tools_with_bounded_canonical_parameters() {
    let stub = Stub::start().await;
    let mut custody = Custody::start(&format!(
        "routes:\n  - name: crm\n    prefix: /crm\n    upstream: '{}/echo'\n    kind: http\n    tools:\n      - {{method: POST, path: '/api/contacts/{{id}}/notes', tool: 'crm:contacts:note'}}\n      - {{method: GET, path: /api/contacts, tool: 'crm:contacts:search'}}\ninspection: {{max_parameters: 1KiB}}\n",
        stub.url()
    ));
    let note = json!({"text": "call back", "priority": 2});
    let (parts, _) = send_collect(
        &custody.unix(),
        tagged(
            post_json("/crm/api/contacts/c-42/notes?draft=true", &note),
            "note",
        ),
    )
    .await
    .expect("request");
    assert_eq!(parts.status, 200);
    let search = request("GET", "/crm/api/contacts?q=pipeline%20status&limit=5")
        .header("x-request-id", "search")
        .body(Full::default())
        .expect("req");
    send_collect(&custody.unix(), search)
        .await
        .expect("request");
    let other = request("DELETE", "/crm/api/contacts/c-42")
        .header("x-request-id", "unmapped")
        .body(Full::default())
        .expect("req");
    send_collect(&custody.unix(), other).await.expect("request");
    let big = json!({"text": "x".repeat(4000)});
    send_collect(
        &custody.unix(),
        tagged(post_json("/crm/api/contacts/c-7/notes", &big), "big"),
    )
    .await
    .expect("request");
    custody.stop();
    let rows = custody.rows();

    let r = row(&rows, "note");
    assert_eq!(r["action"]["kind"], "tool");
    assert_eq!(r["action"]["tool"], "crm:contacts:note");
    assert_eq!(
        r["action"]["parameters"],
        r#"{"body":{"priority":2,"text":"call back"},"path":{"id":"c-42"},"query":{"draft":"true"}}"#
    );
    let r = row(&rows, "search");
    assert_eq!(r["action"]["tool"], "crm:contacts:search");
    assert_eq!(
        r["action"]["parameters"],
        r#"{"query":{"limit":"5","q":"pipeline status"}}"#
    );
    let r = row(&rows, "unmapped");
    assert_eq!(r["action"]["kind"], "http");
    assert!(r["action"]["tool"].is_null(), "{r}");

    let r = row(&rows, "big");
    let text = r["action"]["parameters"].as_str().expect("parameters");
    assert!(text.len() <= 1024, "{} bytes", text.len());
    let marker: Value = serde_json::from_str(text).expect("the marker is JSON");
    assert_eq!(marker["_truncated"], true);
    assert!(marker["original_bytes"].as_u64().expect("size") > 4000);
}
