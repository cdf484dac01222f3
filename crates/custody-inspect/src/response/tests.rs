use super::*;
use serde_json::json;

fn observe(
    kind: RouteKind,
    request: &RequestFacts,
    ct: Option<&str>,
    body: &[u8],
    limits: &Limits,
) -> ResponseFacts {
    let mut o = ResponseObserver::new(kind, request, 200, ct, limits);
    o.feed(body);
    o.finish()
}

fn facts(op: &str) -> RequestFacts {
    RequestFacts {
        operation: Some(op.to_owned()),
        ..RequestFacts::default()
    }
}

#[test]
fn error_texts() {
    assert_eq!(
        error_text(
            &json!({"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"})
        ),
        Some("invalid_request_error: Incorrect API key provided".into())
    );
    assert_eq!(
        error_text(
            &json!({"type": "error", "code": "rate_limit_exceeded", "message": "slow down"})
        ),
        Some("rate_limit_exceeded: slow down".into())
    );
    assert_eq!(
        error_text(
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
        ),
        Some("overloaded_error: Overloaded".into())
    );
    assert_eq!(error_text(&json!("plain")), Some("plain".into()));
    assert_eq!(error_text(&json!({"message": "only"})), Some("only".into()));
    assert_eq!(error_text(&json!({})), None);
    assert_eq!(error_text(&json!(null)), None);
    let long = error_text(&json!({"message": "x".repeat(2000)})).expect("text");
    assert_eq!(long.chars().count(), MAX_ERROR_CHARS);
}

