//! The documented memory budget, measured: 100 000 live sessions, each of its own
//! subject, each with 4 pending tool calls (29-byte call ids, one 36-byte request id
//! per model turn) must fit in 64 MiB — by the tracker's own accounting
//! (`stats().approx_bytes`) and by the process's resident memory growth.
//!
//! One test per file: the RSS measurement needs the process to itself.

#![allow(clippy::unwrap_used, missing_docs)]

use custody_session::{
    Arguments, IdGen, ModelToolCall, SessionConfig, SessionInput, SessionTracker,
};

const BUDGET: usize = 64 << 20;
const SESSIONS_ONLY_BUDGET: usize = 16 << 20;

/// Resident set size in bytes (Linux), `None` elsewhere.
fn rss() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn hundred_thousand_sessions_with_four_pending_calls_fit_the_budget() {
    let t = SessionTracker::with_ids(SessionConfig::default(), IdGen::from_seed(1)).unwrap();
    let n = 100_000u64;
    let now = 1_745_920_100_000u64;
    // Inputs are generated on the fly and dropped, so RSS growth is the tracker's.
    let rss0 = rss();
    let mut steps = Vec::new();
    for i in 0..n {
        let sub = format!("auth0|{i:024}");
        let conv = format!("conv-{i:08}");
        let s = t.begin(
            &SessionInput {
                sub: Some(&sub),
                explicit: Some(conv.as_bytes()),
                ..SessionInput::default()
            },
            now + i / 100,
        );
        if i % 10_000 == 0 {
            steps.push(s.clone());
        }
    }
    let sessions_only = t.stats();
    let rss1 = rss();
    for i in 0..n {
        let sub = format!("auth0|{i:024}");
        let conv = format!("conv-{i:08}");
        let s = t.begin(
            &SessionInput {
                sub: Some(&sub),
                explicit: Some(conv.as_bytes()),
                ..SessionInput::default()
            },
            now + i / 100,
        );
        let ids: Vec<String> = (0..4).map(|c| format!("call_{i:019}{c:05}")).collect();
        let args: Vec<String> = (0..4)
            .map(|c| format!(r#"{{"query":"q{i}","n":{c}}}"#))
            .collect();
        let calls: Vec<ModelToolCall<'_>> = (0..4)
            .map(|c| ModelToolCall {
                id: Some(&ids[c]),
                name: "search_contacts",
                arguments: Arguments::Text(&args[c]),
            })
            .collect();
        let req = format!("req_{i:032x}");
        assert_eq!(
            t.record_model_tool_calls(&s, &req, &calls, now + i / 100),
            4
        );
    }
    let st = t.stats();
    let rss2 = rss();
    assert_eq!(st.sessions, 100_000);
    assert_eq!(st.subjects, 100_000);
    assert_eq!(st.pending_tool_calls, 400_000);

    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    println!(
        "sessions only: approx {:.1} MiB; rss growth {:?} MiB",
        mib(sessions_only.approx_bytes),
        rss0.zip(rss1).map(|(a, b)| mib(b.saturating_sub(a)))
    );
    println!(
        "with 4 pending calls each: approx {:.1} MiB ({} B/session); rss growth {:?} MiB",
        mib(st.approx_bytes),
        st.approx_bytes / 100_000,
        rss0.zip(rss2).map(|(a, b)| mib(b.saturating_sub(a)))
    );
    assert!(sessions_only.approx_bytes <= SESSIONS_ONLY_BUDGET);
    assert!(st.approx_bytes <= BUDGET, "{st:?}");
    if let (Some(a), Some(b), Some(c)) = (rss0, rss1, rss2) {
        assert!(
            b.saturating_sub(a) <= SESSIONS_ONLY_BUDGET,
            "rss {a} -> {b}"
        );
        assert!(c.saturating_sub(a) <= BUDGET, "rss {a} -> {c}");
        // The accounting is an estimate of the same thing: within a third of RSS.
        let grown = c.saturating_sub(a) as f64;
        let ratio = st.approx_bytes as f64 / grown;
        assert!((0.67..=1.5).contains(&ratio), "approx/rss = {ratio:.2}");
    }

    // The links still work at that size.
    let s = &steps[3];
    let link = t.link_tool_execution(
        s,
        "crm:search_contacts",
        Arguments::Text(r#"{"n":2,"query":"q30000"}"#),
        now + 400,
    );
    assert_eq!(
        link.and_then(|l| l.tool_call_id).as_deref(),
        Some("call_000000000000003000000002")
    );
}
