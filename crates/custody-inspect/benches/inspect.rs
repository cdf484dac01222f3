//! Inspection speed on the hot paths: one ~1 KB OpenAI chat request, and the
//! per-event cost of observing an OpenAI chat SSE stream (targets: <= 10 µs per
//! request, <= 2 µs per event). Also the MCP request path, requests carrying tool
//! results back, streams whose tool-call arguments arrive in fragments (OpenAI chat
//! and Responses, Anthropic), and the usage stripper.
//!
//! `cargo bench -p custody-inspect --bench inspect`

#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use custody_inspect::{
    Limits, RequestFacts, RequestInput, ResponseObserver, RouteKind, SseParser, UsageChunkStripper,
    inspect_request,
};
use http::HeaderMap;
use std::hint::black_box;

fn chat_request() -> Vec<u8> {
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are Acme Corp's CRM assistant. Answer with data from the tools; never guess figures. Keep answers short and cite the record ids you used."},
            {"role": "user", "content": "What's the pipeline status for Globex this quarter, and who is our main contact there? Also list the open deals over $100k with their stage."},
            {"role": "assistant", "content": "Globex has four open deals worth $1.2M in total; the \"Cypress Creek\" deal is at risk. The main contact is Hank Scorpio (CEO)."},
            {"role": "user", "content": "Draft a short follow-up email to Hank about the Cypress Creek deal, mentioning the revised timeline."}
        ],
        "tools": [{"type": "function", "function": {"name": "search_contacts", "description": "Search CRM contacts by free text.",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}}, "required": ["query"]}}}],
        "temperature": 0.2,
        "stream": true,
        "stream_options": {"include_usage": true}
    });
    serde_json::to_vec(&body).expect("json")
}

fn chat_stream(events: usize) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..events {
        out.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-C1aXb2Yc3Zd4We5Vf6Ug7Th8\",\"object\":\"chat.completion.chunk\",\"created\":1745920100,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_34a54ae93c\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" token{i}\"}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null,\"obfuscation\":\"x9\"}}\n\n"
        ));
    }
    out.push_str("data: {\"id\":\"chatcmpl-C1aXb2Yc3Zd4We5Vf6Ug7Th8\",\"object\":\"chat.completion.chunk\",\"created\":1745920100,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":412,\"completion_tokens\":31,\"total_tokens\":443,\"prompt_tokens_details\":{\"cached_tokens\":0}}}\n\ndata: [DONE]\n\n");
    out.into_bytes()
}

/// A chat request two turns into a tool loop: an assistant turn with two tool calls
/// and their two `role: tool` results.
fn chat_tool_results_request() -> Vec<u8> {
    let mut body: serde_json::Value = serde_json::from_slice(&chat_request()).expect("json");
    let messages = body["messages"].as_array_mut().expect("messages");
    messages.push(serde_json::json!({"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_Ab12Cd34Ef56Gh78Ij90Kl12", "type": "function", "function": {"name": "search_contacts", "arguments": "{\"query\":\"Hank Scorpio\"}"}},
        {"id": "call_Mn34Op56Qr78St90Uv12Wx34", "type": "function", "function": {"name": "search_contacts", "arguments": "{\"query\":\"Globex\",\"limit\":3}"}}]}));
    messages.push(serde_json::json!({"role": "tool", "tool_call_id": "call_Ab12Cd34Ef56Gh78Ij90Kl12", "content": "[{\"id\":\"c_17\",\"name\":\"Hank Scorpio\",\"title\":\"CEO\",\"email\":\"hank@globex.example\"}]"}));
    messages.push(serde_json::json!({"role": "tool", "tool_call_id": "call_Mn34Op56Qr78St90Uv12Wx34", "content": "[{\"id\":\"c_17\",\"name\":\"Hank Scorpio\"},{\"id\":\"c_18\",\"name\":\"Mindy Simmons\"}]"}));
    serde_json::to_vec(&body).expect("json")
}

