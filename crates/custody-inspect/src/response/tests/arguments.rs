//! Tool-call arguments: assembled per call from whole bodies and streamed
//! fragments, canonical, bounded.

use super::*;

/// Observes `body` whole, byte by byte and split in two at every point: the facts
/// must not change; returns them.
fn observe_every_split(
    kind: RouteKind,
    op: &str,
    ct: &str,
    body: &str,
    l: &Limits,
) -> ResponseFacts {
    let req = facts(op);
    let whole = observe(kind, &req, Some(ct), body.as_bytes(), l);
    let mut o = ResponseObserver::new(kind, &req, 200, Some(ct), l);
    for b in body.as_bytes().chunks(1) {
        o.feed(b);
    }
    assert_eq!(o.finish(), whole, "byte by byte");
    for at in 0..body.len() {
        let mut o = ResponseObserver::new(kind, &req, 200, Some(ct), l);
        let (a, b) = body.as_bytes().split_at(at);
        o.feed(a);
        o.feed(b);
        assert_eq!(o.finish(), whole, "split at {at}");
    }
    whole
}

fn sse_of(events: &[(&str, Value)]) -> String {
    let mut out = String::new();
    for (name, data) in events {
        if !name.is_empty() {
            out.push_str(&format!("event: {name}\n"));
        }
        out.push_str(&format!("data: {data}\n\n"));
    }
    out
}

/// A chat stream: per (choice, tool index, id, name, fragments).
fn chat_stream(calls: &[(u32, u32, &str, &str, &[&str])], done: bool) -> String {
    let mut events = Vec::new();
    for &(ci, ti, id, name, _) in calls {
        events.push((
            "",
            json!({"model": "gpt-4o", "choices": [{"index": ci, "delta": {"tool_calls": [
                {"index": ti, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}}]}),
        ));
    }
    let longest = calls.iter().map(|c| c.4.len()).max().unwrap_or(0);
    for k in 0..longest {
        for &(ci, ti, _, _, fragments) in calls {
            if let Some(f) = fragments.get(k) {
                events.push((
                    "",
                    json!({"model": "gpt-4o", "choices": [{"index": ci, "delta": {"tool_calls": [
                        {"index": ti, "function": {"arguments": f}}]}}]}),
                ));
            }
        }
    }
    let mut out = sse_of(&events);
    if done {
        out.push_str("data: [DONE]\n\n");
    }
    out
}

fn args(f: &ResponseFacts) -> Vec<Option<&str>> {
    f.tool_calls
        .iter()
        .map(|c| c.arguments.as_deref())
        .collect()
}

const SSE: &str = "text/event-stream";
const JSON: &str = "application/json";

#[test]
fn chat_stream_arguments_assembled_per_slot_at_any_split() {
    // Two choices, parallel calls, fragments interleaved and split inside an
    // escape (`\u00eb`) and inside keys.
    let body = chat_stream(
        &[
            (
                0,
                0,
                "call_a",
                "search",
                &["{\"qu", "ery\": \"Zo\\u00", "eb\" ,", " \"limit\":2}"],
            ),
            (0, 1, "call_b", "get", &["{\"id\":", "\"c_1\"}"]),
            (1, 0, "call_c", "search", &["[1, ", "2]"]),
        ],
        true,
    );
    let f = observe_every_split(
        RouteKind::Openai,
        "chat.completions",
        SSE,
        &body,
        &Limits::default(),
    );
    assert_eq!(
        args(&f),
        [
            Some(r#"{"limit":2,"query":"Zoë"}"#),
            Some(r#"{"id":"c_1"}"#),
            Some("[1,2]")
        ]
    );
    let ids: Vec<_> = f.tool_calls.iter().map(|c| c.id.as_deref()).collect();
    assert_eq!(ids, [Some("call_a"), Some("call_b"), Some("call_c")]);
}

#[test]
fn arguments_canonicalise_equal_across_key_order_whitespace_and_providers() {
    let l = Limits::default();
    let want = r#"{"a":[1,{"x":null,"y":"é"}],"b":true}"#;
    let chat = |args: &str| {
        let body = json!({"model": "gpt-4o", "choices": [{"index": 0, "message": {"role": "assistant",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "t", "arguments": args}}]}}]});
        observe(
            RouteKind::Openai,
            &facts("chat.completions"),
            Some(JSON),
            body.to_string().as_bytes(),
            &l,
        )
    };
    for text in [
        r#"{"b":true,"a":[1,{"y":"é","x":null}]}"#,
        "{ \"a\" : [ 1 , { \"x\" : null , \"y\" : \"\\u00e9\" } ] ,\n\t\"b\" : true }",
    ] {
        assert_eq!(args(&chat(text)), [Some(want)], "{text}");
    }
    let anthropic = json!({"type": "message", "model": "claude", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "t", "input": {"b": true, "a": [1, {"y": "é", "x": null}]}}]});
    let f = observe(
        RouteKind::Anthropic,
        &facts("messages"),
        Some(JSON),
        anthropic.to_string().as_bytes(),
        &l,
    );
    assert_eq!(args(&f), [Some(want)]);
    let responses = json!({"model": "gpt-5", "output": [
        {"type": "function_call", "call_id": "call_1", "name": "t", "arguments": "{\"b\":true,\"a\":[1,{\"x\":null,\"y\":\"é\"}]}"}]});
    let f = observe(
        RouteKind::Openai,
        &facts("responses"),
        Some(JSON),
        responses.to_string().as_bytes(),
        &l,
    );
    assert_eq!(args(&f), [Some(want)]);
}

