//! The flood shared by `flood.rs` (custody's default caps) and `flood_sidecar.rs`
//! (the Helm chart's caps): more subjects than `max_subjects`, each with new
//! sessions and more pending calls than fit, every id at the maximum length and
//! one model turn per call (no sharing). The caps must hold at every checkpoint,
//! and the memory they allow is measured (accounting and RSS) against the
//! documented worst-case bound.

use custody_session::{
    Arguments, IdGen, ModelToolCall, SessionConfig, SessionInput, SessionTracker,
};

fn rss() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Floods a tracker with `config`'s caps: `subjects` subjects (more than
/// `max_subjects`), four new sessions and four pending calls each, checking the
/// caps every `checkpoint` subjects and the memory against `worst_case` bytes.
pub(crate) fn flood(config: SessionConfig, subjects: u64, checkpoint: u64, worst_case: usize) {
    let max_id = config.max_id_len;
    let t = SessionTracker::with_ids(config.clone(), IdGen::from_seed(5)).unwrap();
    let now = 1_745_920_100_000u64;
    let rss0 = rss();
    let mut peak = 0usize;
    let mut peak_rss = 0usize;
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
        if i % checkpoint == checkpoint - 1 {
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
    assert!(peak <= worst_case, "{}", mib(peak));
    if rss0.is_some() {
        assert!(peak_rss <= worst_case, "{}", mib(peak_rss));
    }
}