/// An Anthropic request carrying a `tool_result` block back.
fn anthropic_tool_results_request() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": "You are Acme Corp's CRM assistant. Answer with data from the tools; never guess figures.",
        "tools": [{"name": "get_pipeline", "description": "Get the sales pipeline of one account for a quarter.",
            "input_schema": {"type": "object", "properties": {"account": {"type": "string"}, "quarter": {"type": "string"}}, "required": ["account", "quarter"]}}],
        "messages": [
            {"role": "user", "content": "What's the pipeline status for Globex this quarter, and who is our main contact there?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me check the pipeline."},
                {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_pipeline", "input": {"account": "Globex", "quarter": "2025-Q2"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "content": "{\"open_deals\":4,\"total_usd\":1200000,\"at_risk\":[\"Cypress Creek\"]}"}]}
        ],
        "stream": true
    }))
    .expect("json")
}

/// A chat stream where the model calls one tool and its arguments arrive in
/// `fragments` pieces, then usage and `[DONE]`.
fn chat_tool_stream(fragments: usize) -> Vec<u8> {
    let head = r#"data: {"id":"chatcmpl-C2tOoLcAlLsStReAmEd0001","object":"chat.completion.chunk","created":1745920100,"model":"gpt-4.1-2025-04-14","service_tier":"default","system_fingerprint":"fp_34a54ae93c","choices":[{"index":0,"delta":"#;
    let mut out = String::new();
    out.push_str(head);
    out.push_str(r#"{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_Ab12Cd34Ef56Gh78Ij90Kl12","type":"function","function":{"name":"search_contacts","arguments":""}}],"refusal":null},"logprobs":null,"finish_reason":null}]}"#);
    out.push_str("\n\n");
    out.push_str(head);
    out.push_str(r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"query\":\""}}]},"logprobs":null,"finish_reason":null}]}"#);
    out.push_str("\n\n");
    for i in 0..fragments {
        out.push_str(head);
        out.push_str(&format!(r#"{{"tool_calls":[{{"index":0,"function":{{"arguments":"word{i} "}}}}]}},"logprobs":null,"finish_reason":null}}]}}"#));
        out.push_str("\n\n");
    }
    out.push_str(head);
    out.push_str(r#"{"tool_calls":[{"index":0,"function":{"arguments":"\"}"}}]},"logprobs":null,"finish_reason":"tool_calls"}]}"#);
    out.push_str("\n\ndata: {\"id\":\"chatcmpl-C2tOoLcAlLsStReAmEd0001\",\"object\":\"chat.completion.chunk\",\"created\":1745920100,\"model\":\"gpt-4.1-2025-04-14\",\"choices\":[],\"usage\":{\"prompt_tokens\":412,\"completion_tokens\":31,\"total_tokens\":443}}\n\ndata: [DONE]\n\n");
    out.into_bytes()
}

/// An Anthropic stream: `text` text deltas, then one tool_use block whose input
/// arrives in `fragments` `input_json_delta` pieces.
fn anthropic_stream(text: usize, fragments: usize) -> Vec<u8> {
    let mut out = String::from(concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p7gG3wDgGV9EUtLvnow3U\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":2}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    ));
    for i in 0..text {
        out.push_str(&format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\" token{i}\"}}}}\n\n"));
    }
    out.push_str(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    );
    out.push_str("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"search_contacts\",\"input\":{}}}\n\n");
    out.push_str("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"query\\\": \\\"\"}}\n\n");
    for i in 0..fragments {
        out.push_str(&format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":\"word{i} \"}}}}\n\n"));
    }
    out.push_str("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"}\"}}\n\n");
    out.push_str(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    );
    out.push_str("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":118}}\n\n");
    out.push_str("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    out.into_bytes()
}

