use super::*;
use crate::toolmap::ToolMapping;
use ::http::{HeaderMap, HeaderValue};
use serde_json::json;

struct Req {
    kind: RouteKind,
    method: &'static str,
    path: &'static str,
    query: Option<&'static str>,
    headers: HeaderMap,
    body: Vec<u8>,
    complete: bool,
}

fn req(kind: RouteKind, method: &'static str, path: &'static str, body: &str) -> Req {
    Req {
        kind,
        method,
        path,
        query: None,
        headers: HeaderMap::new(),
        body: body.as_bytes().to_vec(),
        complete: true,
    }
}

impl Req {
    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.insert(name, HeaderValue::from_static(value));
        self
    }

    fn inspect_with(&self, tools: Option<&ToolMap>, limits: &Limits) -> RequestFacts {
        inspect_request(
            &RequestInput {
                kind: self.kind,
                route: "crm",
                method: self.method,
                path: self.path,
                query: self.query,
                headers: &self.headers,
                body: &self.body,
                body_complete: self.complete,
                tools,
            },
            limits,
        )
    }

    fn inspect(&self) -> RequestFacts {
        self.inspect_with(None, &Limits::default())
    }
}

#[test]
fn openai_operations() {
    for (path, op) in [
        ("/v1/chat/completions", Some("chat.completions")),
        ("/chat/completions/", Some("chat.completions")),
        (
            "/openai/deployments/gpt4o/chat/completions",
            Some("chat.completions"),
        ),
        ("/v1/responses", Some("responses")),
        ("/v1/completions", Some("completions")),
        ("/v1/embeddings", Some("embeddings")),
        ("/v1/models", Some("models")),
        ("/v1/files", None),
        ("/v1/responses/resp_123", None),
    ] {
        let f = req(RouteKind::Openai, "POST", path, "").inspect();
        assert_eq!(f.operation.as_deref(), op, "{path}");
        assert_eq!(f.error, None);
    }
}

#[test]
fn anthropic_operations() {
    for (path, op) in [
        ("/v1/messages", Some("messages")),
        ("/v1/messages/count_tokens", Some("messages.count_tokens")),
        ("/v1/messages/batches", Some("messages.batches")),
        ("/v1/complete", Some("complete")),
        ("/v1/files", None),
    ] {
        assert_eq!(
            req(RouteKind::Anthropic, "POST", path, "")
                .inspect()
                .operation
                .as_deref(),
            op,
            "{path}"
        );
    }
}

#[test]
fn llm_model_and_stream() {
    let f = req(
        RouteKind::Openai,
        "POST",
        "/v1/chat/completions",
        r#"{"messages":[{"role":"user","content":"say \"hi\""}],"model":"gpt-4o","stream":true}"#,
    )
    .inspect();
    assert_eq!(f.model.as_deref(), Some("gpt-4o"));
    assert!(f.stream);
    assert_eq!(f.parameters, None);
    assert_eq!(f.tool, None);
    let f = req(
        RouteKind::Anthropic,
        "POST",
        "/v1/messages",
        r#"{"model":"claude-haiku-4-5","stream":"yes"}"#,
    )
    .inspect();
    assert_eq!(f.model.as_deref(), Some("claude-haiku-4-5"));
    assert!(!f.stream, "only a JSON true asks for a stream");
    let f = req(
        RouteKind::Openai,
        "POST",
        "/v1/chat/completions",
        r#"{"model":42}"#,
    )
    .inspect();
    assert_eq!((f.model, f.error), (None, None));
}

#[test]
fn malformed_json_is_recorded_not_fatal() {
    for body in [
        "{\"model\": \"gpt-4o\",",
        "not json",
        "{\"model\":\"x\"} trailing",
        "\u{feff}{}",
    ] {
        let f = req(RouteKind::Openai, "POST", "/v1/chat/completions", body).inspect();
        let err = f.error.expect("error recorded");
        assert!(err.starts_with("request body is not JSON: "), "{err}");
        assert_eq!(f.operation.as_deref(), Some("chat.completions"));
        assert!(!f.uninspected);
    }
    let f = req(
        RouteKind::Openai,
        "POST",
        "/v1/chat/completions",
        "not json",
    )
    .inspect();
    assert_eq!(
        f.error.as_deref(),
        Some("request body is not JSON: expected ident at line 1 column 2")
    );
    let f = req(RouteKind::Openai, "POST", "/v1/chat/completions", "[1,2]").inspect();
    assert_eq!(
        f.error.as_deref(),
        Some("request body is not a JSON object")
    );
    for kind in [RouteKind::Mcp, RouteKind::Anthropic] {
        let f = req(kind, "POST", "/v1/messages", "{").inspect();
        assert!(
            f.error
                .expect("error")
                .starts_with("request body is not JSON")
        );
    }
}