#[test]
fn invalid_or_truncated_arguments_are_none() {
    let l = Limits::default();
    let chat = json!({"model": "gpt-4o", "choices": [{"index": 0, "message": {"tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "t", "arguments": "{\"a\":"}},
        {"id": "call_2", "type": "function", "function": {"name": "t", "arguments": "{} trailing"}},
        {"id": "call_3", "type": "function", "function": {"name": "t", "arguments": ""}},
        {"id": "call_4", "type": "function", "function": {"name": "t"}},
        {"id": "call_5", "type": "function", "function": {"name": "t", "arguments": {"compat": "object"}}}]}}]});
    let f = observe(
        RouteKind::Openai,
        &facts("chat.completions"),
        Some(JSON),
        chat.to_string().as_bytes(),
        &l,
    );
    assert_eq!(
        args(&f),
        [None, None, None, None, Some(r#"{"compat":"object"}"#)]
    );
    // Streams cut short: what was assembled does not parse.
    let body = chat_stream(&[(0, 0, "call_1", "t", &["{\"a\":", "1}"])], true);
    let cut = &body[..body.find("1}").expect("fragment")];
    let f = observe(
        RouteKind::Openai,
        &facts("chat.completions"),
        Some(SSE),
        cut.as_bytes(),
        &l,
    );
    assert_eq!((f.tool_calls.len(), args(&f)), (1, vec![None]));
    let invalid = chat_stream(&[(0, 0, "call_1", "t", &["{\"a\":", "1}}"])], true);
    let f = observe(
        RouteKind::Openai,
        &facts("chat.completions"),
        Some(SSE),
        invalid.as_bytes(),
        &l,
    );
    assert_eq!(args(&f), [None]);
    // An Anthropic block cut before its stop, with or without fragments.
    let start = (
        "content_block_start",
        json!({"type": "content_block_start", "index": 0,
        "content_block": {"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}}),
    );
    let delta = (
        "content_block_delta",
        json!({"type": "content_block_delta", "index": 0,
        "delta": {"type": "input_json_delta", "partial_json": "{\"a\": 1"}}),
    );
    for events in [vec![start.clone()], vec![start.clone(), delta.clone()]] {
        let f = observe(
            RouteKind::Anthropic,
            &facts("messages"),
            Some(SSE),
            sse_of(&events).as_bytes(),
            &l,
        );
        assert_eq!(args(&f), [None]);
    }
    // ...but a stream cut after the last fragment has them (only the stop is missing).
    let done = (
        "content_block_delta",
        json!({"type": "content_block_delta", "index": 0,
        "delta": {"type": "input_json_delta", "partial_json": "}"}}),
    );
    let f = observe(
        RouteKind::Anthropic,
        &facts("messages"),
        Some(SSE),
        sse_of(&[start, delta, done]).as_bytes(),
        &l,
    );
    assert_eq!(args(&f), [Some(r#"{"a":1}"#)]);
}

#[test]
fn oversized_arguments_are_none_and_assembly_stops() {
    let l = Limits {
        max_parameters_bytes: 16,
        ..Limits::default()
    };
    let fits = r#"{"q":"0123456"}"#; // 15 bytes
    let over = r#"{"q":"012345678"}"#; // 17 bytes
    let spaced = r#"{ "q":"012345" }"#; // 16 raw: fits; canonical is shorter
    let expands = "[1e2,1e2,1e2]"; // 13 raw, 19 canonical ("100.0")
    let chat = json!({"model": "gpt-4o", "choices": [{"index": 0, "message": {"tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "t", "arguments": fits}},
        {"id": "c2", "type": "function", "function": {"name": "t", "arguments": over}},
        {"id": "c3", "type": "function", "function": {"name": "t", "arguments": spaced}},
        {"id": "c4", "type": "function", "function": {"name": "t", "arguments": expands}}]}}]});
    let f = observe(
        RouteKind::Openai,
        &facts("chat.completions"),
        Some(JSON),
        chat.to_string().as_bytes(),
        &l,
    );
    assert_eq!(
        args(&f),
        [Some(fits), None, Some(r#"{"q":"012345"}"#), None]
    );
    // Streamed: assembly stops at the bound, and the call stays dropped.
    let pieces: Vec<String> = std::iter::once("{\"q\":\"".to_owned())
        .chain((0..1000).map(|_| "x".to_owned()))
        .chain(std::iter::once("\"}".to_owned()))
        .collect();
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    let body = chat_stream(
        &[(0, 0, "c1", "t", &pieces), (0, 1, "c2", "t", &["{}"])],
        true,
    );
    let req = facts("chat.completions");
    let mut o = ResponseObserver::new(RouteKind::Openai, &req, 200, Some(SSE), &l);
    o.feed(body.as_bytes());
    assert!(matches!(o.state.args[0], Args::Dropped));
    assert!(matches!(&o.state.args[1], Args::Open(t) if t == "{}"));
    assert_eq!(args(&o.finish()), [None, Some("{}")]);
    // Anthropic non-streamed input: bounded by its canonical length.
    let anthropic = json!({"type": "message", "content": [
        {"type": "tool_use", "id": "a", "name": "t", "input": {"q": "0123456"}},
        {"type": "tool_use", "id": "b", "name": "t", "input": {"q": "012345678"}}]});
    let f = observe(
        RouteKind::Anthropic,
        &facts("messages"),
        Some(JSON),
        anthropic.to_string().as_bytes(),
        &l,
    );
    assert_eq!(args(&f), [Some(fits), None]);
}

#[test]
fn all_calls_of_a_response_assemble_a_bounded_total() {
    let l = Limits {
        max_body_bytes: 64,
        ..Limits::default()
    };
    // Ten calls of 20-byte arguments, each in one fragment: the first three fit
    // in 64 bytes.
    let calls: Vec<(u32, u32, String)> = (0..10).map(|i| (0, i, format!("call_{i}"))).collect();
    let a = r#"{"q":"0123456789ab"}"#;
    assert_eq!(a.len(), 20);
    let frags = [a];
    let spec: Vec<(u32, u32, &str, &str, &[&str])> = calls
        .iter()
        .map(|(c, i, id)| (*c, *i, id.as_str(), "t", &frags[..]))
        .collect();
    let body = chat_stream(&spec, true);
    let f = observe(
        RouteKind::Openai,
        &facts("chat.completions"),
        Some(SSE),
        body.as_bytes(),
        &l,
    );
    assert_eq!(f.tool_calls.len(), 10);
    let kept = f
        .tool_calls
        .iter()
        .filter(|c| c.arguments.is_some())
        .count();
    assert_eq!(kept, 3);
}

fn responses_events(
    with_done: bool,
    with_items_done: bool,
    with_completed: bool,
) -> Vec<(&'static str, Value)> {
    let item = |args: &str, status: &str| {
        json!({"id": "fc_1", "type": "function_call", "status": status,
        "arguments": args, "call_id": "call_1", "name": "search"})
    };
    let mut ev = vec![
        (
            "response.created",
            json!({"type": "response.created", "response": {"model": "gpt-5", "output": []}}),
        ),
        (
            "response.output_item.added",
            json!({"type": "response.output_item.added", "output_index": 0, "item": item("", "in_progress")}),
        ),
    ];
    for d in ["{\"query\":", " \"Glo", "bex\" }"] {
        ev.push(("response.function_call_arguments.delta",
            json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 0, "delta": d})));
    }
    let full = r#"{"query": "Globex"}"#;
    if with_done {
        ev.push(("response.function_call_arguments.done",
            json!({"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 0, "arguments": full})));
    }
    if with_items_done {
        ev.push(("response.output_item.done", json!({"type": "response.output_item.done", "output_index": 0, "item": item(full, "completed")})));
    }
    if with_completed {
        ev.push(("response.completed", json!({"type": "response.completed", "response": {"model": "gpt-5",
            "output": [item(full, "completed")], "usage": {"input_tokens": 5, "output_tokens": 2}}})));
    }
    ev
}

#[test]
fn responses_stream_records_a_call_once_with_its_arguments() {
    let l = Limits::default();
    for (done, item_done, completed) in [
        (true, true, true),
        (false, true, true),
        (false, false, true),
        (true, false, false),
        (false, false, false), // cut after the deltas: assembled
    ] {
        let events = responses_events(done, item_done, completed);
        let f = observe_every_split(RouteKind::Openai, "responses", SSE, &sse_of(&events), &l);
        assert_eq!(f.tool_calls.len(), 1, "{done} {item_done} {completed}");
        assert_eq!(f.tool_calls[0].id.as_deref(), Some("call_1"));
        assert_eq!(
            args(&f),
            [Some(r#"{"query":"Globex"}"#)],
            "{done} {item_done} {completed}"
        );
    }
    // Without `event:` lines (the type in the data only), the same.
    let events: Vec<(&str, Value)> = responses_events(true, true, true)
        .into_iter()
        .map(|(_, v)| ("", v))
        .collect();
    let f = observe(
        RouteKind::Openai,
        &facts("responses"),
        Some(SSE),
        sse_of(&events).as_bytes(),
        &l,
    );
    assert_eq!(
        (f.tool_calls.len(), args(&f)),
        (1, vec![Some(r#"{"query":"Globex"}"#)])
    );
    // A whole source settles the call: `.done` wins over what the deltas assembled.
    let mut events = responses_events(false, false, false);
    events.push((
        "response.function_call_arguments.done",
        json!({"type": "response.function_call_arguments.done",
        "output_index": 0, "arguments": "{\"query\":\"Initech\"}"}),
    ));
    let f = observe(
        RouteKind::Openai,
        &facts("responses"),
        Some(SSE),
        sse_of(&events).as_bytes(),
        &l,
    );
    assert_eq!(
        args(&f),
        [Some(r#"{"query":"Initech"}"#)],
        "found by output_index"
    );
    // An in-progress item in a response snapshot is a placeholder, not settled.
    let mut events = responses_events(false, false, false);
    events.insert(2, ("response.in_progress", json!({"type": "response.in_progress", "response": {
        "model": "gpt-5", "output": [{"id": "fc_1", "type": "function_call", "status": "in_progress",
        "arguments": "", "call_id": "call_1", "name": "search"}]}})));
    let f = observe(
        RouteKind::Openai,
        &facts("responses"),
        Some(SSE),
        sse_of(&events).as_bytes(),
        &l,
    );
    assert_eq!(args(&f), [Some(r#"{"query":"Globex"}"#)]);
    // Deltas for an item never announced are ignored.
    let events = vec![(
        "response.function_call_arguments.delta",
        json!({"type": "response.function_call_arguments.delta", "item_id": "fc_9", "output_index": 3, "delta": "{}"}),
    )];
    let f = observe(
        RouteKind::Openai,
        &facts("responses"),
        Some(SSE),
        sse_of(&events).as_bytes(),
        &l,
    );
    assert!(f.tool_calls.is_empty());
}

#[test]
fn anthropic_stream_arguments_per_block() {
    let l = Limits::default();
    let start = |i: u32, id: &str, input: Value| {
        (
            "content_block_start",
            json!({"type": "content_block_start",
        "index": i, "content_block": {"type": "tool_use", "id": id, "name": "t", "input": input}}),
        )
    };
    let delta = |i: u32, p: &str| {
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": i,
        "delta": {"type": "input_json_delta", "partial_json": p}}),
        )
    };
    let text = |i: u32, t: &str| {
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": i,
        "delta": {"type": "text_delta", "text": t}}),
        )
    };
    let stop = |i: u32| {
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": i}),
        )
    };
    let events = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {"model": "claude", "content": [], "usage": {"input_tokens": 3}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        text(0, "{\"not\": \"arguments\"}"),
        stop(0),
        start(1, "toolu_a", json!({})),
        delta(1, ""),
        delta(1, "{\"b\": 2, "),
        delta(1, "\"a\": \"x\\\"y\"}"),
        stop(1),
        start(2, "toolu_b", json!({})),
        stop(2),
        start(3, "toolu_c", json!({"preset": 1})),
        stop(3),
        start(4, "toolu_d", json!({})),
        delta(4, "{\"a\": tru"),
        delta(4, "e}"),
        stop(4),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    let f = observe_every_split(RouteKind::Anthropic, "messages", SSE, &sse_of(&events), &l);
    assert_eq!(
        args(&f),
        [
            Some(r#"{"a":"x\"y","b":2}"#),
            Some("{}"),
            Some(r#"{"preset":1}"#),
            Some(r#"{"a":true}"#)
        ]
    );
}

#[test]
fn legacy_function_call_and_custom_tools() {
    let l = Limits::default();
    let chat = json!({"model": "gpt-4o", "choices": [{"index": 0, "message": {
        "function_call": {"name": "legacy", "arguments": "{\"x\": 1}"},
        "tool_calls": [{"id": "call_c", "type": "custom", "custom": {"name": "sql", "input": "SELECT 1"}},
                       {"id": "call_j", "type": "custom", "custom": {"name": "json_tool", "input": "{\"k\": [1]}"}}]}}]});
    let f = observe(
        RouteKind::Openai,
        &facts("chat.completions"),
        Some(JSON),
        chat.to_string().as_bytes(),
        &l,
    );
    let got: Vec<_> = f
        .tool_calls
        .iter()
        .map(|c| (c.name.as_str(), c.arguments.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("sql", None),
            ("json_tool", Some(r#"{"k":[1]}"#)),
            ("legacy", Some(r#"{"x":1}"#))
        ]
    );
    let events = vec![
        (
            "",
            json!({"model": "gpt-4o", "choices": [{"index": 0, "delta": {"function_call": {"name": "legacy", "arguments": ""}}}]}),
        ),
        (
            "",
            json!({"model": "gpt-4o", "choices": [{"index": 0, "delta": {"function_call": {"arguments": "{\"x\":"}}}]}),
        ),
        (
            "",
            json!({"model": "gpt-4o", "choices": [{"index": 0, "delta": {"function_call": {"arguments": " 1}"}}}]}),
        ),
    ];
    let f = observe_every_split(
        RouteKind::Openai,
        "chat.completions",
        SSE,
        &sse_of(&events),
        &l,
    );
    assert_eq!(args(&f), [Some(r#"{"x":1}"#)]);
}
