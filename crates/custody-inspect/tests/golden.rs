//! Golden fixtures: realistic requests and responses (JSON bodies and SSE streams)
//! of OpenAI, Anthropic and MCP, each with the facts expected from them.
//!
//! Every response is fed whole, byte by byte and in pseudo-random chunk sizes
//! (and SSE streams also with CRLF and CR line endings): the facts must not change.
//! Each case lives in `tests/fixtures/<case>/`: `case.json` (the request's route
//! kind, method, path, headers; the response's status and content type; the
//! expected facts under `expect`), `request.json` and `response.json|sse`.
//!
//! To regenerate the expectations after an intended change, run with
//! `CUSTODY_BLESS=1` and review the diff.

#![allow(missing_docs)]

use custody_inspect::{
    Limits, RequestFacts, RequestInput, ResponseFacts, ResponseObserver, RouteKind,
    UsageChunkStripper, force_stream_usage, inspect_request,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

struct Case {
    name: String,
    dir: PathBuf,
    meta: Value,
    request: Vec<u8>,
    response: Vec<u8>,
}

impl Case {
    fn kind(&self) -> RouteKind {
        serde_json::from_value(self.meta["kind"].clone()).expect("kind")
    }

    fn str(&self, key: &str) -> &str {
        self.meta[key]
            .as_str()
            .unwrap_or_else(|| panic!("{}: {key}", self.name))
    }

    fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in self.meta["headers"].as_object().into_iter().flatten() {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v.as_str().expect("value")).expect("value"),
            );
        }
        h
    }

    fn is_sse(&self) -> bool {
        self.str("content_type").contains("text/event-stream")
    }

    fn request_facts_with(&self, body: &[u8], limits: &Limits) -> RequestFacts {
        let headers = self.headers();
        inspect_request(
            &RequestInput {
                kind: self.kind(),
                route: self.str("route"),
                method: self.str("method"),
                path: self.str("path"),
                query: None,
                headers: &headers,
                body,
                body_complete: true,
                tools: None,
            },
            limits,
        )
    }

    fn request_facts(&self) -> RequestFacts {
        self.request_facts_with(&self.request, &Limits::default())
    }

    fn observe<'a>(
        &self,
        req: &RequestFacts,
        chunks: impl IntoIterator<Item = &'a [u8]>,
        limits: &Limits,
    ) -> ResponseFacts {
        let status = u16::try_from(self.meta["status"].as_u64().expect("status")).expect("status");
        let mut o = ResponseObserver::new(
            self.kind(),
            req,
            status,
            Some(self.str("content_type")),
            limits,
        );
        for c in chunks {
            o.feed(c);
        }
        o.finish()
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn cases() -> Vec<Case> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|dir| {
            let meta: Value =
                serde_json::from_slice(&std::fs::read(dir.join("case.json")).expect("case.json"))
                    .expect("case json");
            let read = |key: &str| {
                meta[key]
                    .as_str()
                    .map(|f| std::fs::read(dir.join(f)).expect("fixture file"))
                    .unwrap_or_default()
            };
            Case {
                name: dir
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned(),
                request: read("request_body"),
                response: read("response_body"),
                dir,
                meta,
            }
        })
        .collect()
}

/// xorshift64*: deterministic chunk sizes without a `rand` dependency.
struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Splits `bytes` into chunks of 1..=max bytes.
    fn chunks<'a>(&mut self, bytes: &'a [u8], max: u64) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = usize::try_from(self.next() % max + 1)
                .expect("size")
                .min(rest.len());
            let (a, b) = rest.split_at(n);
            out.push(a);
            rest = b;
        }
        out
    }
}

fn with_line_endings(sse: &[u8], eol: &str) -> Vec<u8> {
    String::from_utf8(sse.to_vec())
        .expect("utf8 fixture")
        .replace('\n', eol)
        .into_bytes()
}

