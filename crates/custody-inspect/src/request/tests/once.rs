//! The one checked read of an LLM body against the two reads it replaces (the
//! strict read, then the typed read): the same facts, for bodies a client may send
//! and bodies made to split parsers.

use super::super::inspect;
use crate::{Limits, RequestInput, RouteKind};
use ::http::HeaderMap;
use proptest::prelude::*;

/// A JSON text, built so that what parsers disagree on can be in it: keys named
/// twice (also through an escape), lone surrogates, numbers out of range, `NaN`.
#[derive(Clone, Debug)]
enum Json {
    Null,
    Bool(bool),
    /// A number as written.
    Num(&'static str),
    /// A string's contents as written (escapes included).
    Str(&'static str),
    Arr(Vec<Json>),
    Obj(Vec<(&'static str, Json)>),
}

const KEYS: &[&str] = &[
    "model",
    "stream",
    "messages",
    "input",
    "role",
    "type",
    "tool_call_id",
    "call_id",
    "content",
    "tool_use_id",
    "name",
    "n\\u0061me",
    "mod\\u0065l",
    "x",
];
const STRINGS: &[&str] = &[
    "gpt-4o",
    "tool",
    "function_call_output",
    "custom_tool_call_output",
    "tool_result",
    "call_1",
    "call_2",
    "\\ud800",
    "\\udc00x",
    "\\u00e9\\ud83d\\ude00",
    "a\\\"b",
    "",
];
const NUMBERS: &[&str] = &["1", "-2.5e3", "0", "1e999", "NaN", "18446744073709551616"];

fn render(j: &Json, out: &mut String) {
    match j {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Num(n) => out.push_str(n),
        Json::Str(s) => {
            out.push('"');
            out.push_str(s);
            out.push('"');
        }
        Json::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                render(item, out);
            }
            out.push(']');
        }
        Json::Obj(members) => {
            out.push('{');
            for (i, (key, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('"');
                out.push_str(key);
                out.push_str("\":");
                render(value, out);
            }
            out.push('}');
        }
    }
}

fn json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        proptest::sample::select(NUMBERS).prop_map(Json::Num),
        proptest::sample::select(STRINGS).prop_map(Json::Str),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Json::Arr),
            proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..6)
                .prop_map(Json::Obj),
        ]
    })
}

/// A body: mostly an object, sometimes followed by what should not be there.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let top = proptest::collection::vec((proptest::sample::select(KEYS), json()), 0..7);
    let tail: &[&[u8]] = &[b"", b"", b"", b" ", b"}", b" {}", b"\xff", b","];
    (top, proptest::sample::select(tail)).prop_map(|(members, tail)| {
        let mut text = String::new();
        render(&Json::Obj(members), &mut text);
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(tail);
        bytes
    })
}

fn facts(kind: RouteKind, path: &str, body: &[u8], once: bool) -> crate::RequestFacts {
    let headers = HeaderMap::new();
    let req = RequestInput {
        kind,
        route: "llm",
        method: "POST",
        path,
        query: None,
        headers: &headers,
        body,
        body_complete: true,
        tools: None,
    };
    inspect(&req, &Limits::default(), once)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn one_checked_read_gives_the_facts_of_two_reads(
        body in body(),
        route in proptest::sample::select(&[
            (RouteKind::Openai, "/v1/chat/completions"),
            (RouteKind::Openai, "/v1/responses"),
            (RouteKind::Anthropic, "/v1/messages"),
        ][..]),
    ) {
        let (kind, path) = route;
        prop_assert_eq!(
            facts(kind, path, &body, true),
            facts(kind, path, &body, false),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
}

/// Bodies that a single read must not let through, each one way parsers split.
#[test]
fn what_the_strict_read_refuses_is_refused_by_the_one_read() {
    for body in [
        &br#"{"model":"a","model":"b"}"#[..],
        br#"{"model":"a","mod\u0065l":"b"}"#,
        br#"{"messages":[{"role":"tool","role":"user","tool_call_id":"c"}]}"#,
        br#"{"messages":[{"content":{"x":1,"x":2}}]}"#,
        br#"{"metadata":{"a":1,"a":2}}"#,
        br#"{"metadata":"\ud800"}"#,
        br#"{"model":"gpt","n":NaN}"#,
        br#"{"model":"gpt"} {}"#,
        b"{\"model\":\"\xff\"}",
    ] {
        let once = facts(RouteKind::Openai, "/v1/chat/completions", body, true);
        assert!(
            once.unreadable.is_some(),
            "{}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(
            once,
            facts(RouteKind::Openai, "/v1/chat/completions", body, false)
        );
    }
}
