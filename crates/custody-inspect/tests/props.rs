//! Property tests for the parsers that face untrusted bytes: the SSE parser, request
//! inspection and the response observer (OpenAI, Anthropic, MCP, mapped HTTP tools).
//!
//! Inputs are either arbitrary bytes or mutations (byte flips, insertions,
//! deletions, truncations, splices) of the golden fixtures in `tests/fixtures/`, so
//! that the generator reaches deep into the JSON and SSE paths, not only their
//! first byte. Checked on every input:
//! - nothing panics;
//! - SSE: splitting the same bytes differently yields the same events, the same
//!   discarded count and the same `retry`; no dispatched event holds more
//!   characters than `max_event_bytes`;
//! - requests: `parameters` and `tool_arguments` never exceed
//!   `Limits::max_parameters_bytes`, and `parameters` is valid JSON;
//! - responses: the facts do not depend on how the body was chunked.
//!
//! The case count is set per test to keep the normal `cargo test` run short;
//! `PROPTEST_CASES=100000 cargo test -p custody-inspect --test props` runs longer
//! (docs/development.md).

use custody_inspect::{
    Limits, RequestFacts, RequestInput, ResponseObserver, RouteKind, SseParser, ToolMap,
    ToolMapping, inspect_request,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use support::config;

#[path = "../../../tests/support/props.rs"]
mod support;
use std::path::Path;
use std::sync::OnceLock;

/// Every request and response body of the golden fixtures.
fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut files = Vec::new();
        for dir in std::fs::read_dir(&root).expect("fixtures") {
            let dir = dir.expect("entry").path();
            if !dir.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&dir).expect("case dir") {
                let f = f.expect("entry").path();
                if f.file_name().is_some_and(|n| n != "case.json") {
                    files.push(f);
                }
            }
        }
        files.sort();
        files
            .iter()
            .map(|f| std::fs::read(f).expect("fixture"))
            .collect()
    })
}

/// One edit of a byte string; positions are taken modulo its length.
#[derive(Clone, Debug)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    /// Copies a range of the input to another place (repeats structure).
    Splice(usize, usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Edit::Flip(p, b)),
        3 => (any::<usize>(), prop_oneof![
            prop::collection::vec(any::<u8>(), 1..8),
            prop::sample::select(TOKENS).prop_map(|t| t.to_vec()),
        ])
            .prop_map(|(p, b)| Edit::Insert(p, b)),
        2 => (any::<usize>(), 1usize..64).prop_map(|(p, n)| Edit::Delete(p, n)),
        1 => any::<usize>().prop_map(Edit::Truncate),
        1 => (any::<usize>(), any::<usize>(), 1usize..256)
            .prop_map(|(a, b, n)| Edit::Splice(a, b, n)),
    ]
}

/// Bytes that matter to JSON and SSE, to insert.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b"\\u",
    b"\\ud800",
    b":",
    b",",
    b"null",
    b"-1e999",
    b"\n",
    b"\r",
    b"\r\n",
    b"\n\n",
    b"data: ",
    b"event: ",
    b"id: ",
    b"retry: 7",
    b"\xEF\xBB\xBF",
    b"\xff",
    b"\xc3",
    b"\"arguments\":",
    b"\"usage\":",
    b"[DONE]",
    b"\"id\":",
    b"\"method\":",
];

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = bytes.len().max(1);
        match e {
            Edit::Flip(p, b) => {
                if let Some(x) = bytes.get_mut(p % n) {
                    *x ^= b | 1;
                }
            }
            Edit::Insert(p, b) => {
                let at = p % (bytes.len() + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Edit::Delete(p, k) => {
                let at = p % n;
                let end = (at + k).min(bytes.len());
                if at < end {
                    bytes.drain(at..end);
                }
            }
            Edit::Truncate(p) => bytes.truncate(p % (bytes.len() + 1)),
            Edit::Splice(from, to, k) => {
                let from = from % n;
                let end = (from + k).min(bytes.len());
                if from < end {
                    let piece = bytes[from..end].to_vec();
                    let at = to % (bytes.len() + 1);
                    bytes.splice(at..at, piece);
                }
            }
        }
    }
    bytes
}

/// A fixture mutated by a few edits, or arbitrary bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds();
    prop_oneof![
        4 => (0..seeds.len(), prop::collection::vec(edit(), 0..6))
            .prop_map(move |(i, edits)| apply(seeds[i].clone(), &edits)),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

/// Split points for a chunking of a `len`-byte input: `cuts` are fractions.
fn chunked<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    at.sort_unstable();
    let mut out = Vec::with_capacity(at.len() + 1);
    let mut prev = 0;
    for a in at {
        out.push(&bytes[prev..a]);
        prev = a;
    }
    out.push(&bytes[prev..]);
    out
}

/// Events as owned values, plus what the parser reports at the end.
type Parsed = (Vec<(String, String, String)>, u64, Option<u64>, bool);

fn parse_sse(chunks: &[&[u8]], max: usize) -> Parsed {
    let mut p = SseParser::new(max);
    let mut events = Vec::new();
    for c in chunks {
        p.feed(c, |e| {
            events.push((e.event.to_owned(), e.data.to_owned(), e.id.to_owned()));
        });
    }
    let dropped = p.finish();
    (events, p.discarded(), p.retry(), dropped)
}

