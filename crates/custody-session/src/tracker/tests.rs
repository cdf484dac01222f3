#![allow(clippy::unwrap_used)]

use super::*;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const MIN: u64 = 60_000;
const T0: u64 = 1_745_920_100_000;

fn tracker() -> SessionTracker {
    SessionTracker::with_ids(SessionConfig::default(), IdGen::from_seed(9)).unwrap()
}

fn tracker_with(config: SessionConfig) -> SessionTracker {
    SessionTracker::with_ids(config, IdGen::from_seed(9)).unwrap()
}

fn tp() -> TraceContext {
    TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap()
}

fn input<'a>(sub: &'a str) -> SessionInput<'a> {
    SessionInput {
        sub: Some(sub),
        ..SessionInput::default()
    }
}

#[test]
fn precedence_header_then_traceparent_then_mcp_then_inactivity() {
    let t = tracker();
    let tp = tp();
    let all = SessionInput {
        sub: Some("alice"),
        explicit: Some(b"conv-42"),
        traceparent: Some(&tp),
        mcp_session: Some(b"mcp-1"),
    };
    let s = t.begin(&all, T0);
    assert_eq!(s.source, SessionSource::Header);
    assert!(s.session_id.starts_with("hdr:") && s.session_id.ends_with(":conv-42"));

    let no_header = SessionInput {
        explicit: None,
        ..all
    };
    let s = t.begin(&no_header, T0);
    assert_eq!(s.source, SessionSource::Traceparent);
    assert!(s.session_id.ends_with(":4bf92f3577b34da6a3ce929d0e0e4736"));

    let mcp_only = SessionInput {
        traceparent: None,
        ..no_header
    };
    let s = t.begin(&mcp_only, T0);
    assert_eq!(s.source, SessionSource::Mcp);
    assert!(s.session_id.starts_with("mcp:") && s.session_id.ends_with(":mcp-1"));

    let s = t.begin(&input("alice"), T0);
    assert_eq!(s.source, SessionSource::Inactivity);
    assert!(s.session_id.starts_with("auto:"));

    // Empty or blank values count as absent.
    let blank = SessionInput {
        explicit: Some(b"  "),
        mcp_session: Some(b""),
        ..input("alice")
    };
    assert_eq!(t.begin(&blank, T0).source, SessionSource::Inactivity);
}

#[test]
fn same_header_from_two_subjects_gives_two_sessions() {
    let t = tracker();
    let a = SessionInput {
        explicit: Some(b"shared"),
        ..input("alice")
    };
    let b = SessionInput {
        explicit: Some(b"shared"),
        ..input("bob")
    };
    let anon = SessionInput {
        explicit: Some(b"shared"),
        ..SessionInput::default()
    };
    let (sa, sb, sn) = (t.begin(&a, T0), t.begin(&b, T0), t.begin(&anon, T0));
    assert_ne!(sa.session_id, sb.session_id);
    assert_ne!(sa.session_id, sn.session_id);
    assert_eq!(sn.session_id, "hdr:anon:shared");
    assert_eq!((sa.step, sb.step, sn.step), (1, 1, 1));
    // Stable: the same subject and value name the same session in another process.
    let other = tracker();
    assert_eq!(other.begin(&a, T0 + 5).session_id, sa.session_id);
    // The subject tag is MurmurHash3 of "custody-sub\0" + sub.
    let tag = &sa.session_id["hdr:".len()..sa.session_id.len() - ":shared".len()];
    let expect = stable_hash(b"custody-sub\0", b"alice").to_be_bytes();
    assert_eq!(tag, crate::ids::hex(&expect[..8]));
    // Same for traceparent and MCP sessions.
    let tp = tp();
    let ta = t.begin(
        &SessionInput {
            traceparent: Some(&tp),
            ..input("alice")
        },
        T0,
    );
    let tb = t.begin(
        &SessionInput {
            traceparent: Some(&tp),
            ..input("bob")
        },
        T0,
    );
    assert_ne!(ta.session_id, tb.session_id);
    assert_eq!((ta.step, tb.step), (1, 1));
}