#[test]
fn body_too_large_is_uninspected() {
    let mut r = req(
        RouteKind::Openai,
        "POST",
        "/v1/chat/completions",
        r#"{"model":"gpt-4o"}"#,
    );
    r.complete = false;
    let f = r.inspect();
    assert!(f.uninspected);
    assert_eq!(f.model, None);
    assert_eq!(f.operation.as_deref(), Some("chat.completions"));
    assert_eq!(
        f.error.as_deref(),
        Some("request body not inspected: larger than 4194304 bytes")
    );
    let r = req(
        RouteKind::Openai,
        "POST",
        "/v1/chat/completions",
        r#"{"model":"gpt-4o"}"#,
    );
    let limits = Limits {
        max_body_bytes: 10,
        ..Limits::default()
    };
    let f = r.inspect_with(None, &limits);
    assert!(f.uninspected);
    assert_eq!(
        f.error.as_deref(),
        Some("request body not inspected: larger than 10 bytes")
    );
}

#[test]
fn unreadable_bodies_are_flagged_once_for_every_kind() {
    for kind in [RouteKind::Mcp, RouteKind::Openai, RouteKind::Anthropic] {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","name":"delete_all"}}"#,
            r#"{"model":"gpt-4o-mini","model":"gpt-4o","messages":[]}"#,
            r#"{"a":NaN}"#,
            r#"{"a":"\ud800"}"#,
        ] {
            let f = req(kind, "POST", "/v1/chat/completions", body).inspect();
            assert!(f.unreadable.is_some(), "{kind:?} {body}");
        }
        let f = req(
            kind,
            "POST",
            "/v1/chat/completions",
            r#"{"model":"m","messages":[]}"#,
        )
        .inspect();
        assert_eq!(f.unreadable, None, "{kind:?}");
    }
    // Too large to inspect: unreadable, naming the key to raise.
    let mut r = req(RouteKind::Mcp, "POST", "/mcp", "{}");
    r.complete = false;
    let f = r.inspect();
    assert!(
        f.unreadable
            .is_some_and(|u| u.contains("inspection.max_body"))
    );
    // kind http: JSON when declared or when it looks like JSON; forms by field.
    let http = |ct: &'static str, body: &str| {
        let mut r = req(RouteKind::Http, "POST", "/x", body);
        if !ct.is_empty() {
            r = r.header("content-type", ct);
        }
        r.inspect().unreadable
    };
    assert!(http("application/json", r#"{"a":1,"a":2}"#).is_some());
    assert!(http("application/vnd.api+json", "{oops").is_some());
    assert!(http("", r#"{"a":1,"a":2}"#).is_some());
    assert!(http("application/x-www-form-urlencoded", "org=a&org=b").is_some());
    assert!(http("application/x-www-form-urlencoded", "org=a&or%67=b").is_some());
    assert_eq!(http("application/x-www-form-urlencoded", "org=a&b=2"), None);
    assert_eq!(http("application/octet-stream", "{oops"), None);
    assert_eq!(http("text/plain", "hello"), None);
}

#[test]
fn parameters_are_truncated_with_a_valid_marker() {
    let args = "x".repeat(500);
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","arguments":{{"q":"{args}"}}}}}}"#
    );
    let r = req(RouteKind::Mcp, "POST", "/mcp", &body);
    let limits = Limits {
        max_parameters_bytes: 200,
        ..Limits::default()
    };
    let f = r.inspect_with(None, &limits);
    let text = f.parameters.expect("marker");
    assert!(text.len() <= 200);
    let v: Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(v["_truncated"], json!(true));
    assert_eq!(v["original_bytes"], json!(508));
    assert_eq!(f.truncated_from, Some(508));
    assert!(
        v["prefix"]
            .as_str()
            .expect("prefix")
            .starts_with("{\"q\":\"xxx")
    );
}

#[test]
fn http_mapped_tool_and_parameters() {
    let tools = ToolMap::new(vec![ToolMapping {
        method: "POST".into(),
        path: "/api/crm/contacts/{id}/notes".into(),
        tool: "crm:contacts:notes".into(),
    }])
    .expect("valid");
    let mut r = req(
        RouteKind::Http,
        "POST",
        "/api/crm/contacts/c%2F1/notes/",
        r#"{"text": "call back", "pin": true}"#,
    )
    .header("content-type", "application/json; charset=utf-8");
    r.query = Some("notify=yes&tag=a&tag=b");
    let f = r.inspect_with(Some(&tools), &Limits::default());
    assert_eq!(f.operation, None);
    assert_eq!(f.tool.as_deref(), Some("crm:contacts:notes"));
    assert_eq!(
        f.parameters.as_deref(),
        Some(
            r#"{"body":{"pin":true,"text":"call back"},"path":{"id":"c/1"},"query":{"notify":"yes","tag":["a","b"]}}"#
        )
    );
}

#[test]
fn http_bodies() {
    let f = req(RouteKind::Http, "GET", "/x", "").inspect();
    assert_eq!((f.tool, f.parameters, f.error), (None, None, None));
    let f = req(RouteKind::Http, "POST", "/x", "a=1&b=two+words")
        .header("content-type", "application/x-www-form-urlencoded")
        .inspect();
    assert_eq!(
        f.parameters.as_deref(),
        Some(r#"{"body":{"a":"1","b":"two words"}}"#)
    );
    let f = req(RouteKind::Http, "POST", "/x", "<xml/>")
        .header("content-type", "application/xml")
        .inspect();
    assert_eq!((f.parameters, f.error), (None, None));
    let f = req(RouteKind::Http, "POST", "/x", r#"{"a":1}"#).inspect();
    assert_eq!(
        f.parameters.as_deref(),
        Some(r#"{"body":{"a":1}}"#),
        "undeclared but JSON"
    );
    let f = req(RouteKind::Http, "POST", "/x", "{bad")
        .header("content-type", "application/json")
        .inspect();
    assert_eq!(f.parameters, None);
    assert!(
        f.error
            .expect("error")
            .starts_with("request body is not JSON")
    );
    let mut r = req(RouteKind::Http, "POST", "/x", "{}");
    r.complete = false;
    r.query = Some("q=1");
    let f = r.inspect();
    assert_eq!(
        (f.parameters.as_deref(), f.uninspected),
        (Some(r#"{"query":{"q":"1"}}"#), true)
    );
}

// ---- Tool-result ids and tool arguments -------------------------------------

fn ids(f: &RequestFacts) -> Vec<&str> {
    f.tool_result_ids.iter().map(String::as_str).collect()
}

#[test]
fn tool_result_ids_openai_chat() {
    let body = json!({"model": "gpt-4o", "messages": [
        {"role": "user", "content": "hi", "tool_call_id": "not_a_result"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "t", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "secret result text"},
        {"tool_call_id": "call_2", "content": [{"type": "text", "text": "x"}], "role": "tool"},
        {"role": "tool", "tool_call_id": "call_1", "content": "again"},
        {"role": "tool", "tool_call_id": "call_\u{e9}\"q", "content": "escaped id"},
        {"role": "tool", "content": "no id"}]});
    let f = req(
        RouteKind::Openai,
        "POST",
        "/v1/chat/completions",
        &body.to_string(),
    )
    .inspect();
    assert_eq!(ids(&f), ["call_1", "call_2", "call_\u{e9}\"q"]);
    assert_eq!((f.model.as_deref(), f.error), (Some("gpt-4o"), None));
    assert_eq!((f.parameters, f.tool_arguments), (None, None));
}

#[test]
fn tool_result_ids_openai_responses() {
    let body = json!({"model": "gpt-5", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "function_call", "call_id": "call_1", "name": "t", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "result"},
        {"type": "custom_tool_call_output", "call_id": "call_2", "output": "rows"},
        {"type": "function_call_output", "call_id": "call_1", "output": "dup"}]});
    let f = req(
        RouteKind::Openai,
        "POST",
        "/v1/responses",
        &body.to_string(),
    )
    .inspect();
    assert_eq!(ids(&f), ["call_1", "call_2"]);
    let f = req(
        RouteKind::Openai,
        "POST",
        "/v1/responses",
        r#"{"model":"gpt-5","input":"just text"}"#,
    )
    .inspect();
    assert!(f.tool_result_ids.is_empty());
    assert_eq!(f.error, None);
}

#[test]
fn tool_result_ids_anthropic() {
    let body = json!({"model": "claude", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}},
                                          {"type": "tool_use", "id": "toolu_2", "name": "t", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "two"},
            {"tool_use_id": "toolu_1", "is_error": true, "type": "tool_result",
             "content": [{"type": "text", "text": "failed"}]},
            {"type": "text", "text": "and then?"}]},
        // role "tool" is not an Anthropic shape: not read.
        {"role": "tool", "tool_call_id": "call_x", "content": "x"}]});
    let f = req(
        RouteKind::Anthropic,
        "POST",
        "/v1/messages",
        &body.to_string(),
    )
    .inspect();
    assert_eq!(ids(&f), ["toolu_2", "toolu_1"]);
    // ...nor are Anthropic blocks on an OpenAI route.
    let f = req(
        RouteKind::Openai,
        "POST",
        "/v1/chat/completions",
        &body.to_string(),
    )
    .inspect();
    assert_eq!(ids(&f), ["call_x"]);
}

