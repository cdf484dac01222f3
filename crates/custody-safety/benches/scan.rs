//! Scanning throughput: a clean 16 KiB JSON chat prompt and dense-PII text, and
//! a streamed answer as the response scanner sees it (its text, delta by delta),
//! and a non-streamed chat completion response scanned as JSON and as bytes.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use custody_safety::{Detectors, StreamScanner, scan_body};
use std::hint::black_box;
use std::sync::Arc;

fn clean_prompt(size: usize) -> Vec<u8> {
    let sentence = "The quarterly pipeline review covers renewals, expansion and churn risk; \
please summarise the open opportunities for the EMEA team, highlight anything blocked \
on legal, and suggest next steps for each account owner before Friday's meeting. ";
    let mut messages = Vec::new();
    let mut total = 0;
    let mut i = 0;
    while total < size {
        let content = sentence.repeat(3);
        total += content.len() + 40;
        messages.push(serde_json::json!({"role": if i % 2 == 0 {"user"} else {"assistant"}, "content": content}));
        i += 1;
    }
    serde_json::to_vec(
        &serde_json::json!({"model": "gpt-4o-mini", "temperature": 0.2, "messages": messages}),
    )
    .unwrap_or_default()
}

fn dense_text(size: usize) -> Vec<u8> {
    let line = "Customer Jane Roe, jane.roe@example.com, phone +1 415-555-2671, SSN 123-45-6789, \
card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, from 192.168.10.24; key AKIAIOSFODNN7EXAMPLE.\n";
    line.repeat(size / line.len() + 1).into_bytes()
}

fn bench(c: &mut Criterion) {
    let detectors = Detectors::builtin();
    let mut group = c.benchmark_group("scan");
    let prompt = clean_prompt(16 * 1024);
    group.throughput(Throughput::Bytes(prompt.len() as u64));
    group.bench_function("clean_json_16k", |b| {
        b.iter(|| scan_body(&detectors, black_box(&prompt)))
    });
    let big = clean_prompt(1024 * 1024);
    group.throughput(Throughput::Bytes(big.len() as u64));
    group.bench_function("clean_json_1m", |b| {
        b.iter(|| scan_body(&detectors, black_box(&big)))
    });
    let dense16 = dense_text(16 * 1024);
    group.throughput(Throughput::Bytes(dense16.len() as u64));
    group.bench_function("dense_pii_text_16k", |b| {
        b.iter(|| scan_body(&detectors, black_box(&dense16)))
    });
    let dense_json = serde_json::to_vec(&serde_json::json!({
        "messages": [{"role": "user", "content": String::from_utf8_lossy(&dense16)}]
    }))
    .unwrap_or_default();
    group.throughput(Throughput::Bytes(dense_json.len() as u64));
    group.bench_function("dense_pii_json_16k", |b| {
        b.iter(|| scan_body(&detectors, black_box(&dense_json)))
    });
    let dense = dense_text(1024 * 1024);
    group.throughput(Throughput::Bytes(dense.len() as u64));
    group.bench_function("dense_pii_text_1m", |b| {
        b.iter(|| scan_body(&detectors, black_box(&dense)))
    });
    // A model's answer as the SSE scanner is fed it: ~4 KiB of prose, in deltas of
    // a few words.
    let shared = Arc::new(detectors.clone());
    let answer = clean_prompt(4 * 1024);
    group.throughput(Throughput::Bytes(answer.len() as u64));
    group.bench_function("stream_answer_4k_in_24b_deltas", |b| {
        b.iter(|| {
            let mut scanner = StreamScanner::new(shared.clone(), "response.choices[0]");
            for delta in black_box(&answer).chunks(24) {
                scanner.feed(delta);
            }
            scanner.finish()
        })
    });
    // A chat completion as a non-streamed response holds it: an envelope of ids,
    // keys and numbers around a short answer. Scanned as JSON (its values) and as
    // bytes (everything), the two ways a log-mode response scan can take.
    let response = serde_json::to_vec(&serde_json::json!({
        "id": "chatcmpl-AB12CD34EF56GH78", "object": "chat.completion", "created": 1_733_500_000,
        "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_0ba0d124f1",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null, "message": {
            "role": "assistant", "refusal": null,
            "content": "The renewal is on track; legal has signed off and the order form goes out on Friday."}}],
        "usage": {"prompt_tokens": 1024, "completion_tokens": 21, "total_tokens": 1045,
                  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}
    }))
    .unwrap_or_default();
    group.throughput(Throughput::Bytes(response.len() as u64));
    group.bench_function("chat_response_as_json", |b| {
        b.iter(|| scan_body(&detectors, black_box(&response)))
    });
    group.bench_function("chat_response_as_bytes", |b| {
        b.iter(|| {
            let mut scanner = StreamScanner::new(shared.clone(), "response");
            scanner.feed(black_box(&response));
            scanner.finish()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