#[test]
fn value_after_last_key_skips_escaped_and_non_keys() {
    let tail =
        br#"..."content":"the \"usage\": 1 thing"},"usage":{"prompt_tokens":8,"total_tokens":8}}"#;
    assert_eq!(
        value_after_last_key(tail, "usage"),
        Some(json!({"prompt_tokens": 8, "total_tokens": 8}))
    );
    assert_eq!(value_after_last_key(br#"["usage"]"#, "usage"), None);
    assert_eq!(value_after_last_key(br#"{"usage": {"a":"#, "usage"), None);
    assert_eq!(
        value_after_last_key(br#""model" : "m1", "x": 1}"#, "model"),
        Some(json!("m1"))
    );
}

#[test]
fn oversized_json_body_recovers_usage_from_the_tail() {
    // An embeddings response far larger than the limit.
    let mut body = String::from(r#"{"object":"list","data":["#);
    for i in 0..2000 {
        if i > 0 {
            body.push(',');
        }
        body.push_str(r#"{"object":"embedding","index":0,"embedding":[0.0023064255,-0.009327292,-0.0028842222]}"#);
    }
    body.push_str(
        r#"],"model":"text-embedding-3-small","usage":{"prompt_tokens":4000,"total_tokens":4000}}"#,
    );
    let limits = Limits {
        max_body_bytes: 64 * 1024,
        ..Limits::default()
    };
    let req = facts("embeddings");
    let mut o = ResponseObserver::new(
        RouteKind::Openai,
        &req,
        200,
        Some("application/json"),
        &limits,
    );
    for c in body.as_bytes().chunks(1000) {
        o.feed(c);
        if let Mode::Json { buf, tail } = &o.mode {
            assert!(buf.len() <= limits.max_body_bytes);
            assert!(tail.as_ref().map_or(0, Vec::len) <= 2 * TAIL_BYTES);
        }
    }
    let f = o.finish();
    assert!(f.uninspected);
    assert_eq!(f.model.as_deref(), Some("text-embedding-3-small"));
    assert_eq!(
        f.usage,
        Some(Usage {
            input_tokens: Some(4000),
            ..Usage::default()
        })
    );
    assert_eq!(f.error, None);
}

#[test]
fn content_type_picks_the_mode() {
    let body = br#"{"model":"gpt-4o","usage":{"prompt_tokens":1,"completion_tokens":2}}"#;
    let req = facts("chat.completions");
    let l = Limits::default();
    for ct in [
        Some("application/json"),
        Some("Application/JSON; charset=utf-8"),
        None,
    ] {
        assert_eq!(
            observe(RouteKind::Openai, &req, ct, body, &l)
                .model
                .as_deref(),
            Some("gpt-4o"),
            "{ct:?}"
        );
    }
    for ct in [Some("text/html"), Some("application/x-ndjson")] {
        assert_eq!(
            observe(RouteKind::Openai, &req, ct, body, &l),
            ResponseFacts::default(),
            "{ct:?}"
        );
    }
    assert_eq!(
        observe(RouteKind::Http, &req, Some("application/json"), body, &l),
        ResponseFacts::default()
    );
}

#[test]
fn non_json_and_empty_bodies() {
    let req = facts("chat.completions");
    let l = Limits::default();
    let f = observe(
        RouteKind::Openai,
        &req,
        Some("application/json"),
        b"<html>502</html>",
        &l,
    );
    assert_eq!(
        f.error.as_deref(),
        Some("response body is not JSON: expected value at line 1 column 1")
    );
    let f = observe(RouteKind::Mcp, &req, None, b"", &l);
    assert_eq!(f, ResponseFacts::default());
}

#[test]
fn count_tokens_reports_no_usage() {
    let f = observe(
        RouteKind::Anthropic,
        &facts("messages.count_tokens"),
        Some("application/json"),
        br#"{"input_tokens":2095}"#,
        &Limits::default(),
    );
    assert_eq!(f.usage, None);
}

#[test]
fn mcp_only_matching_ids_count() {
    let req = RequestFacts {
        operation: Some("tools/call".into()),
        jsonrpc_ids: vec![json!(5)],
        ..RequestFacts::default()
    };
    let l = Limits::default();
    let other = br#"{"jsonrpc":"2.0","id":6,"error":{"code":-32601,"message":"nope"}}"#;
    assert_eq!(
        observe(RouteKind::Mcp, &req, Some("application/json"), other, &l).error,
        None
    );
    let string_id = br#"{"jsonrpc":"2.0","id":"5","error":{"code":-32601,"message":"nope"}}"#;
    assert_eq!(
        observe(
            RouteKind::Mcp,
            &req,
            Some("application/json"),
            string_id,
            &l
        )
        .error,
        None
    );
    let server_request =
        br#"{"jsonrpc":"2.0","id":5,"method":"sampling/createMessage","params":{}}"#;
    assert_eq!(
        observe(
            RouteKind::Mcp,
            &req,
            Some("application/json"),
            server_request,
            &l
        )
        .error,
        None
    );
    let ok = br#"{"jsonrpc":"2.0","id":5,"error":{"code":-32601,"message":"Method not found"}}"#;
    assert_eq!(
        observe(RouteKind::Mcp, &req, Some("application/json"), ok, &l)
            .error
            .as_deref(),
        Some("jsonrpc error -32601: Method not found")
    );
}

#[test]
fn mcp_tool_error_text_is_bounded() {
    let req = RequestFacts {
        jsonrpc_ids: vec![json!(1)],
        ..RequestFacts::default()
    };
    let body = json!({"jsonrpc": "2.0", "id": 1, "result": {"isError": true, "content": [
        {"type": "image", "data": "", "mimeType": "image/png"},
        {"type": "text", "text": "é".repeat(300)}]}});
    let f = observe(
        RouteKind::Mcp,
        &req,
        None,
        body.to_string().as_bytes(),
        &Limits::default(),
    );
    let err = f.error.expect("error");
    let text = err.strip_prefix("tool error: ").expect("prefix");
    assert_eq!(text.chars().count(), 200);
    let body = json!({"jsonrpc": "2.0", "id": 1, "result": {"isError": true, "content": []}});
    let f = observe(
        RouteKind::Mcp,
        &req,
        None,
        body.to_string().as_bytes(),
        &Limits::default(),
    );
    assert_eq!(f.error.as_deref(), Some("tool error"));
}

#[test]
fn json_buffer_never_grows_past_the_limit() {
    let limits = Limits {
        max_body_bytes: 10_000,
        ..Limits::default()
    };
    let mut o = ResponseObserver::new(
        RouteKind::Openai,
        &facts("chat.completions"),
        200,
        None,
        &limits,
    );
    let body = format!(
        "{{\"model\":\"gpt-4o\",\"pad\":\"{}\"}}",
        "x".repeat(10_000 - 27)
    );
    assert_eq!(body.len(), 10_000);
    for c in body.as_bytes().chunks(333) {
        o.feed(c);
    }
    if let Mode::Json { buf, tail: None } = &o.mode {
        assert!(buf.capacity() <= 10_000, "{}", buf.capacity());
    } else {
        panic!("still buffering");
    }
    assert_eq!(o.finish().model.as_deref(), Some("gpt-4o"));
}

#[test]
fn observer_can_cross_threads() {
    fn send<T: Send + Sync>() {}
    send::<ResponseObserver>();
    send::<crate::SseParser>();
    send::<crate::UsageChunkStripper>();
    send::<crate::PriceTable>();
    send::<crate::ToolMap>();
}

#[test]
fn completeness_is_the_terminal_event_or_every_mcp_id_answered() {
    let limits = Limits::default();
    let sse = Some("text/event-stream");
    let fed = |kind, request: &RequestFacts, chunks: &[&str]| {
        let mut o = ResponseObserver::new(kind, request, 200, sse, &limits);
        let mut seen = Vec::new();
        for c in chunks {
            o.feed(c.as_bytes());
            seen.push(o.is_complete());
        }
        seen
    };
    assert_eq!(
        fed(
            RouteKind::Openai,
            &facts("chat.completions"),
            &["data: {\"choices\":[]}\n\n", "data: [DONE]\n\n"]
        ),
        [false, true]
    );
    assert_eq!(
        fed(
            RouteKind::Openai,
            &facts("responses"),
            &[
                "event: response.created\ndata: {}\n\n",
                "event: response.completed\ndata: {}\n\n"
            ]
        ),
        [false, true]
    );
    assert_eq!(
        fed(
            RouteKind::Anthropic,
            &facts("messages"),
            &[
                "event: message_delta\ndata: {}\n\n",
                "event: message_stop\ndata: {}\n\n"
            ]
        ),
        [false, true]
    );
    let mut call = facts("batch");
    call.jsonrpc_ids = vec![json!(1), json!("two")];
    assert_eq!(
        fed(
            RouteKind::Mcp,
            &call,
            &[
                "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n",
                "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n",
                "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"two\",\"error\":{\"code\":-1,\"message\":\"x\"}}\n\n",
            ]
        ),
        [false, false, true]
    );
    // A notification has no id to answer: never "complete" by ids.
    assert_eq!(
        fed(
            RouteKind::Mcp,
            &facts("notifications/initialized"),
            &["data: {}\n\n"]
        ),
        [false]
    );
}

mod arguments;