#[test]
fn tool_result_ids_are_bounded() {
    let mut messages = vec![json!({"role": "tool", "tool_call_id": "", "content": ""})];
    messages.push(json!({"role": "tool", "tool_call_id": "x".repeat(MAX_TOOL_RESULT_ID_BYTES + 1), "content": ""}));
    messages.push(json!({"role": "tool", "tool_call_id": "y".repeat(MAX_TOOL_RESULT_ID_BYTES), "content": ""}));
    for i in 0..300 {
        messages.push(json!({"role": "tool", "tool_call_id": format!("call_{i}"), "content": ""}));
    }
    let body = json!({"model": "gpt-4o", "messages": messages});
    let f = req(
        RouteKind::Openai,
        "POST",
        "/v1/chat/completions",
        &body.to_string(),
    )
    .inspect();
    assert_eq!(f.tool_result_ids.len(), MAX_TOOL_RESULT_IDS);
    assert_eq!(f.tool_result_ids[0].len(), MAX_TOOL_RESULT_ID_BYTES);
    assert_eq!(f.tool_result_ids[1], "call_0");
    assert_eq!(
        f.tool_result_ids.last().map(String::as_str),
        Some("call_254")
    );
}

#[test]
fn odd_message_shapes_are_skipped_not_errors() {
    for body in [
        r#"{"model":"m","messages":"a string"}"#,
        r#"{"model":"m","messages":null,"input":null}"#,
        r#"{"model":"m","messages":{"role":"tool"}}"#,
        r#"{"model":"m","messages":[1,null,"x",[{"role":"tool"}],true,2.5]}"#,
        r#"{"model":"m","messages":[{"role":5,"tool_call_id":{"a":[1]},"content":{"type":"tool_result"}}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":[1,"x",null,{"type":["tool_result"],"tool_use_id":7}]}]}"#,
        r#"{"model":"m","input":[[1,2,3],[4]]}"#,
        r#"{"model":"m","input":["a","b"]}"#,
        r#"{"model":"m","input":{"type":"function_call_output","call_id":"c"}}"#,
    ] {
        for kind in [RouteKind::Openai, RouteKind::Anthropic] {
            let f = req(kind, "POST", "/v1/chat/completions", body).inspect();
            assert_eq!(
                (
                    f.model.as_deref(),
                    f.error.as_deref(),
                    f.tool_result_ids.len()
                ),
                (Some("m"), None, 0),
                "{body}"
            );
        }
    }
    // Malformed JSON inside the messages is still an error, as before.
    let f = req(
        RouteKind::Openai,
        "POST",
        "/v1/chat/completions",
        r#"{"model":"m","messages":[{"role":"tool",}]}"#,
    )
    .inspect();
    assert!(
        f.error
            .expect("error")
            .starts_with("request body is not JSON")
    );
}

