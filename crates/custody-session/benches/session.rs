//! Session tracking on the request path: `begin()` for an existing session (each
//! source), for a new session, from two threads; tool-call recording and linking;
//! `traceparent` parsing. Also prints the tracker's own accounting for 100 000
//! sessions with 4 pending calls each (the RSS-checked budget is asserted in
//! `tests/memory.rs`).
//!
//! `cargo bench -p custody-session --bench session`

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use custody_session::{
    Arguments, IdGen, ModelToolCall, SessionConfig, SessionInput, SessionTracker, TraceContext,
};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const NOW: u64 = 1_745_920_100_000;

fn tracker() -> SessionTracker {
    SessionTracker::with_ids(SessionConfig::default(), IdGen::from_seed(1)).unwrap()
}

/// A tracker holding `n` sessions of `n` subjects, so lookups hit a realistic table.
fn populated(n: u64) -> SessionTracker {
    let t = tracker();
    for i in 0..n {
        let sub = format!("auth0|{i:024}");
        let conv = format!("conv-{i:08}");
        t.begin(
            &SessionInput {
                sub: Some(&sub),
                explicit: Some(conv.as_bytes()),
                ..SessionInput::default()
            },
            NOW,
        );
    }
    t
}

fn begin(c: &mut Criterion) {
    let t = populated(50_000);
    let tp =
        TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    let sub = "auth0|000000000000000000001234";
    let cases: [(&str, SessionInput<'_>); 4] = [
        (
            "begin/existing/header",
            SessionInput {
                sub: Some(sub),
                explicit: Some(b"conv-00001234"),
                ..SessionInput::default()
            },
        ),
        (
            "begin/existing/traceparent",
            SessionInput {
                sub: Some(sub),
                traceparent: Some(&tp),
                ..SessionInput::default()
            },
        ),
        (
            "begin/existing/mcp",
            SessionInput {
                sub: Some(sub),
                mcp_session: Some(b"3f1c2b7e-4d0a-4c55-9b8e-0e2d7f6a9c11"),
                ..SessionInput::default()
            },
        ),
        (
            "begin/existing/inactivity",
            SessionInput {
                sub: Some(sub),
                ..SessionInput::default()
            },
        ),
    ];
    for (name, input) in cases {
        c.bench_function(name, |b| {
            let mut now = NOW;
            b.iter(|| {
                now += 1;
                black_box(t.begin(black_box(&input), now))
            });
        });
    }

    let counter = AtomicU64::new(0);
    c.bench_function("begin/new_session", |b| {
        let mut value = String::with_capacity(32);
        b.iter(|| {
            let i = counter.fetch_add(1, Ordering::Relaxed);
            value.clear();
            value.push_str("flood-");
            value.push_str(&i.to_string());
            black_box(t.begin(
                &SessionInput {
                    sub: Some(sub),
                    explicit: Some(value.as_bytes()),
                    ..SessionInput::default()
                },
                NOW + 1,
            ))
        });
    });

    c.bench_function("begin/existing/header_2_threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for n in 0..2u64 {
                    let t = &t;
                    s.spawn(move || {
                        let sub = format!("auth0|{:024}", 100 + n);
                        let conv = format!("conv-{:08}", 100 + n);
                        let input = SessionInput {
                            sub: Some(&sub),
                            explicit: Some(conv.as_bytes()),
                            ..SessionInput::default()
                        };
                        for i in 0..iters / 2 {
                            black_box(t.begin(&input, NOW + i));
                        }
                    });
                }
            });
            start.elapsed()
        });
    });
}

fn links(c: &mut Criterion) {
    let t = populated(10_000);
    let s = t.begin(
        &SessionInput {
            sub: Some("auth0|000000000000000000000042"),
            ..SessionInput::default()
        },
        NOW,
    );
    let args =
        r#"{"query":"globex pipeline","limit":5,"filters":{"stage":"open","min_value":100000}}"#;
    let exec_args: serde_json::Value = serde_json::from_str(
        r#"{"filters":{"min_value":100000,"stage":"open"},"limit":5,"query":"globex pipeline"}"#,
    )
    .unwrap();
    let mut n = 0u64;
    c.bench_function("links/record_then_execute_then_result", |b| {
        let mut id = String::new();
        b.iter(|| {
            n += 1;
            id.clear();
            id.push_str("call_");
            id.push_str(&n.to_string());
            let call = ModelToolCall {
                id: Some(&id),
                name: "search_contacts",
                arguments: Arguments::Text(args),
            };
            t.record_model_tool_calls(&s, "req_0196a1b2c3d4e5f60718293a4b5c6d7e", &[call], NOW);
            let l =
                t.link_tool_execution(&s, "crm:search_contacts", Arguments::Json(&exec_args), NOW);
            let r = t.link_tool_results(&s, &[&id], NOW);
            black_box((l, r))
        });
    });

    // A lookup that scans a full subject (64 pending calls) and misses.
    let full = t.begin(
        &SessionInput {
            sub: Some("auth0|full"),
            ..SessionInput::default()
        },
        NOW,
    );
    let ids: Vec<String> = (0..64).map(|i| format!("call_{i:024}")).collect();
    let calls: Vec<_> = ids
        .iter()
        .map(|id| ModelToolCall {
            id: Some(id),
            name: "search_contacts",
            arguments: Arguments::Text(args),
        })
        .collect();
    t.record_model_tool_calls(&full, "req_full", &calls, NOW);
    c.bench_function("links/execution_miss_64_pending", |b| {
        b.iter(|| {
            black_box(t.link_tool_execution(
                &full,
                "crm:search_contacts",
                Arguments::Text(r#"{"query":"initech"}"#),
                NOW,
            ))
        });
    });
    c.bench_function("links/result_miss_64_pending", |b| {
        b.iter(|| black_box(t.link_tool_results(&full, &["call_unknown"], NOW)));
    });
}

fn trace(c: &mut Criterion) {
    let ids = IdGen::new();
    let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    c.bench_function("trace/parse_child_to_header", |b| {
        b.iter(|| {
            let tc = TraceContext::parse(black_box(header)).unwrap();
            black_box(tc.child(&ids).to_header())
        });
    });
}

fn memory_report(_: &mut Criterion) {
    let t = populated(100_000);
    let sessions_only = t.stats().approx_bytes;
    for i in 0..100_000u64 {
        let sub = format!("auth0|{i:024}");
        let conv = format!("conv-{i:08}");
        let s = t.begin(
            &SessionInput {
                sub: Some(&sub),
                explicit: Some(conv.as_bytes()),
                ..SessionInput::default()
            },
            NOW,
        );
        let ids: Vec<String> = (0..4).map(|c| format!("call_{i:019}{c:05}")).collect();
        let calls: Vec<_> = ids
            .iter()
            .map(|id| ModelToolCall {
                id: Some(id),
                name: "search_contacts",
                arguments: Arguments::Text(r#"{"query":"q"}"#),
            })
            .collect();
        t.record_model_tool_calls(&s, &format!("req_{i:032x}"), &calls, NOW);
    }
    let st = t.stats();
    let started = Instant::now();
    let _ = t.stats();
    let stats_time = started.elapsed();
    println!(
        "memory: 100k sessions {:.1} MiB; + 4 pending calls each {:.1} MiB ({} B/session); stats() {:?}",
        sessions_only as f64 / f64::from(1 << 20),
        st.approx_bytes as f64 / f64::from(1 << 20),
        st.approx_bytes / 100_000,
        stats_time
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = begin, links, trace, memory_report
}
criterion_main!(benches);
