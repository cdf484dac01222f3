//! The flood of `flood.rs` at the Helm chart's sidecar caps (`helm/custody/values.yaml`,
//! `config.custody.sessions`: a tenth of the defaults): the caps hold and the memory
//! they allow stays within the worst case documented in docs/sessions.md and the
//! chart's README.
//!
//! One test per file: the RSS measurement needs the process to itself.

#![allow(clippy::unwrap_used, missing_docs)]

use custody_session::{
    Arguments, IdGen, ModelToolCall, SessionConfig, SessionInput, SessionTracker,
};

/// The documented worst case for the chart's caps.
const WORST_CASE: usize = 20 << 20;

/// The chart's default `sessions` caps.
fn sidecar_caps() -> SessionConfig {
    SessionConfig {
        max_sessions: 10_000,
        max_subjects: 10_000,
        max_pending_total: 40_000,
        ..SessionConfig::default()
    }
}

fn rss() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn the_chart_caps_bound_a_flood_to_a_sidecar_budget() {
    let config = sidecar_caps();
    let max_id = config.max_id_len;
    let t = SessionTracker::with_ids(config.clone(), IdGen::from_seed(5)).unwrap();
    let now = 1_745_920_100_000u64;
    let rss0 = rss();
    let mut peak = 0usize;
    let mut peak_rss = 0usize;
    let subjects = 12_000u64;
    for i in 0..subjects {
        let sub = format!("flood|{i:010}");
        for c in 0..4u64 {
            // A new session every time (a new explicit value), a new turn per call.
            let conv = format!("{i:010}-{c}-{}", "s".repeat(100));
            let s = t.begin(
                &SessionInput {
                    sub: Some(&sub),
                    explicit: Some(conv.as_bytes()),
                    ..SessionInput::default()
                },
                now + i,
            );
            let req = format!("{i:010}{c}{}", "r".repeat(max_id - 11));
            let id = format!("{i:010}{c}{}", "i".repeat(max_id - 11));
            let call = ModelToolCall {
                id: Some(&id),
                name: "f",
                arguments: Arguments::Text(r#"{"a":1}"#),
            };
            t.record_model_tool_calls(&s, &req, &[call], now + i);
        }
        if i % 1_000 == 999 {
            let st = t.stats();
            assert!(st.sessions <= config.max_sessions, "{st:?}");
            assert!(st.subjects <= config.max_subjects, "{st:?}");
            assert!(st.pending_tool_calls <= config.max_pending_total, "{st:?}");
            peak = peak.max(st.approx_bytes);
            if let (Some(a), Some(b)) = (rss0, rss()) {
                peak_rss = peak_rss.max(b.saturating_sub(a));
            }
        }
    }
    let st = t.stats();
    println!("{st:?}");
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    println!(
        "flood peak: approx {:.1} MiB, rss growth {:.1} MiB",
        mib(peak),
        mib(peak_rss)
    );
    assert_eq!(st.sessions_started, subjects * 4);
    assert!(st.sessions > config.max_sessions * 9 / 10);
    assert!(st.pending_tool_calls > config.max_pending_total * 9 / 10);
    assert!(peak <= WORST_CASE, "{}", mib(peak));
    if rss0.is_some() {
        assert!(peak_rss <= WORST_CASE, "{}", mib(peak_rss));
    }
}