#[test]
fn http_tool_arguments() {
    let tools = ToolMap::new(vec![
        ToolMapping {
            method: "POST".into(),
            path: "/api/contacts/{id}/notes".into(),
            tool: "crm:notes".into(),
        },
        ToolMapping {
            method: "GET".into(),
            path: "/api/contacts/{id}".into(),
            tool: "crm:contact".into(),
        },
    ])
    .expect("valid");
    let l = Limits::default();
    // A JSON object body is the arguments.
    let mut r = req(
        RouteKind::Http,
        "POST",
        "/api/contacts/c1/notes",
        r#"{"text": "call back", "pin": true}"#,
    )
    .header("content-type", "application/json");
    r.query = Some("notify=yes");
    let f = r.inspect_with(Some(&tools), &l);
    assert_eq!(
        f.tool_arguments.as_deref(),
        Some(r#"{"pin":true,"text":"call back"}"#)
    );
    // A form body too.
    let f = req(
        RouteKind::Http,
        "POST",
        "/api/contacts/c1/notes",
        "text=call+back",
    )
    .header("content-type", "application/x-www-form-urlencoded")
    .inspect_with(Some(&tools), &l);
    assert_eq!(f.tool_arguments.as_deref(), Some(r#"{"text":"call back"}"#));
    // Otherwise the path and query parameters, merged; the path wins a clash.
    let mut r = req(RouteKind::Http, "GET", "/api/contacts/c%2F1", "");
    r.query = Some("fields=name&fields=email&id=spoofed");
    let f = r.inspect_with(Some(&tools), &l);
    assert_eq!(
        f.tool_arguments.as_deref(),
        Some(r#"{"fields":["name","email"],"id":"c/1"}"#)
    );
    let f = req(RouteKind::Http, "POST", "/api/contacts/c1/notes", "[1,2]")
        .header("content-type", "application/json")
        .inspect_with(Some(&tools), &l);
    assert_eq!(
        f.tool_arguments.as_deref(),
        Some(r#"{"id":"c1"}"#),
        "non-object body"
    );
    // Not mapped to a tool: none.
    let mut r = req(RouteKind::Http, "POST", "/other", r#"{"a":1}"#);
    r.query = Some("q=1");
    let f = r.inspect_with(Some(&tools), &l);
    assert_eq!((f.tool, f.tool_arguments), (None, None));
    assert!(f.parameters.is_some());
}

mod mcp;
mod once;

mod operations_by_last_segments {
    use super::super::llm::{anthropic_operation, openai_operation};
    use proptest::prelude::*;

    /// How the operations were matched before: on all the segments, collected.
    fn by_all_segments(path: &str, openai: bool) -> Option<&'static str> {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if openai {
            match segs.as_slice() {
                [.., "chat", "completions"] => Some("chat.completions"),
                [.., "responses"] => Some("responses"),
                [.., "completions"] => Some("completions"),
                [.., "embeddings"] => Some("embeddings"),
                [.., "moderations"] => Some("moderations"),
                [.., "models"] => Some("models"),
                _ => None,
            }
        } else {
            match segs.as_slice() {
                [.., "messages"] => Some("messages"),
                [.., "messages", "count_tokens"] => Some("messages.count_tokens"),
                [.., "messages", "batches"] => Some("messages.batches"),
                [.., "complete"] => Some("complete"),
                [.., "models"] => Some("models"),
                _ => None,
            }
        }
    }

    proptest! {
        #[test]
        fn the_last_two_segments_name_the_operation_as_all_of_them_did(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("/"), Just("chat"), Just("completions"), Just("responses"),
                    Just("embeddings"), Just("moderations"), Just("models"), Just("messages"),
                    Just("count_tokens"), Just("batches"), Just("complete"), Just("v1"), Just("é"),
                ],
                0..8,
            ),
        ) {
            let path = parts.concat();
            prop_assert_eq!(openai_operation(&path), by_all_segments(&path, true), "{}", path);
            prop_assert_eq!(anthropic_operation(&path), by_all_segments(&path, false), "{}", path);
        }
    }
}
