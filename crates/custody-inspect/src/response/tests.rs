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

/// The slim read of a whole OpenAI body ([`openai::whole_body`]) learns exactly
/// what the full `Value` read learns: every member `openai_json` reads is
/// replaced, in turn, by a value of each JSON type, and the two reads must leave
/// the same state.
#[test]
fn slim_openai_bodies_read_as_the_whole_value_does() {
    let base = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "calling \"tools\" now",
                "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}},
                    {"id": "call_2", "type": "custom",
                     "custom": {"name": "grep", "input": "needle"}}],
                "function_call": {"name": "legacy", "arguments": {"a": [1, 2]}}}},
            {"index": 1, "message": {"content": null}}],
        "output": [
            {"type": "function_call", "id": "fc_1", "call_id": "call_3",
             "name": "lookup", "arguments": "{\"q\": 1}"},
            {"type": "message", "content": [{"type": "output_text", "text": "hi"}]}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15,
                  "prompt_tokens_details": {"cached_tokens": 4}},
        "error": null,
        "system_fingerprint": "fp_1"
    });
    let shapes = [
        json!(null),
        json!(7),
        json!("text"),
        json!(true),
        json!([]),
        json!([1, "x", null]),
        json!({}),
        json!({"message": "nested", "type": "invalid_request_error"}),
    ];
    let mut bodies: Vec<String> = vec![base.to_string()];
    // Each member read, at each depth, replaced by each shape.
    let pointers = [
        "/model",
        "/usage",
        "/error",
        "/output",
        "/choices",
        "/choices/0",
        "/choices/0/message",
        "/choices/0/message/tool_calls",
        "/choices/0/message/tool_calls/0",
        "/choices/0/message/tool_calls/0/function",
        "/choices/0/message/tool_calls/0/function/arguments",
        "/choices/0/message/tool_calls/1/custom",
        "/choices/0/message/function_call",
        "/choices/0/message/content",
        "/output/0",
        "/output/0/arguments",
        "/usage/prompt_tokens",
        "/usage/completion_tokens",
        "/usage/prompt_tokens_details",
        "/usage/prompt_tokens_details/cached_tokens",
    ];
    for pointer in pointers {
        for shape in &shapes {
            let mut body = base.clone();
            *body.pointer_mut(pointer).expect(pointer) = shape.clone();
            bodies.push(body.to_string());
        }
    }
    // Keys written with escapes (read as copies, not borrowed) name the same
    // members, at every depth.
    let mut escaped = base.to_string();
    for (plain, written) in [
        ("\"model\":", r#""\u006dodel":"#),
        ("\"usage\":", r#""us\u0061ge":"#),
        ("\"choices\":", r#""ch\u006fices":"#),
        ("\"message\":", r#""m\u0065ssage":"#),
        ("\"tool_calls\":", r#""tool\u005fcalls":"#),
        ("\"prompt_tokens\":", r#""prompt_t\u006fkens":"#),
        ("\"cached_tokens\":", r#""cached_token\u0073":"#),
    ] {
        assert!(escaped.contains(plain), "{plain}");
        escaped = escaped.replace(plain, written);
    }
    bodies.push(escaped.clone());
    // Repeated members keep the last value; other documents than an object.
    bodies.extend(
        [
            r#"{"model":"a","model":"b","choices":[],"choices":[{"message":{"tool_calls":[{"id":"x","function":{"name":"f","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"message":{"tool_calls":[{"id":"x","function":{"name":"f"}}],"tool_calls":"gone"}}]}"#,
            r#"{"choices":[{"message":{"function_call":{"name":"a"}},"message":null},{"message":[1]},7,{"message":{"function_call":{"name":"b"}}}]}"#,
            r#"{"choices":{"message":{"function_call":{"name":"a"}}},"error":{"message":"x"},"error":null,"output":[{"type":"function_call","call_id":"c","name":"n"}],"output":"gone"}"#,
            r#"{"usage":{"prompt_tokens":3},"usage":{"completion_tokens":4},"model":null}"#,
            r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}"#,
            r#"{"object":"list","data":[{"embedding":[0.1,0.2]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":5,"total_tokens":5}}"#,
            // The usage spellings and shapes `usage::openai` reads.
            r#"{"usage":{"input_tokens":9,"output_tokens":2,"input_tokens_details":{"cached_tokens":3}}}"#,
            r#"{"usage":{"prompt_tokens":9.0,"completion_tokens":1e2,"prompt_tokens_details":null,"input_tokens_details":{"cached_tokens":3}}}"#,
            r#"{"usage":{"prompt_tokens_details":7,"input_tokens_details":{"cached_tokens":"3"}}}"#,
            r#"{"usage":{"prompt_tokens":1,"prompt_tokens":2,"prompt_tokens_details":{"cached_tokens":1,"cached_tokens":0}}}"#,
            r#"{"usage":{"input_tokens":5,"prompt_tokens":null,"output_tokens":-1,"total_tokens":4}}"#,
            r#"{"usage":{"prompt_tokens_details":{"audio_tokens":1},"completion_tokens_details":{"reasoning_tokens":2}}}"#,
            r#"{"usage":{}}"#,
            r#"{"usage":{"prompt_tokens":18446744073709551615,"completion_tokens":9.7,"output_tokens":3,"prompt_tokens_details":{},"input_tokens_details":{"cached_tokens":2}}}"#,
            r#"{"usage":{"prompt_tokens":-4,"completion_tokens":true,"output_tokens":[1],"prompt_tokens_details":[],"input_tokens_details":{"cached_tokens":{"n":1}}}}"#,
            r#"{"usage":{"input_tokens":{"a":1},"prompt_tokens_details":{"cached_tokens":5},"prompt_tokens_details":"x","input_tokens_details":{"cached_tokens":6}}}"#,
            r#"{"usage":[{"prompt_tokens":1}]}"#,
            r#"{"usage":{"prompt_tokens_details":[1],"input_tokens_details":{"cached_tokens":7}}}"#,
            r#"{"usage":{"prompt_tokens_details":3,"input_tokens_details":{"cached_tokens":7}}}"#,
            r#"{"usage":"n/a","usage":{"output_tokens":-1.5e3}}"#,
            r#"[{"model":"x"}]"#,
            r#""just text""#,
            "42",
            "null",
        ]
        .map(str::to_owned),
    );
    let observer = || {
        ResponseObserver::new(
            RouteKind::Openai,
            &facts("chat.completions"),
            200,
            Some("application/json"),
            &Limits::default(),
        )
    };
    for body in &bodies {
        let slim = openai::whole_body(body.as_bytes()).expect("slim read");
        let mut fast = observer();
        fast.state.openai_whole(&slim);
        let mut full = observer();
        let whole: Value = serde_json::from_str(body).expect("json");
        full.state.openai_json(&whole);
        assert_eq!(
            format!("{:?}", fast.state),
            format!("{:?}", full.state),
            "{body}"
        );
    }
    // Not only the same as the full read: the escaped keys were read.
    let slim = openai::whole_body(escaped.as_bytes()).expect("escaped keys");
    let mut o = observer();
    o.state.openai_whole(&slim);
    let state = format!("{:?}", o.state);
    for learnt in [
        "gpt-4o-mini",
        "get_weather",
        "input_tokens: Some(12)",
        "cached_input_tokens: Some(4)",
    ] {
        assert!(state.contains(learnt), "{learnt} in {state}");
    }
    // A body that is not JSON is left to the full read, which says why.
    assert!(openai::whole_body(b"{\"model\":").is_none());
    assert!(openai::whole_body(b"{} trailing").is_none());
}

/// A whole OpenAI body nested deeper than serde_json's limit in a member custody
/// does not read is still read for what it does read.
#[test]
fn a_deep_member_custody_skips_does_not_hide_the_model_and_usage() {
    let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
    let body = format!(
        r#"{{"model":"gpt-4o","choices":[{{"message":{{"content":{deep}}}}}],"usage":{{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}}}"#
    );
    assert!(
        serde_json::from_str::<Value>(&body).is_err(),
        "deeper than the limit"
    );
    let f = observe(
        RouteKind::Openai,
        &facts("chat.completions"),
        Some("application/json"),
        body.as_bytes(),
        &Limits::default(),
    );
    assert_eq!(f.model.as_deref(), Some("gpt-4o"));
    assert!(f.error.is_none(), "{:?}", f.error);
    assert_eq!(f.usage.and_then(|u| u.input_tokens), Some(3));
}