/// An event stream: mostly SSE-shaped tokens, some raw bytes.
fn sse_stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        6 => prop::sample::select(TOKENS).prop_map(<[u8]>::to_vec),
        3 => "[a-z ]{0,12}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..16),
    ];
    prop_oneof![
        3 => prop::collection::vec(piece, 0..64).prop_map(|v| v.concat()),
        1 => body(),
    ]
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn sse_chunking_never_changes_the_events(
        input in sse_stream(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        max in prop_oneof![1usize..64, Just(1024 * 1024)],
    ) {
        let whole = parse_sse(&[&input], max);
        let split = parse_sse(&chunked(&input, &cuts), max);
        prop_assert_eq!(&whole, &split);
        let bytewise: Vec<&[u8]> = input.chunks(1).collect();
        prop_assert_eq!(&whole, &parse_sse(&bytewise, max));
        for (_, data, _) in &whole.0 {
            // Each character of `data` comes from at least one byte of its event.
            prop_assert!(data.chars().count() < max, "{} chars, max {max}", data.len());
        }
    }
}

fn tool_map() -> &'static ToolMap {
    static MAP: OnceLock<ToolMap> = OnceLock::new();
    MAP.get_or_init(|| {
        let m = |method: &str, path: &str, tool: &str| ToolMapping {
            method: method.into(),
            path: path.into(),
            tool: tool.into(),
        };
        ToolMap::new(vec![
            m("POST", "/api/crm/contacts/search", "crm:contacts:search"),
            m("GET", "/api/crm/contacts/{id}", "crm:contacts:get"),
            m("ANY", "/api/{area}/notes/{note}", "notes:any"),
        ])
        .expect("valid tool map")
    })
}

fn route_kind() -> impl Strategy<Value = RouteKind> {
    prop::sample::select(vec![
        RouteKind::Openai,
        RouteKind::Anthropic,
        RouteKind::Mcp,
        RouteKind::Http,
    ])
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "/v1/chat/completions",
            "/v1/responses",
            "/v1/embeddings",
            "/v1/messages",
            "/mcp",
            "/api/crm/contacts/search",
            "/api/crm/contacts/%ff%2F..",
            "/api/x/notes/%E2%82%AC",
            "/",
        ])
        .prop_map(str::to_owned),
        "/[ -~]{0,40}",
    ]
}

fn headers() -> impl Strategy<Value = HeaderMap> {
    let name = prop::sample::select(vec![
        "content-type",
        "content-encoding",
        "mcp-method",
        "mcp-name",
        "mcp-session-id",
        "anthropic-version",
        "accept",
        "x-custom",
    ]);
    let value = prop_oneof![
        prop::sample::select(vec![
            "application/json",
            "application/x-www-form-urlencoded",
            "text/event-stream",
            "multipart/form-data; boundary=x",
            "tools/call",
            "resources/read",
            "add",
            "gzip",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..24),
    ];
    prop::collection::vec((name, value), 0..5).prop_map(|pairs| {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            if let Ok(v) = HeaderValue::from_bytes(&v) {
                h.append(HeaderName::from_static(n), v);
            }
        }
        h
    })
}

#[derive(Clone, Debug)]
struct Request {
    kind: RouteKind,
    method: &'static str,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Vec<u8>,
    body_complete: bool,
    tools: bool,
    limits: Limits,
}

fn request() -> impl Strategy<Value = Request> {
    (
        route_kind(),
        prop::sample::select(vec!["POST", "GET", "PUT", "DELETE", "PATCH"]),
        path(),
        prop::option::of("[ -~]{0,40}"),
        headers(),
        body(),
        any::<bool>(),
        any::<bool>(),
        (
            0usize..600,
            prop_oneof![1usize..4096, Just(4 * 1024 * 1024)],
            1usize..2048,
        ),
    )
        .prop_map(
            |(kind, method, path, query, headers, body, body_complete, tools, (p, b, e))| Request {
                kind,
                method,
                path,
                query,
                headers,
                body,
                body_complete,
                tools,
                limits: Limits {
                    max_parameters_bytes: p,
                    max_body_bytes: b,
                    max_event_bytes: e,
                },
            },
        )
}

fn inspect(r: &Request) -> RequestFacts {
    inspect_request(
        &RequestInput {
            kind: r.kind,
            route: "route",
            method: r.method,
            path: &r.path,
            query: r.query.as_deref(),
            headers: &r.headers,
            body: &r.body,
            body_complete: r.body_complete,
            tools: r.tools.then(tool_map),
        },
        &r.limits,
    )
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn request_inspection_respects_the_parameter_bound(r in request()) {
        let facts = inspect(&r);
        let max = r.limits.max_parameters_bytes;
        if let Some(p) = &facts.parameters {
            prop_assert!(p.len() <= max, "parameters {} > {max}", p.len());
            prop_assert!(serde_json::from_str::<serde::de::IgnoredAny>(p).is_ok(), "{p}");
        }
        if let Some(a) = &facts.tool_arguments {
            prop_assert!(a.len() <= max, "tool_arguments {} > {max}", a.len());
        }
    }

    #[test]
    fn response_facts_do_not_depend_on_chunking(
        r in request(),
        response in body(),
        content_type in prop::option::of(prop::sample::select(vec![
            "application/json",
            "text/event-stream",
            "application/json; charset=utf-8",
            "application/x-ndjson",
            "text/plain",
        ])),
        status in prop::sample::select(vec![200u16, 400, 500]),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let facts = inspect(&r);
        let observe = |chunks: &[&[u8]]| {
            let mut o = ResponseObserver::new(r.kind, &facts, status, content_type, &r.limits);
            for c in chunks {
                o.feed(c);
                let _ = o.is_complete();
            }
            o.finish()
        };
        let whole = observe(&[&response]);
        prop_assert_eq!(&whole, &observe(&chunked(&response, &cuts)));
        for call in &whole.tool_calls {
            if let Some(a) = &call.arguments {
                prop_assert!(a.len() <= r.limits.max_parameters_bytes, "arguments {} > {}", a.len(), r.limits.max_parameters_bytes);
            }
        }
    }
}
