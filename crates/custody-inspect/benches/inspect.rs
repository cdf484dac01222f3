//! Inspection speed on the hot paths: one ~1 KB OpenAI chat request, and the
//! per-event cost of observing an OpenAI chat SSE stream (targets: <= 10 µs per
//! request, <= 2 µs per event). Also the MCP request path and the usage stripper.
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