#[test]
fn steps_count_per_session() {
    let t = tracker();
    let a = SessionInput {
        explicit: Some(b"c1"),
        ..input("alice")
    };
    let b = SessionInput {
        explicit: Some(b"c2"),
        ..input("alice")
    };
    let steps: Vec<u64> = (0..5)
        .flat_map(|i| [t.begin(&a, T0 + i).step, t.begin(&b, T0 + i).step])
        .collect();
    assert_eq!(steps, [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
    let auto: Vec<u64> = (0..3)
        .map(|i| t.begin(&input("carol"), T0 + i).step)
        .collect();
    assert_eq!(auto, [1, 2, 3]);
    let ids: HashSet<String> = (0..3)
        .map(|i| t.begin(&input("carol"), T0 + 10 + i).session_id)
        .collect();
    assert_eq!(ids.len(), 1);
}

#[test]
fn inactivity_gap_starts_a_new_session() {
    let t = tracker();
    let s1 = t.begin(&input("alice"), T0);
    let s2 = t.begin(&input("alice"), T0 + 29 * MIN);
    assert_eq!((s2.step, &s2.session_id), (2, &s1.session_id));
    // Exactly the gap is still the same session; one more millisecond is not.
    let s3 = t.begin(&input("alice"), T0 + 59 * MIN);
    assert_eq!(s3.step, 3);
    let s4 = t.begin(&input("alice"), T0 + 89 * MIN + 1);
    assert_eq!(s4.step, 1);
    assert_ne!(s4.session_id, s1.session_id);
    // The id starts with the start time (12 hex digits of milliseconds).
    let start = &s4.session_id[s4.session_id.len() - 29..s4.session_id.len() - 17];
    assert_eq!(u64::from_str_radix(start, 16).unwrap(), T0 + 89 * MIN + 1);
    // Another subject is unaffected by alice's activity.
    assert_eq!(t.begin(&input("bob"), T0 + 89 * MIN + 1).step, 1);
}

#[test]
fn max_duration_ends_a_busy_session() {
    let t = tracker_with(SessionConfig {
        idle_gap: Duration::from_secs(60),
        max_duration: Duration::from_secs(600),
        ..SessionConfig::default()
    });
    let first = t.begin(&input("alice"), T0);
    let mut last = first.clone();
    let mut now = T0;
    while now < T0 + 599_000 {
        now += 30_000;
        last = t.begin(&input("alice"), now.min(T0 + 599_000));
    }
    assert_eq!(last.session_id, first.session_id);
    let next = t.begin(&input("alice"), T0 + 600_000);
    assert_eq!(next.step, 1);
    assert_ne!(next.session_id, first.session_id);
}

#[test]
fn explicit_sessions_keep_counting_across_long_pauses_until_state_ttl() {
    let t = tracker();
    let a = SessionInput {
        explicit: Some(b"conv"),
        ..input("alice")
    };
    assert_eq!(t.begin(&a, T0).step, 1);
    assert_eq!(
        t.begin(&a, T0 + 120 * MIN).step,
        2,
        "idle_gap applies to auto sessions only"
    );
    let later = t.begin(&a, T0 + 120 * MIN + 24 * 60 * MIN + 1);
    assert_eq!(later.step, 1);
    assert!(later.session_id.ends_with(":conv"));
}

#[test]
fn clock_going_backwards_is_harmless() {
    let t = tracker();
    assert_eq!(t.begin(&input("alice"), T0).step, 1);
    assert_eq!(t.begin(&input("alice"), T0 - 10 * MIN).step, 2);
    assert_eq!(t.begin(&input("alice"), T0 + MIN).step, 3);
}

#[test]
fn odd_values_are_hashed_into_the_id() {
    let t = tracker();
    let long = vec![b'x'; 200];
    for v in [
        &b"has space"[..],
        b"~tilde",
        "é".as_bytes(),
        &long,
        b"\x01ctl",
    ] {
        let s = t.begin(
            &SessionInput {
                explicit: Some(v),
                ..input("alice")
            },
            T0,
        );
        let value = s.session_id.rsplit(':').next().unwrap();
        assert!(
            value.starts_with('~') && value.len() == 33,
            "{}",
            s.session_id
        );
    }
    // Visible ASCII is kept as is, including ':' (the subject tag has a fixed width).
    let s = t.begin(
        &SessionInput {
            explicit: Some(b" a:b/c=d "),
            ..input("alice")
        },
        T0,
    );
    assert!(s.session_id.ends_with(":a:b/c=d"), "{}", s.session_id);
}

#[test]
fn trace_ids_follow_traceparent_else_the_session() {
    let t = tracker();
    let tp = tp();
    let with_tp = SessionInput {
        explicit: Some(b"conv"),
        traceparent: Some(&tp),
        ..input("alice")
    };
    let s = t.begin(&with_tp, T0);
    assert_eq!(s.trace.trace_id, tp.trace_id);
    assert_eq!(s.parent_span_id, Some(tp.span_id));
    let ids = s.span_ids();
    assert_eq!(ids.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(ids.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
    assert_eq!(TraceContext::parse(&s.traceparent()), Some(s.trace));
    assert_eq!(&s.traceparent()[36..52], ids.span_id);

    // No traceparent: every step of a session shares one trace, spans differ.
    let plain = SessionInput {
        explicit: Some(b"conv"),
        ..input("alice")
    };
    let a = t.begin(&plain, T0);
    let b = t.begin(&plain, T0 + 1);
    assert_eq!(a.trace.trace_id, b.trace.trace_id);
    assert_ne!(a.trace.span_id, b.trace.span_id);
    assert_eq!(a.parent_span_id, None);
    assert!(a.trace.sampled());
    let other = t.begin(
        &SessionInput {
            explicit: Some(b"conv"),
            ..input("bob")
        },
        T0,
    );
    assert_ne!(other.trace.trace_id, a.trace.trace_id);
}

#[test]
fn idle_sessions_are_evicted_by_the_clock_hand_and_sweep() {
    let t = tracker();
    for i in 0..1000 {
        t.begin(&input(&format!("user{i}")), T0);
    }
    assert_eq!(t.stats().sessions, 1000);
    // Activity alone (no sweep) eventually removes idle sessions.
    for i in 0..10_000 {
        t.begin(&input("busy"), T0 + 31 * MIN + i);
    }
    let st = t.stats();
    assert!(st.sessions < 100, "{st:?}");
    t.sweep(T0 + 40 * MIN);
    let st = t.stats();
    assert_eq!(st.sessions, 1);
    assert_eq!(st.sessions_evicted_idle, 1000);
}

#[test]
fn a_flood_of_new_sessions_stays_within_the_cap() {
    let t = tracker();
    let cap = t.config().max_sessions;
    let mut peak_bytes = 0;
    let value = |i: u64| format!("conv-{i}");
    for i in 0..1_000_000u64 {
        let v = value(i);
        let s = t.begin(
            &SessionInput {
                explicit: Some(v.as_bytes()),
                ..input("mallory")
            },
            T0 + i / 100,
        );
        assert_eq!(s.step, 1);
        if i % 50_000 == 0 {
            let st = t.stats();
            assert!(st.sessions <= cap, "{st:?}");
            peak_bytes = peak_bytes.max(st.approx_bytes);
        }
    }
    let st = t.stats();
    assert!(st.sessions <= cap && st.sessions > cap * 9 / 10, "{st:?}");
    assert_eq!(st.sessions_started, 1_000_000);
    assert_eq!(
        st.sessions_evicted_capacity as usize,
        1_000_000 - st.sessions
    );
    assert!(peak_bytes <= 16 << 20, "{peak_bytes}");
    // Recently used sessions survive the flood better than old ones.
    let recent = t.begin(
        &SessionInput {
            explicit: Some(value(999_999).as_bytes()),
            ..input("mallory")
        },
        T0 + 10_000,
    );
    assert_eq!(recent.step, 2);
}

#[test]
fn concurrent_subjects_with_identical_headers_never_share_a_session() {
    let t = tracker();
    let threads = 8;
    let per_thread = 5_000;
    let results: Vec<Vec<(String, String, u64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|n| {
                let t = &t;
                scope.spawn(move || {
                    let mut out = Vec::with_capacity(per_thread);
                    for i in 0..per_thread {
                        // Threads share subjects pairwise, and all send the same header.
                        let sub = format!("user{}", (n + i) % 4);
                        let s = t.begin(
                            &SessionInput {
                                explicit: Some(b"same-for-everyone"),
                                ..input(&sub)
                            },
                            T0 + i as u64,
                        );
                        out.push((sub, s.session_id, s.step));
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut by_session: HashMap<String, HashSet<String>> = HashMap::new();
    let mut steps: HashMap<String, Vec<u64>> = HashMap::new();
    for (sub, id, step) in results.into_iter().flatten() {
        by_session.entry(id.clone()).or_default().insert(sub);
        steps.entry(id).or_default().push(step);
    }
    assert_eq!(by_session.len(), 4);
    assert!(by_session.values().all(|subs| subs.len() == 1));
    for (id, mut s) in steps {
        s.sort_unstable();
        let n = s.len() as u64;
        assert_eq!(
            s,
            (1..=n).collect::<Vec<_>>(),
            "steps of {id} are 1..=n, each once"
        );
    }
}

#[test]
fn entry_sizes_are_as_documented() {
    assert_eq!(std::mem::size_of::<Session>(), 24);
    assert_eq!(std::mem::size_of::<crate::links::Pending>(), 40);
    assert_eq!(std::mem::size_of::<crate::links::Scope>(), 56);
}