/// A Responses API stream: one function call whose arguments arrive in
/// `fragments` deltas, then the item, `.done` and `response.completed`.
fn responses_stream(fragments: usize) -> Vec<u8> {
    let mut out = String::from(
        "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"o4-mini-2025-04-16\",\"output\":[],\"usage\":null}}\n\n",
    );
    out.push_str("event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"sequence_number\":1,\"output_index\":0,\"item\":{\"id\":\"fc_68b0c1d9f0e1d2c3b4a59687\",\"type\":\"function_call\",\"status\":\"in_progress\",\"arguments\":\"\",\"call_id\":\"call_Pq8Rs6Tu4Vw2Xy0Za1Bc3De\",\"name\":\"search_contacts\"}}\n\n");
    let mut args = String::from("{\"query\":\"");
    for i in 0..fragments {
        let piece = format!("word{i} ");
        args.push_str(&piece);
        out.push_str(&format!("event: response.function_call_arguments.delta\ndata: {{\"type\":\"response.function_call_arguments.delta\",\"sequence_number\":{},\"item_id\":\"fc_68b0c1d9f0e1d2c3b4a59687\",\"output_index\":0,\"delta\":\"{piece}\",\"obfuscation\":\"k2\"}}\n\n", i + 2));
    }
    args.push_str("\"}");
    let quoted = serde_json::to_string(&args).expect("json");
    out.push_str(&format!("event: response.function_call_arguments.done\ndata: {{\"type\":\"response.function_call_arguments.done\",\"item_id\":\"fc_68b0c1d9f0e1d2c3b4a59687\",\"output_index\":0,\"arguments\":{quoted}}}\n\n"));
    let item = format!(
        "{{\"id\":\"fc_68b0c1d9f0e1d2c3b4a59687\",\"type\":\"function_call\",\"status\":\"completed\",\"arguments\":{quoted},\"call_id\":\"call_Pq8Rs6Tu4Vw2Xy0Za1Bc3De\",\"name\":\"search_contacts\"}}"
    );
    out.push_str(&format!("event: response.output_item.done\ndata: {{\"type\":\"response.output_item.done\",\"output_index\":0,\"item\":{item}}}\n\n"));
    out.push_str(&format!("event: response.completed\ndata: {{\"type\":\"response.completed\",\"response\":{{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"completed\",\"model\":\"o4-mini-2025-04-16\",\"output\":[{item}],\"usage\":{{\"input_tokens\":1536,\"output_tokens\":212,\"total_tokens\":1748}}}}}}\n\n"));
    out.into_bytes()
}

/// A chat completion as an upstream returns it whole: ~1 KiB of content, usage.
fn chat_completion_json() -> Vec<u8> {
    let content = "The quarterly numbers look steady; ".repeat(30);
    serde_json::json!({
        "id": "chatcmpl-Bx1", "object": "chat.completion", "created": 1_765_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null,
            "message": {"role": "assistant", "content": content, "refusal": null,
                "annotations": []}}],
        "usage": {"prompt_tokens": 412, "completion_tokens": 230, "total_tokens": 642,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}},
        "service_tier": "default", "system_fingerprint": "fp_8bda4d3a2c"
    })
    .to_string()
    .into_bytes()
}

/// Observes `stream` fed in 1400-byte chunks.
fn observe(kind: RouteKind, facts: &RequestFacts, limits: &Limits, stream: &[u8]) -> usize {
    let mut o = ResponseObserver::new(kind, facts, 200, Some("text/event-stream"), limits);
    for chunk in stream.chunks(1400) {
        o.feed(black_box(chunk));
    }
    o.finish().tool_calls.len()
}