#[test]
fn golden_facts() {
    let bless = std::env::var_os("CUSTODY_BLESS").is_some();
    let cases = cases();
    assert!(cases.len() >= 15, "fixtures missing: {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let req = case.request_facts();
        let resp = case.observe(&req, [&case.response[..]], &Limits::default());
        let got = json!({ "request": req, "response": resp });
        if bless {
            let mut meta = case.meta.clone();
            meta["expect"] = got;
            let text = serde_json::to_string_pretty(&meta).expect("json") + "\n";
            std::fs::write(case.dir.join("case.json"), text).expect("bless");
        } else if case.meta["expect"] != got {
            failures.push(format!(
                "{}:\n  expected {}\n  got      {}",
                case.name, case.meta["expect"], got
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn chunking_never_changes_the_facts() {
    for case in cases() {
        let limits = Limits::default();
        let req = case.request_facts();
        let whole = case.observe(&req, [&case.response[..]], &limits);
        let mut variants = vec![("lf", case.response.clone())];
        if case.is_sse() {
            variants.push(("crlf", with_line_endings(&case.response, "\r\n")));
            variants.push(("cr", with_line_endings(&case.response, "\r")));
        }
        for (eol, body) in &variants {
            let name = format!("{} ({eol})", case.name);
            assert_eq!(
                case.observe(&req, [&body[..]], &limits),
                whole,
                "{name}: whole"
            );
            assert_eq!(
                case.observe(&req, body.chunks(1), &limits),
                whole,
                "{name}: 1-byte chunks"
            );
            for seed in 1..=12u64 {
                let mut rng = Prng(0x9E37_79B9_7F4A_7C15 ^ seed);
                let max = [2, 7, 64, 512][usize::try_from(seed % 4).expect("index")];
                let chunks = rng.chunks(body, max);
                assert_eq!(
                    case.observe(&req, chunks, &limits),
                    whole,
                    "{name}: seed {seed}, max {max}"
                );
            }
        }
    }
}

#[test]
fn cut_streams_and_bodies_never_panic() {
    for case in cases() {
        let limits = Limits::default();
        let req = case.request_facts();
        let full = case.observe(&req, [&case.response[..]], &limits);
        for cut in (0..case.response.len()).step_by(23) {
            let partial = case.observe(&req, [&case.response[..cut]], &limits);
            assert!(partial.events <= full.events, "{} cut at {cut}", case.name);
            if case.is_sse() {
                // Tool calls seen so far are a prefix of the full list, and a
                // call's arguments are either unknown yet or already final.
                let prefix = partial.tool_calls.len() <= full.tool_calls.len()
                    && partial
                        .tool_calls
                        .iter()
                        .zip(&full.tool_calls)
                        .all(|(p, f)| {
                            (&p.id, &p.name) == (&f.id, &f.name)
                                && (p.arguments.is_none() || p.arguments == f.arguments)
                        });
                assert!(
                    prefix,
                    "{} cut at {cut}: {:?}",
                    case.name, partial.tool_calls
                );
            }
        }
        for cut in (0..case.request.len()).step_by(17) {
            let facts = case.request_facts_with(&case.request[..cut], &limits);
            let cut_body = &case.request[..cut];
            let invalid = serde_json::from_slice::<serde::de::IgnoredAny>(cut_body).is_err();
            if invalid && cut_body.iter().any(|b| !b.is_ascii_whitespace()) {
                assert!(facts.error.is_some(), "{} request cut at {cut}", case.name);
            }
        }
    }
}

fn case(name: &str) -> Case {
    cases().into_iter().find(|c| c.name == name).expect("case")
}

#[test]
fn stream_cut_before_the_usage_chunk() {
    let c = case("openai_chat_sse_usage");
    let req = c.request_facts();
    let at = c
        .response
        .windows(12)
        .position(|w| w == b"\"choices\":[]")
        .expect("usage chunk");
    let facts = c.observe(&req, [&c.response[..at]], &Limits::default());
    assert_eq!(facts.usage, None);
    assert_eq!(facts.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
}

#[test]
fn oversized_sse_event_is_discarded_and_the_rest_still_counts() {
    let c = case("openai_chat_sse_usage");
    let req = c.request_facts();
    let limits = Limits::default();
    let whole = c.observe(&req, [&c.response[..]], &limits);
    let big = format!(
        "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n",
        "A".repeat(limits.max_event_bytes)
    );
    let mut body = big.into_bytes();
    body.extend_from_slice(&c.response);
    let facts = c.observe(&req, body.chunks(8192), &limits);
    assert_eq!(facts.discarded_events, 1);
    assert_eq!(facts.events, whole.events);
    assert_eq!((facts.usage, facts.model), (whole.usage, whole.model));
}

#[test]
fn forced_usage_is_seen_by_the_observer_and_hidden_from_the_client() {
    let c = case("openai_chat_sse_usage");
    // A client that did not ask for usage gets its request rewritten...
    let mut client_req: Value = serde_json::from_slice(&c.request).expect("json");
    client_req
        .as_object_mut()
        .expect("object")
        .remove("stream_options");
    let client_body = serde_json::to_vec(&client_req).expect("json");
    let forced = force_stream_usage(&client_body).expect("rewritten");
    let forced: Value = serde_json::from_slice(&forced).expect("json");
    assert_eq!(forced["stream_options"], json!({"include_usage": true}));
    assert_eq!(
        force_stream_usage(&c.request),
        None,
        "already asked for usage"
    );
    // ...the observer sees the upstream stream with usage; the client gets it without.
    let req = c.request_facts();
    let upstream = c.observe(&req, [&c.response[..]], &Limits::default());
    assert!(upstream.usage.is_some());
    let mut rng = Prng(7);
    let mut stripper = UsageChunkStripper::new();
    let mut to_client = Vec::new();
    for chunk in rng.chunks(&c.response, 100) {
        stripper.push(chunk, &mut to_client);
    }
    stripper.finish(&mut to_client);
    assert_eq!(stripper.dropped(), 1);
    assert_eq!(
        to_client.len(),
        c.response.len() - usage_event_bytes(&c.response)
    );
    let client_view = c.observe(&req, [&to_client[..]], &Limits::default());
    assert_eq!(client_view.usage, None);
    assert_eq!(client_view.events + 1, upstream.events);
    assert_eq!(client_view.model, upstream.model);
}

/// Bytes of the usage event, from `data:` to the end of its blank line.
fn usage_event_bytes(sse: &[u8]) -> usize {
    let text = std::str::from_utf8(sse).expect("utf8");
    let event = text
        .split("\n\n")
        .find(|e| e.contains("\"choices\":[]"))
        .expect("usage event");
    event.len() + 2
}
