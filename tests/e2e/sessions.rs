//! Sessions end to end: one session per explicit header and user, steps in order,
//! a `traceparent` forwarded upstream as a child span, and the links from a
//! model's tool call to the MCP call that carries it out and to the LLM request
//! that returns its result.

use custody_tests::client::{post_json, send_collect};
use custody_tests::harness::Custody;
use custody_tests::idp::Idp;
use custody_tests::rows::{is_key, row};
use custody_tests::stub::Stub;
use serde_json::{Value, json};

/// Identity (optional) with the stub's IdP; an openai route and an mcp route to `/echo`.
pub(crate) fn config(stub: &Stub) -> String {
    format!(
        "identity:\n  issuers:\n    - {{issuer: '{u}', audiences: [custody], algorithms: [ES256]}}\nroutes:\n  - {{name: openai, prefix: /openai, upstream: '{u}', kind: openai, identity: optional}}\n  - {{name: crm, prefix: /mcp, upstream: '{u}/echo', kind: mcp, identity: optional}}\n",
        u = stub.url()
    )
}

/// POSTs `body` with `headers`, tagged `id`; the status and the JSON answer.
pub(crate) async fn call(
    custody: &Custody,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
    id: &str,
) -> (u16, Value) {
    let mut req = post_json(path, body);
    let h = req.headers_mut();
    h.insert("x-request-id", id.parse().expect("id"));
    for (name, value) in headers {
        h.insert(
            http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            value.parse().expect("value"),
        );
    }
    let (parts, body) = send_collect(&custody.unix(), req).await.expect("request");
    (
        parts.status.as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "search_contacts", "parameters": {
        "type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}}}}}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_is_linked_to_the_model_turn_that_asked_for_it() {
    let stub = Stub::start().await;
    let idp = Idp::new(&stub.url());
    stub.set_jwks(idp.jwks());
    let mut custody = Custody::start(&config(&stub));
    let alice = idp.token("auth0|alice");
    let bob = idp.token("auth0|bob");
    let as_alice = [
        ("x-custody-user-token", alice.as_str()),
        ("x-custody-session", "conv-42"),
    ];

    // 1. The model asks for a tool (streamed, arguments in pieces).
    let ask = json!({"model": "gpt-4o-mini", "stream": true, "tools": tools(),
                     "messages": [{"role": "user", "content": "find Ada"}]});
    let (status, _) = call(
        &custody,
        "/openai/v1/chat/completions",
        &ask,
        &as_alice,
        "turn-1",
    )
    .await;
    assert_eq!(status, 200);
    // 2. The agent carries it out over MCP, arguments in another key order; the
    //    caller's trace context is continued upstream.
    let rpc = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                     "params": {"name": "search_contacts", "arguments": {"limit": 1, "query": "stub query"}}});
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut tool_headers = as_alice.to_vec();
    tool_headers.push(("traceparent", parent));
    let (status, echoed) = call(&custody, "/mcp/mcp", &rpc, &tool_headers, "tool-1").await;
    assert_eq!(status, 200);
    let forwarded = echoed["headers"]["traceparent"]
        .as_str()
        .expect("traceparent forwarded");
    // 3. The result goes back to the model.
    let answer = json!({"model": "gpt-4o-mini", "tools": tools(), "messages": [
        {"role": "user", "content": "find Ada"},
        {"role": "assistant", "tool_calls": [{"id": "call_stub_1", "type": "function",
            "function": {"name": "search_contacts", "arguments": "{\"query\":\"stub query\",\"limit\":1}"}}]},
        {"role": "tool", "tool_call_id": "call_stub_1", "content": "Ada Lovelace"}]});
    let (status, _) = call(
        &custody,
        "/openai/v1/chat/completions",
        &answer,
        &as_alice,
        "turn-2",
    )
    .await;
    assert_eq!(status, 200);
    // Bob sends the same session header: his call is in a session of his own.
    let as_bob = [
        ("x-custody-user-token", bob.as_str()),
        ("x-custody-session", "conv-42"),
    ];
    let (status, _) = call(
        &custody,
        "/openai/v1/chat/completions",
        &ask,
        &as_bob,
        "bob-1",
    )
    .await;
    assert_eq!(status, 200);
    // Anonymous calls without any hint are sessionized by inactivity.
    let (status, _) = call(&custody, "/openai/v1/chat/completions", &ask, &[], "anon-1").await;
    assert_eq!(status, 200);
    custody.stop();

    let rows = custody.rows();
    let (t1, tool, t2) = (
        row(&rows, "turn-1"),
        row(&rows, "tool-1"),
        row(&rows, "turn-2"),
    );
    let session = t1["session_id"].as_str().expect("session id");
    assert!(
        session.starts_with("hdr:") && session.ends_with(":conv-42"),
        "{session}"
    );
    for (r, step) in [(t1, 1), (tool, 2), (t2, 3)] {
        assert_eq!(r["session_id"], session);
        assert_eq!(r["session_step"], step);
        assert_eq!(r["session_source"], "header");
        assert_eq!(r["schema_version"], custody_audit::SCHEMA_VERSION);
    }
    assert_eq!(t1["action"]["model_tool_calls"][0]["id"], "call_stub_1");
    assert_eq!(tool["links"]["tool_call_id"], "call_stub_1");
    // Links name custody's key of the asking turn, never the client's id.
    let turn1 = t1["request_id"].as_str().expect("key");
    assert!(is_key(turn1), "{turn1}");
    assert_eq!(tool["links"]["model_request_id"], turn1);
    assert_eq!(
        t2["links"]["tool_results"],
        json!([{"tool_call_id": "call_stub_1", "model_request_id": turn1}])
    );
    // The tool call continues the caller's trace: same trace id, the caller's span
    // as parent, custody's span forwarded.
    assert_eq!(tool["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(tool["parent_span_id"], "00f067aa0ba902b7");
    let span = tool["span_id"].as_str().expect("span");
    assert_eq!(
        forwarded,
        format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{span}-01")
    );
    // Calls without a traceparent share the session's own trace.
    assert_eq!(t1["trace_id"], t2["trace_id"]);
    assert!(t1["parent_span_id"].is_null());

    let b = row(&rows, "bob-1");
    assert_ne!(
        b["session_id"], session,
        "the same header from another user"
    );
    assert_eq!(b["session_step"], 1);
    let anon = row(&rows, "anon-1");
    assert_eq!(anon["session_source"], "inactivity");
    assert!(
        anon["session_id"]
            .as_str()
            .is_some_and(|s| s.starts_with("auto:anon:")),
        "{anon}"
    );
}

/// An MCP `initialize` without any session signal is placed once answered (in the
/// session the answer names; the echo upstream names none, so the caller's
/// inactivity session). What went upstream and what the row says agree: no
/// `traceparent` was forwarded with it and its row has no span; the next call's
/// forwarded `traceparent` is the span and trace its row records, in the same
/// session, one step later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_initialize_without_a_signal_forwards_no_span_and_its_row_records_none() {
    let stub = Stub::start().await;
    stub.set_jwks(Idp::new(&stub.url()).jwks());
    let mut custody = Custody::start(&config(&stub));
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "e2e", "version": "1"}}});
    let (status, echoed) = call(&custody, "/mcp/mcp", &init, &[], "init").await;
    assert_eq!(status, 200);
    assert!(echoed["headers"]["traceparent"].is_null(), "{echoed}");
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let (status, echoed) = call(&custody, "/mcp/mcp", &list, &[], "list").await;
    assert_eq!(status, 200);
    let forwarded = echoed["headers"]["traceparent"]
        .as_str()
        .expect("traceparent forwarded")
        .to_owned();
    custody.stop();
    let rows = custody.rows();
    let (init, list) = (row(&rows, "init"), row(&rows, "list"));
    assert_eq!(init["action"]["operation"], "initialize");
    assert_eq!(init["action"]["housekeeping"], true);
    assert!(
        init["span_id"].is_null() && init["parent_span_id"].is_null(),
        "{init}"
    );
    assert_eq!(init["session_source"], "inactivity");
    assert_eq!(init["session_id"], list["session_id"]);
    assert_eq!(init["trace_id"], list["trace_id"]);
    assert_eq!(
        list["session_step"].as_i64(),
        init["session_step"].as_i64().map(|s| s + 1)
    );
    let (trace, span) = (
        list["trace_id"].as_str().expect("trace"),
        list["span_id"].as_str().expect("span"),
    );
    assert_eq!(forwarded, format!("00-{trace}-{span}-01"));
}