fn input<'a>(
    kind: RouteKind,
    path: &'a str,
    headers: &'a HeaderMap,
    body: &'a [u8],
) -> RequestInput<'a> {
    RequestInput {
        kind,
        route: "bench",
        method: "POST",
        path,
        query: None,
        headers,
        body,
        body_complete: true,
        tools: None,
    }
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let headers = HeaderMap::new();
    let body = chat_request();
    let chat = input(RouteKind::Openai, "/v1/chat/completions", &headers, &body);
    let mut g = c.benchmark_group("request");
    g.bench_function(format!("openai_chat_{}B", body.len()), |b| {
        b.iter(|| inspect_request(black_box(&chat), &limits))
    });
    let mcp_body = br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"search_contacts","arguments":{"query":"Globex main contact","limit":3,"fields":["name","title","email"]},"_meta":{"progressToken":3}}}"#;
    let mcp = input(RouteKind::Mcp, "/mcp", &headers, mcp_body);
    g.bench_function("mcp_tools_call", |b| {
        b.iter(|| inspect_request(black_box(&mcp), &limits))
    });
    let results = chat_tool_results_request();
    let chat_results = input(
        RouteKind::Openai,
        "/v1/chat/completions",
        &headers,
        &results,
    );
    g.bench_function(
        format!("openai_chat_tool_results_{}B", results.len()),
        |b| b.iter(|| inspect_request(black_box(&chat_results), &limits)),
    );
    let results = anthropic_tool_results_request();
    let anthropic_results = input(RouteKind::Anthropic, "/v1/messages", &headers, &results);
    g.bench_function(format!("anthropic_tool_results_{}B", results.len()), |b| {
        b.iter(|| inspect_request(black_box(&anthropic_results), &limits))
    });
    g.finish();

    // A whole (non-streamed) chat completion, with ~1 KiB of content.
    let completion = chat_completion_json();
    let json_facts = RequestFacts {
        operation: Some("chat.completions".into()),
        ..RequestFacts::default()
    };
    let mut g = c.benchmark_group("response");
    g.bench_function(format!("openai_chat_json_{}B", completion.len()), |b| {
        b.iter(|| {
            let mut o = ResponseObserver::new(
                RouteKind::Openai,
                &json_facts,
                200,
                Some("application/json"),
                &limits,
            );
            o.feed(black_box(&completion));
            o.finish()
        })
    });
    g.finish();
    let events = 200;
    let stream = chat_stream(events);
    let facts = RequestFacts {
        operation: Some("chat.completions".into()),
        stream: true,
        ..RequestFacts::default()
    };
    let mut g = c.benchmark_group("sse");
    g.throughput(Throughput::Elements(events as u64 + 2));
    g.bench_function("openai_chat_stream_per_event", |b| {
        b.iter(|| {
            let mut o = ResponseObserver::new(
                RouteKind::Openai,
                &facts,
                200,
                Some("text/event-stream"),
                &limits,
            );
            for chunk in stream.chunks(1400) {
                o.feed(black_box(chunk));
            }
            o.finish()
        })
    });
    let fragments = 100;
    let tool_stream = chat_tool_stream(fragments);
    let responses = responses_stream(fragments);
    let anthropic = anthropic_stream(events, fragments);
    for (kind, stream) in [
        (RouteKind::Openai, &tool_stream),
        (RouteKind::Openai, &responses),
        (RouteKind::Anthropic, &anthropic),
    ] {
        assert_eq!(observe(kind, &facts, &limits, stream), 1, "one tool call");
    }
    g.throughput(Throughput::Elements(fragments as u64 + 5));
    g.bench_function("openai_chat_tool_stream_per_event", |b| {
        b.iter(|| observe(RouteKind::Openai, &facts, &limits, &tool_stream))
    });
    g.throughput(Throughput::Elements(fragments as u64 + 5));
    g.bench_function("openai_responses_tool_stream_per_event", |b| {
        b.iter(|| observe(RouteKind::Openai, &facts, &limits, &responses))
    });
    g.throughput(Throughput::Elements((events + fragments) as u64 + 10));
    g.bench_function("anthropic_text_and_tool_stream_per_event", |b| {
        b.iter(|| observe(RouteKind::Anthropic, &facts, &limits, &anthropic))
    });
    g.throughput(Throughput::Elements(events as u64 + 2));
    g.bench_function("sse_parser_only_per_event", |b| {
        b.iter(|| {
            let mut p = SseParser::new(limits.max_event_bytes);
            let mut n = 0usize;
            for chunk in stream.chunks(1400) {
                p.feed(black_box(chunk), |ev| n += ev.data.len());
            }
            n
        })
    });
    g.bench_function("usage_stripper_per_event", |b| {
        let mut out = Vec::with_capacity(stream.len());
        b.iter(|| {
            out.clear();
            let mut s = UsageChunkStripper::new();
            for chunk in stream.chunks(1400) {
                s.push(black_box(chunk), &mut out);
            }
            s.finish(&mut out);
            out.len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
