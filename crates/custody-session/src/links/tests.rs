#![allow(clippy::unwrap_used)]

use super::*;
use crate::{IdGen, SessionConfig, SessionInput, SessionTracker};
use serde_json::json;
use std::time::Duration;

const T0: u64 = 1_745_920_100_000;

fn tracker_with(config: SessionConfig) -> SessionTracker {
    SessionTracker::with_ids(config, IdGen::from_seed(3)).unwrap()
}

fn tracker() -> SessionTracker {
    tracker_with(SessionConfig::default())
}

fn step(t: &SessionTracker, sub: &str, header: Option<&[u8]>) -> SessionStep {
    t.begin(
        &SessionInput {
            sub: Some(sub),
            explicit: header,
            ..SessionInput::default()
        },
        T0,
    )
}

fn call<'a>(id: &'a str, name: &'a str, args: &'a str) -> ModelToolCall<'a> {
    ModelToolCall {
        id: Some(id),
        name,
        arguments: Arguments::Text(args),
    }
}

fn link(id: &str, req: &str) -> Option<ToolLink> {
    Some(ToolLink {
        tool_call_id: Some(id.into()),
        model_request_id: req.into(),
    })
}

#[test]
fn execution_links_by_name_and_canonical_arguments() {
    let t = tracker();
    let llm = step(&t, "alice", None);
    let n = t.record_model_tool_calls(
        &llm,
        "req_1",
        &[
            call(
                "call_a",
                "search_contacts",
                r#"{"query":"globex","limit":5}"#,
            ),
            call("call_b", "get_deal", r#"{"id":"D-7"}"#),
        ],
        T0,
    );
    assert_eq!(n, 2);
    let tool = step(&t, "alice", Some(b"mcp-side"));
    // Different key order and whitespace, as a parsed value: still the same call.
    let args = json!({"limit": 5, "query": "globex"});
    assert_eq!(
        t.link_tool_execution(
            &tool,
            "crm:search_contacts",
            Arguments::Json(&args),
            T0 + 10
        ),
        link("call_a", "req_1")
    );
    // Consumed: the same execution again links to nothing.
    assert_eq!(
        t.link_tool_execution(
            &tool,
            "crm:search_contacts",
            Arguments::Json(&args),
            T0 + 20
        ),
        None
    );
    // Different arguments do not match.
    assert_eq!(
        t.link_tool_execution(
            &tool,
            "get_deal",
            Arguments::Text(r#"{"id":"D-8"}"#),
            T0 + 30
        ),
        None
    );
    assert_eq!(
        t.link_tool_execution(
            &tool,
            "get_deal",
            Arguments::Text(r#"{ "id" : "D-7" }"#),
            T0 + 40
        ),
        link("call_b", "req_1")
    );
    let st = t.stats();
    assert_eq!(st.links_execution, 2);
    assert_eq!(
        st.pending_tool_calls, 2,
        "executed calls with ids wait for their results"
    );
}

#[test]
fn identical_calls_link_in_order() {
    let t = tracker();
    let s = step(&t, "alice", None);
    t.record_model_tool_calls(&s, "req_1", &[call("c1", "ping", "{}")], T0);
    t.record_model_tool_calls(&s, "req_2", &[call("c2", "ping", "{}")], T0 + 1000);
    let e = |now| t.link_tool_execution(&s, "ping", Arguments::Text(""), now);
    assert_eq!(e(T0 + 2000), link("c1", "req_1"));
    assert_eq!(e(T0 + 3000), link("c2", "req_2"));
    assert_eq!(e(T0 + 4000), None);
}

#[test]
fn tool_names_match_across_namespacing() {
    let t = tracker();
    let s = step(&t, "alice", None);
    let cases = [
        ("search", "docs:search", true),
        ("search", "search", true),
        ("search", "crm:contacts:search", true),
        ("crm_contacts_search", "crm:contacts:search", true),
        ("mcp__github__create_issue", "github:create_issue", true),
        ("search", "docs:search_all", false),
        ("search", "research", false),
        ("contacts_search", "crm:search", false),
    ];
    for (i, (model, executed, ok)) in cases.into_iter().enumerate() {
        let id = format!("c{i}");
        t.record_model_tool_calls(&s, "req", &[call(&id, model, "{}")], T0);
        let got = t.link_tool_execution(&s, executed, Arguments::Text("{}"), T0);
        assert_eq!(got.is_some(), ok, "{model} vs {executed}");
        if !ok {
            t.link_tool_results(&s, &[&id], T0);
        }
    }
}

#[test]
fn unknown_arguments_match_by_name() {
    let t = tracker();
    let s = step(&t, "alice", None);
    t.record_model_tool_calls(&s, "req_1", &[call("c1", "lookup", r#"{"id":5}"#)], T0);
    // A REST call whose inputs cannot be compared.
    assert_eq!(
        t.link_tool_execution(&s, "crm:lookup", Arguments::Unknown, T0),
        link("c1", "req_1")
    );
    // A model call whose arguments were not captured matches any arguments.
    let unknown = ModelToolCall {
        id: None,
        name: "lookup",
        arguments: Arguments::Unknown,
    };
    t.record_model_tool_calls(&s, "req_2", &[unknown], T0);
    let got = t.link_tool_execution(&s, "lookup", Arguments::Text(r#"{"id":9}"#), T0);
    assert_eq!(
        got,
        Some(ToolLink {
            tool_call_id: None,
            model_request_id: "req_2".into()
        })
    );
    assert_eq!(
        t.stats().pending_tool_calls,
        1,
        "an executed call without id is forgotten"
    );
}

#[test]
fn results_link_by_id_once() {
    let t = tracker();
    let s = step(&t, "alice", None);
    t.record_model_tool_calls(
        &s,
        "req_1",
        &[call("call_x", "a", "{}"), call("call_y", "b", "{}")],
        T0,
    );
    assert!(
        t.link_tool_execution(&s, "a", Arguments::Text("{}"), T0)
            .is_some()
    );
    let next = step(&t, "alice", None);
    let links = t.link_tool_results(&next, &["call_unknown", "call_y", "call_x"], T0 + 5);
    assert_eq!(
        links,
        [
            link("call_y", "req_1").unwrap(),
            link("call_x", "req_1").unwrap()
        ]
    );
    // The history is resent with the next request: not linked again.
    assert!(
        t.link_tool_results(&next, &["call_x", "call_y"], T0 + 9)
            .is_empty()
    );
    let st = t.stats();
    assert_eq!((st.links_result, st.pending_tool_calls), (2, 0));
}

#[test]
fn subjects_never_see_each_others_calls() {
    let t = tracker();
    let alice = step(&t, "alice", Some(b"same"));
    let bob = step(&t, "bob", Some(b"same"));
    t.record_model_tool_calls(
        &alice,
        "req_a",
        &[call("call_1", "transfer", r#"{"amount":10}"#)],
        T0,
    );
    assert_eq!(
        t.link_tool_execution(&bob, "transfer", Arguments::Text(r#"{"amount":10}"#), T0),
        None
    );
    assert!(t.link_tool_results(&bob, &["call_1"], T0).is_empty());
    assert!(t.link_tool_results(&alice, &["call_1"], T0).len() == 1);
}

#[test]
fn the_same_session_is_preferred() {
    let t = tracker();
    let conv1 = step(&t, "alice", Some(b"conv-1"));
    let conv2 = step(&t, "alice", Some(b"conv-2"));
    t.record_model_tool_calls(&conv1, "req_1", &[call("c1", "ping", "{}")], T0);
    t.record_model_tool_calls(&conv2, "req_2", &[call("c2", "ping", "{}")], T0 + 1000);
    assert_eq!(
        t.link_tool_execution(&conv2, "ping", Arguments::Text("{}"), T0 + 2000),
        link("c2", "req_2")
    );
    // From another session of the subject (e.g. the MCP client's), the oldest.
    let mcp = t.begin(
        &SessionInput {
            sub: Some("alice"),
            mcp_session: Some(b"m"),
            ..SessionInput::default()
        },
        T0,
    );
    assert_eq!(
        t.link_tool_execution(&mcp, "ping", Arguments::Text("{}"), T0 + 3000),
        link("c1", "req_1")
    );
}

#[test]
fn pending_calls_expire() {
    let t = tracker_with(SessionConfig {
        pending_ttl: Duration::from_secs(60),
        ..SessionConfig::default()
    });
    let s = step(&t, "alice", None);
    t.record_model_tool_calls(&s, "req_1", &[call("c1", "ping", "{}")], T0);
    t.record_model_tool_calls(&s, "req_2", &[call("c2", "ping", "{}")], T0 + 30_000);
    assert!(t.link_tool_results(&s, &["c1"], T0 + 61_000).is_empty());
    assert_eq!(t.link_tool_results(&s, &["c2"], T0 + 61_000).len(), 1);
    t.record_model_tool_calls(&s, "req_3", &[call("c3", "ping", "{}")], T0);
    assert_eq!(
        t.link_tool_execution(&s, "ping", Arguments::Unknown, T0 + 62_000),
        None
    );
    assert_eq!(t.stats().tool_calls_forgotten, 2);
    t.sweep(T0 + 62_000);
    assert_eq!((t.stats().subjects, t.stats().pending_tool_calls), (0, 0));
}

#[test]
fn per_subject_cap_drops_the_oldest() {
    let t = tracker_with(SessionConfig {
        max_pending_per_subject: 4,
        ..SessionConfig::default()
    });
    let s = step(&t, "alice", None);
    for i in 0..10 {
        let id = format!("c{i}");
        t.record_model_tool_calls(&s, &format!("req_{i}"), &[call(&id, "f", "{}")], T0 + i);
    }
    let st = t.stats();
    assert_eq!((st.pending_tool_calls, st.tool_calls_forgotten), (4, 6));
    assert!(t.link_tool_results(&s, &["c5"], T0 + 20).is_empty());
    assert_eq!(t.link_tool_results(&s, &["c6", "c9"], T0 + 20).len(), 2);
    // One response asking for more than the cap keeps its last calls.
    let many: Vec<String> = (0..6).map(|i| format!("m{i}")).collect();
    let calls: Vec<_> = many.iter().map(|id| call(id, "f", "{}")).collect();
    assert_eq!(t.record_model_tool_calls(&s, "req_m", &calls, T0 + 30), 6);
    assert_eq!(t.stats().pending_tool_calls, 4);
    assert_eq!(
        t.link_tool_results(&s, &["m1", "m2", "m5"], T0 + 31).len(),
        2
    );
}

#[test]
fn duplicate_and_oversized_ids() {
    let t = tracker();
    let s = step(&t, "alice", None);
    assert_eq!(
        t.record_model_tool_calls(&s, "req_1", &[call("c1", "f", "{}")], T0),
        1
    );
    assert_eq!(
        t.record_model_tool_calls(&s, "req_1", &[call("c1", "f", "{}")], T0),
        0
    );
    let long = "x".repeat(200);
    assert_eq!(
        t.record_model_tool_calls(&s, &long, &[call("c2", "f", "{}")], T0),
        0
    );
    assert_eq!(
        t.record_model_tool_calls(&s, "req_2", &[call(&long, "g", "{}")], T0),
        1
    );
    assert_eq!(
        t.link_tool_execution(&s, "g", Arguments::Text("{}"), T0),
        Some(ToolLink {
            tool_call_id: None,
            model_request_id: "req_2".into()
        })
    );
}

#[test]
fn the_arena_survives_churn() {
    let t = tracker_with(SessionConfig {
        max_pending_per_subject: 128,
        max_id_len: 255,
        ..SessionConfig::default()
    });
    let s = step(&t, "alice", None);
    let req = "r".repeat(255);
    for round in 0..50u64 {
        let ids: Vec<String> = (0..40)
            .map(|i| format!("{round:03}-{i:03}-{}", "i".repeat(240)))
            .collect();
        let calls: Vec<_> = ids.iter().map(|id| call(id, "f", "{}")).collect();
        let req = format!("{round:03}{}", &req[3..]);
        assert_eq!(t.record_model_tool_calls(&s, &req, &calls, T0 + round), 40);
        // Link a few, out of order, by id and by execution.
        let some: Vec<&str> = ids.iter().step_by(3).map(String::as_str).collect();
        for l in t.link_tool_results(&s, &some, T0 + round) {
            assert_eq!(l.model_request_id, req);
        }
        let l = t
            .link_tool_execution(&s, "f", Arguments::Text("{}"), T0 + round)
            .unwrap();
        assert!(l.tool_call_id.is_some());
    }
    let st = t.stats();
    assert!(st.pending_tool_calls <= 128, "{st:?}");
    // Every remembered id still reads back whole.
    let all: Vec<String> = (0..40)
        .map(|i| format!("049-{i:03}-{}", "i".repeat(240)))
        .collect();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let links = t.link_tool_results(&s, &refs, T0 + 60);
    assert!(!links.is_empty());
    assert!(
        links
            .iter()
            .all(|l| l.model_request_id.starts_with("049") && l.model_request_id.len() == 255)
    );
}

#[test]
fn total_cap_evicts_whole_subjects() {
    let t = tracker_with(SessionConfig {
        max_subjects: 64,
        max_pending_per_subject: 4,
        max_pending_total: 64 * 4,
        ..SessionConfig::default()
    });
    for u in 0..10_000 {
        let s = step(&t, &format!("user{u}"), None);
        let ids: Vec<String> = (0..4).map(|i| format!("u{u}c{i}")).collect();
        let calls: Vec<_> = ids.iter().map(|id| call(id, "f", "{}")).collect();
        t.record_model_tool_calls(&s, "req", &calls, T0);
        let st = t.stats();
        assert!(st.subjects <= 64 && st.pending_tool_calls <= 256, "{st:?}");
    }
}

#[test]
fn the_arena_stays_within_64_kib_at_the_largest_settings() {
    let t = tracker_with(SessionConfig {
        max_pending_per_subject: 128,
        max_id_len: 255,
        ..SessionConfig::default()
    });
    let s = step(&t, "alice", None);
    let pad = |i: u64, c: char| format!("{i:08}{}", c.to_string().repeat(247));
    for i in 0..2_000u64 {
        let (id, req) = (pad(i, 'i'), pad(i, 'r'));
        assert_eq!(
            t.record_model_tool_calls(&s, &req, &[call(&id, "f", "{}")], T0),
            1
        );
        if i % 7 == 0 && i < 1_800 {
            let old = pad(i.saturating_sub(60), 'i');
            for l in t.link_tool_results(&s, &[&old], T0) {
                assert_eq!(l.model_request_id, pad(i.saturating_sub(60), 'r'));
            }
        }
    }
    let st = t.stats();
    assert_eq!(st.pending_tool_calls, 128);
    let ids: Vec<String> = (1_872..2_000).map(|i| pad(i, 'i')).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let links = t.link_tool_results(&s, &refs, T0);
    assert_eq!(links.len(), 128);
    for (i, l) in (1_872..2_000).zip(&links) {
        assert_eq!(l.model_request_id, pad(i, 'r'));
    }
}
