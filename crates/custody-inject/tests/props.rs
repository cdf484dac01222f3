//! Property test of the admission-review handler, which reads the API server's
//! request bytes: `review` never panics on arbitrary bytes, nor on the golden
//! AdmissionReviews of `tests/fixtures/` damaged by edits, under either
//! selection; and every answer is JSON.
//!
//! `PROPTEST_CASES=100000 cargo test -p custody-inject --test props` runs longer
//! (docs/development.md).

#![allow(missing_docs)]

use custody_inject::{InjectConfig, RawConfig, Selected, review};
use proptest::prelude::*;
use support::config;

#[path = "../../../tests/support/props.rs"]
mod support;
use std::path::Path;
use std::sync::OnceLock;

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

fn inject_config() -> &'static InjectConfig {
    static C: OnceLock<InjectConfig> = OnceLock::new();
    C.get_or_init(|| {
        let text = std::fs::read_to_string(fixtures().join("config.yaml")).expect("config");
        RawConfig::from_yaml(&text)
            .and_then(RawConfig::validate)
            .expect("valid config")
    })
}

/// The fixture reviews.
fn seeds() -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(fixtures())
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json") && !p.ends_with("cases.json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read(f).expect("fixture"))
        .collect()
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "null",
    "true",
    "\"true\"",
    "\"false\"",
    "0",
    "-1",
    "1e999",
    "\"\"",
    "\\u0000",
    "\"custody\"",
    "\"custody.dev/inject\"",
    "\"windows\"",
    "\"DELETE\"",
    "\"100Gi\"",
    "\"-1m\"",
    "\"15080\"",
    "{\"a\":[]}",
];

fn body() -> impl Strategy<Value = Vec<u8>> {
    let edit = (
        any::<prop::sample::Index>(),
        0usize..16,
        prop_oneof![
            3 => prop::sample::select(TOKENS).prop_map(|t| t.as_bytes().to_vec()),
            1 => prop::collection::vec(any::<u8>(), 1..4),
        ],
    );
    prop_oneof![
        5 => (prop::sample::select(seeds()), prop::collection::vec(edit, 0..6)).prop_map(
            |(mut b, edits)| {
                for (at, del, tok) in edits {
                    let at = at.index(b.len() + 1);
                    let end = (at + del).min(b.len());
                    b.splice(at..end, tok);
                }
                b
            }
        ),
        1 => prop::collection::vec(any::<u8>(), 0..128),
    ]
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn review_never_panics(body in body(), by_pod in any::<bool>()) {
        let selected = if by_pod { Selected::ByPod } else { Selected::ByNamespace };
        let answer = review(&body, inject_config(), selected);
        prop_assert!(serde_json::from_slice::<serde_json::Value>(&answer.body).is_ok());
    }
}
